"""Incident-level evaluation: per day, which labelled incidents the report found and the alerts sent,
how late, whether the cause named the labelled slice, and what was reported or sent for nothing.

Per-point metrics do not measure what an on-call engineer lives with: one alert per real event, with
its cause, and no alert for nothing. The labels are the generator's injected anomalies
(``labels/anomalies.json``); a labelled incident is *found* by a report incident of its family that
overlaps it (or starts within ``GRACE`` of its end: detectors judge windows of up to 15 minutes),
and its delay is that incident's start minus the label's; its overrun, how long after the label's end
the last incident that found it still ran. Pure functions: ``bench/incidents.py`` runs the pipeline
and feeds them.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

#: How long after a labelled incident's last minute a report incident still counts as finding it.
GRACE = pd.Timedelta(minutes=15)


@dataclass(frozen=True)
class Label:
    """One injected incident: its family (``cdn`` or ``metrics``), where and when."""

    id: str
    kind: str
    family: str
    dim: str
    value: str
    start: pd.Timestamp
    stop: pd.Timestamp
    channel: str = ""

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> Label:
        start = pd.Timestamp(entry["start"], tz="UTC")
        return cls(
            id=entry["id"],
            kind=entry["kind"],
            family=entry["source"],
            dim=entry["dim"],
            value=entry["value"],
            start=start,
            stop=start + pd.Timedelta(minutes=int(entry["minutes"])),
            channel=entry.get("channel", ""),
        )

    def to_json(self) -> dict[str, Any]:
        """The entry ``from_json`` reads back."""
        return {
            "id": self.id,
            "kind": self.kind,
            "source": self.family,
            "dim": self.dim,
            "value": self.value,
            "start": self.start.tz_convert(None).isoformat(),
            "minutes": int((self.stop - self.start) / pd.Timedelta(minutes=1)),
            "channel": self.channel,
        }


@dataclass(frozen=True)
class Found:
    """A report incident or an alert as the evaluation sees it."""

    start: pd.Timestamp
    stop: pd.Timestamp
    family: str
    cause: Mapping[str, str]
    lead: str

    def finds(self, label: Label) -> bool:
        return self.family == label.family and self.start < label.stop + GRACE and label.start < self.stop


def cause_named(label: Label, found: Found) -> bool:
    """Whether ``found``'s cause names the labelled slice: its edge, live channel (a ``/live/<ch>`` path),
    path prefix or device; nothing narrower than the whole CDN for an outage; the service for a server
    metric."""

    def names(key: str, value: str) -> bool:
        return value in [part.strip() for part in found.cause.get(key, "").split(",")]

    if label.family == "metrics":
        return names("service", label.value) or found.lead == label.value
    if label.dim == "service":
        return not {"edge", "path", "device"} & set(found.cause)
    if label.dim == "edge":
        return names("edge", label.value) and (not label.channel or names("path", f"/live/{label.channel}"))
    if label.dim == "channel":
        return names("path", f"/live/{label.value}")
    if label.dim == "path":
        return names("path", label.value)
    return names("device", label.value)


@dataclass
class DayOutcome:
    """One scored day: its labels, what the report and the alerts made of them, and what was for nothing."""

    day: dt.date
    labels: list[Label]
    delays: dict[str, float] = field(default_factory=dict)  # label id -> minutes, for the found ones
    overruns: dict[str, float] = field(default_factory=dict)  # label id -> minutes, for the found ones
    alerted: set[str] = field(default_factory=set)
    causes_right: set[str] = field(default_factory=set)
    false_incidents: int = 0
    false_alerts: int = 0
    #: Routine entries of the report (``Cause.routine``: crawlers, downloads, habits), listed apart from
    #: its incidents.
    routine: int = 0


def judge_day(
    day: dt.date,
    labels: Sequence[Label],
    incidents: Iterable[Found],
    alerts: Iterable[Found],
    routine: Sequence[Found] = (),
) -> DayOutcome:
    """Match the day's report incidents and alerts with its labels; ``routine`` are the report's
    routine entries, which find no label: a labelled incident filed as routine is missed."""
    outcome = DayOutcome(day, list(labels), routine=len(routine))
    for found in incidents:
        matched = [label for label in labels if found.finds(label)]
        if not matched:
            outcome.false_incidents += 1
        for label in matched:
            delay = (found.start - label.start) / pd.Timedelta(minutes=1)
            if label.id not in outcome.delays or delay < outcome.delays[label.id]:
                outcome.delays[label.id] = delay
            overrun = (found.stop - label.stop) / pd.Timedelta(minutes=1)
            outcome.overruns[label.id] = max(overrun, outcome.overruns.get(label.id, overrun))
            if cause_named(label, found):
                outcome.causes_right.add(label.id)
    for found in alerts:
        matched = [label for label in labels if found.finds(label)]
        outcome.alerted |= {label.id for label in matched}
        outcome.false_alerts += not matched
    return outcome


@dataclass(frozen=True)
class Summary:
    """The targets' figures over many days."""

    labelled: int
    found: int
    alerted: int
    causes_right: int
    median_delay: float
    median_overrun: float
    max_false_alerts_per_day: int
    max_false_incidents_per_day: int
    mean_false_incidents_per_day: float
    mean_routine_per_day: float
    quiet_days: int
    quiet_days_alerted: int

    def row(self) -> dict[str, Any]:
        return {
            "labelled": self.labelled,
            "found": self.found,
            "alerted": self.alerted,
            "cause right": self.causes_right,
            "median delay (min)": self.median_delay,
            "median overrun (min)": self.median_overrun,
            "false alerts/day (max)": self.max_false_alerts_per_day,
            "false incidents/day (max)": self.max_false_incidents_per_day,
            "false incidents/day (mean)": round(self.mean_false_incidents_per_day, 2),
            "routine/day (mean)": round(self.mean_routine_per_day, 2),
            "quiet days": self.quiet_days,
            "quiet days alerted": self.quiet_days_alerted,
        }


def summarise(days: Sequence[DayOutcome]) -> Summary:
    delays = [delay for day in days for delay in day.delays.values()]
    overruns = [overrun for day in days for overrun in day.overruns.values()]
    quiet = [day for day in days if not day.labels]
    return Summary(
        labelled=sum(len(day.labels) for day in days),
        found=sum(len(day.delays) for day in days),
        alerted=sum(len(day.alerted) for day in days),
        causes_right=sum(len(day.causes_right) for day in days),
        median_delay=statistics.median(delays) if delays else float("nan"),
        median_overrun=statistics.median(overruns) if overruns else float("nan"),
        max_false_alerts_per_day=max((day.false_alerts for day in days), default=0),
        max_false_incidents_per_day=max((day.false_incidents for day in days), default=0),
        mean_false_incidents_per_day=statistics.fmean([day.false_incidents for day in days]) if days else 0.0,
        mean_routine_per_day=statistics.fmean([day.routine for day in days]) if days else 0.0,
        quiet_days=len(quiet),
        quiet_days_alerted=sum(day.false_alerts > 0 for day in quiet),
    )
