"""AWS CloudFront standard (access) logs: gzip, tab-separated, the 33 fields of the W3C format."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from passion_tasks.synthetic import catalog as cat
from passion_tasks.synthetic import fields as f
from passion_tasks.synthetic.output import GzipWriter
from passion_tasks.synthetic.requests import Requests, choice, sample_requests
from passion_tasks.synthetic.traffic import HOUR_MS

HEADER = ("#Version: 1.0\n#Fields: " + " ".join(cat.CLOUDFRONT_FIELDS) + "\n").encode()
#: Rows formatted at a time: bounds memory whatever the file's size.
CHUNK_ROWS = 50_000


def cloudfront_lines(requests: Requests, rng: np.random.Generator) -> pa.Buffer:
    """The requests as CloudFront log lines: the 33 fields, tab-separated, in the format's order."""
    n = len(requests)
    date, time = f.date_and_time(requests.ts_ms)
    streams = (cat.LIVE, cat.VOD)
    stream = requests.stream.astype(np.int64)
    result = f.lookup(cat.RESULTS, requests.result)
    columns = [
        date,
        time,
        f.lookup(tuple(edge.code for edge in cat.EDGES), requests.edge),
        f.integers(requests.sc_bytes),
        f.ipv4(requests.ip),
        f.lookup(cat.METHODS, requests.method),
        f.lookup(tuple(s.domain for s in streams), stream),
        f.paths(requests),
        pc.utf8_lpad(f.integers(requests.status), width=3, padding="0"),  # 000: the viewer hung up
        f.referers(requests),
        f.lookup(f.user_agents(), requests.client),
        f.constant(f.EMPTY, n),
        f.constant(f.EMPTY, n),
        result,
        f.random_text(rng, f.BASE64URL, n, 54, suffix="=="),
        f.lookup(tuple(s.host_header for s in streams), stream),
        f.lookup(cat.SCHEMES, requests.scheme),
        f.integers(requests.cs_bytes),
        f.seconds(requests.time_taken_ms),
        f.constant(f.EMPTY, n),
        f.lookup(cat.TLS_VERSIONS, requests.tls),
        f.lookup(cat.CIPHERS, requests.cipher),
        result,
        f.lookup(cat.VERSIONS, requests.version),
        f.constant(f.EMPTY, n),
        f.constant(f.EMPTY, n),
        f.integers(requests.port),
        f.seconds(requests.ttfb_ms),
        f.lookup(cat.DETAILED_RESULTS, requests.detail),
        f.content_types(requests),
        f.integers(requests.content_len, missing=f.EMPTY),
        f.integers(requests.range_start, missing=f.EMPTY),
        f.integers(f.range_end(requests), missing=f.EMPTY),
    ]
    return f.lines(columns, "\t")


def cloudfront_chunks(batches: Iterable[tuple[Requests, np.random.Generator]]) -> Iterator[bytes | pa.Buffer]:
    """The two header lines, then the lines of each batch, `CHUNK_ROWS` at a time."""
    yield HEADER
    for requests, rng in batches:
        for start in range(0, len(requests), CHUNK_ROWS):
            yield cloudfront_lines(requests.take(slice(start, start + CHUNK_ROWS)), rng)


def log_file_name(distribution: str, hour_start_ms: int, seed: int) -> str:
    """``<DIST>.YYYY-MM-DD-HH.<8 hex>.gz``; the hex id is fixed by the seed, like the rest."""
    hour = dt.datetime.fromtimestamp(hour_start_ms / 1000, dt.UTC)
    unique = hashlib.sha256(f"{seed}:{distribution}:{hour_start_ms}".encode()).hexdigest()[:8]
    return f"{distribution}.{hour:%Y-%m-%d-%H}.{unique}.gz"


def write_cloudfront_log(
    path: str | os.PathLike[str],
    start: dt.datetime,
    lines: int,
    seed: int = 0,
    *,
    chunk_rows: int = CHUNK_ROWS,
) -> int:
    """Write one gzip CloudFront log of exactly `lines` requests spread over the hour from `start`.

    The live distribution's traffic mix; memory stays bounded by `chunk_rows` whatever `lines` is.
    Returns the number of request lines written.
    """
    if lines < 0 or chunk_rows < 1:
        raise ValueError("lines must be >= 0 and chunk_rows >= 1")
    start_ms = int((start if start.tzinfo else start.replace(tzinfo=dt.UTC)).timestamp() * 1000)
    chunks = max(1, math.ceil(lines / chunk_rows))

    def batches() -> Iterable[tuple[Requests, np.random.Generator]]:
        for index in range(chunks):
            rng = np.random.default_rng([seed, 104_729, index])
            rows = lines // chunks + (index < lines % chunks)
            span_start = start_ms + index * HOUR_MS // chunks
            span = (index + 1) * HOUR_MS // chunks - index * HOUR_MS // chunks
            ts = np.sort(span_start + rng.integers(0, span, rows))
            region = choice(rng, tuple(edge.weight for edge in cat.EDGES), rows).astype(np.int8)
            yield sample_requests(rng, cat.LIVE, ts, region), rng

    with GzipWriter() as writer:
        writer.write(Path(path), cloudfront_chunks(batches()))
    return lines
