"""Landing one day of CDN access logs into ``cdn_logs/dt=D/``, rejected lines into its quarantine."""

from __future__ import annotations

import datetime as dt

from passion_tasks.ingest import cloudfront
from passion_tasks.ingest.convert import finish, reject
from passion_tasks.ingest.formats import LOG_FORMATS
from passion_tasks.ingest.inputs import InputFile, open_source
from passion_tasks.ingest.landing import (
    RowGroups,
    land_day,
    mark_damaged,
    note_damage,
    plan_files,
    quarantine_file,
    start_file,
)
from passion_tasks.ingest.quarantine import Quarantine, TableWriter
from passion_tasks.ingest.report import IngestReport
from passion_tasks.lake import Day, Lake, as_day, datasets
from passion_tasks.lake.schemas import CDN_LOGS

DATASET = datasets.CDN_LOGS


def ingest_cdn_day(lake: Lake, day: Day, input: str) -> IngestReport:
    """Land ``day``'s CDN logs (CloudFront, DataStream 2 or combined format) found under ``input``.

    ``input`` is a file, a folder, a ``file://`` URL or an ``s3://bucket/prefix``. Raises
    ``NoInputError`` when it holds no log file for the day and ``UnknownFormatError`` when none of
    its files is in a format Passion reads (nothing is written then), and ``EmptyDayError`` when
    no line is good, after writing the quarantine.
    """
    day = as_day(day)
    report = IngestReport(day, DATASET)
    plan = plan_files(input, day, report, readable=LOG_FORMATS, described_as="CDN log", s3=lake.s3)

    def land(landed: RowGroups, quarantine: Quarantine) -> None:
        for file, kind in plan:
            land_file(file, kind, day, landed, quarantine, report)

    return land_day(lake, report, CDN_LOGS, land)


def land_file(
    file: InputFile,
    kind: str,
    day: dt.date,
    landed: TableWriter,
    quarantine: Quarantine,
    report: IngestReport,
) -> None:
    """Parse one log file of ``kind`` into ``landed`` (its good rows of ``day``) and ``quarantine``."""
    if not start_file(file, kind, quarantine, report):
        return
    log_format = LOG_FORMATS[kind]
    with open_source(file) as stream:
        try:
            for batch in log_format.read(stream, file, quarantine):
                good = reject(batch, day, quarantine, file.name)
                if len(good["ts"]):
                    landed.write(finish(good, log_format.url_encoded, log_format.name, file.name))
        except cloudfront.WrongHeader:
            mark_damaged(file, report)
            note_damage(quarantine_file(file, "wrong_header", quarantine), file, quarantine, report)
            return
        except cloudfront.UnreadableRest as error:
            mark_damaged(file, report)
            quarantine.add(file.name, error.line, "unreadable_rest", error.reason)
    note_damage(stream.raw, file, quarantine, report)
