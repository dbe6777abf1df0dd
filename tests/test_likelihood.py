"""The anomaly likelihood detector: its surprise rules, its contract and its NAB score on a subset."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from passion_tasks.detectors import DetectorError, load_detector, make_detector
from passion_tasks.detectors.likelihood import (
    AnomalyLikelihoodDetector,
    range_surprise,
    record_surprise,
    repeating_period,
    suppress_repeated_alarms,
)
from passion_tasks.evaluation.nab import nab_scores
from passion_tasks.evaluation.nab_corpus import NabCorpus

TRAIN_ROWS = 400
PERIOD = 48
#: Small windows so the synthetic frames (1200 rows) warm every signal up within training.
SMALL = {"level_window": 96, "shape_history": 400}


def cycle(rows: int = 1200, seed: int = 3) -> pd.DataFrame:
    """A sine of period 48 rows (amplitude 10 around 50) with unit Gaussian noise, on a 5-minute grid."""
    positions = np.arange(rows)
    noise = np.random.default_rng(seed).normal(0, 1, rows)
    values = 50 + 10 * np.sin(2 * np.pi * positions / PERIOD) + noise
    index = pd.date_range("2026-11-01", periods=rows, freq="5min", tz="UTC")
    return pd.DataFrame({"requests": values}, index=index)


def fitted(**params) -> AnomalyLikelihoodDetector:
    return make_detector("likelihood", **{**SMALL, **params}).fit(cycle().iloc[:TRAIN_ROWS])


def flagged_rows(detector: AnomalyLikelihoodDetector, frame: pd.DataFrame) -> list[int]:
    return np.flatnonzero(detector.predict(frame).to_numpy()).tolist()


# -- the rules, one function each ------------------------------------------------------------------


def test_range_surprise_measures_against_all_earlier_values() -> None:
    values = np.array([5.0, 12.0, 0.0, np.nan, 4.0])
    # row 1 leaves [0, 10] by 2 of its 10; the later rows are judged against [0, 12]
    expected = [0.5, 1.2, 1.0, np.nan, 8 / 12]
    np.testing.assert_allclose(range_surprise(values, low=0.0, high=10.0), expected)


def test_record_surprise_divides_by_the_decaying_record() -> None:
    # memory=1: every earlier value halves each row; the record 2 counts as the row before the first
    surprise = record_surprise(np.array([1.0, 2.0, 1.0, 4.0]), record=2.0, memory=1.0)
    np.testing.assert_allclose(surprise, [1.0, 4.0, 1.0, 8.0])


def test_record_surprise_of_zero_records() -> None:
    surprise = record_surprise(np.array([0.0, np.nan, 3.0]), record=0.0, memory=100.0)
    assert surprise[0] == 0.0
    assert np.isnan(surprise[1])
    assert surprise[2] == np.inf


def test_repeated_alarms_are_suppressed_and_keep_suppressing() -> None:
    surprise = np.array([0.5, 2.0, 3.0, 0.2, 1.5, 0.1, 0.1, 4.0])
    # row 2 follows row 1's alarm; row 4 follows row 2's, suppressed as it is; row 7 is 3 rows clear
    suppressed = suppress_repeated_alarms(surprise, level=1.01, rows=2)
    np.testing.assert_array_equal(suppressed, [0.5, 2.0, 1.0, 0.2, 1.0, 0.1, 0.1, 4.0])
    np.testing.assert_array_equal(suppress_repeated_alarms(surprise, level=1.01, rows=0), surprise)


def test_repeating_period_is_found_by_autocorrelation() -> None:
    values = cycle().iloc[:TRAIN_ROWS, 0].to_numpy()
    # 48, 96 and 144 rows all repeat the sine; noise puts the highest correlation on the third
    assert repeating_period(values, min_correlation=0.5) == 3 * PERIOD
    noise = np.random.default_rng(0).normal(0, 1, TRAIN_ROWS)
    assert repeating_period(noise, min_correlation=0.5) == 0


# -- the detector ----------------------------------------------------------------------------------


def test_fit_learns_extremes_period_and_records() -> None:
    detector = fitted()
    training = cycle().iloc[:TRAIN_ROWS, 0]
    assert detector.value_min_ == training.min()
    assert detector.value_max_ == training.max()
    assert detector.season_period_ == 3 * PERIOD
    assert sorted(detector.signal_records_) == ["level", "season", "shape"]
    assert detector.threshold_ == 1.01 / 2.01


def test_scores_are_causal() -> None:
    frame = cycle()
    changed = frame.copy()
    changed.iloc[700:, 0] = np.random.default_rng(11).normal(500, 300, len(frame) - 700)
    for params in ({}, {"base": "rolling_mad"}):
        detector = fitted(**params)
        before, after = (
            detector.decision_function(frame).to_numpy(),
            detector.decision_function(changed).to_numpy(),
        )
        np.testing.assert_array_equal(before[:700], after[:700])
        assert not np.array_equal(before[700:], after[700:])


def test_scores_lie_in_the_unit_interval_and_a_missing_value_scores_0() -> None:
    frame = cycle()
    frame.iloc[[500, 501, 502, 900], 0] = np.nan
    frame.iloc[800, 0] = 1e9
    scores = fitted().decision_function(frame).to_numpy()
    assert ((scores >= 0) & (scores <= 1)).all()
    assert scores[[500, 501, 502, 900]].tolist() == [0.0, 0.0, 0.0, 0.0]
    # 1e9 is 4e7 times the training range beyond its top: almost 1, and the highest score
    assert scores.argmax() == 800
    assert scores[800] > 1 - 1e-7


def test_a_planted_spike_is_flagged_at_its_first_row() -> None:
    detector = fitted()
    frame = cycle()
    quiet = flagged_rows(detector, frame)
    frame.iloc[800:810, 0] += 30
    assert flagged_rows(detector, frame) == sorted([*quiet, 800])
    assert 800 not in quiet


def test_refractory_suppresses_a_second_alarm_within_its_rows() -> None:
    frame = cycle()
    frame.iloc[800, 0] += 30
    frame.iloc[810, 0] += 40  # a new record 10 rows later
    quiet = flagged_rows(fitted(), cycle())
    assert flagged_rows(fitted(refractory=30), frame) == sorted([*quiet, 800])
    assert flagged_rows(fitted(refractory=5), frame) == sorted([*quiet, 800, 810])


def test_save_and_load_score_identically(tmp_path: Path) -> None:
    frame = cycle()
    frame.iloc[900, 0] += 30
    for params in ({}, {"signals": ["range"], "base": "rolling_mad", "base_params": {"window": 30}}):
        detector = fitted(**params)
        folder = detector.save(tmp_path / str(len(params)))
        loaded = load_detector(folder)
        assert loaded.get_params() == detector.get_params() | {"signals": list(detector.signals)}
        pd.testing.assert_frame_equal(loaded.detect(frame), detector.detect(frame))


def test_expected_is_the_trailing_median_of_the_level_signal() -> None:
    frame = cycle()
    expected = fitted().expected(frame)
    trailing = frame["requests"].shift(1).rolling(96, min_periods=48).median()
    pd.testing.assert_series_equal(expected.iloc[48:], trailing.iloc[48:], check_names=False)
    assert fitted(signals=["range"]).expected(frame).isna().all()


@pytest.mark.parametrize(
    "params, message",
    [
        ({"signals": ["range", "trend"]}, "signals must be some of"),
        ({"signals": []}, "signals must be some of"),
        ({"shape_history": 10, "shape_length": 8}, "at least twice shape_length"),
        ({"secondary_weight": 1.5}, "secondary_weight must be in"),
        ({"refractory": -1}, "refractory must be an integer >= 0"),
        ({"base": "likelihood"}, "cannot wrap itself"),
    ],
)
def test_bad_parameters_are_refused(params: dict, message: str) -> None:
    with pytest.raises(DetectorError, match=message):
        fitted(**params)


# -- NAB -------------------------------------------------------------------------------------------

NAB_FILES = [
    "artificialWithAnomaly/art_daily_flatmiddle.csv",
    "realAWSCloudwatch/rds_cpu_utilization_e47b3b.csv",
    "realAdExchange/exchange-3_cpc_results.csv",
    "realKnownCause/ec2_request_latency_system_failure.csv",
    "realTraffic/speed_7578.csv",
]


def bench_module():
    """``bench/nab.py``, the NAB protocol this test runs (bench/ is scripts, not a package)."""
    path = Path(__file__).resolve().parents[1] / "bench" / "nab.py"
    spec = importlib.util.spec_from_file_location("bench_nab", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: (standard, reward_low_FP_rate, reward_low_FN_rate) on ``NAB_FILES``, as measured: the range signal
#: alone nearly matches the full detector on these files; rolling_mad's raw z-scores, every row on
#: its own, score about as well as flagging nothing.
MEASURED = {
    "likelihood": (74.360127, 70.791346, 77.778546),
    "range": (74.054613, 69.823844, 77.57487),
    "rolling_mad": (0.758363, 0.0, 3.069678),
}


def test_nab_scores_on_five_files_with_the_real_scorer(reference_data: Path) -> None:
    bench = bench_module()
    data = bench.load_corpus_data("nab", reference_data, files=NAB_FILES)
    corpus = NabCorpus({one.name: one.scoring for one in data.series}, data.profiles)
    measured = {}
    for name in MEASURED:
        detector, params = bench.CONFIGS[name]
        scores, refused = bench.corpus_scores(detector, params, data.series)
        assert refused == []
        result = nab_scores(scores, corpus)
        measured[name] = tuple(round(result[profile], 6) for profile in bench.PROFILES)
    assert measured == MEASURED
