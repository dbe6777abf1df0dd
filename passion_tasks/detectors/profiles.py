"""Series against what they do at that minute of the day: a daily profile learned from the training
days, followed at the level of the last minutes.

A payments service does three times the business at 20:00 as at 04:00, and a CDN edge serves a
fraction of its evening traffic at night: a trailing median of the last hour lags such a cycle by
half an hour and, on its slopes, spreads its MAD over the trend itself, so it misses a 25% shift.
The profile carries the cycle; the trailing level follows what the profile cannot know (growth,
a quieter weekend, the drift of the day).

- ``daily_profile``: the profile, shared with the count detector of CDN requests.
- ``ProfileDetector``: a server metric's departure from profile plus level, both ways, and a value
  that stopped changing (a stalled exporter, a stuck counter), each judged as a surprise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from passion_tasks.detectors.base import Detector, DetectorError, learned_column, matrix_of
from passion_tasks.detectors.baselines import forward_filled, trailing_median
from passion_tasks.detectors.surprise import (
    MAX_SURPRISE,
    WINDOWS,
    SurpriseScores,
    calibrated,
    combined,
    z_surprise,
)
from passion_tasks.detectors.thresholds import robust_spread

MINUTES_PER_DAY = 1440
#: The share of training's rows at either end of a range learned from them (the levels a count may
#: follow, the departures a metric's offset may take in) that is left out of it: an incident of the
#: training week does not widen it (NASA's server answered nothing for half an hour on 13 July 1995,
#: the day of a shuttle launch that tripled its traffic).
RANGE_TAIL = 0.01
#: Minutes around each minute of the day that a profile averages on each training day.
SMOOTHING = 15
#: Training days with values a daily profile needs: with one, every minute's "usual" is that day's.
MIN_DAYS = 2


def minute_of_day(index: pd.DatetimeIndex) -> np.ndarray:
    return (index.hour * 60 + index.minute).to_numpy()


def daily_profile(values: pd.Series, smoothing: int) -> np.ndarray:
    """What ``values`` (on a datetime index) are at each of the day's 1440 minutes: on each training
    day the mean of the ``smoothing`` minutes around that minute, then the median over the days; NaN
    where no day saw it.

    The mean within a day because a thin count (0.6 requests a minute) has a median of 0 and a mean
    of 0.6; the median across days because one bad training day must not move the profile.
    """
    by_day = values.groupby([values.index.normalize(), minute_of_day(values.index)]).mean().unstack()
    minutes = by_day.reindex(columns=range(MINUTES_PER_DAY)).T  # one column per day
    # Around midnight the window takes the other end of the same day: the cycle is daily.
    wrapped = pd.concat([minutes.iloc[-smoothing:], minutes, minutes.iloc[:smoothing]])
    smooth = wrapped.rolling(smoothing, center=True, min_periods=1).mean().iloc[smoothing:-smoothing]
    return smooth.median(axis=1).to_numpy(dtype=float)


def check_profile_days(name: str, observed: pd.DatetimeIndex) -> None:
    """A ``DetectorError`` for ``name`` unless the times with values, ``observed``, fall on
    ``MIN_DAYS`` days or more."""
    days = observed.normalize().nunique()
    if days < MIN_DAYS:
        raise DetectorError(
            f"{name}: a daily profile needs at least {MIN_DAYS} training days with values, got {days}"
        )


def filled_daily_profile(values: pd.Series, smoothing: int) -> np.ndarray:
    """``daily_profile`` with the minutes no day saw filled in from the minutes around them: a metric
    on a five-minute grid sees one minute in five. All NaN where no minute was seen."""
    return pd.Series(daily_profile(values, smoothing)).interpolate(limit_direction="both").to_numpy()


class ProfileDetector(SurpriseScores, Detector):
    """A server metric against its daily profile plus the offset of its last ``window`` rows (their
    median: a quarter of an hour follows a payments day's drift, and takes in a shift only once it
    has lasted half of it). Only rows within ``DEPARTURE_REACH`` widths of the range of training's
    departures from the profile (but ``RANGE_TAIL`` at each end: ``departure_range_``) move the offset:
    a shift past all of them holds the offset from before it, and stays an incident for as long as it
    lasts, and its end is not a shift back.

    The residual, in units of its robust training spread, is judged over 1, 5 and 15 rows both ways
    (``surprise.z_surprise``, as alike as training's consecutive rows were): a spike, a level shift
    and a slow leak all show, and a shift within reach keeps showing until the trailing offset has
    taken it in (half the window). A value that repeats itself is judged too: with a share ``q`` of repeats
    between consecutive training rows (Jeffreys: ``(repeats + 0.5) / (pairs + 1)``), a run of ``r``
    repeats has surprise ``-r log10 q``: a metric that moved every minute of the week and then holds
    still for three is stalled, one that often repeats is not. The two surprises combine as the
    windows do (Bonferroni).

    Needs ``MIN_DAYS`` training days with values (``check_profile_days``); with fewer, the nightly run
    falls back to the next candidate.
    """

    name = "profile"
    _learned_attributes = ("profile_", "scale_", "autocorrelation_", "repeat_share_", "departure_range_")
    #: How far past training's range of departures from the profile a row may lie and still move the
    #: trailing offset: the range's width, on either side of it.
    DEPARTURE_REACH: ClassVar[float] = 1.0
    #: A model saved before the range was learned lets every row move the offset, as it did.
    departure_range_: tuple[float, float] = (-np.inf, np.inf)

    def __init__(
        self,
        window: int = 15,
        smoothing: int = SMOOTHING,
        threshold: str | float = "false_alarm_budget",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(threshold=threshold, threshold_params=threshold_params)
        self.window = window
        self.smoothing = smoothing

    def _fit(self, frame: pd.DataFrame) -> None:
        self._check_integers({"window": 2, "smoothing": 2})
        target = frame.iloc[:, 0]
        check_profile_days(self.name, target.dropna().index)
        self.profile_ = filled_daily_profile(target, self.smoothing)
        departures = target.to_numpy(dtype=float) - self.profile_[minute_of_day(frame.index)]
        low, high = np.nanquantile(departures, [RANGE_TAIL, 1 - RANGE_TAIL])
        reach = self.DEPARTURE_REACH * (high - low)
        # A week whose departures are nearly all one value gives no range to judge one by.
        self.departure_range_ = (float(low - reach), float(high + reach)) if reach > 0 else (-np.inf, np.inf)
        residuals, _ = self._residuals(frame)
        self.scale_ = robust_spread(residuals[np.isfinite(residuals)])
        if not self.scale_ > 0:
            raise DetectorError(f"{self.name}: the training series follows its profile exactly")
        # The robust spread sees the bulk of the minutes; a metric whose minutes scatter more than
        # that in their tails gets a scale to match (``surprise.dispersion``).
        spread, self.autocorrelation_ = calibrated(residuals / self.scale_)
        self.scale_ *= np.sqrt(spread)
        values = target.to_numpy(dtype=float)
        pairs = np.isfinite(values[1:]) & np.isfinite(values[:-1])
        repeats = pairs & (values[1:] == values[:-1])
        self.repeat_share_ = float((repeats.sum() + 0.5) / (pairs.sum() + 1.0))

    def _residuals(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        residuals, expected = self._matrix_residuals([self], matrix_of(frame)[:, 0], frame.index)
        return residuals[0], expected[0]

    @classmethod
    def _matrix_residuals(
        cls, models: Sequence[ProfileDetector], values: np.ndarray, index: pd.DatetimeIndex, start: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each series' departures from its profile plus trailing offset, and what it expected, from
        step ``start`` on."""
        window = models[0].window
        seasonal = np.stack([model.profile_ for model in models])[:, minute_of_day(index)]
        departures = values - seasonal
        low, high = (np.array([model.departure_range_[end] for model in models])[:, None] for end in (0, 1))
        # A row far past every departure training saw does not move the offset; with more than half of
        # the window such rows the offset holds what it was before them (a shift lasts as long as it
        # lasts, and its end is no shift back).
        followed = np.where((departures >= low) & (departures <= high), departures, np.nan)
        offset = trailing_median(followed, window, window // 2, before=True, start=start)
        offset = forward_filled(offset)[:, start:]
        expected = seasonal[:, start:] + np.where(np.isnan(offset), 0.0, offset)
        return values[:, start:] - expected, expected

    def batch_key(self) -> tuple[int]:
        return (self.window,)

    @classmethod
    def _score_matrix(
        cls, models: Sequence[ProfileDetector], values: np.ndarray, index: pd.DatetimeIndex, start: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        values = values[:, 0]
        # A score from ``start`` on reads the residuals of its longest window; the steps before that
        # are left unscored.
        lead = max(start - max(WINDOWS) + 1, 0)
        residuals, expected = cls._matrix_residuals(models, values, index, lead)
        departure = z_surprise(
            residuals / learned_column(models, "scale_"),
            two_sided=True,
            autocorrelation=learned_column(models, "autocorrelation_"),
        )
        repeats = cls._repeats(values)[:, lead:]
        stalled = np.minimum(repeats * -np.log10(learned_column(models, "repeat_share_")), MAX_SURPRISE)
        scores = np.full(values.shape, np.nan)
        scores[:, lead:] = combined([departure, stalled])
        scores[:, lead:][~np.isfinite(residuals)] = np.nan
        return scores, np.concatenate([np.full((len(models), lead), np.nan), expected], axis=1)

    @staticmethod
    def _repeats(values: np.ndarray) -> np.ndarray:
        """How many consecutive rows up to each one repeated the value before them, along the last axis."""
        same = np.zeros(np.shape(values), dtype=bool)
        same[..., 1:] = values[..., 1:] == values[..., :-1]
        rows = np.arange(np.shape(values)[-1])
        last_change = np.maximum.accumulate(np.where(same, -1, rows), axis=-1)
        return (rows - last_change).astype(float)
