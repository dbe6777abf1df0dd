"""Per-series model selection: candidates compete on a holdout, the winner is retrained and registered.

``passion select --series S --detectors a,b,c`` reads the series' features from ``train_from`` to
``train_to``, holds out the last ``holdout_days`` days, fits every candidate on the days before and
scores the whole range (the holdout with its history). Scores are mapped to [0, 1) as the benchmark
maps them (``benchmark.unit_scores``: the detector's own threshold is 0.5) and judged at the
detector's own threshold, the one it will alert with. The criterion:

- **labelled** (the lake has label windows for the series that reach into the holdout,
  ``corpora.labels.label_windows``): the NAB standard score on the holdout, one NAB window per labelled
  segment;
- **injected** (no labels in the holdout): the NAB standard score on the holdout after planting
  synthetic anomalies in it, one window per planted anomaly. Each holdout day gets an upward spike
  (+8 sigma for 5 rows), a downward level shift (-6 sigma for 30 rows) and a stall (the value of the
  row before held for 30 rows: an exporter or a counter that stopped) at seeded random places,
  sigma being the robust spread (1.4826 MAD) of the training days' step-to-step changes. The NAB
  score rewards finding them early and charges every flagged row elsewhere, so it weighs detection
  against false alarms; each candidate's false-alarm rate on the untouched holdout is reported too.

Ties go to the higher point-adjusted F1, then the lower false-alarm rate, then the order given. The
winner is retrained on the whole range, registered with every candidate's figures under
``metrics["selection"]`` in its manifest, and promoted (live from the day after ``train_to``) when
asked.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from passion_tasks.corpora.labels import label_windows, labels_on
from passion_tasks.defaults import LOOKBACK_DAYS
from passion_tasks.detectors import make_detector
from passion_tasks.detectors.thresholds import robust_spread
from passion_tasks.errors import PassionError, UsageError
from passion_tasks.evaluation import metrics
from passion_tasks.evaluation.benchmark import FLAG_THRESHOLD
from passion_tasks.evaluation.nab_corpus import NabCorpus
from passion_tasks.lake import Day, Lake
from passion_tasks.models import registry, training
from passion_tasks.models.training import training_labels

LABELLED = "labelled"
INJECTED = "injected"
#: Planted per holdout day: (kind, rows, size in sigmas of the training step-to-step changes, or None
#: for a stall, which holds the value of the row before it: a metric's third way to fail).
INJECTIONS: tuple[tuple[str, int, float | None], ...] = (
    ("spike", 5, 8.0),
    ("level_shift", 30, -6.0),
    ("stall", 30, None),
)
INJECTION_SEED = 0
#: Without --train-from: this many days up to train_to, as ``passion train``.


@dataclass(frozen=True)
class Candidate:
    """One candidate's figures on the holdout (``error`` when it could not be trained or scored)."""

    detector: str
    figures: dict[str, float | int]
    error: str | None = None


@dataclass(frozen=True)
class Selection:
    """What ``select_detector`` chose and why: the criterion, every candidate (best first), the model."""

    series: str
    criterion: str
    explanation: str
    holdout: tuple[pd.Timestamp, pd.Timestamp]
    candidates: tuple[Candidate, ...]
    model: registry.ModelVersion
    promotion: registry.Promotion | None

    @property
    def winner(self) -> str:
        return self.model.detector

    def summary(self) -> str:
        lines = [
            f"{self.series}: {self.winner} selected by the {self.criterion} criterion "
            f"(holdout {self.holdout[0]:%Y-%m-%d %H:%M} to {self.holdout[1]:%Y-%m-%d %H:%M} UTC); "
            f"registered {self.model.ref}"
            + (f", live from {self.promotion.effective_from}" if self.promotion else "")
        ]
        for candidate in self.candidates:
            if candidate.error:
                lines.append(f"  {candidate.detector}: failed: {candidate.error}")
            else:
                shown = ", ".join(
                    f"{name} {value:.3f}" if isinstance(value, float) else f"{name} {value}"
                    for name, value in candidate.figures.items()
                )
                lines.append(f"  {candidate.detector}: {shown}")
        return "\n".join(lines)


def select_detector(
    lake: Lake,
    series: str,
    candidates: list[str],
    *,
    train_from: Day | None = None,
    train_to: Day | None = None,
    lookback_days: int = LOOKBACK_DAYS,
    holdout_days: int = 2,
    params: dict[str, dict[str, Any]] | None = None,
    promote: bool = True,
) -> Selection:
    """Pick the best of ``candidates`` for ``series`` on a holdout, retrain it on the range, register it.

    The range is ``training.training_range``'s, as for ``passion train``. ``params`` maps a candidate
    to the parameters it runs with.
    """
    from passion_tasks.features import read_series

    if not candidates:
        raise UsageError("no candidate detectors given")
    start, end = training.training_range(lake, train_from, train_to, lookback_days)
    if not 1 <= holdout_days < (end - start).days + 1:
        raise UsageError(
            f"holdout_days={holdout_days} must be at least 1 and leave training days in {start}..{end}"
        )
    frame = read_series(lake, start, end, [series])
    if frame[series].notna().sum() == 0:
        raise UsageError(f"series {series!r} has no values in {start}..{end}")
    holdout_start = pd.Timestamp(end - dt.timedelta(days=holdout_days - 1), tz="UTC")
    train_rows = int(np.searchsorted(frame.index, holdout_start))
    labels = labels_on(frame.index, label_windows(lake).get(series, []))
    criterion, judged, judged_labels = _holdout(frame, labels, train_rows, holdout_days)
    explanation = _explanation(criterion, len(metrics.label_runs(judged_labels[train_rows:])))
    results = [
        _evaluate_candidate(
            name, (params or {}).get(name, {}), frame, judged, judged_labels, labels, train_rows
        )
        for name in dict.fromkeys(candidates)
    ]
    ranked = tuple(sorted(results, key=_rank))
    best = ranked[0]
    if best.error:
        raise PassionError(
            f"{series}: no candidate could be evaluated: "
            + "; ".join(f"{candidate.detector}: {candidate.error}" for candidate in ranked)
        )
    holdout = (frame.index[train_rows], frame.index[-1])
    record = {
        "criterion": criterion,
        "explanation": explanation,
        "holdout": [stamp.isoformat() for stamp in holdout],
        "candidates": {c.detector: _recorded(c) for c in ranked},
    }
    model = _register(lake, frame, best.detector, (params or {}).get(best.detector, {}), labels, record)
    promotion = None
    if promote:
        promotion = registry.promote(
            lake,
            series,
            model.detector,
            model.version,
            effective_from=end + dt.timedelta(days=1),
            reason=f"select ({criterion}): NAB standard {best.figures['nab_standard']:.1f} on the holdout",
        )
    return Selection(series, criterion, explanation, holdout, ranked, model, promotion)


def _holdout(
    frame: pd.DataFrame, labels: pd.Series, train_rows: int, holdout_days: int
) -> tuple[str, pd.DataFrame, np.ndarray]:
    """The criterion, the frame the candidates are judged on and its labels (see the module docstring)."""
    known = labels.to_numpy().astype(bool)
    if known[train_rows:].any():
        return LABELLED, frame, known
    injected, planted = inject_anomalies(frame, train_rows, holdout_days)
    return INJECTED, injected, planted


def _explanation(criterion: str, segments: int) -> str:
    if criterion == LABELLED:
        return (
            f"NAB standard score on the holdout against the lake's {segments} labelled segment(s) in it, "
            "at each detector's own threshold"
        )
    kinds = ", ".join(
        f"{kind} ({rows} rows)" if size is None else f"{kind} ({size:+g} sigma, {rows} rows)"
        for kind, rows, size in INJECTIONS
    )
    return (
        f"no labels in the holdout: NAB standard score on the holdout after planting {segments} synthetic "
        f"anomalies in it (per day: {kinds}), at each detector's own threshold"
    )


def inject_anomalies(
    frame: pd.DataFrame, train_rows: int, holdout_days: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """The frame with ``INJECTIONS`` planted in each holdout day, and the planted rows as labels.

    Each holdout day is cut into one slot per kind; an anomaly starts at a seeded random row of its
    slot where all its rows and the row before them hold a value (a slot without such a place gets
    none).
    """
    values = frame.iloc[:, 0].to_numpy(copy=True)
    sigma = robust_spread(np.diff(values[:train_rows]))
    rng = np.random.default_rng(INJECTION_SEED)
    labels = np.zeros(len(values), dtype=bool)
    observed = np.concatenate([[0], np.cumsum(~np.isnan(values))])
    for day in np.array_split(np.arange(train_rows, len(values)), holdout_days):
        for slot, (_, rows, size) in zip(np.array_split(day, len(INJECTIONS)), INJECTIONS, strict=True):
            starts = slot[: max(len(slot) - rows + 1, 0)]
            starts = starts[observed[starts + rows] - observed[starts - 1] == rows + 1]
            if len(starts):
                first = int(rng.choice(starts))
                if size is None:
                    values[first : first + rows] = values[first - 1]
                else:
                    values[first : first + rows] += size * sigma
                labels[first : first + rows] = True
    injected = frame.copy()
    injected.iloc[:, 0] = values
    return injected, labels


# -- internals -------------------------------------------------------------------------------------


def _evaluate_candidate(
    name: str,
    params: dict[str, Any],
    frame: pd.DataFrame,
    judged: pd.DataFrame,
    judged_labels: np.ndarray,
    labels: pd.Series,
    train_rows: int,
) -> Candidate:
    """Fit on the training rows, then the candidate's figures on the holdout of ``judged``."""
    train_frame = frame.iloc[:train_rows]
    try:
        detector = make_detector(name, **params)
        began = time.perf_counter()
        detector.fit(train_frame, labels=training_labels(name, labels.iloc[:train_rows]))
        fit_seconds = time.perf_counter() - began
        raw = detector.decision_function(judged).to_numpy()
        clean_raw = detector.decision_function(frame).to_numpy()
    # A candidate that cannot handle the series loses; the others still compete.
    except Exception as error:
        return Candidate(name, {}, f"{type(error).__name__}: {error}")
    flags, clean_flags = raw >= detector.threshold_, clean_raw >= detector.threshold_
    held = slice(train_rows, None)
    file = metrics.windowed_file("holdout", judged.index.to_numpy(), judged_labels, train_rows)
    corpus = NabCorpus({file.name: file}, {"standard": metrics.NAB_PROFILES["standard"]})
    counts = metrics.point_adjusted_counts(judged_labels[held], flags[held])
    segments = metrics.label_runs(judged_labels[held])
    detected = sum(bool(flags[held][first : last + 1].any()) for first, last in segments)
    nab_standard = metrics.nab_profile_scores({file.name: flags.astype(float)}, corpus, FLAG_THRESHOLD)
    figures = {
        "nab_standard": nab_standard["standard"],
        "f1": counts.f1,
        "precision": counts.precision,
        "recall": counts.recall,
        "segments": len(segments),
        "detected_segments": detected,
        "false_alarm_rate": float(clean_flags[held][~judged_labels[held]].mean()),
        "fit_seconds": round(fit_seconds, 3),
    }
    return Candidate(name, figures)


def _recorded(candidate: Candidate) -> dict[str, Any]:
    """A candidate's figures as the manifest keeps them: strict JSON, so NaN (undefined) as None."""
    if candidate.error:
        return {"error": candidate.error}
    return {name: None if np.isnan(value) else value for name, value in candidate.figures.items()}


def _rank(candidate: Candidate) -> tuple[Any, ...]:
    """Sort key: evaluated first, then NAB standard, F1 (NaN as worst) and false-alarm rate."""
    if candidate.error:
        return (1, 0.0, 0.0, 0.0)
    figures = candidate.figures
    return (0, -_or_worst(figures["nab_standard"]), -_or_worst(figures["f1"]), figures["false_alarm_rate"])


def _or_worst(value: float) -> float:
    return -np.inf if np.isnan(value) else value


def _register(
    lake: Lake,
    frame: pd.DataFrame,
    name: str,
    params: dict[str, Any],
    labels: pd.Series,
    selection: dict[str, Any],
) -> registry.ModelVersion:
    """Fit the winner on the whole range and register it, the selection's figures in its metrics."""
    return training.train_model(
        lake, frame, name, params=params, labels=labels, metrics={"selection": selection}
    )
