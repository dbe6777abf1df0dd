"""Scoring a day: each series with the model live that day, into the lake's ``scores`` rows, and from
scores to ``events``, a batch of series at a time. One series' bad model fails that series alone."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import posixpath
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from passion_tasks.detectors import Detector, detector_class, detector_names, uses_keras
from passion_tasks.detectors.base import DetectorError, detect_batch
from passion_tasks.errors import ExitCode, NoInputError, PassionError
from passion_tasks.lake import MANIFEST, Lake, batches, datasets, schemas
from passion_tasks.models.registry import ModelVersion

SCORE_COLUMNS = schemas.SCORES.names

#: An event is enough to make an incident (``incidents.model``) at this ratio of its peak score to
#: its threshold or more ...
MIN_RATIO = 1.0
#: ... and at least the evidence of this many minutes at it (fewer, further above it): a minute that
#: grazes its threshold is the false-alarm budget at work (a few a day among hundreds of series), not
#: news. Weaker events belong to the incident they overlap, or to none.
MIN_MINUTES = 3
#: Anomalous rows of one series at most this far apart are one event (``group_events``): a minute or
#: a few back to normal within an incident are part of it.
MAX_GAP = "5min"

#: A model loaded to score a series, and the registry's version of it.
Loaded = tuple[Detector, ModelVersion]

Instant = pd.Timestamp | dt.datetime | dt.date | str

#: ``Detector.detect``'s columns, in the order ``detect_batch`` returns them, and their types.
DETECTED = (("expected", "float64"), ("score", "float64"), ("is_anomaly", bool))


def as_utc(instant: Instant) -> pd.Timestamp:
    """A UTC timestamp; naive values and dates are taken as UTC (a date means its midnight)."""
    stamp = pd.Timestamp(instant)
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


def score_frame(
    detector: Detector,
    frame: pd.DataFrame,
    *,
    series: str,
    model_version: str,
    start: Instant | None = None,
) -> pd.DataFrame:
    """Scores of ``frame``'s rows from ``start`` on, in ``SCORE_COLUMNS``.

    Rows before ``start`` are scored too, as context for windowed detectors, and then dropped:
    pass the tail of the previous day with the day to score so its first minutes have history.
    """
    columns = score_columns(detector, frame, series=series, model_version=model_version, start=start)
    return scores_table([columns]).to_pandas()


def score_columns(
    detector: Detector,
    frame: pd.DataFrame,
    *,
    series: str,
    model_version: str,
    start: Instant | None = None,
) -> dict[str, Any]:
    """``score_frame``'s columns, unassembled: an array per column of ``SCORE_COLUMNS``, but those that
    hold one value for the series (its name, detector, model, threshold), which hold that value."""
    result = detector.detect(frame)
    kept = slice(None) if start is None else slice(frame.index.searchsorted(as_utc(start)), None)
    return _columns(
        series,
        detector,
        model_version,
        _stamps(frame.index[kept]),
        frame[detector.feature_names_in_[0]].to_numpy("float64")[kept],
        tuple(result[column].to_numpy(kind)[kept] for column, kind in DETECTED),
    )


def _columns(
    series: str,
    model: Detector,
    model_version: str,
    ts: np.ndarray,
    value: np.ndarray,
    result: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> dict[str, Any]:
    """``score_columns`` of a series scored at ``ts`` (``_stamps``): its values and ``detect``'s
    expected values, scores and flags."""
    expected, score, is_anomaly = result
    return {
        "ts": ts,
        "series": series,
        "detector": model.name,
        "model_version": model_version,
        "value": value,
        "expected": expected,
        "score": score,
        "threshold": float(model.threshold_),
        "is_anomaly": is_anomaly,
    }


def _stamps(index: pd.DatetimeIndex) -> np.ndarray:
    """The ``ts`` column of scores on ``index``: naive UTC milliseconds."""
    return index.tz_convert("UTC").tz_localize(None).to_numpy("datetime64[ms]")


def scores_table(parts: list[dict[str, Any]]) -> pa.Table:
    """One table in ``schemas.SCORES`` of the ``score_columns`` of a batch of series."""
    rows = [len(part["score"]) for part in parts]
    arrays = []
    for column in schemas.SCORES:
        values = [part[column.name] for part in parts]
        if np.ndim(values[0]) == 0:
            # One value per series: a dictionary of the batch's values, each row an index into it.
            array = pa.DictionaryArray.from_arrays(
                pa.array(np.repeat(np.arange(len(parts), dtype=np.int32), rows)), pa.array(values)
            )
            arrays.append(array.cast(column.type))
        else:
            arrays.append(pa.array(np.concatenate(values) if values else [], type=column.type))
    return pa.Table.from_arrays(arrays, schema=schemas.SCORES)


def scoring_rows(
    model: Detector, frame: pd.DataFrame, start: Instant, columns: list[str] | None = None
) -> pd.DataFrame:
    """The rows of ``frame`` a model scores the rows from ``start`` on with: those, and the history
    before them that can change their scores (``Detector.context``); of the ``columns`` named, or all."""
    context = model.context()
    first = 0 if context is None else frame.index.searchsorted(as_utc(start) - context)
    if columns is None:
        return frame.iloc[first:]
    # Taken from the frame's array: a frame of thousands of series is sliced, not indexed by label.
    positions = frame.columns.get_indexer(columns)
    if (positions < 0).any():
        raise KeyError(
            f"no feature {[c for c, p in zip(columns, positions, strict=True) if p < 0]} in the frame"
        )
    named = pd.Index(columns, dtype=str, name=frame.columns.name)
    return pd.DataFrame(frame.to_numpy()[first:, positions], index=frame.index[first:], columns=named)


def group_events(scores: pd.DataFrame, max_gap: str = MAX_GAP) -> pd.DataFrame:
    """Incidents in the columns of ``schemas.EVENTS``: runs of anomalous rows of one series and detector.

    Two anomalous rows at most ``max_gap`` apart belong to the same event; so do two further apart
    whose detector's score reads both (``Detector.event_window_rows``) when no row between them was
    worse than expected (each scored 0): errors that come one by one, each in the window of the next.
    A row between them worse than expected by chance says the series is back to its noise, and a
    window still holding an incident after its end is no reason to stretch it. ``minutes`` is the time
    the event spans, its last row's grid step included (the series' smallest interval between distinct
    timestamps, as ``features.series.grid_step``). Ordered by start, series, detector. One pass over
    every series of a batch at once.
    """
    rows = scores.sort_values(["series", "detector", "ts"], kind="stable", ignore_index=True)
    group = rows.groupby(["series", "detector"], sort=False).ngroup().to_numpy()
    ts = rows["ts"].to_numpy("datetime64[ns]").view("int64")
    steps = np.diff(ts)
    distinct = (group[1:] == group[:-1]) & (steps > 0)
    step = pd.Series(steps[distinct]).groupby(group[1:][distinct]).min()
    step = step.reindex(range(group.max() + 1 if len(group) else 0), fill_value=pd.Timedelta(minutes=1).value)
    window = rows.groupby(group, sort=True)["detector"].first().map(_event_window_rows)
    gap = np.maximum(pd.Timedelta(max_gap).value, (window.to_numpy() - 1) * step.to_numpy())
    flags = rows["is_anomaly"].to_numpy(bool)
    anomalous = np.flatnonzero(flags)
    of, at = group[anomalous], ts[anomalous]
    # Rows worse than expected but not anomalous, counted up to each row: none between two anomalous
    # rows lets them join across their detector's window.
    noisy = np.cumsum((rows["score"].to_numpy(float) > 0) & ~flags)[anomalous]
    apart = np.diff(at)
    starts = np.ones(len(anomalous), dtype=bool)
    starts[1:] = (of[1:] != of[:-1]) | (
        (apart > pd.Timedelta(max_gap).value) & ((apart > gap[of[1:]]) | (np.diff(noisy) > 0))
    )
    event = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    last = np.append(first[1:], len(anomalous))[: len(first)] - 1
    # The first row of each event's highest score: a stable sort by event, then by score descending.
    peak = np.lexsort((-rows["score"].to_numpy(float)[anomalous], event))[first]
    spans = at[last] - at[first] + step.to_numpy()[of[first]]

    def at_rows(column: str, chosen: np.ndarray) -> pd.Series:
        return rows[column].take(anomalous[chosen]).reset_index(drop=True)

    events = pd.DataFrame(
        {
            "start": at_rows("ts", first),
            "end": at_rows("ts", last),
            "series": at_rows("series", first),
            "detector": at_rows("detector", first),
            "peak_score": at_rows("score", peak),
            "peak_ts": at_rows("ts", peak),
            "minutes": np.ceil(spans / pd.Timedelta(minutes=1).value).astype("int32"),
        }
    )
    table = pa.Table.from_pandas(events, schema=schemas.EVENTS, preserve_index=False).to_pandas()
    return table.sort_values(["start", "series", "detector"], kind="stable").reset_index(drop=True)


def evidence(minutes: float, ratio: float) -> float:
    """How much an anomaly weighs: its minutes times the log of its score over the threshold.

    The log because a score 100 times its threshold is a sure anomaly, not a 50 times worse one than a
    score twice its threshold, whereas 30 minutes of it are 30 times one minute. The report ranks its
    incidents by it, and the alert rules trade a minimum duration for a higher ratio with it.
    """
    return minutes * math.log2(1 + ratio)


def enough(
    ratio: float, minutes: float, min_ratio: float = MIN_RATIO, min_minutes: float = MIN_MINUTES
) -> bool:
    """Whether ``minutes`` at ``ratio`` reach ``min_ratio`` and weigh at least ``min_minutes`` at it."""
    return ratio >= min_ratio and evidence(minutes, ratio) >= evidence(min_minutes, min_ratio)


def enough_alone(events: pd.DataFrame) -> np.ndarray:
    """Whether each of ``events`` (with ``severity``) is ``enough`` alone; one without a recorded
    threshold counts as just over it."""
    return np.array(list(map(enough, events["severity"].fillna(1.0), events["minutes"])), dtype=bool)


def _event_window_rows(detector: str) -> int:
    """``Detector.event_window_rows`` of a detector named in the scores; 1 for one that names none,
    or that this version does not know. A Keras network's class is not looked up: it would load
    TensorFlow."""
    if detector not in detector_names() or uses_keras(detector):
        return 1
    return detector_class(detector).event_window_rows or 1


class SeriesNotScored(PassionError):
    """Series of a day that could not be scored, with the exit code their errors call for."""

    def __init__(self, message: str, exit_code: ExitCode):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class ScoreSummary:
    """What scoring a day did: figures of the scored series, and each series it did not score and why.

    ``skipped`` series had no model live on the day; ``failed`` ones had one that could not be used
    (refused by its integrity checks, unreadable, unwritable), each with its error.
    """

    day: dt.date
    series_scored: int = 0
    anomalous_minutes: int = 0
    events: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, PassionError | OSError] = field(default_factory=dict)

    @property
    def exit_code(self) -> ExitCode:
        """MODEL_REFUSED when a model failed its integrity checks, FAILED for other failures, else OK."""
        codes = [getattr(error, "exit_code", ExitCode.FAILED) for error in self.failed.values()]
        if ExitCode.MODEL_REFUSED in codes:
            return ExitCode.MODEL_REFUSED
        return ExitCode.FAILED if codes else ExitCode.OK

    def summary(self) -> str:
        text = (
            f"{self.day}: scored {self.series_scored} series, {self.anomalous_minutes} anomalous minutes "
            f"in {self.events} events"
        )
        if self.skipped:
            text += f"; skipped {len(self.skipped)} series (first: {next(iter(self.skipped.items()))})"
        for name, error in self.failed.items():
            text += f"\n  failed {name}: {error}"
        return text

    def raise_for_failures(self) -> None:
        """Raise when a series was skipped or failed, after the others were written.

        An I/O error may pass on a retry, so it is raised as one (``OSError``); anything else is a
        ``PassionError`` with the summary's exit code, which a retry cannot fix.
        """
        problems = {**self.skipped, **{name: str(error) for name, error in self.failed.items()}}
        if not problems:
            return
        total = self.series_scored + len(problems)
        message = f"{self.day}: {len(problems)} of {total} series not scored: {problems!r}"
        if any(isinstance(error, OSError) for error in self.failed.values()):
            raise OSError(message)
        if not self.failed:
            raise NoInputError(message)
        raise SeriesNotScored(message, self.exit_code)


def score_each(lake: Lake, day: dt.date, names: list[str], history_days: int) -> ScoreSummary:
    """Score ``day`` for each series named, with the model live that day, reading as much history as
    the models need (``history_needed``, at most ``history_days``). Raises (``raise_for_failures``)
    only when no series could be scored.

    The series scored are written as one batch (``write_batch``).
    """
    from passion_tasks.features import read_series

    summary = ScoreSummary(day=day)
    loaded = load_models(lake, day, names, summary)
    features = sorted({feature for _, version in loaded.values() for feature in version.features})
    days = history_needed([model for model, _ in loaded.values()], history_days)
    frame = read_series(lake, day - dt.timedelta(days=days), day, features)
    scored = score_loaded(loaded, frame, as_utc(day), summary)
    scores = scores_table(list(scored.values()))
    events = write_batch(lake, day, scores, list(scored))
    summary.series_scored = len(scored)
    summary.anomalous_minutes = int(pc.sum(scores["is_anomaly"]).as_py() or 0)
    summary.events = len(events)
    return summary


def load_models(lake: Lake, day: dt.date, names: list[str], summary: ScoreSummary) -> dict[str, Loaded]:
    """The model live on ``day`` of each series named that has one that loads; the others go to
    ``summary`` (skipped: none live; failed: its error). Raises (``raise_for_failures``) when no
    model loads. On a remote lake the models are loaded on threads: their time is round trips."""
    loaded: dict[str, Loaded] = {}
    outcomes = lake.map_io(lambda name: _loaded(lake, name, day), names)
    for name, outcome in zip(names, outcomes, strict=True):
        if isinstance(outcome, str):
            summary.skipped[name] = outcome
        elif isinstance(outcome, PassionError | OSError):
            summary.failed[name] = outcome
        else:
            loaded[name] = outcome
    if not loaded:
        summary.raise_for_failures()
    return loaded


def score_loaded(
    loaded: dict[str, Loaded],
    frame: pd.DataFrame,
    start: pd.Timestamp,
    summary: ScoreSummary,
) -> dict[str, dict[str, Any]]:
    """The ``score_columns`` of each loaded model's rows of ``frame`` from ``start`` on (with the
    history before it its model needs), in the order of ``loaded``; a model that fails goes to
    ``summary``, and when none is left ``raise_for_failures`` raises.

    Models that can be scored together (``passes``) are, in one pass over their series; a pass that
    fails is made again model by model, so that one bad model fails its own series alone."""
    scored: dict[str, dict[str, Any]] = {}
    for names in passes(loaded):
        if len(names) > 1:
            with contextlib.suppress(PassionError):
                scored |= score_pass({name: loaded[name] for name in names}, frame, start)
        for name in names:
            if name in scored:
                continue
            model, version = loaded[name]
            rows = scoring_rows(model, frame, start, list(version.features))
            try:
                scored[name] = score_columns(model, rows, series=name, model_version=version.ref, start=start)
            except PassionError as error:
                summary.failed[name] = error
    if not scored:
        summary.raise_for_failures()
    return {name: scored[name] for name in loaded if name in scored}


def passes(loaded: dict[str, Loaded]) -> list[list[str]]:
    """The series of ``loaded`` grouped into those whose models can be scored in one pass
    (``detectors.base.detect_batch``: one class, one ``batch_key``, one context, as many features); a
    model with no key is a pass of its own."""
    groups: dict[Any, list[str]] = {}
    for name, (model, _) in loaded.items():
        key = model.batch_key()
        shared = (type(model), key, model.context(), model.n_features_in_)
        groups.setdefault(name if key is None else shared, []).append(name)
    return list(groups.values())


def score_pass(
    loaded: dict[str, Loaded], frame: pd.DataFrame, start: pd.Timestamp
) -> dict[str, dict[str, Any]]:
    """``score_columns`` of each model of a pass (``passes``), computed at once on the series × features
    × steps matrix of their features."""
    models = [model for model, _ in loaded.values()]
    context = models[0].context()
    first = 0 if context is None else frame.index.searchsorted(start - context)
    features = frame.columns.get_indexer([f for model in models for f in model.feature_names_in_])
    if (features < 0).any():
        raise DetectorError("a feature is missing from the frame")
    # The frame's array is column-major: its transpose holds each series' steps together.
    values = frame.to_numpy().T[features, first:].reshape(len(models), -1, len(frame) - first)
    index = frame.index[first:]
    kept = index.searchsorted(start)
    expected, scores, flags = detect_batch(models, values, index, kept)
    ts = _stamps(index[kept:])
    return {
        name: _columns(
            name,
            model,
            version.ref,
            ts,
            values[row, 0, kept:],
            (expected[row, kept:], scores[row, kept:], flags[row, kept:]),
        )
        for row, (name, (model, version)) in enumerate(loaded.items())
    }


def history_needed(models: list[Detector], history_days: int) -> int:
    """Whole days before a scored day that hold every model's ``context``; ``history_days`` when a
    model needs all the history it can get, or more than that."""
    contexts = [model.context() for model in models]
    if any(context is None for context in contexts):
        return history_days
    return min(history_days, max(math.ceil(context / pd.Timedelta(days=1)) for context in contexts))


def events_of(scores: pa.Table) -> pd.DataFrame:
    """``group_events`` of a table of scores, reading only the series with an anomalous row (their
    other rows give each one's grid step)."""
    flagged = pc.unique(scores.filter(scores["is_anomaly"])["series"])
    return group_events(scores.filter(pc.is_in(scores["series"], flagged)).to_pandas())


def write_batch(lake: Lake, day: dt.date, scores: pa.Table, names: list[str]) -> pd.DataFrame:
    """Write the ``scores`` of the series ``names`` and their events (``group_events``), which it
    returns: in each dataset one file, whose rows replace the series' earlier rows of the day
    (``lake.batches``), so a series or a batch can be re-scored alone."""
    events = events_of(scores)
    for dataset, schema, table in (
        (datasets.SCORES, schemas.SCORES, scores),
        (datasets.EVENTS, schemas.EVENTS, _table(events, schemas.EVENTS)),
    ):
        batches.replace_members(lake, dataset, day, table, column="series", members=names, schema=schema)
        _retire_series_leaves(lake, dataset, day, set(names))
    return events


def _retire_series_leaves(lake: Lake, dataset: str, day: dt.date, names: set[str]) -> None:
    """Drop the per-series leaves (``<dataset>/dt=D/series=S/``) that Passion wrote before batches, for
    the series a batch has just replaced: their rows would be read twice."""
    for path in lake.list_files(lake.leaf(dataset, day)):
        folder, file = posixpath.split(path)
        name, _, value = posixpath.basename(folder).partition("=")
        if file == MANIFEST and name == datasets.SERIES_KEY and unquote(value) in names:
            lake.delete(path)


def _loaded(lake: Lake, name: str, day: dt.date) -> Loaded | str | PassionError | OSError:
    """The series' live model, why it has none, or the error that kept it from loading."""
    from passion_tasks.models import training

    try:
        loaded = training.live_model(lake, name, day)
    except (PassionError, OSError) as error:
        return error
    if loaded is None:
        return f"no model was live on {day}; run `passion train --series '{name}' --promote`"
    return loaded


def _table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
