"""scikit-learn outlier detectors on causal lag features of the frame.

The seed notebook imported IsolationForest, OneClassSVM, EllipticEnvelope, KMeans and PCA. Each
detector here turns the frame into one feature vector per row: the ``window`` rows ending at that
row of every column, scaled with the training range's median and robust spread, optionally followed
by their first differences (scaled by the training differences' robust spread). Rows without a full
window of history, or whose target value is missing, score NaN (no opinion: 0 once public).

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
from sklearn.svm import OneClassSVM

from passion_tasks.detectors.base import Detector, DetectorError
from passion_tasks.detectors.windows import sliding_windows
from passion_tasks.thresholds import robust_spread

MODEL_FILE = "model.skops"


# -- lag features -------------------------------------------------------------------------------


def lag_feature_names(columns: list[str], window: int, differences: bool) -> list[str]:
    """Names of ``lag_features``' columns: ``<column>_lag<k>`` then ``<column>_diff_lag<k>``, k = 0 now."""
    lags = range(window - 1, -1, -1)
    names = [f"{column}_lag{lag}" for column in columns for lag in lags]
    if differences:
        names += [f"{column}_diff_lag{lag}" for column in columns for lag in lags if lag < window - 1]
    return names


def lag_features(levels: np.ndarray, steps: np.ndarray | None, window: int) -> np.ndarray:
    """One row per input row: the ``window`` scaled levels ending there, then the ``window - 1`` steps.

    ``levels`` and ``steps`` are ``(rows, columns)`` arrays, already scaled (``steps`` None: levels
    only). Row t holds rows t-window+1..t of each column, oldest first; it is NaN where that window
    is incomplete or holds a missing value.
    """
    n, columns = levels.shape
    parts = [(levels, window)] if steps is None else [(levels, window), (steps, window - 1)]
    width = sum(columns * size for _, size in parts)
    features = np.full((n, width), np.nan)
    if n < window:
        return features
    blocks = []
    for values, size in parts:
        # (rows, size, columns) -> (rows, columns * size): all lags of a column side by side.
        view = sliding_windows(values[window - size :], size)
        blocks.append(view.transpose(0, 2, 1).reshape(len(view), columns * size))
    features[window - 1 :] = np.concatenate(blocks, axis=1)
    return features


class LagFeatureDetector(Detector):
    """Base of the detectors that see each row as its scaled lag-feature vector.

    Gaps: the last observation is carried forward for at most ``window`` rows, so a short gap does
    not blank a whole window of scores; rows whose own target value is missing still score NaN.
    """

    def __init__(
        self,
        window: int = 30,
        differences: bool = True,
        threshold: str | float = "robust",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(threshold=threshold, threshold_params=threshold_params)
        self.window = window
        self.differences = differences

    def feature_names(self) -> list[str]:
        """The names of the lag features, in the order of ``_features``' columns."""
        return lag_feature_names(list(self.feature_names_in_), self.window, self.differences)

    def _fit_scaling(self, frame: pd.DataFrame) -> np.ndarray:
        """Learn the training range's scaling; returns the training rows' features."""
        self._check_window()
        levels = frame.ffill(limit=self.window).to_numpy()
        self.scale_ = _spreads(levels, frame.columns, self.name)
        self.center_ = np.nanmedian(levels, axis=0)
        if self.differences:
            self.difference_scale_ = _spreads(np.diff(levels, axis=0), frame.columns, self.name)
        features = self._features(frame)
        complete = int(self._scorable(features, frame).sum())
        if complete < 2 * self.window:
            raise DetectorError(
                f"{self.name}: window={self.window} leaves {complete} complete training windows, "
                f"needs at least {2 * self.window}; give a longer training range or a smaller window"
            )
        return features

    def _features(self, frame: pd.DataFrame) -> np.ndarray:
        """The scaled lag features of every row (NaN rows where there is no full window)."""
        levels = frame.ffill(limit=self.window).to_numpy()
        steps = None
        if self.differences:
            steps = np.vstack([np.full((1, levels.shape[1]), np.nan), np.diff(levels, axis=0)])
            steps = steps / self.difference_scale_
        return lag_features((levels - self.center_) / self.scale_, steps, self.window)

    @staticmethod
    def _scorable(features: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
        """Rows with a complete window and an observed target value."""
        return ~np.isnan(features).any(axis=1) & frame.iloc[:, 0].notna().to_numpy()

    def _check_window(self) -> None:
        smallest = 2 if self.differences else 1
        if not isinstance(self.window, int | np.integer) or self.window < smallest:
            raise DetectorError(f"{self.name}: window must be an integer >= {smallest}, got {self.window!r}")


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
        differences: bool = True,
        max_train_rows: int | None = None,
        threshold: str | float = "robust",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(window, differences, threshold, threshold_params)
        self.max_train_rows = max_train_rows

    def _new_estimator(self) -> Any:
        raise NotImplementedError

    def _score_windows(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray | float]:
        raise NotImplementedError

    def _fit(self, frame: pd.DataFrame) -> None:
        if self.max_train_rows is not None and not (
            isinstance(self.max_train_rows, int | np.integer) and self.max_train_rows >= 2 * self.window
        ):
            raise DetectorError(
                f"{self.name}: max_train_rows must be None or an integer >= 2 * window, "
                f"got {self.max_train_rows!r}"
            )
        features = self._fit_scaling(frame)
        complete = features[self._scorable(features, frame)]
        self.estimator_ = self._new_estimator().fit(_evenly_spaced(complete, self.max_train_rows))

    def _evaluate(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
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
            self.estimator_ = skops.io.load(folder / MODEL_FILE, trusted=list(self._trusted_types))
        except FileNotFoundError:
            raise DetectorError(f"{folder}: {MODEL_FILE} is missing") from None
        except skops.io.exceptions.UntrustedTypesFoundException as exc:
            raise DetectorError(f"{folder / MODEL_FILE}: refusing to load untrusted types: {exc}") from exc


def _spreads(values: np.ndarray, columns: pd.Index, name: str) -> np.ndarray:
    """Robust spread of each column's observed values; 1 for a constant column (its features are 0)."""
    spreads = []
    for column, series in zip(columns, values.T, strict=True):
        observed = series[~np.isnan(series)]
        if observed.size == 0:
            raise DetectorError(f"{name}: column {column!r} has no observed training values")
        spread = robust_spread(observed)
        spreads.append(spread if spread > 0 else 1.0)
    return np.array(spreads)


def _evenly_spaced(rows: np.ndarray, limit: int | None) -> np.ndarray:
    """At most ``limit`` rows taken at a regular stride, so a subsample covers the whole range."""
    if limit is None or len(rows) <= limit:
        return rows
    return rows[:: -(-len(rows) // limit)]


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
        differences: bool = True,
        n_estimators: int = 100,
        max_samples: int | float | str = "auto",
        max_train_rows: int | None = None,
        random_state: int | None = 0,
        threshold: str | float = "robust",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(window, differences, max_train_rows, threshold, threshold_params)
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
        differences: bool = True,
        nu: float = 0.05,
        gamma: float | str = "scale",
        max_train_rows: int | None = 5000,
        threshold: str | float = "robust",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(window, differences, max_train_rows, threshold, threshold_params)
        self.nu = nu
        self.gamma = gamma

    def _new_estimator(self) -> OneClassSVM:
        return OneClassSVM(kernel="rbf", nu=self.nu, gamma=self.gamma)

    def _score_windows(self, features: np.ndarray) -> tuple[np.ndarray, float]:
        return 1 - self.estimator_.score_samples(features) / self.estimator_.dual_coef_.sum(), np.nan


class EllipticEnvelopeDetector(SklearnDetector):
    """Robust Gaussian (minimum covariance determinant); score = the Mahalanobis distance.

    First differences are off by default: they are linear combinations of the levels, which makes
    the covariance of levels and differences singular. The MCD is fitted on at most
    ``max_train_rows`` evenly spaced windows to bound its time.
    """

    name = "elliptic_envelope"

    def __init__(
        self,
        window: int = 30,
        differences: bool = False,
        support_fraction: float | None = None,
        max_train_rows: int | None = 10000,
        random_state: int | None = 0,
        threshold: str | float = "robust",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(window, differences, max_train_rows, threshold, threshold_params)
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
        differences: bool = True,
        n_clusters: int = 8,
        max_train_rows: int | None = None,
        random_state: int | None = 0,
        threshold: str | float = "robust",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(window, differences, max_train_rows, threshold, threshold_params)
        self.n_clusters = n_clusters
        self.random_state = random_state

    def _new_estimator(self) -> KMeans:
        return KMeans(n_clusters=self.n_clusters, random_state=self.random_state)

    def _score_windows(self, features: np.ndarray) -> tuple[np.ndarray, float]:
        return self.estimator_.transform(features).min(axis=1), np.nan


class PcaDetector(SklearnDetector):
    """PCA of the training windows; score = the reconstruction error (distance to the subspace).

    ``expected`` is the reconstruction of the target's current value: what the principal
    components make of the window.
    """

    name = "pca"

    def __init__(
        self,
        window: int = 30,
        differences: bool = True,
        n_components: int | float = 0.9,
        max_train_rows: int | None = None,
        threshold: str | float = "robust",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(window, differences, max_train_rows, threshold, threshold_params)
        self.n_components = n_components

    def _new_estimator(self) -> PCA:
        return PCA(n_components=self.n_components, svd_solver="full")

    def _score_windows(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        reconstruction = self.estimator_.inverse_transform(self.estimator_.transform(features))
        # The target's current value is its last lag: feature window - 1.
        expected = reconstruction[:, self.window - 1] * self.scale_[0] + self.center_[0]
        return np.linalg.norm(features - reconstruction, axis=1), expected
