"""The detector contract, the rolling median/MAD baseline, its registry and the threshold rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from passes import assert_one_pass_scores_each_as_alone
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from passion_tasks.detectors import (
    DetectorError,
    UnknownDetectorError,
    detector_class,
    detector_names,
    load_detector,
    make_detector,
    restore_detector,
    thresholds,
)
from passion_tasks.detectors.base import detect_batch
from passion_tasks.detectors.baselines import RollingMadDetector, trailing_median
from passion_tasks.errors import ExitCode, PassionError
from passion_tasks.models.scoring import history_needed, scoring_rows

TRAIN_DAYS = 3
DAY = 1440  # rows per day on a one-minute grid
SPIKES = TRAIN_DAYS * DAY + np.array([100, 400, 700, 1000, 1300])
SHIFT = TRAIN_DAYS * DAY + 900
#: A level shift is an incident at its onset: a detector that adapts to the new level is right to stop.
SHIFT_LABELLED_MINUTES = 10


def daily_cycle(days: int = TRAIN_DAYS + 1, seed: int = 7) -> pd.DataFrame:
    """A noisy daily cycle on a one-minute UTC grid (mean 100, amplitude 50, noise sigma 3)."""
    n = days * DAY
    minutes = np.arange(n)
    values = 100 + 50 * np.sin(2 * np.pi * minutes / DAY) + np.random.default_rng(seed).normal(0, 3, n)
    index = pd.date_range("2026-11-17", periods=n, freq="min", tz="UTC")
    return pd.DataFrame({"requests": values}, index=index)


def with_anomalies(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The last day with five +40 spikes (about 13 sigma) and a +30 level shift; returns frame, labels."""
    values = frame["requests"].to_numpy().copy()
    labels = np.zeros(len(values), dtype=bool)
    values[SPIKES] += 40
    labels[SPIKES] = True
    values[SHIFT:] += 30
    labels[SHIFT : SHIFT + SHIFT_LABELLED_MINUTES] = True
    return frame.assign(requests=values), labels


def fitted(frame: pd.DataFrame, **params) -> RollingMadDetector:
    return make_detector("rolling_mad", **params).fit(frame.iloc[: TRAIN_DAYS * DAY])


# -- the baseline on planted anomalies ----------------------------------------------------------


def test_rolling_mad_separates_planted_spikes_and_level_shift() -> None:
    frame, labels = with_anomalies(daily_cycle())
    detector = fitted(frame)
    test = slice(TRAIN_DAYS * DAY, None)
    scores = detector.decision_function(frame).iloc[test]

    assert roc_auc_score(labels[test], scores) > 0.99
    flagged = detector.predict(frame).to_numpy()
    assert flagged[SPIKES].all()
    assert flagged[SHIFT]
    assert flagged[test][~labels[test]].sum() <= 2  # false positives on the anomalous day


def test_expected_and_score_are_the_trailing_median_and_mad() -> None:
    frame = daily_cycle(days=1)
    detector = make_detector("rolling_mad", window=60).fit(frame)
    values = frame["requests"].to_numpy()
    t = 700
    window = values[t - 60 : t]
    median = np.median(window)
    scale = max(1.4826 * np.median(np.abs(window - median)), detector.scale_floor_)

    assert detector.expected(frame).iloc[t] == pytest.approx(median, rel=1e-12)
    assert detector.decision_function(frame).iloc[t] == pytest.approx(
        abs(values[t] - median) / scale, rel=1e-12
    )
    observed_spread = 1.4826 * np.median(np.abs(values - np.median(values)))
    assert detector.scale_floor_ == pytest.approx(0.05 * observed_spread, rel=1e-12)


def test_fit_sets_training_scores_and_the_threshold_from_them() -> None:
    frame = daily_cycle(days=1)
    detector = make_detector("rolling_mad", window=60).fit(frame)

    assert detector.decision_scores_.shape == (DAY,)
    # The first rows have fewer than min_periods=30 values of history: they score 0 and are left
    # out of the threshold.
    assert (detector.decision_scores_[:30] == 0).all()
    assert detector.threshold_ == pytest.approx(thresholds.robust_threshold(detector.decision_scores_[30:]))
    assert list(detector.feature_names_in_) == ["requests"]
    assert detector.n_features_in_ == 1
    assert detector.step_ == pd.Timedelta(minutes=1)


def test_threshold_methods_and_fixed_thresholds_are_parameters() -> None:
    frame = daily_cycle(days=1)
    ratio = make_detector("rolling_mad", threshold="anomaly_ratio", threshold_params={"ratio": 0.05})
    ratio.fit(frame)
    scored_rows = ratio.decision_scores_[30:]
    assert ratio.threshold_ == pytest.approx(np.percentile(scored_rows, 95))
    assert (scored_rows >= ratio.threshold_).sum() == 71  # ceil(5% of 1410)

    top = make_detector("rolling_mad", threshold="max").fit(frame)
    assert top.threshold_ == top.decision_scores_.max()

    fixed = make_detector("rolling_mad", threshold=2.5).fit(frame)
    assert fixed.threshold_ == 2.5
    assert fixed.predict(frame).equals(fixed.decision_function(frame) >= 2.5)


# -- the contract's guarantees ------------------------------------------------------------------


def test_scores_are_causal() -> None:
    frame, _ = with_anomalies(daily_cycle())
    detector = fitted(frame)
    cut = TRAIN_DAYS * DAY + 500
    changed = frame.copy()
    changed.iloc[cut + 1 :, 0] = np.random.default_rng(1).normal(1e4, 1e3, len(frame) - cut - 1)

    before, after = detector.detect(frame), detector.detect(changed)
    assert np.array_equal(before["score"].to_numpy()[: cut + 1], after["score"].to_numpy()[: cut + 1])
    assert before["expected"].iloc[: cut + 1].equals(after["expected"].iloc[: cut + 1])
    assert not np.array_equal(before["score"].to_numpy()[cut + 1 :], after["score"].to_numpy()[cut + 1 :])


def test_gaps_give_zero_scores_and_carry_the_baseline() -> None:
    frame, _ = with_anomalies(daily_cycle())
    detector = fitted(frame)
    gappy = frame.copy()
    short_gap = slice(SHIFT - 300, SHIFT - 295)
    long_gap = slice(SHIFT - 200, SHIFT - 80)  # 120 minutes: longer than the 60-minute window
    for gap in (short_gap, long_gap):
        gappy.iloc[gap, 0] = np.nan
    gappy.iloc[::97, 0] = np.nan

    result = detector.detect(gappy)
    scores = result["score"].to_numpy()
    missing = gappy["requests"].isna().to_numpy()
    assert np.isfinite(scores).all()
    assert (scores[missing] == 0).all()
    warmed_up = np.arange(len(scores)) > 30  # min_periods=30 values of history, one of them missing
    assert (scores[warmed_up & ~missing] > 0).all()
    # After the long gap, values are judged against the last window that held min_periods=30
    # values: the last 30 before the gap.
    last_level = np.median(gappy["requests"].to_numpy()[long_gap.start - 30 : long_gap.start])
    assert result["expected"].iloc[long_gap.stop] == pytest.approx(last_level, rel=1e-12)


def test_a_day_scored_with_its_context_alone_scores_as_with_all_its_history() -> None:
    frame, _ = with_anomalies(daily_cycle())
    frame.iloc[SHIFT - 200 : SHIFT - 80, 0] = np.nan  # an outage of two hours within the day
    detector = fitted(frame, persistence=3)
    day = frame.index[TRAIN_DAYS * DAY]
    assert detector.context() == pd.Timedelta(minutes=60 + 2) + pd.Timedelta(days=1)

    rows = scoring_rows(detector, frame, day)
    assert rows.index[0] == day - detector.context()
    whole, alone = detector.detect(frame).loc[day:], detector.detect(rows).loc[day:]
    pd.testing.assert_frame_equal(alone, whole, check_exact=True)


def test_models_scored_in_one_pass_score_as_each_alone_from_the_first_step_kept() -> None:
    """``detect_batch`` on a series × steps matrix gives each model what ``detect`` gives it, from the
    step it keeps on, whatever the others hold: gaps, an outage across that step (the baseline then
    comes from before it), other scale floors."""
    frames = [with_anomalies(daily_cycle(seed=seed))[0] for seed in (1, 2, 3)]
    frames[1].iloc[SHIFT - 200 : SHIFT - 80, 0] = np.nan
    frames[2].iloc[TRAIN_DAYS * DAY - 50 : TRAIN_DAYS * DAY + 70, 0] = np.nan
    frames[2].iloc[TRAIN_DAYS * DAY + 300 :: 7, 0] = np.inf  # non-finite values are missing ones
    models = [
        fitted(frame, persistence=3, scale_floor=floor)
        for frame, floor in zip(frames, (0.05, 0.5, 5.0), strict=True)
    ]
    assert_one_pass_scores_each_as_alone(models, frames, start=TRAIN_DAYS * DAY)


@pytest.mark.parametrize("name", ["profile", "seasonal_naive", "constant"])
def test_the_server_metric_detectors_score_in_one_pass_as_each_alone(name: str) -> None:
    frames = [with_anomalies(daily_cycle(seed=seed))[0] for seed in (4, 5, 6)]
    if name == "constant":
        frames = [
            frame.assign(requests=np.where(np.arange(len(frame)) < SHIFT, level, 7.0))
            for frame, level in zip(frames, (0.0, 3.0, 700.0), strict=True)
        ]
    frames[1].iloc[SHIFT - 200 : SHIFT - 80, 0] = np.nan
    frames[2].iloc[SPIKES[0] : SPIKES[0] + 4, 0] = frames[2].iloc[SPIKES[0], 0]  # a value that holds still
    models = [make_detector(name).fit(frame.iloc[: TRAIN_DAYS * DAY]) for frame in frames]
    assert_one_pass_scores_each_as_alone(models, frames, start=TRAIN_DAYS * DAY)


def test_a_pass_takes_models_of_one_class_and_key_on_their_grid() -> None:
    frame = daily_cycle()
    index, values = frame.index, np.stack([frame.to_numpy().T] * 2)
    with pytest.raises(DetectorError, match="cannot be scored in one pass"):
        detect_batch([fitted(frame), fitted(frame, persistence=3)], values, index)
    with pytest.raises(DetectorError, match="cannot be scored in one pass"):
        detect_batch(
            [fitted(frame), make_detector("seasonal_naive").fit(frame.iloc[: TRAIN_DAYS * DAY])],
            values,
            index,
        )
    with pytest.raises(DetectorError, match="fitted on a 0 days 00:01:00 grid, got a 0 days 00:02:00 grid"):
        detect_batch([fitted(frame)], values[:1, :, ::2], index[::2])
    with pytest.raises(
        DetectorError,
        match=r"2 models of \[1, 1\] features on 5760 steps, got values of shape \(1, 1, 5760\)",
    ):
        detect_batch([fitted(frame), fitted(frame)], values[:1], index)


def test_a_trailing_median_is_pandas_rolling_median_with_one_value_needed() -> None:
    values = np.random.default_rng(3).normal(size=(3, 400))
    values[0, 10:30] = np.nan
    values[1, :5] = np.nan
    values[2, ::3] = np.nan
    for window in (1, 2, 3, 8):
        expected = pd.DataFrame(values.T).rolling(window, min_periods=1).median().to_numpy().T
        np.testing.assert_array_equal(trailing_median(values, window), expected)
        np.testing.assert_array_equal(trailing_median(values[1], window), expected[1])


def test_a_seasonal_forecast_needs_one_season_of_context() -> None:
    frame, _ = with_anomalies(daily_cycle())
    detector = make_detector("seasonal_naive").fit(frame.iloc[: TRAIN_DAYS * DAY])
    day = frame.index[TRAIN_DAYS * DAY]
    assert detector.context() == pd.Timedelta(days=1)

    whole = detector.detect(frame).loc[day:]
    alone = detector.detect(scoring_rows(detector, frame, day)).loc[day:]
    pd.testing.assert_frame_equal(alone, whole, check_exact=True)


def test_a_batch_reads_the_days_of_history_its_models_need() -> None:
    mad = fitted(daily_cycle(), persistence=3)  # its windows and a day: 2 days before the scored one
    assert history_needed([mad], history_days=8) == 2
    assert history_needed([mad], history_days=1) == 1
    weekly = make_detector("seasonal_naive", season="7D").fit(daily_cycle(days=15).iloc[: 14 * DAY])
    assert history_needed([mad, weekly], history_days=8) == 7
    # A model that may use all the history it gets (NAB's window of 6,400 rows) gets all the batch reads.
    assert make_detector("windowed_gaussian").context() is None
    assert history_needed([mad, make_detector("windowed_gaussian")], history_days=8) == 8


def test_scores_at_the_start_of_a_frame_without_history_are_zero() -> None:
    frame = daily_cycle()
    detector = fitted(frame)
    alone = frame.iloc[-10:]
    assert detector.decision_function(alone).tolist() == [0.0] * 10
    assert detector.expected(alone).isna().all()
    assert detector.decision_function(alone).index.equals(alone.index)


def test_columns_may_come_in_another_order() -> None:
    frame = daily_cycle().assign(errors=1.0)
    frame.iloc[::2, 1] = 2.0
    detector = fitted(frame)
    assert detector.decision_function(frame[["errors", "requests"]]).equals(detector.decision_function(frame))


# -- errors -------------------------------------------------------------------------------------


def test_too_little_training_data_for_the_window() -> None:
    with pytest.raises(DetectorError, match="window=60 needs at least 120 observed training values, got 100"):
        make_detector("rolling_mad").fit(daily_cycle(days=1).iloc[:100])


def test_constant_series() -> None:
    frame = daily_cycle(days=1).assign(requests=5.0)
    frame.iloc[:10, 0] = np.nan
    with pytest.raises(DetectorError, match="constant"):
        make_detector("rolling_mad").fit(frame)


def test_mostly_flat_series() -> None:
    frame = daily_cycle(days=1).assign(requests=5.0)
    blips = [300, 700, 1100]
    frame.iloc[blips, 0] = 6.0

    robust = make_detector("rolling_mad").fit(frame)
    assert np.flatnonzero(robust.predict(frame)).tolist() == blips
    # More than 99% of the training scores are 0: the 1% rule would flag every row.
    with pytest.raises(DetectorError, match=r"threshold came out at 0\.0"):
        make_detector("rolling_mad", threshold="anomaly_ratio").fit(frame)


def test_scoring_with_other_features_than_fitted() -> None:
    frame = daily_cycle(days=1).assign(errors=0.0)
    detector = make_detector("rolling_mad").fit(frame)
    with pytest.raises(DetectorError, match=r"missing \['errors'\], unexpected \['latency'\]"):
        detector.decision_function(frame.rename(columns={"errors": "latency"}))
    with pytest.raises(DetectorError, match="missing"):
        detector.decision_function(frame[["requests"]])


def test_unknown_detector_and_parameter() -> None:
    with pytest.raises(UnknownDetectorError, match="unknown detector 'lstm2'; choose one of cnn1d, ") as err:
        make_detector("lstm2")
    assert isinstance(err.value, PassionError)
    assert err.value.exit_code == ExitCode.USAGE
    with pytest.raises(DetectorError, match="has no parameter windw"):
        make_detector("rolling_mad", windw=5)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"window": 2}, "window must be an integer >= 3"),
        ({"window": 10, "min_periods": 11}, "min_periods must be between 1 and window=10"),
        ({"scale_floor": 0}, "scale_floor must be positive"),
        ({"threshold": "p99"}, "unknown threshold method 'p99'"),
        ({"threshold": 3.0, "threshold_params": {"k": 2}}, "threshold_params only apply"),
        ({"threshold": "robust", "threshold_params": {"ratio": 0.1}}, "threshold 'robust'"),
        ({"threshold": 0.0}, r"a fixed threshold must be positive, got 0\.0"),
    ],
)
def test_invalid_parameters_fail_at_fit(params: dict, message: str) -> None:
    detector = make_detector("rolling_mad", **params)
    with pytest.raises(DetectorError, match=message):
        detector.fit(daily_cycle(days=1))


def test_frames_that_break_the_contract() -> None:
    frame = daily_cycle(days=1)
    detector = make_detector("rolling_mad")
    with pytest.raises(DetectorError, match="not fitted"):
        detector.decision_function(frame)
    with pytest.raises(DetectorError, match="tz-aware"):
        detector.fit(frame.tz_localize(None))
    with pytest.raises(DetectorError, match="regular grid"):
        detector.fit(frame.drop(frame.index[500]))
    detector.fit(frame)
    with pytest.raises(DetectorError, match="fitted on a 0 days 00:01:00 grid, got a 0 days 00:05:00 grid"):
        detector.decision_function(frame.iloc[::5])


# -- registry and parameters --------------------------------------------------------------------


def test_registry_and_scikit_learn_parameters() -> None:
    classical = {
        "elliptic_envelope", "fusion", "isolation_forest", "kmeans", "one_class_svm", "pca", "rolling_mad",
        "seasonal_naive", "windowed_gaussian", "xgboost",
    }  # fmt: skip
    names = detector_names()
    assert names == sorted(names)
    zoo = {"cnn1d", "gru", "gru_dense", "lstm", "lstm_autoencoder", "lstm_ohlc", "mlstm_fcn"} | classical
    assert zoo <= set(names)
    # Each classical name resolves to the class registered under it.
    assert {name: detector_class(name).name for name in classical} == {name: name for name in classical}
    detector = make_detector("rolling_mad", window=30, threshold="max")
    assert isinstance(detector, RollingMadDetector)
    assert detector.get_params() == {
        "window": 30,
        "min_periods": None,
        "scale_floor": 0.05,
        "persistence": 1,
        "threshold": "max",
        "threshold_params": None,
    }
    copy = clone(detector.fit(daily_cycle(days=1)))
    assert copy.get_params() == detector.get_params()
    assert not hasattr(copy, "threshold_")


# -- thresholds ---------------------------------------------------------------------------------


def test_anomaly_ratio_threshold() -> None:
    scores = np.arange(1.0, 101.0)
    assert thresholds.anomaly_ratio_threshold(scores) == pytest.approx(99.01)
    assert thresholds.anomaly_ratio_threshold(scores, ratio=0.1) == pytest.approx(90.1)
    with pytest.raises(ValueError, match="between 0 and 1"):
        thresholds.anomaly_ratio_threshold(scores, ratio=1.0)


def test_max_training_threshold_ignores_missing_scores() -> None:
    assert thresholds.max_training_threshold([3.0, np.nan, 7.5, np.inf, 1.0]) == 7.5
    with pytest.raises(ValueError, match="no finite values"):
        thresholds.max_training_threshold([np.nan])


def test_robust_threshold() -> None:
    scores = [1.0, 2.0, 3.0, 4.0, 100.0]  # median 3, MAD 1
    assert thresholds.robust_threshold(scores) == pytest.approx(3 + 5 * 1.4826)
    assert thresholds.robust_threshold(scores, k=3) == pytest.approx(3 + 3 * 1.4826)
    # More than half the scores equal: MAD 0, the standard deviation (2.0) stands in.
    assert thresholds.robust_threshold([0.0, 0.0, 0.0, 0.0, 5.0], k=5) == pytest.approx(10.0)


def test_fit_threshold_dispatches_by_name() -> None:
    scores = [1.0, 2.0, 3.0, 4.0, 100.0]
    assert thresholds.fit_threshold(scores, "max") == 100.0
    assert thresholds.fit_threshold(scores, "robust", k=1) == pytest.approx(4.4826)
    assert thresholds.fit_threshold(scores, "anomaly_ratio", ratio=0.25) == pytest.approx(4.0)
    with pytest.raises(
        ValueError, match="method 'nab'; choose one of anomaly_ratio, false_alarm_budget, max, robust"
    ):
        thresholds.fit_threshold(scores, "nab")


def test_persistence_ignores_a_one_minute_blip_but_not_a_sustained_shift() -> None:
    frame = daily_cycle(days=2)
    train, test = frame.iloc[:1440], frame.iloc[1440:].copy()
    blip, shift = test.index[300], test.index[900:910]
    spread = float(train.iloc[:, 0].std())
    test.loc[blip, test.columns[0]] += 20 * spread
    test.loc[shift, test.columns[0]] += 20 * spread
    plain = make_detector("rolling_mad").fit(train).decision_function(test)
    persistent = make_detector("rolling_mad", persistence=3).fit(train).decision_function(test)
    assert plain[blip] > 10 * plain.median()
    assert persistent[blip] < 3 * persistent.median() + 1
    assert persistent[shift[4]] > 10


def test_save_and_load_give_identical_scores(tmp_path) -> None:
    frame, _ = with_anomalies(daily_cycle())
    train = frame.iloc[: TRAIN_DAYS * DAY]
    detector = make_detector("rolling_mad", window=30, persistence=3).fit(train)
    folder = detector.save(tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == ["arrays.npz", "detector.json"]
    loaded = load_detector(folder)
    assert loaded.get_params() == detector.get_params()
    assert loaded.threshold_ == detector.threshold_
    assert loaded.step_ == pd.Timedelta(minutes=1)
    pd.testing.assert_series_equal(loaded.decision_function(frame), detector.decision_function(frame))
    with pytest.raises(DetectorError, match="holds no saved detector"):
        load_detector(tmp_path / "nothing-here")

    files = {path.name: path.read_bytes() for path in folder.iterdir()}
    restored = restore_detector(files, expected="rolling_mad", source="cif/rolling_mad@v1")
    pd.testing.assert_series_equal(restored.decision_function(frame), detector.decision_function(frame))
    with pytest.raises(DetectorError, match="cif/rolling_mad@v1 holds a saved 'rolling_mad' detector where"):
        restore_detector(files, expected="seasonal_naive", source="cif/rolling_mad@v1")
    with pytest.raises(DetectorError, match=r"the saved files: arrays\.npz is missing"):
        restore_detector({"detector.json": files["detector.json"]})
    with pytest.raises(DetectorError, match=r"arrays\.npz cannot be read"):
        restore_detector({**files, "arrays.npz": b"PK not a zip"})
    with pytest.raises(DetectorError, match="hold no saved detector"):
        restore_detector({"arrays.npz": files["arrays.npz"]})
