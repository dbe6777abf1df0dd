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


THRESHOLD_METHODS: dict[str, Callable[..., float]] = {
    "anomaly_ratio": anomaly_ratio_threshold,
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
