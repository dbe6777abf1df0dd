"""Scores as surprises: ``-log10`` of the chance that normal data looks at least this bad.

The count-aware CDN detectors and the daily-profile detector of server metrics judge each row over
trailing windows of 1, 5 and 15 rows, so a sharp outage and a slow leak both show, and keep the
largest window's surprise less what looking at several windows costs (Bonferroni). A row carries its
windows' surprise only when it is itself on the bad side, and a window longer than five rows only while
the window before it has ``departed`` with it too, so an event ends with its cause.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

#: The windows, in rows, a row's surprise is taken over; the largest of them counts.
WINDOWS = (1, 5, 15)
#: Surprises are capped here: past it, every probability is "never".
MAX_SURPRISE = 300.0
#: A window this long or longer says whether the next longer one still speaks (``gate``).
LASTING = 5
#: In windows longer than a row, z-scores count at most this much (a Huber-like cap).
Z_CAP = 5.0


def surprise(p: np.ndarray) -> np.ndarray:
    """``-log10(p)``, 0 for p = 1, capped at ``MAX_SURPRISE``."""
    with np.errstate(divide="ignore"):
        return np.minimum(-np.log10(np.clip(p, 0.0, 1.0)), MAX_SURPRISE)


def trailing_sums(values: np.ndarray, window: int) -> np.ndarray:
    """The sum of each row's last ``window`` values (the row's own included) along the last axis (a
    series, or a series × steps matrix); NaN count as 0.

    Each sum adds its own window's values, newest first, whatever precedes them: a row's sum does not
    depend on where the series starts, so scoring from a day's first row, or from a batch's, gives
    the very same numbers (a running total's differences would differ in their last bits).
    """
    observed = np.nan_to_num(values)
    sums = observed.copy()
    for lag in range(1, min(window, np.shape(values)[-1])):
        sums[..., lag:] += observed[..., :-lag]
    return sums


def combined(surprises: list[np.ndarray]) -> np.ndarray:
    """The largest of the windows' surprises, less what looking at several windows costs (Bonferroni)."""
    stacked = np.stack(surprises)
    best = np.nanmax(np.where(np.isnan(stacked), -np.inf, stacked), axis=0)
    best[np.isinf(best)] = np.nan
    return np.maximum(best - np.log10(len(surprises)), 0.0)


def z_surprise(
    z: np.ndarray,
    *,
    two_sided: bool,
    autocorrelation: float | np.ndarray = 0.0,
    windows: tuple[int, ...] = WINDOWS,
) -> np.ndarray:
    """The combined surprise of z-scores (NaN: no opinion) over ``windows``, each window's z-scores
    summed as Stouffer has it. One-sided, only a row above its expectation is bad; two-sided, a row
    is judged on its own side, and the surprise pays for looking at both. A window longer than five
    rows speaks only while the window before it has ``departed`` with it.

    Minutes next to each other are alike (a model's misfit lasts), so a window's sum is scaled by its
    standard deviation under the ``autocorrelation`` of consecutive z-scores (AR(1)), not by the
    square root of its length: fifteen minutes that drift together are not fifteen witnesses.
    Along the last axis; for a series × steps matrix, ``autocorrelation`` may be a column of one per
    series.
    """
    seen = np.isfinite(z)
    own = np.where(seen, z, 0.0)
    surprises, shifts = [], {}
    for window in windows:
        counted = trailing_sums(seen.astype(float), window)
        # The longer windows look for a departure that lasts; a minute far out is the one-minute
        # window's to judge, and must not carry the minutes after it.
        summed = trailing_sums(own if window == 1 else np.clip(own, -Z_CAP, Z_CAP), window)
        stouffer = summed / np.sqrt(sum_variance(np.maximum(counted, 1), autocorrelation))
        if two_sided:
            side = np.sign(own)
            tail = np.where(side != 0, np.minimum(1.0, 2 * stats.norm.sf(side * stouffer)), 1.0)
        else:
            tail = np.where(own > 0, stats.norm.sf(stouffer), 1.0)
        shifts[window] = shift = summed / np.maximum(counted, 1)
        if (before := gate(windows, window)) is not None:
            tail = np.where(departed(shifts[before], shift), tail, 1.0)
        surprises.append(np.where(counted > 0, surprise(tail), np.nan))
    return combined(surprises)


def gate(windows: tuple[int, ...], window: int) -> int | None:
    """The window of ``windows`` that must have ``departed`` with ``window`` for it to speak: the one
    before it, when that is ``LASTING`` rows or longer; None for the shortest windows, which go by the
    row's own side alone."""
    shorter = [other for other in windows if other < window]
    return shorter[-1] if shorter and shorter[-1] >= LASTING else None


def departed(z: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Whether each mean z-score ``z`` of a shorter window is likelier under its longer window's mean
    ``shift`` than under none: past half the shift, on its side (the likelihoods of two unit normals
    cross there).

    A window holds an incident for as long as it is after the incident ended, and the rows after it,
    back to normal, are on the bad side by chance half the time: on that alone they carried the
    incident's surprise, ten minutes of its report and its alerts after the CDN had recovered. The
    window before it (``gate``) is back to normal within a few minutes. The row's own
    side alone stays the rule of the shortest windows: a thin slice's single minute is too noisy to
    say it has left an incident.
    """
    return z * np.sign(shift) > np.abs(shift) / 2


def sum_variance(rows: np.ndarray, autocorrelation: float | np.ndarray) -> np.ndarray:
    """The variance of the sum of ``rows`` (at least 1) consecutive unit-variance AR(1) values:
    ``w + 2 * sum_k (w - k) rho^k`` for k from 1 to w - 1 (``rho`` in ``[0, 1)``)."""
    rho = np.asarray(autocorrelation, dtype=float)
    w = rows.astype(float)
    # The closed form of the sum: w (1 + rho) / (1 - rho) - 2 rho (1 - rho^w) / (1 - rho)^2, which
    # is w itself, exactly, for rho = 0.
    return w * (1 + rho) / (1 - rho) - 2 * rho * (1 - rho**w) / (1 - rho) ** 2


def lag1_autocorrelation(z: np.ndarray) -> float:
    """The correlation of consecutive z-scores (both seen), clipped to ``[0, 0.95]``; z-scores beyond
    ``Z_CAP`` count as ``Z_CAP``, so that the incidents a training week holds do not make its minutes
    look alike."""
    clipped = np.clip(z, -Z_CAP, Z_CAP)
    pairs = np.isfinite(clipped[1:]) & np.isfinite(clipped[:-1])
    if pairs.sum() < 3:
        return 0.0
    first, second = clipped[:-1][pairs], clipped[1:][pairs]
    if first.std() == 0 or second.std() == 0:
        return 0.0
    return float(np.clip(np.corrcoef(first, second)[0, 1], 0.0, 0.95))


def dispersion(z: np.ndarray) -> float:
    """How much more training's z-scores scatter than a noise model said (the mean of their squares,
    each capped at ``Z_CAP``), at least 1: the dispersion of a quasi-likelihood, Pearson's statistic
    over its degrees of freedom. A robust spread sees the bulk of the minutes; a thin slice's median
    that flips between cache hits and misses every few minutes scatters more than the bulk, and its
    z-scores are divided by the root of this."""
    seen = z[np.isfinite(z)]
    if seen.size == 0:
        return 1.0
    return float(max(1.0, np.mean(np.clip(seen, -Z_CAP, Z_CAP) ** 2)))


def calibrated(z: np.ndarray) -> tuple[float, float]:
    """The ``dispersion`` of training's z-scores as a noise model gave them, and the
    ``lag1_autocorrelation`` of those z-scores once divided by its root."""
    spread = dispersion(z)
    return spread, lag1_autocorrelation(z / np.sqrt(spread))


class SurpriseScores:
    """For a detector whose scores are surprises: a normal row reaches ``-log10(p)`` with chance ``p``,
    which is the least a budget threshold can be, and the threshold when training gives too few
    events to calibrate one (``thresholds.false_alarm_budget_threshold``)."""

    calibrated = True

    def _uncalibrated_threshold(self, false_events_per_row: float) -> float | None:
        return float(-np.log10(false_events_per_row))
