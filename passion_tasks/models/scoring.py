"""Scoring a day: each series with the model live that day, into the lake's ``scores`` rows, and from
scores to ``events``. One series' bad model or unwritable name fails that series alone."""

from __future__ import annotations

import datetime as dt
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa

from passion_tasks.detectors import Detector
from passion_tasks.errors import ExitCode, NoInputError, PassionError
from passion_tasks.features.series import grid_step
from passion_tasks.lake import Lake, datasets, schemas

SCORE_COLUMNS = schemas.SCORES.names

Instant = pd.Timestamp | dt.datetime | dt.date | str


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
    result = detector.detect(frame)
    scores = pd.DataFrame(
        {
            "ts": frame.index.tz_convert("UTC"),
            "series": series,
            "detector": detector.name,
            "model_version": model_version,
            "value": frame[detector.feature_names_in_[0]].astype("float64").to_numpy(),
            "expected": result["expected"].to_numpy(),
            "score": result["score"].to_numpy(),
            "threshold": detector.threshold_,
            "is_anomaly": result["is_anomaly"].to_numpy(),
        },
        columns=SCORE_COLUMNS,
    )
    if start is not None:
        scores = scores[scores["ts"] >= as_utc(start)]
    return scores.reset_index(drop=True)


def group_events(scores: pd.DataFrame, max_gap: str = "5min") -> pd.DataFrame:
    """Incidents in the columns of ``schemas.EVENTS``: runs of anomalous rows of one series and detector.

    Two anomalous rows at most ``max_gap`` apart belong to the same event. ``minutes`` is the time
    the event spans, its last row's grid step included. Ordered by start, series, detector.
    """
    gap = pd.Timedelta(max_gap)
    events = []
    for (series, detector), rows in scores.groupby(["series", "detector"], sort=True):
        rows = rows.sort_values("ts", kind="stable")
        step = grid_step(rows["ts"])
        anomalous = rows[rows["is_anomaly"]]
        event_number = (anomalous["ts"].diff() > gap).cumsum()
        for _, event in anomalous.groupby(event_number):
            peak = event.iloc[event["score"].to_numpy().argmax()]
            start, end = event["ts"].iloc[0], event["ts"].iloc[-1]
            events.append(
                {
                    "start": start,
                    "end": end,
                    "series": series,
                    "detector": detector,
                    "peak_score": float(peak["score"]),
                    "peak_ts": peak["ts"],
                    "minutes": math.ceil((end - start + step) / pd.Timedelta(minutes=1)),
                }
            )
    table = pa.Table.from_pylist(events, schema=schemas.EVENTS).to_pandas()
    return table.sort_values(["start", "series", "detector"], kind="stable").reset_index(drop=True)


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


def score_each(lake: Lake, day: dt.date, frame: pd.DataFrame, names: list[str]) -> ScoreSummary:
    """Score ``day`` for each series named, with the model live that day; ``frame`` holds the day and
    the history before it. Raises (``raise_for_failures``) only when no series could be scored.

    On a remote lake the series are scored on threads: their time is round trips.
    """
    summary = ScoreSummary(day=day)
    outcomes = lake.map_io(lambda name: _outcome(lake, name, day, frame), names)
    for name, outcome in zip(names, outcomes, strict=True):
        if isinstance(outcome, str):
            summary.skipped[name] = outcome
        elif isinstance(outcome, PassionError | OSError):
            summary.failed[name] = outcome
        else:
            summary.series_scored += 1
            summary.anomalous_minutes += outcome[0]
            summary.events += outcome[1]
    if not summary.series_scored:
        summary.raise_for_failures()
    return summary


def score_series(lake: Lake, name: str, day: dt.date, frame: pd.DataFrame) -> tuple[int, int] | str:
    """Score one series' day and replace its two leaves: (anomalous minutes, events), or why it had no
    model. Each series is its own leaf (``scores/dt=D/series=S``), so it can be re-scored alone."""
    from passion_tasks.models import training

    with tempfile.TemporaryDirectory(prefix="passion-score-") as tmp:
        loaded = training.live_model(lake, name, day, Path(tmp))
    if loaded is None:
        return f"no model was live on {day}; run `passion train --series '{name}' --promote`"
    model, version = loaded
    scores = score_frame(
        model, frame[list(version.features)], series=name, model_version=version.ref, start=as_utc(day)
    )
    events = group_events(scores)
    key = {datasets.SERIES_KEY: name}
    lake.write_partition(datasets.SCORES, day, _table(scores, schemas.SCORES), schema=schemas.SCORES, key=key)
    lake.write_partition(datasets.EVENTS, day, _table(events, schemas.EVENTS), schema=schemas.EVENTS, key=key)
    return int(scores["is_anomaly"].sum()), len(events)


def _outcome(
    lake: Lake, name: str, day: dt.date, frame: pd.DataFrame
) -> tuple[int, int] | str | PassionError | OSError:
    try:
        return score_series(lake, name, day, frame)
    except (PassionError, OSError) as error:
        return error


def _table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
