"""Incidents: the day's events of several series that overlap in time, grouped, with their severity.

A 5xx burst on one channel flags the overall 5xx rate, the rate of every edge that serves the
channel and its latency percentiles: one incident, not twenty. CDN series and server metrics are
grouped apart: they share no requests, so an overlap in time is a coincidence more often than not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from passion_tasks.lake import datasets
from passion_tasks.models.scoring import enough_alone, evidence

#: Events of one family at most this far apart belong to the same incident: a breakdown that echoes its
#: parent (an edge's 5xx rate with the overall one, the p99 with the p95) lands in the parent's incident.
MERGE_GAP = pd.Timedelta(minutes=5)
ONE_MINUTE = pd.Timedelta(minutes=1)
CDN_PREFIX = "cdn_"


def family(series: str) -> str:
    """``cdn`` for a series computed from CDN logs, ``metrics`` for a server metric."""
    return datasets.CDN if series.startswith(CDN_PREFIX) else datasets.SERVER_METRICS


@dataclass
class Incident:
    """Overlapping events of one family. ``events`` has the ``schemas.EVENTS`` columns plus
    ``threshold`` and ``severity``, most severe first."""

    events: pd.DataFrame
    step: pd.Timedelta = ONE_MINUTE

    @property
    def family(self) -> str:
        return family(self.lead["series"])

    @property
    def start(self) -> pd.Timestamp:
        return self.events["start"].min()

    @property
    def end(self) -> pd.Timestamp:
        """The last anomalous minute."""
        return self.events["end"].max()

    @property
    def stop(self) -> pd.Timestamp:
        """The end of the last anomalous minute: the incident is ``[start, stop)``."""
        return self.end + self.step

    @property
    def minutes(self) -> int:
        return math.ceil((self.stop - self.start) / pd.Timedelta(minutes=1))

    @property
    def lead(self) -> pd.Series:
        """The most severe event."""
        return self.events.iloc[0]

    @property
    def severity(self) -> float:
        """The highest peak score over its threshold (NaN when no threshold was recorded)."""
        return float(self.events["severity"].max())

    @property
    def rank(self) -> float:
        """Order of the report: the ``evidence`` of its span at its severity."""
        return evidence(self.minutes, self.severity if np.isfinite(self.severity) else 1.0)


def with_severity(events: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """``events`` with the ``threshold`` at each event's peak and ``severity`` = peak score / threshold.

    Both are NaN where the scores recorded no threshold.
    """
    if "threshold" in scores:
        at_peak = scores[["series", "detector", "ts", "threshold"]].rename(columns={"ts": "peak_ts"})
        events = events.merge(at_peak, on=["series", "detector", "peak_ts"], how="left")
    else:
        events = events.assign(threshold=np.nan)
    return events.assign(severity=events["peak_score"] / events["threshold"])


def group_incidents(events: pd.DataFrame, *, gap: pd.Timedelta = MERGE_GAP) -> list[Incident]:
    """Events (with ``severity``) grouped into incidents, most important first (``Incident.rank``).

    Within a family, an event joins the incident before it when it starts at most ``gap`` after
    that incident's last minute. An incident needs one event that is ``enough`` (an event without a
    recorded threshold counts as just over it), and ends with the last of those: weaker events that
    begin after they have all ended belong to none. Those are single minutes of breakdowns grazing
    their thresholds, the false-alarm budget at work, which a gap at a time had carried a
    10-minute outage on to an incident of 23 at 1,000 requests a minute.
    """
    incidents: list[Incident] = []
    ordered = events.assign(family=events["series"].map(family)).sort_values(
        ["family", "start", "series", "detector"], kind="stable"
    )
    for _, rows in ordered.groupby("family", sort=True):
        reach = rows["end"].cummax().shift()
        number = (rows["start"] > reach + gap).cumsum()
        for _, members in rows.groupby(number, sort=True):
            sufficient = enough_alone(members)
            if sufficient.any():
                within = sufficient | (members["start"] <= members.loc[sufficient, "end"].max()).to_numpy()
                incidents.append(Incident(_most_severe_first(members[within].drop(columns="family"))))
    return sorted(incidents, key=lambda incident: (-incident.rank, incident.start, incident.lead["series"]))


def _most_severe_first(events: pd.DataFrame) -> pd.DataFrame:
    return events.sort_values(
        ["severity", "minutes", "peak_score", "series"],
        ascending=[False, False, False, True],
        na_position="last",
        kind="stable",
    ).reset_index(drop=True)
