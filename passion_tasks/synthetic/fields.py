"""Turning request columns into log-field text, vectorised with Arrow compute kernels."""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from passion_tasks.synthetic import catalog as cat
from passion_tasks.synthetic.requests import Requests

EMPTY = "-"
BASE64URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
HEX = b"0123456789abcdef"
_THOUSANDTHS = pa.array([f"{n:03d}" for n in range(1000)], type=pa.string())
_OCTETS = pa.array([str(n) for n in range(256)], type=pa.string())


def lookup(values: tuple[str, ...], index: np.ndarray, missing: str = EMPTY) -> pa.Array:
    """``values[index]`` as text, `missing` where the index is negative."""
    return _vocabulary(values, missing).take(np.where(index < 0, len(values), index))


@functools.cache
def _vocabulary(values: tuple[str, ...], missing: str) -> pa.Array:
    return pa.array([*values, missing], type=pa.string())


def constant(text: str, size: int) -> pa.Array:
    return pa.repeat(pa.scalar(text, pa.string()), size)


def integers(values: np.ndarray, missing: str | None = None) -> pa.Array:
    """Decimal text; `missing` where the value is negative, if given."""
    text = pa.array(values).cast(pa.string())
    return text if missing is None else pc.if_else(pa.array(values < 0), missing, text)


def seconds(milliseconds: np.ndarray) -> pa.Array:
    """Milliseconds as seconds with three decimals: 1234 -> ``1.234``."""
    whole = pa.array(milliseconds // 1000).cast(pa.string())
    return pc.binary_join_element_wise(whole, _THOUSANDTHS.take(milliseconds % 1000), ".")


def random_text(
    rng: np.random.Generator, alphabet: bytes, size: int, width: int, suffix: str = ""
) -> pa.Array:
    """`size` strings of `width` random characters from `alphabet`, then `suffix` (request ids)."""
    if len(alphabet) & (len(alphabet) - 1):
        raise ValueError("the alphabet's length must be a power of two")
    draws = np.frombuffer(rng.bytes(size * width), dtype=np.uint8) & (len(alphabet) - 1)
    chars = np.frombuffer(alphabet, dtype=np.uint8)[draws].reshape(size, width)
    text = np.hstack([chars, np.tile(np.frombuffer(suffix.encode(), dtype=np.uint8), (size, 1))])
    offsets = np.arange(0, text.size + 1, text.shape[1], dtype=np.int32)
    return pa.StringArray.from_buffers(size, pa.py_buffer(offsets), pa.py_buffer(text))


def lines(columns: list[pa.Array], separator: str) -> pa.Buffer:
    """The text of rows made of `columns` joined by `separator`, one row per line.

    Every value is built from the catalog's vocabularies and numbers, so none holds a separator
    or a line break and no quoting is needed.
    """
    *first, last = columns
    joined = pc.binary_join_element_wise(*first, pc.binary_join_element_wise(last, "\n", ""), separator)
    offsets = np.frombuffer(
        joined.buffers()[1], dtype=np.int32, count=len(joined) + 1, offset=4 * joined.offset
    )
    return joined.buffers()[2][offsets[0] : offsets[-1]]


def ipv4(addresses: np.ndarray) -> pa.Array:
    octets = [_OCTETS.take((addresses >> shift) & 0xFF) for shift in (24, 16, 8, 0)]
    return pc.binary_join_element_wise(*octets, ".")


@functools.cache
def _times_of_day() -> pa.Array:
    seconds_of_day = np.arange(86_400)
    return pa.array(
        [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in seconds_of_day.tolist()],
        type=pa.string(),
    )


def date_and_time(ts_ms: np.ndarray) -> tuple[pa.Array, pa.Array]:
    """UTC ``YYYY-MM-DD`` and ``HH:MM:SS`` of epoch-millisecond timestamps."""
    epoch_seconds = ts_ms // 1000
    days, inverse = np.unique(epoch_seconds // 86_400, return_inverse=True)
    names = pa.array(np.asarray(days, dtype="datetime64[D]").astype(str).tolist(), type=pa.string())
    return names.take(inverse), _times_of_day().take(epoch_seconds % 86_400)


@functools.cache
def _directories() -> tuple[tuple[str, ...], int, int, int]:
    """Every folder a request can ask in, and where each group of them starts."""
    live = [f"/live/{c}/{r}/" for c in cat.CHANNELS for r in cat.RENDITIONS]
    live_master = [f"/live/{c}/" for c in cat.CHANNELS]
    vod = [f"/vod/{t}/{r}/" for t, _ in cat.TITLES for r in cat.RENDITIONS]
    vod_master = [f"/vod/{t}/" for t, _ in cat.TITLES]
    starts = np.cumsum([len(live), len(live_master), len(vod)])
    return (*live, *live_master, *vod, *vod_master), *(int(s) for s in starts)


def paths(requests: Requests) -> pa.Array:
    """URI stems: ``/live/ch7/1080p/segment_4721113.ts``, ``/vod/tidal/720p/seg_00042.m4s`` ..."""
    names, live_master_at, vod_at, vod_master_at = _directories()
    renditions = len(cat.RENDITIONS)
    # int8 columns would overflow in the index arithmetic
    kind, channel, title, rendition = (
        c.astype(np.int64) for c in (requests.kind, requests.channel, requests.title, requests.rendition)
    )
    folder = np.select(
        [kind == cat.LIVE_MASTER, channel >= 0, kind == cat.VOD_MASTER],
        [live_master_at + channel, channel * renditions + rendition, vod_master_at + title],
        default=vod_at + title * renditions + rendition,
    )
    number = pa.array(requests.segment).cast(pa.string())
    number = pc.if_else(
        pa.array(kind == cat.VOD_SEGMENT),
        pc.utf8_lpad(number, width=5, padding="0"),
        pc.if_else(pa.array(kind == cat.LIVE_SEGMENT), number, ""),
    )
    return pc.binary_join_element_wise(
        lookup(names, folder), lookup(cat.KIND_FILE, kind), number, lookup(cat.KIND_SUFFIX, kind), ""
    )


def content_types(requests: Requests) -> pa.Array:
    """What the response said it was: the media type, CloudFront's HTML error page, or nothing."""
    types = lookup(cat.KIND_CONTENT_TYPE, requests.kind)
    types = pc.if_else(pa.array(requests.status >= 400), "text/html", types)
    return pc.if_else(pa.array(requests.status == 304), EMPTY, types)


def range_end(requests: Requests) -> np.ndarray:
    return np.where(requests.range_start >= 0, requests.range_start + requests.content_len - 1, -1)


@functools.cache
def user_agents() -> tuple[str, ...]:
    return tuple(cat.url_encode(client.user_agent) for client in cat.CLIENTS)


def referers(requests: Requests) -> pa.Array:
    browser = np.array([client.browser for client in cat.CLIENTS])[requests.client]
    page = np.where(browser, (requests.channel < 0).astype(np.int8), -1)
    return lookup(tuple(cat.url_encode(r) for r in cat.REFERERS), page)
