"""Per-series selection: candidates judged on a holdout, the winner registered with every figure."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from passion_tasks.detectors.thresholds import robust_spread
from passion_tasks.errors import PassionError, UsageError
from passion_tasks.evaluation import metrics
from passion_tasks.evaluation.selection import INJECTED, LABELLED, inject_anomalies, select_detector
from passion_tasks.lake import Lake, schemas
from passion_tasks.models import registry

START = dt.date(2026, 11, 1)
END = dt.date(2026, 11, 6)
SURGE = pd.Timestamp("2026-11-06 12:00", tz="UTC")
#: windowed_gaussian with a threshold no row reaches: the candidate that finds nothing.
BLIND = {"windowed_gaussian": {"threshold": 1e6}}
CANDIDATES = ["windowed_gaussian", "rolling_mad"]


@pytest.fixture
def featured(lake: Lake) -> Lake:
    """Six days of a noisy daily cycle for ``cif`` with a 10-minute surge (+40 sigma) on the last day."""
    index = pd.date_range(pd.Timestamp(START, tz="UTC"), periods=6 * 1440, freq="min")
    minutes = np.arange(len(index))
    values = (
        1000 + 300 * np.sin(2 * np.pi * minutes / 1440) + np.random.default_rng(3).normal(0, 10, len(index))
    )
    values[(index >= SURGE) & (index < SURGE + pd.Timedelta(minutes=10))] += 400
    frame = pd.DataFrame(
        {"ts": index, "series": "cif", "metric": "cif", "dim": "", "dim_value": "", "value": values}
    )
    for day, rows in frame.groupby(frame["ts"].dt.date):
        table = pa.Table.from_pandas(rows, schema=schemas.FEATURES, preserve_index=False)
        lake.write_partition("features", day, table, schema=schemas.FEATURES, key={"source": "metrics"})
    return lake


def label_surge(lake: Lake) -> None:
    windows = {"cif": [["2026-11-06 12:00:00.000000", "2026-11-06 12:09:00.000000"]]}
    lake.write_text("labels/ops/combined_windows.json", json.dumps(windows))


def test_labelled_holdout_picks_the_detector_that_finds_the_anomaly(featured: Lake) -> None:
    label_surge(featured)
    chosen = select_detector(featured, "cif", CANDIDATES, train_from=START, train_to=END, params=BLIND)
    assert chosen.criterion == LABELLED
    assert chosen.winner == "rolling_mad"
    assert chosen.holdout == (
        pd.Timestamp("2026-11-05", tz="UTC"),
        pd.Timestamp("2026-11-06 23:59", tz="UTC"),
    )
    figures = {candidate.detector: candidate.figures for candidate in chosen.candidates}
    # rolling_mad flags the surge's first minute and nothing else: NAB's perfect score.
    assert figures["rolling_mad"]["nab_standard"] == 100.0
    assert figures["rolling_mad"]["detected_segments"] == 1
    assert figures["rolling_mad"]["false_alarm_rate"] == 0.0
    assert figures["windowed_gaussian"]["nab_standard"] == 0.0
    assert figures["windowed_gaussian"]["detected_segments"] == 0

    assert chosen.model.ref == "cif/rolling_mad@v1"
    assert (chosen.model.train_start, chosen.model.train_end) == (START, END)
    assert chosen.model.metrics["training_rows"] == 6 * 1440
    recorded = chosen.model.metrics["selection"]
    assert recorded["criterion"] == LABELLED
    assert recorded["candidates"]["rolling_mad"]["nab_standard"] == 100.0
    # Undefined figures (no detection, so no precision) are null in the manifest.
    assert recorded["candidates"]["windowed_gaussian"]["precision"] is None
    assert chosen.promotion is not None
    assert registry.live(featured, "cif", on=END + dt.timedelta(days=1)).ref == "cif/rolling_mad@v1"
    assert registry.live(featured, "cif", on=END) is None
    assert "rolling_mad selected by the labelled criterion" in chosen.summary()


def test_without_labels_candidates_are_judged_on_planted_anomalies(featured: Lake) -> None:
    chosen = select_detector(
        featured, "cif", [*CANDIDATES, "profile"], train_from=START, train_to=END, params=BLIND, promote=False
    )
    assert chosen.criterion == INJECTED
    figures = {candidate.detector: candidate.figures for candidate in chosen.candidates}
    # A spike, a level shift and a stall on each of the two holdout days: a rolling median follows a
    # metric that stopped moving, the daily profile does not.
    assert figures["rolling_mad"]["segments"] == 6
    assert figures["rolling_mad"]["detected_segments"] == 4
    assert figures["profile"]["detected_segments"] == 6
    assert figures["windowed_gaussian"]["detected_segments"] == 0
    assert chosen.winner == "profile"
    assert figures["rolling_mad"]["nab_standard"] > figures["windowed_gaussian"]["nab_standard"] == 0.0
    assert chosen.promotion is None
    assert registry.live(featured, "cif", on=END + dt.timedelta(days=1)) is None
    assert chosen.model.metrics["selection"]["criterion"] == INJECTED
    assert "stall (30 rows)" in chosen.model.metrics["selection"]["explanation"]


def test_planted_anomalies_are_sized_by_the_training_noise() -> None:
    index = pd.date_range("2026-01-01", periods=4 * 150, freq="min", tz="UTC")
    values = np.random.default_rng(0).normal(50, 2, len(index))
    # Inside the first holdout day's slot for a level shift, leaving no 30 rows clear of it.
    values[360:380] = np.nan
    frame = pd.DataFrame({"x": values}, index=index)
    injected, labels = inject_anomalies(frame, train_rows=300, holdout_days=2)
    sigma = robust_spread(np.diff(values[:300]))
    planted = injected["x"].to_numpy()
    kinds = []
    for first, last in metrics.label_runs(labels):
        change = np.round((planted - values)[first : last + 1] / sigma, 9)
        if (change == 8.0).all() and last - first + 1 == 5:
            kinds.append("spike")
        elif (change == -6.0).all() and last - first + 1 == 30:
            kinds.append("level_shift")
        elif (planted[first : last + 1] == values[first - 1]).all() and last - first + 1 == 30:
            kinds.append("stall")
    # Per day: a 5-row spike of +8 sigma, a 30-row level shift of -6 sigma and a 30-row stall holding
    # the row before it, each in its third of the day; the first day's shift has no place clear of the gap.
    assert kinds == ["spike", "stall", "spike", "level_shift", "stall"]
    assert labels[:300].sum() == 0
    assert np.isnan(injected["x"].iloc[360:380]).all()
    assert (planted[~labels & ~np.isnan(values)] == values[~labels & ~np.isnan(values)]).all()
    again, _ = inject_anomalies(frame, train_rows=300, holdout_days=2)
    pd.testing.assert_frame_equal(again, injected)


def test_a_failing_candidate_loses_and_says_why(featured: Lake) -> None:
    chosen = select_detector(
        featured,
        "cif",
        ["seasonal_naive", "rolling_mad"],
        train_from=START,
        train_to=END,
        params={"seasonal_naive": {"season": "7D"}},
        promote=False,
    )
    assert chosen.winner == "rolling_mad"
    failed = chosen.candidates[-1]
    assert failed.detector == "seasonal_naive"
    assert "season '7D'" in failed.error
    assert chosen.model.metrics["selection"]["candidates"]["seasonal_naive"] == {"error": failed.error}


def test_selection_refuses_what_it_cannot_do(featured: Lake) -> None:
    with pytest.raises(UsageError, match="holdout_days=6"):
        select_detector(featured, "cif", ["rolling_mad"], train_from=START, train_to=END, holdout_days=6)
    with pytest.raises(PassionError, match=r"no candidate could be evaluated: rolling_mad: .*window=5000"):
        select_detector(
            featured,
            "cif",
            ["rolling_mad"],
            train_from=START,
            train_to=END,
            params={"rolling_mad": {"window": 5000}},
        )
    assert registry.list_models(featured) == []
