"""Fusion: several detectors' scores, each put on [0, 1] against its own training scores, combined.

Without labels the fused score is the mean of the members' normalised scores (a rank average).
With labels, a logistic regression stacked on the normalised scores learns how much each member
counts, and the fused score is its probability of an anomaly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from passion_tasks.detectors import make_detector
from passion_tasks.detectors.base import Detector, DetectorError
from passion_tasks.detectors.persistence import load_detector, save_detector

#: Fast members that look at different things: a local robust z, a forest of lag windows and their
#: distance to typical windows. Not NAB's windowed Gaussian: its 6400-row window takes a daily cycle
#: for noise, and a member that ranks at random drags the average down.
DEFAULT_MEMBERS = ("rolling_mad", "isolation_forest", "kmeans")

MemberSpec = str | tuple[str, dict[str, Any]] | list[Any]


class FusionDetector(Detector):
    """Combines the detectors ``detectors``: registry names, or ``(name, params)`` pairs.

    Each member is fitted on the same frame (with the labels, for members that use them). A
    member's score is normalised by the empirical CDF of its training scores
    (``decision_scores_``): the share of training rows that scored at most as high, so every
    member reads on [0, 1] whatever its units. Without labels the fused score is the mean of the
    members' normalised scores; with labels, the probability from a logistic regression
    (balanced classes) on them, fitted on the training rows (``stacker_coef_``,
    ``stacker_intercept_``; in-sample member scores, so a member that memorises its labels is
    over-trusted: give supervised members their own data or leave them out).

    Both scores lie on [0, 1], where the robust rule rarely fires: the default threshold flags the
    training's top 1% (``anomaly_ratio``). A missing value scores 0. Members are saved in
    subfolders ``member_<i>_<name>``.
    """

    name = "fusion"
    _learned_attributes = ("stacker_coef_", "stacker_intercept_")
    label_use = "optional"
    _model_attributes: ClassVar[tuple[str, ...]] = ("members_",)

    def __init__(
        self,
        detectors: list[MemberSpec] | None = None,
        threshold: str | float = "anomaly_ratio",
        threshold_params: dict[str, Any] | None = None,
    ):
        super().__init__(threshold=threshold, threshold_params=threshold_params)
        self.detectors = detectors

    def _fit(self, frame: pd.DataFrame, labels: np.ndarray | None) -> None:
        specs = self._member_specs()
        if labels is not None and (labels.all() or not labels.any()):
            raise DetectorError(
                f"{self.name}: the labels hold a single class ({int(labels.sum())} anomalous of "
                f"{len(labels)}); label both normal and anomalous rows, or fit without labels"
            )
        training_labels = None if labels is None else pd.Series(labels.astype(int), index=frame.index)
        self.members_ = [make_detector(name, **params).fit(frame, training_labels) for name, params in specs]
        if labels is None:
            return
        normalised = self._normalised([member.decision_scores_ for member in self.members_])
        stacker = LogisticRegression(class_weight="balanced").fit(normalised, labels)
        self.stacker_coef_ = stacker.coef_[0]
        self.stacker_intercept_ = float(stacker.intercept_[0])

    def _score_rows(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        normalised = self._normalised(
            [member.decision_function(frame).to_numpy() for member in self.members_]
        )
        if hasattr(self, "stacker_coef_"):
            scores = expit(normalised @ self.stacker_coef_ + self.stacker_intercept_)
        else:
            scores = normalised.mean(axis=1)
        # Members score a missing value 0, which the CDFs would turn into an opinion.
        scores[frame.iloc[:, 0].isna().to_numpy()] = np.nan
        return scores, np.full(len(frame), np.nan)

    def _normalised(self, member_scores: list[np.ndarray]) -> np.ndarray:
        """``(rows, members)``: each member's scores as the empirical CDF of its training scores."""
        columns = []
        for member, scores in zip(self.members_, member_scores, strict=True):
            reference = np.sort(member.decision_scores_)
            columns.append(np.searchsorted(reference, scores, side="right") / len(reference))
        return np.column_stack(columns)

    def _member_specs(self) -> list[tuple[str, dict[str, Any]]]:
        """``detectors`` as ``(name, params)`` pairs; a JSON round trip turns pairs into lists."""
        specs = []
        for spec in DEFAULT_MEMBERS if self.detectors is None else self.detectors:
            if isinstance(spec, str):
                specs.append((spec, {}))
            elif isinstance(spec, tuple | list) and len(spec) == 2 and isinstance(spec[1], dict):
                specs.append((spec[0], spec[1]))
            else:
                raise DetectorError(
                    f"{self.name}: each of detectors must be a detector name or a (name, params) pair, "
                    f"got {spec!r}"
                )
        if not specs:
            raise DetectorError(f"{self.name}: detectors is empty; name at least one member")
        if any(name == self.name for name, _ in specs):
            raise DetectorError(f"{self.name}: a fusion cannot be its own member")
        return specs

    def _save_model(self, folder: Path) -> None:
        for index, member in enumerate(self.members_):
            save_detector(member, folder / _member_folder(index, member.name))

    def _load_model(self, folder: Path) -> None:
        self.members_ = [
            load_detector(folder / _member_folder(index, name), expected=name)
            for index, (name, _) in enumerate(self._member_specs())
        ]


def _member_folder(index: int, name: str) -> str:
    return f"member_{index}_{name}"
