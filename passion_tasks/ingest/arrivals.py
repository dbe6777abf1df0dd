"""CDN log files landed one at a time, as they arrive: the way in of the micro-batches (``passion live``).

CloudFront and DataStream 2 deliver a day as many files, minutes apart. Each file is a member of the
day's ``cdn_logs`` leaf and of its quarantine (``lake.batches``, keyed by ``source_file``): landing a
file again replaces its rows, so a file delivered twice, or delivered again with other content, is
counted once. A file is landed again only when its listed version (size and modification time) is not
the one it landed as; the caller keeps those versions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from passion_tasks.errors import NoInputError
from passion_tasks.ingest.cdn import land_file
from passion_tasks.ingest.formats import EMPTY, LOG_FORMATS, UNKNOWN, sniff
from passion_tasks.ingest.inputs import InputFile, day_files, read_head
from passion_tasks.ingest.landing import Collected
from passion_tasks.ingest.quarantine import Quarantine
from passion_tasks.ingest.report import IngestReport
from passion_tasks.lake import Lake, PartitionNotFound, S3Options, batches, datasets, schemas

MEMBER = "source_file"


@dataclass(frozen=True)
class Arrival:
    """One file landed: its rows and quarantined lines, and the first minute whose rows changed (its
    new rows or those it replaced; None when neither). A file of another source is ``skipped``."""

    name: str
    version: str
    rows: int
    quarantined: int
    first_minute: dt.datetime | None
    skipped: bool = False


def new_files(
    input: str, day: dt.date, landed: Mapping[str, str], *, s3: S3Options | None = None
) -> list[InputFile]:
    """The files of ``day`` under ``input`` not landed yet as they are now: absent from ``landed``
    (name -> version) or listed with another version. None when ``input`` holds no file of the day."""
    try:
        files = day_files(input, day, s3=s3)
    except NoInputError:
        return []
    return [file for file in files if landed.get(file.name) != file.version]


def land_arrival(lake: Lake, day: dt.date, file: InputFile) -> Arrival:
    """Land ``file`` as its member of the day's ``cdn_logs`` and quarantine leaves, replacing the rows
    an earlier version of it landed."""
    kind = sniff(read_head(file))
    if kind not in LOG_FORMATS and kind not in (EMPTY, UNKNOWN):
        return Arrival(file.name, file.version, 0, 0, None, skipped=True)
    rows, rejected = Collected(schemas.CDN_LOGS), Collected(schemas.QUARANTINE)
    quarantine = Quarantine(rejected)
    land_file(file, kind, day, rows, quarantine, IngestReport(day, datasets.CDN_LOGS))
    quarantine.flush()
    landed = rows.table()
    firsts = [_first_minute(landed["ts"]), _first_minute(_landed_before(lake, day, file.name))]
    # The quarantine first: a landing cut short is landed again whole by the next batch.
    for dataset, schema, table in (
        (datasets.quarantine_of(datasets.CDN_LOGS), schemas.QUARANTINE, rejected.table()),
        (datasets.CDN_LOGS, schemas.CDN_LOGS, landed),
    ):
        batches.replace_members(lake, dataset, day, table, column=MEMBER, members=[file.name], schema=schema)
    changed = [first for first in firsts if first is not None]
    return Arrival(
        file.name, file.version, landed.num_rows, quarantine.total, min(changed) if changed else None
    )


def _landed_before(lake: Lake, day: dt.date, name: str) -> pa.ChunkedArray:
    """The minutes of the rows an earlier version of the file landed; the manifest says whether there is
    one, so a new file reads none of the day's rows."""
    if name not in batches.members(lake, datasets.CDN_LOGS, day):
        return pa.chunked_array([], schemas.TS)
    try:
        table = lake.read_partition(datasets.CDN_LOGS, day, columns=["ts"], filter=pads.field(MEMBER) == name)
    except PartitionNotFound:
        return pa.chunked_array([], schemas.TS)
    return table["ts"]


def _first_minute(ts: pa.ChunkedArray | pa.Array) -> dt.datetime | None:
    first = pc.min(ts).as_py()
    return None if first is None else first.replace(second=0, microsecond=0)
