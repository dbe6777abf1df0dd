"""Training a series' model into the registry, and loading the model that was live on a day.

The steps (``passion_tasks.steps``) call these for the CLI and the Airflow tasks alike; the registry
keeps the artifacts, this module decides what goes in them: the training frame, its labels, the fit,
the metrics.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from passion_tasks.corpora.labels import Window, label_windows, labels_on
from passion_tasks.detectors import Detector, DetectorError, detector_class, make_detector, restore_detector
from passion_tasks.errors import PassionError, UsageError
from passion_tasks.features.policy import metric_kind
from passion_tasks.lake import Day, Lake, as_day, datasets
from passion_tasks.models import registry
from passion_tasks.models.families import USUAL_DEPARTURE, usual_departures


def train_model(
    lake: Lake,
    frame: pd.DataFrame,
    detector: str,
    *,
    params: dict[str, Any] | None = None,
    labels: pd.Series | None = None,
    metrics: dict[str, Any] | None = None,
) -> registry.ModelVersion:
    """Fit ``detector`` on ``frame`` (first column = the series) and register it; returns the version.

    ``labels`` reach the detectors that use them (``label_use``); ``metrics`` join the manifest's.
    """
    return register_model(
        lake, fit_model(frame, detector, params=params, labels=labels), frame, metrics=metrics
    )


@dataclass(frozen=True)
class Fitted:
    """A fitted model, not yet registered (its training columns are ``model.feature_names_in_``)."""

    detector: str
    model: Detector
    fit_seconds: float


def fit_model(
    frame: pd.DataFrame,
    detector: str,
    *,
    params: dict[str, Any] | None = None,
    labels: pd.Series | None = None,
) -> Fitted:
    """Fit ``detector`` on ``frame`` (first column = the series); ``labels`` as ``train_model``."""
    series = str(frame.columns[0])
    model = make_detector(detector, **(params or {}))
    fit_labels = None if labels is None else training_labels(detector, labels)
    if detector_class(detector).label_use == "required" and (fit_labels is None or fit_labels.nunique() < 2):
        raise UsageError(f"{series}: {detector} is supervised and the training range has no labelled anomaly")
    began = time.perf_counter()
    model.fit(frame, labels=fit_labels)
    return Fitted(detector, model, time.perf_counter() - began)


def register_model(
    lake: Lake, fitted: Fitted, training: pd.DataFrame, *, metrics: dict[str, Any] | None = None
) -> registry.ModelVersion:
    """Register a fitted model, with its fit's figures and ``metrics`` in the manifest; ``training``
    holds the rows it was fitted on and its columns (``feature_names_in_``), among others."""
    model = fitted.model
    frame = training[list(model.feature_names_in_)]
    metrics = {
        "fit_seconds": round(fitted.fit_seconds, 3),
        "training_rows": len(frame),
        "training_missing_rows": int(frame.iloc[:, 0].isna().sum()),
        "training_anomaly_rate": float(np.mean(model.decision_scores_ >= model.threshold_)),
        **(metrics or {}),
    }
    with tempfile.TemporaryDirectory(prefix="passion-model-") as tmp:
        folder = model.save(Path(tmp) / "model")
        return registry.register(
            lake,
            str(frame.columns[0]),
            fitted.detector,
            folder,
            params=model.get_params(deep=False),
            features=[str(c) for c in frame.columns],
            scaler=_scaler(model),
            threshold=float(model.threshold_),
            train_start=frame.index[0].date(),
            train_end=frame.index[-1].date(),
            fingerprint=registry.fingerprint(frame),
            metrics=metrics,
        )


def training_labels(detector: str, labels: pd.Series) -> pd.Series | None:
    """The labels a detector is fitted with: all for those that need them, none for those that ignore
    them, and for those that can use them only when both classes are present."""
    use = detector_class(detector).label_use
    if use == "required" or (use == "optional" and labels.nunique() == 2):
        return labels
    return None


def load_model(lake: Lake, series: str, detector: str, version: str | int | None) -> Detector:
    """The registered model, its files verified against the manifest before anything is loaded.

    Without a version: the live one if this detector is live for the series, else the newest.
    """
    if version is None:
        live = registry.live(lake, series)
        if live is not None and live.detector == detector:
            version = live.version
        else:
            versions = [m for m in registry.list_models(lake, series) if m.detector == detector]
            if not versions:
                raise UsageError(f"no {detector} model is registered for {series!r}; train one first")
            version = max(versions, key=lambda m: int(m.version[1:])).version
    return _fetched(lake, series, detector, version)[0]


def live_model(lake: Lake, series: str, day: Day) -> tuple[Detector, registry.ModelVersion] | None:
    """The model that was live for ``series`` on ``day``, loaded; ``None`` if none was."""
    promotion = registry.live_promotion(lake, series, on=as_day(day))
    if promotion is None:
        return None
    return _fetched(lake, series, promotion.detector, promotion.version)


def _fetched(
    lake: Lake, series: str, detector: str, version: str | int
) -> tuple[Detector, registry.ModelVersion]:
    files, model = registry.fetch_files(lake, series, detector, version)
    try:
        return restore_detector(files, expected=model.detector, source=model.ref), model
    except DetectorError as error:
        # The files passed their checksums, so the lake handed back what the manifest names; a saved
        # detector that still cannot be restored is refused like any other model that fails its checks.
        raise registry.ArtifactIntegrityError(
            f"model {model.ref} cannot be loaded: {error}. {registry.WHAT_TO_DO}"
        ) from None


def parse_model_ref(ref: str) -> tuple[str, str, str | None]:
    """``SERIES/DETECTOR[@VERSION]`` → (series, detector, version); the series may contain ``/``."""
    body, _, version = ref.partition("@")
    series, _, detector = body.rpartition("/")
    if not series or not detector:
        raise UsageError(
            f"model reference {ref!r}: expected SERIES/DETECTOR[@VERSION], e.g. cif/rolling_mad@v2"
        )
    return series, detector, version or None


def training_range(
    lake: Lake, train_from: Day | None, train_to: Day | None, lookback_days: int
) -> tuple[dt.date, dt.date]:
    """The days a model trains on: ``train_from``..``train_to``, or ``lookback_days`` days up to
    ``train_to``. Without ``train_to``: up to the last day with features (days are UTC days)."""
    if train_to is None:
        available = lake.partitions(datasets.FEATURES)
        if not available:
            raise PassionError("no features in the lake yet: ingest and build features first")
        train_to = available[-1]
    end = as_day(train_to)
    if train_from is not None:
        start = as_day(train_from)
    elif lookback_days >= 1:
        start = end - dt.timedelta(days=lookback_days - 1)
    else:
        raise UsageError(f"the lookback must be at least 1 day, not {lookback_days}")
    if start > end:
        raise UsageError(f"the training range {start}..{end} ends before it starts")
    return start, end


@dataclass
class TrainSummary:
    """What training a detector for some series did: the models registered, and the series that failed."""

    #: The detectors the run was asked to train ("a, b"), named while none was trained.
    planned: str
    train_start: dt.date
    train_end: dt.date
    trained: dict[str, str] = field(default_factory=dict)  # series -> model ref
    failed: dict[str, str] = field(default_factory=dict)  # series -> reason
    promoted_from: dt.date | None = None
    #: The breakdowns whose family departs on most training days, and for how long (minutes) it
    #: usually does (``families.usual_departures``).
    usual_departures: dict[str, int] = field(default_factory=dict)

    @property
    def detector(self) -> str:
        """The detectors of the models registered ("a, b"), or those planned when none was."""
        trained = sorted({parse_model_ref(ref)[1] for ref in self.trained.values()})
        return ", ".join(trained) or self.planned

    def summary(self) -> str:
        text = (
            f"trained {len(self.trained)} {self.detector} models on {self.train_start}..{self.train_end}"
            + (f", live from {self.promoted_from}" if self.promoted_from else "")
            + (
                f"; {len(self.usual_departures)} breakdowns' families depart on most days, for up to "
                f"{max(self.usual_departures.values())} minutes: departures as short are their habit"
                if self.usual_departures
                else ""
            )
        )
        for series, reason in list(self.failed.items())[:5]:
            text += f"\n  failed {series}: {reason}"
        if len(self.failed) > 5:
            text += f"\n  ... and {len(self.failed) - 5} more failures"
        return text


def train_each(
    lake: Lake,
    frame: pd.DataFrame,
    plan: dict[str, tuple[str, ...]],
    *,
    params: dict[str, dict[str, Any]],
    live_from: dt.date | None,
) -> TrainSummary:
    """Train each series of ``plan`` (series -> detectors, in order of preference) on ``frame`` with
    its detector's ``params``, register it, and promote it from ``live_from`` if given: the first of a
    series' detectors that can be trained is, so a detector that needs more history than there is
    falls back to the next. A detector reads the columns its class names (``input_series``); a series
    none of whose detectors can be trained is reported, with each one's reason, and the others go on.
    The models are registered once all are fitted, a breakdown's with how long its family's
    departures usually last when it departs on most days (``families.usual_departures``)."""
    start, end = frame.index[0].date(), frame.index[-1].date()
    windows = label_windows(lake)
    used = sorted({detector for candidates in plan.values() for detector in candidates})
    result = TrainSummary(", ".join(used), start, end, promoted_from=live_from)
    fitted: dict[str, Fitted] = {}
    for name, candidates in plan.items():
        reasons = []
        for detector in candidates:
            try:
                fitted[name] = _fit_one(frame, name, detector, params.get(detector), windows)
                break
            except (PassionError, OSError) as error:
                reasons.append(f"{detector}: {error}" if len(candidates) > 1 else str(error))
        else:
            result.failed[name] = "; ".join(reasons)
    usual = usual_departures({name: fit.model for name, fit in fitted.items()}, frame.index)
    for name, fit in fitted.items():
        try:
            version = register_model(
                lake, fit, frame, metrics={USUAL_DEPARTURE: usual[name]} if name in usual else None
            )
            if live_from is not None:
                registry.promote(
                    lake, name, fit.detector, version.version, effective_from=live_from, reason="train"
                )
            result.trained[name] = version.ref
        except (PassionError, OSError) as error:
            result.failed[name] = str(error)
    result.usual_departures = {name: usual[name] for name in result.trained if name in usual}
    return result


def _fit_one(
    frame: pd.DataFrame,
    name: str,
    detector: str,
    params: dict[str, Any] | None,
    windows: dict[str, list[Window]],
) -> Fitted:
    inputs = detector_class(detector).input_series(name)
    if missing := [column for column in inputs if column not in frame.columns]:
        raise UsageError(f"{detector} judges {name} with {', '.join(missing)}, which has no features")
    return fit_model(
        frame[inputs], detector, params=params, labels=labels_on(frame.index, windows.get(name, []))
    )


#: What the nightly run trains for each kind of series (``features.policy.metric_kind``) unless told
#: which detector: the count-aware statistics for the CDN's rates, latencies, requests and bytes per
#: request, and for server metrics the best of fast candidates on the series' own history, the daily
#: profile first (the fallback when there is no history to choose on).
NIGHTLY_CANDIDATES = {
    "rate": ("rate",),
    "percentile": ("percentile",),
    "geometric_mean": ("geometric_mean",),
    "count": ("count",),
    "volume": ("size",),
    "metric": ("profile", "rolling_mad", "seasonal_naive"),
}


def nightly_candidates(name: str, training: pd.Series) -> tuple[str, ...]:
    """The detectors the nightly run chooses among for ``name`` given its training values: a series
    that never moved gets one that flags any departure, unless its kind's detector learns from counts."""
    candidates = NIGHTLY_CANDIDATES[metric_kind(name)]
    if training.dropna().nunique() < 2 and not detector_class(candidates[0]).learns_from_constant:
        return ("constant",)
    return candidates


def _scaler(model: Detector) -> dict[str, Any] | None:
    """The training-range scaling a model learned, for the manifest (it is saved in the artifact too)."""
    learned = {
        name: getattr(model, name) for name in ("scaler_mean_", "scaler_scale_") if hasattr(model, name)
    }
    return {name: np.asarray(value).tolist() for name, value in learned.items()} or None


def read_input_frame(path: str | Path, model: Detector) -> pd.DataFrame:
    """A CSV or Parquet file as a frame on ``model``'s grid and features, for ``passion apply``.

    The time column is ``timestamp`` or ``ts`` (else the first column); the feature columns are
    matched by name, or by position when the file has exactly as many numeric columns as the model
    was trained on. Missing grid points become gaps (NaN), duplicates keep the last value.
    """
    path = Path(path)
    if path.suffix == ".parquet":
        table = pd.read_parquet(path)
    elif path.suffix in (".csv", ".gz"):
        table = pd.read_csv(path)
    else:
        raise UsageError(f"{path}: expected a .csv or .parquet file")
    time_column = next((c for c in ("timestamp", "ts") if c in table.columns), table.columns[0])
    stamps = pd.to_datetime(table.pop(time_column), utc=True, errors="coerce")
    if stamps.isna().any():
        row = int(stamps.isna().to_numpy().argmax())
        raise UsageError(f"{path}: row {row + 2} has no readable timestamp in column {time_column!r}")
    features = [str(name) for name in model.feature_names_in_]
    numeric = table.select_dtypes("number")
    if set(features) <= set(numeric.columns):
        numeric = numeric[features]
    elif numeric.shape[1] == len(features):
        numeric = numeric.set_axis(features, axis=1)
    else:
        raise UsageError(
            f"{path}: the model was trained on {len(features)} feature(s) {features}; the file has "
            f"{numeric.shape[1]} numeric column(s) {list(numeric.columns)}"
        )
    frame = numeric.set_index(pd.DatetimeIndex(stamps, name="ts")).sort_index()
    frame = frame[~frame.index.duplicated(keep="last")]
    grid = pd.date_range(frame.index[0], frame.index[-1], freq=model.step_)
    return frame.reindex(grid)


def apply_model(lake: Lake, ref: str, input_path: str | Path) -> pd.DataFrame:
    """Score another dataset with a saved model (the notebook's "apply to other data")."""
    series, detector, version = parse_model_ref(ref)
    model = load_model(lake, series, detector, version)
    frame = read_input_frame(input_path, model)
    result = model.detect(frame)
    return pd.DataFrame(
        {
            "ts": frame.index,
            "value": frame.iloc[:, 0].to_numpy(),
            "expected": result["expected"].to_numpy(),
            "score": result["score"].to_numpy(),
            "threshold": model.threshold_,
            "is_anomaly": result["is_anomaly"].to_numpy(),
        }
    )
