"""Count-aware CDN detectors, the constant one, and thresholds set by a false-alarm budget."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from passes import assert_one_pass_scores_each_as_alone

from passion_tasks.detectors import DetectorError, load_detector, make_detector
from passion_tasks.detectors.counts import COUNT_WINDOWS, MAX_SKEWNESS, CountDetector, _dispersion
from passion_tasks.detectors.persistence import ARRAYS_FILE, STATE_FILE
from passion_tasks.detectors.thresholds import false_alarm_budget_threshold, series_budget
from passion_tasks.incidents.model import group_incidents, with_severity
from passion_tasks.models.scoring import group_events, score_frame
from passion_tasks.models.training import nightly_candidates

DAY = 1440
TRAIN = 7 * DAY
#: An outage: minutes 600 to 609 of the scored day.
OUTAGE = slice(TRAIN + 600, TRAIN + 610)


def grid(rows: int) -> pd.DatetimeIndex:
    return pd.date_range("2026-11-01", periods=rows, freq="min", tz="UTC")


def requests_per_minute(mean: float, days: int = 8, seed: int = 0) -> np.ndarray:
    """Poisson requests around a daily cycle (half to one and a half times ``mean``)."""
    rows = np.arange(days * DAY)
    return (
        np.random.default_rng(seed).poisson(mean * (1 + 0.5 * np.sin(2 * np.pi * rows / DAY))).astype(float)
    )


def rate_frame(requests: np.ndarray, errors: np.ndarray, metric: str = "cdn_5xx_rate") -> pd.DataFrame:
    rate = np.where(requests > 0, errors / np.maximum(requests, 1), np.nan)
    return pd.DataFrame({metric: rate, "cdn_requests": requests}, index=grid(len(requests)))


def fitted(name: str, frame: pd.DataFrame, **params) -> tuple:
    detector = make_detector(name, **params).fit(frame.iloc[:TRAIN])
    return detector, detector.detect(frame.iloc[TRAIN:])


def test_an_outage_on_an_error_rate_that_was_0_all_week_is_flagged_for_its_minutes_only() -> None:
    requests = requests_per_minute(30)
    errors = np.zeros_like(requests)
    errors[OUTAGE] = np.random.default_rng(1).binomial(requests[OUTAGE].astype(int), 0.35)
    detector, result = fitted("rate", rate_frame(requests, errors))

    assert detector.rate_ == pytest.approx(0.5 / (requests[:TRAIN].sum() + 1))
    flagged = np.flatnonzero(result["is_anomaly"].to_numpy())
    assert flagged.tolist() == list(range(600, 610))


def test_a_purge_on_a_busy_slice_ends_within_minutes_of_its_end() -> None:
    # 300 requests a minute, a fifth of them misses; for a quarter of an hour three fifths. After it,
    # half the minutes miss a little more than a fifth by chance, while the quarter of an hour's window
    # still holds the purge: they carried it for thirteen minutes more, until the window's last five
    # minutes had to have departed with it too.
    requests = requests_per_minute(300)
    rng = np.random.default_rng(0)
    misses = rng.binomial(requests.astype(int), 0.2)
    purge = slice(TRAIN + 600, TRAIN + 615)
    misses[purge] = rng.binomial(requests[purge].astype(int), 0.6)
    _, result = fitted("rate", rate_frame(requests, requests - misses, "cdn_cache_hit_ratio"))
    flagged = np.flatnonzero(result["is_anomaly"].to_numpy())
    assert set(range(600, 615)) <= set(flagged) and flagged.max() < 619


def test_counts_decide_how_sure_an_error_rate_is() -> None:
    # 0 errors in 100,000 requests of training.
    requests = np.full(TRAIN, 100_000 / TRAIN)
    train = rate_frame(np.round(requests), np.zeros(TRAIN)).iloc[:TRAIN]
    detector = make_detector("rate").fit(train)

    def after(errors: int, requests: float) -> float:
        minute = pd.DataFrame(
            {"cdn_5xx_rate": [errors / requests], "cdn_requests": [requests]}, index=grid(TRAIN + 1)[TRAIN:]
        )
        return float(detector.decision_function(minute).iloc[0])

    assert after(3, 10) > 10 > detector.threshold_  # p < 1e-10: certain
    assert after(1, 100_000) < 1  # p > 0.1: nothing


def test_a_thin_slice_does_not_fire_on_noise_and_does_on_a_real_change() -> None:
    # Two requests a minute with 0.2% errors: single errors come and go all day.
    rng = np.random.default_rng(2)
    requests = np.full(8 * DAY, 2.0)
    errors = rng.binomial(2, 0.002, 8 * DAY).astype(float)
    _quiet_detector, quiet = fitted("rate", rate_frame(requests, errors))
    assert errors[TRAIN:].sum() > 0 and not quiet["is_anomaly"].any()

    errors[OUTAGE] = rng.binomial(2, 0.5, 10)
    _, burst = fitted("rate", rate_frame(requests, errors))
    assert burst["is_anomaly"].to_numpy()[600:610].sum() >= 5
    assert not burst["is_anomaly"].to_numpy()[:590].any()


def test_an_error_every_eight_minutes_on_a_thin_slice_is_one_incident() -> None:
    # A request a minute and no 5xx all week; then a 503 every eight minutes. The first error alone is
    # within what a week of none allows; each later one, with the one before it in its 15-minute
    # window, is anomalous for its own minute alone, too short to be an incident by itself.
    requests = np.ones(8 * DAY)
    errors = np.zeros_like(requests)
    errors[TRAIN + 600 : TRAIN + 632 : 8] = 1.0
    frame = rate_frame(requests, errors)
    detector = make_detector("rate").fit(frame.iloc[:TRAIN])
    scores = score_frame(detector, frame.iloc[TRAIN:], series="cdn_5xx_rate{edge=X}", model_version="v")
    assert np.flatnonzero(scores["is_anomaly"]).tolist() == [608, 616, 624]

    (incident,) = group_incidents(with_severity(group_events(scores), scores))
    assert (incident.start, incident.minutes) == (grid(8 * DAY)[TRAIN + 608], 17)


def test_a_hit_ratio_goes_bad_downwards() -> None:
    requests = requests_per_minute(50)
    hits = np.random.default_rng(3).binomial(requests.astype(int), 0.9).astype(float)
    hits[OUTAGE] = 0.0  # the cache is bypassed
    frame = rate_frame(requests, hits, metric="cdn_cache_hit_ratio")
    detector, result = fitted("rate", frame)
    assert detector.rate_ == pytest.approx(0.1, abs=0.01)  # the misses
    assert result["expected"].dropna().iloc[0] == pytest.approx(0.9, abs=0.01)
    # A minute after the outage that happens to miss more than usual still carries its 15-minute window.
    flagged = np.flatnonzero(result["is_anomaly"].to_numpy())
    assert set(range(600, 610)) <= set(flagged) and flagged.min() == 600 and flagged.max() < 610 + 15


def latency_frame(requests: np.ndarray, seed: int = 4) -> pd.DataFrame:
    """A p95 whose log scatters by 0.05 plus 0.5 / sqrt(requests)."""
    noise = np.random.default_rng(seed).normal(0, 0.05 + 0.5 / np.sqrt(np.maximum(requests, 1)))
    return pd.DataFrame(
        {"cdn_ttfb_p95": 0.05 * np.exp(noise), "cdn_requests": requests}, index=grid(len(requests))
    )


def test_a_percentile_is_judged_with_its_sample_size() -> None:
    thin = latency_frame(np.random.default_rng(7).integers(1, 11, 8 * DAY).astype(float))
    detector, result = fitted("percentile", thin)
    # The noise model learned that a one-request minute scatters more than a ten-request one.
    assert detector.noise_per_request_ > 10 * detector.noise_floor_
    assert not result["is_anomaly"].any()

    slower = thin.copy()
    slower.iloc[OUTAGE, 0] *= 5
    _, result = fitted("percentile", slower)
    assert result["is_anomaly"].to_numpy()[600:610].sum() >= 8
    assert not result["is_anomaly"].to_numpy()[:600].any()
    # A faster percentile is no incident.
    faster = thin.copy()
    faster.iloc[OUTAGE, 0] /= 5
    assert not fitted("percentile", faster)[1]["is_anomaly"].any()


def test_a_busy_percentile_that_climbs_through_each_hour_is_no_incident() -> None:
    """At 2,000 requests a minute a p95 is known to 1 %; a daily cycle takes it up to 4 % from its
    hour's middle within the hour. Read as one level per hour, the ends of every climbing hour scored
    high every training day, which raised the threshold (8.1, now 6.0) until a 5 % slowdown of ten
    minutes went unseen."""
    rows = np.arange(8 * DAY)
    requests = np.random.default_rng(5).poisson(2000, len(rows)).astype(float)
    cycle = 0.3 * np.sin(2 * np.pi * rows / DAY)
    noise = np.random.default_rng(6).normal(0, 0.01 + 0.5 / np.sqrt(requests))
    frame = pd.DataFrame(
        {"cdn_ttfb_p95": 0.15 * np.exp(cycle + noise), "cdn_requests": requests}, index=grid(len(rows))
    )
    detector, result = fitted("percentile", frame)

    assert not result["is_anomaly"].any()
    # Between the (log) levels of the hours it lies between: 03:50 is a third of the way from 03:30 to 04:30.
    expected = result["expected"].to_numpy()[3 * 60 + 50]
    levels = detector.hour_levels_[3:5]
    np.testing.assert_allclose(expected, np.exp(levels[0] + (levels[1] - levels[0]) / 3), rtol=1e-9)
    slower = frame.copy()
    slower.iloc[OUTAGE, 0] *= 1.05
    assert fitted("percentile", slower)[1]["is_anomaly"].to_numpy()[600:612].sum() >= 4  # 6 (0 as steps)


def thin_slice_latencies(
    slower: float, seed: int = 4, purged: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A slice of four requests a minute, four in five of them cache hits around 10 ms and the others
    misses around 150 ms; every request of ``OUTAGE`` ``slower`` times slower, and four in five of them
    misses if ``purged``. Its geometric mean beside the requests and the hit ratio, and its p95 beside
    the requests."""
    rng = np.random.default_rng(seed)
    requests = requests_per_minute(4, seed=seed)
    factor, miss_share = np.ones(requests.size), np.full(requests.size, 0.2)
    factor[OUTAGE] = slower
    miss_share[OUTAGE] = 0.8 if purged else 0.2
    typical, tail, hits = (np.full(requests.size, np.nan) for _ in range(3))
    for minute, n in enumerate(requests.astype(int)):
        if n:
            miss = rng.random(n) < miss_share[minute]
            hit_or_miss = np.where(
                miss, 0.15 * np.exp(rng.normal(0, 0.5, n)), 0.01 * np.exp(rng.normal(0, 0.3, n))
            )
            latencies = np.maximum(np.round(hit_or_miss * factor[minute], 3), 0.001)
            typical[minute] = np.exp(np.log(latencies).mean())
            tail[minute] = np.quantile(latencies, 0.95)
            hits[minute] = 1 - miss.mean()
    index = grid(requests.size)
    return (
        pd.DataFrame(
            {"cdn_ttfb_gmean": typical, "cdn_requests": requests, "cdn_cache_hit_ratio": hits}, index=index
        ),
        pd.DataFrame({"cdn_ttfb_p95": tail, "cdn_requests": requests}, index=index),
    )


def test_a_slowdown_of_a_thin_slice_shows_in_its_geometric_mean_where_its_p95_hides_it() -> None:
    typical, tail = thin_slice_latencies(slower=1)
    assert not fitted("geometric_mean", typical)[1]["is_anomaly"].any()
    typical, tail = thin_slice_latencies(slower=4)
    flagged = np.flatnonzero(fitted("geometric_mean", typical)[1]["is_anomaly"].to_numpy())
    # Ten minutes, forty requests: the mean of their logs moved by log 4, the p95 (the slowest of
    # four) by as much, inside a spread as wide as that. The event ends within three minutes of them.
    assert (flagged < 610).sum() >= 7 and 600 <= flagged.min() < 606 and flagged.max() < 613
    assert not fitted("percentile", tail)[1]["is_anomaly"].any()


def test_a_thin_slices_latency_is_judged_against_its_minutes_mix_of_hits_and_misses() -> None:
    # Most of a thin slice's spread is how many of its few requests missed the cache this minute.
    slower, _ = thin_slice_latencies(slower=2)
    with_mix, result = fitted("geometric_mean", slower)
    # A miss is 15 times slower than a hit here: log 15 = 2.71.
    assert 2.5 < with_mix.miss_penalty_ < 2.9
    flagged = np.flatnonzero(result["is_anomaly"].to_numpy())
    # Seven of its ten minutes, and one after them: the quarter of an hour's window holds the slowdown
    # after it too, and speaks only while the last five minutes still depart with it.
    assert (flagged < 610).sum() >= 7 and 600 <= flagged.min() < 606 and flagged.max() < 613
    # Blind to the mix, ten minutes twice as slow hide in it.
    assert not fitted("geometric_mean", slower.iloc[:, :2])[1]["is_anomaly"].any()
    # A purge makes the slice slower by its misses, which the hit ratio's own model judges: its
    # latency given the mix is as usual, where blind to the mix it is an incident of its own.
    purged, _ = thin_slice_latencies(slower=1, purged=True)
    assert not fitted("geometric_mean", purged)[1]["is_anomaly"].any()
    blind = np.flatnonzero(fitted("geometric_mean", purged.iloc[:, :2])[1]["is_anomaly"].to_numpy())
    assert blind.size and 600 <= blind.min() < 610


def test_an_hour_too_thin_to_learn_keeps_the_slices_usual_mix_of_hits_and_misses() -> None:
    # One request in twenty minutes (21 in a week's hour: no hour learns a level of its own), four in
    # five hits around 10 ms, misses around 150 ms; in training every 7 a.m. request missed the
    # cache. The scored day's 7 a.m. has ten times its usual requests, all hits: the slice's usual
    # hits, not fifteen times too slow for a 7 a.m. that only ever missed.
    rng = np.random.default_rng(5)
    rows = TRAIN + DAY
    at_seven = grid(rows).hour.to_numpy() == 7
    requests = (rng.random(rows) < (0.05 + 0.45 * at_seven * (np.arange(rows) >= TRAIN))).astype(float)
    miss = (rng.random(rows) < 0.2) & ~(at_seven & (np.arange(rows) >= TRAIN))
    miss[:TRAIN] |= at_seven[:TRAIN]
    latency = np.where(miss, 0.15 * np.exp(rng.normal(0, 0.5, rows)), 0.01 * np.exp(rng.normal(0, 0.3, rows)))
    served = requests > 0
    frame = pd.DataFrame(
        {
            "cdn_ttfb_gmean": np.where(served, latency, np.nan),
            "cdn_requests": requests,
            "cdn_cache_hit_ratio": np.where(served, 1.0 - miss, np.nan),
        },
        index=grid(rows),
    )

    detector, result = fitted("geometric_mean", frame)

    trained = served[:TRAIN]
    assert detector.hour_miss_shares_[7] == pytest.approx(miss[:TRAIN][trained].mean())
    assert not result["is_anomaly"].any()


def test_requests_named_on_one_training_day_are_refused_a_daily_profile() -> None:
    # A thin edge has a series of its own only on the days it is among the busiest: here one day of
    # the week, the day a crawler made it so. That day is no profile of the edge's days.
    requests = requests_per_minute(4)[:TRAIN]
    requests[: 3 * DAY] = np.nan
    requests[4 * DAY :] = np.nan
    frame = pd.DataFrame({"cdn_requests": requests}, index=grid(TRAIN))
    with pytest.raises(
        DetectorError, match="count: a daily profile needs at least 2 training days with values, got 1"
    ):
        make_detector("count").fit(frame)
    requests[4 * DAY : 5 * DAY] = requests_per_minute(4)[4 * DAY : 5 * DAY]
    make_detector("count").fit(frame.assign(cdn_requests=requests))


def test_a_traffic_drop_is_flagged_against_the_time_of_day() -> None:
    # Not seed 0: its scored day holds half an hour 4.9 sigma above the Poisson mean that drew it (724
    # requests for 603 from 17:24), a one in 20,000 days chance that the half hour's window is right
    # to find.
    requests = requests_per_minute(40, seed=1)
    frame = pd.DataFrame({"cdn_requests": requests}, index=grid(len(requests)))
    _detector, normal = fitted("count", frame)
    assert not normal["is_anomaly"].any()

    dropped = frame.copy()
    dropped.iloc[OUTAGE, 0] = np.round(dropped.iloc[OUTAGE, 0] * 0.1)
    _, result = fitted("count", dropped)
    flagged = np.flatnonzero(result["is_anomaly"].to_numpy())
    # A later minute that happens to be low carries the quarter of an hour on, no more.
    assert flagged.min() == 600 and flagged.max() < 625


def test_an_outage_that_outlasts_the_trailing_level_is_one_incident_and_its_end_no_surge() -> None:
    # Nothing for six hours of the scored day, three times the two hours the level reads (seed 1: see
    # the test above).
    requests = requests_per_minute(40, seed=1)
    frame = pd.DataFrame({"cdn_requests": requests}, index=grid(len(requests)))
    frame.iloc[TRAIN + 600 : TRAIN + 960, 0] = 0.0
    detector, result = fitted("count", frame)
    flagged = np.flatnonzero(result["is_anomaly"].to_numpy())
    assert flagged.min() == 600 and set(range(600, 960)) <= set(flagged) and flagged.max() < 960 + 15
    # A level that followed every block, as a model saved before the range was learned does: the
    # outage is news for its first hour and a half, and the traffic that comes back is a surge.
    detector.level_range_ = (0.0, np.inf)
    followed = np.flatnonzero(detector.detect(frame.iloc[TRAIN:])["is_anomaly"].to_numpy())
    assert followed.min() == 600 and 640 < followed[followed < 960].max() < 720
    assert followed.max() > 1000


def test_nasas_real_outage_is_news_for_all_its_36_hours_and_the_traffic_after_it_no_surge(
    reference_data: Path,
) -> None:
    shipped = pd.read_csv(reference_data / "nasa_http" / "requests_per_minute.csv", index_col="timestamp")
    shipped.index = pd.to_datetime(shipped.index, utc=True)
    frame = shipped[["requests"]].where(shipped["in_trace"] == 1).astype(float)
    # Trained on the first fortnight, which holds a half-hour outage of its own (13 July).
    detector = make_detector("count").fit(frame.loc[: frame.index[0] + pd.Timedelta(days=14)].iloc[:-1])
    flagged = detector.detect(frame)["is_anomaly"]
    outage = shipped["outage"] == 1
    assert outage.sum() == 2265 and flagged[outage].all()
    # The server answered about one request a minute until 15:28 UTC on 3 August, then ~80 again: the
    # minutes just after that run a little low still carry the outage's quarter of an hour, no more.
    assert flagged["1995-08-03 08:37":"1995-08-03 15:28"].all()
    assert not flagged["1995-08-03 15:29":"1995-08-03 15:30"].any()
    assert not flagged["1995-08-03 15:43":"1995-08-03 17:43"].any()


def test_an_outage_in_the_training_week_does_not_widen_the_levels_a_count_follows() -> None:
    requests = requests_per_minute(40)
    frame = pd.DataFrame({"cdn_requests": requests}, index=grid(len(requests)))
    clean = make_detector("count").fit(frame.iloc[:TRAIN])
    frame.iloc[3 * DAY + 600 : 3 * DAY + 630, 0] = 0.0
    troubled = make_detector("count").fit(frame.iloc[:TRAIN])
    assert 0.3 < clean.level_range_[0] < 0.5 and 2.0 < clean.level_range_[1] < 3.0
    np.testing.assert_allclose(troubled.level_range_, clean.level_range_, rtol=0.02)


def test_a_series_that_never_moved_flags_any_departure() -> None:
    frame = pd.DataFrame({"queue_depth": np.zeros(8 * DAY)}, index=grid(8 * DAY))
    frame.iloc[TRAIN + 100, 0] = 1.0
    _detector, result = fitted("constant", frame)
    assert np.flatnonzero(result["is_anomaly"].to_numpy()).tolist() == [100]
    with pytest.raises(DetectorError, match="moved in training"):
        make_detector("constant").fit(frame.iloc[TRAIN:])


def test_the_nightly_run_trains_by_kind_and_falls_back_for_what_never_moved() -> None:
    moving, flat = pd.Series([1.0, 2.0, 3.0]), pd.Series([0.0, 0.0, 0.0])
    assert nightly_candidates("cdn_5xx_rate{edge=FRA2}", flat) == ("rate",)
    assert nightly_candidates("cdn_ttfb_p99", moving) == ("percentile",)
    assert nightly_candidates("cdn_ttfb_gmean{device=Roku}", moving) == ("geometric_mean",)
    assert nightly_candidates("cdn_requests{channel=ch7}", moving) == ("count",)
    assert nightly_candidates("cdn_bytes{edge=FRA2}", moving) == ("size",)
    assert nightly_candidates("paycore", moving) == ("profile", "rolling_mad", "seasonal_naive")
    assert nightly_candidates("paycore", flat) == ("constant",)


@pytest.mark.parametrize(
    "name", ["rate", "percentile", "geometric_mean", "size", "count", "profile", "constant"]
)
def test_saved_count_detectors_load_back_with_identical_scores(name: str, tmp_path) -> None:
    frame = detector_frames()[name]
    detector, result = fitted(name, frame)
    loaded = load_detector(detector.save(tmp_path / name))
    pd.testing.assert_frame_equal(loaded.detect(frame.iloc[TRAIN:]), result)


@pytest.mark.parametrize(
    ("name", "rows"),
    [("rate", 14), ("percentile", 14), ("geometric_mean", 14), ("size", 14), ("count", 179), ("constant", 0)],
)
def test_a_count_detector_scores_a_row_from_its_context_alone(name: str, rows: int) -> None:
    # What scoring reads before a day (``scoring_rows``) and a micro-batch before its first minute.
    frame = detector_frames()[name]
    if name == "count":
        # Half the requests for an hour: the hour's window speaks, and it reads the most context.
        frame.iloc[TRAIN + 700 : TRAIN + 760, 0] = np.round(frame.iloc[TRAIN + 700 : TRAIN + 760, 0] / 2)
    detector, result = fitted(name, frame)
    assert detector.context() == pd.Timedelta(minutes=rows)
    start = TRAIN + 600
    cut = detector.detect(frame.iloc[start - rows :])
    # Each trailing sum adds its own window's values, wherever the frame starts: equal to the last bit.
    pd.testing.assert_frame_equal(cut.iloc[rows:], result.iloc[600:], check_exact=True)
    if not rows:
        return
    # With a row less, some row's score changes: the context is no longer than what the score reads.
    shorter = [
        detector.detect(frame.iloc[TRAIN + row - rows + 1 : TRAIN + row + 1]).iloc[-1]["score"]
        for row in range(600, 900)
    ]
    assert not np.allclose(shorter, result["score"].iloc[600:900], rtol=1e-6, atol=1e-9)


def pass_frames(name: str) -> list[pd.DataFrame]:
    """Three series for one detector, each with something of its own: for rates a rate that was 0 all
    week (no overdispersion), a hit ratio (bad downwards) and a noisy error rate."""
    if name == "rate":
        requests = requests_per_minute(30, seed=11)
        errors = np.zeros_like(requests)
        errors[OUTAGE] = np.random.default_rng(12).binomial(requests[OUTAGE].astype(int), 0.35)
        hits = np.random.default_rng(13).binomial(requests.astype(int), 0.9).astype(float)
        hits[OUTAGE] = 0.0
        noisy = np.random.default_rng(14).binomial(requests.astype(int), 0.01).astype(float)
        noisy[OUTAGE] = np.random.default_rng(15).binomial(requests[OUTAGE].astype(int), 0.3)
        return [
            rate_frame(requests, errors),
            rate_frame(requests, hits, metric="cdn_cache_hit_ratio"),
            rate_frame(requests, noisy, metric="cdn_4xx_rate"),
        ]
    frames = []
    for seed in (20, 21, 22):
        frame = detector_frames()[name].copy()
        if seed > 20:
            frame.iloc[:, 0] *= np.random.default_rng(seed).lognormal(0, 0.1, len(frame))
        frame.iloc[OUTAGE, 0] *= 5
        frames.append(frame)
    frames[1].iloc[TRAIN + 300 : TRAIN + 340, 0] = np.nan
    return frames


@pytest.mark.parametrize("name", ["rate", "percentile", "geometric_mean", "size", "count"])
def test_count_aware_models_score_in_one_pass_as_each_alone(name: str) -> None:
    frames = pass_frames(name)
    models = [make_detector(name).fit(frame.iloc[:TRAIN]) for frame in frames]
    assert len({model.batch_key() for model in models}) == 1
    assert_one_pass_scores_each_as_alone(models, [frame.iloc[TRAIN - 200 :] for frame in frames], start=200)


def detector_frames() -> dict[str, pd.DataFrame]:
    requests = requests_per_minute(20)
    return {
        "geometric_mean": thin_slice_latencies(slower=1)[0],
        "rate": rate_frame(
            requests, np.random.default_rng(5).binomial(requests.astype(int), 0.01).astype(float)
        ),
        "percentile": latency_frame(requests),
        "size": bytes_frame(requests),
        "count": pd.DataFrame({"cdn_requests": requests}, index=grid(len(requests))),
        "profile": metric_frame(),
        "constant": pd.DataFrame({"flag": np.ones(len(requests))}, index=grid(len(requests))),
    }


# -- the budget ------------------------------------------------------------------------------------


def test_a_budget_threshold_extrapolates_the_tail_of_the_training_scores() -> None:
    # Exponential scores: P(score > s) = exp(-s), in minutes spread over 14 days, events one minute long.
    scores = np.random.default_rng(6).exponential(1.0, 14 * DAY)
    loose = false_alarm_budget_threshold(scores, incidents_per_30_days=30)
    tight = false_alarm_budget_threshold(scores, incidents_per_30_days=0.03)
    # Events of a day's 1440 minutes: 30 a month is one a day, about exp(-s) * 1440 / (mean run) = 1.
    assert loose == pytest.approx(np.log(1440), abs=1.0)
    # A thousandth of the budget is log(1000) further out, beyond every training score.
    assert tight - loose == pytest.approx(np.log(1000), abs=1.0)
    assert tight > scores.max()


def test_too_few_training_events_fall_back() -> None:
    scores = np.zeros(DAY)
    scores[100] = 3.0
    assert false_alarm_budget_threshold(scores, model_threshold=5.6) == 5.6
    assert false_alarm_budget_threshold(scores) == 3.0


def test_a_deployment_budget_is_shared_by_its_series() -> None:
    assert series_budget(264) == 0.1
    assert series_budget(1200) == pytest.approx(0.025, rel=1e-12)
    assert series_budget(600, incidents_per_day=4.0) == 0.1
    with pytest.raises(ValueError, match="positive number of false incidents a day, got 0"):
        series_budget(600, incidents_per_day=0)


@pytest.mark.parametrize("budget", [0, -1, "often", True])
def test_a_budget_must_be_a_positive_number(budget: object) -> None:
    frame = pd.DataFrame({"cdn_requests": requests_per_minute(10)}, index=grid(8 * DAY))
    with pytest.raises(DetectorError, match="false-alarm budget must be a positive number"):
        make_detector("count", threshold_params={"incidents_per_30_days": budget}).fit(frame)


# -- percentiles judged over minutes, bytes per request, daily profiles ------------------------------


def bytes_frame(requests: np.ndarray, seed: int = 8) -> pd.DataFrame:
    """Bytes of ``requests`` responses a minute: segments of about 1 MB, sizes scattering by 30%."""
    rng = np.random.default_rng(seed)
    sizes = rng.normal(1e6 * requests, 3e5 * np.sqrt(np.maximum(requests, 1)))
    return pd.DataFrame(
        {"cdn_bytes": np.maximum(sizes, 0) * (requests > 0), "cdn_requests": requests},
        index=grid(len(requests)),
    )


def metric_frame(days: int = 8, seed: int = 9) -> pd.DataFrame:
    """A payments-like metric: a daily cycle from 100 to 300, noise of 5."""
    rows = np.arange(days * DAY)
    cycle = 200 + 100 * np.sin(2 * np.pi * (rows - 360) / DAY)
    values = cycle + np.random.default_rng(seed).normal(0, 5, rows.size)
    return pd.DataFrame({"paycore": values}, index=grid(rows.size))


def test_one_slow_minute_of_a_percentile_is_no_incident_and_ten_are() -> None:
    thin = latency_frame(np.random.default_rng(7).integers(5, 20, 8 * DAY).astype(float))
    blip = thin.copy()
    blip.iloc[TRAIN + 600, 0] *= 20
    assert not fitted("percentile", blip)[1]["is_anomaly"].any()
    lasting = thin.copy()
    lasting.iloc[OUTAGE, 0] *= 3
    flagged = np.flatnonzero(fitted("percentile", lasting)[1]["is_anomaly"].to_numpy())
    assert flagged.size >= 5 and 600 <= flagged.min() <= 605 and flagged.max() < 625


def test_a_count_measures_its_noise_on_days_its_profile_did_not_learn_from(monkeypatch) -> None:
    # Four weeks of the same Poisson traffic after the training week: the noise they show around the
    # trained expectation is what the model must expect, profile's error included.
    requests = requests_per_minute(300, days=35)
    frame = pd.DataFrame({"cdn_requests": requests}, index=grid(len(requests)))

    def noise_against_fresh_days() -> np.ndarray:
        model = make_detector("count").fit(frame.iloc[:TRAIN])
        expected = model.detect(frame.iloc[TRAIN - 180 :])["expected"].to_numpy()[180:]
        fresh = [
            [_dispersion(requests[TRAIN:], expected, window, shortfall) for window in COUNT_WINDOWS]
            for shortfall in (True, False)
        ]
        return model.overdispersion_ / np.array(fresh)

    assert (noise_against_fresh_days() > 0.4).all()
    # Measured on the days the profile was learned from, the quarter of an hour's and the hour's
    # noise come out at next to nothing.
    monkeypatch.setattr(CountDetector, "OUT_OF_SAMPLE_DAYS", 8)
    assert (noise_against_fresh_days()[:, 1:] < 0.1).all()


def test_a_training_range_of_part_days_measures_its_noise_where_other_days_saw_the_minute() -> None:
    # From noon on the first day to six on the third: the middle day alone saw its mornings, and its
    # expectation there is the whole profile's.
    requests = requests_per_minute(40)
    frame = pd.DataFrame({"cdn_requests": requests}, index=grid(len(requests))).iloc[720 : 2 * DAY + 360]
    assert make_detector("count").fit(frame).overdispersion_.max() < 0.01


def test_a_crawler_that_surges_most_days_does_not_hide_a_thin_edge_that_empties() -> None:
    # Two requests a minute; a crawler adds five a minute for 20 minutes on each training day; on the
    # scored day three quarters of the viewers' requests are lost for half an hour: 15 against 60.
    requests = requests_per_minute(2)
    rng = np.random.default_rng(5)
    for day in range(7):
        crawl = slice(day * DAY + 200 + 131 * day, day * DAY + 220 + 131 * day)
        requests[crawl] += rng.poisson(5.0, 20)
    drop = slice(TRAIN + 600, TRAIN + 630)
    requests[drop] = rng.binomial(requests[drop].astype(int), 0.25)
    detector, result = fitted("count", pd.DataFrame({"cdn_requests": requests}, index=grid(len(requests))))

    # The surges widen the noise of surplus fivefold and more, not that of a shortfall.
    shortfall, every = detector.overdispersion_[:, COUNT_WINDOWS.index(30)]
    assert every > 5 * shortfall
    flagged = np.flatnonzero(result["is_anomaly"].to_numpy())
    assert flagged.size >= 10 and 600 <= flagged.min() < 630 and flagged.max() < 630 + 15


def test_a_long_drop_on_a_thin_slice_shows_within_the_hour_and_a_short_one_does_not_linger() -> None:
    # Two requests a minute, three quarters of them lost for 40 minutes: 20 against 80.
    requests = requests_per_minute(2)
    frame = pd.DataFrame({"cdn_requests": requests}, index=grid(len(requests)))
    lost = frame.copy()
    drop = slice(TRAIN + 600, TRAIN + 640)
    lost.iloc[drop, 0] = np.random.default_rng(11).binomial(requests[drop].astype(int), 0.25)
    flagged = np.flatnonzero(fitted("count", lost)[1]["is_anomaly"].to_numpy())
    assert flagged.size and 600 <= flagged.min() < 640 and flagged.max() < 640 + 15


def test_larger_responses_are_news_and_fewer_requests_are_not() -> None:
    requests = requests_per_minute(20)
    frame = bytes_frame(requests)
    detector, normal = fitted("size", frame)
    assert detector.hour_means_ == pytest.approx(np.full(24, 1e6), rel=0.05)
    assert not normal["is_anomaly"].any()

    surge = frame.copy()
    surge.iloc[OUTAGE, 0] *= 3  # a bitrate ladder pushed by mistake
    flagged = np.flatnonzero(fitted("size", surge)[1]["is_anomaly"].to_numpy())
    # Judged over five minutes and more, the surge shows within its first five; a later minute that
    # happens to be large carries the window on, a window at most.
    assert set(range(604, 610)) <= set(flagged) and flagged.min() >= 600 and flagged.max() < 625

    fewer = requests.copy()
    fewer[OUTAGE] = np.round(fewer[OUTAGE] * 0.1)  # a traffic drop: the count detector's to judge
    assert not fitted("size", bytes_frame(fewer))[1]["is_anomaly"].any()


def thin_slice_bytes(days: int, seed: int = 0) -> pd.DataFrame:
    """Bytes of an edge of half a request a minute around a daily cycle: posters, assets, video
    segments and live chunks, each kind of its own size scattering lognormally, so that a response is
    60 kB or 2 MB as its kind comes."""
    rng = np.random.default_rng(seed)
    requests = requests_per_minute(0.5, days, seed)
    kinds = rng.choice(4, int(requests.sum()), p=[0.4, 0.2, 0.3, 0.1])
    sizes = np.array([6e4, 1.5e5, 9e5, 4e5])[kinds] * rng.lognormal(0, 0.5, kinds.size)
    minutes = np.repeat(np.arange(requests.size), requests.astype(int))
    return pd.DataFrame(
        {"cdn_bytes": np.bincount(minutes, sizes, minlength=requests.size), "cdn_requests": requests},
        index=grid(requests.size),
    )


def test_a_thin_slices_few_large_responses_are_judged_by_how_skewed_its_sizes_are() -> None:
    # An edge that had a series of its own on one training day only (a day's 64 busiest edges get one):
    # too few minutes for a threshold fitted to the tail of its scores, so its model's own tail decides.
    # Under a normal tail, two large segments in a row were a one-in-a-billion minute: three events in
    # fourteen ordinary days.
    frame = thin_slice_bytes(days=15)
    later = DAY + 3 * DAY + 720
    frame.iloc[later : later + 60, 0] *= 6  # a bitrate ladder pushed by mistake, for an hour
    detector = make_detector("size").fit(frame.iloc[:DAY])
    flagged = np.flatnonzero(detector.detect(frame.iloc[DAY:])["is_anomaly"].to_numpy())

    assert detector.hour_skewness_.min() > 0.5
    assert flagged.size >= 3 and flagged.min() >= 3 * DAY + 720 and flagged.max() < 3 * DAY + 795


def test_one_download_that_dwarfs_a_weeks_responses_is_not_taken_for_their_skewness() -> None:
    requests = requests_per_minute(20)
    frame = bytes_frame(requests)
    frame.iloc[3 * DAY + 630, 0] += 5e7  # 50 MB among segments of 1 MB, at 10:30 on a training day
    frame.iloc[OUTAGE, 0] *= 3

    detector, result = fitted("size", frame)

    # Its third moment alone made a skewness of 62 for the hour.
    assert detector.hour_skewness_[10] == MAX_SKEWNESS and detector.hour_skewness_[9] < 1
    assert set(range(604, 610)) <= set(np.flatnonzero(result["is_anomaly"].to_numpy()))


def test_the_geometric_mean_learns_no_skewness_and_saves_none(tmp_path) -> None:
    detector, _ = fitted("geometric_mean", detector_frames()["geometric_mean"])

    assert "hour_skewness_" not in vars(detector)
    saved = json.loads((detector.save(tmp_path / "gm") / STATE_FILE).read_text())
    assert "hour_skewness_" not in saved["arrays"]


def test_a_size_model_saved_before_it_learned_the_skewness_judges_by_the_normal_tail(tmp_path) -> None:
    frame = thin_slice_bytes(days=2)
    folder = make_detector("size").fit(frame.iloc[:DAY]).save(tmp_path / "size")
    state = json.loads((folder / STATE_FILE).read_text())
    state["arrays"].remove("hour_skewness_")
    (folder / STATE_FILE).write_text(json.dumps(state))
    with np.load(folder / ARRAYS_FILE) as stored:
        np.savez(folder / ARRAYS_FILE, **{name: stored[name] for name in state["arrays"]})
    normal = make_detector("size").fit(frame.iloc[:DAY])
    normal.hour_skewness_ = np.zeros(24)

    old = load_detector(folder)

    assert "hour_skewness_" not in vars(old)
    pd.testing.assert_frame_equal(old.detect(frame.iloc[DAY:]), normal.detect(frame.iloc[DAY:]))


def test_a_daily_profile_follows_the_cycle_and_flags_a_shift_either_way() -> None:
    frame = metric_frame()
    detector, normal = fitted("profile", frame)
    assert not normal["is_anomaly"].any()
    # The profile is the cycle: at 06:00 (minute 360) it is at 200 and rising, at 12:00 at its top.
    assert detector.profile_[360] == pytest.approx(200, abs=3)
    assert detector.profile_[720] == pytest.approx(300, abs=3)
    for factor in (0.75, 1.25):
        shifted = frame.copy()
        shifted.iloc[TRAIN + 300 : TRAIN + 340, 0] *= factor  # 05:00 to 05:40, on the rising slope
        flagged = np.flatnonzero(fitted("profile", shifted)[1]["is_anomaly"].to_numpy())
        assert flagged.size and 300 <= flagged.min() <= 303 and flagged.max() < 360


def test_a_shift_past_every_departure_of_training_lasts_as_long_as_it_does() -> None:
    frame = metric_frame()
    shifted = frame.copy()
    shifted.iloc[TRAIN + 600 : TRAIN + 780, 0] += 100.0  # three hours, twenty times the noise
    detector, result = fitted("profile", shifted)
    flagged = np.flatnonzero(result["is_anomaly"].to_numpy())
    # Training's departures lie within about ±12 of the profile; the offset follows to twice that span.
    low, high = detector.departure_range_
    assert -40 < low < -30 and 30 < high < 40
    assert flagged.min() == 600 and set(range(600, 780)) <= set(flagged) and flagged.max() < 780 + 15
    # An offset that takes in every row, as models saved before the range: the shift is taken in
    # within its first twenty minutes, and its end is a shift back.
    detector.departure_range_ = (-np.inf, np.inf)
    taken_in = np.flatnonzero(detector.detect(shifted.iloc[TRAIN:])["is_anomaly"].to_numpy())
    assert taken_in.min() == 600 and taken_in[taken_in < 780].max() < 625 and (taken_in >= 780).sum() >= 10


def test_a_metric_that_stops_moving_is_stalled() -> None:
    frame = metric_frame()
    frame.iloc[TRAIN + 600 : TRAIN + 620, 0] = frame.iloc[TRAIN + 599, 0]  # the exporter froze
    detector, result = fitted("profile", frame)
    assert detector.repeat_share_ < 1e-3
    flagged = np.flatnonzero(result["is_anomaly"].to_numpy())
    assert flagged.size and 600 <= flagged.min() <= 603 and flagged.max() < 625


def test_a_daily_profile_needs_two_days() -> None:
    with pytest.raises(DetectorError, match="at least 2 training days"):
        make_detector("profile").fit(metric_frame().iloc[:DAY])


# -- training its own incidents away, and a threshold that incidents do not stretch -------------------


def test_an_incident_in_the_training_week_does_not_become_the_normal_rate() -> None:
    requests = requests_per_minute(30)
    errors = np.random.default_rng(10).binomial(requests.astype(int), 0.001).astype(float)
    # A 10-minute outage on the third training day, then the same on the scored day.
    for start in (2 * DAY + 600, TRAIN + 600):
        errors[start : start + 10] = np.round(requests[start : start + 10] * 0.35)
    detector, result = fitted("rate", rate_frame(requests, errors))
    assert detector.rate_ == pytest.approx(0.001, rel=0.3)
    flagged = np.flatnonzero(result["is_anomaly"].to_numpy())
    assert set(range(600, 610)) <= set(flagged) and flagged.min() == 600 and flagged.max() < 625


def test_a_thin_slices_training_burst_leaves_its_rate_at_0_and_a_burst_like_it_is_news() -> None:
    # Five requests a minute and no 5xx but in a burst on the fourth training day: a tenth of the
    # requests for 20 minutes, so that half of its minutes have no error and the rest one or two.
    requests = requests_per_minute(5)
    errors = np.zeros_like(requests)
    rng = np.random.default_rng(16)
    for start in (3 * DAY + 660, TRAIN + 660):
        errors[start : start + 20] = rng.binomial(requests[start : start + 20].astype(int), 0.1)
    # And two errors in one minute of the second day: a blip, not a rate that wanders.
    errors[DAY + 300] = 2.0
    detector, result = fitted("rate", rate_frame(requests, errors))
    assert detector.rate_ < 2e-5 and detector.overdispersion_ == 0.0
    flagged = np.flatnonzero(result["is_anomaly"].to_numpy())
    assert flagged.size and 660 <= flagged.min() < 670 and flagged.max() < 680 + 15


@pytest.mark.parametrize("training_days", [(0, 1, 2, 4, 5), (1, 4, 5)])
def test_bursts_stay_out_of_the_rate_it_learns_even_on_most_training_days(
    training_days: tuple[int, ...],
) -> None:
    # 30 requests a minute and no 5xx but in two-minute hiccups, a quarter of the requests failing, on
    # five of the seven training days (the origin's habit, which training learns above the model:
    # ``models.families``) or on three (the week's incidents); then one like them on the scored day.
    requests = requests_per_minute(30)
    errors = np.zeros_like(requests)
    for start in [day * DAY + 300 + 97 * day for day in training_days] + [TRAIN + 800]:
        errors[start : start + 2] = np.round(requests[start : start + 2] * 0.25)
    detector, result = fitted("rate", rate_frame(requests, errors))
    assert detector.rate_ < 2e-5 and detector.overdispersion_ == 0.0
    assert np.flatnonzero(result["is_anomaly"].to_numpy()).tolist() == [800, 801]


def test_a_model_that_knows_its_probabilities_is_the_floor_of_the_fitted_threshold() -> None:
    scores = np.random.default_rng(6).exponential(1.0, 14 * DAY)
    fitted = false_alarm_budget_threshold(scores)
    assert false_alarm_budget_threshold(scores, model_threshold=fitted + 2) == fitted + 2
    assert false_alarm_budget_threshold(scores, model_threshold=fitted - 2) == fitted


def test_a_few_incident_peaks_in_training_do_not_stretch_the_budget_threshold() -> None:
    scores = np.random.default_rng(6).exponential(1.0, 14 * DAY)
    clean = false_alarm_budget_threshold(scores)
    with_incidents = scores.copy()
    with_incidents[np.arange(10) * DAY + 700] = 60.0  # ten training incidents far out
    assert false_alarm_budget_threshold(with_incidents) == pytest.approx(clean, rel=0.1)


@pytest.mark.parametrize(
    "name", ["rate", "percentile", "geometric_mean", "size", "count", "profile", "rolling_mad"]
)
def test_the_threshold_is_fitted_on_training_scores_only(name: str) -> None:
    requests = requests_per_minute(20)
    frames = {
        "geometric_mean": thin_slice_latencies(slower=1)[0],
        "rate": rate_frame(requests, np.random.default_rng(5).binomial(requests.astype(int), 0.01) * 1.0),
        "percentile": latency_frame(requests),
        "size": bytes_frame(requests),
        "count": pd.DataFrame({"cdn_requests": requests}, index=grid(len(requests))),
        "profile": metric_frame(),
        "rolling_mad": metric_frame(),
    }
    frame = frames[name]
    changed = frame.copy()
    changed.iloc[TRAIN + 600 : TRAIN + 700, 0] *= 4
    # Fitted on the same training rows, one beside the calm scored day and one beside the wild one.
    calm_model = make_detector(name).fit(frame.iloc[:TRAIN])
    wild_model = make_detector(name).fit(changed.iloc[:TRAIN])
    calm, wild = calm_model.detect(frame.iloc[TRAIN:]), wild_model.detect(changed.iloc[TRAIN:])
    assert wild_model.threshold_ == pytest.approx(calm_model.threshold_, rel=1e-12)
    # The day's flags come from that threshold, not from one recomputed on the day's own scores.
    assert (wild["is_anomaly"] == (wild["score"] >= calm_model.threshold_)).all()
    assert wild["is_anomaly"].sum() > calm["is_anomaly"].sum()


def test_a_crawlers_surge_on_a_thin_edge_does_not_echo_in_the_hour_after_it() -> None:
    # One request a minute; a crawler adds five a minute for 20 minutes; eleven minutes after it
    # left, minutes of two and four requests, as minutes of a thin edge are. The half hour and the
    # hour still hold the crawler's requests (they scored that minute 17 times its threshold): they
    # judge shortfalls only.
    requests = requests_per_minute(1)
    surge = slice(TRAIN + 600, TRAIN + 620)
    requests[surge] += np.random.default_rng(6).poisson(5.0, 20)
    requests[TRAIN + 620 : TRAIN + 640] = 1.0
    requests[TRAIN + 631 : TRAIN + 633] = (2.0, 4.0)
    result = fitted("count", pd.DataFrame({"cdn_requests": requests}, index=grid(len(requests))))[1]
    flagged = np.flatnonzero(result["is_anomaly"].to_numpy())
    assert flagged.size >= 10 and 600 <= flagged.min() < 610 and flagged.max() < 620
