"""The benchmark runner on real labelled data, its metrics and its leaderboard files."""

from __future__ import annotations

import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from passion_tasks.detectors.baselines import RollingMadDetector
from passion_tasks.detectors.calibration import online_surprise
from passion_tasks.detectors.windows import FALLBACK_PERIOD, period_length
from passion_tasks.errors import UsageError
from passion_tasks.evaluation import benchmark, leaderboard, metrics, vus
from passion_tasks.evaluation.benchmark import BenchmarkSeries, Progress, detector_frame, run_benchmark
from passion_tasks.evaluation.nab import score_results_dir
from passion_tasks.evaluation.nab_corpus import DataFile, NabCorpus, read_profiles

#: Three NAB files: a regular one with windows, a synthetic one, and realTraffic's irregular
#: timestamps (laid out by row). Rows and probationary periods: min(floor(0.15 N), 750).
NAB_FILES = {
    "realKnownCause/nyc_taxi.csv": (10320, 750),
    "artificialWithAnomaly/art_daily_jumpsup.csv": (4032, 604),
    "realTraffic/occupancy_6005.csv": (2380, 357),
}
DETECTORS = ["rolling_mad", "windowed_gaussian"]
NAB_SUPPORT = ["labels/combined_windows.json", "config/profiles.json", "results/final_results.json"]


@pytest.fixture(scope="module")
def nab_root(reference_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A NAB checkout holding only ``NAB_FILES``, with NAB's labels, profiles and scoreboard."""
    root = tmp_path_factory.mktemp("reference") / "nab"
    source = reference_data / "nab"
    for name in [*(f"data/{file}" for file in NAB_FILES), *NAB_SUPPORT]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / name, root / name)
    return root


@pytest.fixture(scope="module")
def nab_run(nab_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[benchmark.Leaderboard, Path]:
    out = tmp_path_factory.mktemp("bench")
    return run_benchmark("nab", DETECTORS, out=out, reference_root=nab_root, progress=False), out


# -- the runner on NAB ---------------------------------------------------------------------------


def test_nab_results_rescore_to_exactly_the_leaderboards_numbers(nab_run, nab_root: Path) -> None:
    board, out = nab_run
    assert sorted(board.detectors["detector"]) == sorted(DETECTORS)
    for row in board.detectors.itertuples(index=False):
        rescored = score_results_dir(out / "results" / row.detector, nab_root)
        assert rescored == {
            "standard": row.nab_standard,
            "reward_low_FP_rate": row.nab_reward_low_FP_rate,
            "reward_low_FN_rate": row.nab_reward_low_FN_rate,
        }
        assert row.series == 3
        assert row.failed_series == 0


def test_nab_results_follow_nabs_layout(nab_run, reference_data: Path) -> None:
    _, out = nab_run
    written = out / "results" / "rolling_mad" / "realKnownCause" / "rolling_mad_nyc_taxi.csv"
    rows = pd.read_csv(written)
    source = pd.read_csv(reference_data / "nab" / "data" / "realKnownCause" / "nyc_taxi.csv")
    assert list(rows.columns) == ["timestamp", "value", "anomaly_score", "label"]
    assert rows["timestamp"].tolist() == source["timestamp"].tolist()
    assert rows["value"].tolist() == source["value"].tolist()
    # nyc_taxi's 5 windows: int(0.10 * 10320 / 5) = 206 rows around each anomaly, both ends included.
    assert rows["label"].sum() == 5 * 207
    # The scores are s / (1 + s) of the calibrated scores of rolling_mad fitted on the 750 probationary
    # rows: the surprise of each under the raw scores before it.
    frame = pd.DataFrame(
        {"value": source["value"].to_numpy()},
        index=pd.DatetimeIndex(pd.to_datetime(source["timestamp"]), name="ts").tz_localize("UTC"),
    )
    raw = RollingMadDetector().fit(frame.iloc[:750]).decision_function(frame).to_numpy()
    calibrated = online_surprise(raw, 750)
    assert rows["anomaly_score"].to_numpy().tolist() == (calibrated / (1 + calibrated)).tolist()
    assert rows["anomaly_score"].between(0, 1, inclusive="left").all()


def test_leaderboard_files_hold_the_same_figures(nab_run) -> None:
    board, out = nab_run
    assert sorted(path.name for path in out.iterdir()) == [
        "leaderboard.html",
        "leaderboard.json",
        "leaderboard.parquet",
        "results",
        "series.parquet",
    ]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "leaderboard.parquet"), board.detectors)
    document = json.loads((out / "leaderboard.json").read_text())
    assert [row["nab_standard"] for row in document["detectors"]] == board.detectors["nab_standard"].tolist()
    assert len(document["series"]) == 2 * 3
    # The keys scripts read (issue 14's contract).
    contract = {"vus_pr", "vus_roc", "f1_pointwise", "f1_event"} | {
        f"nab_{profile}_2fold" for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
    }
    assert all(contract <= set(row) for row in document["detectors"])
    assert all(math.isfinite(row[key]) for row in document["detectors"] for key in contract)
    published = {row["detector"]: row["standard"] for row in document["published"]}
    assert published["numenta"] == pytest.approx(70.10, abs=0.005)
    assert published["null"] == 0.0
    assert published["perfect"] == 100.0
    # TSB-AD's univariate leaders beside a NAB run, each with Passion's figure where it ran the method.
    tsb_ad = {row["method"]: row for row in document["published_tsb_ad"]}
    assert list(tsb_ad) == ["Sub-PCA", "KShapeAD", "POLY", "Series2Graph", "KMeansAD"]
    assert tsb_ad["Sub-PCA"]["published_vus_pr"] == 0.42 and tsb_ad["Sub-PCA"]["passion_vus_pr"] is None
    page = (out / "leaderboard.html").read_text()
    assert "TSB-AD's published VUS-PR" in page
    assert page.count("data:image/png;base64,") == 3
    assert "ARTime" in page and "windowed_gaussian" in page
    # The detectors and the per-series tables sort by any column.
    assert page.count('<table class="sortable">') == 2 and "table.sortable" in page


def test_leaderboard_rows_sum_the_series(nab_run) -> None:
    board, _ = nab_run
    series = board.series[board.series["detector"] == "rolling_mad"].set_index("series")
    assert series["test_rows"].to_dict() == {name: rows - train for name, (rows, train) in NAB_FILES.items()}
    # Windows per file in combined_windows.json.
    assert series["segments"].to_dict() == {
        "realKnownCause/nyc_taxi.csv": 5,
        "artificialWithAnomaly/art_daily_jumpsup.csv": 1,
        "realTraffic/occupancy_6005.csv": 1,
    }
    row = board.detectors.set_index("detector").loc["rolling_mad"]
    assert row["fit_seconds"] == pytest.approx(series["fit_seconds"].sum())
    assert series["error"].isna().all()
    # Threshold-free areas are each series' mean. nyc_taxi's autocorrelation is highest at a week of half
    # hours (336, 0.887; a day, 48, has 0.799): beyond TSB-AD's 300, so its window is TSB-AD's 125.
    assert series.loc["realKnownCause/nyc_taxi.csv", "vus_window"] == 125
    for area in ("vus_pr", "vus_roc", "auc"):
        assert row[area] == pytest.approx(series[area].mean(), abs=1e-12)
        assert series[area].between(0, 1).all()
    # Point-wise F1 never credits more than the point-adjusted one, which counts whole segments found.
    assert (series["f1_pointwise"].fillna(0) <= series["pa_f1"].fillna(0) + 1e-12).all()


def test_training_sees_only_the_probationary_rows(nab_root: Path, tmp_path: Path, monkeypatch) -> None:
    seen = []
    fit = RollingMadDetector.fit

    def spy(self, frame, labels=None):
        seen.append((len(frame), frame.index[-1]))
        return fit(self, frame, labels)

    monkeypatch.setattr(RollingMadDetector, "fit", spy)
    run_benchmark("nab", ["rolling_mad"], out=tmp_path, reference_root=nab_root, progress=False)

    def stamp(name: str, row: int) -> pd.Timestamp:
        return pd.Timestamp(pd.read_csv(nab_root / "data" / name)["timestamp"].iloc[row], tz="UTC")

    # Each fit ends on the last probationary row; occupancy_6005's irregular rows are laid out 5
    # minutes apart (its most common interval) from its first timestamp.
    assert sorted(seen) == [
        (357, stamp("realTraffic/occupancy_6005.csv", 0) + 356 * pd.Timedelta(minutes=5)),
        (604, stamp("artificialWithAnomaly/art_daily_jumpsup.csv", 603)),
        (750, stamp("realKnownCause/nyc_taxi.csv", 749)),
    ]


def test_a_detector_failing_everywhere_scores_like_nabs_null_detector(nab_root: Path, tmp_path: Path) -> None:
    board = run_benchmark(
        "nab",
        ["rolling_mad"],
        out=tmp_path,
        reference_root=nab_root,
        params={"rolling_mad": {"window": 5000}},
        progress=False,
    )
    row = board.detectors.iloc[0]
    assert row["failed_series"] == 3
    assert row["nab_standard"] == 0.0
    assert board.series["error"].str.contains("window=5000 needs at least 10000").all()
    assert (pd.read_csv(next((tmp_path / "results").rglob("*.csv")))["anomaly_score"] == 0).all()


# -- multivariate: ASD ---------------------------------------------------------------------------


def test_asd_entity_is_scored_on_all_its_metrics(reference_data: Path, tmp_path: Path, monkeypatch) -> None:
    columns_seen = []
    fit = RollingMadDetector.fit

    def spy(self, frame, labels=None):
        columns_seen.append((list(frame.columns), len(frame)))
        return fit(self, frame, labels)

    monkeypatch.setattr(RollingMadDetector, "fit", spy)
    board = run_benchmark(
        "asd",
        ["rolling_mad", "pca"],
        out=tmp_path,
        reference_root=reference_data,
        files=["omi-1"],
        params={"pca": {"window": 5}},
        progress=False,
    )
    train = np.loadtxt(reference_data / "asd" / "train" / "omi-1.txt.gz", delimiter=",")
    labels = np.loadtxt(reference_data / "asd" / "test_label" / "omi-1.txt", dtype=int)
    varying = [
        f"m{column + 1:02d}" for column in range(train.shape[1]) if len(np.unique(train[:, column])) > 1
    ]
    # rolling_mad looks at one column: one model per metric that varies in training, on the train file.
    assert columns_seen == [([name], len(train)) for name in varying]
    series = board.series.set_index("detector")
    assert series.loc["rolling_mad", "series"] == "omi-1"
    assert series["test_rows"].tolist() == [len(labels), len(labels)]
    assert series["segments"].tolist() == [len(metrics.label_runs(labels))] * 2
    assert series["error"].isna().all()
    assert not (tmp_path / "results").exists()


def test_joint_detectors_get_every_metric_with_a_varying_one_first() -> None:
    training = pd.DataFrame({"m01": [1.0, 1.0, 1.0], "m02": [0.0, 2.0, 1.0], "m03": [5.0, 5.0, 6.0]})
    assert benchmark._column_groups("pca", training) == [["m02", "m01", "m03"]]
    assert benchmark._column_groups("rolling_mad", training) == [["m02"], ["m03"]]


# -- frames and scores ---------------------------------------------------------------------------


def one_series(stamps: list[str], values: list[float]) -> BenchmarkSeries:
    timestamps = np.array(stamps, dtype="datetime64[ms]")
    labels = np.zeros(len(stamps), dtype=bool)
    return BenchmarkSeries(
        "s",
        np.array(values)[:, None],
        ("value",),
        labels,
        DataFile("s", timestamps, np.empty((0, 2), int), 1),
    )


def test_a_regular_series_with_gaps_keeps_its_time_grid() -> None:
    series = one_series(["2024-01-01T00:00", "2024-01-01T00:05", "2024-01-01T00:20"], [1.0, 2.0, 3.0])
    frame, positions = detector_frame(series)
    assert positions.tolist() == [0, 1, 4]
    assert frame.index[-1] == pd.Timestamp("2024-01-01 00:20", tz="UTC")
    assert frame["value"].tolist()[:2] == [1.0, 2.0] and np.isnan(frame["value"].iloc[2:4]).all()


def test_repeated_or_backward_timestamps_are_laid_out_by_row() -> None:
    stamps = [
        "2024-01-01T00:00",
        "2024-01-01T00:05",
        "2024-01-01T00:05",
        "2024-01-01T00:00",
        "2024-01-01T00:10",
    ]
    frame, positions = detector_frame(one_series(stamps, [1.0, 2.0, 3.0, 4.0, 5.0]))
    assert positions.tolist() == [0, 1, 2, 3, 4]
    assert frame["value"].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert frame.index[1] - frame.index[0] == pd.Timedelta(minutes=5)


def test_scores_map_into_the_unit_interval_in_order() -> None:
    mapped = benchmark.unit_scores(np.array([-1.0, 0.0, 1.0, 3.0, np.inf, np.nan]))
    assert mapped.tolist() == [0.0, 0.0, 0.5, 0.75, 1.0, 0.0]


def test_progress_reports_an_eta_in_plain_text() -> None:
    stream = io.StringIO()
    progress = Progress(4, stream=stream, every=0.0)
    for step in range(4):
        progress.advance(f"step {step}")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4
    assert lines[-1].startswith("[####################] 4/4 elapsed 0:00:00 ETA 0:00:00  step 3")


# -- metrics -------------------------------------------------------------------------------------


def test_point_adjustment_credits_a_whole_segment() -> None:
    labels = [0, 1, 1, 1, 0, 0, 1, 1, 0, 0]
    detected = [0, 0, 1, 0, 0, 1, 0, 0, 0, 0]
    assert metrics.point_adjust(labels, detected).astype(int).tolist() == [0, 1, 1, 1, 0, 1, 0, 0, 0, 0]
    counts = metrics.point_adjusted_counts(labels, detected)
    assert counts == metrics.Counts(tp=3, fp=1, fn=2, tn=4)
    assert (counts.precision, counts.recall, counts.f1) == (0.75, 0.6, 2 / 3)


def test_point_wise_and_event_wise_f1_beside_the_adjusted_one() -> None:
    labels = [0, 1, 1, 1, 0, 0, 1, 1, 0, 0]
    detected = [0, 0, 1, 0, 0, 1, 0, 0, 0, 0]
    # Rows as they are: one of five labelled rows, one of two detections right.
    assert metrics.point_counts(labels, detected) == metrics.Counts(tp=1, fp=1, fn=4, tn=4)
    events = metrics.event_counts(labels, detected)
    assert (events.found, events.segments) == (1, 2)
    # Segment recall 1/2, row precision 1/2.
    assert events.f1 == 0.5
    assert (events + events).f1 == 0.5
    assert metrics.event_counts(labels, [0] * 10).f1 == 0.0
    assert math.isnan(metrics.event_counts([0] * 10, detected).f1)


def test_vus_credits_a_score_that_rises_near_its_segment() -> None:
    rows = np.arange(300)
    labels = np.zeros(300, dtype=int)
    labels[100:110] = 1
    labels[200:205] = 1
    on = labels + 0.001 * np.sin(rows)
    early = np.roll(on, -4)  # the same scores, four rows before their segments
    assert vus.vus(labels, on, window=20) == pytest.approx((1.0, 1.0), abs=1e-12)
    # TSB-AD's own RangeAUC_volume_opt gives 0.8820875863810682 and 0.6690231962116363 here, where
    # the point-wise average precision of the early scores is 0.23.
    roc, pr = vus.vus(labels, early, window=20)
    assert roc == pytest.approx(0.8820875863810682, abs=1e-12)
    assert pr == pytest.approx(0.6690231962116363, abs=1e-12)
    assert all(math.isnan(value) for value in vus.vus(np.zeros(300), on, window=20))


def test_the_vus_window_is_the_series_period() -> None:
    rows = np.arange(5000)
    noise = np.random.default_rng(3).normal(0, 0.1, rows.size)
    assert period_length(np.sin(2 * np.pi * rows / 48) + noise) == 48
    # A period longer than 300 rows, or none at all: TSB-AD's 125.
    assert period_length(np.sin(2 * np.pi * rows / 350)) == FALLBACK_PERIOD
    assert period_length(np.ones(500)) == FALLBACK_PERIOD
    # The second rank: the highest maximum at a longer lag than the first's, two periods here.
    assert period_length(np.sin(2 * np.pi * rows / 48) + noise, rank=2) == 96


def test_f1_is_undefined_without_labels_or_detections() -> None:
    counts = metrics.point_adjusted_counts([0, 0, 0], [0, 0, 0])
    assert math.isnan(counts.precision) and math.isnan(counts.recall) and math.isnan(counts.f1)


def test_oracle_f1_sweeps_one_threshold_over_every_series() -> None:
    oracle = metrics.best_point_adjusted_f1([[0, 1, 1, 0, 0, 1]], [[0.1, 0.2, 0.9, 0.3, 0.8, 0.4]])
    assert oracle == metrics.OracleF1(f1=6 / 7, precision=0.75, recall=1.0, threshold=0.4)
    # Segments at the end of one series and the start of the next stay two segments.
    split = metrics.best_point_adjusted_f1([[0, 1], [1, 0]], [[0.0, 0.9], [0.1, 0.0]])
    assert (split.f1, split.threshold) == (1.0, 0.1)


def test_roc_auc_of_hand_made_scores() -> None:
    assert metrics.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert math.isnan(metrics.roc_auc([0, 0, 0], [0.1, 0.2, 0.3]))


def test_labelled_segments_become_nab_windows_after_the_training_rows() -> None:
    stamps = pd.date_range("2024-01-01", periods=10, freq="min").to_numpy("datetime64[ms]")
    file = metrics.windowed_file("s", stamps, [1, 1, 0, 0, 1, 1, 0, 1, 0, 0], training_rows=3)
    assert file.windows.tolist() == [[4, 5], [7, 7]]
    corpus = NabCorpus({"s": file}, {"standard": metrics.NAB_PROFILES["standard"]})
    detections = np.zeros(10)
    detections[[4, 7]] = 1.0
    assert metrics.nab_profile_scores({"s": detections}, corpus, threshold=0.5) == {"standard": 100.0}
    empty = NabCorpus({"s": metrics.windowed_file("s", stamps, np.zeros(10), 3)}, corpus.profiles)
    assert math.isnan(metrics.nab_profile_scores({"s": detections}, empty)["standard"])


def test_nab_profiles_are_nabs(reference_data: Path) -> None:
    assert read_profiles(reference_data / "nab" / "config" / "profiles.json") == metrics.NAB_PROFILES


# -- bad input -----------------------------------------------------------------------------------


def test_unknown_detector_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"unknown detector.*no_such_model.*rolling_mad"):
        run_benchmark("nab", ["no_such_model"], out=tmp_path, progress=False)


def test_keras_detector_is_refused_under_the_fast_profile(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"lstm: Keras detector.*--profile full"):
        run_benchmark("nab", ["rolling_mad", "lstm"], out=tmp_path, progress=False)
    assert "lstm" not in benchmark.profile_detectors("fast")
    assert "lstm" in benchmark.profile_detectors("full")


def test_bad_parameters_and_unknown_series_are_refused(nab_root: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"rolling_mad.*no parameter wndow"):
        run_benchmark(
            "nab", ["rolling_mad"], out=tmp_path, params={"rolling_mad": {"wndow": 3}}, progress=False
        )
    with pytest.raises(UsageError, match=r"nab has no series realKnownCause/nope\.csv"):
        run_benchmark(
            "nab",
            ["rolling_mad"],
            out=tmp_path,
            reference_root=nab_root,
            files=["realKnownCause/nope"],
            progress=False,
        )


def test_the_calibration_stage_reads_the_scales_it_is_given(nab_root: Path, tmp_path: Path) -> None:
    def run(**scales) -> benchmark.Leaderboard:
        files = ["realKnownCause/nyc_taxi.csv"]
        return run_benchmark(
            "nab",
            ["windowed_gaussian"],
            out=tmp_path,
            reference_root=nab_root,
            files=files,
            progress=False,
            **scales,
        )

    alone, scaled = run(), run(scales=(100, 1, 10))
    assert "each row alone" in alone.method["scores"]
    assert "trailing means of 1, 10, 100 rows" in scaled.method["scores"]
    assert "log10(3)" in scaled.method["scores"]
    assert scaled.series["auc"].iloc[0] != alone.series["auc"].iloc[0]
    with pytest.raises(UsageError, match="whole numbers of rows >= 1"):
        run(scales=(0, 10))


def test_missing_labels_are_a_clear_error(nab_root: Path, tmp_path: Path, monkeypatch) -> None:
    unlabelled = tmp_path / "reference"
    shutil.copytree(nab_root / "data", unlabelled / "nab" / "data")
    monkeypatch.setenv("PASSION_REFERENCE_DATA", str(unlabelled))
    with pytest.raises(UsageError, match=r"missing file .*nab/labels/combined_windows\.json"):
        run_benchmark("nab", ["rolling_mad"], out=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_tsb_ads_rows_follow_the_corpus_and_take_passions_figure_where_it_ran_the_method() -> None:
    detectors = pd.DataFrame({"detector": ["pca", "usad", "rolling_mad"], "vus_pr": [0.25, 0.2, 0.1]})
    board = benchmark.Leaderboard("smd", "fast", detectors, pd.DataFrame(), pd.DataFrame(), {})
    rows = leaderboard.tsb_ad_rows(board)
    assert rows["measured_on"].unique().tolist() == ["multivariate", "smd"]
    assert rows.set_index(["method", "measured_on"]).loc[("PCA", "smd"), "passion_vus_pr"] == 0.25
    assert rows.set_index("method").loc["USAD", "passion_vus_pr"] == 0.2
    assert math.isnan(rows.set_index("method").loc["IForest", "passion_vus_pr"])
    elsewhere = benchmark.Leaderboard("cdn", "fast", detectors, pd.DataFrame(), pd.DataFrame(), {})
    assert leaderboard.tsb_ad_rows(elsewhere).empty
