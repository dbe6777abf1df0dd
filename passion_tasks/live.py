"""Micro-batches: a day's CDN log files landed, scored and alerted on as they arrive (``passion live``,
and the ``passion_live`` DAG every five minutes).

One micro-batch of a day:

1. lands the day's files that have not landed as they are now (``ingest.arrivals``): a new file, or
   one delivered again with another size or time; one delivered again unchanged is left alone;
2. builds the day's CDN features so far from every landed row (``features.cdn``);
3. scores, with the models live that day, the minutes from the first one not scored yet (or the
   first one a newly landed file changed: a late file; or midnight when a series' live model changed:
   a promotion during the day) to the last complete minute (``models.live``). The last minute seen
   may still be filling: it waits for a later file, or for the day to be over by ``SETTLE``;
4. alerts from the day's live scores through the nightly run's incidents, rules and ledger
   (``alerting.alert_day(live=True)``): an incident that grows across batches is alerted once, and
   again only as an update when it grows more severe.

The nightly run stays the book of record: on the same minutes it gives the same scores. A day the
nightly ingest has landed whole is its alone; late files of it go through ``passion ingest`` again.
Micro-batches of one day take turns (a lease on ``live/dt=D``); what a batch did is kept in
``live/dt=D/state.json``, written last, so a batch that dies is done again whole by the next one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import posixpath
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from passion_tasks.alerting import AlertConfig, AlertRun, alert_day
from passion_tasks.defaults import HISTORY_DAYS
from passion_tasks.features import cdn
from passion_tasks.features.policy import watched_series
from passion_tasks.ingest.arrivals import MEMBER, Arrival, land_arrival, new_files
from passion_tasks.ingest.inputs import InputFile
from passion_tasks.lake import Day, Lake, PartitionNotFound, as_day, batches, datasets, leases
from passion_tasks.models.live import live_frame, write_live_scores
from passion_tasks.models.scoring import ScoreSummary, load_models, score_loaded, scores_table

#: How long after midnight a day's last minute is taken as complete without a file of the next day.
SETTLE = pd.Timedelta(minutes=5)
#: A stream of files this far behind the most advanced one is not waited for (``complete_until``).
STALLED = pd.Timedelta(hours=1)
#: How long a batch holds its day's lease: a batch that dies holds up the next ones no longer than this
#: (the ``passion_live`` task's own time limit is 15 minutes).
LEASE_TTL = dt.timedelta(minutes=20)
STATE = "state.json"


@dataclass(frozen=True)
class LiveState:
    """What the micro-batches of a day have done: each file landed (name -> version), the minute up to
    which the day is scored, and the model each series was scored with."""

    landed: dict[str, str] = field(default_factory=dict)
    scored_until: str | None = None
    models: dict[str, str] = field(default_factory=dict)


@dataclass
class MicroBatch:
    """What one micro-batch of a day did."""

    day: dt.date
    arrivals: list[Arrival] = field(default_factory=list)
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    scores: ScoreSummary | None = None
    alerts: AlertRun | None = None
    note: str = ""

    def summary(self) -> str:
        landed = [arrival for arrival in self.arrivals if not arrival.skipped]
        text = (
            f"{self.day}: landed {len(landed)} files ({sum(a.rows for a in landed):,} rows, "
            f"{sum(a.quarantined for a in landed):,} lines quarantined)"
        )
        if self.scores is not None and self.start is not None and self.end is not None:
            text += (
                f"; scored {self.start:%H:%M}-{self.end - pd.Timedelta(minutes=1):%H:%M} of "
                f"{self.scores.series_scored} series, {self.scores.anomalous_minutes} anomalous minutes"
            )
        if self.alerts is not None:
            text += f"; {len(self.alerts.sent)} alerts sent, {len(self.alerts.duplicates)} already sent"
        return text + (f"; {self.note}" if self.note else "")


def micro_batch(
    lake: Lake,
    day: Day,
    input: str,
    *,
    now: dt.datetime | None = None,
    config: AlertConfig | None = None,
    history_days: int = HISTORY_DAYS,
) -> MicroBatch:
    """Land the new CDN log files of ``day`` under ``input``, score its minutes that they complete
    and alert on them. Raises ``LeaseHeld`` while another micro-batch of the day runs."""
    day = as_day(day)
    now = pd.Timestamp(now or dt.datetime.now(dt.UTC))
    if batches.written_whole(lake, datasets.CDN_LOGS, day):
        note = "the nightly ingest landed the day whole: late files of it go through `passion ingest`"
        return MicroBatch(day, note=note)
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    lease = posixpath.join(datasets.LIVE, f"dt={day.isoformat()}")
    leases.acquire(lake, lease, holder, ttl=LEASE_TTL)
    try:
        return _micro_batch(lake, day, input, now, config, history_days)
    finally:
        leases.release(lake, lease, holder)


def live_days(now: dt.datetime) -> tuple[dt.date, dt.date]:
    """The days micro-batches work on at ``now``: yesterday and today (UTC). Yesterday's files go on
    landing after midnight until its last files and minute are in."""
    today = now.astimezone(dt.UTC).date()
    return today - dt.timedelta(days=1), today


def pending_files(lake: Lake, input: str, now: dt.datetime) -> list[InputFile]:
    """The CDN log files under ``input`` that the next micro-batch would land: those of the live days
    not landed as they are now, but for a day the nightly ingest has landed whole. What the
    ``passion_live`` DAG's watcher polls for."""
    return [
        file
        for day in live_days(now)
        if not batches.written_whole(lake, datasets.CDN_LOGS, day)
        for file in new_files(input, day, read_state(lake, day).landed, s3=lake.s3)
    ]


def complete_until(last_seen: Mapping[str, dt.datetime], day: dt.date, now: pd.Timestamp) -> pd.Timestamp:
    """The end of the day's complete minutes, given the last request each stream of files delivered.

    Files come in streams (``stream_of``: a CloudFront distribution), each in time order but not in
    step with the others: a minute is complete once every stream has delivered a later one, but for a
    stream more than ``STALLED`` behind the most advanced (its silence is for the detectors to judge).
    The minute of a stream's last request may still be filling. Once the day is over by ``SETTLE``,
    all of it is complete.
    """
    day_end = pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1)
    if now >= day_end + SETTLE or not last_seen:
        return day_end if now >= day_end + SETTLE else pd.Timestamp(day, tz="UTC")
    minutes = [pd.Timestamp(seen).floor("min") for seen in last_seen.values()]
    ahead = max(minutes)
    return min(min(minute for minute in minutes if minute >= ahead - STALLED), day_end)


def stream_of(source_file: str) -> str:
    """The stream a landed file belongs to: its folder and the stem of its name (a CloudFront file
    ``E2LIVE7QX3ABCD.2026-10-05-09.c13.gz`` is of its distribution, ``E2LIVE7QX3ABCD``)."""
    folder, name = posixpath.split(source_file)
    return posixpath.join(folder, name.split(".")[0])


def last_seen(logs: pa.Table) -> dict[str, dt.datetime]:
    """The last request of each stream (``stream_of``) among the landed rows ``logs``."""
    per_file = logs.group_by("source_file").aggregate([("ts", "max")])
    seen: dict[str, dt.datetime] = {}
    for name, ts in zip(per_file["source_file"].to_pylist(), per_file["ts_max"].to_pylist(), strict=True):
        stream = stream_of(name)
        seen[stream] = max(seen.get(stream, ts), ts)
    return seen


def read_state(lake: Lake, day: dt.date) -> LiveState:
    path = _state_path(day)
    if not lake.exists(path):
        return LiveState()
    return LiveState(**json.loads(lake.read_bytes(path)))


def _micro_batch(
    lake: Lake,
    day: dt.date,
    input: str,
    now: pd.Timestamp,
    config: AlertConfig | None,
    history_days: int,
) -> MicroBatch:
    state = read_state(lake, day)
    batch = MicroBatch(day)
    arriving = new_files(input, day, state.landed, s3=lake.s3)
    batch.arrivals = [land_arrival(lake, day, file) for file in arriving]
    landed = state.landed | {arrival.name: arrival.version for arrival in batch.arrivals}
    midnight = pd.Timestamp(day, tz="UTC")
    day_end = midnight + pd.Timedelta(days=1)
    # Without a new file only the day's end completes a minute: its last one.
    if not batch.arrivals and (now < day_end + SETTLE or state.scored_until == day_end.isoformat()):
        batch.note = "nothing new"
        return batch
    try:
        logs = lake.read_partition(datasets.CDN_LOGS, day, columns=[*cdn.COLUMNS, MEMBER])
    except PartitionNotFound:
        logs = None
    if logs is None or not logs.num_rows:
        _write_state(lake, day, LiveState(landed, state.scored_until, state.models))
        batch.note = "no log line of the day has landed yet"
        return batch
    end = complete_until(last_seen(logs), day, now)
    today = cdn.cdn_features(logs, day)
    batch.scores = ScoreSummary(day=day)
    loaded = load_models(lake, day, watched_series(pc.unique(today["series"]).to_pylist()), batch.scores)
    models = {name: version.ref for name, (_, version) in loaded.items()}
    starts = [pd.Timestamp(state.scored_until) if state.scored_until else midnight]
    starts += [pd.Timestamp(arrival.first_minute) for arrival in batch.arrivals if arrival.first_minute]
    if models != state.models:
        starts.append(midnight)
    batch.start, batch.end = max(min(starts), midnight), end
    if batch.start >= end:
        _write_state(lake, day, LiveState(landed, state.scored_until, state.models))
        batch.note = "no minute is complete yet"
        return batch
    frame = live_frame(lake, day, today, end, loaded, history_days)
    scores = scores_table(list(score_loaded(loaded, frame, batch.start, batch.scores).values()))
    write_live_scores(lake, day, scores, batch.start, end)
    batch.scores.series_scored = len(pc.unique(scores["series"])) if scores.num_rows else 0
    batch.scores.anomalous_minutes = int(pc.sum(scores["is_anomaly"]).as_py() or 0)
    _write_state(lake, day, LiveState(landed, end.isoformat(), models))
    batch.alerts = alert_day(lake, day, config, now=now.to_pydatetime(), live=True)
    return batch


def _state_path(day: dt.date) -> str:
    return posixpath.join(Lake.leaf(datasets.LIVE, day), STATE)


def _write_state(lake: Lake, day: dt.date, state: LiveState) -> None:
    lake.write_text(_state_path(day), json.dumps(dataclasses.asdict(state), indent=1, sort_keys=True))
