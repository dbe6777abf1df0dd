"""Count-aware detectors of CDN series: every minute is judged with the number of requests behind it.

A rate over 8 requests is not a rate over 8,000, nor is a percentile: a thin slice of the traffic
must not fire on noise, while a real change on a thin slice still must. So these detectors take the
slice's requests per minute beside the series (``input_series``) and score a row by how unlikely its
last minutes are under what training saw, as a surprise: ``-log10`` of a tail probability, combined
over windows of 1, 5 and 15 minutes (Bonferroni), so a sharp outage and a slow leak both show. A row
carries its windows' surprise only when it is itself worse than expected, so an event ends with its
cause; on a noisy baseline a later minute that happens to be worse can carry it up to a window on.

- ``RateDetector``: errors (or misses) among the requests, beta-binomial around the training rate;
  with no error at all in training the rate is Jeffreys' ``(0 + 0.5) / (N + 1)``: 3 errors in 10
  requests after 0 in 100,000 is certain, 1 in 100,000 is not.
- ``PercentileDetector``: a latency percentile in log scale, against the training level of its hour of
  day, with a noise that shrinks with the minute's requests (``s0² + c / n``).
- ``CountDetector``: requests per minute against their trailing median, negative binomial, both ways.

``ConstantDetector`` covers a server metric that never moved in training: any departure is news.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from passion_tasks.detectors.base import Detector, DetectorError
from passion_tasks.detectors.baselines import trailing_median_mad
from passion_tasks.detectors.thresholds import MAD_TO_SIGMA
from passion_tasks.features.policy import RATES, metric_of, volume_series

#: The windows, in rows, a row's surprise is taken over; the largest of them counts.
WINDOWS = (1, 5, 15)
#: Surprises are capped here: past it, every probability is "never".
MAX_SURPRISE = 300.0
#: Rows of an hour of day that training needs to learn that hour's own level.
MIN_ROWS_PER_HOUR = 30


def surprise(p: np.ndarray) -> np.ndarray:
    """``-log10(p)``, 0 for p = 1, capped at ``MAX_SURPRISE``."""
    with np.errstate(divide="ignore"):
        return np.minimum(-np.log10(np.clip(p, 0.0, 1.0)), MAX_SURPRISE)


def trailing_sums(values: np.ndarray, window: int) -> np.ndarray:
    """The sum of each row's last ``window`` values (the row's own included); NaN count as 0."""
    totals = np.concatenate([[0.0], np.cumsum(np.nan_to_num(values))])
    rows = np.arange(1, len(values) + 1)
    return totals[rows] - totals[np.maximum(rows - window, 0)]


def combined(surprises: list[np.ndarray]) -> np.ndarray:
    """The largest of the windows' surprises, less what looking at several windows costs (Bonferroni)."""
    stacked = np.vstack(surprises)
    best = np.nanmax(np.where(np.isnan(stacked), -np.inf, stacked), axis=0)
    best[np.isinf(best)] = np.nan
    return np.maximum(best - np.log10(len(surprises)), 0.0)


class CountAwareDetector(Detector):
    """A CDN series judged with its slice's requests: the frame's second column."""

    learns_from_constant: ClassVar[bool] = True

    def __init__(
        self, threshold: str | float = "false_alarm_budget", threshold_params: dict[str, Any] | None = None
    ):
        super().__init__(threshold=threshold, threshold_params=threshold_params)

    @classmethod
    def input_series(cls, series: str) -> list[str]:
        return [series, volume_series(series)]

    def _columns(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        if frame.shape[1] != 2:
            raise DetectorError(
                f"{self.name}: needs the series and its slice's requests per minute, got {frame.shape[1]} "
                "column(s)"
            )
        values = frame.iloc[:, 0].to_numpy(dtype=float)
        requests = np.nan_to_num(frame.iloc[:, 1].to_numpy(dtype=float))
        return values, requests

    def _uncalibrated_threshold(self, false_events_per_row: float) -> float | None:
        # Scores are surprises of tail probabilities: a row reaches -log10(p) with chance p.
        return float(-np.log10(false_events_per_row))


class RateDetector(CountAwareDetector):
    """An error rate (or a hit ratio, which goes bad downwards) against its training rate, with counts.

    The bad requests of a window, ``k`` of ``n``, are beta-binomial around the training rate; the
    overdispersion (minutes that vary more than a coin would) is estimated on the training minutes by
    the method of moments and is 0 for a rate that never moved.
    """

    name = "rate"
    _learned_attributes = ("rate_", "overdispersion_")

    def _bad(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Bad requests and requests per row: errors, or misses for a hit ratio."""
        values, requests = self._columns(frame)
        share = np.nan_to_num(values)
        if RATES.get(metric_of(str(frame.columns[0])), "up") == "down":
            share = np.where(requests > 0, 1 - share, 0.0)
        return np.rint(share * requests), requests

    def _fit(self, frame: pd.DataFrame) -> None:
        bad, requests = self._bad(frame)
        total = requests.sum()
        if not total > 0:
            raise DetectorError(f"{self.name}: no requests in the training range to learn a rate from")
        self.rate_ = float((bad.sum() + 0.5) / (total + 1.0))
        p = self.rate_
        spread = requests * (requests - 1) * p * (1 - p)
        excess = ((bad - requests * p) ** 2 - requests * p * (1 - p)).sum()
        self.overdispersion_ = float(np.clip(excess / spread.sum(), 0.0, 0.3)) if spread.sum() > 0 else 0.0

    def _score_rows(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        bad, requests = self._bad(frame)
        # A window speaks for its last row only when that row is itself worse than expected: an
        # outage's event ends with the outage, not a window later.
        worse = bad > requests * self.rate_
        surprises = []
        for window in WINDOWS:
            k, n = trailing_sums(bad, window), trailing_sums(requests, window)
            surprises.append(np.where(n > 0, np.where(worse, surprise(self._tail(k, n)), 0.0), np.nan))
        expected_share = self.rate_
        if RATES.get(metric_of(str(frame.columns[0])), "up") == "down":
            expected_share = 1 - self.rate_
        expected = np.where(np.isnan(frame.iloc[:, 0].to_numpy(dtype=float)), np.nan, expected_share)
        return combined(surprises), expected

    def _tail(self, k: np.ndarray, n: np.ndarray) -> np.ndarray:
        """P(K >= k) of ``n`` requests."""
        n = n.astype(np.int64)
        if self.overdispersion_ <= 0:
            return stats.binom.sf(k - 1, n, self.rate_)
        spread = (1 - self.overdispersion_) / self.overdispersion_
        return stats.betabinom.sf(k - 1, n, self.rate_ * spread, (1 - self.rate_) * spread)


class PercentileDetector(CountAwareDetector):
    """A latency percentile against the training level of its hour of day, with its sample size.

    In log scale, a minute's percentile departs from the level by noise of variance ``s0² + c / n``:
    the quantile of ``n`` requests scatters like ``1 / n``, the rest (the mix of clients) does not.
    Both are fitted on the training minutes binned by their requests. Only a slower percentile is
    bad. A window's surprise combines its minutes' z-scores (Stouffer).
    """

    name = "percentile"
    _learned_attributes = ("hour_levels_", "level_", "noise_floor_", "noise_per_request_")

    def _fit(self, frame: pd.DataFrame) -> None:
        values, requests = self._columns(frame)
        logs = self._logs(values, requests)
        seen = np.isfinite(logs)
        if seen.sum() < 2 * MIN_ROWS_PER_HOUR:
            raise DetectorError(f"{self.name}: {int(seen.sum())} training minutes with requests, too few")
        self.level_ = float(np.median(logs[seen]))
        hours = frame.index.hour.to_numpy()
        self.hour_levels_ = np.array(
            [
                np.median(logs[seen & (hours == hour)])
                if (seen & (hours == hour)).sum() >= MIN_ROWS_PER_HOUR
                else self.level_
                for hour in range(24)
            ]
        )
        residuals = logs[seen] - self.hour_levels_[hours[seen]]
        self.noise_floor_, self.noise_per_request_ = _noise_model(residuals, requests[seen])

    def _score_rows(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        values, requests = self._columns(frame)
        level = self.hour_levels_[frame.index.hour.to_numpy()]
        noise = np.sqrt(self.noise_floor_ + self.noise_per_request_ / np.maximum(requests, 1))
        z = (self._logs(values, requests) - level) / noise
        surprises = []
        for window in WINDOWS:
            counted = trailing_sums(np.isfinite(z).astype(float), window)
            stouffer = trailing_sums(np.where(np.isfinite(z), z, 0.0), window) / np.sqrt(
                np.maximum(counted, 1)
            )
            # As for rates: only a row that is itself slower carries its window's surprise.
            tail = np.where(np.nan_to_num(z) > 0, stats.norm.sf(stouffer), 1.0)
            surprises.append(np.where(counted > 0, surprise(tail), np.nan))
        return combined(surprises), np.exp(level)

    @staticmethod
    def _logs(values: np.ndarray, requests: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where((requests > 0) & (values > 0), np.log(values), np.nan)


def _noise_model(residuals: np.ndarray, requests: np.ndarray, bins: int = 10) -> tuple[float, float]:
    """``(s0², c)`` of ``variance = s0² + c / n``: least squares over bins of minutes with alike ``n``,
    each bin's variance a robust one (MAD), neither term negative."""
    edges = np.unique(np.quantile(requests, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, requests, side="right") - 1, 0, max(len(edges) - 2, 0))
    inverse, variance = [], []
    for b in np.unique(which):
        members = residuals[which == b]
        if members.size >= 10:
            spread = MAD_TO_SIGMA * np.median(np.abs(members - np.median(members)))
            inverse.append(np.mean(1 / requests[which == b]))
            variance.append(spread**2)
    overall = float(np.var(residuals)) if residuals.size > 1 else 1.0
    if len(variance) < 2:
        return max(overall, 1e-6), 0.0
    design = np.column_stack([np.ones(len(inverse)), inverse])
    (floor, per_request), *_ = np.linalg.lstsq(design, np.array(variance), rcond=None)
    if per_request < 0:
        floor, per_request = float(np.mean(variance)), 0.0
    if floor < 0:
        floor, per_request = 0.0, float(np.dot(inverse, variance) / np.dot(inverse, inverse))
    return max(float(floor), 1e-6), max(float(per_request), 0.0)


class CountDetector(CountAwareDetector):
    """Requests per minute against what training saw at that time of day, negative binomial, both ways.

    The expectation is the training days' median at each minute of the day (smoothed over
    ``smoothing`` minutes), times the level of the last ``window`` minutes relative to it, so that a
    growing or shrinking service is followed while a drop (an edge or an encoder failing) or a surge
    within the hour stands out. Each window of 1, 5 and 15 minutes has its own overdispersion, measured
    on the training days: whatever the expectation misses there is noise, not news.
    """

    name = "count"
    _learned_attributes = ("profile_", "overdispersion_")

    def __init__(
        self,
        window: int = 60,
        smoothing: int = 15,
        threshold: str | float = "false_alarm_budget",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(threshold=threshold, threshold_params=threshold_params)
        self.window = window
        self.smoothing = smoothing

    @classmethod
    def input_series(cls, series: str) -> list[str]:
        return [series]

    def _expected(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        counts = frame.iloc[:, 0].to_numpy(dtype=float)
        minutes = (frame.index.hour * 60 + frame.index.minute).to_numpy()
        seasonal = self.profile_[minutes]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(seasonal > 0, counts / seasonal, np.nan)
        level, _ = trailing_median_mad(ratio, self.window, self.window // 2)
        level = pd.Series(level).ffill().fillna(1.0).to_numpy()
        return counts, np.maximum(seasonal * level, 1.0 / self.window)

    def _fit(self, frame: pd.DataFrame) -> None:
        for name in ("window", "smoothing"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise DetectorError(f"{self.name}: {name} must be a positive integer, got {value!r}")
        counts = frame.iloc[:, 0]
        if counts.notna().sum() < 2 * self.window:
            raise DetectorError(f"{self.name}: window={self.window} needs {2 * self.window} training minutes")
        by_minute = counts.groupby(counts.index.hour * 60 + counts.index.minute).median()
        profile = by_minute.reindex(range(1440))
        wrapped = pd.concat([profile.iloc[-self.smoothing :], profile, profile.iloc[: self.smoothing]])
        smooth = wrapped.rolling(self.smoothing, center=True, min_periods=1).median()
        self.profile_ = np.nan_to_num(smooth.iloc[self.smoothing : -self.smoothing].to_numpy(), nan=0.0)
        counts, expected = self._expected(frame)
        self.overdispersion_ = np.array([_dispersion(counts, expected, window) for window in WINDOWS])

    def _score_rows(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        counts, expected = self._expected(frame)
        seen = np.isfinite(counts)
        direction = np.sign(np.where(seen, counts - expected, 0.0))
        surprises = []
        for window, dispersion in zip(WINDOWS, self.overdispersion_, strict=True):
            x = trailing_sums(np.where(seen, counts, 0.0), window)
            mean = trailing_sums(np.where(seen, expected, 0.0), window)
            size = 1.0 / dispersion
            p = size / (size + np.maximum(mean, 1e-9))
            low, high = stats.nbinom.cdf(x, size, p), stats.nbinom.sf(x - 1, size, p)
            # The row's own side decides which tail its window is judged on.
            tail = np.where(direction < 0, low, np.where(direction > 0, high, 1.0))
            surprises.append(surprise(np.minimum(1.0, 2 * tail)))
        scores = combined(surprises)
        scores[~seen] = np.nan
        return scores, expected


def _dispersion(counts: np.ndarray, expected: np.ndarray, window: int) -> float:
    """The negative binomial dispersion of ``window``-row sums around their expectation (moments)."""
    seen = np.isfinite(counts)
    x = trailing_sums(np.where(seen, counts, 0.0), window)[seen]
    mean = trailing_sums(np.where(seen, expected, 0.0), window)[seen]
    return float(np.clip(((x - mean) ** 2 - mean).sum() / (mean**2).sum(), 1e-6, 1.0))


class ConstantDetector(Detector):
    """A series that never moved in training (a counter at 0, a flag): any departure is news.

    There is no noise to calibrate against: the score is the departure relative to the value (at least
    1), and every departure beyond rounding reaches the threshold.
    """

    name = "constant"
    learns_from_constant: ClassVar[bool] = True
    _learned_attributes = ("value_",)
    #: Departures smaller than this, relative to the value, are rounding.
    TOLERANCE: ClassVar[float] = 1e-9

    def __init__(self, threshold: str | float = 1e-9, threshold_params: dict[str, Any] | None = None):
        super().__init__(threshold=threshold, threshold_params=threshold_params)

    def _fit(self, frame: pd.DataFrame) -> None:
        observed = frame.iloc[:, 0].dropna()
        if observed.nunique() != 1:
            raise DetectorError(f"{self.name}: the target moved in training; use a detector that learns how")
        self.value_ = float(observed.iloc[0])

    def _score_rows(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        values = frame.iloc[:, 0].to_numpy(dtype=float)
        departure = np.abs(values - self.value_) / max(abs(self.value_), 1.0)
        return departure, np.where(np.isnan(values), np.nan, self.value_)
