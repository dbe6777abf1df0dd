"""Sliding windows as views, never copies.

The seed notebook built its (rows, 1440, features) training tensor with a Python loop, 500 MB for a
month of minutes. A strided view costs nothing; batches are materialised one at a time by whoever
consumes them (a Keras ``PyDataset``, a scikit-learn ``partial_fit`` loop).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import ArrayLike
from scipy.signal import argrelextrema

#: The period of a series without a clear one, and the bounds of a lag taken as one (TSB-AD's).
FALLBACK_PERIOD = 125
PERIOD_BOUNDS = (3, 300)
#: The longest lag, and the most rows, the autocorrelation looks at.
MAX_LAG = 400
MAX_ROWS = 20_000
#: Lags too short to be a period: the autocorrelation's local maxima are searched from here.
FIRST_LAG = 3


def sliding_windows(values: np.ndarray, window: int) -> np.ndarray:
    """Read-only view of every ``window`` consecutive rows: shape ``(n - window + 1, window, features)``.

    Row ``i`` of the result is ``values[i : i + window]``; a 1-D ``values`` is taken as one feature.
    """
    array = np.asarray(values)
    if array.ndim == 1:
        array = array[:, None]
    if window < 1 or window > len(array):
        raise ValueError(f"window {window} does not fit {len(array)} rows")
    return np.lib.stride_tricks.sliding_window_view(array, window, axis=0).transpose(0, 2, 1)


def forecast_pairs(values: np.ndarray, target: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows of ``values`` and the ``target`` value right after each window.

    ``X[i] = values[i : i + window]`` and ``y[i] = target[i + window]``; both are views, ``n - window`` pairs.
    """
    windows = sliding_windows(values, window)[:-1]
    return windows, np.asarray(target)[window:]


def batches(windows: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Contiguous copies of consecutive ``batch_size`` windows, one batch at a time."""
    for start in range(0, len(windows), batch_size):
        yield np.ascontiguousarray(windows[start : start + batch_size])


def evenly_spaced(rows: np.ndarray, limit: int | None) -> np.ndarray:
    """At most ``limit`` rows taken at a regular stride, so a subsample covers the whole range."""
    if limit is None or len(rows) <= limit:
        return rows
    return rows[:: -(-len(rows) // limit)]


def period_length(values: ArrayLike, rank: int = 1) -> int:
    """A series' period in rows, as TSB-AD's ``find_length_rank`` finds it: the lag of the highest local
    maximum of the autocorrelation from lag 3 to 400 (``rank`` 1), or of the highest one at a longer lag
    than that (``rank`` 2; the first when there is none); ``FALLBACK_PERIOD`` when the lag is under 3 or
    over 300, or there is no maximum. TSB-AD sizes its windows, and VUS its buffers, by it."""
    if rank not in (1, 2):
        raise ValueError(f"period rank must be 1 or 2, got {rank!r}")
    x = np.asarray(values, dtype=float).ravel()[:MAX_ROWS]
    x = x[np.isfinite(x)]
    correlation = _autocorrelation(x, MAX_LAG)[FIRST_LAG:]
    peaks = argrelextrema(correlation, np.greater)[0]
    if peaks.size == 0:
        return FALLBACK_PERIOD
    by_height = np.argsort(correlation[peaks])[::-1]
    chosen = by_height[0]
    if rank == 2:
        chosen = next((peak for peak in by_height[1:] if peak > by_height[0]), chosen)
    lag = int(peaks[chosen])
    if not PERIOD_BOUNDS[0] <= lag <= PERIOD_BOUNDS[1]:
        return FALLBACK_PERIOD
    return lag + FIRST_LAG


def _autocorrelation(x: np.ndarray, lags: int) -> np.ndarray:
    """The sample autocorrelation of ``x`` at lags 0 to ``lags`` (at most its length less one), by FFT,
    each lag's sum over the whole length (statsmodels' ``acf(fft=True)``)."""
    if x.size < 2:
        return np.ones(1)
    centred = x - x.mean()
    size = 1 << int(np.ceil(np.log2(2 * x.size - 1)))
    spectrum = np.fft.rfft(centred, size)
    covariance = np.fft.irfft(spectrum * np.conj(spectrum), size)[: min(lags, x.size - 1) + 1]
    return covariance / covariance[0] if covariance[0] > 0 else np.ones(covariance.size)
