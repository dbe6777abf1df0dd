"""Alert rules: which of a day's incidents become alerts, at which severity, sent where.

Pure functions of the day's incidents (``incidents.day``: the report's, with their causes), scores
(``schemas.SCORES``) and a :class:`Rules` object; nothing here reads the lake or sends anything.

1. Each event of an incident gets its ``ratio``: its peak score over its model's threshold at the peak.
2. Events below ``min_ratio``, or with less evidence than ``min_minutes`` at ``min_ratio``, and those of
   snoozed series, do not alert; an incident alerts when one of its events does, and then as the
   report has it, whole.
3. An incident's severity is the highest level whose minimums it meets, the same way, over the minutes
   it was anomalous (``Incident.anomalous_minutes``): a routine one's the first, and where few clients
   made part of it, that of the service's part (``Cause.news``).
4. An incident is held back when each of its series already alerted less than ``cooldown`` before it.

Evidence (``models.scoring.evidence``) is minutes times ``log2(1 + ratio)``: a minimum duration is
the duration needed at the minimum ratio, and a stronger anomaly needs fewer minutes. A two-minute
spike at 16 times its threshold is no noise, whereas three minutes just over it may be.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from passion_tasks.errors import UsageError
from passion_tasks.incidents.day import Cause, ExplainedIncident
from passion_tasks.lake import datasets
from passion_tasks.models.scoring import MAX_GAP, MIN_MINUTES, MIN_RATIO, enough

ANOMALY = "anomaly"
NO_DATA = "no_data"
TIME_FORMAT = "%Y-%m-%d %H:%M UTC"


@dataclass(frozen=True)
class SeverityLevel:
    """A severity an incident reaches when its peak ratio reaches ``min_ratio`` and its evidence that of
    ``min_minutes`` at ``min_ratio``."""

    name: str
    min_ratio: float = 0.0
    min_minutes: int = 0

    def reached(self, ratio: float, minutes: int) -> bool:
        return enough(ratio, minutes, self.min_ratio, self.min_minutes)


DEFAULT_LEVELS = (
    SeverityLevel("info"),
    SeverityLevel("warning", min_ratio=1.5, min_minutes=3),
    SeverityLevel("critical", min_ratio=3.0, min_minutes=15),
)


@dataclass(frozen=True)
class Rules:
    """What makes an alert.

    ``levels`` go from the mildest to the most severe; the first one is the floor every incident has.
    ``min_ratio`` and ``min_minutes`` apply on top of what makes an incident (``incidents.model``):
    below its minimums, nothing is an incident to alert on.
    ``expected_datasets`` must have rows on the day, or the day itself is a ``no_data`` alert.
    """

    min_ratio: float = MIN_RATIO
    min_minutes: int = MIN_MINUTES
    cooldown: dt.timedelta = dt.timedelta(hours=1)
    levels: tuple[SeverityLevel, ...] = DEFAULT_LEVELS
    no_data_severity: str = "critical"
    expected_datasets: tuple[str, ...] = (datasets.CDN_LOGS, datasets.SCORES)

    def __post_init__(self) -> None:
        if not self.levels:
            raise UsageError("alert rules need at least one severity level")
        names = [level.name for level in self.levels]
        if len(set(names)) != len(names):
            raise UsageError(f"severity levels must have distinct names, got {names}")
        for milder, harsher in zip(self.levels, self.levels[1:], strict=False):
            if harsher.min_ratio < milder.min_ratio or harsher.min_minutes < milder.min_minutes:
                raise UsageError(
                    f"severity level {harsher.name!r} must not need less than {milder.name!r} before it"
                )
        self.rank(self.no_data_severity)

    def rank(self, severity: str) -> int:
        """Position of ``severity`` among the levels: higher is more severe."""
        for position, level in enumerate(self.levels):
            if level.name == severity:
                return position
        raise UsageError(f"unknown severity {severity!r}: use one of {[level.name for level in self.levels]}")


@dataclass(frozen=True)
class Snooze:
    """Silence the series matching the glob ``series`` for anomalies starting before ``until``."""

    series: str
    until: pd.Timestamp
    reason: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Snooze:
        """From ``{"series": glob, "until": ISO timestamp, "reason": ...}``; naive timestamps are UTC."""
        try:
            until = pd.Timestamp(data["until"])
            return cls(
                series=str(data["series"]),
                until=until.tz_localize("UTC") if until.tz is None else until.tz_convert("UTC"),
                reason=str(data.get("reason", "")),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise UsageError(
                f"a snooze needs 'series' and an ISO 'until', got {dict(data)!r}: {error}"
            ) from None

    def covers(self, series: str, at: pd.Timestamp) -> bool:
        return at < self.until and fnmatch.fnmatchcase(series, self.series)


@dataclass(frozen=True)
class Route:
    """Alerts of at least ``min_severity`` about a series matching one of the globs in ``series``
    (any series when empty) go to ``channels``. A ``no_data`` alert has no series: only routes
    without series patterns take it."""

    channels: tuple[str, ...]
    min_severity: str = "warning"
    series: tuple[str, ...] = ()
    name: str = "default"


@dataclass(frozen=True)
class Anomaly:
    """One event of ``schemas.EVENTS`` with the threshold at its peak and ``ratio`` = peak / threshold.

    A missing or non-positive threshold gives no scale: the ratio is then 1, just anomalous.
    """

    series: str
    detector: str
    start: pd.Timestamp
    end: pd.Timestamp
    minutes: int
    peak_score: float
    peak_ts: pd.Timestamp
    threshold: float | None
    ratio: float
    #: The times of its anomalous rows (``anomalies``); empty where the scores were not read.
    flagged: tuple[pd.Timestamp, ...] = ()

    def summary(self) -> dict[str, Any]:
        return {
            "series": self.series,
            "detector": self.detector,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "minutes": self.minutes,
            "peak_score": self.peak_score,
            "peak_ts": self.peak_ts.isoformat(),
            "threshold": self.threshold,
            "ratio": round(self.ratio, 3),
        }


@dataclass(frozen=True)
class Incident:
    """The anomalies of one of the day's incidents (``incidents.model``), and what drove it."""

    anomalies: tuple[Anomaly, ...]
    cause: Cause | None = None

    @property
    def start(self) -> pd.Timestamp:
        return min(anomaly.start for anomaly in self.anomalies)

    @property
    def end(self) -> pd.Timestamp:
        """The last anomalous minute."""
        return max(anomaly.end for anomaly in self.anomalies)

    @property
    def minutes(self) -> int:
        """The span from the first anomalous minute to the end of the last one."""
        until = max(anomaly.start + pd.Timedelta(minutes=anomaly.minutes) for anomaly in self.anomalies)
        return round((until - self.start) / pd.Timedelta(minutes=1))

    @property
    def anomalous_minutes(self) -> int:
        """The span's minutes less the stretches longer than an event's gap (``scoring.MAX_GAP``) in
        which none of its anomalies had an anomalous row: a detector whose window still reads an
        earlier burst joins the next one to it across minutes back to normal
        (``Detector.event_window_rows``), and an origin's two three-minute hiccups ten minutes apart
        were anomalous for six minutes, not sixteen. The span where an anomaly's rows are unknown."""
        if not all(anomaly.flagged for anomaly in self.anomalies):
            return self.minutes
        stamps = pd.DatetimeIndex(
            sorted({ts for anomaly in self.anomalies for ts in anomaly.flagged})
        ).as_unit("ns")
        apart = np.diff(stamps.asi8)
        step = apart.min(initial=pd.Timedelta(MAX_GAP).value)
        back_to_normal = apart[apart > pd.Timedelta(MAX_GAP).value] - step
        return self.minutes - round(back_to_normal.sum() / pd.Timedelta(minutes=1).value)

    @property
    def series(self) -> tuple[str, ...]:
        return tuple(sorted({anomaly.series for anomaly in self.anomalies}))

    @property
    def peak(self) -> Anomaly:
        return max(self.anomalies, key=lambda anomaly: (anomaly.ratio, anomaly.peak_score))


@dataclass(frozen=True)
class Alert:
    """What is sent: an incident at a severity, or a day without data (``missing``: dataset -> problem)."""

    kind: str
    day: dt.date
    severity: str
    incident: Incident | None = None
    missing: Mapping[str, str] = field(default_factory=dict)
    #: The dedup key of the alert sent for this incident before it grew more severe (``run.news``).
    update_of: str | None = None

    @property
    def series(self) -> tuple[str, ...]:
        return self.incident.series if self.incident else ()

    @property
    def dedup_key(self) -> str:
        """The same alert for the same day has the same key, whenever and however often it is decided;
        an update's key names its severity, so each escalation is sent once."""
        start = self.incident.start.isoformat() if self.incident else ""
        text = "|".join([self.kind, self.day.isoformat(), ",".join(self.series), start])
        if self.update_of:
            text += f"|update:{self.severity}"
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def title(self) -> str:
        if self.incident is None:
            return f"No data for {self.day}: " + "; ".join(
                f"{name} {why}" for name, why in self.missing.items()
            )
        incident, peak = self.incident, self.incident.peak
        others = len(incident.series) - 1
        subject = peak.series + (f" and {others} more series" if others else "")
        when = (
            f"{incident.start:%Y-%m-%d %H:%M}-{incident.end:%H:%M} UTC "
            f"({incident.minutes} min, peak {peak.ratio:.1f}x threshold)"
        )
        update = f"Now {self.severity}: " if self.update_of else ""
        return f"{update}{incident.cause.text if incident.cause else subject + ' anomalous'} {when}"

    def summary(self) -> dict[str, Any]:
        """The alert as plain JSON values, as logged in ``sent.jsonl`` and posted to webhooks."""
        summary: dict[str, Any] = {
            "kind": self.kind,
            "day": self.day.isoformat(),
            "severity": self.severity,
            "title": self.title,
            "series": list(self.series),
        }
        if self.incident is None:
            return summary | {"missing": dict(self.missing)}
        if self.update_of:
            summary["update_of"] = self.update_of
        cause = self.incident.cause
        return summary | {
            "start": self.incident.start.isoformat(),
            "end": self.incident.end.isoformat(),
            "minutes": self.incident.minutes,
            "peak": self.incident.peak.summary(),
            "cause": cause.to_json()
            if cause is not None
            else {"text": self.incident.peak.series, "slice": {}},
        }


@dataclass(frozen=True)
class Decisions:
    """A day's alerts, and what the rules kept from alerting and why."""

    alerts: list[Alert]
    below_minimums: list[Anomaly]
    snoozed: list[Anomaly]
    in_cooldown: list[Incident]


def anomalies(events: pd.DataFrame, scores: pd.DataFrame) -> list[Anomaly]:
    """The events with the threshold of the score row at their peak, their ratio to it, and the times
    of their anomalous rows."""
    events = events.drop(columns=["threshold", "severity"], errors="ignore").reset_index(drop=True)
    # Scores written before thresholds were stored per row have no threshold column.
    peaks = scores.reindex(columns=["series", "detector", "ts", "threshold"]).rename(
        columns={"ts": "peak_ts"}
    )
    rows = events.merge(peaks, on=["series", "detector", "peak_ts"], how="left")
    return [
        _anomaly(row, flagged)
        for row, flagged in zip(rows.to_dict("records"), _flagged(events, scores), strict=True)
    ]


def _flagged(events: pd.DataFrame, scores: pd.DataFrame) -> list[tuple[pd.Timestamp, ...]]:
    """The times of each event's anomalous rows among ``scores``; none known where the scores do not
    say which rows were anomalous."""
    if "is_anomaly" not in scores:
        return [()] * len(events)
    anomalous = scores.loc[scores["is_anomaly"].astype(bool), ["series", "detector", "ts"]]
    rows = events.reset_index(names="event")[["event", "series", "detector", "start", "end"]].merge(
        anomalous, on=["series", "detector"]
    )
    within = rows[(rows["ts"] >= rows["start"]) & (rows["ts"] <= rows["end"])]
    times = within.groupby("event")["ts"].agg(tuple)
    return [times.get(event, ()) for event in range(len(events))]


def _anomaly(row: Mapping[str, Any], flagged: tuple[pd.Timestamp, ...]) -> Anomaly:
    threshold = None if pd.isna(row["threshold"]) else float(row["threshold"])
    peak = float(row["peak_score"])
    return Anomaly(
        series=row["series"],
        detector=row["detector"],
        start=row["start"],
        end=row["end"],
        minutes=int(row["minutes"]),
        peak_score=peak,
        peak_ts=row["peak_ts"],
        threshold=threshold,
        ratio=peak / threshold if threshold is not None and threshold > 0 else 1.0,
        flagged=flagged,
    )


def meets_minimums(anomaly: Anomaly, rules: Rules) -> bool:
    return enough(anomaly.ratio, anomaly.minutes, rules.min_ratio, rules.min_minutes)


def snoozed(anomaly: Anomaly, snoozes: Iterable[Snooze]) -> bool:
    return any(snooze.covers(anomaly.series, anomaly.start) for snooze in snoozes)


def severity(incident: Incident, levels: Sequence[SeverityLevel]) -> str:
    """The most severe level whose minimums the incident's peak ratio and the minutes it was anomalous
    (``Incident.anomalous_minutes``) meet; at least the first.

    A routine incident (``Cause.routine``: a change a few clients made, a departure as short as its
    breakdowns make on most days) is not the service's: the first level, whatever its size. Where few
    clients made only some of its changes, its size is that of the service's part (``Cause.news``)."""
    if incident.cause is not None and incident.cause.routine:
        return levels[0].name
    if incident.cause is not None and incident.cause.news:
        incident = Incident(tuple(a for a in incident.anomalies if a.series in incident.cause.news))
    ratio, minutes = incident.peak.ratio, incident.anomalous_minutes
    reached = [level.name for level in levels if level.reached(ratio, minutes)]
    return reached[-1] if reached else levels[0].name


def apply_cooldown(
    incidents: Iterable[Incident],
    cooldown: dt.timedelta,
    earlier: Iterable[tuple[Iterable[str], pd.Timestamp]] = (),
    rank: Callable[[Incident], int] = lambda incident: 0,
) -> tuple[list[Incident], list[Incident]]:
    """Split incidents into those that alert and those held back: an incident is held back when every one
    of its series alerted (an alerting incident, or an ``earlier`` (series, end) pair) less than
    ``cooldown`` before its start, at least as severely (``rank``): a burst that grows from an info
    into a warning is an escalation, and alerts. An ``earlier`` pair holds back any severity. A
    held-back incident does not extend the cooldown."""
    last_alert: dict[str, tuple[pd.Timestamp, int]] = {}

    def note(series: Iterable[str], end: pd.Timestamp, level: int) -> None:
        for name in series:
            previous_end, previous_level = last_alert.get(name, (end, level))
            last_alert[name] = (max(end, previous_end), max(level, previous_level))

    for series, end in earlier:
        note(series, end, sys.maxsize)
    alerting, held = [], []
    for incident in sorted(incidents, key=lambda incident: incident.start):
        level = rank(incident)
        if cooldown and all(
            name in last_alert
            and incident.start - last_alert[name][0] < cooldown
            and level <= last_alert[name][1]
            for name in incident.series
        ):
            held.append(incident)
        else:
            alerting.append(incident)
            note(incident.series, incident.end, level)
    return alerting, held


def decide(
    day: dt.date,
    incidents: Iterable[ExplainedIncident],
    scores: pd.DataFrame,
    rules: Rules,
    snoozes: Iterable[Snooze] = (),
    earlier: Iterable[tuple[Iterable[str], pd.Timestamp]] = (),
) -> Decisions:
    """The day's anomaly alerts from its incidents and scores; ``earlier`` are (series, end) of incidents
    alerted before the day, for the cooldown."""
    snoozes = tuple(snoozes)
    below, quiet, candidates = [], [], []
    for explained in incidents:
        found = anomalies(explained.incident.events, scores)
        loud = [anomaly for anomaly in found if not snoozed(anomaly, snoozes)]
        quiet += [anomaly for anomaly in found if snoozed(anomaly, snoozes)]
        below += [anomaly for anomaly in loud if not meets_minimums(anomaly, rules)]
        if any(meets_minimums(anomaly, rules) for anomaly in loud):
            by_start = sorted(found, key=lambda anomaly: (anomaly.start, anomaly.series, anomaly.detector))
            candidates.append(Incident(tuple(by_start), explained.cause))

    def rank(incident: Incident) -> int:
        return rules.rank(severity(incident, rules.levels))

    alerting, held = apply_cooldown(candidates, rules.cooldown, earlier, rank=rank)
    alerts = [Alert(ANOMALY, day, severity(incident, rules.levels), incident) for incident in alerting]
    return Decisions(alerts=alerts, below_minimums=below, snoozed=quiet, in_cooldown=held)


def no_data_alert(day: dt.date, rows: Mapping[str, int | None], rules: Rules) -> Alert | None:
    """A ``no_data`` alert when an expected dataset has no partition (``None``) or no rows on the day."""
    missing = {
        name: "has no partition" if count is None else "has 0 rows"
        for name, count in rows.items()
        if not count
    }
    return Alert(NO_DATA, day, rules.no_data_severity, missing=missing) if missing else None


def route_targets(alert: Alert, routes: Iterable[Route], rules: Rules) -> list[tuple[str, str]]:
    """``(route name, channel)`` pairs the alert goes to, each channel once (through its first route)."""
    targets: dict[str, str] = {}
    for route in routes:
        if rules.rank(alert.severity) < rules.rank(route.min_severity):
            continue
        if route.series and not any(
            fnmatch.fnmatchcase(name, pattern) for name in alert.series for pattern in route.series
        ):
            continue
        for channel in route.channels:
            targets.setdefault(channel, route.name)
    return [(route, channel) for channel, route in targets.items()]
