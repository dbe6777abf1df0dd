"""What the tests of scoring passes share: a pass gives each model exactly what it gets alone."""

from __future__ import annotations

import numpy as np
import pandas as pd

from passion_tasks.detectors import Detector
from passion_tasks.detectors.base import detect_batch


def assert_one_pass_scores_each_as_alone(
    models: list[Detector], frames: list[pd.DataFrame], start: int
) -> None:
    """``detect_batch`` of ``models`` on their ``frames`` (one index) keeps, from step ``start`` on,
    each model's own ``detect`` to the last bit; every series has a flagged step there."""
    values = np.stack([frame.to_numpy().T for frame in frames])

    expected, scores, flags = detect_batch(models, values, frames[0].index, start)

    assert flags[:, start:].any(axis=1).all()
    for row, (model, frame) in enumerate(zip(models, frames, strict=True)):
        alone = model.detect(frame).iloc[start:]
        np.testing.assert_array_equal(expected[row, start:], alone["expected"].to_numpy())
        np.testing.assert_array_equal(scores[row, start:], alone["score"].to_numpy())
        np.testing.assert_array_equal(flags[row, start:], alone["is_anomaly"].to_numpy())
