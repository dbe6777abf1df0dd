"""The calibration stage: a detector's raw score as the surprise of its tail probability.

Raw scores mean different things from one detector, and one series, to the next: a residual in the
units of its series, a Mahalanobis distance in as many dimensions as a window has rows. NAB's one
threshold over a whole corpus, and a maximum over the metrics of an entity, need scores on one scale.
As Merlion separates a model from its post-processing (calibration, then threshold), a raw score ``s``
becomes ``-log10 P(S >= s)`` under the scores a detector gave to normal-looking data before it:

- in the bulk, the share of the reference scores at or above ``s`` (their empirical tail);
- beyond the reference's ``thresholds.TAIL_QUANTILE``, an exponential tail fitted to the excesses over
  that level (peaks over threshold with shape 0, as ``thresholds.false_alarm_budget_threshold`` fits
  it, the scale from the median excess, so a training incident does not stretch it), so that a score
  past every reference one is still ranked by how far past it lies.

``online_surprise`` is the causal form used on a series: each block of rows is calibrated on the
training scores and every score before the block, as HTM's anomaly likelihood learns its
distribution as it goes. ``scales_surprise`` calibrates trailing means of the scores too, for a
change too small for any one row's tail that lasts. Nothing here sees a label.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from passion_tasks.defaults import CALIBRATION_SCALES
from passion_tasks.detectors.surprise import MAX_SURPRISE, combined, trailing_sums
from passion_tasks.detectors.thresholds import TAIL_QUANTILE

#: Rows calibrated together on the scores before them: a refit costs a sort of the history.
BLOCK_ROWS = 64
#: Reference scores a calibration needs; with fewer, every score's surprise is 0 (no opinion).
MIN_REFERENCE = 10


def tail_surprise(scores: ArrayLike, reference: ArrayLike) -> np.ndarray:
    """``-log10 P(S >= s)`` of each score under the finite ``reference`` scores (see the module);
    NaN scores stay NaN, and with fewer than ``MIN_REFERENCE`` reference scores every surprise is 0."""
    values = np.asarray(scores, dtype=float)
    known = np.sort(np.asarray(reference, dtype=float)[np.isfinite(reference)])
    if known.size < MIN_REFERENCE:
        return np.where(np.isnan(values), np.nan, 0.0)
    level = float(np.quantile(known, TAIL_QUANTILE))
    share = (known.size - np.searchsorted(known, values, side="left")) / known.size
    excess = known[known > level] - level
    scale = float(np.median(excess)) / np.log(2) if excess.size else 0.0
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        fitted = (1 - TAIL_QUANTILE) * np.exp(-(values - level) / scale) if scale > 0 else 0 * values
        surprise = -np.log10(np.where(values > level, fitted, share))
    return np.where(np.isnan(values), np.nan, np.clip(surprise, 0.0, MAX_SURPRISE))


def online_surprise(scores: ArrayLike, reference_rows: int, block: int = BLOCK_ROWS) -> np.ndarray:
    """The ``tail_surprise`` of each row of ``scores``, causally: the first ``reference_rows`` (the
    training part) against themselves, then each ``block`` of later rows against every score before
    the block."""
    values = np.asarray(scores, dtype=float)
    surprises = np.empty_like(values)
    surprises[:reference_rows] = tail_surprise(values[:reference_rows], values[:reference_rows])
    for start in range(reference_rows, values.size, block):
        stop = min(start + block, values.size)
        surprises[start:stop] = tail_surprise(values[start:stop], values[:start])
    return surprises


def scales_surprise(
    scores: ArrayLike,
    reference_rows: int,
    scales: tuple[int, ...] = CALIBRATION_SCALES,
    block: int = BLOCK_ROWS,
) -> np.ndarray:
    """The ``online_surprise`` of the trailing mean of ``scores`` over each of ``scales`` rows (1: the
    row alone), the highest of them less ``log10`` of how many were read (``surprise.combined``:
    reading three scales must not let noise past three times as often).

    A metric one standard deviation off for 800 rows hardly puts a row in the tail of the training
    scores, while its hundred-row mean is far beyond every hundred-row mean of training. Each scale is
    calibrated against its own earlier means, so a longer mean, which wanders less, is judged by how
    little it wanders. A mean is over the scores there are (NaN ones left out, and fewer at the
    start); with none, it is NaN.
    """
    values = np.asarray(scores, dtype=float)
    surprises = [
        online_surprise(values if scale == 1 else _trailing_means(values, scale), reference_rows, block)
        for scale in checked_scales(scales)
    ]
    return combined(surprises)


def _trailing_means(values: np.ndarray, rows: int) -> np.ndarray:
    """The mean of the finite values among each row's last ``rows`` (NaN where there are none)."""
    known = np.isfinite(values)
    counts = trailing_sums(known.astype(float), rows)
    sums = trailing_sums(np.where(known, values, 0.0), rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def checked_scales(scales: tuple[int, ...]) -> tuple[int, ...]:
    """``scales`` as distinct whole numbers of rows, rising; ``ValueError`` unless each is one >= 1."""
    if not scales or any(isinstance(scale, bool) or int(scale) != scale or scale < 1 for scale in scales):
        raise ValueError(f"scales must be whole numbers of rows >= 1, e.g. 1,10,100; got {list(scales)}")
    return tuple(sorted({int(scale) for scale in scales}))
