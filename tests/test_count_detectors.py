"""Count-aware CDN detectors, the constant one, and thresholds set by a false-alarm budget."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from passion_tasks.detectors import DetectorError, load_detector, make_detector
from passion_tasks.detectors.thresholds import false_alarm_budget_threshold
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


def test_a_traffic_drop_is_flagged_against_the_time_of_day() -> None:
    requests = requests_per_minute(40)
    frame = pd.DataFrame({"cdn_requests": requests}, index=grid(len(requests)))
    _detector, normal = fitted("count", frame)
    assert not normal["is_anomaly"].any()

    dropped = frame.copy()
    dropped.iloc[OUTAGE, 0] = np.round(dropped.iloc[OUTAGE, 0] * 0.1)
    _, result = fitted("count", dropped)
    flagged = np.flatnonzero(result["is_anomaly"].to_numpy())
    assert flagged.min() == 600 and flagged.max() < 620


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
    assert nightly_candidates("cdn_requests{channel=ch7}", moving) == ("count",)
    assert nightly_candidates("cdn_bytes", moving) == ("rolling_mad",)
    assert nightly_candidates("paycore", moving) == ("rolling_mad", "seasonal_naive")
    assert nightly_candidates("paycore", flat) == ("constant",)


@pytest.mark.parametrize("name", ["rate", "percentile", "count", "constant"])
def test_saved_count_detectors_load_back_with_identical_scores(name: str, tmp_path) -> None:
    requests = requests_per_minute(20)
    frames = {
        "rate": rate_frame(
            requests, np.random.default_rng(5).binomial(requests.astype(int), 0.01).astype(float)
        ),
        "percentile": latency_frame(requests),
        "count": pd.DataFrame({"cdn_requests": requests}, index=grid(len(requests))),
        "constant": pd.DataFrame({"flag": np.ones(len(requests))}, index=grid(len(requests))),
    }
    detector, result = fitted(name, frames[name])
    loaded = load_detector(detector.save(tmp_path / name))
    pd.testing.assert_frame_equal(loaded.detect(frames[name].iloc[TRAIN:]), result)


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
    assert false_alarm_budget_threshold(scores, fallback=5.6) == 5.6
    assert false_alarm_budget_threshold(scores) == 3.0


@pytest.mark.parametrize("budget", [0, -1, "often", True])
def test_a_budget_must_be_a_positive_number(budget: object) -> None:
    frame = pd.DataFrame({"cdn_requests": requests_per_minute(10)}, index=grid(8 * DAY))
    with pytest.raises(DetectorError, match=r"false-alarm budget .* must be a positive number"):
        make_detector("count", threshold_params={"incidents_per_30_days": budget}).fit(frame)
