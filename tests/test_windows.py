"""Sliding windows are views: a month of minutes with a day-long window costs no memory."""

from __future__ import annotations

import numpy as np
import pytest

from passion_tasks.detectors.windows import batches, forecast_pairs, sliding_windows


def test_windows_match_the_seed_loop_without_copying() -> None:
    values = np.arange(20, dtype=float).reshape(10, 2)
    windows = sliding_windows(values, 4)
    assert windows.shape == (7, 4, 2)
    assert np.shares_memory(windows, values)
    for i in range(7):
        np.testing.assert_array_equal(windows[i], values[i : i + 4])
    x, y = forecast_pairs(values, values[:, 0], 4)
    assert x.shape == (6, 4, 2) and y.tolist() == [8.0, 10.0, 12.0, 14.0, 16.0, 18.0]
    np.testing.assert_array_equal(x[-1], values[5:9])


def test_a_day_long_window_over_thirty_days_stays_a_view() -> None:
    minutes = np.random.default_rng(0).normal(size=30 * 1440)
    windows = sliding_windows(minutes, 1440)
    assert windows.shape == (30 * 1440 - 1440 + 1, 1440, 1)
    assert np.shares_memory(windows, minutes)
    # Materialised batch by batch: 64 windows x 1440 x 8 bytes, never the 475 MB tensor.
    first = next(batches(windows, 64))
    assert first.flags.c_contiguous and first.nbytes == 64 * 1440 * 8
    assert sum(len(batch) for batch in batches(windows[:1000], 64)) == 1000


def test_window_longer_than_the_data_is_refused() -> None:
    with pytest.raises(ValueError, match="window 11 does not fit 10 rows"):
        sliding_windows(np.zeros(10), 11)
