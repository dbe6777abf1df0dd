"""Baseline detectors: simple, fast and robust, the bar every learned model has to clear."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from passion_tasks.detectors.base import Detector, DetectorError, learned_column
from passion_tasks.detectors.thresholds import MAD_TO_SIGMA, robust_spread

#: Rows of trailing windows sorted at once: bounds memory to about 8 MiB per array whatever the window.
_CHUNK_VALUES = 1 << 20


class RollingMadDetector(Detector):
    """Causal rolling median / MAD z-score of the target column.

    For each row t, ``expected`` is the median of the ``window`` rows before t (t excluded) and the
    scale is ``1.4826 * MAD`` of the same rows, floored at ``scale_floor`` times the training
    series' robust spread so that flat stretches do not divide by almost 0;
    ``score = |x_t - expected_t| / scale_t``.

    Gaps: missing values are skipped inside a window; where a window holds fewer than
    ``min_periods`` values (default ``window // 2``), the last baseline is carried forward, so the
    first values after an outage are judged against the level before it. A missing value, or a row
    with no history at all, scores 0.

    ``persistence`` > 1 scores each row by the median z-score of its last ``persistence`` rows, so a
    deviation must last that long to score high: one noisy minute of a low-volume rate does not.

    Scoring a day reads a day of history and the windows before it (``context``), not all of it: the
    same scores, unless an outage of over a day precedes the day (its first values then score 0).
    """

    name = "rolling_mad"
    _learned_attributes = ("scale_floor_",)

    def __init__(
        self,
        window: int = 60,
        min_periods: int | None = None,
        scale_floor: float = 0.05,
        persistence: int = 1,
        threshold: str | float = "robust",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(threshold=threshold, threshold_params=threshold_params)
        self.window = window
        self.min_periods = min_periods
        self.scale_floor = scale_floor
        self.persistence = persistence

    def _fit(self, frame: pd.DataFrame) -> None:
        self._check_params()
        observed = frame.iloc[:, 0].dropna().to_numpy()
        if observed.size < 2 * self.window:
            raise DetectorError(
                f"{self.name}: window={self.window} needs at least {2 * self.window} observed training "
                f"values, got {observed.size}; give a longer training range or a smaller window"
            )
        self.scale_floor_ = self.scale_floor * robust_spread(observed)

    def batch_key(self) -> tuple[int, int, int]:
        return self.window, self._min_periods(), self.persistence

    @classmethod
    def _score_matrix(
        cls, models: Sequence[Detector], values: np.ndarray, index: pd.DatetimeIndex, start: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        first, values = models[0], values[:, 0]
        # A score from ``start`` on is the median of the last ``persistence`` rows' deviations.
        needed = max(start - first.persistence + 1, 0)
        median, mad = trailing_median_mad(values, first.window, first._min_periods(), needed)
        expected = forward_filled(median)
        floors = learned_column(models, "scale_floor_")
        scores = np.abs(values - expected) / np.maximum(MAD_TO_SIGMA * forward_filled(mad), floors)
        if first.persistence > 1:
            scores = trailing_median(scores, first.persistence)
        return scores, expected

    def context(self) -> pd.Timedelta:
        # The windows behind the last ``persistence`` scores, and a day more: a baseline carried across
        # an outage (windows with fewer than ``min_periods`` values) comes from before the outage.
        return (self.window + self.persistence - 1) * self.step_ + pd.Timedelta(days=1)

    def _min_periods(self) -> int:
        return self.window // 2 if self.min_periods is None else self.min_periods

    def _check_params(self) -> None:
        self._check_integers({"window": 3, "persistence": 1})
        if not 1 <= self._min_periods() <= self.window:
            raise DetectorError(
                f"{self.name}: min_periods must be between 1 and window={self.window}, "
                f"got {self.min_periods!r}"
            )
        if not self.scale_floor > 0:
            raise DetectorError(f"{self.name}: scale_floor must be positive, got {self.scale_floor!r}")


def trailing_median_mad(
    values: np.ndarray, window: int, min_periods: int, start: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Median and MAD (unscaled) of the ``window`` values before each row, ignoring NaN, along the last
    axis (a series, or a series × steps matrix: each series its own row).

    NaN where fewer than ``min_periods`` of those values are observed, and before step ``start`` but
    at a series' last step with enough of them: forward filled from there, the rows from ``start`` on
    read what they would read with every row computed.
    """
    return _trailing_medians(values, window, min_periods, before=True, spread=True, start=start)


def trailing_median(
    values: np.ndarray, window: int, min_periods: int = 1, *, before: bool = False, start: int = 0
) -> np.ndarray:
    """Median of the ``window`` values up to and including each row (``before``: before it), ignoring
    NaN, along the last axis; NaN where fewer than ``min_periods`` of them are observed, and before
    ``start`` as ``trailing_median_mad`` leaves it. With the defaults, pandas'
    ``rolling(window, min_periods=1).median()``."""
    return _trailing_medians(values, window, min_periods, before=before, spread=False, start=start)[0]


def forward_filled(values: np.ndarray) -> np.ndarray:
    """Each NaN replaced by the last value before it that is not NaN (NaN while there is none yet),
    along the last axis."""
    steps = np.arange(values.shape[-1])
    last = np.maximum.accumulate(np.where(np.isnan(values), 0, steps), axis=-1)
    return np.take_along_axis(values, last, axis=-1)


def _trailing_medians(
    values: np.ndarray, window: int, min_periods: int, *, before: bool, spread: bool, start: int = 0
) -> tuple[np.ndarray, np.ndarray | None]:
    """Median (and MAD when ``spread``) of each row's trailing window, ``before`` it or up to it."""
    shape = np.shape(values)
    series = np.reshape(values, (-1, shape[-1]))
    count, steps = series.shape
    observed = np.zeros((count, steps + 1), dtype=np.int64)
    np.cumsum(~np.isnan(series), axis=1, out=observed[:, 1:])
    ends = np.arange(steps) + (0 if before else 1)
    counts = observed[:, ends] - observed[:, np.maximum(ends - window, 0)]
    # Window t of a series is values[t - window : t] (before) or values[t - window + 1 : t + 1], with
    # NaN before the first value.
    padded = np.concatenate([np.full((count, window), np.nan), series], axis=1)
    windows = sliding_window_view(padded, window, axis=1)[:, (0 if before else 1) :][:, :steps]
    median = np.full((count, steps), np.nan)
    mad = np.full((count, steps), np.nan) if spread else None
    enough = counts >= min_periods
    if start > 0:
        earlier = enough[:, :start]
        last = start - 1 - np.argmax(earlier[:, ::-1], axis=1)
        seeded = np.flatnonzero(earlier.any(axis=1))
        earlier[:] = False
        enough[seeded, last[seeded]] = True
    of, at = np.nonzero(enough)
    for chunk in np.array_split(np.arange(len(of)), max(1, len(of) * window // _CHUNK_VALUES)):
        block, block_counts = windows[of[chunk], at[chunk]], counts[of[chunk], at[chunk]]
        middle = median_of_rows(block, block_counts)
        median[of[chunk], at[chunk]] = middle
        if mad is not None:
            mad[of[chunk], at[chunk]] = median_of_rows(np.abs(block - middle[:, None]), block_counts)
    return median.reshape(shape), None if mad is None else mad.reshape(shape)


def median_of_rows(block: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Median of each row's first ``counts`` values once sorted (NaN sorts last): each row's median
    ignoring NaN, when ``counts`` are its values that are not NaN."""
    ordered = np.sort(block, axis=1)
    rows = np.arange(len(block))
    return (ordered[rows, (counts - 1) // 2] + ordered[rows, counts // 2]) / 2


class WindowedGaussianDetector(Detector):
    """NAB's ``windowedGaussian`` baseline: the distance of each value from a sliding window's mean.

    NAB keeps the last 6400 values, refreshes their mean and standard deviation every 100 values
    and scores a value by ``1 - Q(|z|)``, the Gaussian two-sided tail probability of
    ``z = (x - mean) / std``. Here the mean and the (population) standard deviation of the ``window``
    observed values before each row are updated at every row, and ``score = |z|``: NAB's score is a
    monotone function of it (``Φ(|z|)``), so both rank rows alike, but ``|z|`` does not round to 1
    beyond about 8 sigma and the threshold rules work in sigma units. ``expected`` is the window mean.

    The standard deviation is floored at ``scale_floor`` times the training series' robust spread.
    Where fewer than ``min_periods`` (default ``min(window, 100)``) values of history are observed
    (the start of a frame, after a long outage), the last window's statistics are carried forward,
    and rows with no statistics yet score 0, as does a missing value.
    """

    name = "windowed_gaussian"
    _learned_attributes = ("scale_floor_",)

    def __init__(
        self,
        window: int = 6400,
        min_periods: int | None = None,
        scale_floor: float = 0.05,
        threshold: str | float = "robust",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(threshold=threshold, threshold_params=threshold_params)
        self.window = window
        self.min_periods = min_periods
        self.scale_floor = scale_floor

    def _fit(self, frame: pd.DataFrame) -> None:
        self._check_integers({"window": 2})
        min_periods = self._min_periods()
        if not isinstance(min_periods, int | np.integer) or not 2 <= min_periods <= self.window:
            raise DetectorError(
                f"{self.name}: min_periods must be an integer between 2 and window={self.window}, "
                f"got {self.min_periods!r}"
            )
        if not self.scale_floor > 0:
            raise DetectorError(f"{self.name}: scale_floor must be positive, got {self.scale_floor!r}")
        observed = frame.iloc[:, 0].dropna().to_numpy()
        if observed.size <= min_periods:
            raise DetectorError(
                f"{self.name}: min_periods={min_periods} needs more than {min_periods} observed "
                f"training values, got {observed.size}"
            )
        self.scale_floor_ = self.scale_floor * robust_spread(observed)

    def _score_rows(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        values = frame.iloc[:, 0]
        history = values.shift(1).rolling(self.window, min_periods=self._min_periods())
        expected = forward_filled(history.mean().to_numpy())
        scale = np.maximum(forward_filled(history.std(ddof=0).to_numpy()), self.scale_floor_)
        return np.abs(values.to_numpy() - expected) / scale, expected

    def _min_periods(self) -> int:
        return min(self.window, 100) if self.min_periods is None else self.min_periods


class SeasonalNaiveDetector(Detector):
    """The value one season ago is the forecast; score = its error in robust training-error units.

    ``expected`` at row t is the value at t - ``season`` (``"1D"`` or ``"7D"``, any whole number of
    grid steps), read from the frame itself: to score a day, pass the season before it as context.
    ``scale_`` is the robust spread (1.4826 * MAD) of the training range's seasonal differences, and
    ``score = |x - expected| / scale_``. A missing value, or one whose season-ago value is missing or
    before the frame, scores 0.
    """

    name = "seasonal_naive"
    _learned_attributes = ("season_steps_", "scale_")

    def __init__(
        self,
        season: str = "1D",
        threshold: str | float = "robust",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(threshold=threshold, threshold_params=threshold_params)
        self.season = season

    def _fit(self, frame: pd.DataFrame) -> None:
        try:
            season = pd.Timedelta(self.season)
        except (TypeError, ValueError) as exc:
            raise DetectorError(f"{self.name}: season must be a duration such as '1D': {exc}") from exc
        if season <= pd.Timedelta(0) or season % self.step_:
            raise DetectorError(
                f"{self.name}: season {self.season!r} must be a positive whole number of {self.step_} steps"
            )
        self.season_steps_ = int(season // self.step_)
        residuals = self._residuals(frame.iloc[:, 0])
        observed = residuals[~np.isnan(residuals)]
        if observed.size < 2:
            raise DetectorError(
                f"{self.name}: season {self.season!r} ({self.season_steps_} rows) needs training data "
                f"longer than a season with values a season apart, got {len(frame)} rows"
            )
        self.scale_ = robust_spread(observed)
        if not self.scale_ > 0:
            raise DetectorError(f"{self.name}: the training series repeats exactly every {self.season}")

    def context(self) -> pd.Timedelta:
        return self.season_steps_ * self.step_

    def batch_key(self) -> tuple[int]:
        return (self.season_steps_,)

    @classmethod
    def _score_matrix(
        cls, models: Sequence[Detector], values: np.ndarray, index: pd.DatetimeIndex, start: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        values = values[:, 0]
        forecast = _shifted(values, models[0].season_steps_)
        scales = learned_column(models, "scale_")
        return np.abs(values - forecast) / scales, forecast

    def _residuals(self, values: pd.Series) -> np.ndarray:
        target = values.to_numpy(dtype=float)
        return target - _shifted(target, self.season_steps_)


def _shifted(values: np.ndarray, steps: int) -> np.ndarray:
    """``values`` moved ``steps`` steps later along the last axis, NaN before the first."""
    moved = np.full(np.shape(values), np.nan)
    moved[..., steps:] = values[..., : max(np.shape(values)[-1] - steps, 0)]
    return moved
