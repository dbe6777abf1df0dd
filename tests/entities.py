"""An entity of coupled metrics with planted anomalies, for the multivariate detectors' tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from passion_tasks.detectors import Detector

ROWS, TRAIN = 6000, 4000


def coupled_metrics() -> tuple[pd.DataFrame, np.ndarray]:
    """Three metrics that move together (an hourly cycle, one doubled, one inverted); in the test part
    the second turns against the others for half an hour, and the first jumps for a minute."""
    rng = np.random.default_rng(0)
    cycle = np.sin(2 * np.pi * np.arange(ROWS) / 60)
    frame = pd.DataFrame(
        {"a": cycle, "b": 2 * cycle, "c": -cycle},
        index=pd.date_range("2026-11-01", periods=ROWS, freq="min", tz="UTC"),
    ) + rng.normal(0, 0.05, (ROWS, 3))
    labels = np.zeros(ROWS, dtype=bool)
    frame.iloc[5000:5030, 1] = -2 * cycle[5000:5030]
    labels[5000:5030] = True
    frame.iloc[5500, 0] += 1.0
    labels[5500] = True
    return frame, labels


def assert_causal(detector: Detector, frame: pd.DataFrame, rtol: float) -> None:
    """Every row from 4,501 on set to 50 (far outside the metrics' range): the scores before are those of
    the unchanged frame, and the scores soon after are a hundred times higher."""
    changed = frame.copy()
    changed.iloc[4501:] = 50.0
    before, after = detector.decision_function(frame), detector.decision_function(changed)
    np.testing.assert_allclose(before.iloc[:4501], after.iloc[:4501], rtol=rtol)
    assert after.iloc[4510] > 100 * before.iloc[4510]
