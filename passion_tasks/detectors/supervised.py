"""Supervised detection: gradient-boosted trees on the lag features, trained on labelled anomalies.

The seed notebook's XGBClassifier, with its ``plot_importance`` as ``feature_importances_``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from xgboost import XGBClassifier

from passion_tasks.detectors.base import DetectorError
from passion_tasks.detectors.sklearn_detectors import LagFeatureDetector

MODEL_FILE = "model.json"


class XGBoostDetector(LagFeatureDetector):
    """XGBoost classifier of the lag features; score = the predicted probability of an anomaly.

    Needs labels (``fit(frame, labels)``, 1 = anomalous) with both classes among the rows that
    have a full window. Anomalies are rare: ``scale_pos_weight`` (default: normal rows per
    anomalous row in the training labels) weighs the two classes equally. The default threshold is
    a fixed probability of 0.5. ``n_jobs`` defaults to one thread: the pipeline runs one task per
    series side by side, and XGBoost's threads stall each other on a busy machine.

    ``feature_importances_`` maps each lag feature's name (``feature_names()``) to its share of the
    trees' total gain, as the seed's ``plot_importance`` showed it. The booster is saved in
    XGBoost's own JSON format (``model.json``).
    """

    name = "xgboost"
    _learned_attributes = ("feature_importances_",)
    label_use = "required"
    _model_attributes: ClassVar[tuple[str, ...]] = ("model_",)

    def __init__(
        self,
        window: int = 30,
        relative: bool = True,
        differences: bool = False,
        seasonal: bool = False,
        n_estimators: int = 200,
        max_depth: int = 4,
        learning_rate: float = 0.1,
        scale_pos_weight: float | None = None,
        random_state: int = 0,
        n_jobs: int | None = 1,
        threshold: str | float = 0.5,
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(window, relative, differences, seasonal, threshold, threshold_params)
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.scale_pos_weight = scale_pos_weight
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _fit(self, frame: pd.DataFrame, labels: np.ndarray) -> None:
        features = self._fit_scaling(frame)
        rows = self._scorable(features, frame)
        targets = labels[rows].astype(int)
        anomalies = int(targets.sum())
        if anomalies == 0 or anomalies == len(targets):
            raise DetectorError(
                f"{self.name}: the labels of the {len(targets)} training rows with a full window hold a "
                f"single class ({anomalies} anomalous); label both normal and anomalous rows"
            )
        weight = (
            (len(targets) - anomalies) / anomalies if self.scale_pos_weight is None else self.scale_pos_weight
        )
        self.model_ = XGBClassifier(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            learning_rate=self.learning_rate,
            scale_pos_weight=weight,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
        ).fit(features[rows], targets)
        self.model_.get_booster().feature_names = self.feature_names()
        self.feature_importances_ = dict(
            zip(self.feature_names(), self.model_.feature_importances_.astype(float).tolist(), strict=True)
        )

    def _score_rows(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        features = self._features(frame)
        rows = self._scorable(features, frame)
        scores = np.full(len(frame), np.nan)
        if rows.any():
            scores[rows] = self.model_.predict_proba(features[rows])[:, 1]
        return scores, np.full(len(frame), np.nan)

    def feature_importance(self) -> pd.Series:
        """``feature_importances_`` as a Series, most important first."""
        return pd.Series(self.feature_importances_, name="importance").sort_values(ascending=False)

    def _save_model(self, folder: Path) -> None:
        self.model_.save_model(folder / MODEL_FILE)

    def _load_model(self, folder: Path) -> None:
        if not (folder / MODEL_FILE).is_file():
            raise DetectorError(f"{folder}: {MODEL_FILE} is missing")
        self.model_ = XGBClassifier()
        self.model_.load_model(folder / MODEL_FILE)
