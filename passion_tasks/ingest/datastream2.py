"""Akamai DataStream 2 logs: one JSON object per line, every value a string, ``-`` or ``^`` for empty.

Keys map onto ``CDN_LOGS`` as in ``shared/data/cdn/formats/fastly_and_mapping.md``; times come in
milliseconds (``turnAroundTimeMSec`` is the time to first byte, plus ``transferTimeMSec`` the time
to serve) and ``cacheStatus`` 1/0 is a hit or a miss.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from passion_tasks.ingest.convert import Check, ParsedBatch, to_number
from passion_tasks.ingest.inputs import InputFile
from passion_tasks.ingest.quarantine import Quarantine
from passion_tasks.lake.schemas import TS

NAME = "datastream2"
#: DataStream 2 key -> ``CDN_LOGS`` column, for values taken as they are.
COLUMNS = {
    "statusCode": "sc_status",
    "totalBytes": "sc_bytes",
    "rspContentLen": "sc_content_len",
    "rspContentType": "sc_content_type",
    "proto": "cs_protocol_version",
    "reqMethod": "cs_method",
    "queryStr": "cs_uri_query",
    "UA": "cs_user_agent",
    "cliIP": "c_ip",
    "reqHost": "cs_host",
    "referer": "cs_referer",
    "cookie": "cs_cookie",
    "reqId": "edge_request_id",
    "xForwardedFor": "x_forwarded_for",
    "tlsVersion": "ssl_protocol",
}
DERIVED_FROM = ("reqTimeSec", "reqPath", "cacheStatus", "turnAroundTimeMSec", "transferTimeMSec")
REQUIRED_KEYS = ("reqTimeSec", "statusCode")
EMPTY_VALUES = frozenset({"", "-", "^"})
URL_ENCODED = ("cs_user_agent", "cs_uri_stem", "cs_uri_query", "cs_referer", "cs_cookie")
#: Lines parsed into one batch.
BATCH_LINES = 50_000
#: Beyond this many seconds since 1970 (year 5138) a request time is not a time.
MAX_EPOCH_SECONDS = 1e11


def read(stream: io.BufferedReader, file: InputFile, quarantine: Quarantine) -> Iterator[ParsedBatch]:
    """Batches of one DataStream 2 file; lines that are not JSON objects with the required keys
    go straight to quarantine."""
    keys = (*COLUMNS, *DERIVED_FROM)
    values: dict[str, list[str | None]] = {key: [] for key in keys}
    lines: list[int] = []
    raw: list[str] = []
    for number, line in enumerate(stream, 1):
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        reason, record = _record(text)
        if reason:
            quarantine.add(file.name, number, reason, text)
            continue
        for key in keys:
            values[key].append(_text(record.get(key)))
        lines.append(number)
        raw.append(text)
        if len(lines) == BATCH_LINES:
            yield parse(values, lines, raw)
            values, lines, raw = {key: [] for key in keys}, [], []
    if lines:
        yield parse(values, lines, raw)


def _record(text: str) -> tuple[str | None, dict[str, Any]]:
    """The line's object, or the reason it is not one DataStream 2 can give."""
    if not text.strip():
        return "blank_line", {}
    try:
        record = json.loads(text)
    except ValueError:
        return "malformed_json", {}
    if not isinstance(record, dict):
        return "malformed_json", {}
    for key in REQUIRED_KEYS:
        if key not in record:
            return f"missing_{key}", {}
    return None, record


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    return None if text in EMPTY_VALUES else text


def parse(values: dict[str, list[str | None]], lines: list[int], raw: list[str]) -> ParsedBatch:
    """Typed timestamp, times and cache result, and text columns, of one batch of records."""
    text = {key: pa.array(column, pa.string()) for key, column in values.items()}
    columns = {name: text[key] for key, name in COLUMNS.items()}
    columns["host_header"] = text["reqHost"]
    columns["cs_uri_stem"] = _absolute(text["reqPath"])
    columns["edge_result_type"] = pc.case_when(
        pc.make_struct(pc.equal(text["cacheStatus"], "1"), pc.equal(text["cacheStatus"], "0")),
        "Hit",
        "Miss",
    )
    checks: list[Check] = []
    seconds, bad_seconds = to_number(text["reqTimeSec"], pa.float64())
    out_of_range = pc.fill_null(pc.greater(pc.abs(seconds), MAX_EPOCH_SECONDS), False)
    seconds = pc.if_else(out_of_range, None, seconds)
    checks.append(("bad_ts", out_of_range if bad_seconds is None else pc.or_(bad_seconds, out_of_range)))
    columns["ts"] = pc.cast(pc.cast(pc.round(pc.multiply(seconds, 1000)), pa.int64()), TS)
    first_byte_ms, bad_first_byte = to_number(text["turnAroundTimeMSec"], pa.float64())
    transfer_ms, bad_transfer = to_number(text["transferTimeMSec"], pa.float64())
    columns["time_to_first_byte"] = pc.divide(first_byte_ms, 1000.0)
    columns["time_taken"] = pc.divide(pc.add(first_byte_ms, transfer_ms), 1000.0)
    if bad_first_byte is not None:
        checks.append(("bad_time_to_first_byte", bad_first_byte))
    if bad_transfer is not None:
        checks.append(("bad_time_taken", bad_transfer))
    raw_array = pa.array(raw, pa.string())
    return ParsedBatch(columns, checks, pa.array(lines, pa.int64()), raw_array.filter)


def _absolute(paths: pa.Array) -> pa.Array:
    """DataStream 2 paths come without their leading ``/``."""
    relative = pc.invert(pc.fill_null(pc.starts_with(paths, "/"), True))
    return pc.if_else(relative, pc.binary_join_element_wise("", paths, "/"), paths)
