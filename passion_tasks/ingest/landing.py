"""What every ingestion shares: choosing the day's files, writing the day and its quarantine once.

The day's rows and its rejected lines go through the lake's atomic partition writer, so a re-run
replaces both (an empty quarantine partition on a clean day clears an old one) and a failed run
leaves the previous version in place.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping

import pyarrow as pa

from passion_tasks.errors import EmptyDayError, NoInputError, UnknownFormatError
from passion_tasks.ingest.formats import EMPTY, UNKNOWN, sniff
from passion_tasks.ingest.inputs import InputFile, SourceStream, day_files, open_source, read_head
from passion_tasks.ingest.quarantine import Quarantine
from passion_tasks.ingest.report import IngestReport
from passion_tasks.lake import Lake, PartitionWriter, S3Options, datasets
from passion_tasks.lake.schemas import QUARANTINE

ROW_GROUP_ROWS = 128 * 1024


def plan_files(
    input: str,
    day: dt.date,
    report: IngestReport,
    *,
    readable: Collection[str],
    described_as: str,
    undated: bool = False,
    s3: S3Options | None = None,
) -> list[tuple[InputFile, str]]:
    """The day's files with their formats; those in another source's format are noted as skipped.

    Raises ``NoInputError`` when none is left and ``UnknownFormatError`` when no file left is in a
    readable format; nothing is written then.
    """
    plan = []
    for file in day_files(input, day, undated=undated, s3=s3):
        kind = sniff(read_head(file))
        if kind in readable or kind in (EMPTY, UNKNOWN):
            plan.append((file, kind))
        else:
            report.skipped_files.append(file.name)
    if not plan:
        raise NoInputError(f"no {described_as} files for {day} under {input}")
    if all(kind == UNKNOWN for _, kind in plan):
        names = ", ".join(file.name for file, _ in plan)
        raise UnknownFormatError(f"no file for {day} under {input} is in a format Passion reads: {names}")
    return plan


class RowGroups:
    """Writes tables to a partition in Parquet row groups of at least ``rows`` rows.

    Readers hand over batches of whatever size suits them; each write would otherwise become
    a row group of its own, and many small ones read and compress badly.
    """

    def __init__(self, writer: PartitionWriter, rows: int = ROW_GROUP_ROWS):
        self._writer, self._rows = writer, rows
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def write(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._pending_rows += table.num_rows
        if self._pending_rows >= self._rows:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._writer.write(pa.concat_tables(self._pending))
            self._pending, self._pending_rows = [], 0


class Collected:
    """Keeps the tables written to it, for a file landed on its own (``ingest.arrivals``); it stands
    in for a partition's writer where the rows of one file are few enough to hold."""

    def __init__(self, schema: pa.Schema):
        self.schema = schema
        self._tables: list[pa.Table] = []

    def write(self, table: pa.Table) -> None:
        self._tables.append(table)

    def table(self) -> pa.Table:
        return pa.concat_tables(self._tables) if self._tables else self.schema.empty_table()


def land_day(
    lake: Lake,
    report: IngestReport,
    schema: pa.Schema,
    land: Callable[[RowGroups, Quarantine], None],
    *,
    key: Mapping[str, str] | None = None,
) -> IngestReport:
    """Run ``land`` with the writers of the day's leaf and of its quarantine, and commit both.

    The day's leaf is committed only if it has rows; otherwise ``EmptyDayError`` is raised after
    the quarantine is committed, so the rejected lines are kept.
    """
    quarantine_dataset = datasets.quarantine_of(report.dataset)
    report.location = lake.uri(Lake.leaf(report.dataset, report.day, key))
    report.quarantine_location = lake.uri(Lake.leaf(quarantine_dataset, report.day, key))
    empty_day = None
    with lake.partition_writer(quarantine_dataset, report.day, QUARANTINE, key=key) as rejected:
        quarantine = Quarantine(rejected)
        try:
            with lake.partition_writer(report.dataset, report.day, schema, key=key) as landed:
                row_groups = RowGroups(landed)
                land(row_groups, quarantine)
                row_groups.flush()
                quarantine.flush()
                report.rows, report.quarantined = landed.rows, quarantine.counts
                if not landed.rows:
                    raise EmptyDayError(
                        f"no good {report.dataset} row for {report.day} in {len(report.files)} files; "
                        f"{quarantine.total} lines are in {report.quarantine_location}"
                    )
                landed.meta.update(report.meta())
        except EmptyDayError as error:
            empty_day = error
        rejected.meta.update(rows=quarantine.total, quarantined=dict(sorted(quarantine.counts.items())))
    if empty_day:
        raise empty_day
    return report


def start_file(file: InputFile, kind: str, quarantine: Quarantine, report: IngestReport) -> bool:
    """Count ``file`` in the report; an empty or unrecognised one goes to quarantine whole.

    Returns whether the file is left to parse. An empty file is still read through: it may be a gzip
    damaged before its first line.
    """
    report.files.append(file.name)
    report.formats[kind] += 1
    if kind not in (EMPTY, UNKNOWN):
        return True
    reason = "blank_line" if kind == EMPTY else "unknown_format"
    note_damage(quarantine_file(file, reason, quarantine), file, quarantine, report)
    return False


def quarantine_file(file: InputFile, reason: str, quarantine: Quarantine) -> SourceStream:
    """Put every line of ``file`` in quarantine; returns the stream read, to check it for damage."""
    with open_source(file) as stream:
        for number, line in enumerate(stream, 1):
            quarantine.add(file.name, number, reason, line.decode("utf-8", "replace").rstrip("\r\n"))
        return stream.raw


def note_damage(source: SourceStream, file: InputFile, quarantine: Quarantine, report: IngestReport) -> None:
    """Record a damaged gzip: one quarantine row with its partial last line, the file as damaged."""
    if source.damage:
        quarantine.add(file.name, source.damage_line, source.damage, source.tail.decode("utf-8", "replace"))
        mark_damaged(file, report)


def mark_damaged(file: InputFile, report: IngestReport) -> None:
    if file.name not in report.damaged_files:
        report.damaged_files.append(file.name)
