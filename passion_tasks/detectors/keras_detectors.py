"""The seed notebooks' Keras models behind the detector contract: six forecasters and an autoencoder;
and TSB-AD's CNN of an entity's metrics (``windowed_cnn``, ``WindowedCnnDetector``).

Forecasters (``lstm``, ``gru``, ``gru_dense``, ``cnn1d``, ``lstm_ohlc``, ``mlstm_fcn``) predict the target
(the first column) at row t from rows ``t - window`` to ``t - 1``. The score is the absolute residual in
training-scaled units (standard deviations of the training target); ``expected`` is the forecast in the
target's own units. The autoencoder (``lstm_autoencoder``) reconstructs the window of rows
``t - window + 1`` to ``t``; the score is that window's reconstruction MAE (scaled units) and ``expected``
the reconstruction of its last step. A planted spike therefore raises the autoencoder's scores for the
``window`` rows whose windows hold it.

Where Passion departs from the seeds, on purpose:

- Causal training. The seeds standardised the whole series and split windows with ``shuffle=True``,
  so the model was fitted on the future it was then tested on. Here the mean and standard deviation come
  from the training frame only (``scaler_mean_``, ``scaler_scale_``), and the validation windows are the
  last ``validation_split`` of the training windows in time, never mixed into training. Training windows
  are shuffled among themselves between epochs.
- No window tensor. Windows are strided views of the scaled series (``windows.py``) fed to Keras through
  a ``PyDataset`` that copies one batch at a time: a 1440-step window over 30 days of minutes costs
  ``batch_size * 1440 * features`` floats in memory, not the seed's 500 MB.
- A sample of windows per epoch. Each epoch trains on ``windows_per_epoch`` windows drawn afresh (3,072
  by default; ``None``: all), validation on an evenly spaced quarter of that, with early stopping on it:
  the seeds' window of 1,440 steps and 10 epochs then train in minutes on two cores, not the better part
  of an hour per series-month (``bench/networks.py`` measures both).
- The autoencoder learns to reconstruct its input window; the CDN seed passed the next value as the
  target, which Keras broadcast against the reconstruction.

Gaps: a window in which the target is missing gives no opinion (score NaN, which the contract reads as 0;
``expected`` NaN) and is skipped in training; a forecaster also has no score for a missing target value.
Missing values of the other features are filled with their training mean (0 once scaled). That covers
``lstm_ohlc`` and ``mlstm_fcn``: they take the target alone and derive its previous-hour open, close, max
and min themselves (``previous_hour_ohlc``), which are missing for the frame's first clock hour and after a
whole hour without data; a frame of exactly five columns (value, open, close, max, min) is used as given.
The first ``window`` rows of a frame have no history and score 0: score a day with at least ``window``
rows (and, for the OHLC models, the clock hour) before it.

TensorFlow is imported with this module; the registry imports it only when one of these is built.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pandas as pd

from passion_tasks.detectors.architectures import ARCHITECTURES, OHLC_FEATURES, build_windowed_cnn
from passion_tasks.detectors.base import Detector, DetectorError
from passion_tasks.detectors.windows import evenly_spaced, forecast_pairs, sliding_windows
from passion_tasks.features import previous_hour_ohlc

MODEL_FILE = "model.keras"
#: Fewer gap-free training windows than this leave nothing to fit and validate on.
MIN_TRAINING_WINDOWS = 10
#: Training windows drawn for each epoch (a fresh sample each time), by default.
WINDOWS_PER_EPOCH = 3072
#: Windows per inference batch: a few tens of MB for a 1440-step window; scores do not depend on it.
PREDICT_BATCH = 256


class WindowBatches(keras.utils.PyDataset):
    """The windows at ``positions`` (with their ``targets``) in batches, copied one batch at a time.

    ``windows`` and ``targets`` are indexed alike, typically strided views; only the batch being served is
    materialised, as float32. With a ``seed`` the positions are shuffled before each epoch, and with
    ``per_epoch`` each epoch is a fresh random sample of that many of them: over the epochs the model
    sees windows from the whole range, at the cost of a few thousand windows an epoch.
    """

    def __init__(
        self,
        windows: np.ndarray,
        positions: np.ndarray,
        batch_size: int,
        targets: np.ndarray | None = None,
        seed: int | None = None,
        per_epoch: int | None = None,
    ):
        super().__init__()
        self.windows = windows
        self.candidates = np.array(positions)
        self.per_epoch = per_epoch if per_epoch is not None and per_epoch < len(self.candidates) else None
        self.positions = self.candidates[: self.per_epoch]
        self.batch_size = batch_size
        self.targets = targets
        self._rng = None if seed is None else np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self) -> int:
        return math.ceil(len(self.positions) / self.batch_size)

    def batch_positions(self, index: int) -> np.ndarray:
        return self.positions[index * self.batch_size : (index + 1) * self.batch_size]

    def __getitem__(self, index: int) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        rows = self.batch_positions(index)
        inputs = self.windows[rows].astype(np.float32)
        if self.targets is None:
            return inputs
        return inputs, self.targets[rows].astype(np.float32)

    def on_epoch_end(self) -> None:
        if self._rng is None:
            return
        if self.per_epoch is None:
            self._rng.shuffle(self.positions)
        else:
            self.positions = self._rng.choice(self.candidates, self.per_epoch, replace=False)


class KerasDetector(Detector):
    """Shared by the Keras detectors: scaling, windows, training, inference and the model file.

    Subclasses set ``name`` (the key of their builder in ``ARCHITECTURES``) and implement
    ``_training_windows`` and ``_score_rows``.
    """

    _model_attributes = ("model_",)
    _learned_attributes = ("scaler_mean_", "scaler_scale_", "training_loss_", "validation_loss_")

    def __init__(
        self,
        window: int = 1440,
        epochs: int = 10,
        batch_size: int = 64,
        validation_split: float = 0.1,
        patience: int = 3,
        windows_per_epoch: int | None = WINDOWS_PER_EPOCH,
        random_state: int = 0,
        verbose: int = 0,
        threshold: str | float = "robust",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(threshold=threshold, threshold_params=threshold_params)
        self.window = window
        self.epochs = epochs
        self.batch_size = batch_size
        self.validation_split = validation_split
        self.windows_per_epoch = windows_per_epoch
        self.patience = patience
        self.random_state = random_state
        self.verbose = verbose

    # -- what a subclass implements -----------------------------------------------------------

    def _training_windows(self, inputs: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(windows, targets)``, indexed alike, from the filled ``inputs`` and the scaled ``target``."""
        raise NotImplementedError

    def _trainable(self, target: np.ndarray) -> np.ndarray:
        """Which training windows the model may learn from (no gap in them or in their target)."""
        raise NotImplementedError

    # -- fitting ------------------------------------------------------------------------------

    def _fit(self, frame: pd.DataFrame) -> None:
        self._check_params()
        raw = self._model_inputs(frame)
        needed = 2 * self.window
        if len(raw) < needed:
            raise DetectorError(
                f"{self.name}: window={self.window} needs at least {needed} training rows, got {len(raw)}; "
                "give a longer training range or a smaller window"
            )
        self.scaler_mean_, self.scaler_scale_ = fit_scaler(raw)
        scaled = self._scaled(raw)
        windows, targets = self._training_windows(filled(scaled), scaled[:, :1])
        positions = np.flatnonzero(self._trainable(scaled[:, 0]))
        if len(positions) < MIN_TRAINING_WINDOWS:
            raise DetectorError(
                f"{self.name}: only {len(positions)} training windows of {self.window} rows are free of "
                f"gaps in {frame.columns[0]!r}; at least {MIN_TRAINING_WINDOWS} are needed"
            )
        train, validation = chronological_split(positions, self.validation_split)

        keras.utils.set_random_seed(self.random_state)
        self.model_ = self._new_model(scaled.shape[1])
        monitor = "val_loss" if len(validation) else "loss"
        # A month of minutes holds 40,000 windows; every epoch over all of them at 1440 steps takes
        # minutes on two cores. Each epoch draws its own sample; validation is a fixed, evenly spaced one.
        checked = (
            validation
            if self.windows_per_epoch is None
            else evenly_spaced(validation, self.windows_per_epoch // 4)
        )
        history = self.model_.fit(
            WindowBatches(
                windows,
                train,
                self.batch_size,
                targets,
                seed=self.random_state,
                per_epoch=self.windows_per_epoch,
            ),
            validation_data=(
                WindowBatches(windows, checked, self.batch_size, targets) if len(checked) else None
            ),
            epochs=self.epochs,
            callbacks=[
                *self._callbacks(),
                keras.callbacks.EarlyStopping(
                    monitor=monitor, patience=self.patience, restore_best_weights=True
                ),
            ],
            verbose=self.verbose,
        )
        self.training_loss_ = [float(loss) for loss in history.history["loss"]]
        self.validation_loss_ = [float(loss) for loss in history.history.get("val_loss", [])]
        self.model_ = self._scoring_model(self.model_)

    def _callbacks(self) -> list[keras.callbacks.Callback]:
        """Callbacks the training needs beyond early stopping (none by default)."""
        return []

    def network(self, features: int) -> keras.Model:
        """The network that scores, untrained, for ``features`` input columns at this detector's window."""
        return self._scoring_model(self._new_model(features))

    def _new_model(self, features: int) -> keras.Model:
        try:
            return self._build_model(features)
        except ValueError as exc:
            raise DetectorError(
                f"{self.name}: cannot build the model with window={self.window}: {exc}"
            ) from exc

    def _build_model(self, features: int) -> keras.Model:
        """The network to train, compiled, for ``features`` input columns at this detector's window: the
        seed's of this name."""
        return ARCHITECTURES[self.name](self.window, features)

    def _scoring_model(self, trained: keras.Model) -> keras.Model:
        """The model kept and saved once ``trained`` has learned: the trained one itself by default."""
        return trained

    def _check_params(self) -> None:
        self._check_integers({"window": 1, "epochs": 1, "batch_size": 1, "patience": 0, "random_state": 0})
        if self.windows_per_epoch is not None and not (
            isinstance(self.windows_per_epoch, int | np.integer)
            and self.windows_per_epoch >= 4 * self.batch_size
        ):
            raise DetectorError(
                f"{self.name}: windows_per_epoch must be None or an integer >= 4 * batch_size, "
                f"got {self.windows_per_epoch!r}"
            )
        if not 0 <= self.validation_split < 1:
            raise DetectorError(
                f"{self.name}: validation_split must be in [0, 1), got {self.validation_split!r}"
            )

    # -- inputs and outputs -------------------------------------------------------------------

    def _model_inputs(self, frame: pd.DataFrame) -> np.ndarray:
        """The model's input columns in original units, one row per frame row."""
        return frame.to_numpy()

    def _scaled(self, raw: np.ndarray) -> np.ndarray:
        return (raw - self.scaler_mean_) / self.scaler_scale_

    def _target_units(self, scaled_target: np.ndarray) -> np.ndarray:
        return scaled_target * self.scaler_scale_[0] + self.scaler_mean_[0]

    def _outputs(
        self, windows: np.ndarray, positions: np.ndarray
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(positions, inputs, model outputs)`` for the windows at ``positions``, batch by batch."""
        batches = WindowBatches(windows, positions, PREDICT_BATCH)
        for index in range(len(batches)):
            inputs = batches[index]
            yield batches.batch_positions(index), inputs, np.asarray(self.model_.predict_on_batch(inputs))

    # -- the model file -----------------------------------------------------------------------

    def _save_model(self, folder: Path) -> None:
        self.model_.save(folder / MODEL_FILE)

    def _load_model(self, folder: Path) -> None:
        self.model_ = keras.saving.load_model(folder / MODEL_FILE, compile=False, safe_mode=True)


class KerasReconstructor(KerasDetector):
    """Reconstructs the window of rows ``t - window + 1`` to ``t`` and learns from every gap-free window;
    a subclass scores the row that ends each window (``_score_rows``)."""

    def _training_windows(self, inputs: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        windows = sliding_windows(inputs, self.window)
        return windows, windows

    def _trainable(self, target: np.ndarray) -> np.ndarray:
        return gap_free(target, self.window)

    def _reconstructions(self, frame: pd.DataFrame) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(rows, windows, model outputs)``, batch by batch, for every gap-free window of ``frame``:
        ``rows`` are the frame rows that end the windows."""
        scaled = self._scaled(self._model_inputs(frame))
        if len(scaled) < self.window:
            return
        windows = sliding_windows(filled(scaled), self.window)
        positions = np.flatnonzero(gap_free(scaled[:, 0], self.window))
        for batch, inputs, outputs in self._outputs(windows, positions):
            yield batch + self.window - 1, inputs, outputs


class KerasForecaster(KerasDetector):
    """Predicts row t from the ``window`` rows before it: the target, scored by its absolute residual."""

    def _training_windows(self, inputs: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return forecast_pairs(inputs, target, self.window)

    def _trainable(self, target: np.ndarray) -> np.ndarray:
        return gap_free(target, self.window)[:-1] & ~np.isnan(target[self.window :])

    def _score_rows(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        scaled = self._scaled(self._model_inputs(frame))
        target = scaled[:, 0]
        forecast = np.full(len(target), np.nan)
        if len(target) > self.window:
            windows, _ = forecast_pairs(filled(scaled), target, self.window)
            positions = np.flatnonzero(gap_free(target, self.window)[:-1])
            for batch, _, outputs in self._outputs(windows, positions):
                forecast[batch + self.window] = outputs[:, 0]
        return np.abs(target - forecast), self._target_units(forecast)


class LstmDetector(KerasForecaster):
    """LSTM(50) + Dense(1) forecaster (Passion v4.1, section 3)."""

    name = "lstm"


class GruDetector(KerasForecaster):
    """GRU(50) + Dense(1) forecaster (Passion v4.1, "GRU simple")."""

    name = "gru"


class GruDenseDetector(KerasForecaster):
    """GRU(50), Dense(100), Dropout(0.2), Dense(1) forecaster (Passion v4.1, "GRU + 1D CNN")."""

    name = "gru_dense"


class Cnn1dDetector(KerasForecaster):
    """Two Conv1D(64, 3), pooling and Dense layers (Passion v4.1, section 4); batches of 32 as in the seed.

    The two convolutions and the pooling need ``window >= 6``.
    """

    name = "cnn1d"

    def __init__(
        self,
        window: int = 1440,
        epochs: int = 10,
        batch_size: int = 32,
        validation_split: float = 0.1,
        patience: int = 3,
        windows_per_epoch: int | None = WINDOWS_PER_EPOCH,
        random_state: int = 0,
        verbose: int = 0,
        threshold: str | float = "robust",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(
            window=window,
            epochs=epochs,
            batch_size=batch_size,
            validation_split=validation_split,
            patience=patience,
            windows_per_epoch=windows_per_epoch,
            random_state=random_state,
            verbose=verbose,
            threshold=threshold,
            threshold_params=threshold_params,
        )


class WindowedCnnDetector(KerasForecaster):
    """TSB-AD's CNN on every metric of an entity (one of its best multivariate methods): each metric's
    value at row t forecast from the ``window`` rows of all of them before it; the row scores the mean of
    its metrics' squared residuals (training-scaled units), as TSB-AD scores it.

    Where Passion departs from TSB-AD's code: its windows are reshaped, not transposed, to channels first
    (so its convolutions mix time steps and metrics); here a Conv1D runs along time, channels last. Its
    pooling concatenates the time average twice where the design (fastai's concat pooling) means the
    average and the maximum; here it is the average and the maximum. No learning-rate schedule; early
    stopping on the last fifth of the training windows in time, as TSB-AD validates.
    """

    name = "windowed_cnn"
    reads_every_column = True

    def __init__(
        self,
        window: int = 100,
        epochs: int = 50,
        batch_size: int = 128,
        validation_split: float = 0.2,
        patience: int = 3,
        windows_per_epoch: int | None = WINDOWS_PER_EPOCH,
        random_state: int = 0,
        verbose: int = 0,
        threshold: str | float = "robust",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(
            window=window,
            epochs=epochs,
            batch_size=batch_size,
            validation_split=validation_split,
            patience=patience,
            windows_per_epoch=windows_per_epoch,
            random_state=random_state,
            verbose=verbose,
            threshold=threshold,
            threshold_params=threshold_params,
        )

    def _build_model(self, features: int) -> keras.Model:
        return build_windowed_cnn(self.window, features)

    def _training_windows(self, inputs: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return forecast_pairs(inputs, inputs, self.window)

    def _score_rows(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        scaled = self._scaled(self._model_inputs(frame))
        scores = np.full(len(scaled), np.nan)
        if len(scaled) > self.window:
            windows, following = forecast_pairs(filled(scaled), scaled, self.window)
            positions = np.flatnonzero(self._trainable(scaled[:, 0]))
            for batch, _, outputs in self._outputs(windows, positions):
                scores[batch + self.window] = forecast_scores(following[batch], outputs)
        return scores, np.full(len(scaled), np.nan)


def forecast_scores(actual: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """Each row's mean squared residual over its metrics; a metric missing in a row is left out of it."""
    return np.nanmean(np.square(actual - forecast), axis=1)


class OhlcForecaster(KerasForecaster):
    """A forecaster on the target and its previous clock hour's open, close, max and min."""

    def _model_inputs(self, frame: pd.DataFrame) -> np.ndarray:
        if frame.shape[1] == OHLC_FEATURES:
            return frame.to_numpy()
        if frame.shape[1] != 1:
            raise DetectorError(
                f"{self.name}: takes the target alone (its previous-hour open, close, max and min are "
                f"derived from it) or {OHLC_FEATURES} columns (value, open, close, max, min); "
                f"got {frame.shape[1]} columns {list(frame.columns)}"
            )
        target = frame.iloc[:, 0]
        return np.column_stack([target.to_numpy(), previous_hour_ohlc(target).to_numpy()])


class LstmOhlcDetector(OhlcForecaster):
    """LSTM(50) + Dense(1) on the value and its previous-hour OHLC (Passion v4.1, section 4.1)."""

    name = "lstm_ohlc"


class MlstmFcnDetector(OhlcForecaster):
    """MLSTM-FCN regressing the next value from the value and its previous-hour OHLC (section 4.2)."""

    name = "mlstm_fcn"


class LstmAutoencoderDetector(KerasReconstructor):
    """LSTM(128) encoder-decoder reconstructing the last ``window`` rows (the CDN seed: 30 rows, batch 32)."""

    name = "lstm_autoencoder"
    reads_every_column = True

    def __init__(
        self,
        window: int = 30,
        epochs: int = 10,
        batch_size: int = 32,
        validation_split: float = 0.1,
        patience: int = 3,
        windows_per_epoch: int | None = WINDOWS_PER_EPOCH,
        random_state: int = 0,
        verbose: int = 0,
        threshold: str | float = "robust",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(
            window=window,
            epochs=epochs,
            batch_size=batch_size,
            validation_split=validation_split,
            patience=patience,
            windows_per_epoch=windows_per_epoch,
            random_state=random_state,
            verbose=verbose,
            threshold=threshold,
            threshold_params=threshold_params,
        )

    def _score_rows(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        errors = np.full(len(frame), np.nan)
        last_step = np.full(len(frame), np.nan)
        for rows, inputs, reconstruction in self._reconstructions(frame):
            errors[rows] = np.abs(reconstruction - inputs).mean(axis=(1, 2))
            last_step[rows] = reconstruction[:, -1, 0]
        return errors, self._target_units(last_step)


def fit_scaler(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation of the observed values (StandardScaler's, NaN ignored).

    A constant column gets scale 1, as in scikit-learn; a column with no value at all gets mean 0 and
    scale 1, so that it reads as 0 (its fill value) once scaled.
    """
    observed = ~np.isnan(raw).all(axis=0)
    mean = np.zeros(raw.shape[1])
    scale = np.ones(raw.shape[1])
    mean[observed] = np.nanmean(raw[:, observed], axis=0)
    spread = np.nanstd(raw[:, observed], axis=0)
    scale[observed] = np.where(spread > 0, spread, 1.0)
    return mean, scale


def filled(scaled: np.ndarray) -> np.ndarray:
    """The scaled inputs with gaps at 0, the training mean, as float32 (gap windows are skipped anyway)."""
    return np.nan_to_num(scaled, nan=0.0).astype(np.float32)


def gap_free(target: np.ndarray, window: int) -> np.ndarray:
    """For each of the ``n - window + 1`` windows of ``target``: whether none of its values is missing."""
    missing = np.concatenate([[0], np.cumsum(np.isnan(target))])
    return missing[window:] - missing[:-window] == 0


def chronological_split(positions: np.ndarray, validation_split: float) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation positions: the last ``validation_split`` of ``positions`` validate."""
    held_out = math.ceil(len(positions) * validation_split)
    return positions[: len(positions) - held_out], positions[len(positions) - held_out :]
