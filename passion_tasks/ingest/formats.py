"""Telling a file's format from its first lines, never from its name."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from passion_tasks.ingest import cloudfront, combined, datastream2
from passion_tasks.ingest.convert import ParsedBatch
from passion_tasks.ingest.inputs import InputFile
from passion_tasks.ingest.quarantine import Quarantine

METRICS_JSON = "metrics_json"
EMPTY = "empty"
UNKNOWN = "unknown"
#: A CloudFront data line: the header may be missing, the file is still CloudFront's.
CLOUDFRONT_ROW = re.compile(r"^\d{4}-\d{2}-\d{2}\t\d{2}:\d{2}:\d{2}\t")
#: Passion's server metrics: one JSON object per series, keyed by timestamp.
METRICS_OBJECT = re.compile(r'^\s*\{\s*"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}')


@dataclass(frozen=True)
class LogFormat:
    """A CDN log format: its reader of parsed batches and the fields it percent-encodes."""

    name: str
    read: Callable[[io.BufferedReader, InputFile, Quarantine], Iterator[ParsedBatch]]
    url_encoded: tuple[str, ...]


LOG_FORMATS = {
    module.NAME: LogFormat(module.NAME, module.read, module.URL_ENCODED)
    for module in (cloudfront, datastream2, combined)
}


def sniff(head: bytes) -> str:
    """The format of a file that starts with ``head``: a ``LOG_FORMATS`` name, ``METRICS_JSON``,
    ``EMPTY`` or ``UNKNOWN``."""
    text = head.decode("utf-8", "replace")
    first = next((line.strip() for line in text.splitlines() if line.strip()), None)
    if first is None:
        return EMPTY
    if first.startswith(("#Version:", "#Fields:")) or CLOUDFRONT_ROW.match(first):
        return cloudfront.NAME
    if METRICS_OBJECT.match(text):
        return METRICS_JSON
    if first.startswith("{") and _is_datastream2(first):
        return datastream2.NAME
    if combined.LINE.match(first):
        return combined.NAME
    return UNKNOWN


def _is_datastream2(line: str) -> bool:
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and "reqTimeSec" in record
