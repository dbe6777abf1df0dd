"""Thresholds: turn a detector's training scores into the score above which a row is anomalous.

Pure functions of the training scores. Non-finite scores are ignored; a row is anomalous when its
score is at or above the threshold.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

#: Scale factor that makes the MAD a consistent estimator of the standard deviation for normal data.
MAD_TO_SIGMA = 1.4826


def _finite(scores: ArrayLike) -> np.ndarray:
    values = np.asarray(scores, dtype=float).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("no finite values: all are missing or infinite")
    return values


def anomaly_ratio_threshold(scores: ArrayLike, ratio: float = 0.01) -> float:
    """The ``1 - ratio`` quantile: about ``ratio`` of the training rows score at or above it.

    The seed notebook's rule (``np.nanpercentile(abs(diff), 100 - 100 * anomaly_ratio)``).
    """
    if not 0 < ratio < 1:
        raise ValueError(f"anomaly ratio must be between 0 and 1, got {ratio!r}")
    return float(np.percentile(_finite(scores), 100 - 100 * ratio))


def max_training_threshold(scores: ArrayLike) -> float:
    """The largest training score: the CDN seed's "max training reconstruction error"."""
    return float(_finite(scores).max())


def robust_spread(values: ArrayLike) -> float:
    """``1.4826 * MAD`` of the finite values, or their standard deviation where the MAD is 0.

    The MAD is 0 when more than half the values are equal (a mostly idle counter, a mostly
    perfectly predicted series); the standard deviation keeps the spread of the rest in view.
    """
    finite = _finite(values)
    mad = float(np.median(np.abs(finite - np.median(finite))))
    return MAD_TO_SIGMA * mad if mad > 0 else float(finite.std())


def robust_threshold(scores: ArrayLike, k: float = 5.0) -> float:
    """``median + k * 1.4826 * MAD`` of the training scores (see ``robust_spread`` for MAD = 0)."""
    if k < 0:
        raise ValueError(f"k must be non-negative, got {k!r}")
    return float(np.median(_finite(scores))) + k * robust_spread(scores)


#: Rows between two exceedances that make them one event: the grouping of ``models.scoring.group_events``.
EVENT_SEPARATION = 5
#: Exceedance events in the training scores needed to fit their tail; fewer, and the threshold is the
#: detector's own (a p-value's) or the largest training score.
MIN_TAIL_EVENTS = 20
#: The quantile of the training scores above which the tail is fitted.
TAIL_QUANTILE = 0.98
DAYS_PER_BUDGET = 30
#: False events per series per 30 days that a budget threshold allows unless told otherwise.
DEFAULT_BUDGET = 0.1
#: False incidents a day that all the series of a deployment allow together unless told otherwise: a CDN
#: with many edges must not cry wolf more often than a small one.
DEFAULT_DAILY_BUDGET = 1.0


def event_peaks(scores: ArrayLike, level: float, separation: int = EVENT_SEPARATION) -> np.ndarray:
    """The peak of each run of scores above ``level``; runs less than ``separation`` rows apart are one.

    Missing scores (no opinion) count as below ``level``.
    """
    values = np.nan_to_num(np.asarray(scores, dtype=float).ravel(), nan=-np.inf)
    above = np.flatnonzero(values > level)
    if above.size == 0:
        return np.empty(0)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(above) >= separation) + 1])
    return np.maximum.reduceat(values[above], starts)


def check_budget(budget: object, unit: str = "false incidents per series per 30 days") -> float:
    """A false-alarm budget as a number; a ValueError unless it is a positive one."""
    if isinstance(budget, bool) or not isinstance(budget, int | float) or not budget > 0:
        raise ValueError(f"the false-alarm budget must be a positive number of {unit}, got {budget!r}")
    return float(budget)


def series_budget(series: int, incidents_per_day: float = DEFAULT_DAILY_BUDGET) -> float:
    """The budget of each of ``series`` watched series (false events per 30 days) whose false events
    together stay within ``incidents_per_day``: ``DEFAULT_BUDGET``, or less where that many series
    at it would add up to more (300 series at 0.1 make one a day; 1,200 make four)."""
    check_budget(incidents_per_day, "false incidents a day")
    return min(DEFAULT_BUDGET, DAYS_PER_BUDGET * incidents_per_day / max(series, 1))


def false_alarm_budget_threshold(
    scores: ArrayLike,
    incidents_per_30_days: float = DEFAULT_BUDGET,
    *,
    rows_per_day: float = 1440.0,
    model_threshold: float | None = None,
) -> float:
    """The score above which false events are as rare as the budget: ``incidents_per_30_days`` events
    (runs of anomalous rows) per series per 30 days, estimated from the training scores.

    Peaks over threshold, as extreme value theory has it (Pickands; SPOT, Siffer et al. KDD 2017): the
    training scores' events above their ``TAIL_QUANTILE`` are declustered into one peak each, the
    excesses of the peaks over that level are fitted (robustly: the scale from their median), and the
    threshold is where the fitted rate of events falls to the budget. It can lie beyond every training
    score: that is the point, a budget of one false event a year is not seen in two weeks of history.
    The excesses are fitted with the generalised Pareto distribution of shape 0, the exponential: the
    scores of the detectors here are z-scores and surprises (``-log10 p``), whose tails are exponential
    or lighter, and a free shape fitted to a few dozen peaks, lumpy where counts are small, reads a
    heavy tail into them and puts the threshold at an extrapolation no data supports.
    A detector whose scores are p-values (``-log10 p``) knows its own threshold for the budget,
    ``model_threshold``: the fitted one is never below it. The fit corrects a model whose tails are
    lighter than the data's (a percentile that flips between cache hits and misses); extrapolating
    eight e-folds from a few days' peaks is the less sure of the two when it comes out lower.
    With fewer than ``MIN_TAIL_EVENTS`` distinct peaks there is no tail to fit: the threshold is
    ``model_threshold`` if it lies above the tail's level, or else the largest training score.
    """
    check_budget(incidents_per_30_days)
    values = np.asarray(scores, dtype=float).ravel()
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise ValueError("no finite values: all are missing or infinite")
    wanted_rate = incidents_per_30_days / (DAYS_PER_BUDGET * rows_per_day)
    level = float(np.quantile(finite, TAIL_QUANTILE))
    peaks = event_peaks(values, level)
    # A tail is fitted to peaks that take many values; a few values repeated (one error among two
    # requests, then two) are the lumps of counts, and the detector's own probabilities are exact there.
    if np.unique(peaks).size < MIN_TAIL_EVENTS:
        # A detector's own threshold that a fiftieth of the training rows reach (a model that thought
        # a percentile recorded in whole milliseconds could not move) is not one these data support.
        if model_threshold is not None and model_threshold > level:
            return float(model_threshold)
        return float(finite.max())
    event_rate = peaks.size / values.size
    if wanted_rate >= event_rate:
        # A budget looser than the fitted level: the training peaks themselves say where it lies.
        fitted = float(np.quantile(peaks, 1 - wanted_rate / event_rate))
    else:
        # The exponential's scale from the median excess, not the mean: a training week holds real
        # incidents too, and a few of their peaks would stretch a mean, and the threshold with it.
        scale = float(np.median(peaks - level)) / np.log(2)
        fitted = level + scale * float(np.log(event_rate / wanted_rate))
    return fitted if model_threshold is None else max(fitted, float(model_threshold))


THRESHOLD_METHODS: dict[str, Callable[..., float]] = {
    "anomaly_ratio": anomaly_ratio_threshold,
    "false_alarm_budget": false_alarm_budget_threshold,
    "max": max_training_threshold,
    "robust": robust_threshold,
}


def fit_threshold(scores: ArrayLike, method: str, **kw: Any) -> float:
    """The threshold of ``method`` (a key of ``THRESHOLD_METHODS``) with its options ``kw``."""
    try:
        rule = THRESHOLD_METHODS[method]
    except KeyError:
        raise ValueError(
            f"unknown threshold method {method!r}; choose one of {', '.join(THRESHOLD_METHODS)}"
        ) from None
    return rule(scores, **kw)
