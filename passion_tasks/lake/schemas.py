"""Arrow schemas of the lake's datasets.

Column names are the CloudFront field names in snake case, so an operator who knows the vendor
log recognises them; other vendors' fields are mapped onto the same names by their parsers.
"""

from __future__ import annotations

import hashlib
from urllib.parse import quote

import pyarrow as pa

TS = pa.timestamp("ms", tz="UTC")
STR = pa.string()

CDN_LOGS = pa.schema(
    [
        pa.field("ts", TS, nullable=False),
        pa.field("edge_location", STR),
        pa.field("sc_bytes", pa.int64()),
        pa.field("c_ip", STR),
        pa.field("cs_method", STR),
        pa.field("cs_host", STR),
        pa.field("cs_uri_stem", STR),
        pa.field("sc_status", pa.int16(), nullable=False),
        pa.field("cs_referer", STR),
        pa.field("cs_user_agent", STR),
        pa.field("cs_uri_query", STR),
        pa.field("cs_cookie", STR),
        pa.field("edge_result_type", STR),
        pa.field("edge_request_id", STR),
        pa.field("host_header", STR),
        pa.field("cs_protocol", STR),
        pa.field("cs_bytes", pa.int64()),
        pa.field("time_taken", pa.float64()),
        pa.field("x_forwarded_for", STR),
        pa.field("ssl_protocol", STR),
        pa.field("ssl_cipher", STR),
        pa.field("edge_response_result_type", STR),
        pa.field("cs_protocol_version", STR),
        pa.field("fle_status", STR),
        pa.field("fle_encrypted_fields", STR),
        pa.field("c_port", pa.int32()),
        pa.field("time_to_first_byte", pa.float64()),
        pa.field("edge_detailed_result_type", STR),
        pa.field("sc_content_type", STR),
        pa.field("sc_content_len", pa.int64()),
        pa.field("sc_range_start", pa.int64()),
        pa.field("sc_range_end", pa.int64()),
        # Derived at ingestion, as the seed notebook did with ua-parser and the path.
        pa.field("os_family", STR),
        pa.field("ua_family", STR),
        pa.field("ua_major", STR),
        pa.field("device_family", STR),
        pa.field("device_brand", STR),
        pa.field("live_channel", STR),
        pa.field("source_format", STR, nullable=False),
        pa.field("source_file", STR, nullable=False),
    ]
)

METRICS = pa.schema(
    [
        pa.field("ts", TS, nullable=False),
        pa.field("source", STR, nullable=False),
        pa.field("series", STR, nullable=False),
        pa.field("value", pa.float64()),
    ]
)

QUARANTINE = pa.schema(
    [
        pa.field("source_file", STR, nullable=False),
        pa.field("line_number", pa.int64()),
        pa.field("reason", STR, nullable=False),
        pa.field("raw", STR),
    ]
)

#: Per-minute feature series in long form. ``series`` is the full name, e.g.
#: ``cdn_ttfb_p95{edge=FRA2}``; ``metric``, ``dim`` and ``dim_value`` are its parts, kept as
#: columns so reports can break an incident down without parsing names.
FEATURES = pa.schema(
    [
        pa.field("ts", TS, nullable=False),
        pa.field("series", STR, nullable=False),
        pa.field("metric", STR, nullable=False),
        pa.field("dim", STR, nullable=False),
        pa.field("dim_value", STR, nullable=False),
        pa.field("value", pa.float64()),
    ]
)

#: ``threshold`` is stored per row: a model's threshold may differ from one day's model to the next.
SCORES = pa.schema(
    [
        pa.field("ts", TS, nullable=False),
        pa.field("series", STR, nullable=False),
        pa.field("detector", STR, nullable=False),
        pa.field("model_version", STR, nullable=False),
        pa.field("value", pa.float64()),
        pa.field("expected", pa.float64()),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("threshold", pa.float64()),
        pa.field("is_anomaly", pa.bool_(), nullable=False),
    ]
)

EVENTS = pa.schema(
    [
        pa.field("start", TS, nullable=False),
        pa.field("end", TS, nullable=False),
        pa.field("series", STR, nullable=False),
        pa.field("detector", STR, nullable=False),
        pa.field("peak_score", pa.float64(), nullable=False),
        pa.field("peak_ts", TS, nullable=False),
        pa.field("minutes", pa.int32(), nullable=False),
    ]
)


#: The longest name part taken from data (a dimension value, a metric file's name), percent-encoded as
#: the lake's paths write it: a series name must fit in one path segment of any filesystem or store.
MAX_NAME_PART = 64
#: How much of a longer part is kept readable before the hash that tells such parts apart.
KEPT_PREFIX = 40


#: The endings of a series' previous-hour features (``<series>_open`` ...): model inputs, not series.
INPUT_ONLY_SUFFIXES = ("_open", "_close", "_max", "_min")


def series_name(metric: str, dim: str = "", dim_value: str = "") -> str:
    """The canonical series name: ``metric`` or ``metric{dim=value}``."""
    return f"{metric}{{{dim}={dim_value}}}" if dim else metric


def bounded_name(part: str) -> str:
    """``part`` if it is short enough to name a series, else its start and a hash of all of it.

    Clients choose URLs and headers, and a name part that long would make a series no store can hold:
    ``/live/<300 characters>/`` names the channel ``<first characters>~<12 hex digits>``, the same one
    every day, and distinct parts stay distinct.
    """
    if len(quote(part, safe="")) <= MAX_NAME_PART:
        return part
    kept = ""
    for character in part:
        if len(quote(kept + character, safe="")) > KEPT_PREFIX:
            break
        kept += character
    return f"{kept}~{hashlib.sha256(part.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}"
