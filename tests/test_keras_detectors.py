"""The Keras detectors: planted anomalies, saving, causality, training-only scaling, gaps and refusals.

Tiny settings keep the file fast: a 2-hour window on a 5-minute grid, 6 training days, 2 epochs.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from passion_tasks.detectors import DetectorError, detector_class, load_detector, make_detector
from passion_tasks.detectors.keras_detectors import (
    MODEL_FILE,
    Cnn1dDetector,
    KerasForecaster,
    LstmAutoencoderDetector,
    OhlcForecaster,
    WindowBatches,
    chronological_split,
)
from passion_tasks.detectors.windows import forecast_pairs
from passion_tasks.features import previous_hour_ohlc

DAY = 288  # rows per day on a 5-minute grid
TRAIN_DAYS = 6
TRAIN_ROWS = TRAIN_DAYS * DAY
WINDOW = 24
FAST = {"window": WINDOW, "epochs": 2, "batch_size": 64, "random_state": 0}
SPIKES = TRAIN_ROWS + np.array([30, 80, 130, 180, 250])
SHIFT = TRAIN_ROWS + 210
#: A level shift is an incident at its onset: a forecaster that follows the new level is right to stop.
SHIFT_LABELLED_ROWS = 2

#: Keras' float32 kernels (oneDNN's among them) sum in an order that depends on the batch and on the
#: CPU's instruction set, so the same input can round differently in its last bits: one score of 2,016
#: read 5.46081139e-02 on one CPU and 5.46082331e-02 on another. Network outputs are compared to this
#: tolerance, far below any change the tests look for (a changed input moves scores by orders of
#: magnitude, a wrong row by whole units).
NETWORK_TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


def assert_same_network_output(
    actual: pd.DataFrame | np.ndarray, expected: pd.DataFrame | np.ndarray
) -> None:
    if isinstance(actual, pd.DataFrame):
        pd.testing.assert_frame_equal(actual, expected, check_exact=False, **NETWORK_TOLERANCE)
    else:
        np.testing.assert_allclose(actual, expected, **NETWORK_TOLERANCE)


FORECASTERS = ["lstm", "gru", "gru_dense", "cnn1d", "lstm_ohlc", "mlstm_fcn"]
#: ROC AUC each model clears on the anomalous day after 2 epochs on 6 days. Over data and seed variations
#: the worst seen were 0.998 (lstm, gru, gru_dense, cnn1d, lstm_ohlc), 0.936 (mlstm_fcn, whose tiny
#: LSTM branch under 0.8 dropout learns slowest) and 0.956 (lstm_autoencoder); the bounds keep a margin.
MIN_AUC = {
    "lstm": 0.98,
    "gru": 0.98,
    "gru_dense": 0.98,
    "cnn1d": 0.98,
    "lstm_ohlc": 0.98,
    "mlstm_fcn": 0.85,
    "lstm_autoencoder": 0.9,
}


def daily_cycle(days: int = TRAIN_DAYS + 1, seed: int = 7) -> pd.DataFrame:
    """A noisy daily cycle on a 5-minute UTC grid (mean 100, amplitude 50, noise sigma 3)."""
    n = days * DAY
    rows = np.arange(n)
    values = 100 + 50 * np.sin(2 * np.pi * rows / DAY) + np.random.default_rng(seed).normal(0, 3, n)
    index = pd.date_range("2026-11-17", periods=n, freq="5min", tz="UTC")
    return pd.DataFrame({"requests": values}, index=index)


def with_anomalies(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The last day with five +100 spikes (33 sigma) and a +60 level shift; returns frame and labels."""
    values = frame["requests"].to_numpy().copy()
    labels = np.zeros(len(values), dtype=bool)
    values[SPIKES] += 100
    labels[SPIKES] = True
    values[SHIFT:] += 60
    labels[SHIFT : SHIFT + SHIFT_LABELLED_ROWS] = True
    return frame.assign(requests=values), labels


def windows_holding(labels: np.ndarray, window: int) -> np.ndarray:
    """Rows whose window (the row and the ``window - 1`` before it) holds a labelled row."""
    held = np.zeros_like(labels)
    for row in np.flatnonzero(labels):
        held[row : row + window] = True
    return held


@pytest.fixture(scope="module")
def anomalous() -> tuple[pd.DataFrame, np.ndarray]:
    return with_anomalies(daily_cycle())


@pytest.fixture(scope="module", params=[*FORECASTERS, "lstm_autoencoder"])
def fitted(request: pytest.FixtureRequest, anomalous: tuple[pd.DataFrame, np.ndarray]):
    frame, _ = anomalous
    return make_detector(request.param, **FAST).fit(frame.iloc[:TRAIN_ROWS])


# -- every model on planted anomalies ------------------------------------------------------------


def test_planted_anomalies_rank_above_normal_rows(fitted, anomalous) -> None:
    frame, labels = anomalous
    test = slice(TRAIN_ROWS, None)
    scores = fitted.decision_function(frame).to_numpy()[test]
    # The autoencoder judges the window ending at each row: a spike is in the next WINDOW rows' windows.
    truth = windows_holding(labels, WINDOW) if fitted.name == "lstm_autoencoder" else labels

    assert roc_auc_score(truth[test], scores) >= MIN_AUC[fitted.name]
    if isinstance(fitted, KerasForecaster):
        # A +100 spike is about 2.8 training standard deviations off its forecast: above the threshold.
        assert fitted.predict(frame).to_numpy()[SPIKES].all()
    assert len(fitted.training_loss_) == 2
    assert len(fitted.validation_loss_) == 2
    assert np.isfinite(fitted.training_loss_ + fitted.validation_loss_).all()
    # No history before the frame's first WINDOW rows (WINDOW - 1 for the autoencoder): no opinion.
    history = WINDOW - 1 if fitted.name == "lstm_autoencoder" else WINDOW
    assert (fitted.decision_scores_[:history] == 0).all()
    assert (fitted.decision_scores_[history:] > 0).all()


def test_saved_detector_loads_back_with_identical_scores(fitted, anomalous, tmp_path: Path) -> None:
    frame, _ = anomalous
    folder = fitted.save(tmp_path / "detector")
    loaded = load_detector(folder)

    assert (folder / MODEL_FILE).is_file()
    assert type(loaded) is type(fitted)
    assert loaded.get_params() == fitted.get_params()
    assert np.array_equal(loaded.scaler_mean_, fitted.scaler_mean_)
    assert np.array_equal(loaded.scaler_scale_, fitted.scaler_scale_)
    assert loaded.threshold_ == fitted.threshold_
    assert_same_network_output(loaded.detect(frame), fitted.detect(frame))
    # A remote lake's series are scored on threads (``Lake.map_io``): models loaded and run at once agree.
    with ThreadPoolExecutor(max_workers=3) as pool:
        on_threads = list(pool.map(lambda _: load_detector(folder).detect(frame), range(3)))
    for scores in on_threads:
        assert_same_network_output(scores, fitted.detect(frame))


def test_scores_are_causal(fitted, anomalous) -> None:
    frame, _ = anomalous
    cut = TRAIN_ROWS + 100
    noise = np.random.default_rng(1).normal(1e4, 1e3, len(frame))
    after_cut = frame.copy()
    after_cut.iloc[cut + 1 :, 0] = noise[cut + 1 :]

    before, after = fitted.detect(frame), fitted.detect(after_cut)
    assert_same_network_output(before.iloc[: cut + 1], after.iloc[: cut + 1])
    assert not np.array_equal(before["score"].to_numpy()[cut + 1 :], after["score"].to_numpy()[cut + 1 :])

    if isinstance(fitted, KerasForecaster):
        # A forecast uses only the rows before its own.
        from_cut = frame.copy()
        from_cut.iloc[cut:, 0] = noise[cut:]
        changed = fitted.detect(from_cut)
        assert_same_network_output(
            changed["expected"].to_numpy()[: cut + 1], before["expected"].to_numpy()[: cut + 1]
        )
        assert_same_network_output(changed["score"].to_numpy()[:cut], before["score"].to_numpy()[:cut])


def test_windows_with_a_gap_give_no_opinion(fitted, anomalous) -> None:
    frame, _ = anomalous
    gap = TRAIN_ROWS + 50
    gappy = frame.copy()
    gappy.iloc[gap, 0] = np.nan

    result = fitted.detect(gappy)
    scores, expected = result["score"].to_numpy(), result["expected"].to_numpy()
    if isinstance(fitted, KerasForecaster):
        # Row gap has a forecast but no value; the next WINDOW forecasts would read the gap.
        silent_scores, silent_expected = slice(gap, gap + WINDOW + 1), slice(gap + 1, gap + WINDOW + 1)
        assert np.isfinite(expected[gap])
    else:
        silent_scores = silent_expected = slice(gap, gap + WINDOW)
    assert (scores[silent_scores] == 0).all()
    assert np.isnan(expected[silent_expected]).all()
    after = silent_scores.stop
    assert scores[after] > 0 and np.isfinite(expected[after])
    if isinstance(fitted, OhlcForecaster):
        # The gap also changes the next clock hour's open, close, max and min, read for WINDOW rows more.
        next_hour_ends = gappy.index.get_loc(gappy.index[gap].floor("h") + pd.Timedelta(hours=2))
        after = max(after, next_hour_ends + WINDOW)
    assert_same_network_output(scores[after:], fitted.decision_function(frame).to_numpy()[after:])


def test_other_feature_sets_are_refused(fitted, anomalous) -> None:
    frame, _ = anomalous
    with pytest.raises(DetectorError, match=r"fitted on features \['requests'\].*unexpected \['errors'\]"):
        fitted.detect(frame.rename(columns={"requests": "errors"}))
    with pytest.raises(DetectorError, match=r"missing \[\].*unexpected \['errors'\]"):
        fitted.detect(frame.assign(errors=1.0))


# -- scaling, OHLC features and training data ------------------------------------------------


def ramp(days: int = 4) -> pd.DataFrame:
    """A daily cycle that climbs by 50 a day: the training days' mean is far below the later days'."""
    frame = daily_cycle(days=days)
    return frame.assign(requests=frame["requests"] + 50 * np.arange(len(frame)) / DAY)


def test_scaler_is_fitted_on_the_training_rows_only_with_the_derived_ohlc() -> None:
    frame = ramp()
    train = frame.iloc[: 2 * DAY]
    derived = make_detector("lstm_ohlc", window=8, epochs=1).fit(train)

    values = train["requests"].to_numpy()
    ohlc = previous_hour_ohlc(train["requests"])
    assert frame["requests"].mean() - values.mean() > 40
    # pandas' mean and std skip the first hour's missing open, close, max and min, as the scaler does.
    assert derived.scaler_mean_ == pytest.approx([values.mean(), *ohlc.mean()], rel=1e-12)
    assert derived.scaler_scale_ == pytest.approx([values.std(), *ohlc.std(ddof=0)], rel=1e-12)
    assert list(derived.feature_names_in_) == ["requests"]

    # Five columns are taken as given: the same inputs and seed give the same model and scores.
    given = make_detector("lstm_ohlc", window=8, epochs=1).fit(train.join(ohlc))
    assert list(given.feature_names_in_) == ["requests", "open", "close", "max", "min"]
    assert np.array_equal(given.scaler_mean_, derived.scaler_mean_)
    assert_same_network_output(
        derived.decision_function(frame).to_numpy(),
        given.decision_function(frame.join(previous_hour_ohlc(frame["requests"]))).to_numpy(),
    )
    with pytest.raises(DetectorError, match=r"takes the target alone .* got 3 columns"):
        make_detector("mlstm_fcn", window=8, epochs=1).fit(train.join(ohlc[["open", "close"]]))


def test_training_skips_windows_with_gaps() -> None:
    train = daily_cycle(days=2)
    train.iloc[100:110, 0] = np.nan
    train.iloc[::50, 0] = np.nan
    detector = make_detector("gru", window=8, epochs=1).fit(train)

    assert np.isfinite(detector.training_loss_ + detector.validation_loss_).all()
    assert np.isfinite(detector.decision_scores_).all()
    # Rows 100 to 109 are missing: windows of 8 rows read them up to row 117.
    assert (detector.decision_scores_[100:118] == 0).all()
    assert detector.decision_scores_[118] > 0
    assert detector.expected(train).iloc[101:118].isna().all()


def test_too_short_or_too_gappy_training_is_refused() -> None:
    with pytest.raises(DetectorError, match="window=1440 needs at least 2880 training rows, got 2016"):
        make_detector("lstm").fit(daily_cycle())
    with pytest.raises(DetectorError, match="window=30 needs at least 60 training rows, got 59"):
        make_detector("lstm_autoencoder").fit(daily_cycle().iloc[:59])
    gappy = daily_cycle(days=1)
    gappy.iloc[::8, 0] = np.nan
    with pytest.raises(DetectorError, match="only 0 training windows of 8 rows are free of gaps"):
        make_detector("gru", window=8).fit(gappy)


def test_invalid_parameters_are_refused() -> None:
    frame = daily_cycle(days=1)
    with pytest.raises(DetectorError, match=r"validation_split must be in \[0, 1\), got 1.0"):
        make_detector("gru", window=8, validation_split=1.0).fit(frame)
    with pytest.raises(DetectorError, match="epochs must be an integer >= 1, got 0"):
        make_detector("gru", window=8, epochs=0).fit(frame)
    with pytest.raises(DetectorError, match=r"windows_per_epoch must be None or an integer >= 4 \* batch"):
        make_detector("gru", window=8, windows_per_epoch=100).fit(frame)
    with pytest.raises(DetectorError, match="cnn1d: cannot build the model with window=4"):
        make_detector("cnn1d", window=4).fit(frame)


# -- the registry and the parts -------------------------------------------------------------


def test_registry_builds_each_model_with_the_seeds_defaults() -> None:
    defaults = {name: make_detector(name).get_params() for name in [*FORECASTERS, "lstm_autoencoder"]}

    assert {name: (p["window"], p["batch_size"]) for name, p in defaults.items()} == {
        "lstm": (1440, 64),
        "gru": (1440, 64),
        "gru_dense": (1440, 64),
        "cnn1d": (1440, 32),
        "lstm_ohlc": (1440, 64),
        "mlstm_fcn": (1440, 64),
        "lstm_autoencoder": (30, 32),
    }
    assert all(p["epochs"] == 10 and p["validation_split"] == 0.1 for p in defaults.values())
    assert all(p["windows_per_epoch"] == 3072 for p in defaults.values())
    assert detector_class("cnn1d") is Cnn1dDetector
    assert detector_class("lstm_autoencoder") is LstmAutoencoderDetector
    assert clone(make_detector("cnn1d", window=60)).get_params()["window"] == 60


def test_window_batches_copy_one_batch_of_the_strided_views_at_a_time() -> None:
    values = np.arange(100, dtype=float).reshape(50, 2)
    windows, targets = forecast_pairs(values, values[:, :1], 5)
    positions = np.arange(0, 45, 2)
    batches = WindowBatches(windows, positions, batch_size=4, targets=targets)

    assert np.shares_memory(windows, values) and np.shares_memory(targets, values)
    assert len(batches) == 6  # 23 windows
    inputs, outputs = batches[1]
    assert inputs.dtype == np.float32 and inputs.shape == (4, 5, 2)
    assert np.array_equal(inputs[0], values[8:13])
    assert np.array_equal(outputs[:, 0], values[[13, 15, 17, 19], 0])
    assert batches[5][0].shape == (3, 5, 2)

    shuffled = WindowBatches(windows, positions, batch_size=4, targets=targets, seed=0)
    first_epoch = shuffled.positions.copy()
    shuffled.on_epoch_end()
    assert sorted(first_epoch) == list(positions)
    assert not np.array_equal(first_epoch, positions)
    assert not np.array_equal(first_epoch, shuffled.positions)

    # A sample per epoch: as many windows each time, drawn afresh from all of them.
    sampled = WindowBatches(windows, positions, batch_size=4, targets=targets, seed=0, per_epoch=8)
    assert len(sampled) == 2
    epochs = []
    for _ in range(6):
        epochs.append(sampled.positions.copy())
        sampled.on_epoch_end()
    assert all(len(set(epoch)) == 8 and set(epoch) <= set(positions) for epoch in epochs)
    assert len(set(np.concatenate(epochs))) > 16
    # A sample as large as the positions is a shuffle.
    assert len(WindowBatches(windows, positions, batch_size=4, targets=targets, seed=0, per_epoch=23)) == 6


def test_validation_windows_are_the_last_ones_in_time() -> None:
    train, validation = chronological_split(np.arange(95), 0.1)
    assert list(validation) == list(range(85, 95))
    assert list(train) == list(range(85))
    train, validation = chronological_split(np.arange(95), 0.0)
    assert len(train) == 95 and len(validation) == 0
