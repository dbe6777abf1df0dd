"""Landing one day of server metrics: the seed's JSON layout, in long form.

Each file is one series (its name is the file's stem, ``cif.json`` -> ``cif``) holding one JSON
object ``{"YYYY-MM-DD HH:MM:SS": value}``; a value may also be a one-element list, as pandas
writes with ``orient="index"``. Times without a zone are UTC. Rows land as ``(ts, source, series,
value)`` in ``metrics/dt=D/source=<source>/``.

A file whose path names the day should hold only that day: its rows of other days are
quarantined as ``other_day``. A file whose path names no day may cover many days, and only the
requested day's rows are taken from it; the other days' runs take theirs.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import pyarrow as pa

from passion_tasks.ingest.formats import METRICS_JSON
from passion_tasks.ingest.inputs import InputFile, open_source
from passion_tasks.ingest.landing import (
    RowGroups,
    land_day,
    mark_damaged,
    note_damage,
    plan_files,
    start_file,
)
from passion_tasks.ingest.quarantine import Quarantine
from passion_tasks.ingest.report import IngestReport
from passion_tasks.lake import Day, Lake, as_day, datasets
from passion_tasks.lake.schemas import METRICS, bounded_name

DATASET = datasets.METRICS


def ingest_metrics_day(lake: Lake, day: Day, input: str, source: str = datasets.METRIC_FILES) -> IngestReport:
    """Land ``day``'s server metrics found under ``input`` as the ``source`` leaf of the day.

    Reads the files whose path names the day (the generator's
    ``<input>/metrics/YYYY-MM-DD/<service>.json``), else for files whose path names no day. Raises
    ``NoInputError``, ``UnknownFormatError`` and ``EmptyDayError`` as ``ingest_cdn_day`` does.
    """
    day = as_day(day)
    report = IngestReport(day, DATASET)
    plan = plan_files(
        input, day, report, readable={METRICS_JSON}, described_as="server metrics", undated=True, s3=lake.s3
    )

    def land(landed: RowGroups, quarantine: Quarantine) -> None:
        for file, kind in plan:
            _land_file(file, kind, day, source, landed, quarantine, report)

    return land_day(lake, report, METRICS, land, key={"source": source})


def _land_file(
    file: InputFile,
    kind: str,
    day: dt.date,
    source: str,
    landed: RowGroups,
    quarantine: Quarantine,
    report: IngestReport,
) -> None:
    if not start_file(file, kind, quarantine, report):
        return
    with open_source(file) as stream:
        text = stream.read().decode("utf-8", "replace")
    note_damage(stream.raw, file, quarantine, report)
    series = _json_object(text)
    if series is None:
        # Usually a damaged file: keep all of it.
        mark_damaged(file, report)
        for number, line in enumerate(text.splitlines(), 1):
            quarantine.add(file.name, number, "malformed_json", line)
        return
    keep_other_days = day not in file.days
    times, values = [], []
    for key, value in series.items():
        ts, number, reason = _entry(key, value)
        if not reason and ts.date() != day:
            if keep_other_days:
                continue
            reason = "other_day"
        if reason:
            quarantine.add(file.name, None, reason, json.dumps({key: value}))
        else:
            times.append(ts)
            values.append(number)
    columns = [times, [source] * len(times), [bounded_name(file.stem)] * len(times), values]
    landed.write(pa.table(columns, schema=METRICS))


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        document = json.loads(text)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _entry(key: str, value: Any) -> tuple[dt.datetime | None, float | None, str | None]:
    """The UTC time and value of one ``"time": value`` entry, or the reason it has none."""
    try:
        ts = dt.datetime.fromisoformat(key)
    except ValueError:
        return None, None, "bad_ts"
    ts = ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts.astimezone(dt.UTC)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if value is None:  # a gap the source recorded: kept as a missing value
        return ts, None, None
    readable = isinstance(value, int | float | str) and not isinstance(value, bool)
    number = finite_number(value) if readable else None
    return (ts, None, "bad_value") if number is None else (ts, number, None)


def finite_number(value: int | float | str) -> float | None:
    """``value`` as a finite float, or None (not a number, NaN or infinite): a value from outside."""
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
