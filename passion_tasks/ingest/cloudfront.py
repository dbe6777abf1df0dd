"""AWS CloudFront standard (access) logs: ``#Version``/``#Fields`` headers, then tab-separated lines.

Columns are found by the names in the file's own ``#Fields`` line, so any order and the shorter
field lists of older logs read the same; fields a file lacks land as null. The file is streamed
in blocks through Arrow's CSV reader (no quoting, every field read as bytes), then typed with
vectorised compute, so memory stays bounded whatever the file's size.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from passion_tasks.ingest.convert import Check, ParsedBatch, to_text
from passion_tasks.ingest.inputs import InputFile
from passion_tasks.ingest.quarantine import Quarantine
from passion_tasks.lake.schemas import TS

NAME = "cloudfront"
#: CloudFront field name -> ``CDN_LOGS`` column (``date`` and ``time`` make ``ts``).
COLUMNS = {
    "x-edge-location": "edge_location",
    "sc-bytes": "sc_bytes",
    "c-ip": "c_ip",
    "cs-method": "cs_method",
    "cs(Host)": "cs_host",
    "cs-uri-stem": "cs_uri_stem",
    "sc-status": "sc_status",
    "cs(Referer)": "cs_referer",
    "cs(User-Agent)": "cs_user_agent",
    "cs-uri-query": "cs_uri_query",
    "cs(Cookie)": "cs_cookie",
    "x-edge-result-type": "edge_result_type",
    "x-edge-request-id": "edge_request_id",
    "x-host-header": "host_header",
    "cs-protocol": "cs_protocol",
    "cs-bytes": "cs_bytes",
    "time-taken": "time_taken",
    "x-forwarded-for": "x_forwarded_for",
    "ssl-protocol": "ssl_protocol",
    "ssl-cipher": "ssl_cipher",
    "x-edge-response-result-type": "edge_response_result_type",
    "cs-protocol-version": "cs_protocol_version",
    "fle-status": "fle_status",
    "fle-encrypted-fields": "fle_encrypted_fields",
    "c-port": "c_port",
    "time-to-first-byte": "time_to_first_byte",
    "x-edge-detailed-result-type": "edge_detailed_result_type",
    "sc-content-type": "sc_content_type",
    "sc-content-len": "sc_content_len",
    "sc-range-start": "sc_range_start",
    "sc-range-end": "sc_range_end",
}
REQUIRED_FIELDS = ("date", "time", "sc-status")
URL_ENCODED = ("cs_user_agent", "cs_uri_stem", "cs_uri_query", "cs_referer", "cs_cookie")
#: Bytes of decompressed log the CSV reader parses at a time (about 9,000 lines). Arrow reads
#: up to 32 blocks ahead on its I/O thread, so this sets the reader's memory: about 130 MiB.
BLOCK_SIZE = 4 * 1024 * 1024


class WrongHeader(ValueError):
    """The file has no ``#Fields`` line, or one without the fields every row needs."""


class UnreadableRest(ValueError):
    """The file cannot be parsed from ``line`` on; the lines before it were read."""

    def __init__(self, line: int, reason: str):
        super().__init__(f"unreadable from line {line}: {reason}")
        self.line, self.reason = line, reason


def read_header(stream: io.BufferedReader) -> tuple[list[str], int]:
    """The ``#Fields`` names and the number of header lines, leaving ``stream`` at the first row."""
    fields, count = None, 0
    while stream.peek(1)[:1] == b"#":
        line = stream.readline().decode("utf-8", "replace").strip()
        count += 1
        if line.startswith("#Fields:"):
            fields = line.split()[1:]
    if fields is None:
        raise WrongHeader("no #Fields header line")
    absent = [name for name in REQUIRED_FIELDS if name not in fields]
    if absent:
        raise WrongHeader(f"#Fields lacks {', '.join(absent)}")
    return fields, count


def read(stream: io.BufferedReader, file: InputFile, quarantine: Quarantine) -> Iterator[ParsedBatch]:
    """Batches of one CloudFront log; lines with a wrong field count go straight to quarantine."""
    fields, header_lines = read_header(stream)
    lines = LineNumbers(header_lines)

    def on_invalid_row(row: pacsv.InvalidRow) -> str:
        lines.reject(row.number)
        # A repeated header (log files concatenated into one) is not a line of data.
        if not row.text.startswith("#"):
            quarantine.add(file.name, header_lines + row.number, "wrong_field_count", row.text)
        return "skip"

    reader = pacsv.open_csv(
        stream,
        # Serial parsing is what gives the rejected rows their line numbers.
        read_options=pacsv.ReadOptions(column_names=fields, use_threads=False, block_size=BLOCK_SIZE),
        parse_options=pacsv.ParseOptions(
            delimiter="\t",
            quote_char=False,
            ignore_empty_lines=False,
            invalid_row_handler=on_invalid_row,
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.binary() for name in fields},
            null_values=["-"],
            strings_can_be_null=True,
        ),
    )
    try:
        for raw in reader:
            yield parse(raw, lines.next_rows(raw.num_rows))
    except pa.ArrowInvalid as error:
        # A line longer than a block (binary junk in the file): nothing after it can be parsed.
        raise UnreadableRest(lines.next_line, str(error)) from error


class LineNumbers:
    """Physical line numbers of the rows the CSV reader returns, from the data lines it rejected.

    Row ``v`` (0-based, in reading order) sits on data line ``v + 1 + r``, ``r`` the number of
    rejected lines before it. The j-th rejected line ``i_j`` (1-based) comes before row ``v``
    exactly when ``i_j - j <= v``, and ``i_j - j`` never decreases, so a binary search counts
    them; rejected lines before every row handed out so far are only counted from then on.
    """

    def __init__(self, header_lines: int):
        self._header_lines = header_lines
        self._rows = 0
        self._settled = 0
        self._pending: list[int] = []

    @property
    def next_line(self) -> int:
        """The first line not yet handed out or rejected."""
        return self._header_lines + self._rows + self._settled + len(self._pending) + 1

    def reject(self, number: int) -> None:
        """The CSV reader rejected data line ``number`` (1-based, headers not counted)."""
        self._pending.append(number)

    def next_rows(self, count: int) -> pa.Array:
        """Line numbers of the next ``count`` rows, headers counted."""
        rows = np.arange(self._rows, self._rows + count, dtype=np.int64)
        order = np.arange(self._settled + 1, self._settled + len(self._pending) + 1, dtype=np.int64)
        keys = np.asarray(self._pending, dtype=np.int64) - order
        before = self._settled + np.searchsorted(keys, rows, side="right")
        settled = int(before[-1]) - self._settled if count else 0
        del self._pending[:settled]
        self._settled += settled
        self._rows += count
        return pa.array(rows + 1 + self._header_lines + before)


def parse(raw: pa.RecordBatch, lines: pa.Array) -> ParsedBatch:
    """Typed timestamp, text columns and their checks of one block of rows."""
    checks: list[Check] = []
    text = {}
    for name in ["date", "time", *(name for name in raw.schema.names if name in COLUMNS)]:
        text[name], bad = to_text(raw.column(name))
        if bad is not None:
            checks.append((f"bad_{COLUMNS.get(name, name)}", bad))
    ts, time_checks = timestamps(text["date"], text["time"])
    columns = {COLUMNS[name]: values for name, values in text.items() if name in COLUMNS}
    columns["ts"] = ts
    if time_checks:
        checks = [("blank_line", blank_rows(raw)), *checks, *time_checks]
    return ParsedBatch(columns, checks, lines, lambda mask: raw_lines(raw, mask))


def timestamps(date: pa.Array, time: pa.Array) -> tuple[pa.Array, list[Check]]:
    """UTC timestamps of ``date`` + ``time``, and which of the two failed where one is bad."""
    joined = pc.binary_join_element_wise(date, time, " ")
    ts = pc.cast(pc.strptime(joined, "%Y-%m-%d %H:%M:%S", "s", error_is_null=True), TS)
    if not ts.null_count:
        return ts, []
    bad_date = pc.is_null(pc.strptime(date, "%Y-%m-%d", "s", error_is_null=True))
    return ts, [("bad_date", bad_date), ("bad_time", pc.is_null(ts))]


def blank_rows(raw: pa.RecordBatch) -> pa.Array:
    """Rows that were empty lines (the CSV reader gives those as all-empty fields)."""
    empty = [pc.fill_null(pc.equal(pc.binary_length(column), 0), False) for column in raw.columns]
    return functools.reduce(pc.and_, empty)


def raw_lines(raw: pa.RecordBatch, mask: pa.Array) -> pa.Array:
    """The original text of the masked rows: their fields joined by tabs, ``-`` for null."""
    columns = [pc.fill_null(column.filter(mask), b"-") for column in raw.columns]
    joined = pc.binary_join_element_wise(*columns, b"\t")
    blank = b"\t" * (len(columns) - 1)
    return pa.array(
        ["" if line == blank else line.decode("utf-8", "replace") for line in joined.to_pylist()],
        pa.string(),
    )
