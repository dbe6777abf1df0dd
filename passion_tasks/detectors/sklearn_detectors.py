"""scikit-learn outlier detectors on causal lag features of the frame.

The seed notebook imported IsolationForest, OneClassSVM, EllipticEnvelope, KMeans and PCA. Each
detector here turns the frame into one feature vector per row, built from the ``window`` rows
ending at that row of every column (``lag_features``) and scaled with the training range's
statistics. Rows without a full window of history, or whose target value is missing, score NaN (no
opinion: 0 once public).

The fitted estimator is saved with skops (``model.skops``) and loaded back with an explicit list
of trusted types, never with pickle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import skops.io
from sklearn.cluster import KMeans
from sklearn.covariance import EllipticEnvelope
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.neighbors import NearestNeighbors
from sklearn.svm import OneClassSVM

from passion_tasks.detectors.base import Detector, DetectorError
from passion_tasks.detectors.profiles import (
    SMOOTHING,
    check_profile_days,
    filled_daily_profile,
    minute_of_day,
)
from passion_tasks.detectors.thresholds import robust_spread
from passion_tasks.detectors.windows import evenly_spaced, sliding_windows

MODEL_FILE = "model.skops"
#: A distance this small, relative to the window's length, is the window itself: scikit-learn's
#: brute-force search computes distances from dot products, which leave ~1e-8 of the length where
#: there is none.
SAME_WINDOW = 1e-6


# -- lag features -------------------------------------------------------------------------------


def lag_feature_names(columns: list[str], window: int, relative: bool, differences: bool) -> list[str]:
    """Names of ``lag_features``' columns, in order (k = rows back from the current one).

    ``<column>_lag<k>`` is the value k rows back; relative, ``<column>`` is the current value and
    ``<column>_change<k>`` the current value minus the value k rows back; ``<column>_diff<k>`` is the
    first difference k rows back (``diff0``: the latest step).
    """
    if relative:
        names = list(columns) + [f"{column}_change{k}" for k in range(1, window) for column in columns]
    else:
        names = [f"{column}_lag{k}" for k in range(window) for column in columns]
    if differences:
        names += [f"{column}_diff{k}" for k in range(window - 1) for column in columns]
    return names


def lag_features(values: np.ndarray, window: int, relative: bool, differences: bool) -> np.ndarray:
    """The ``window`` rows ending at each row, newest first, as one flat vector (unscaled).

    Row t holds the values of every column at t, t-1, ..., t-window+1; ``relative`` puts the
    value at t and its changes since each earlier row (``x[t] - x[t-k]``) instead, and
    ``differences`` appends the window's first differences. Columns follow ``lag_feature_names``;
    rows are NaN where the window is incomplete.

    Seen from its newest row (``relative``), a window makes a deviation *now* move every change
    feature at once, while a past spike still inside the window moves one: scores rise at an
    anomaly and fall back soon after instead of staying high while the spike is in the window.
    """
    rows, columns = values.shape
    width = columns * (2 * window - 1 if differences else window)
    features = np.full((rows, width), np.nan)
    if rows < window:
        return features
    newest_first = sliding_windows(values, window)[:, ::-1]
    count = len(newest_first)
    if relative:
        current = newest_first[:, 0]
        parts = [current, (current[:, None] - newest_first[:, 1:]).reshape(count, -1)]
    else:
        parts = [newest_first.reshape(count, -1)]
    if differences:
        parts.append((newest_first[:, :-1] - newest_first[:, 1:]).reshape(count, -1))
    features[window - 1 :] = np.concatenate(parts, axis=1)
    return features


class LagFeatureDetector(Detector):
    """Base of the detectors that see each row as its lag-feature vector (``lag_features``).

    Every feature is centred on its training median and divided by its training robust spread
    (``center_``, ``scale_``), so scoring never looks at the scored frame's own statistics.
    Gaps: the last observation is carried forward for at most ``window`` rows, so a short gap does
    not blank a whole window of scores; rows whose own target value is missing still score NaN.

    ``seasonal``: each column less its daily profile (``profile_``, minutes of the day × columns, as
    ``profiles.daily_profile`` learns it from the training days) before the lag features. A server's
    load is low at night; the same low load at noon is the anomaly, and only the profile tells the
    two apart. Needs ``profiles.MIN_DAYS`` training days.
    """

    _learned_attributes: ClassVar[tuple[str, ...]] = ("center_", "scale_", "profile_")
    reads_every_column = True

    def __init__(
        self,
        window: int = 30,
        relative: bool = True,
        differences: bool = False,
        seasonal: bool = False,
        threshold: str | float = "robust",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(threshold=threshold, threshold_params=threshold_params)
        self.window = window
        self.relative = relative
        self.differences = differences
        self.seasonal = seasonal

    def feature_names(self) -> list[str]:
        """The names of the lag features, in the order the model sees them."""
        return lag_feature_names(list(self.feature_names_in_), self.window, self.relative, self.differences)

    def _fit_scaling(self, frame: pd.DataFrame) -> np.ndarray:
        """Learn each feature's centre and scale on the training rows; returns their scaled features."""
        self._check_integers({"window": 2})
        if self.seasonal:
            self.profile_ = self._daily_profiles(frame)
        raw = self._raw_features(frame)
        complete = raw[self._scorable(raw, frame)]
        if len(complete) < 2 * self.window:
            raise DetectorError(
                f"{self.name}: window={self.window} leaves {len(complete)} complete training windows, "
                f"needs at least {2 * self.window}; give a longer training range or a smaller window"
            )
        self.center_ = np.median(complete, axis=0)
        # A constant feature (a column that never moved) keeps scale 1: it stays at 0.
        self.scale_ = np.array([robust_spread(feature) or 1.0 for feature in complete.T])
        return (raw - self.center_) / self.scale_

    def _features(self, frame: pd.DataFrame) -> np.ndarray:
        """The scaled lag features of every row (NaN rows where there is no full window)."""
        return (self._raw_features(frame) - self.center_) / self.scale_

    def _raw_features(self, frame: pd.DataFrame) -> np.ndarray:
        values = frame.ffill(limit=self.window).to_numpy()
        if self.seasonal:
            values = values - self.profile_[minute_of_day(frame.index)]
        return lag_features(values, self.window, self.relative, self.differences)

    def _daily_profiles(self, frame: pd.DataFrame) -> np.ndarray:
        check_profile_days(f"{self.name} (seasonal)", frame.dropna(how="all").index)
        profiles = [filled_daily_profile(frame[column], SMOOTHING) for column in frame.columns]
        # A column with no value in training has no profile: it is left as it is.
        return np.nan_to_num(np.stack(profiles, axis=1), nan=0.0)

    @staticmethod
    def _scorable(features: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
        """Rows with a complete window and an observed target value."""
        return ~np.isnan(features).any(axis=1) & frame.iloc[:, 0].notna().to_numpy()


class SklearnDetector(LagFeatureDetector):
    """A scikit-learn estimator fitted on the complete training windows, saved with skops.

    Subclasses give ``_new_estimator`` and ``_score_windows`` (scores, higher = more anomalous, and
    the expected target value, NaN where the model has none) and the types skops must trust beyond
    its defaults to load their estimator. ``max_train_rows`` bounds the training windows: a
    subsample at a regular stride, so it covers the whole training range.
    """

    _model_attributes: ClassVar[tuple[str, ...]] = ("estimator_",)
    #: Types in the saved estimator that skops does not trust by default.
    _trusted_types: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        window: int = 30,
        relative: bool = True,
        differences: bool = False,
        seasonal: bool = False,
        max_train_rows: int | None = None,
        threshold: str | float = "robust",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(window, relative, differences, seasonal, threshold, threshold_params)
        self.max_train_rows = max_train_rows

    def _new_estimator(self) -> Any:
        raise NotImplementedError

    def _score_windows(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray | float]:
        raise NotImplementedError

    def _fit(self, frame: pd.DataFrame) -> None:
        features = self._fit_scaling(frame)
        if self.max_train_rows is not None and not (
            isinstance(self.max_train_rows, int | np.integer) and self.max_train_rows >= 2 * self.window
        ):
            raise DetectorError(
                f"{self.name}: max_train_rows must be None or an integer >= 2 * window, "
                f"got {self.max_train_rows!r}"
            )
        complete = features[self._scorable(features, frame)]
        self.estimator_ = self._new_estimator().fit(evenly_spaced(complete, self.max_train_rows))

    def _score_rows(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        features = self._features(frame)
        scored = self._scorable(features, frame)
        scores = np.full(len(frame), np.nan)
        expected = np.full(len(frame), np.nan)
        if scored.any():
            scores[scored], expected[scored] = self._score_windows(features[scored])
        return scores, expected

    def _save_model(self, folder: Path) -> None:
        skops.io.dump(self.estimator_, folder / MODEL_FILE)

    def _load_model(self, folder: Path) -> None:
        try:
            self.estimator_ = skops.io.load(folder / MODEL_FILE, trusted=list(type(self)._trusted_types))
        except FileNotFoundError:
            raise DetectorError(f"{folder}: {MODEL_FILE} is missing") from None
        except skops.io.exceptions.UntrustedTypesFoundException as exc:
            raise DetectorError(f"{folder / MODEL_FILE}: refusing to load untrusted types: {exc}") from exc


# -- the detectors ------------------------------------------------------------------------------


class IsolationForestDetector(SklearnDetector):
    """Isolation forest; score = the forest's anomaly score ``-score_samples`` in (0, 1].

    About 0.5 for ordinary windows and towards 1 for windows isolated in few splits. scikit-learn's
    ``contamination`` only moves the estimator's own ``offset_``, which Passion does not use: the
    equivalent here is ``threshold="anomaly_ratio", threshold_params={"ratio": contamination}``.
    """

    name = "isolation_forest"
    _trusted_types = ("sklearn.tree._tree.Tree",)

    def __init__(
        self,
        window: int = 30,
        relative: bool = True,
        differences: bool = False,
        seasonal: bool = False,
        n_estimators: int = 100,
        max_samples: int | float | str = "auto",
        max_train_rows: int | None = None,
        random_state: int | None = 0,
        threshold: str | float = "robust",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(window, relative, differences, seasonal, max_train_rows, threshold, threshold_params)
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.random_state = random_state

    def _new_estimator(self) -> IsolationForest:
        return IsolationForest(
            n_estimators=self.n_estimators, max_samples=self.max_samples, random_state=self.random_state
        )

    def _score_windows(self, features: np.ndarray) -> tuple[np.ndarray, float]:
        return -self.estimator_.score_samples(features), np.nan


class OneClassSvmDetector(SklearnDetector):
    """One-class SVM (RBF kernel), trained on at most ``max_train_rows`` evenly spaced windows.

    score = ``1 - score_samples / sum(dual_coef_)``: the share of the support vectors' kernel mass
    a window lacks, 0 on top of the support and 1 far from all of it. ``nu`` bounds the share of
    training windows left outside the support.
    """

    name = "one_class_svm"

    def __init__(
        self,
        window: int = 30,
        relative: bool = True,
        differences: bool = False,
        seasonal: bool = False,
        nu: float = 0.05,
        gamma: float | str = "scale",
        max_train_rows: int | None = 5000,
        threshold: str | float = "robust",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(window, relative, differences, seasonal, max_train_rows, threshold, threshold_params)
        self.nu = nu
        self.gamma = gamma

    def _new_estimator(self) -> OneClassSVM:
        return OneClassSVM(kernel="rbf", nu=self.nu, gamma=self.gamma)

    def _score_windows(self, features: np.ndarray) -> tuple[np.ndarray, float]:
        return 1 - self.estimator_.score_samples(features) / self.estimator_.dual_coef_.sum(), np.nan


class EllipticEnvelopeDetector(SklearnDetector):
    """Robust Gaussian (minimum covariance determinant); score = the Mahalanobis distance.

    The MCD's time grows fast with the dimension (``window`` x columns): hence a shorter default
    window and at most ``max_train_rows`` evenly spaced training windows. Leave ``differences`` off:
    they are linear combinations of the window's values and make the covariance singular (the
    Mahalanobis distance is the same whichever invertible view of the window, so ``relative``
    changes nothing here).
    """

    name = "elliptic_envelope"

    def __init__(
        self,
        window: int = 10,
        relative: bool = True,
        differences: bool = False,
        seasonal: bool = False,
        support_fraction: float | None = None,
        max_train_rows: int | None = 2000,
        random_state: int | None = 0,
        threshold: str | float = "robust",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(window, relative, differences, seasonal, max_train_rows, threshold, threshold_params)
        self.support_fraction = support_fraction
        self.random_state = random_state

    def _new_estimator(self) -> EllipticEnvelope:
        return EllipticEnvelope(support_fraction=self.support_fraction, random_state=self.random_state)

    def _score_windows(self, features: np.ndarray) -> tuple[np.ndarray, float]:
        return np.sqrt(self.estimator_.mahalanobis(features)), np.nan


class KMeansDetector(SklearnDetector):
    """k-means on the training windows; score = the distance to the nearest centroid."""

    name = "kmeans"

    def __init__(
        self,
        window: int = 30,
        relative: bool = True,
        differences: bool = False,
        seasonal: bool = False,
        n_clusters: int = 8,
        max_train_rows: int | None = None,
        random_state: int | None = 0,
        threshold: str | float = "robust",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(window, relative, differences, seasonal, max_train_rows, threshold, threshold_params)
        self.n_clusters = n_clusters
        self.random_state = random_state

    def _new_estimator(self) -> KMeans:
        return KMeans(n_clusters=self.n_clusters, random_state=self.random_state)

    def _score_windows(self, features: np.ndarray) -> tuple[np.ndarray, float]:
        return self.estimator_.transform(features).min(axis=1), np.nan


class PcaDetector(SklearnDetector):
    """PCA of the training windows; score = the reconstruction error (distance to the subspace).

    ``expected`` is the reconstruction of the target's current value: what the principal
    components make of the window. Plain lag windows by default (``relative=False``): seen from the
    newest row, "the current value moved away from all the others" is itself a principal direction
    (every change feature shares the current value's noise), so a spike would be reconstructed
    rather than left in the error.
    """

    name = "pca"

    def __init__(
        self,
        window: int = 30,
        relative: bool = False,
        differences: bool = False,
        seasonal: bool = False,
        n_components: int | float = 0.9,
        max_train_rows: int | None = None,
        threshold: str | float = "robust",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(window, relative, differences, seasonal, max_train_rows, threshold, threshold_params)
        self.n_components = n_components

    def _new_estimator(self) -> PCA:
        return PCA(n_components=self.n_components, svd_solver="full")

    def _score_windows(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        reconstruction = self.estimator_.inverse_transform(self.estimator_.transform(features))
        # Feature 0 is the target's current value.
        expected = reconstruction[:, 0] * self.scale_[0] + self.center_[0]
        return np.linalg.norm(features - reconstruction, axis=1), expected


class KnnDetector(SklearnDetector):
    """k nearest neighbours (Ramaswamy, Rastogi and Shim, 2000); score = the mean distance to the
    ``n_neighbors`` nearest training windows other than the window itself, as PyOD's
    ``KNN(method="mean")``.

    A training window is its own nearest neighbour: counted, it would give the training rows lower
    scores than any later row, and a threshold fitted on them would flag normal rows. So a window
    whose nearest one is itself (``SAME_WINDOW``) is judged by the next ``n_neighbors``; a later
    window equal to a training one is normal whichever it is judged by. Scoring reads every stored
    window (``max_train_rows`` of them at most) for every row.
    """

    name = "knn"

    def __init__(
        self,
        window: int = 30,
        relative: bool = True,
        differences: bool = False,
        seasonal: bool = False,
        n_neighbors: int = 5,
        max_train_rows: int | None = 10_000,
        threshold: str | float = "robust",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(window, relative, differences, seasonal, max_train_rows, threshold, threshold_params)
        self.n_neighbors = n_neighbors

    def _new_estimator(self) -> NearestNeighbors:
        # Brute force whatever the dimension: a tree would search no faster in a window's dozens of
        # dimensions, and its saved file would hold types skops must be told to trust.
        return NearestNeighbors(n_neighbors=self.n_neighbors + 1, algorithm="brute")

    def _fit(self, frame: pd.DataFrame) -> None:
        self._check_integers({"n_neighbors": 1})
        super()._fit(frame)
        stored = self.estimator_.n_samples_fit_
        if stored <= self.n_neighbors:
            raise DetectorError(
                f"{self.name}: n_neighbors={self.n_neighbors} needs more than {self.n_neighbors} training "
                f"windows, got {stored}"
            )

    def _score_windows(self, features: np.ndarray) -> tuple[np.ndarray, float]:
        distances, _ = self.estimator_.kneighbors(features)
        itself = distances[:, :1] <= SAME_WINDOW * (1 + np.linalg.norm(features, axis=1, keepdims=True))
        others = np.where(itself, distances[:, 1:], distances[:, :-1])
        return others.mean(axis=1), np.nan
