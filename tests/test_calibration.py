"""The calibration stage: raw scores as the surprise of their tail probability (``detectors.calibration``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from passion_tasks.detectors import detector_class
from passion_tasks.detectors.calibration import MIN_REFERENCE, online_surprise, tail_surprise

REFERENCE = np.arange(1000.0)  # 0, 1, ..., 999


def test_the_bulk_is_the_empirical_tail() -> None:
    # 100 of the 1000 reference scores are at or above 900: one chance in ten.
    assert tail_surprise([900.0], REFERENCE)[0] == pytest.approx(1.0)
    assert tail_surprise([0.0, -5.0], REFERENCE).tolist() == [0.0, 0.0]


def test_beyond_the_tail_level_an_exponential_fitted_to_the_excesses() -> None:
    level = 979.02  # the 98th percentile
    # 980 to 999 lie above it: excesses 0.98 to 19.98, whose median is 10.48.
    scale = 10.48 / math.log(2)
    # An e-fold of the scale past the level is 2% of the rows divided by e; ln(10) of it, by ten.
    far = level + scale * math.log(10)
    assert tail_surprise([far], REFERENCE)[0] == pytest.approx(-math.log10(0.02 * 0.1))
    # Past every reference score, still ranked by how far past.
    assert tail_surprise([2000.0], REFERENCE)[0] < tail_surprise([3000.0], REFERENCE)[0]


def test_missing_scores_stay_missing_and_too_little_reference_has_no_opinion() -> None:
    surprises = tail_surprise([np.nan, 950.0], REFERENCE)
    assert math.isnan(surprises[0]) and surprises[1] > 1
    short = np.arange(MIN_REFERENCE - 1.0)
    assert tail_surprise([100.0], short).tolist() == [0.0]


def test_online_calibration_is_causal_and_learns_from_every_earlier_row() -> None:
    scores = np.random.default_rng(0).exponential(size=3000)
    surprises = online_surprise(scores, reference_rows=1000, block=64)
    # Each block is calibrated on every score before it.
    np.testing.assert_array_equal(surprises[1064:1128], tail_surprise(scores[1064:1128], scores[:1064]))
    np.testing.assert_array_equal(surprises[:1000], tail_surprise(scores[:1000], scores[:1000]))
    # Later rows do not change earlier surprises.
    changed = scores.copy()
    changed[2000:] = 1e6
    np.testing.assert_array_equal(online_surprise(changed, 1000, 64)[:1984], surprises[:1984])
    # An exponential's surprise at s is s / ln(10): the calibration finds the scale.
    assert np.median(surprises[2000:][scores[2000:] > 3] / scores[2000:][scores[2000:] > 3]) == pytest.approx(
        1 / math.log(10), rel=0.15
    )


def test_detectors_calibrated_by_their_own_model_pass_through() -> None:
    assert {name for name in ("likelihood", "count", "rate", "profile", "rolling_mad", "sub_pca")
            if detector_class(name).calibrated} == {"likelihood", "count", "rate", "profile"}  # fmt: skip
