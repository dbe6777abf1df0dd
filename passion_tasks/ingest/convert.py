"""Vectorised typing of raw CDN log fields into ``CDN_LOGS`` columns, shared by every log format.

A format's reader turns a batch of lines into string columns named as in ``CDN_LOGS`` (plus the
timestamp it knows how to read) and the checks its rows failed. From there every format goes the
same way: numbers are typed and checked here, rejected rows go to quarantine with the first reason
they failed, and the landed rows get URL-decoded text, user-agent fields and the live channel.
Work that needs Python (percent-decoding, ua-parser) is done once per distinct value.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ua_parser

from passion_tasks.ingest.quarantine import Quarantine
from passion_tasks.lake.schemas import CDN_LOGS

#: Digits that always fit the type, so a value never fails the cast once it matches.
INTEGER_PATTERNS = {
    pa.int16(): r"^\d{1,4}$",
    pa.int32(): r"^-?\d{1,9}$",
    pa.int64(): r"^-?\d{1,18}$",
}
FLOAT_PATTERN = r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$"
REQUIRED = ("ts", "sc_status")
UA_FIELDS = ("os_family", "ua_family", "ua_major", "device_family", "device_brand")
LIVE_CHANNEL = r"^/live/(?P<channel>[^/]+)/"

Check = tuple[str, pa.Array]
"""A reason and the mask of the rows that fail it."""


@dataclass
class ParsedBatch:
    """A batch of one log file, typed as far as its format goes, before any row is rejected.

    ``columns`` hold ``CDN_LOGS`` columns, strings where numbers are still to be typed; ``checks``
    are the format's own (reason, failing-rows mask) pairs, the first failed one naming a row's
    reason; ``lines`` are physical line numbers and ``raw_lines(mask)`` gives the original text of
    the masked rows.
    """

    columns: dict[str, pa.Array]
    checks: list[Check]
    lines: pa.Array
    raw_lines: Callable[[pa.Array], pa.Array]


def to_text(values: pa.Array) -> tuple[pa.Array, pa.Array | None]:
    """Binary ``values`` as strings, and the mask of values that are not UTF-8 (None: all are)."""
    try:
        return pc.cast(values, pa.string()), None
    except pa.ArrowInvalid:
        bad = pa.array([value is not None and not _is_utf8(value) for value in values.to_pylist()])
        return pc.cast(pc.if_else(bad, None, values), pa.string()), bad


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def to_number(values: pa.Array, type: pa.DataType) -> tuple[pa.Array, pa.Array | None]:
    """String ``values`` as numbers of ``type``, and the mask of present values that are not numbers.

    Null stays null. The mask is None when every value converts, the common case, which costs a
    single cast.
    """
    try:
        numbers = pc.cast(values, type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pattern = FLOAT_PATTERN if pa.types.is_floating(type) else INTEGER_PATTERNS[type]
        bad = pc.invert(pc.fill_null(pc.match_substring_regex(values, pattern), True))
        return pc.cast(pc.if_else(bad, None, values), type), bad
    if pa.types.is_floating(type) and numbers.null_count < len(numbers):
        infinite = pc.invert(pc.fill_null(pc.is_finite(numbers), True))
        if pc.any(infinite).as_py():
            return pc.if_else(infinite, None, numbers), infinite
    return numbers, None


def type_numbers(columns: dict[str, pa.Array]) -> list[Check]:
    """Type, in place, the string columns that ``CDN_LOGS`` holds as numbers; checks for the bad ones."""
    checks = []
    for name, values in columns.items():
        target = CDN_LOGS.field(name).type
        if pa.types.is_string(values.type) and (pa.types.is_integer(target) or pa.types.is_floating(target)):
            columns[name], bad = to_number(values, target)
            if bad is not None:
                checks.append((f"bad_{name}", bad))
    return checks


def day_check(ts: pa.Array, day: dt.date) -> Check:
    """Rows with a valid time on another (UTC) day than ``day``: quarantined, never silently dropped."""
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    inside = pc.and_(
        pc.greater_equal(ts, pa.scalar(start, ts.type)),
        pc.less(ts, pa.scalar(start + dt.timedelta(days=1), ts.type)),
    )
    return "other_day", pc.invert(pc.fill_null(inside, True))


def reject(batch: ParsedBatch, day: dt.date, quarantine: Quarantine, source_file: str) -> dict[str, pa.Array]:
    """Send the rows that fail a check to quarantine; the columns of the rows that pass.

    A row's reason is the first check it fails: the format's own, bad numbers, missing required
    values, and last ``other_day``, so a malformed line of another day is reported as malformed.
    """
    checks = batch.checks + type_numbers(batch.columns)
    checks += [(f"bad_{name}", pc.is_null(batch.columns[name])) for name in REQUIRED]
    checks.append(day_check(batch.columns["ts"], day))
    bad = functools.reduce(pc.or_, [mask for _, mask in checks])
    if not pc.any(bad).as_py():
        return batch.columns
    reasons = pa.nulls(pc.sum(bad).as_py(), pa.string())
    for reason, mask in reversed(checks):
        reasons = pc.if_else(mask.filter(bad), reason, reasons)
    quarantine.add_rows(source_file, batch.lines.filter(bad), reasons, batch.raw_lines(bad))
    good = pc.invert(bad)
    return {name: values.filter(good) for name, values in batch.columns.items()}


def finish(
    columns: dict[str, pa.Array], url_encoded: tuple[str, ...], source_format: str, source_file: str
) -> pa.Table:
    """The landed rows as ``CDN_LOGS``: decoded text, user-agent fields, live channel, provenance."""
    rows = len(columns["ts"])
    for name in url_encoded:
        if name in columns:
            columns[name] = url_decoded(columns[name])
    if "cs_user_agent" in columns:
        columns.update(user_agent_columns(distinct(columns["cs_user_agent"])))
    if "cs_uri_stem" in columns:
        columns["live_channel"] = on_distinct(columns["cs_uri_stem"], live_channels)
    columns["source_format"] = constant(source_format, rows)
    columns["source_file"] = constant(source_file, rows)
    arrays = [columns.get(field.name, pa.nulls(rows, field.type)) for field in CDN_LOGS]
    return pa.table(arrays, names=CDN_LOGS.names).cast(CDN_LOGS)


def constant(value: str, rows: int) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, np.int32)), pa.array([value]))


def distinct(values: pa.Array) -> pa.DictionaryArray:
    return values if pa.types.is_dictionary(values.type) else values.dictionary_encode()


def on_distinct(values: pa.Array, function: Callable[[pa.Array], pa.Array]) -> pa.Array:
    """``function`` (string array -> array) applied once per distinct value of ``values``."""
    if pa.types.is_dictionary(values.type):
        return pa.DictionaryArray.from_arrays(values.indices, function(values.dictionary))
    return function(values)


def url_decoded(values: pa.Array) -> pa.Array:
    """Percent-decoded ``values``; only the distinct values that hold a ``%`` go through Python."""
    plain = values.dictionary if pa.types.is_dictionary(values.type) else values
    if not pc.any(pc.match_substring(plain, "%")).as_py():
        return values
    return on_distinct(distinct(values), _unquote_all)


def _unquote_all(values: pa.Array) -> pa.Array:
    return pa.array([unquote(value) if value and "%" in value else value for value in values.to_pylist()])


def live_path(channel: str) -> str:
    """The path prefix of a live channel's requests (``LIVE_CHANNEL``): ``/live/<ch>``."""
    return f"/live/{channel}"


def live_channels(uri_stems: pa.Array) -> pa.Array:
    """``<ch>`` of ``/live/<ch>/...`` paths, else null."""
    return pc.struct_field(pc.extract_regex(uri_stems, LIVE_CHANNEL), [0])


@functools.lru_cache(maxsize=65_536)
def user_agent_fields(user_agent: str) -> tuple[str | None, ...]:
    """The seed notebook's user-agent fields, with ua-parser's ``Other`` for what it cannot tell."""
    parsed = ua_parser.parse(user_agent).with_defaults()
    return (
        parsed.os.family,
        parsed.user_agent.family,
        parsed.user_agent.major,
        parsed.device.family,
        parsed.device.brand,
    )


def user_agent_columns(user_agents: pa.DictionaryArray) -> dict[str, pa.Array]:
    """``UA_FIELDS`` columns of decoded user agents, each distinct agent parsed once."""
    parsed = [user_agent_fields(agent) for agent in user_agents.dictionary.to_pylist()]
    by_field = list(zip(*parsed, strict=True)) if parsed else [()] * len(UA_FIELDS)
    return {
        name: pa.DictionaryArray.from_arrays(user_agents.indices, pa.array(values, pa.string()))
        for name, values in zip(UA_FIELDS, by_field, strict=True)
    }
