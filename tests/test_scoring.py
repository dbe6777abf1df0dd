"""Scores rows from a fitted detector, and incidents grouped from them."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from passion_tasks.detectors import make_detector
from passion_tasks.lake import schemas
from passion_tasks.models.scoring import (
    SCORE_COLUMNS,
    ScoreSummary,
    as_utc,
    group_events,
    passes,
    score_frame,
    score_loaded,
)

T0 = pd.Timestamp("2026-11-21", tz="UTC")


def minute(n: int) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=n)


def two_days() -> pd.DataFrame:
    n = 2 * 1440
    values = 50 + 20 * np.sin(np.arange(n) / 200) + np.random.default_rng(3).normal(0, 1, n)
    values[1440 + 600] += 30
    index = pd.date_range(T0 - pd.Timedelta(days=1), periods=n, freq="min", tz="UTC")
    return pd.DataFrame({"requests": values}, index=index)


def test_score_frame_keeps_the_day_and_uses_earlier_rows_as_context() -> None:
    frame = two_days()
    detector = make_detector("rolling_mad").fit(frame.iloc[:1440])
    scores = score_frame(detector, frame, series="edge", model_version="v7", start="2026-11-21")

    assert list(scores.columns) == SCORE_COLUMNS
    assert set(schemas.SCORES.names) <= set(SCORE_COLUMNS)
    assert len(scores) == 1440
    assert scores["ts"].iloc[0] == T0
    assert scores["ts"].iloc[-1] == minute(1439)
    assert set(scores["series"]) == {"edge"}
    assert set(scores["detector"]) == {"rolling_mad"}
    assert set(scores["model_version"]) == {"v7"}
    assert (scores["threshold"] == detector.threshold_).all()
    assert np.array_equal(scores["value"].to_numpy(), frame["requests"].to_numpy()[1440:])
    # The day's first minute has the previous day's last hour as history, not an empty window.
    full = detector.detect(frame).iloc[1440:]
    assert np.array_equal(scores["score"].to_numpy(), full["score"].to_numpy())
    assert scores["expected"].notna().all()
    assert scores.loc[scores["is_anomaly"], "ts"].tolist() == [minute(600)]

    table = pa.Table.from_pandas(scores, schema=schemas.SCORES, preserve_index=False)
    assert table.num_rows == 1440
    assert table.column("is_anomaly").to_pylist().count(True) == 1


def test_models_that_share_a_pass_are_scored_as_each_alone_and_a_bad_one_fails_alone() -> None:
    base = two_days()
    frame = pd.DataFrame({name: base["requests"] * scale for name, scale in (("a", 1), ("b", 3), ("c", 7))})
    models = {name: make_detector("rolling_mad").fit(frame[[name]].iloc[:1440]) for name in "abc"}
    models["d"] = make_detector("rolling_mad", window=30).fit(frame[["a"]].iloc[:1440])
    del models["c"].threshold_  # a model that cannot score makes its pass fail
    # What scoring reads of a model's registry entry: the features it scores, and its reference.
    loaded = {
        name: (model, SimpleNamespace(features=(model.feature_names_in_[0],), ref=f"{name}/rolling_mad@v1"))
        for name, model in models.items()
    }
    assert passes(loaded) == [["a", "b", "c"], ["d"]]
    summary = ScoreSummary(day=T0.date())

    scored = score_loaded(loaded, frame, T0, summary)

    assert list(scored) == ["a", "b", "d"]
    assert list(summary.failed) == ["c"]
    assert "not fitted yet" in str(summary.failed["c"])
    for name in scored:
        model, version = loaded[name]
        alone = score_frame(model, frame[[version.features[0]]], series=name, model_version="x", start=T0)
        np.testing.assert_array_equal(scored[name]["score"], alone["score"].to_numpy())
        np.testing.assert_array_equal(scored[name]["expected"], alone["expected"].to_numpy())
        np.testing.assert_array_equal(scored[name]["value"], alone["value"].to_numpy())
        assert scored[name]["is_anomaly"].sum() == alone["is_anomaly"].sum() == 1
        assert scored[name]["ts"][0] == np.datetime64("2026-11-21T00:00")


def test_score_frame_without_start_scores_every_row() -> None:
    frame = two_days()
    detector = make_detector("rolling_mad").fit(frame.iloc[:1440])
    scores = score_frame(detector, frame.iloc[1400:1500], series="s", model_version="v")
    assert scores["ts"].tolist() == list(frame.index[1400:1500])


def test_as_utc() -> None:
    assert as_utc("2026-11-21") == T0
    assert as_utc(pd.Timestamp("2026-11-21 01:00", tz="Europe/Paris")) == T0
    assert as_utc(T0.date()) == T0


def scores_rows(
    series: str, anomalous: dict[int, float], *, detector: str = "rolling_mad", quiet: float = 0.5
) -> pd.DataFrame:
    """30 minutes of one series, anomalous at the given minutes with the given scores, ``quiet`` else."""
    return pd.DataFrame(
        {
            "ts": [minute(n) for n in range(30)],
            "series": series,
            "detector": detector,
            "model_version": "v1",
            "value": 1.0,
            "expected": 1.0,
            "score": [anomalous.get(n, quiet) for n in range(30)],
            "is_anomaly": [n in anomalous for n in range(30)],
        }
    )


def test_group_events_merges_small_gaps_and_splits_large_ones() -> None:
    scores = pd.concat(
        [
            # Minutes 2-4 and 8 are one incident (8 - 4 = 4 min apart); 20 is 12 min later: another.
            scores_rows("a", {2: 6.0, 3: 9.0, 4: 9.0, 8: 7.0, 20: 5.0}),
            scores_rows("b", {5: 4.0}),
        ]
    ).sample(frac=1, random_state=0)

    events = group_events(scores)

    assert list(events.columns) == schemas.EVENTS.names
    assert events.to_dict("records") == [
        {
            "start": minute(2),
            "end": minute(8),
            "series": "a",
            "detector": "rolling_mad",
            "peak_score": 9.0,
            "peak_ts": minute(3),
            "minutes": 7,
        },
        {
            "start": minute(5),
            "end": minute(5),
            "series": "b",
            "detector": "rolling_mad",
            "peak_score": 4.0,
            "peak_ts": minute(5),
            "minutes": 1,
        },
        {
            "start": minute(20),
            "end": minute(20),
            "series": "a",
            "detector": "rolling_mad",
            "peak_score": 5.0,
            "peak_ts": minute(20),
            "minutes": 1,
        },
    ]
    table = pa.Table.from_pandas(events, schema=schemas.EVENTS, preserve_index=False)
    assert table.column("minutes").to_pylist() == [7, 1, 1]


def test_group_events_gap_and_detectors_are_respected() -> None:
    scores = pd.concat(
        [
            scores_rows("a", {2: 6.0, 3: 9.0, 4: 9.0, 8: 7.0}),
            scores_rows("a", {3: 2.0}, detector="isolation_forest"),
        ]
    )
    events = group_events(scores, max_gap="3min")
    assert events[["start", "end", "detector", "minutes"]].values.tolist() == [
        [minute(2), minute(4), "rolling_mad", 3],
        [minute(3), minute(3), "isolation_forest", 1],
        [minute(8), minute(8), "rolling_mad", 1],
    ]


def test_group_events_joins_the_errors_of_a_rate_within_its_longest_window() -> None:
    # A 503 burst on a thin slice: an error every eight minutes, each minute anomalous alone, the
    # minutes between without error (scored 0). The rate's 15-minute window at minute 10 holds minute
    # 2's error, and minute 18's holds minute 10's; minute 29 is 11 minutes after minute 18 but its
    # window reads it too. The same minutes of a detector whose score reads one minute are four events.
    errors = {2: 7.0, 10: 14.0, 18: 10.0, 29: 8.0}
    rate = scores_rows("a", errors, detector="rate", quiet=0.0)
    scores = pd.concat([rate, scores_rows("a", errors, quiet=0.0)])
    events = group_events(scores)
    assert events[["start", "end", "detector", "minutes", "peak_score"]].values.tolist() == [
        [minute(2), minute(29), "rate", 28, 14.0],
        [minute(2), minute(2), "rolling_mad", 1, 7.0],
        [minute(10), minute(10), "rolling_mad", 1, 14.0],
        [minute(18), minute(18), "rolling_mad", 1, 10.0],
        [minute(29), minute(29), "rolling_mad", 1, 8.0],
    ]
    # 15 minutes apart, the later window no longer holds the earlier error.
    apart = group_events(scores_rows("a", {2: 7.0, 17: 9.0}, detector="rate", quiet=0.0))
    assert apart[["start", "minutes"]].values.tolist() == [[minute(2), 1], [minute(17), 1]]
    # A minute between them worse than expected but not anomalous: the rate was back to its noise (a
    # window that still held an incident gave minute 29 its score), and minute 29 is an event of its own.
    rate.loc[24, "score"] = 0.8
    assert group_events(rate)[["start", "end"]].values.tolist() == [
        [minute(2), minute(18)],
        [minute(29), minute(29)],
    ]


def test_group_events_joins_a_drop_of_requests_across_a_clump_of_them() -> None:
    # A thin edge that lost its viewers: its requests anomalous from minute 4 to 12, then a minute of
    # four requests and a few ordinary ones (scored 0), then anomalous again at 19 and 20. The
    # requests' 15-minute window reads both runs: one drop. Six minutes apart, a detector whose score
    # reads one minute sees two events.
    drop = {minute: 7.0 for minute in range(4, 13)} | {19: 11.0, 20: 9.0}
    requests = group_events(scores_rows("a", drop, detector="count", quiet=0.0))
    assert requests[["start", "end", "minutes", "peak_score"]].values.tolist() == [
        [minute(4), minute(20), 17, 11.0]
    ]
    alone = group_events(scores_rows("a", drop, quiet=0.0))
    assert alone[["start", "end"]].values.tolist() == [[minute(4), minute(12)], [minute(19), minute(20)]]


def test_group_events_counts_minutes_on_a_coarser_grid() -> None:
    every_fifth_minute = scores_rows("a", {}).iloc[::5]
    scores = every_fifth_minute.assign(is_anomaly=[False, True, True, False, False, False])
    events = group_events(scores)
    assert events[["start", "end", "minutes"]].values.tolist() == [[minute(5), minute(10), 10]]


@pytest.mark.parametrize("scores", [scores_rows("a", {}), scores_rows("a", {}).iloc[:0]])
def test_group_events_without_anomalies(scores: pd.DataFrame) -> None:
    events = group_events(scores)
    assert events.empty
    assert list(events.columns) == schemas.EVENTS.names
    assert str(events["start"].dtype) == "datetime64[ms, UTC]"
    assert str(events["minutes"].dtype) == "int32"
