"""The detector contract every model follows (scikit-learn / PyOD style).

A detector is configured by the parameters of its ``__init__`` (``get_params``/``set_params`` and
``sklearn.base.clone`` work), learns from a frame with ``fit`` and scores frames it has not seen:

- A *frame* is a DataFrame indexed by a tz-aware (UTC) DatetimeIndex on a regular grid, one column
  per feature; the first column is the target series. Missing values (gaps) are NaN rows.
- ``decision_function(frame)``: one anomaly score per row, higher = more anomalous, never NaN,
  computed causally (a row's score depends only on the fitted state and on rows at or before it),
  as PyOD names it (scikit-learn's ``score`` is one goodness number, which this is not).
- ``expected(frame)``: the value the model expected for the target (NaN where it has no opinion).
- ``predict(frame)``: ``decision_function >= threshold_``.
- ``detect(frame)``: all three in one pass, the scoring of a day uses it.
- Learned state ends with ``_``: ``feature_names_in_``, ``n_features_in_``, ``step_``,
  ``decision_scores_`` (the training rows' scores) and ``threshold_``.

Subclasses implement ``_fit`` and ``_score_rows`` only, or ``_score_matrix`` instead of ``_score_rows``
to be scored many series in one pass (``detect_batch``); validation, thresholds and the shape of the
results live here, so every detector behaves the same at the edges.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from passion_tasks.detectors import thresholds
from passion_tasks.errors import ExitCode, PassionError


class DetectorError(PassionError):
    """A detector cannot be built, fitted or used with the data it was given."""


class UnknownDetectorError(DetectorError):
    exit_code = ExitCode.USAGE


class Detector(BaseEstimator):
    """Base class of all detectors; see the module docstring for the contract.

    ``threshold`` is the name of a method in ``passion_tasks.detectors.thresholds`` fitted on the training
    scores (with ``threshold_params`` as its options) or a fixed score.
    """

    #: The registry name, written to the scores as ``detector``.
    name: ClassVar[str]
    #: Learned attributes that are not plain data (a Keras model, a scikit-learn estimator): the
    #: detector writes and reads them itself in ``_save_model`` / ``_load_model``.
    _model_attributes: ClassVar[tuple[str, ...]] = ()
    #: The plain learned state (numbers, arrays, lists) a saved detector may restore. Each class names
    #: what it adds; ``learned_attributes`` collects them over the class hierarchy. A saved state that
    #: names anything else is refused, so a stored file cannot set an attribute of its own choosing.
    _learned_attributes: ClassVar[tuple[str, ...]] = (
        "feature_names_in_",
        "n_features_in_",
        "step_",
        "decision_scores_",
        "threshold_",
    )
    #: What ``fit`` does with labels: ``"ignored"`` (unsupervised), ``"optional"`` or ``"required"``.
    #: Detectors that use them implement ``_fit(frame, labels)``, labels as a bool array per row
    #: (``None`` when optional and not given).
    label_use: ClassVar[Literal["ignored", "optional", "required"]] = "ignored"
    #: Whether the score reflects every column of the frame (a window of all of them), not only the
    #: target's: such a detector is fitted once on an entity's metrics, the others once per metric.
    reads_every_column: ClassVar[bool] = False
    #: Whether the scores are already on a scale one threshold serves for every series (a surprise
    #: ``-log10 p`` of the detector's own probability model, or a record-relative likelihood), so the
    #: calibration stage (``calibration``) leaves them as they are.
    calibrated: ClassVar[bool] = False
    #: Whether a target that never moved in training still gives a model: an error rate that was 0
    #: all week is the most common series in operations, and its first errors must not go unseen.
    learns_from_constant: ClassVar[bool] = False
    #: Rows that one score reads, when they bind two anomalous rows into one event from further apart
    #: than ``scoring.group_events``' gap: the later row's window holds the earlier one's evidence.
    #: They join only across rows that scored 0, which a one-sided surprise (``RateDetector``'s) gives a
    #: row no worse than expected; a detector that declares it must score so. None: the gap alone.
    event_window_rows: ClassVar[int | None] = None

    def __init__(self, threshold: str | float = "robust", threshold_params: dict[str, Any] | None = None):
        self.threshold = threshold
        self.threshold_params = threshold_params

    @classmethod
    def input_series(cls, series: str) -> list[str]:
        """The feature series a model of ``series`` reads: the series itself, first, and whatever else
        the detector judges it with (a slice's requests, for the count-aware ones)."""
        return [series]

    @classmethod
    def learned_attributes(cls) -> frozenset[str]:
        """Every attribute ``_learned_attributes`` declares on this class or a base class."""
        return frozenset(name for klass in cls.__mro__ for name in vars(klass).get("_learned_attributes", ()))

    # -- what a subclass implements -----------------------------------------------------------

    def _fit(self, frame: pd.DataFrame) -> None:
        """Learn the model's state from a validated frame (float columns, fitted order)."""
        raise NotImplementedError

    def _score_rows(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, expected)`` for each row of a validated frame.

        A score may be NaN where the model has no opinion (a missing value, not enough history):
        the public scores read 0 there and thresholds are fitted on the other rows. By default the
        frame is ``_score_matrix``'s matrix of one series, so that a model scored alone and in a pass
        share every operation.
        """
        scores, expected = type(self)._score_matrix([self], matrix_of(frame), frame.index)
        return scores[0], expected[0]

    @classmethod
    def _score_matrix(
        cls, models: Sequence[Detector], values: np.ndarray, index: pd.DatetimeIndex, start: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """``_score_rows`` of each of ``models`` (one class, one ``batch_key``) on its features, a row
        of ``values`` (series × features × steps on ``index``, float, missing values NaN; a model's
        features in its fitted order), as two series × steps arrays. The steps before ``start`` are
        context: their own results are not needed."""
        raise NotImplementedError

    def _uncalibrated_threshold(self, false_events_per_row: float) -> float | None:
        """The score whose chance of being reached by a normal row is ``false_events_per_row``, for a
        detector that knows it without training data (its scores are p-values); None for the others."""
        return None

    def _save_model(self, folder: Path) -> None:
        """Write the ``_model_attributes`` into ``folder`` (nothing to write by default)."""

    def _load_model(self, folder: Path) -> None:
        """Read back what ``_save_model`` wrote."""

    def _check_integers(self, minimums: dict[str, int]) -> None:
        """A ``DetectorError`` unless each parameter named in ``minimums`` is an integer at least its
        minimum there."""
        for name, minimum in minimums.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
                raise DetectorError(f"{self.name}: {name} must be an integer >= {minimum}, got {value!r}")

    # -- the contract -------------------------------------------------------------------------

    def fit(self, frame: pd.DataFrame, labels: pd.Series | None = None) -> Detector:
        """Learn from ``frame``, then score it and fit ``threshold_`` on those scores.

        ``labels`` (1 = anomalous), aligned to the frame's index, reach only the detectors that use
        them (``label_use``); the others ignore them, as scikit-learn's unsupervised estimators do.
        """
        self._check_threshold_params()
        step = _grid_step(frame)
        if len(frame) < 2:
            raise DetectorError(f"{self.name}: needs at least 2 training rows, got {len(frame)}")
        values = _as_float(frame)
        target = values.iloc[:, 0].dropna()
        if target.nunique() < 2 and not (self.learns_from_constant and len(target)):
            raise DetectorError(
                f"{self.name}: target series {frame.columns[0]!r} is constant or empty in the training "
                f"data ({target.nunique()} distinct values); there is nothing to learn"
            )
        training_labels = None if self.label_use == "ignored" else self._aligned_labels(labels, frame.index)
        self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        self.n_features_in_ = len(frame.columns)
        self.step_ = step
        if self.label_use == "ignored":
            self._fit(values)
        else:
            self._fit(values, training_labels)
        raw_scores, _ = self._score_rows(values)
        self.decision_scores_ = np.nan_to_num(raw_scores, nan=0.0)
        self.threshold_ = self._fit_threshold(raw_scores)
        return self

    def detect(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Columns ``expected``, ``score`` and ``is_anomaly`` for each row of ``frame``, in one pass."""
        values = self._validated(frame)
        raw_scores, expected = self._score_rows(values)
        scores = np.nan_to_num(raw_scores, nan=0.0)
        return pd.DataFrame(
            {"expected": expected, "score": scores, "is_anomaly": scores >= self.threshold_},
            index=frame.index,
        )

    def decision_function(self, frame: pd.DataFrame) -> pd.Series:
        """Anomaly score per row: higher = more anomalous, never NaN, causal."""
        return self.detect(frame)["score"]

    def expected(self, frame: pd.DataFrame) -> pd.Series:
        """What the model expected the target to be at each row (NaN where it has no opinion)."""
        return self.detect(frame)["expected"]

    def predict(self, frame: pd.DataFrame) -> pd.Series:
        """True where ``score >= threshold_``."""
        return self.detect(frame)["is_anomaly"]

    def context(self) -> pd.Timedelta | None:
        """How much history before a row can change its score: scoring a day reads no more than this
        before the day (``models.scoring.scoring_rows``). None: all the history it is given."""
        return None

    def batch_key(self) -> Hashable | None:
        """Models of one class with equal keys are scored together in one pass over a series × features
        × steps matrix (``detect_batch``); None, the default: this model is scored alone."""
        return None

    def save(self, path: str | Path) -> Path:
        """Write the fitted detector into the folder ``path``; ``load_detector(path)`` reads it back."""
        from passion_tasks.detectors.persistence import save_detector

        return save_detector(self, path)

    # -- helpers ------------------------------------------------------------------------------

    def _aligned_labels(self, labels: pd.Series | None, index: pd.DatetimeIndex) -> np.ndarray | None:
        """The labels as one bool per training row; a Series is aligned by its index."""
        if labels is None:
            if self.label_use == "required":
                raise DetectorError(
                    f"{self.name}: a supervised detector; fit it with labels (1 = anomalous) aligned "
                    "to the frame's index"
                )
            return None
        aligned = labels.reindex(index) if isinstance(labels, pd.Series) else labels
        try:
            values = np.asarray(aligned, dtype="float64")
        except (TypeError, ValueError) as exc:
            raise DetectorError(f"{self.name}: labels must be 0/1 or bool: {exc}") from exc
        if values.shape != (len(index),):
            raise DetectorError(
                f"{self.name}: {len(index)} training rows, got labels of shape {values.shape}"
            )
        if np.isnan(values).any():
            raise DetectorError(
                f"{self.name}: labels missing for {int(np.isnan(values).sum())} training rows"
            )
        if not np.isin(values, (0, 1)).all():
            raise DetectorError(f"{self.name}: labels must be 0 (normal) or 1 (anomalous)")
        return values == 1

    def _check_threshold_params(self) -> None:
        if isinstance(self.threshold, str):
            if self.threshold not in thresholds.THRESHOLD_METHODS:
                raise DetectorError(
                    f"{self.name}: unknown threshold method {self.threshold!r}; "
                    f"choose one of {', '.join(thresholds.THRESHOLD_METHODS)} or give a number"
                )
            budget = (self.threshold_params or {}).get("incidents_per_30_days", thresholds.DEFAULT_BUDGET)
            if self.threshold == "false_alarm_budget":
                try:
                    thresholds.check_budget(budget)
                except ValueError as error:
                    raise DetectorError(f"{self.name}: {error} (incidents_per_30_days)") from None
        elif self.threshold_params:
            raise DetectorError(f"{self.name}: threshold_params only apply to a threshold method")
        elif not self.threshold > 0:
            raise DetectorError(f"{self.name}: a fixed threshold must be positive, got {self.threshold!r}")

    def _fit_threshold(self, raw_scores: np.ndarray) -> float:
        if not isinstance(self.threshold, str):
            return float(self.threshold)
        options = dict(self.threshold_params or {})
        if self.threshold == "false_alarm_budget":
            rows_per_day = pd.Timedelta(days=1) / self.step_
            budget = options.get("incidents_per_30_days", thresholds.DEFAULT_BUDGET)
            per_row = budget / (thresholds.DAYS_PER_BUDGET * rows_per_day)
            options |= {
                "rows_per_day": rows_per_day,
                "model_threshold": self._uncalibrated_threshold(per_row),
            }
        try:
            value = thresholds.fit_threshold(raw_scores, self.threshold, **options)
        except (TypeError, ValueError) as exc:
            raise DetectorError(f"{self.name}: threshold {self.threshold!r}: {exc}") from exc
        # A zero threshold would flag every row the model predicted perfectly.
        if not value > 0:
            raise DetectorError(
                f"{self.name}: threshold came out at {value!r}; the training scores give nothing to "
                "separate (is the training series almost constant?)"
            )
        return value

    def _validated(self, frame: pd.DataFrame) -> pd.DataFrame:
        if not hasattr(self, "threshold_"):
            raise DetectorError(f"{self.name}: not fitted yet; call fit first")
        step = _grid_step(frame)
        fitted = list(self.feature_names_in_)
        if sorted(frame.columns) != sorted(fitted):
            missing = [c for c in fitted if c not in frame.columns]
            extra = [c for c in frame.columns if c not in fitted]
            raise DetectorError(
                f"{self.name}: fitted on features {fitted}, got {list(frame.columns)} "
                f"(missing {missing}, unexpected {extra})"
            )
        if step is not None and step != self.step_:
            raise DetectorError(f"{self.name}: fitted on a {self.step_} grid, got a {step} grid")
        return _as_float(frame if list(frame.columns) == fitted else frame[fitted])


def detect_batch(
    models: Sequence[Detector], values: np.ndarray, index: pd.DatetimeIndex, start: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``detect`` of many models in one pass: row i of ``values`` (series × features × steps, on
    ``index``) holds the features of ``models[i]`` in its fitted order, and the models share a class
    and a ``batch_key``. Returns ``expected``, ``score`` and ``is_anomaly``, each series × steps, as
    ``detect`` gives them model by model, from step ``start`` on: the steps before it are the history
    those need, and their own results are not computed (they read as the detector leaves them)."""
    kind, key = type(models[0]), models[0].batch_key()
    if key is None or any(type(model) is not kind or model.batch_key() != key for model in models):
        names = sorted({model.name for model in models})
        raise DetectorError(f"models of {names} cannot be scored in one pass")
    step = _index_step(index)
    for model in models:
        if not hasattr(model, "threshold_"):
            raise DetectorError(f"{model.name}: not fitted yet; call fit first")
        if step is not None and step != model.step_:
            raise DetectorError(f"{model.name}: fitted on a {model.step_} grid, got a {step} grid")
    values = np.asarray(values, dtype="float64")
    if values.shape != (len(models), models[0].n_features_in_, len(index)) or any(
        model.n_features_in_ != values.shape[1] for model in models
    ):
        raise DetectorError(
            f"{len(models)} models of {[model.n_features_in_ for model in models]} features on {len(index)} "
            f"steps, got values of shape {values.shape}"
        )
    if not np.isfinite(values).all():
        values = np.where(np.isfinite(values), values, np.nan)
    raw_scores, expected = kind._score_matrix(models, values, index, start)
    scores = np.nan_to_num(raw_scores, nan=0.0)
    return expected, scores, scores >= learned_column(models, "threshold_")


def learned_column(models: Sequence[Detector], name: str) -> np.ndarray:
    """A number each model learned (``name``), as a column: one row per series of a pass."""
    return np.array([getattr(model, name) for model in models], dtype="float64")[:, None]


def matrix_of(frame: pd.DataFrame) -> np.ndarray:
    """A frame of one series' features as the series × features × steps matrix of that one series."""
    return frame.to_numpy(dtype=float).T[None]


def _grid_step(frame: pd.DataFrame) -> pd.Timedelta | None:
    """The frame's grid step; raises unless the index is a tz-aware regular DatetimeIndex."""
    if not isinstance(frame, pd.DataFrame):
        raise DetectorError(f"expected a DataFrame, got {type(frame).__name__}")
    if frame.columns.empty:
        raise DetectorError("the frame has no feature columns")
    return _index_step(frame.index)


def _index_step(index: pd.Index) -> pd.Timedelta | None:
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise DetectorError("the frame must be indexed by a tz-aware (UTC) DatetimeIndex")
    if len(index) < 2:
        return None
    steps = np.diff(index.asi8)
    if steps[0] <= 0 or (steps != steps[0]).any():
        raise DetectorError(
            "the frame's timestamps must be increasing on a regular grid; reindex it and mark gaps with NaN"
        )
    return index[1] - index[0]


def _as_float(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as float64, with non-finite values treated as missing."""
    try:
        values = frame.astype("float64")
    except (TypeError, ValueError) as exc:
        raise DetectorError(f"every feature must be numeric: {exc}") from exc
    # Most frames hold no infinity: they are returned as they are, without a copy.
    return values.where(np.isfinite(values)) if np.isinf(values.to_numpy()).any() else values
