"""What was sent: ``alerts/dt=D/sent.jsonl`` in the lake, one JSON object a line per delivery attempt.

Each line: ``dedup_key``, ``channel``, ``route``, ``sent_at``, ``status`` (``sent`` or ``failed``),
``error`` and ``incident`` (the alert's summary). A (dedup key, channel) pair with a ``sent`` line is
never sent again; a ``failed`` one is tried again on the next run, and both lines stay.

The lake has no append: each record rewrites the day's file in one atomic write, right after the
delivery, so a run that dies half way leaves the deliveries it made on record. Two runs of the same
day at once are not supported (the last write wins), as for the lake's partitions.
"""

from __future__ import annotations

import datetime as dt
import json
import posixpath
from collections.abc import Iterator
from typing import Any

import pandas as pd

from passion_tasks.alerting.rules import ANOMALY, Alert
from passion_tasks.lake import Lake, LakeError, datasets

SENT = "sent"
FAILED = "failed"
LEDGER_NAME = datasets.ALERT_LEDGER


def ledger_path(day: dt.date) -> str:
    return posixpath.join(Lake.leaf(datasets.ALERTS, day), LEDGER_NAME)


def read_entries(lake: Lake, day: dt.date) -> list[dict[str, Any]]:
    """The day's ledger lines, oldest first; none when nothing was sent that day."""
    path = ledger_path(day)
    if not lake.exists(path):
        return []
    entries = []
    for number, line in enumerate(lake.read_bytes(path).decode("utf-8").splitlines(), 1):
        if line.strip():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise LakeError(f"{lake.uri(path)} line {number} is not JSON: {error}") from None
    return entries


def alerted_incidents(entries: list[dict[str, Any]]) -> Iterator[tuple[list[str], pd.Timestamp]]:
    """(series, end) of the anomaly incidents a ledger records, for the next day's cooldown."""
    for entry in entries:
        incident = entry.get("incident") or {}
        if incident.get("kind") == ANOMALY:
            yield incident["series"], pd.Timestamp(incident["end"])


class Ledger:
    """The deliveries of one day, read once and appended to as the run goes."""

    def __init__(self, lake: Lake, day: dt.date):
        self.lake, self.path = lake, ledger_path(day)
        self.entries = read_entries(lake, day)

    def delivered(self, dedup_key: str, channel: str) -> bool:
        return any(
            entry["dedup_key"] == dedup_key and entry["channel"] == channel and entry["status"] == SENT
            for entry in self.entries
        )

    def continued(self, alert: Alert, channel: str) -> list[dict[str, Any]]:
        """The anomaly alerts sent to ``channel`` whose incident ``alert``'s incident continues: one of
        its series, over a span that meets it. A micro-batch decides an incident while it is still
        growing; later batches, and the nightly run, see it again with more minutes and series."""
        if alert.incident is None:
            return []
        series, start, end = set(alert.series), alert.incident.start, alert.incident.end
        return [
            entry
            for entry in self.entries
            if entry["channel"] == channel
            and entry["status"] == SENT
            and (incident := entry.get("incident") or {}).get("kind") == ANOMALY
            and series & set(incident["series"])
            and pd.Timestamp(incident["start"]) <= end
            and start <= pd.Timestamp(incident["end"])
        ]

    def record(self, entry: dict[str, Any]) -> None:
        self.entries.append(entry)
        text = "".join(json.dumps(line, sort_keys=True) + "\n" for line in self.entries)
        self.lake.write_text(self.path, text)
