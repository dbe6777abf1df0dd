"""The exploration page and its statistics: correlations, chi-square tests, feature importance."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from passion_tasks.corpora.labels import store_label_windows
from passion_tasks.errors import UsageError
from passion_tasks.features.series import long_table, minute_grid
from passion_tasks.lake import Lake
from passion_tasks.reporting import analysis
from passion_tasks.reporting.explore import explore

START, END = dt.date(2026, 11, 20), dt.date(2026, 11, 21)
IMAGE_ALTS = ("Pearson correlation heatmap", "Histogram of each series", "One panel per series")


def test_correlations_with_the_target_strongest_first() -> None:
    x = np.arange(10.0)
    frame = pd.DataFrame(
        {
            "target": x,
            "double": 2 * x + 1,
            "opposite": -x,
            "constant": 1.0,
            "partial": np.where(x < 5, x**2, np.nan),
        }
    )

    found = analysis.correlations_with(frame, "target")

    assert [(c.column, round(c.r, 6), c.n) for c in found] == [
        ("double", 1.0, 10),
        ("opposite", -1.0, 10),
        ("partial", 0.958927, 5),  # 40 / sqrt(10 * 174) on x = 0..4 against x²
    ]
    assert found[0].p_value < 1e-10
    # Student's t with 3 degrees of freedom: t = r * sqrt(3 / (1 - r²)) = 5.855.
    assert found[2].p_value == pytest.approx(0.00993, abs=1e-5)


def test_anomalies_clustered_in_one_hour() -> None:
    index = pd.date_range("2026-11-20", periods=2 * 1440, freq="min", tz="UTC")
    anomalous = pd.Series(False, index=index)
    anomalous[index.hour == 3] = True  # every minute of 03:00-04:00, both days: 120 minutes

    test = analysis.anomalies_by_hour(anomalous)

    assert test is not None
    assert len(test.observed) == 24
    assert test.observed["03–04 h"] == 120
    assert test.expected["03–04 h"] == 5.0
    assert test.statistic == pytest.approx(2760.0)  # 23 hours of (0 - 5)^2/5 + (120 - 5)^2/5
    assert test.p_value < 1e-100


def test_few_anomalies_are_counted_in_longer_blocks_of_the_day() -> None:
    index = pd.date_range("2026-11-20", periods=1440, freq="min", tz="UTC")
    anomalous = pd.Series(False, index=index)
    anomalous.iloc[::60] = True  # one a hour: 24, so hours expect 1 and 6-hour blocks expect 6

    test = analysis.anomalies_by_hour(anomalous)

    assert test is not None
    assert list(test.observed.index) == ["00–06 h", "06–12 h", "12–18 h", "18–24 h"]
    assert test.statistic == 0.0
    assert analysis.anomalies_by_hour(anomalous.where(index.hour < 1)) is None  # one anomaly, one hour seen


def test_anomalies_by_series_weighs_the_observed_minutes() -> None:
    flags = pd.DataFrame(
        {"a": [True] * 10 + [False] * 10, "b": [False] * 20, "c": [pd.NA] * 20}, dtype="boolean"
    )

    test = analysis.anomalies_by_series(flags)

    assert test is not None
    assert test.observed.to_dict() == {"a": 10.0, "b": 0.0}
    assert test.expected.to_dict() == {"a": 5.0, "b": 5.0}
    assert test.statistic == 10.0


def frame_with_a_driver(rows: int = 1500) -> tuple[pd.DataFrame, pd.Series]:
    """``target`` spikes whenever ``driver`` does, ``noise`` never matters, ``flat`` never moves."""
    rng = np.random.default_rng(0)
    index = pd.date_range("2026-11-20", periods=rows, freq="min", tz="UTC")
    driver = rng.normal(0, 1, rows)
    spikes = np.zeros(rows, dtype=int)
    spikes[np.arange(100, rows, 97)] = 1
    driver[spikes == 1] += 12
    target = rng.normal(0, 1, rows) + 12 * spikes
    frame = pd.DataFrame(
        {"target": target, "driver": driver, "noise": rng.normal(0, 1, rows), "flat": 1.0}, index=index
    )
    return frame, pd.Series(spikes, index=index)


def test_xgboost_importance_finds_the_driver() -> None:
    frame, labels = frame_with_a_driver()

    importance = analysis.feature_importance(frame, labels)

    assert importance.method == "XGBoost gain"
    assert importance.by_input.sum() == pytest.approx(1.0)
    assert importance.by_input.index[0] in ("target", "driver")
    assert importance.by_input[["target", "driver"]].sum() > 0.95
    assert importance.by_input["flat"] == 0.0
    assert "from 15 labelled window(s), 15 minutes" in importance.description


def test_without_labels_the_isolation_forest_ranks_the_inputs() -> None:
    frame, _ = frame_with_a_driver()

    importance = analysis.feature_importance(frame, None)

    assert importance.method == "Isolation forest permutation importance"
    # Shuffling a column that never moves cannot change the forest's scores.
    assert importance.by_input["flat"] == 0.0
    assert importance.by_input[["target", "driver", "noise"]].min() > 0.001
    assert importance.features.empty


def test_inputs_missing_most_of_the_time_are_left_out() -> None:
    frame, labels = frame_with_a_driver()
    frame["sparse"] = np.where(np.arange(len(frame)) % 3 == 0, 1.0, np.nan)

    importance = analysis.feature_importance(frame, labels)

    assert importance.left_out == ("sparse",)
    assert "sparse" not in importance.by_input


# -- the page ----------------------------------------------------------------------------------


def write_features(lake: Lake) -> None:
    """Two days of cif and paycore with their previous-hour features; paycore halves 3 times."""
    grid = minute_grid(START, END)
    rng = np.random.default_rng(1)
    values = {
        "cif": 1000 + 100 * np.sin(np.arange(len(grid)) / 229) + rng.normal(0, 5, len(grid)),
        "paycore": 500 + rng.normal(0, 5, len(grid)),
    }
    for first in (300, 1500, 2400):
        values["paycore"][first : first + 30] *= 0.5
    wide = pd.DataFrame(values, index=grid)
    hourly = {
        f"{name}_{how}": wide[name].resample("h").agg(how).reindex(grid, method="ffill")
        for name in values
        for how in ("max", "min")
    }
    wide = pd.concat([wide, pd.DataFrame(hourly)], axis=1)
    wide.columns = pd.MultiIndex.from_tuples(
        [(name, "", "") for name in wide.columns], names=["metric", "dim", "dim_value"]
    )
    table = long_table(wide)
    for day in (START, END):
        lake.write_partition(
            "features", day, table.filter(pd_day_mask(table, day)), key={"source": "metrics"}
        )


def pd_day_mask(table, day: dt.date) -> np.ndarray:
    days = table["ts"].to_pandas().dt.date.to_numpy()
    return days == day


def store_labels(lake: Lake, tmp_path: Path) -> None:
    windows = {
        "paycore": [
            ["2026-11-20 05:00:00.000000", "2026-11-20 05:29:00.000000"],
            ["2026-11-21 01:00:00.000000", "2026-11-21 01:29:00.000000"],
            ["2026-11-21 16:00:00.000000", "2026-11-21 16:29:00.000000"],
        ]
    }
    path = tmp_path / "combined_windows.json"
    path.write_text(json.dumps(windows))
    store_label_windows(lake, "test", path)


def page(lake: Lake, uri: str) -> str:
    assert uri == lake.uri("explore/2026-11-20_2026-11-21/index.html")
    return lake.read_bytes("explore/2026-11-20_2026-11-21/index.html").decode("utf-8")


def test_explore_page_with_labels_uses_xgboost(lake: Lake, tmp_path: Path) -> None:
    write_features(lake)
    store_labels(lake, tmp_path)

    html = page(lake, explore(lake, START, END))

    # No series given: the target is the one with labels.
    assert "Target series: <strong>paycore</strong>" in html
    for alt in IMAGE_ALTS:
        assert f'alt="{alt}' in html
    assert "<strong>XGBoost gain.</strong>" in html
    assert "from 3 labelled window(s), 90 minutes" in html
    assert '<tr><th>Previous-hour features</th><td class="num">4</td></tr>' in html
    assert "Do anomalous minutes cluster at some hours of the day (UTC)?" in html


def test_explore_page_without_labels_uses_the_isolation_forest(lake: Lake) -> None:
    write_features(lake)

    html = page(lake, explore(lake, START, END, ["cif"]))

    assert "Target series: <strong>cif</strong>" in html
    for alt in IMAGE_ALTS:
        assert f'alt="{alt}' in html
    assert "<strong>Isolation forest permutation importance.</strong>" in html
    assert '<tr><th>Series</th><td class="num">1</td></tr>' in html
    assert "cif_max" in html


def test_explore_refuses_series_without_data(lake: Lake) -> None:
    write_features(lake)

    with pytest.raises(UsageError, match=r"no values from 2026-11-20 to 2026-11-21 for nothing_here"):
        explore(lake, START, END, ["cif", "nothing_here"])
