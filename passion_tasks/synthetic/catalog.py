"""What the synthetic CDN traffic is made of: distributions, edges, clients, content.

Values are chosen to look like a mid-sized streaming service on CloudFront (plus, optionally, a
second CDN): real edge-location codes, current user-agent strings of the device families that
watch video, HLS/CMAF paths, and the status / cache-result vocabulary of the vendor's log.
Weights are relative; they are normalised where they are used.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from urllib.parse import quote

import numpy as np

#: The 33 fields of a CloudFront standard log, in file order (AWS developer guide).
CLOUDFRONT_FIELDS = (
    "date",
    "time",
    "x-edge-location",
    "sc-bytes",
    "c-ip",
    "cs-method",
    "cs(Host)",
    "cs-uri-stem",
    "sc-status",
    "cs(Referer)",
    "cs(User-Agent)",
    "cs-uri-query",
    "cs(Cookie)",
    "x-edge-result-type",
    "x-edge-request-id",
    "x-host-header",
    "cs-protocol",
    "cs-bytes",
    "time-taken",
    "x-forwarded-for",
    "ssl-protocol",
    "ssl-cipher",
    "x-edge-response-result-type",
    "cs-protocol-version",
    "fle-status",
    "fle-encrypted-fields",
    "c-port",
    "time-to-first-byte",
    "x-edge-detailed-result-type",
    "sc-content-type",
    "sc-content-len",
    "sc-range-start",
    "sc-range-end",
)


@dataclass(frozen=True)
class Stream:
    """One log stream: a CloudFront distribution, or the DataStream 2 stream of a second CDN."""

    code: int
    name: str
    vendor: str  # "cloudfront" or "datastream2"
    share: float  # of the `rate` requests per minute
    live_share: float  # of its requests that are live (the rest are VOD)
    domain: str  # cs(Host): the CDN's own hostname
    host_header: str  # what viewers ask for


LIVE = Stream(
    0, "E2LIVE7QX3ABCD", "cloudfront", 0.6, 1.0, "d2l1v7qx3abcd9.cloudfront.net", "live.example.com"
)
VOD = Stream(1, "E1VOD5M8K2WXYZ", "cloudfront", 0.4, 0.0, "d3v0d5m8k2wxyz.cloudfront.net", "vod.example.com")
# The second CDN carries extra traffic on top of `rate`, so CloudFront files do not depend on it.
DS2 = Stream(
    2, "akamai-ds2", "datastream2", 0.25, 0.6, "media.example.com.akamaized.net", "media.example.com"
)
CLOUDFRONT_STREAMS = (LIVE, VOD)


@dataclass(frozen=True)
class Edge:
    """A CloudFront edge location and the viewers it serves."""

    code: str
    weight: float
    utc_offset_hours: float  # viewers' local time, for the daily cycle
    origin_rtt_s: float  # round trip to the origin in us-east-1: what a cache miss costs
    country: str
    city: str
    ip_prefixes: tuple[tuple[int, int], ...]  # first two octets of viewers' ISPs


EDGES = (
    Edge("FRA56-P1", 0.22, 1, 0.090, "DE", "FRANKFURT", ((91, 64), (79, 192), (84, 128), (46, 114))),
    Edge("IAD89-C1", 0.20, -5, 0.004, "US", "ASHBURN", ((73, 32), (98, 204), (24, 126), (71, 178))),
    Edge("LHR61-P4", 0.16, 0, 0.076, "GB", "LONDON", ((86, 128), (81, 96), (92, 40), (2, 24))),
    Edge("CDG50-P1", 0.10, 1, 0.082, "FR", "PARIS", ((90, 0), (86, 192), (78, 192), (176, 128))),
    Edge("NRT57-P2", 0.10, 9, 0.150, "JP", "TOKYO", ((126, 0), (60, 32), (153, 128), (114, 150))),
    Edge("SIN2-P1", 0.08, 8, 0.210, "SG", "SINGAPORE", ((116, 86), (119, 56), (175, 156), (220, 255))),
    Edge("GRU3-C1", 0.08, -3, 0.115, "BR", "SAO PAULO", ((177, 0), (179, 100), (189, 40), (200, 150))),
    Edge("SYD1-C1", 0.06, 10, 0.200, "AU", "SYDNEY", ((101, 160), (110, 140), (120, 144), (1, 120))),
)


@dataclass(frozen=True)
class Client:
    """A user agent as sent on the wire, and how that kind of client behaves.

    The clients make 12 device families for ua-parser, as many as the features step breaks
    down by name, so none of them is folded into ``Other`` on a quiet day.
    """

    user_agent: str
    weight: float
    kind: str  # "mobile", "desktop" or "tv": sets bandwidth and protocol habits
    browser: bool  # web players send a Referer; native players do not


CLIENTS = (
    Client(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.5 Mobile/15E148 Safari/604.1",
        0.10,
        "mobile",
        True,
    ),
    Client(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Mobile/15E148 Safari/604.1",
        0.06,
        "mobile",
        True,
    ),
    Client(
        "AppleCoreMedia/1.0.0.21F90 (iPhone; U; CPU OS 17_5_1 like Mac OS X; en_us)", 0.10, "mobile", False
    ),
    Client(
        "Mozilla/5.0 (iPad; CPU OS 17_5_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.5 Mobile/15E148 Safari/604.1",
        0.04,
        "mobile",
        True,
    ),
    Client(
        "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/125.0.6422.165 Mobile Safari/537.36",
        0.06,
        "mobile",
        True,
    ),
    Client(
        "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-A546B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
        0.04,
        "mobile",
        True,
    ),
    Client(
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/125.0.6422.165 Mobile Safari/537.36",
        0.04,
        "mobile",
        True,
    ),
    Client("ExampleTV/5.12.0 (Linux;Android 13) ExoPlayerLib/2.19.1", 0.06, "mobile", False),
    Client(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/125.0.0.0 Safari/537.36",
        0.12,
        "desktop",
        True,
    ),
    Client(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/125.0.0.0 Safari/537.36 Edg/125.0.2535.67",
        0.05,
        "desktop",
        True,
    ),
    Client(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:126.0) Gecko/20100101 Firefox/126.0",
        0.03,
        "desktop",
        True,
    ),
    Client(
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.5 Safari/605.1.15",
        0.05,
        "desktop",
        True,
    ),
    Client(
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/125.0.0.0 Safari/537.36",
        0.03,
        "desktop",
        True,
    ),
    Client("Roku/DVP-13.0 (11.0.0.4193-46)", 0.07, "tv", False),
    Client(
        "Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.5) AppleWebKit/537.36 (KHTML, like Gecko) "
        "85.0.4183.93/6.5 TV Safari/537.36",
        0.04,
        "tv",
        False,
    ),
    Client(
        "Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/87.0.4280.88 Safari/537.36 WebAppManager",
        0.03,
        "tv",
        False,
    ),
    Client("AppleCoreMedia/1.0.0.21L569 (Apple TV; U; CPU OS 17_5 like Mac OS X; en_us)", 0.03, "tv", False),
)

#: Median bandwidth (bit/s) of each client kind; it turns bytes into transfer time.
BANDWIDTH_BPS = {"mobile": 15e6, "desktop": 50e6, "tv": 30e6}

# Live channels and VOD titles, most watched first.
CHANNELS = ("ch7", "ch1", "ch3", "ch12", "ch5", "ch2", "ch24", "ch9", "ch4", "ch31")
CHANNEL_WEIGHTS = (0.22, 0.18, 0.14, 0.11, 0.09, 0.08, 0.07, 0.05, 0.04, 0.02)
TITLES = (
    ("harbor-lights-s01e01", 52),
    ("harbor-lights-s01e02", 49),
    ("the-last-summit", 118),
    ("ocean-planet-ep3", 58),
    ("city-of-glass-s02e05", 44),
    ("quiet-waters", 96),
    ("northern-lines-s01e04", 47),
    ("red-desert", 104),
    ("iron-valley-s03e01", 61),
    ("paper-moons", 88),
    ("tidal", 92),
    ("harbor-lights-s01e03", 51),
    ("kitchen-rules-ep12", 23),
    ("the-long-night-s01e06", 55),
    ("small-hours", 81),
    ("wild-coast-ep1", 50),
)
TITLE_WEIGHTS = tuple(1.0 / (rank + 1) ** 0.9 for rank in range(len(TITLES)))

RENDITIONS = ("1080p", "720p", "480p", "360p")
RENDITION_WEIGHTS = (0.35, 0.35, 0.18, 0.12)
LIVE_BITRATE_BPS = (6.0e6, 3.2e6, 1.5e6, 0.8e6)
VOD_BITRATE_BPS = (5.0e6, 2.8e6, 1.3e6, 0.7e6)
LIVE_SEGMENT_S = 6
VOD_SEGMENT_S = 4
TS_PACKET = 188

# What a request asks for. Segments carry the bytes; playlists are polled.
KINDS = (
    "live_segment",
    "live_playlist",
    "live_master",
    "vod_segment",
    "vod_playlist",
    "vod_master",
    "vod_init",
)
LIVE_SEGMENT, LIVE_PLAYLIST, LIVE_MASTER, VOD_SEGMENT, VOD_PLAYLIST, VOD_MASTER, VOD_INIT = range(len(KINDS))
LIVE_KIND_WEIGHTS = {LIVE_SEGMENT: 0.55, LIVE_PLAYLIST: 0.40, LIVE_MASTER: 0.05}
VOD_KIND_WEIGHTS = {VOD_SEGMENT: 0.82, VOD_PLAYLIST: 0.06, VOD_MASTER: 0.03, VOD_INIT: 0.09}
SEGMENT_KINDS = (LIVE_SEGMENT, VOD_SEGMENT)
KIND_FILE = ("segment_", "index.m3u8", "master.m3u8", "seg_", "index.m3u8", "master.m3u8", "init.mp4")
KIND_SUFFIX = (".ts", "", "", ".m4s", "", "", "")
KIND_CONTENT_TYPE = (
    "video/MP2T",
    "application/vnd.apple.mpegurl",
    "application/vnd.apple.mpegurl",
    "video/iso.segment",
    "application/vnd.apple.mpegurl",
    "application/vnd.apple.mpegurl",
    "video/mp4",
)
#: Cache-Control max-age the origin sets per kind (Akamai logs it).
KIND_MAX_AGE_S = (3600, 2, 2, 31536000, 86400, 86400, 31536000)

# CloudFront's result types; the first three are the cache hits and misses of a served request.
RESULTS = ("Hit", "RefreshHit", "Miss", "Error")
HIT, REFRESH_HIT, MISS, ERROR = range(len(RESULTS))
CACHE_HITS = (HIT, REFRESH_HIT)
#: Cache-result shares of served requests, per kind: live playlists expire every few seconds.
KIND_CACHE_SHARES = (
    (0.93, 0.01, 0.06),
    (0.70, 0.12, 0.18),
    (0.90, 0.05, 0.05),
    (0.85, 0.02, 0.13),
    (0.88, 0.04, 0.08),
    (0.90, 0.05, 0.05),
    (0.95, 0.01, 0.04),
)
DETAILED_RESULTS = (
    "Hit",
    "RefreshHit",
    "Miss",
    "Error",
    "ClientGeoBlocked",
    "OriginConnectError",
    "OriginError",
    "OriginReadError",
    "ClientHungUpRequest",
    "InvalidRequest",
)
DETAIL_FOR_STATUS = {
    0: "ClientHungUpRequest",
    400: "InvalidRequest",
    403: "Error",
    404: "Error",
    502: "OriginConnectError",
    503: "OriginError",
    504: "OriginReadError",
}

#: Error statuses a healthy service still shows, with their per-request probability.
BASELINE_ERRORS = {403: 0.004, 404: 0.006, 502: 0.0005, 503: 0.0006, 504: 0.0004, 0: 0.0005}
NOT_MODIFIED_SHARE = {LIVE_MASTER: 0.04, VOD_PLAYLIST: 0.04, VOD_MASTER: 0.04}
#: Share of VOD segment requests that ask for a byte range (native players on fMP4).
RANGE_SHARE = 0.12
#: The size of CloudFront's HTML error page.
ERROR_PAGE_BYTES = 915

METHODS = ("GET", "HEAD")
HEAD_SHARE = 0.005
SCHEMES = ("https", "http")
VERSIONS = ("HTTP/1.1", "HTTP/2.0", "HTTP/3.0")
#: Protocol version shares over HTTPS per client kind; TVs still speak HTTP/1.1 a lot.
VERSION_SHARES = {"mobile": (0.15, 0.70, 0.15), "desktop": (0.15, 0.70, 0.15), "tv": (0.75, 0.25, 0.0)}
PLAIN_HTTP_SHARE = {"mobile": 0.01, "desktop": 0.01, "tv": 0.08}
TLS_VERSIONS = ("TLSv1.3", "TLSv1.2")
TLS12_SHARE = {"mobile": 0.08, "desktop": 0.05, "tv": 0.35}
CIPHERS = (
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
)
TLS13_CIPHER_SHARES = (0.70, 0.20, 0.10)
TLS12_CIPHER_SHARES = (0.80, 0.20)

REFERERS = ("https://www.example.com/live", "https://www.example.com/watch")

# Viewing habits in local time: low before dawn, the evening peak around 21:00.
LIVE_DAILY = (0.55, 0.38, 0.27, 0.20, 0.17, 0.18, 0.25, 0.40, 0.55, 0.62, 0.68, 0.74)
LIVE_DAILY += (0.82, 0.85, 0.85, 0.88, 0.95, 1.10, 1.40, 1.75, 2.05, 2.15, 1.80, 1.05)
VOD_DAILY = (0.80, 0.55, 0.35, 0.25, 0.20, 0.20, 0.25, 0.35, 0.45, 0.55, 0.62, 0.70)
VOD_DAILY += (0.78, 0.80, 0.80, 0.85, 0.95, 1.10, 1.35, 1.70, 2.00, 2.20, 2.05, 1.35)
#: Monday first; more viewing at the weekend.
WEEKLY = (0.93, 0.94, 0.96, 0.98, 1.04, 1.10, 1.05)


def url_encode(text: str) -> str:
    """Encode a header value as CloudFront logs it: spaces and controls escaped, punctuation kept."""
    return quote(text, safe="/;:,()=+!*'~@$&.-_[]?")


@functools.cache
def device_families() -> tuple[str, ...]:
    """The device family ua-parser reports for each client (``Other`` where it finds none).

    Label names use these, so they match what ingestion derives from the same user agents.
    """
    import ua_parser

    families = []
    for client in CLIENTS:
        device = ua_parser.parse_device(client.user_agent)
        families.append(device.family if device else "Other")
    return tuple(families)


def device_index() -> tuple[tuple[str, ...], np.ndarray]:
    """Distinct device families and, per client, the index of its family."""
    families = device_families()
    distinct = tuple(dict.fromkeys(families))
    return distinct, np.array([distinct.index(family) for family in families], dtype=np.int8)


def normalised(weights: tuple[float, ...] | list[float]) -> np.ndarray:
    array = np.asarray(weights, dtype=float)
    return array / array.sum()
