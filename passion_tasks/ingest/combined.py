"""Apache/NCSA combined and common log format, the default style of Fastly and most web servers.

``%h %l %u %t "%r" %>s %b`` optionally followed by ``"%{Referer}i" "%{User-agent}i"`` (and
anything a site appends after those). What the format has lands (client, time, request line,
status, bytes, referer, user agent); every other ``CDN_LOGS`` column is null.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from passion_tasks.ingest.convert import ParsedBatch
from passion_tasks.ingest.inputs import InputFile
from passion_tasks.ingest.quarantine import Quarantine
from passion_tasks.lake.schemas import TS

NAME = "combined"
_QUOTED = r'"((?:[^"\\]|\\.)*)"'
LINE = re.compile(rf"^(\S+) \S+ \S+ \[([^\]]+)\] {_QUOTED} (\S+) (\S+)(?: {_QUOTED} {_QUOTED}(?: .*)?)?$")
COLUMNS = ("c_ip", "time", "request", "sc_status", "sc_bytes", "cs_referer", "cs_user_agent")
TIME_FORMAT = "%d/%b/%Y:%H:%M:%S %z"
#: Paths and queries are percent-encoded on the wire; referer and agent are logged as sent.
URL_ENCODED = ("cs_uri_stem", "cs_uri_query")
BATCH_LINES = 50_000


def read(stream: io.BufferedReader, file: InputFile, quarantine: Quarantine) -> Iterator[ParsedBatch]:
    """Batches of one combined/common log; lines that do not match the format go to quarantine."""
    fields: list[tuple[str | None, ...]] = []
    lines: list[int] = []
    raw: list[str] = []
    for number, line in enumerate(stream, 1):
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        match = LINE.match(text)
        if not match:
            quarantine.add(file.name, number, "blank_line" if not text.strip() else "malformed_line", text)
            continue
        fields.append(match.groups())
        lines.append(number)
        raw.append(text)
        if len(lines) == BATCH_LINES:
            yield parse(fields, lines, raw)
            fields, lines, raw = [], [], []
    if lines:
        yield parse(fields, lines, raw)


def parse(fields: list[tuple[str | None, ...]], lines: list[int], raw: list[str]) -> ParsedBatch:
    """Typed timestamp, split request line and text columns of one batch of matched lines."""
    values = dict(zip(COLUMNS, zip(*fields, strict=True), strict=True))
    ts = pc.cast(
        pc.strptime(pa.array(values["time"], pa.string()), TIME_FORMAT, "ms", error_is_null=True), TS
    )
    method, stem, query, version = zip(*map(split_request, values["request"]), strict=True)
    columns = {
        "ts": ts,
        "c_ip": pa.array(values["c_ip"], pa.string()),
        "cs_method": pa.array(method, pa.string()),
        "cs_uri_stem": pa.array(stem, pa.string()),
        "cs_uri_query": pa.array(query, pa.string()),
        "cs_protocol_version": pa.array(version, pa.string()),
        "sc_status": pa.array(values["sc_status"], pa.string()),
        # "-" is the format's way of writing zero bytes.
        "sc_bytes": pa.array(["0" if b == "-" else b for b in values["sc_bytes"]], pa.string()),
        "cs_referer": pa.array(map(unescape, values["cs_referer"]), pa.string()),
        "cs_user_agent": pa.array(map(unescape, values["cs_user_agent"]), pa.string()),
    }
    return ParsedBatch(
        columns, [("bad_ts", pc.is_null(ts))], pa.array(lines, pa.int64()), pa.array(raw).filter
    )


def split_request(request: str) -> tuple[str | None, str | None, str | None, str | None]:
    """Method, path, query and protocol version of a request line such as ``GET /a?b=1 HTTP/1.1``."""
    parts = request.split(" ")
    if len(parts) == 3 and parts[2].startswith("HTTP/"):
        method, target, version = parts
    elif len(parts) == 2:  # HTTP/0.9 had no version
        (method, target), version = parts, None
    else:
        return None, None, None, None
    stem, _, query = target.partition("?")
    return method, stem, query or None, version


def unescape(value: str | None) -> str | None:
    """A quoted field's text: ``-`` is empty, ``\\"`` and ``\\\\`` are escapes."""
    if value is None or value == "-":
        return None
    return value.replace('\\"', '"').replace("\\\\", "\\")
