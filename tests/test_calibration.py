"""The calibration stage: raw scores as the surprise of their tail probability (``detectors.calibration``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from passion_tasks.detectors import detector_class
from passion_tasks.detectors.calibration import MIN_REFERENCE, online_surprise, scales_surprise, tail_surprise

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


def test_scales_are_trailing_means_each_calibrated_on_its_own_and_the_best_pays_for_the_looking() -> None:
    scores = np.random.default_rng(1).normal(size=2000)
    scores[1500] = np.nan
    # By default a row is read alone: the calibration stage as it was.
    np.testing.assert_array_equal(scales_surprise(scores, 1000), online_surprise(scores, 1000))
    means = pd.Series(scores).rolling(10, min_periods=1).mean().to_numpy()  # NaN left out of a mean
    both = np.fmax(online_surprise(scores, 1000), online_surprise(means, 1000))
    expected = np.where(np.isnan(both), np.nan, np.maximum(both - math.log10(2), 0.0))
    np.testing.assert_allclose(scales_surprise(scores, 1000, (10, 1)), expected, rtol=1e-9, atol=1e-9)


def test_a_small_shift_that_lasts_is_seen_by_the_longer_scales() -> None:
    scores = np.random.default_rng(0).normal(size=3000)
    scores[2000:2500] += 0.5  # half a standard deviation for 500 rows: no row alone is far out
    alone, scaled = scales_surprise(scores, 1000), scales_surprise(scores, 1000, (1, 10, 100))
    # Measured: 0.63 alone and 1.33 over the scales on the shift; 0.45 and 0.48 on the normal rows.
    assert scaled[2000:2500].mean() > 1.5 * alone[2000:2500].mean()
    assert abs(scaled[1000:2000].mean() - alone[1000:2000].mean()) < 0.1
    # Causal all the same: what comes later does not change an earlier row.
    changed = scores.copy()
    changed[2600:] = 50.0
    np.testing.assert_array_equal(scales_surprise(changed, 1000, (1, 10, 100))[:2560], scaled[:2560])


@pytest.mark.parametrize("scales", [(), (0, 10), (1, 2.5), (True,)])
def test_scales_are_whole_numbers_of_rows(scales) -> None:
    with pytest.raises(ValueError, match="whole numbers of rows >= 1"):
        scales_surprise(np.arange(100.0), 50, scales)
