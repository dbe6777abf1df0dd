"""Akamai DataStream 2 JSON lines: one object per request, every value a string.

Keys and conventions follow the sample in the shared reference data (keys in alphabetical
order, ``-`` for empty, ``^`` for fields the stream does not collect, URL-encoded user agent,
``reqTimeSec`` as epoch seconds with milliseconds, ``reqPath`` without its leading slash).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from passion_tasks.synthetic import catalog as cat
from passion_tasks.synthetic import fields as f
from passion_tasks.synthetic.requests import Requests

CP_CODES = ("1318842", "1318843")  # live, VOD
NOT_COLLECTED = "^"
ERROR_CODES = {
    0: "ERR_CLIENT_ABORT|general",
    403: "ERR_ACCESS_DENIED|fwd_acl",
    502: "ERR_CONNECT_FAIL",
    503: "ERR_CONNECT_FAIL",
    504: "ERR_READ_TIMEOUT",
}
CHUNK_ROWS = 100_000


def datastream2_lines(requests: Requests, rng: np.random.Generator) -> pa.Buffer:
    """The requests as DataStream 2 JSON lines."""
    n = len(requests)
    empty = f.constant(f.EMPTY, n)
    not_collected = f.constant(NOT_COLLECTED, n)
    epoch_ms = requests.ts_ms
    error_code = empty
    for status, code in ERROR_CODES.items():
        error_code = pc.if_else(pa.array(requests.status == status), code, error_code)
    # DataStream logs what was being sent when a viewer hangs up, and says so in errorCode.
    status = np.where(requests.status == 0, np.where(requests.range_start >= 0, 206, 200), requests.status)
    is_vod = (requests.channel < 0).astype(np.int8)
    ttfb_ms = requests.ttfb_ms
    values = {
        "UA": f.lookup(f.user_agents(), requests.client),
        "accLang": not_collected,
        "bytes": f.integers(requests.body_bytes),
        "cacheStatus": f.integers(np.isin(requests.result, cat.CACHE_HITS).astype(np.int8)),
        "city": f.lookup(tuple(edge.city for edge in cat.EDGES), requests.region),
        "cliIP": f.ipv4(requests.ip),
        "cookie": not_collected,
        "country": f.lookup(tuple(edge.country for edge in cat.EDGES), requests.region),
        "cp": f.lookup(CP_CODES, is_vod),
        "customField": empty,
        "dnsLookupTimeMSec": empty,
        "errorCode": error_code,
        "maxAgeSec": f.integers(np.array(cat.KIND_MAX_AGE_S)[requests.kind]),
        "objSize": f.integers(requests.object_size),
        "overheadBytes": not_collected,
        "proto": f.lookup(cat.VERSIONS, requests.version),
        "queryStr": empty,
        "range": pc.if_else(
            pa.array(requests.range_start >= 0),
            pc.binary_join_element_wise(
                f.integers(requests.range_start), f.integers(f.range_end(requests)), "-"
            ),
            f.EMPTY,
        ),
        "referer": f.referers(requests),
        "reqEndTimeMSec": f.integers(rng.integers(1, 12, n)),
        "reqHost": f.lookup((cat.LIVE.host_header, cat.VOD.host_header), is_vod),
        "reqId": f.random_text(rng, f.HEX, n, 8),
        "reqMethod": f.lookup(cat.METHODS, requests.method),
        "reqPath": pc.utf8_slice_codeunits(f.paths(requests), start=1),
        "reqPort": f.lookup(("443", "80"), requests.scheme),
        "reqTimeSec": f.seconds(epoch_ms),
        "rspContentLen": f.integers(requests.content_len, missing=f.EMPTY),
        "rspContentType": f.content_types(requests),
        "state": empty,
        "statusCode": f.integers(status),
        "tlsOverheadTimeMSec": empty,
        "tlsVersion": f.lookup(cat.TLS_VERSIONS, requests.tls),
        "totalBytes": f.integers(requests.sc_bytes),
        "transferTimeMSec": f.integers(requests.time_taken_ms - ttfb_ms),
        "turnAroundTimeMSec": f.integers(ttfb_ms),
        "uncompressedSize": empty,
        "version": f.constant("5", n),
        "xForwardedFor": empty,
    }
    pieces: list[pa.Array | str] = []
    for position, (key, column) in enumerate(values.items()):
        pieces += ["{" if position == 0 else ", ", f'"{key}": "', column, '"']
    pieces.append("}")
    return f.lines([pc.binary_join_element_wise(*pieces, "")], "")


def datastream2_chunks(requests: Requests, rng: np.random.Generator) -> Iterator[pa.Buffer]:
    for start in range(0, len(requests), CHUNK_ROWS):
        yield datastream2_lines(requests.take(slice(start, start + CHUNK_ROWS)), rng)


def datastream2_file_name(hour_start_ms: int) -> str:
    """``YYYY/MM/DD/ds2-YYYY-MM-DD-HH.jsonl.gz``, relative to the stream's folder."""
    hour = dt.datetime.fromtimestamp(hour_start_ms / 1000, dt.UTC)
    return f"{hour:%Y/%m/%d}/ds2-{hour:%Y-%m-%d-%H}.jsonl.gz"
