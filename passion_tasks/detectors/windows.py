"""Sliding windows as views, never copies.

The seed notebook built its (rows, 1440, features) training tensor with a Python loop, 500 MB for a
month of minutes. A strided view costs nothing; batches are materialised one at a time by whoever
consumes them (a Keras ``PyDataset``, a scikit-learn ``partial_fit`` loop).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


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
