"""Count-aware detectors of CDN series: every minute is judged with the number of requests behind it.

A rate over 8 requests is not a rate over 8,000, nor is a percentile: a thin slice of the traffic
must not fire on noise, while a real change on a thin slice still must. So these detectors take the
slice's requests per minute beside the series (``input_series``) and score a row by how unlikely its
last minutes are under what training saw, as a surprise: ``-log10`` of a tail probability, combined
over windows of 1, 5 and 15 minutes (``surprise``; 5 and 15 for percentiles and sizes, whose single
minutes are too wild to judge alone; half an hour and an hour too for requests, while the last
quarter departs). A row carries its windows' surprise only when it is itself worse than expected, and
a window longer than five minutes only while the window before it departs with it too
(``surprise.gate``, ``surprise.departed``), so an event ends with its cause, not a window later on
minutes that are worse by chance.

- ``RateDetector``: errors (or misses) among the requests, beta-binomial around the training rate;
  with no error at all in training the rate is Jeffreys' ``(0 + 0.5) / (N + 1)``: 3 errors in 10
  requests after 0 in 100,000 is certain, 1 in 100,000 is not.
- ``PercentileDetector``: a latency percentile in log scale, against the training level of its hour of
  day, with a noise that shrinks with the minute's requests (``s0² + c / n``).
- ``SizeDetector``: bytes against the requests' usual response size, both ways.
- ``GeometricMeanDetector``: the typical request's latency (the mean of the logs), pooled the same way,
  given the minute's share of cache misses.
- ``CountDetector``: requests per minute against their daily profile and trailing level, negative
  binomial, both ways.

``ConstantDetector`` covers a server metric that never moved in training: any departure is news.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy import stats

from passion_tasks.detectors.base import Detector, DetectorError, learned_column, matrix_of
from passion_tasks.detectors.baselines import median_of_rows
from passion_tasks.detectors.profiles import RANGE_TAIL, check_profile_days, daily_profile, minute_of_day
from passion_tasks.detectors.surprise import (
    WINDOWS,
    SurpriseScores,
    calibrated,
    combined,
    gate,
    surprise,
    trailing_sums,
    z_surprise,
)
from passion_tasks.detectors.thresholds import robust_spread
from passion_tasks.features.policy import goes_bad_downwards, hit_ratio_series, volume_series

#: Rows of an hour of day that training needs to learn that hour's own level.
MIN_ROWS_PER_HOUR = 30
#: A training minute whose surprise under the healthy rate is beyond this (a one in a million chance)
#: is an incident of the training week, not part of the rate.
OUTLYING = 6.0
#: Rounds of leaving a training week's incidents out of its rate: each against the rate of what is left.
OUTLYING_ROUNDS = 3
#: Bad requests a rate's overdispersion is measured on, at least: a handful of errors in a week says
#: when they came together, not how much the rate wanders.
MIN_BAD_FOR_OVERDISPERSION = 30
#: The windows of percentiles and sizes: 5 and 15 minutes, never one alone. A minute's percentile of
#: a thin slice is a handful of requests from two modes (cache hits and misses) and flips between
#: them when the hit ratio wobbles; a minute's bytes may be one large download. A latency or size
#: change that matters lasts.
MINUTES_TOGETHER = (5, 15)
#: The windows of requests: half an hour and an hour too, for an edge of two requests a minute that
#: lost two thirds of them is twelve against thirty in a quarter of an hour (no surprise worth a page),
#: 25 against 80 in an hour; and a drop of half an hour (18 requests against 68 on an edge of two a
#: minute that lost 80 % of them), diluted in the hour by as many normal minutes, needs its own window.
#: For shortfalls only: a surge shows within the quarter of an hour.
COUNT_WINDOWS = (*WINDOWS, 30, 60)
#: The surprise of the last quarter of an hour that lets the hour's window speak.
LATELY = 2.0
#: The most skewness a response's size is taken to have. Sizes of many kinds of content are skewed
#: by a few (exponential ones by 2, lognormal ones of σ = 1 by 6); a week's estimate far beyond is
#: one response that dwarfs the others (a download among segments), which weighs on the third
#: moment most, and a sum that skewed would hide a bitrate change on a busy slice too.
MAX_SKEWNESS = 10.0


class CountAwareDetector(SurpriseScores, Detector):
    """A CDN series judged with its slice's requests: the frame's second column."""

    learns_from_constant: ClassVar[bool] = True

    def __init__(
        self, threshold: str | float = "false_alarm_budget", threshold_params: dict[str, Any] | None = None
    ):
        super().__init__(threshold=threshold, threshold_params=threshold_params)

    #: The rows before a row that its score reads (its trailing windows less the row itself).
    lookback_rows: ClassVar[int] = max(MINUTES_TOGETHER) - 1
    #: What the frame holds (``input_series``), and how many columns it may have.
    INPUTS: ClassVar[str] = "the series and its slice's requests per minute"
    COLUMNS: ClassVar[tuple[int, ...]] = (2,)

    @classmethod
    def input_series(cls, series: str) -> list[str]:
        return [series, volume_series(series)]

    def context(self) -> pd.Timedelta:
        return self._lookback() * self.step_

    def _lookback(self) -> int:
        return self.lookback_rows

    def _columns(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        values, requests = _matrix_columns(self._matrix(frame))
        return values[0], requests[0]

    def _matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """``base.matrix_of`` a frame that holds the ``INPUTS``."""
        if frame.shape[1] not in self.COLUMNS:
            raise DetectorError(f"{self.name}: needs {self.INPUTS}, got {frame.shape[1]} column(s)")
        return matrix_of(frame)

    def batch_key(self) -> tuple[()]:
        return ()


class RateDetector(CountAwareDetector):
    """An error rate (or a hit ratio, which goes bad downwards) against its training rate, with counts.

    The bad requests of a window, ``k`` of ``n``, are beta-binomial around the training rate; the
    overdispersion (minutes that vary more than a coin would) is estimated on the training minutes by
    the method of moments, and is 0 for a rate that never moved or went bad fewer than
    ``MIN_BAD_FOR_OVERDISPERSION`` times. Both leave out the week's own incidents: the training minutes
    that the rest of the week puts beyond ``OUTLYING`` and the quarter of an hour on either side of
    them (an incident's first and last minutes, one error among a few requests, are not beyond belief
    alone, and would make a rate of 0 look like one that wanders), for good once left out, even
    when they fall on most of the training days: an origin that hiccups every day still fails on
    those minutes, and a rate widened to expect them would hide an outage. How long a breakdown
    family's daily departures last is learned above the models, by training (``models.families``).
    """

    name = "rate"
    _learned_attributes = ("rate_", "overdispersion_")
    lookback_rows: ClassVar[int] = max(WINDOWS) - 1
    #: Errors come one by one: a burst on a thin slice is an error every few minutes, each minute
    #: anomalous alone, each in the longest window of the next. They are one event, not one-minute
    #: blips that each fall short of an incident's evidence.
    event_window_rows: ClassVar[int | None] = max(WINDOWS)

    def _bad(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Bad requests and requests per row: errors, or misses for a hit ratio."""
        bad, requests = self._matrix_bad([self], self._matrix(frame))
        return bad[0], requests[0]

    @classmethod
    def _matrix_bad(cls, models: Sequence[RateDetector], values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``_bad`` of each series of a series × features × steps matrix."""
        shares, requests = _matrix_columns(values)
        share = np.nan_to_num(shares)
        share = np.where(_goes_down(models), np.where(requests > 0, 1 - share, 0.0), share)
        return np.rint(share * requests), requests

    def _fit(self, frame: pd.DataFrame) -> None:
        bad, requests = self._bad(frame)
        if not requests.sum() > 0:
            raise DetectorError(f"{self.name}: no requests in the training range to learn a rate from")
        # A training week holds incidents too, and one 5xx burst would make a rate of 0 look like a
        # rate that wanders. Minutes the healthy rate cannot explain are left out: first those whose
        # windows a plain binomial finds beyond belief, then, against the rate and overdispersion of
        # the rest, those still beyond it. What is left out stays out: an incident kept in one round
        # would widen the overdispersion that lets it back in the next.
        self._estimate(bad, requests)
        self.overdispersion_ = 0.0
        kept = np.ones(len(bad), dtype=bool)
        for _ in range(OUTLYING_ROUNDS):
            kept &= ~_near(np.nan_to_num(self._score_rows(frame)[0]) > OUTLYING, max(WINDOWS))
            self._estimate(bad[kept], requests[kept])

    def _estimate(self, bad: np.ndarray, requests: np.ndarray) -> None:
        """The rate (Jeffreys) and its overdispersion (method of moments) of these minutes."""
        self.rate_ = p = float((bad.sum() + 0.5) / (requests.sum() + 1.0))
        spread = requests * (requests - 1) * p * (1 - p)
        excess = ((bad - requests * p) ** 2 - requests * p * (1 - p)).sum()
        measurable = spread.sum() > 0 and bad.sum() >= MIN_BAD_FOR_OVERDISPERSION
        self.overdispersion_ = float(np.clip(excess / spread.sum(), 0.0, 0.3)) if measurable else 0.0

    @classmethod
    def _score_matrix(
        cls, models: Sequence[RateDetector], values: np.ndarray, index: pd.DatetimeIndex, start: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        bad, requests = cls._matrix_bad(models, values)
        rate = learned_column(models, "rate_")
        # A window speaks for its last row only when that row is itself worse than expected, and a
        # longer one only while its ``gate`` is likelier at its rate than at the trained one: an
        # outage's event ends with the outage, not a window later.
        worse = bad > requests * rate
        surprises, sums = [], {}
        for window in WINDOWS:
            sums[window] = k, n = trailing_sums(bad, window), trailing_sums(requests, window)
            tail = _rate_tail(k, n, rate, learned_column(models, "overdispersion_"))
            carries = worse
            if (before := gate(WINDOWS, window)) is not None:
                carries = carries & _binomial_departed(*sums[before], rate, (k + 0.5) / (n + 1))
            surprises.append(np.where(n > 0, np.where(carries, surprise(tail), 0.0), np.nan))
        expected_share = np.where(_goes_down(models), 1 - rate, rate)
        expected = np.where(np.isnan(values[:, 0]), np.nan, expected_share)
        return combined(surprises), expected


class PercentileDetector(CountAwareDetector):
    """A latency percentile against the training level of its hour of day, with its sample size.

    In log scale, a minute's percentile departs from the level by noise of variance ``s0² + c / n``:
    the quantile of ``n`` requests scatters like ``1 / n``, the rest (the mix of clients) does not.
    Both are fitted on the training minutes binned by their requests; a departure counts beyond one
    step of the values' resolution (``_resolution``). Only a slower percentile is bad. A window's
    surprise combines its minutes' z-scores (Stouffer), as alike as training's consecutive minutes
    were.
    """

    name = "percentile"
    _learned_attributes = (
        "hour_levels_",
        "level_",
        "resolution_",
        "noise_floor_",
        "noise_per_request_",
        "dispersion_",
        "autocorrelation_",
    )

    def _fit(self, frame: pd.DataFrame) -> None:
        values, requests = self._columns(frame)
        logs = self._logs(values, requests)
        seen = np.isfinite(logs)
        if seen.sum() < 2 * MIN_ROWS_PER_HOUR:
            raise DetectorError(f"{self.name}: {int(seen.sum())} training minutes with requests, too few")
        self.level_ = float(np.median(logs[seen]))
        hours = frame.index.hour.to_numpy()
        learned = learned_hours(hours, seen)
        self.hour_levels_ = np.array(
            [np.median(logs[seen & (hours == hour)]) if learned[hour] else self.level_ for hour in range(24)]
        )
        self.resolution_ = _resolution(values[seen])
        residuals = logs[seen] - hourly_at(self.hour_levels_, frame.index)[seen]
        self.noise_floor_, self.noise_per_request_ = _noise_model(residuals, requests[seen])
        self.dispersion_, self.autocorrelation_ = calibrated(self._z(frame)[0])

    def _z(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Each minute's z-score under the noise model, before its dispersion (NaN without requests),
        and its hour's level, in log scale."""
        z, level = self._matrix_z([self], self._matrix(frame), frame.index)
        return z[0], level[0]

    @classmethod
    def _matrix_z(
        cls, models: Sequence[PercentileDetector], values: np.ndarray, index: pd.DatetimeIndex
    ) -> tuple[np.ndarray, np.ndarray]:
        """``_z`` of each series of a series × features × steps matrix."""
        percentiles, requests = _matrix_columns(values)
        level = hourly_at(np.stack([model.hour_levels_ for model in models]), index)
        noise = np.sqrt(
            learned_column(models, "noise_floor_")
            + learned_column(models, "noise_per_request_") / np.maximum(requests, 1)
        )
        # Beyond one step of the values' resolution: a time to first byte logged in whole
        # milliseconds, at 9 ms, cannot tell 9 from 10.
        band = np.log1p(learned_column(models, "resolution_") / np.exp(level))
        gap = cls._logs(percentiles, requests) - level
        return np.sign(gap) * np.maximum(np.abs(gap) - band, 0.0) / noise, level

    @classmethod
    def _score_matrix(
        cls, models: Sequence[PercentileDetector], values: np.ndarray, index: pd.DatetimeIndex, start: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        z, level = cls._matrix_z(models, values, index)
        scores = z_surprise(
            z / np.sqrt(learned_column(models, "dispersion_")),
            two_sided=False,
            autocorrelation=learned_column(models, "autocorrelation_"),
            windows=MINUTES_TOGETHER,
        )
        return scores, np.exp(level)

    @staticmethod
    def _logs(values: np.ndarray, requests: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where((requests > 0) & (values > 0), np.log(values), np.nan)


class SizeDetector(CountAwareDetector):
    """Bytes given the requests that fetched them, both ways: larger responses (a bitrate ladder pushed
    by mistake) and smaller ones (viewers dropped to a low rendition) are news; how many requests
    there are is the count detector's to judge, so a traffic drop is not a second incident here.

    A minute's bytes are the sum of its ``n`` responses, whose sizes at that hour of day had a mean
    and a variance in training: by the central limit theorem the sum departs from ``n`` times the
    mean by noise of variance ``n`` times the variance. Both moments are learned per hour of day from
    the training minutes (``variance = E[(bytes - n mean)^2] / n``). Sizes are heavy-tailed (one
    download among a thin slice's segments is a minute's worth of bytes), so, as for percentiles,
    minutes are judged together over 5 and 15 of them (Stouffer, each minute capped): a size change
    that matters lasts.

    A theorem about many responses says little of one or two: the sum of a handful of skewed sizes
    is skewed too (its skewness is a response's over ``√n``), and under a normal tail two large
    segments in a row on an edge of one request a minute were a one-in-a-billion event. So a sum
    above its mean is judged by the heavier of the normal tail and that of a gamma distribution
    matched to its mean, variance and skewness (Pearson type III, ``_heavier_tail``); the skewness
    of a response is learned per hour with the other two moments (its third cumulant, ``E[(bytes -
    n mean)^3] / n``), and as ``n`` grows the gamma becomes the normal.
    """

    name = "size"
    _learned_attributes = (
        "hour_means_",
        "hour_variances_",
        "hour_skewness_",
        "dispersion_",
        "autocorrelation_",
    )
    #: Whether a smaller total than expected is news too.
    two_sided: ClassVar[bool] = True
    #: Whether the summed values are skewed enough to learn their skewness: sizes are; the log
    #: latencies of ``GeometricMeanDetector``, given the minute's mix of hits and misses, are not,
    #: and keep the class's zeros (nothing saved).
    skewed: ClassVar[bool] = True
    #: A model saved before it learned the skewness: its sums judged by the normal tail alone.
    hour_skewness_: np.ndarray = np.zeros(24)

    def _totals(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Each minute's total over its requests, and its requests."""
        totals, requests = self._matrix_totals(self._matrix(frame))
        return totals[0], requests[0]

    @classmethod
    def _matrix_totals(cls, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``_totals`` of each series of a series × features × steps matrix."""
        return _matrix_columns(values)

    def _fit_mix(self, values: np.ndarray, hours: np.ndarray, seen: np.ndarray) -> None:
        """Learn how the mix of a minute's requests moves one request's expected value
        (``_mix_shift``); a response's size does not depend on the mix."""

    @classmethod
    def _mix_shift(
        cls, models: Sequence[SizeDetector], values: np.ndarray, index: pd.DatetimeIndex
    ) -> np.ndarray | float:
        """What the minute's mix of requests adds to one request's expected value."""
        return 0.0

    def _fit(self, frame: pd.DataFrame) -> None:
        values, requests = self._totals(frame)
        seen = np.isfinite(values) & (requests > 0)
        if seen.sum() < 2 * MIN_ROWS_PER_HOUR:
            raise DetectorError(f"{self.name}: {int(seen.sum())} training minutes with requests, too few")
        hours = frame.index.hour.to_numpy()
        matrix = self._matrix(frame)
        self._fit_mix(matrix, hours, seen)
        values = values - requests * np.ravel(self._mix_shift([self], matrix, frame.index))
        overall = _size_moments(values[seen], requests[seen])
        learned = learned_hours(hours, seen)
        moments = [
            _size_moments(values[seen & (hours == hour)], requests[seen & (hours == hour)])
            if learned[hour]
            else overall
            for hour in range(24)
        ]
        self.hour_means_, self.hour_variances_, skewness = map(np.array, zip(*moments, strict=True))
        if self.skewed:
            self.hour_skewness_ = skewness
        self.dispersion_, self.autocorrelation_ = calibrated(self._z(frame))

    def _z(self, frame: pd.DataFrame) -> np.ndarray:
        """Each training minute's z-score (NaN without requests)."""
        return self._matrix_z([self], self._matrix(frame), frame.index)[0][0]

    @classmethod
    def _matrix_z(
        cls, models: Sequence[SizeDetector], values: np.ndarray, index: pd.DatetimeIndex
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each minute's z-score (NaN without requests) and one request's expected value."""
        totals, requests = cls._matrix_totals(values)
        seen = np.isfinite(totals) & (requests > 0)
        per_request = hourly_at(np.stack([model.hour_means_ for model in models]), index)
        per_request = per_request + cls._mix_shift(models, values, index)
        variances = hourly_at(np.stack([model.hour_variances_ for model in models]), index)
        skewness = hourly_at(np.stack([model.hour_skewness_ for model in models]), index)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (totals - requests * per_request) / np.sqrt(requests * variances)
            z = _heavier_tail(np.where(seen, z, np.nan), skewness / np.sqrt(requests))
        return z, per_request

    @classmethod
    def _expected_column(cls, values: np.ndarray, per_request: np.ndarray) -> np.ndarray:
        """The expected column: the minute's total bytes (NaN where the minute has no value)."""
        totals, requests = _matrix_columns(values)
        return np.where(np.isfinite(totals), requests * per_request, np.nan)

    @classmethod
    def _score_matrix(
        cls, models: Sequence[SizeDetector], values: np.ndarray, index: pd.DatetimeIndex, start: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        z, per_request = cls._matrix_z(models, values, index)
        scores = z_surprise(
            z / np.sqrt(learned_column(models, "dispersion_")),
            two_sided=cls.two_sided,
            autocorrelation=learned_column(models, "autocorrelation_"),
            windows=MINUTES_TOGETHER,
        )
        scores[~np.isfinite(z)] = np.nan
        return scores, cls._expected_column(values, per_request)


class GeometricMeanDetector(SizeDetector):
    """A latency's geometric mean over the minute's requests (``features.cdn``): the size detector's
    central limit theorem on the sum of the requests' log latencies, which is ``n`` times the log of
    the geometric mean. Every request of the minute counts, not only its slowest: on a slice of four
    requests a minute, a p95 is the slowest request, and a fivefold slowdown of all of them is one
    z-score in the spread of a minute's slowest request, whereas in the mean of the logs of sixty
    requests over fifteen minutes it is many. The minute's expectation moves with its share of cache
    misses (``_fit_mix``), read from the slice's hit ratio, the third column. Only a slower slice is
    bad."""

    name = "geometric_mean"
    two_sided: ClassVar[bool] = False
    skewed: ClassVar[bool] = False
    _learned_attributes = ("miss_penalty_", "hour_miss_shares_")
    #: A model saved before it learned the cache mix: its slice's latency as one mix of hits and misses.
    miss_penalty_: float = 0.0
    hour_miss_shares_: np.ndarray = np.zeros(24)

    INPUTS = "the series, its slice's requests per minute and its cache hit ratio"
    # Without the hit ratio (a model saved before it read it), the slice's latency is one mix.
    COLUMNS = (2, 3)

    @classmethod
    def input_series(cls, series: str) -> list[str]:
        return [*super().input_series(series), hit_ratio_series(series)]

    def batch_key(self) -> tuple[int]:
        return (len(self.feature_names_in_),)

    @classmethod
    def _matrix_totals(cls, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        means, requests = _matrix_columns(values)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(means > 0, requests * np.log(means), np.nan), requests

    def _fit_mix(self, values: np.ndarray, hours: np.ndarray, seen: np.ndarray) -> None:
        """The miss penalty: how much slower a cache miss is than a hit, in log latency.

        A slice's requests come from two modes, hits in milliseconds and misses in tens or hundreds of
        them, and a thin slice's minute is a handful of each, as many of either as chance gives: most of
        its spread is the mix. A minute's mean log latency is the hour's level plus the penalty times
        how far its share of misses lies from the hour's; the penalty is the slope of that, within
        each hour of day, over the training minutes weighted by their requests. A slice whose logs name
        no cache result (its misses' share never moves) keeps a penalty of 0.

        An hour with too few minutes to learn its level from (``MIN_ROWS_PER_HOUR``) is judged at the
        level of all hours (``_fit``), so its usual share of misses is theirs too: a thin edge's few
        training minutes at 7 a.m., all misses, do not make a 7 a.m. hit fifteen times faster than
        the edge's typical request."""
        if values.shape[1] < 3:
            return
        totals, requests = (column[0] for column in self._matrix_totals(values))
        misses = _miss_shares(values)[0]
        known = seen & np.isfinite(misses)
        weights = np.where(known, requests, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            in_hour = np.bincount(hours, weights, minlength=24)
            missed = np.bincount(hours, weights * np.nan_to_num(misses), minlength=24)
            shares = np.nan_to_num(missed / in_hour)
            levels = np.bincount(hours, np.where(known, totals, 0.0), minlength=24) / in_hour
            logs = totals / requests
            overall = missed.sum() / in_hour.sum()
        self.hour_miss_shares_ = np.where(learned_hours(hours, seen), shares, np.nan_to_num(overall))
        apart = np.where(known, misses - shares[hours], 0.0)
        spread = float(np.sum(weights * apart**2))
        slope = float(np.sum(weights * apart * np.where(known, logs - np.nan_to_num(levels)[hours], 0.0)))
        # A mix that barely moved says nothing of the penalty (to one part in a million of the requests).
        self.miss_penalty_ = slope / spread if spread > 1e-6 * weights.sum() else 0.0

    @classmethod
    def _mix_shift(
        cls, models: Sequence[SizeDetector], values: np.ndarray, index: pd.DatetimeIndex
    ) -> np.ndarray | float:
        """The miss penalty times how far the minute's share of misses lies from its time of day's (none
        where the minute's share is unknown, or for a model that did not read it)."""
        if values.shape[1] < 3:
            return 0.0
        usual = hourly_at(np.stack([model.hour_miss_shares_ for model in models]), index)
        apart = np.nan_to_num(_miss_shares(values) - usual)
        return learned_column(models, "miss_penalty_") * apart

    @classmethod
    def _expected_column(cls, values: np.ndarray, per_request: np.ndarray) -> np.ndarray:
        """The expected column: the typical request's latency, the geometric mean's own scale."""
        return np.exp(per_request)


def learned_hours(hours: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Which hours of day (24) hold the ``MIN_ROWS_PER_HOUR`` training minutes with values (``seen``)
    that learn an hour's own level; the others are judged at the level of all hours."""
    return np.bincount(hours[seen], minlength=24) >= MIN_ROWS_PER_HOUR


def hourly_at(hourly: np.ndarray, index: pd.DatetimeIndex) -> np.ndarray:
    """What was learned per hour of day (the last axis, 24) at each time of ``index``: linear between
    the middles of the hours, across midnight too. A level learned from an hour's minutes is its
    level at half past; read as a step, it is too low at the end of an hour through which the
    latency climbs (the traffic's mix turning at dawn) and too high at its start, and at thousands of
    requests a minute those few percent are beyond the noise, at the same minutes every day."""
    hours = index.hour.to_numpy() + index.minute.to_numpy() / 60 - 0.5
    before = np.floor(hours)
    after_share = hours - before
    before = before.astype(int) % 24
    return hourly[..., before] * (1 - after_share) + hourly[..., (before + 1) % 24] * after_share


def _miss_shares(values: np.ndarray) -> np.ndarray:
    """Each minute's share of requests that missed the cache, of a series × features × steps matrix
    whose third feature is the hit ratio (NaN where unknown)."""
    return 1.0 - values[:, 2]


def _size_moments(values: np.ndarray, requests: np.ndarray) -> tuple[float, float, float]:
    """The mean, the variance and the skewness of one response's size, from minutes of ``values``
    bytes over ``requests`` responses (method of moments: a sum's cumulants are ``n`` times one
    response's). Sizes are skewed to the right; a skewness below 0 is noise and counts as 0, and
    one beyond ``MAX_SKEWNESS`` as that."""
    mean = float(values.sum() / requests.sum())
    residuals = values - requests * mean
    variance = max(float((residuals**2).sum() / requests.sum()), (1e-3 * mean) ** 2, 1e-12)
    skewness = float((residuals**3).sum() / requests.sum()) / variance**1.5
    return mean, variance, float(np.clip(skewness, 0.0, MAX_SKEWNESS))


def _heavier_tail(z: np.ndarray, skewness: np.ndarray) -> np.ndarray:
    """Each z-score of a sum above its mean as the normal's z-score of the same tail probability under
    a Pearson type III of the sum's ``skewness`` (the gamma matched to its first three moments), where
    that tail is the heavier; below the mean, or without skewness, the z-score as it is."""
    upper = (z > 0) & (skewness > 0)
    judged = z.copy()
    judged[upper] = np.minimum(z[upper], stats.norm.isf(stats.pearson3.sf(z[upper], skewness[upper])))
    return judged


def _resolution(values: np.ndarray) -> float:
    """The step between neighbouring values the training minutes took (the median gap between the
    distinct ones): a millisecond for a percentile logged in milliseconds, next to nothing for a
    percentile interpolated between thousands of requests."""
    distinct = np.unique(values[np.isfinite(values)])
    return float(np.median(np.diff(distinct))) if distinct.size > 1 else 0.0


def _noise_model(residuals: np.ndarray, requests: np.ndarray, bins: int = 10) -> tuple[float, float]:
    """``(s0², c)`` of ``variance = s0² + c / n``: least squares over bins of minutes with alike ``n``,
    each bin's variance a robust one (``robust_spread``: a percentile recorded in whole milliseconds
    sits on one value most minutes, and its spread is in the others), neither term negative."""
    edges = np.unique(np.quantile(requests, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, requests, side="right") - 1, 0, max(len(edges) - 2, 0))
    inverse, variance = [], []
    for b in np.unique(which):
        members = residuals[which == b]
        if members.size >= 10:
            inverse.append(np.mean(1 / requests[which == b]))
            variance.append(robust_spread(members) ** 2)
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

    The expectation is the daily profile of the training days (``profiles.daily_profile``) times the
    level of the last ``window`` minutes relative to it: the median over ``LEVEL_BLOCKS`` blocks of
    those minutes of their requests over the profile's, each with a share of ``LEVEL_PRIOR`` more
    requests (a median of means), so that a thin slice keeps the profile until its own requests say
    otherwise, a growing or shrinking service is followed over two hours, and a drop shorter than one
    does not move the level (nor makes the traffic after it a surge). A drop (an edge or an encoder
    failing) or a surge stands out. Each window of 1, 5, 15, 30 and 60 minutes (``COUNT_WINDOWS``) has its
    own overdispersion, measured on the training days: whatever the expectation misses there is noise.
    Fewer requests than expected are judged against the noise of the training sums that fell short
    of it alone (``overdispersion_`` is a shortfall's × every sum's, by window): a crawler that
    triples a thin edge's requests for twenty minutes most days says nothing of how far its viewers'
    requests fall short, and measured with it the noise hid an edge that lost three quarters of them
    for half an hour. More requests are judged against all of it (the half hour's and the hour's
    surplus noise is measured but unread: those windows judge shortfalls only, ``COUNT_WINDOWS``).

    The level follows only blocks within ``LEVEL_REACH`` times the range of levels training saw (its
    minutes' but ``profiles.RANGE_TAIL`` at each end: ``level_range_``), and only while they are at
    least half the blocks; else it is the profile's own. A service that loses all its requests has not
    shrunk: an outage of a day and a half reads as one for all of it, not for its first hour and a half
    (after which the level had followed it to nothing), and the traffic that comes back is not a surge
    against that nothing, nor against the one block that holds the outage's end and the return. A flash crowd
    far beyond anything training saw likewise stays an incident for as long as it lasts, and its end is
    not a drop.

    The overdispersions are measured out of sample where training holds ``OUT_OF_SAMPLE_DAYS`` days or
    more: each training day against the profile of the other days. A profile is an estimate (a week of
    a channel at twenty requests a minute pins each quarter of an hour to a few per cent), and the day
    it is scored on is never one it was learned from; measured on its own days, the profile's error is
    hidden, the hour's overdispersion comes out at nothing, and a quarter of an hour where the profile
    ran high by chance is a page.
    """

    name = "count"
    _learned_attributes = ("profile_", "overdispersion_", "level_range_")
    #: A thin edge that lost its viewers still serves a few of them, and traffic comes in clumps: a
    #: minute of four requests in a drop breaks its windows' run for a few minutes, and the drop is
    #: one event on either side of them, not two that each fall short of a page.
    event_window_rows: ClassVar[int | None] = max(WINDOWS)
    #: Requests the trailing level starts from, at the profile's level.
    LEVEL_PRIOR: ClassVar[float] = 10.0
    #: The trailing window is cut into this many blocks; the level is the median of theirs.
    LEVEL_BLOCKS: ClassVar[int] = 6
    #: How far past the lowest and highest levels of training a block may lie and still be followed.
    LEVEL_REACH: ClassVar[float] = 2.0
    #: Training days that let each day's noise be measured against the profile of the others.
    OUT_OF_SAMPLE_DAYS: ClassVar[int] = 3
    #: A model saved before the level's range was learned follows every block, as it did.
    level_range_: tuple[float, float] = (0.0, float("inf"))

    def __init__(
        self,
        window: int = 120,
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

    def _lookback(self) -> int:
        # The level reads the ``window`` rows before a row; the hour's window sums 59 rows of levels.
        return self.window + max(COUNT_WINDOWS) - 1

    def batch_key(self) -> tuple[int]:
        return (self.window,)

    def _expected(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        counts, expected = self._matrix_expected([self], matrix_of(frame), frame.index)
        return counts[0], expected[0]

    @classmethod
    def _matrix_expected(
        cls,
        models: Sequence[CountDetector],
        values: np.ndarray,
        index: pd.DatetimeIndex,
        profiles: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each series' requests per minute and what was expected of them (under ``profiles``, a
        series × 1440 matrix, in place of the models' own)."""
        counts, window = values[:, 0], models[0].window
        if profiles is None:
            profiles = np.stack([model.profile_ for model in models])
        seasonal = profiles[:, minute_of_day(index)]
        ratios = cls._block_ratios(counts, seasonal, window)
        low, high = (np.array([model.level_range_[end] for model in models])[None, :, None] for end in (0, 1))
        # The blocks before the row (the row itself is what is judged), each its own ratio to the
        # profile; their median is the level, so that a drop of ten minutes does not lower the level
        # for the hour after it and make normal traffic look like a surge.
        kept = (ratios >= low) & (ratios <= high)
        followed = kept.sum(axis=0)
        blocks = np.moveaxis(np.where(kept, ratios, np.nan), 0, -1).reshape(-1, cls.LEVEL_BLOCKS)
        level = median_of_rows(blocks, np.maximum(followed, 1).ravel()).reshape(followed.shape)
        # Fewer than half the blocks followed: the profile's own level.
        level = np.where(2 * followed >= cls.LEVEL_BLOCKS, level, 1.0)
        return counts, np.maximum(seasonal * level, 1.0 / window)

    @classmethod
    def _block_ratios(cls, counts: np.ndarray, seasonal: np.ndarray, window: int) -> np.ndarray:
        """Blocks × series × steps: the requests of each of the ``LEVEL_BLOCKS`` blocks of the ``window``
        rows before a row over the profile's, each with a share of ``LEVEL_PRIOR`` more requests."""
        seen = np.isfinite(counts)
        block = max(window // cls.LEVEL_BLOCKS, 1)
        observed = trailing_sums(np.where(seen, counts, 0.0), block)
        usual = trailing_sums(np.where(seen, seasonal, 0.0), block)
        prior = cls.LEVEL_PRIOR / cls.LEVEL_BLOCKS
        return np.stack(
            [
                (_shifted(observed, 1 + b * block) + prior) / (_shifted(usual, 1 + b * block) + prior)
                for b in range(cls.LEVEL_BLOCKS)
            ]
        )

    def _fit(self, frame: pd.DataFrame) -> None:
        self._check_integers({"window": 1, "smoothing": 1})
        counts = frame.iloc[:, 0]
        if counts.notna().sum() < 2 * self.window:
            raise DetectorError(f"{self.name}: window={self.window} needs {2 * self.window} training minutes")
        # One day is no daily profile: an edge that has a series of its own only on the day a crawler
        # made it one of the busiest would expect the crawler at that hour every day.
        check_profile_days(self.name, counts.dropna().index)
        self.profile_ = np.nan_to_num(daily_profile(counts, self.smoothing), nan=0.0)
        seasonal = self.profile_[minute_of_day(frame.index)]
        # Each row's block just before it: every block training saw, once.
        levels = self._block_ratios(counts.to_numpy()[None], seasonal[None], self.window)[0, 0]
        low, high = np.quantile(levels, [RANGE_TAIL, 1 - RANGE_TAIL])
        self.level_range_ = (float(low) / self.LEVEL_REACH, float(high) * self.LEVEL_REACH)
        expected = self._out_of_sample_expected(frame)
        self.overdispersion_ = np.array(
            [
                [_dispersion(counts.to_numpy(), expected, window, shortfall) for window in COUNT_WINDOWS]
                for shortfall in (True, False)
            ]
        )

    def _out_of_sample_expected(self, frame: pd.DataFrame) -> np.ndarray:
        """Each training row's expectation under the profile of the other training days (under the
        whole week's with fewer than ``OUT_OF_SAMPLE_DAYS`` days, and at the minutes of a day that no
        other day saw)."""
        days = frame.index.normalize()
        if days.nunique() < self.OUT_OF_SAMPLE_DAYS:
            return self._expected(frame)[1]
        values, expected = matrix_of(frame), np.empty(len(frame))
        for day in days.unique():
            own = days == day
            others = daily_profile(frame.iloc[:, 0][~own], self.smoothing)
            others = np.where(np.isnan(others), self.profile_, others)[None]
            expected[own] = self._matrix_expected([self], values, frame.index, others)[1][0, own]
        return expected

    @classmethod
    def _score_matrix(
        cls, models: Sequence[CountDetector], values: np.ndarray, index: pd.DatetimeIndex, start: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        counts, expected = cls._matrix_expected(models, values, index)
        seen = np.isfinite(counts)
        direction = np.sign(np.where(seen, counts - expected, 0.0))
        overdispersions = np.stack([_sided(model.overdispersion_) for model in models])
        surprises, sums = [], {}
        for column, window in enumerate(COUNT_WINDOWS):
            x = trailing_sums(np.where(seen, counts, 0.0), window)
            mean = trailing_sums(np.where(seen, expected, 0.0), window)
            sums[window] = x, mean
            lasting = direction
            if (before := gate(COUNT_WINDOWS, window)) is not None:
                lasting = np.where(_poisson_departed(*sums[before], x, mean), direction, 0.0)
            shortfall = 1.0 / overdispersions[:, 0, column, None]
            low = stats.nbinom.cdf(x, shortfall, shortfall / (shortfall + np.maximum(mean, 1e-9)))
            if window > WINDOWS[-1]:
                # The half hour and the hour judge shortfalls only, which is what they are for (a
                # surge shows within a quarter of an hour, and in them a crawler's echoed after it
                # left), and only while the last quarter of an hour is unusual too (one chance in a
                # hundred): else a ten-minute drop would colour the hour after it. A side chosen
                # beforehand pays nothing for the other.
                quarter = surprises[COUNT_WINDOWS.index(WINDOWS[-1])]
                tail = np.where((quarter >= LATELY) & (lasting < 0), low, 1.0)
            else:
                # The row's own side decides which tail its window is judged on (while its ``gate``
                # has departed with it), and looking at both costs a factor of two.
                surplus = 1.0 / overdispersions[:, 1, column, None]
                high = stats.nbinom.sf(x - 1, surplus, surplus / (surplus + np.maximum(mean, 1e-9)))
                tail = 2 * np.where(lasting < 0, low, np.where(lasting > 0, high, 0.5))
            surprises.append(surprise(np.minimum(1.0, tail)))
        scores = combined(surprises)
        scores[~seen] = np.nan
        return scores, expected


def _near(rows: np.ndarray, reach: int) -> np.ndarray:
    """Whether each row lies less than ``reach`` rows from one of ``rows`` (a boolean series)."""
    marked = rows.astype(float)
    return (trailing_sums(marked, reach) > 0) | (trailing_sums(marked[::-1], reach)[::-1] > 0)


def _shifted(values: np.ndarray, rows: int) -> np.ndarray:
    """``values`` moved ``rows`` rows later along the last axis, 0 before the first."""
    moved = np.zeros(np.shape(values))
    moved[..., rows:] = values[..., : max(np.shape(values)[-1] - rows, 0)]
    return moved


def _matrix_columns(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each series' values and its slice's requests (0 where missing), of a series × features × steps
    matrix."""
    return values[:, 0], np.nan_to_num(values[:, 1])


def _goes_down(models: Sequence[Detector]) -> np.ndarray:
    """Whether each model's rate goes bad downwards (a hit ratio), as a column."""
    return np.array([goes_bad_downwards(str(model.feature_names_in_[0])) for model in models])[:, None]


def _binomial_departed(
    bad: np.ndarray, requests: np.ndarray, rate: np.ndarray, window_rate: np.ndarray
) -> np.ndarray:
    """Whether ``bad`` of ``requests`` (a shorter window's) are likelier at ``window_rate``, worse than
    the trained ``rate``, than at ``rate`` itself."""
    good = requests - bad
    log_ratio = bad * np.log(window_rate / rate) + good * np.log((1 - window_rate) / (1 - rate))
    return (window_rate > rate) & (log_ratio > 0)


def _poisson_departed(
    counts: np.ndarray, expected: np.ndarray, x: np.ndarray, mean: np.ndarray
) -> np.ndarray:
    """Whether ``counts`` against ``expected`` (a shorter window's) are likelier at the level of a
    window of ``x`` against ``mean`` requests than at the expected level."""
    ratio = (x + 0.5) / (mean + 0.5)
    return counts * np.log(ratio) - (ratio - 1) * expected > 0


def _rate_tail(k: np.ndarray, n: np.ndarray, rate: np.ndarray, overdispersion: np.ndarray) -> np.ndarray:
    """P(K >= k) of ``n`` requests at each series' ``rate`` (a column): binomial where the series'
    ``overdispersion`` is 0, beta-binomial where it is not."""
    n = n.astype(np.int64)
    tail = np.empty(np.shape(k))
    plain = overdispersion[:, 0] <= 0
    if plain.any():
        tail[plain] = stats.binom.sf(k[plain] - 1, n[plain], rate[plain])
    if not plain.all():
        spread = (1 - overdispersion[~plain]) / overdispersion[~plain]
        rate = rate[~plain]
        tail[~plain] = stats.betabinom.sf(k[~plain] - 1, n[~plain], rate * spread, (1 - rate) * spread)
    return tail


def _dispersion(counts: np.ndarray, expected: np.ndarray, window: int, shortfall: bool = False) -> float:
    """The negative binomial dispersion of ``window``-row sums around their expectation (moments): of
    all of them, or of those at or below it (``shortfall``)."""
    seen = np.isfinite(counts)
    x = trailing_sums(np.where(seen, counts, 0.0), window)[seen]
    mean = trailing_sums(np.where(seen, expected, 0.0), window)[seen]
    if shortfall:
        x, mean = x[x <= mean], mean[x <= mean]
    return float(np.clip(((x - mean) ** 2 - mean).sum() / max((mean**2).sum(), 1e-12), 1e-6, 1.0))


def _sided(overdispersion: np.ndarray) -> np.ndarray:
    """A count model's overdispersions, a shortfall's and every sum's × windows; a model saved before
    a shortfall had its own has one for both."""
    return np.broadcast_to(overdispersion, (2, len(COUNT_WINDOWS)))


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

    def context(self) -> pd.Timedelta:
        # A row is judged alone.
        return pd.Timedelta(0)

    def _fit(self, frame: pd.DataFrame) -> None:
        observed = frame.iloc[:, 0].dropna()
        if observed.nunique() != 1:
            raise DetectorError(f"{self.name}: the target moved in training; use a detector that learns how")
        self.value_ = float(observed.iloc[0])

    def batch_key(self) -> tuple[()]:
        return ()

    @classmethod
    def _score_matrix(
        cls, models: Sequence[Detector], values: np.ndarray, index: pd.DatetimeIndex, start: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        values = values[:, 0]
        level = learned_column(models, "value_")
        departure = np.abs(values - level) / np.maximum(np.abs(level), 1.0)
        return departure, np.where(np.isnan(values), np.nan, level)
