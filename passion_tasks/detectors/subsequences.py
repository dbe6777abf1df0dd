"""Subsequence detectors: the best simple univariate methods of TSB-AD, made causal.

TSB-AD (Liu and Paparrizos, NeurIPS 2024) ranks Sub-PCA, POLY and KMeansAD among its best univariate
methods. Each judges the window of one period (``windows.period_length``, TSB-AD's ``find_length_rank``)
and, as published, is fitted on the very series it scores and gives a row the score of the windows
around it, future ones included. Here each is fitted on the training rows only and a row's score is
that of the window ending at it, so it depends on no later row (the detector contract). Rows without a
full window of history, or whose own value is missing, score NaN (0 once public); a gap shorter than a
window is bridged by the last value. Learned state is plain arrays: nothing to unpickle.

- ``SubPcaDetector``: TSB-AD's Sub-PCA (PCA of the windows, standardised lag by lag).
- ``KMeansAdDetector``: TSB-AD's KMeansAD (k-means on z-normalised windows, distance to the centroid).
- ``PolyDetector``: TSB-AD's POLY, with the polynomial fitted on the rows before each block of a period
  and extrapolated over it, where POLY fits it on both sides of the block.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from passion_tasks.detectors.base import Detector, DetectorError
from passion_tasks.detectors.surprise import trailing_sums
from passion_tasks.detectors.windows import evenly_spaced, period_length, sliding_windows

#: The longest window found from the data, in training rows: a period that training holds less than
#: three times is cut to a third of them, so enough windows remain to learn from.
TRAINING_PER_WINDOW = 3
#: A principal direction whose share of the variance is below this, relative to the first's, carries
#: none to weigh: dividing by it would rank windows by rounding noise.
NULL_VARIANCE = 1e-12


def found_window(target: np.ndarray, periodicity: int) -> int:
    """The window of a detector given none: the training target's period (``period_length``), at most a
    ``TRAINING_PER_WINDOW``-th of its rows (NAB's probationary 15% may hold less than three periods)."""
    return max(2, min(period_length(target, periodicity), len(target) // TRAINING_PER_WINDOW))


class SubsequenceDetector(Detector):
    """Base of the detectors that judge the window of ``window`` rows ending at each row.

    ``window=None`` takes the period of the training target (``periodicity`` 1: its strongest period,
    2: the strongest at a longer lag; ``found_window``), fixed at fit time as ``window_``.
    ``max_train_windows`` bounds the training windows to a regular subsample of the whole range.
    """

    _learned_attributes: ClassVar[tuple[str, ...]] = ("window_",)

    def __init__(
        self,
        window: int | None = None,
        periodicity: int = 1,
        max_train_windows: int | None = 20_000,
        threshold: str | float = "robust",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(threshold=threshold, threshold_params=threshold_params)
        self.window = window
        self.periodicity = periodicity
        self.max_train_windows = max_train_windows

    def _fit_windows(self, windows: np.ndarray) -> None:
        """Learn from the complete training windows, one per row."""
        raise NotImplementedError

    def _score_windows(self, windows: np.ndarray) -> np.ndarray:
        """A score per complete window, higher = more anomalous."""
        raise NotImplementedError

    def _fit(self, frame: pd.DataFrame) -> None:
        if self.periodicity not in (1, 2):
            raise DetectorError(f"{self.name}: periodicity must be 1 or 2, got {self.periodicity!r}")
        if self.window is None:
            self.window_ = found_window(frame.iloc[:, 0].to_numpy(), self.periodicity)
        elif isinstance(self.window, int | np.integer) and self.window >= 2:
            self.window_ = int(self.window)
        else:
            raise DetectorError(f"{self.name}: window must be None or an integer >= 2, got {self.window!r}")
        windows, complete = self._windows(frame)
        # As many windows as each has rows: a window's every dimension has something to vary over.
        if complete.sum() < self.window_:
            raise DetectorError(
                f"{self.name}: a window of {self.window_} rows leaves {int(complete.sum())} complete "
                f"training windows, needs at least {self.window_}; give a longer training range or a "
                "smaller window"
            )
        self._fit_windows(evenly_spaced(windows[complete], self.max_train_windows))

    def _score_rows(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        windows, complete = self._windows(frame)
        scores = np.full(len(frame), np.nan)
        if complete.any():
            scores[complete] = self._score_windows(windows[complete])
        return scores, np.full(len(frame), np.nan)

    def _windows(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the window ending at it (zeros where there is none) and whether it is complete and
        the row's own value seen."""
        target = frame.iloc[:, 0]
        values = target.ffill(limit=self.window_).to_numpy()
        windows = np.zeros((len(frame), self.window_))
        complete = np.zeros(len(frame), dtype=bool)
        if len(frame) >= self.window_:
            view = sliding_windows(values, self.window_)[:, :, 0]
            windows[self.window_ - 1 :] = np.nan_to_num(view)
            complete[self.window_ - 1 :] = ~np.isnan(view).any(axis=1)
        return windows, complete & target.notna().to_numpy()


class SubPcaDetector(SubsequenceDetector):
    """Sub-PCA: each lag of the window standardised on training, projected on training's principal
    directions, and scored by Shyu et al.'s statistic: the root of the sum over the directions of the
    squared projection divided by that direction's variance (the window's Mahalanobis distance in the
    principal subspace; ``n_components=None`` keeps every direction, TSB-AD's best setting). A window
    unlike training's departs along the directions training barely used, which weigh most.

    PyOD's PCA, which TSB-AD calls, sums each window's distance to the direction vectors as points
    instead; on a series whose windows differ mostly in level that is the window's distance from the
    mean level, and it ranks a spike on a daily cycle below the cycle's own peaks."""

    name = "sub_pca"
    _learned_attributes = ("mean_", "scale_", "components_", "variances_")

    def __init__(
        self,
        window: int | None = None,
        periodicity: int = 1,
        n_components: int | float | None = None,
        max_train_windows: int | None = 20_000,
        threshold: str | float = "robust",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(window, periodicity, max_train_windows, threshold, threshold_params)
        self.n_components = n_components

    def _fit_windows(self, windows: np.ndarray) -> None:
        self.mean_ = windows.mean(axis=0)
        spread = windows.std(axis=0)
        # A lag that never moved in training keeps scale 1: it stays at 0 (PyOD prunes it).
        self.scale_ = np.where(spread > 0, spread, 1.0)
        pca = PCA(n_components=self.n_components, svd_solver="full").fit((windows - self.mean_) / self.scale_)
        variances = pca.explained_variance_
        carried = variances > NULL_VARIANCE * variances[0]
        self.components_ = pca.components_[carried]
        self.variances_ = variances[carried]

    def _score_windows(self, windows: np.ndarray) -> np.ndarray:
        projections = ((windows - self.mean_) / self.scale_) @ self.components_.T
        return np.sqrt((projections**2 / self.variances_).sum(axis=1))


class KMeansAdDetector(SubsequenceDetector):
    """KMeansAD: every window z-normalised (its shape, not its level), k-means on training's, and a
    window scored by its distance to the nearest centroid. TSB-AD's best setting: ``n_clusters=10`` on
    windows of the second period (``periodicity=2``)."""

    name = "kmeans_ad"
    _learned_attributes = ("centroids_",)

    def __init__(
        self,
        window: int | None = None,
        periodicity: int = 2,
        n_clusters: int = 10,
        max_train_windows: int | None = 20_000,
        random_state: int = 0,
        threshold: str | float = "robust",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(window, periodicity, max_train_windows, threshold, threshold_params)
        self.n_clusters = n_clusters
        self.random_state = random_state

    def _fit_windows(self, windows: np.ndarray) -> None:
        if not isinstance(self.n_clusters, int | np.integer) or not 1 <= self.n_clusters <= len(windows):
            raise DetectorError(
                f"{self.name}: n_clusters must be an integer from 1 to the {len(windows)} training windows, "
                f"got {self.n_clusters!r}"
            )
        model = KMeans(n_clusters=self.n_clusters, random_state=self.random_state, n_init="auto")
        self.centroids_ = model.fit(_shapes(windows)).cluster_centers_

    def _score_windows(self, windows: np.ndarray) -> np.ndarray:
        return cdist(_shapes(windows), self.centroids_).min(axis=1)


def _shapes(windows: np.ndarray) -> np.ndarray:
    """Each window z-normalised (sample standard deviation); a flat window is all zeros."""
    spread = windows.std(axis=1, ddof=1, keepdims=True)
    centred = windows - windows.mean(axis=1, keepdims=True)
    return np.divide(centred, spread, out=np.zeros_like(centred), where=spread > 0)


class PolyDetector(Detector):
    """POLY, causal: the rows cut into blocks of a period; a polynomial of degree ``power`` fitted on the
    ``neighborhood`` rows before each block (``None``: ten periods, at least 100 rows, as POLY) and
    extrapolated over the block is the ``expected`` value; a row scores the root mean square of its
    last period's residuals (POLY's Fourier distance of a block is that, by Parseval), in units of the
    training target's range. TSB-AD's best setting is ``power=4``, fitted on both sides of the block;
    extrapolated, a lower degree diverges less, so the default is 2.
    """

    name = "poly"
    _learned_attributes = ("window_", "neighborhood_", "low_", "span_")

    def __init__(
        self,
        window: int | None = None,
        periodicity: int = 1,
        power: int = 2,
        neighborhood: int | None = None,
        threshold: str | float = "robust",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(threshold=threshold, threshold_params=threshold_params)
        self.window = window
        self.periodicity = periodicity
        self.power = power
        self.neighborhood = neighborhood

    def _fit(self, frame: pd.DataFrame) -> None:
        target = frame.iloc[:, 0].to_numpy()
        self._check_integers({"power": 0})
        if self.periodicity not in (1, 2):
            raise DetectorError(f"{self.name}: periodicity must be 1 or 2, got {self.periodicity!r}")
        self.window_ = found_window(target, self.periodicity) if self.window is None else int(self.window)
        # POLY's neighbourhood, as far as training reaches: scoring needs a block after it.
        usual = min(max(10 * self.window_, 100), np.isfinite(target).sum() - self.window_)
        self.neighborhood_ = int(self.neighborhood or usual)
        if self.window_ < 1 or self.neighborhood_ <= self.power:
            raise DetectorError(
                f"{self.name}: needs a window of at least 1 row and a neighborhood of more than power rows, "
                f"got window={self.window_}, neighborhood={self.neighborhood_}"
            )
        if np.isfinite(target).sum() < self.neighborhood_ + self.window_:
            raise DetectorError(
                f"{self.name}: a neighborhood of {self.neighborhood_} rows and a window of {self.window_} "
                f"need {self.neighborhood_ + self.window_} observed training values"
            )
        self.low_ = float(np.nanmin(target))
        self.span_ = float(np.nanmax(target) - self.low_)

    def _score_rows(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        values = frame.iloc[:, 0].to_numpy()
        scaled = (values - self.low_) / self.span_
        expected = np.full(len(values), np.nan)
        for start in range(self.neighborhood_, len(values), self.window_):
            stop = min(start + self.window_, len(values))
            history = scaled[start - self.neighborhood_ : start]
            expected[start:stop] = self._extrapolated(history, stop - start)
        residual = np.square(scaled - expected)
        seen = np.isfinite(residual)
        counted = trailing_sums(seen.astype(float), self.window_)
        mean_square = trailing_sums(np.where(seen, residual, 0.0), self.window_) / np.maximum(counted, 1)
        scores = np.where((counted > 0) & seen, np.sqrt(mean_square), np.nan)
        return scores, expected * self.span_ + self.low_

    def _extrapolated(self, history: np.ndarray, rows: int) -> np.ndarray:
        """The polynomial fitted on ``history`` continued over the next ``rows`` rows (NaN when fewer
        than ``power + 1`` values are seen); time in units of the neighborhood, for conditioning."""
        at = np.arange(-len(history), 0) / len(history)
        seen = np.isfinite(history)
        if seen.sum() <= self.power:
            return np.full(rows, np.nan)
        coefficients = np.polynomial.polynomial.polyfit(at[seen], history[seen], self.power)
        return np.polynomial.polynomial.polyval(np.arange(rows) / len(history), coefficients)
