"""Anomaly likelihood: how surprising each row is against the series' own history, on [0, 1].

In the spirit of Numenta's post-processing of HTM scores (a raw score judged against the history of
raw scores, so one threshold serves every series, then repeated alarms filtered so that the first
one stands out), with simple causal raw signals in place of HTM:

- ``range``: where the value lies against the range of every earlier value (training included):
  ``max(x - low, high - x) / (high - low)``, above 1 for a value beyond that range. Numenta's
  detector flags the same event (its "spatial anomaly").
- ``level``: ``|x - median| / scale`` over the ``level_window`` rows before the row, the scale
  being their interquartile range in standard-deviation units, floored at 5% of the training
  series' robust spread.
- ``shape``: the Euclidean distance from the last ``shape_length`` values to the nearest earlier,
  non-overlapping run of as many values within ``shape_history`` rows: a pattern not seen lately.
- ``season``: ``|x_t - x_{t-P}|`` averaged over ``season_smoothing`` rows, where ``P`` is the
  period (in rows) the training series repeats at, found by autocorrelation; no opinion when the
  training series shows none.
- ``base``: optionally, the scores of any registered detector.

Each signal's *surprise* is its value over its own running record: the largest earlier value,
decaying by half every ``memory`` rows so that one old incident does not blind the signal for
good. ``range`` keeps its full history, as it is already relative to the spread of the series.
The row's surprise ``r`` is the largest of the range surprise and ``secondary_weight`` times each
other surprise, and ``score = r / (1 + r)``: 1/2 for a row that equals a record. A surprise of at
least ``1 + record_margin`` is an alarm; an alarm within ``refractory`` rows after another reads at
most 1/2, so a long anomaly raises one alarm, at its start.

Why records, not Numenta's Gaussian tail of a short-term mean against a long-term mean and
standard deviation: in development on NAB, that tail scored below 20 standard points for these
signals on their own and lowered the ``range`` signal's 57 when combined with it (heavy-tailed
signals cross a Gaussian tail often). The defaults are the best global configuration found on NAB;
``bench/nab.py`` prints it beside its ablations and neighbours.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from passion_tasks.detectors.base import Detector, DetectorError
from passion_tasks.detectors.persistence import load_detector, save_detector
from passion_tasks.detectors.thresholds import robust_spread

SIGNALS = ("range", "level", "shape", "season")

#: The level signal's scale floor, as a fraction of the training series' robust spread.
LEVEL_SCALE_FLOOR = 0.05
#: Interquartile range of a normal distribution in standard deviations.
IQR_TO_SIGMA = 1.349
BASE_FOLDER = "base"


class AnomalyLikelihoodDetector(Detector):
    """Surprise of the target column against its history; see the module docstring.

    Scores lie on [0, 1] (1 for an infinite surprise, such as a change after a perfectly
    repeating training season, or one too large for floating point); the default threshold,
    ``1.01 / 2.01``, is the alarm level of the default ``record_margin``. Only the first column is
    read. Every signal is causal; the running extremes and records start from those of the
    training series, so a frame scored later may begin anywhere, but the level, shape and season
    signals need ``level_window // 2``, ``shape_length`` and ``P`` rows of context before they
    have an opinion, and alarms before the frame do not suppress alarms in it. A missing value
    scores 0.
    """

    name = "likelihood"
    calibrated = True
    _learned_attributes = (
        "value_min_",
        "value_max_",
        "level_scale_floor_",
        "season_period_",
        "signal_records_",
    )
    _model_attributes: ClassVar[tuple[str, ...]] = ("base_detector_",)

    def __init__(
        self,
        signals: tuple[str, ...] | list[str] = SIGNALS,
        base: str | None = None,
        base_params: dict[str, Any] | None = None,
        level_window: int = 288,
        shape_length: int = 8,
        shape_history: int = 2000,
        season_smoothing: int = 5,
        min_season_correlation: float = 0.5,
        memory: float = 2000.0,
        secondary_weight: float = 0.8,
        record_margin: float = 0.01,
        refractory: int = 30,
        threshold: str | float = 1.01 / 2.01,
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(threshold=threshold, threshold_params=threshold_params)
        self.signals = signals
        self.base = base
        self.base_params = base_params
        self.level_window = level_window
        self.shape_length = shape_length
        self.shape_history = shape_history
        self.season_smoothing = season_smoothing
        self.min_season_correlation = min_season_correlation
        self.memory = memory
        self.secondary_weight = secondary_weight
        self.record_margin = record_margin
        self.refractory = refractory

    def _fit(self, frame: pd.DataFrame) -> None:
        self._check_params()
        values = frame.iloc[:, 0].to_numpy()
        observed = values[~np.isnan(values)]
        self.value_min_ = float(observed.min())
        self.value_max_ = float(observed.max())
        self.level_scale_floor_ = LEVEL_SCALE_FLOOR * robust_spread(observed)
        self.season_period_ = repeating_period(values, self.min_season_correlation)
        if self.base is not None:
            self.base_detector_ = self._new_base().fit(frame)
        signals, _ = self._secondary_signals(frame)
        # Plain floats: a signal without an opinion anywhere in training records 0.
        self.signal_records_ = {
            name: float(np.nanmax(signal)) if np.isfinite(signal).any() else 0.0
            for name, signal in signals.items()
        }

    def _score_rows(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        values = frame.iloc[:, 0].to_numpy()
        surprises = []
        if "range" in self.signals:
            surprises.append(range_surprise(values, self.value_min_, self.value_max_))
        signals, expected = self._secondary_signals(frame)
        for name, signal in signals.items():
            record = self.signal_records_[name]
            surprises.append(self.secondary_weight * record_surprise(signal, record, self.memory))
        surprise = np.full(len(values), np.nan)
        for one in surprises:
            surprise = np.fmax(surprise, one)
        surprise = suppress_repeated_alarms(surprise, 1 + self.record_margin, self.refractory)
        surprise[np.isnan(values)] = np.nan
        with np.errstate(invalid="ignore"):
            scores = np.where(np.isinf(surprise), 1.0, surprise / (1 + surprise))
        return scores, expected

    def _secondary_signals(self, frame: pd.DataFrame) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The raw signals judged against their decaying records, and the expected value.

        ``expected`` is the level signal's trailing median (NaN without the level signal).
        """
        values = frame.iloc[:, 0].to_numpy()
        signals = {}
        expected = np.full(len(values), np.nan)
        if "level" in self.signals:
            signals["level"], expected = level_deviation(values, self.level_window, self.level_scale_floor_)
        if "shape" in self.signals:
            signals["shape"] = shape_novelty(values, self.shape_length, self.shape_history)
        if "season" in self.signals:
            signals["season"] = seasonal_deviation(values, self.season_period_, self.season_smoothing)
        if self.base is not None:
            signals["base"] = self.base_detector_.decision_function(frame).to_numpy()
        return signals, expected

    def _new_base(self) -> Detector:
        from passion_tasks.detectors import make_detector

        if self.base == self.name:
            raise DetectorError(f"{self.name}: a likelihood detector cannot wrap itself")
        return make_detector(self.base, **(self.base_params or {}))

    def _check_params(self) -> None:
        unknown = sorted(set(self.signals) - set(SIGNALS))
        if unknown or not (self.signals or self.base):
            raise DetectorError(
                f"{self.name}: signals must be some of {', '.join(SIGNALS)} (or none with a base "
                f"detector), got {list(self.signals)!r}"
            )
        integers = {
            "level_window": 2,
            "shape_length": 1,
            "shape_history": 2,
            "season_smoothing": 1,
            "refractory": 0,
        }
        self._check_integers(integers)
        if self.shape_history < 2 * self.shape_length:
            raise DetectorError(
                f"{self.name}: shape_history ({self.shape_history}) must be at least twice shape_length "
                f"({self.shape_length}), so that non-overlapping runs can be compared"
            )
        if not 0 <= self.min_season_correlation <= 1:
            raise DetectorError(
                f"{self.name}: min_season_correlation must be in [0, 1], got {self.min_season_correlation!r}"
            )
        if not self.memory > 0:
            raise DetectorError(f"{self.name}: memory must be a positive number of rows, got {self.memory!r}")
        if not 0 < self.secondary_weight <= 1:
            raise DetectorError(
                f"{self.name}: secondary_weight must be in (0, 1], got {self.secondary_weight!r}"
            )
        if not self.record_margin >= 0:
            raise DetectorError(f"{self.name}: record_margin must be >= 0, got {self.record_margin!r}")

    def _save_model(self, folder: Path) -> None:
        if self.base is not None:
            save_detector(self.base_detector_, folder / BASE_FOLDER)

    def _load_model(self, folder: Path) -> None:
        if self.base is not None:
            self.base_detector_ = load_detector(folder / BASE_FOLDER, expected=self.base)


# -- raw signals ----------------------------------------------------------------------------------


def level_deviation(values: np.ndarray, window: int, scale_floor: float) -> tuple[np.ndarray, np.ndarray]:
    """``|x - median| / scale`` over the ``window`` rows before each row, and that median.

    The scale is the interquartile range in standard-deviation units, floored at ``scale_floor``.
    Where fewer than ``window // 2`` of those rows are observed, the last median and scale are
    carried forward; before the first, there is no opinion (NaN).
    """
    history = pd.Series(values).shift(1).rolling(window, min_periods=max(1, window // 2))
    baseline = pd.DataFrame(
        {"median": history.median(), "spread": history.quantile(0.75) - history.quantile(0.25)}
    ).ffill()
    median = baseline["median"].to_numpy()
    scale = np.maximum(baseline["spread"].to_numpy() / IQR_TO_SIGMA, scale_floor)
    return np.abs(values - median) / scale, median


def shape_novelty(values: np.ndarray, length: int, history: int) -> np.ndarray:
    """Distance from each row's last ``length`` values to the nearest earlier run within ``history`` rows.

    The earlier runs end ``length`` to ``history`` rows before the row, so they never overlap it.
    Runs holding a missing value are skipped; a row whose own run holds one has no opinion (NaN).
    One pass per lag: the squared distances of all rows at that lag are a moving sum of squared
    differences, so the cost is ``len(values) * history``, independent of ``length``.
    """
    n = len(values)
    nearest = np.full(n, np.inf)
    window = np.ones(length)
    for lag in range(length, min(history, n - length) + 1):
        distances = np.convolve((values[lag:] - values[:-lag]) ** 2, window, "valid")
        tail = nearest[lag + length - 1 :]
        np.fmin(tail, distances, out=tail)
    nearest[np.isinf(nearest)] = np.nan
    return np.sqrt(nearest)


def seasonal_deviation(values: np.ndarray, period: int, smoothing: int) -> np.ndarray:
    """``|x_t - x_{t-period}|`` averaged over the last ``smoothing`` rows; NaN everywhere without a period."""
    if period == 0:
        return np.full(len(values), np.nan)
    series = pd.Series(values)
    deviation = (series - series.shift(period)).abs()
    return deviation.rolling(smoothing, min_periods=1).mean().to_numpy()


def repeating_period(values: np.ndarray, min_correlation: float) -> int:
    """The lag (rows) with the highest autocorrelation, if at least ``min_correlation``; else 0.

    Lags from the first where the autocorrelation turns negative (the end of short-range
    persistence) up to half the series. Missing values count as the mean.
    """
    centred = np.nan_to_num(values - np.nanmean(values))
    n = len(centred)
    if not centred.any():
        return 0
    spectrum = np.fft.rfft(centred, 2 * n)
    covariance = np.fft.irfft(spectrum * np.conj(spectrum))[:n] / (n - np.arange(n))
    correlation = covariance / covariance[0]
    negative = np.flatnonzero(correlation < 0)
    if negative.size == 0 or negative[0] > n // 2:
        return 0
    lags = np.arange(negative[0], n // 2 + 1)
    best = int(lags[np.argmax(correlation[lags])])
    return best if correlation[best] >= min_correlation else 0


# -- surprise ---------------------------------------------------------------------------------------


def range_surprise(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``max(x - low_t, high_t - x) / (high_t - low_t)`` against the extremes of all earlier values.

    ``low`` and ``high`` are the extremes before the first row (the training series'); missing
    values are skipped.
    """
    highs = np.fmax.accumulate(np.concatenate([[high], values]))[:-1]
    lows = np.fmin.accumulate(np.concatenate([[low], values]))[:-1]
    return np.maximum(values - lows, highs - values) / (highs - lows)


def record_surprise(signal: np.ndarray, record: float, memory: float) -> np.ndarray:
    """``signal_t`` over the largest earlier value, each value decaying by half every ``memory`` rows.

    ``record`` is the record before the first row; it decays from there. Missing values (NaN) are
    skipped and have no opinion. 0 over a record of 0 is no surprise (0); a positive value over a
    record of 0 is an infinite one.
    """
    log_decay = -np.log(2) / memory
    rows = np.arange(len(signal))
    with np.errstate(divide="ignore"):
        logs = np.log(signal)
        # max_u log(s_u) + (t - u) log_decay = t log_decay + max_u (log(s_u) - u log_decay)
        running = np.fmax.accumulate(np.concatenate([[np.log(record) + log_decay], logs - rows * log_decay]))
    previous = running[:-1] + rows * log_decay
    with np.errstate(invalid="ignore", over="ignore"):
        surprise = np.exp(logs - previous)
    surprise[signal == 0] = 0.0
    return surprise


def suppress_repeated_alarms(surprise: np.ndarray, level: float, rows: int) -> np.ndarray:
    """Alarms (``surprise >= level``) within ``rows`` rows after another alarm drop to 1.

    Suppressed rows still start a suppression period, so an alarm that lasts raises one alarm.
    """
    if rows == 0:
        return surprise
    alarms = pd.Series(surprise >= level, dtype="float64")
    recent = alarms.shift(1).rolling(rows, min_periods=1).max().fillna(0).to_numpy() > 0
    return np.where(alarms.to_numpy().astype(bool) & recent, np.minimum(surprise, 1.0), surprise)
