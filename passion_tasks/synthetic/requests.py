"""A batch of CDN requests as numpy columns, and how a healthy service's requests look.

A request is kept in numbers (indexes into the catalog, bytes, seconds) until it is written, so
that anomalies can be applied to whole batches with masks and the same batch can be written as a
CloudFront log or as Akamai DataStream 2 lines.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from passion_tasks.synthetic import catalog as cat

_CLIENT_KINDS = ("mobile", "desktop", "tv")
_CLIENT_KIND = np.array([_CLIENT_KINDS.index(client.kind) for client in cat.CLIENTS], dtype=np.int8)
_BANDWIDTH_BPS = np.array([cat.BANDWIDTH_BPS[kind] for kind in _CLIENT_KINDS])
_UA_LENGTH = np.array([len(cat.url_encode(client.user_agent)) for client in cat.CLIENTS])
_ORIGIN_RTT_S = np.array([edge.origin_rtt_s for edge in cat.EDGES])
_IP_PREFIXES = np.array(
    [[a * 2**24 + b * 2**16 for a, b in edge.ip_prefixes] for edge in cat.EDGES], dtype=np.uint32
)
_TITLE_SEGMENTS = np.array([minutes * 60 // cat.VOD_SEGMENT_S for _, minutes in cat.TITLES])
_SERVED_STATUSES = (200, 206, 304)
ORIGIN_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Requests:
    """Columns of a batch of requests, all the same length, sorted by time."""

    ts_ms: np.ndarray  # epoch milliseconds
    stream: np.ndarray  # catalog.Stream.code
    region: np.ndarray  # index into catalog.EDGES: where the viewer is
    edge: np.ndarray  # the CloudFront edge that served it, -1 on another CDN
    client: np.ndarray  # index into catalog.CLIENTS
    kind: np.ndarray  # index into catalog.KINDS
    channel: np.ndarray  # index into catalog.CHANNELS, -1 for VOD
    title: np.ndarray  # index into catalog.TITLES, -1 for live
    rendition: np.ndarray
    segment: np.ndarray  # media sequence number (live) or segment index (VOD)
    status: np.ndarray  # HTTP status, 0 when the viewer hung up
    result: np.ndarray  # index into catalog.RESULTS
    detail: np.ndarray  # index into catalog.DETAILED_RESULTS
    object_size: np.ndarray  # bytes of the whole object
    content_len: np.ndarray  # Content-Length sent, -1 for none
    range_start: np.ndarray  # first byte of a 206, -1 otherwise
    body_bytes: np.ndarray
    header_bytes: np.ndarray
    ttfb_s: np.ndarray
    transfer_s: np.ndarray  # from first to last byte
    method: np.ndarray  # index into catalog.METHODS
    scheme: np.ndarray  # index into catalog.SCHEMES
    version: np.ndarray  # index into catalog.VERSIONS
    tls: np.ndarray  # index into catalog.TLS_VERSIONS, -1 over plain HTTP
    cipher: np.ndarray  # index into catalog.CIPHERS, -1 over plain HTTP
    ip: np.ndarray  # IPv4 as uint32
    port: np.ndarray
    cs_bytes: np.ndarray

    def __len__(self) -> int:
        return len(self.ts_ms)

    def take(self, index: np.ndarray) -> Requests:
        """The rows at `index` (positions or a boolean mask)."""
        return Requests(**{name: values[index] for name, values in self._columns().items()})

    def replace(self, **columns: np.ndarray) -> Requests:
        return dataclasses.replace(self, **columns)

    @classmethod
    def concat(cls, parts: list[Requests]) -> Requests:
        """One batch of `parts`, re-sorted by time."""
        columns = {
            name: np.concatenate([getattr(p, name) for p in parts]) for name in cls.__dataclass_fields__
        }
        merged = cls(**columns)
        return merged.take(np.argsort(merged.ts_ms, kind="stable"))

    def _columns(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @property
    def device(self) -> np.ndarray:
        """Index into ``catalog.device_index()[0]``: the device family ua-parser reports."""
        return cat.device_index()[1][self.client]

    @property
    def ttfb_ms(self) -> np.ndarray:
        """Time to first byte as logged: whole milliseconds, at least 1."""
        return np.maximum(np.rint(self.ttfb_s * 1000), 1).astype(np.int64)

    @property
    def time_taken_ms(self) -> np.ndarray:
        """Time taken as logged: never less than the time to first byte."""
        return np.maximum(np.rint((self.ttfb_s + self.transfer_s) * 1000).astype(np.int64), self.ttfb_ms)

    @property
    def sc_bytes(self) -> np.ndarray:
        return self.header_bytes + self.body_bytes

    @property
    def bandwidth_bps(self) -> np.ndarray:
        """The median bandwidth of each request's kind of client."""
        return _BANDWIDTH_BPS[_CLIENT_KIND[self.client]]

    @property
    def is_segment(self) -> np.ndarray:
        return np.isin(self.kind, cat.SEGMENT_KINDS)


def choice(rng: np.random.Generator, weights: tuple[float, ...] | np.ndarray, size: int) -> np.ndarray:
    """Indexes drawn with the given relative weights (inverse CDF: one uniform per draw)."""
    cumulative = np.cumsum(cat.normalised(tuple(weights)))
    return np.minimum(np.searchsorted(cumulative, rng.random(size), side="right"), len(cumulative) - 1)


def conditional_choice(rng: np.random.Generator, table: np.ndarray, category: np.ndarray) -> np.ndarray:
    """Per row, an index drawn with the weights of row ``table[category]``."""
    cumulative = np.cumsum(table / table.sum(axis=1, keepdims=True), axis=1)
    draws = rng.random(len(category))[:, None]
    return np.minimum((draws >= cumulative[category]).sum(axis=1), table.shape[1] - 1)


def lognormal(rng: np.random.Generator, median: np.ndarray | float, sigma: np.ndarray | float, size: int):
    return median * np.exp(sigma * rng.standard_normal(size))


def sample_requests(
    rng: np.random.Generator,
    stream: cat.Stream,
    ts_ms: np.ndarray,
    region: np.ndarray,
    *,
    server_errors: bool = True,
) -> Requests:
    """What healthy viewers of `stream` ask for at `ts_ms` from `region`, and how it goes; without
    `server_errors` a healthy service never answers 5xx (or 000), as many do."""
    n = len(ts_ms)
    is_live = rng.random(n) < stream.live_share
    kind = np.where(
        is_live,
        np.array(list(cat.LIVE_KIND_WEIGHTS))[choice(rng, tuple(cat.LIVE_KIND_WEIGHTS.values()), n)],
        np.array(list(cat.VOD_KIND_WEIGHTS))[choice(rng, tuple(cat.VOD_KIND_WEIGHTS.values()), n)],
    ).astype(np.int8)
    channel = np.where(is_live, choice(rng, cat.CHANNEL_WEIGHTS, n), -1).astype(np.int8)
    title = np.where(is_live, -1, choice(rng, cat.TITLE_WEIGHTS, n)).astype(np.int8)
    rendition = choice(rng, cat.RENDITION_WEIGHTS, n).astype(np.int8)
    client = choice(rng, tuple(c.weight for c in cat.CLIENTS), n).astype(np.int8)
    client_kind = _CLIENT_KIND[client]

    status, result, detail = _outcomes(rng, kind, server_errors)
    object_size = _object_sizes(rng, kind, title, rendition)
    content_len, range_start, body_bytes = _payload(rng, status, object_size)
    method = (rng.random(n) < cat.HEAD_SHARE).astype(np.int8)
    body_bytes = np.where(method == cat.METHODS.index("HEAD"), 0, body_bytes)
    scheme, version, tls, cipher = _protocols(rng, client_kind)
    ttfb_s = time_to_first_byte(rng, status, result, region)
    transfer_s = body_bytes * 8 / lognormal(rng, _BANDWIDTH_BPS[client_kind], 0.7, n)

    return Requests(
        ts_ms=ts_ms,
        stream=np.full(n, stream.code, dtype=np.int8),
        region=region,
        edge=region if stream.vendor == "cloudfront" else np.full(n, -1, dtype=np.int8),
        client=client,
        kind=kind,
        channel=channel,
        title=title,
        rendition=rendition,
        segment=_segment_numbers(rng, kind, title, ts_ms),
        status=status,
        result=result,
        detail=detail,
        object_size=object_size,
        content_len=content_len,
        range_start=range_start,
        body_bytes=body_bytes,
        header_bytes=rng.integers(330, 560, n),
        ttfb_s=ttfb_s,
        transfer_s=transfer_s,
        method=method,
        scheme=scheme,
        version=version,
        tls=tls,
        cipher=cipher,
        ip=_IP_PREFIXES[region, rng.integers(0, _IP_PREFIXES.shape[1], n)]
        + rng.integers(1, 65535, n, dtype=np.uint32),
        port=rng.integers(1024, 65536, n, dtype=np.int32),
        cs_bytes=_UA_LENGTH[client] + rng.integers(180, 520, n),
    )


def _outcomes(
    rng: np.random.Generator, kind: np.ndarray, server_errors: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Status, cache result and detailed result type of each request."""
    n = len(kind)
    baseline = {
        code: share for code, share in cat.BASELINE_ERRORS.items() if server_errors or 400 <= code < 500
    }
    error_statuses = np.array([*baseline, 200], dtype=np.int16)
    served = 1 - sum(baseline.values())
    status = error_statuses[choice(rng, (*baseline.values(), served), n)]
    ok = status == 200
    not_modified_share = np.array([cat.NOT_MODIFIED_SHARE.get(k, 0.0) for k in range(len(cat.KINDS))])
    status[ok & (rng.random(n) < not_modified_share[kind])] = 304
    status[(status == 200) & (kind == cat.VOD_SEGMENT) & (rng.random(n) < cat.RANGE_SHARE)] = 206

    cache = conditional_choice(rng, np.array(cat.KIND_CACHE_SHARES), kind).astype(np.int8)
    result = np.where(np.isin(status, _SERVED_STATUSES), cache, cat.ERROR).astype(np.int8)
    detail = result.copy()
    for code, name in cat.DETAIL_FOR_STATUS.items():
        detail[status == code] = cat.DETAILED_RESULTS.index(name)
    geo_blocked = (status == 403) & (rng.random(n) < 0.3)
    detail[geo_blocked] = cat.DETAILED_RESULTS.index("ClientGeoBlocked")
    return status, result, detail


def _object_sizes(rng: np.random.Generator, kind: np.ndarray, title: np.ndarray, rendition: np.ndarray):
    """Bytes of each requested object: segments from their rendition's bitrate, playlists small."""
    n = len(kind)
    live_segment = (
        np.array(cat.LIVE_BITRATE_BPS)[rendition] * cat.LIVE_SEGMENT_S / 8 * lognormal(rng, 1, 0.15, n)
    )
    vod_segment = (
        np.array(cat.VOD_BITRATE_BPS)[rendition] * cat.VOD_SEGMENT_S / 8 * lognormal(rng, 1, 0.25, n)
    )
    # A VOD media playlist lists every segment: about 38 bytes a line.
    vod_playlist = 220 + 38 * _TITLE_SEGMENTS[np.maximum(title, 0)]
    sizes = np.select(
        [
            kind == cat.LIVE_SEGMENT,
            kind == cat.VOD_SEGMENT,
            kind == cat.LIVE_PLAYLIST,
            kind == cat.VOD_PLAYLIST,
            kind == cat.VOD_INIT,
        ],
        [
            np.rint(live_segment / cat.TS_PACKET) * cat.TS_PACKET,
            np.rint(vod_segment),
            rng.integers(620, 980, n),
            vod_playlist,
            rng.integers(800, 1400, n),
        ],
        default=rng.integers(700, 1300, n),
    )
    return sizes.astype(np.int64)


def _payload(rng: np.random.Generator, status: np.ndarray, object_size: np.ndarray):
    """Content-Length, range start and body bytes sent, for each status."""
    n = len(status)
    range_start = np.where(status == 206, (rng.random(n) * object_size / 2).astype(np.int64), -1)
    range_length = np.minimum(object_size - np.maximum(range_start, 0), rng.integers(262_144, 2_097_152, n))
    content_len = np.select(
        [status == 200, status == 206, status >= 400, status == 0],
        [object_size, range_length, cat.ERROR_PAGE_BYTES, object_size],
        default=-1,
    )
    # A viewer that hangs up got part of the object.
    body_bytes = np.where(
        status == 0, (rng.random(n) * object_size).astype(np.int64), np.maximum(content_len, 0)
    )
    return content_len, range_start, body_bytes


def _protocols(rng: np.random.Generator, client_kind: np.ndarray):
    """Scheme, HTTP version, TLS version and cipher: HTTP/3 implies TLS 1.3, plain HTTP has no TLS."""
    n = len(client_kind)
    plain = rng.random(n) < np.array([cat.PLAIN_HTTP_SHARE[k] for k in _CLIENT_KINDS])[client_kind]
    scheme = plain.astype(np.int8)
    version_table = np.array([cat.VERSION_SHARES[k] for k in _CLIENT_KINDS])
    version = np.where(plain, 0, conditional_choice(rng, version_table, client_kind)).astype(np.int8)
    tls12 = rng.random(n) < np.array([cat.TLS12_SHARE[k] for k in _CLIENT_KINDS])[client_kind]
    tls12 &= version != cat.VERSIONS.index("HTTP/3.0")  # QUIC is TLS 1.3 only
    tls = np.where(plain, -1, tls12.astype(np.int8)).astype(np.int8)
    tls13_cipher = choice(rng, cat.TLS13_CIPHER_SHARES, n)
    tls12_cipher = len(cat.TLS13_CIPHER_SHARES) + choice(rng, cat.TLS12_CIPHER_SHARES, n)
    cipher = np.select([plain, tls12], [-1, tls12_cipher], default=tls13_cipher).astype(np.int8)
    return scheme, version, tls, cipher


def time_to_first_byte(rng: np.random.Generator, status: np.ndarray, result: np.ndarray, region: np.ndarray):
    """Lognormal first-byte times: fast from cache, a trip to the origin on a miss, slow on origin errors."""
    n = len(status)
    rtt = _ORIGIN_RTT_S[region]
    miss = 0.025 + 1.5 * rtt
    median = np.select(
        [
            result == cat.HIT,
            result == cat.REFRESH_HIT,
            result == cat.MISS,
            status == 504,
            status >= 500,
            status == 404,
        ],
        [0.008, 0.020 + rtt, miss, 10.0, 3 * miss, miss],
        default=0.006,
    )
    sigma = np.select([status == 504, status >= 500], [0.3, 0.9], default=0.55)
    # CloudFront gives up on the origin after its response timeout (30 s by default).
    return np.minimum(lognormal(rng, median, sigma, n), ORIGIN_TIMEOUT_S)


def _segment_numbers(rng: np.random.Generator, kind: np.ndarray, title: np.ndarray, ts_ms: np.ndarray):
    """Live: the media sequence at that moment (players lag a segment or two). VOD: where viewers are."""
    n = len(kind)
    live = (ts_ms // 1000 // cat.LIVE_SEGMENT_S - rng.integers(0, 3, n)) % 10_000_000
    length = _TITLE_SEGMENTS[np.maximum(title, 0)]
    # Viewers drop off through a title, so early segments are fetched more often.
    vod = np.minimum(rng.exponential(length / 2.0).astype(np.int64), length - 1)
    return np.select([kind == cat.LIVE_SEGMENT, kind == cat.VOD_SEGMENT], [live, vod], default=-1)
