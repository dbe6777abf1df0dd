"""The nightly path on CDN traffic that ``passion generate`` did not make.

``bench/incidents.py`` judges the nightly path on the generator's traffic, which the detectors were
built beside. This bench draws CloudFront logs from a traffic model written apart from it, with other
shapes everywhere a detector could have leaned on the generator: nine edges of other names and
weights; a web and video service (posters under ``/img``, hashed assets under ``/static``, an API
under ``/api/v2``, forty VOD titles under ``/video/<title>/<rendition>``, four live streams under
``/live/<name>``, and scanners' odd paths); ten user agents with bots that mostly get 404s; latencies
with a cache-hit mode of a few milliseconds and a miss mode by content type, slower on far edges;
a daily cycle peaking in the evening with a morning shoulder, 15 % less traffic at weekends (the
change spread over the night), and traffic that wanders in five-minute blocks beyond Poisson.

Its incidents, one per scored day but a quiet one: an outage of every edge (35 % of requests
answered 502/503/504 for 10 minutes), a 503 burst on one edge's API requests, an edge six times
slower, an edge that loses 80 % of its viewers to the others, a cache purge (60 % of hits become
misses for 15 minutes), and a slow origin for every video title. Then a week with no incident.
Judged as ``bench/incidents.py`` judges, by ``evaluation.incidents``.

``--shape second`` moves the same service onto other edges and URLs, so that what a change does for
one shape is checked on another: five edges of 45, 25, 15, 10 and 5 % of the traffic, images under
``/i/<hash>.webp``, an API under ``/v1`` (sessions at its root), VOD titles under ``/vod/<title>``
and live streams under ``/hls/<channel>``, which the logs do not know for live channels.

``--shape bursty`` is the web service with the bursts healthy traffic has every day and the other
shapes lack, in training as on the scored days: origin hiccups (a few minutes in which some of one
edge's misses fail with 502 or 504) and crawler sessions (one client walking scanners' and made-up
paths for a quarter of an hour at a few requests a minute, mostly 404s, whatever the service's rate).
An error rate that is 0 but for such bursts, or a 4xx rate that a crawler doubles every day, is the
background an on-call engineer must not be paged for.

``--shape many`` spreads the web service over 120 edges of a global distribution, Zipf-weighted (the
busiest 19 % of the traffic, the thinnest 0.16 %), more than a day's features give series of their
own (``features.cdn.BREAKDOWNS``: the 64 busiest of the day, the rest one ``(other)`` edge), so which
edges are named changes from day to day; its incidents hit one of the 20 busiest.

``--shape second-bursty`` and ``--shape many-bursty`` are those shapes with the bursts of ``bursty``:
crawlers and hiccups on other edges and URLs (a crawler of its own device family on one of 120 edges,
a hiccup on an edge that serves half the requests).

``--shape web-mild``, ``second-mild`` and ``many-mild`` plant the same incidents, milder
(``STRENGTHS``): 12 % of requests failing in the outage, 25 % of the API's in the burst, an edge 2.5
times slower, half its viewers lost, 30 % of hits purged, an origin twice as slow: whether the nightly
path still finds changes an on-call engineer would still want to hear of.

    python bench/other_traffic.py [--shape web|second|bursty|many|second-bursty|many-bursty|web-mild|...]
        [--seeds 0,1,2] [--rates 30,300] [--verbose] [--keep DIR]
"""

from __future__ import annotations

import datetime as dt
import gzip
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from incidents import main

from passion_tasks.evaluation.incidents import Label
from passion_tasks.lake import datasets
from passion_tasks.synthetic.catalog import CLOUDFRONT_FIELDS

#: A Monday: the training week holds a weekend.
START = dt.date(2026, 9, 7)
AGENTS = (
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        30,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.6 Mobile/15E148 Safari/604.1",
        22,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Mobile Safari/537.36",
        18,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Safari/605.1.15",
        10,
    ),
    ("Roku/DVP-14.0 (14.0.0.4170-46)", 5),
    (
        "Mozilla/5.0 (SMART-TV; Linux; Tizen 7.0) AppleWebKit/537.36 (KHTML, like Gecko) "
        "94.0.4606.31/7.0 TV Safari/537.36",
        4,
    ),
    ("AppleCoreMedia/1.0.0.21K69 (Apple TV; U; CPU OS 17_1 like Mac OS X; en_us)", 4),
    ("curl/8.5.0", 2),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 3),
    ("python-requests/2.32.3", 2),
)
BOTS = (8, 9)
#: The agents as the logs' ``cs(User-Agent)`` field has them.
AGENT_FIELDS = np.array([text.replace(" ", "%20") for text, _ in AGENTS])
#: Content kinds: posters, assets, API, VOD segments, live chunks, scanners.
KIND_SHARES = (0.28, 0.14, 0.12, 0.30, 0.14, 0.02)
HIT_SHARES = np.array([0.93, 0.97, 0.08, 0.9, 0.85, 0.3])
SIZES = np.array([60_000, 150_000, 4_000, 900_000, 400_000, 500])
MISS_MS = np.array([60, 40, 120, 180, 90, 50])
HIT_MS = 3.0
ODD_PATHS = (
    "/favicon.ico",
    "/robots.txt",
    "/wp-login.php",
    "/.env",
    "/a%20b/../../etc/passwd",
    "/" + "x" * 300,
)
#: A crawler's made-up paths, after the scanners' ``ODD_PATHS``.
CRAWLED = (
    "/wp-content/plugins/{n}/readme.txt",
    "/backup{n}.zip",
    "/admin/config{n}.php",
    "/img/poster{n}.jpg",
)
#: A path of each request of the content kinds of ``KIND_SHARES``, given how many.
PathDraws = tuple[Callable[[int], list[str] | np.ndarray], ...]


@dataclass(frozen=True)
class Background:
    """Bursts of healthy traffic, each day: origin hiccups and crawler sessions, a Poisson number of
    each at random minutes."""

    hiccups_per_day: float = 4.0
    #: Of an edge's misses in a hiccup, the share that fail: drawn between these.
    hiccup_failures: tuple[float, float] = (0.1, 0.6)
    hiccup_minutes: tuple[int, int] = (1, 4)
    crawls_per_day: float = 3.0
    crawl_minutes: tuple[int, int] = (10, 31)
    #: A crawler's requests a minute, drawn between these: a client's pace, not the service's.
    crawl_rate: tuple[float, float] = (2.0, 8.0)
    crawl_missing: float = 0.8


@dataclass(frozen=True)
class Shape:
    """Where the traffic goes: the edges, their shares and how much slower each answers than the
    nearest; the paths of each content kind; the prefixes of the API and the VOD titles; which edges
    incidents may hit."""

    edges: tuple[str, ...]
    edge_weights: np.ndarray
    edge_slowness: np.ndarray
    paths: Callable[[np.random.Generator], PathDraws]
    api: str
    vod: str
    #: Incidents on an edge hit one of this many busiest (the first ``edges``); 0: any edge.
    busiest: int = 0
    background: Background | None = None
    #: How strong its incidents are (``STRENGTHS``).
    strength: str = "plain"


def web_paths(rng: np.random.Generator) -> PathDraws:
    """Posters, hashed assets, ``/api/v2``, forty VOD titles, four live streams, scanners."""
    titles = [f"t{n:04d}" for n in range(40)]
    streams = ("sports-1", "news", "kids", "music")
    return (
        lambda n: [f"/img/poster{x}.jpg" for x in rng.zipf(1.3, n) % 900],
        lambda n: rng.choice(
            ["/static/js/app.7f3a9c.js", "/static/css/site.81bd.css", "/static/js/vendor.11e0.js"], n
        ),
        lambda n: [f"/api/v2/catalog/{x}" if x % 3 else "/api/v2/search" for x in rng.integers(0, 5000, n)],
        lambda n: [
            f"/video/{titles[t]}/{r}/seg_{s:05d}.m4s"
            for t, r, s in zip(
                rng.zipf(1.5, n) % len(titles),
                rng.choice(["480p", "720p", "1080p"], n),
                rng.integers(0, 3000, n),
                strict=True,
            )
        ],
        lambda n: [
            f"/live/{s}/chunk_{c}.ts"
            for s, c in zip(
                rng.choice(streams, n, p=[0.4, 0.3, 0.2, 0.1]), rng.integers(0, 10**6, n), strict=True
            )
        ],
        lambda n: rng.choice(ODD_PATHS, n),
    )


def second_paths(rng: np.random.Generator) -> PathDraws:
    """Images by hash, three assets, ``/v1`` (its sessions at its root), 25 VOD titles, six HLS
    channels, scanners."""
    titles = [f"m{n:03d}" for n in range(25)]
    return (
        lambda n: [f"/i/{x:08x}.webp" for x in rng.integers(0, 2**32, n)],
        lambda n: rng.choice(["/s/main.4c1.js", "/s/app.css", "/s/font.woff2"], n),
        lambda n: [f"/v1/items/{x}" if x % 4 else "/v1/session" for x in rng.integers(0, 9000, n)],
        lambda n: [
            f"/vod/{titles[t]}/seg{s}.ts"
            for t, s in zip(rng.zipf(1.4, n) % len(titles), rng.integers(0, 2000, n), strict=True)
        ],
        lambda n: [
            f"/hls/c{c}/{s}.ts" for c, s in zip(rng.integers(0, 6, n), rng.integers(0, 10**6, n), strict=True)
        ],
        lambda n: rng.choice(ODD_PATHS, n),
    )


def global_edges(count: int) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """``count`` edges named as CloudFront names them (airport, number, ``-C``/``-P`` and a digit),
    busiest first, their Zipf shares (``1 / rank``) and their slowness (0.9 to 2). Always the same
    edges: they are the shape, not a seed's traffic."""
    rng = np.random.default_rng(120)
    names: dict[str, None] = {}
    while len(names) < count:
        airport = "".join(rng.choice(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), 3))
        names[f"{airport}{rng.integers(1, 99)}-{rng.choice(['C', 'P'])}{rng.integers(1, 4)}"] = None
    shares = 1 / np.arange(1, count + 1)
    return tuple(names), shares / shares.sum(), rng.uniform(0.9, 2.0, count)


MANY_EDGES, MANY_WEIGHTS, MANY_SLOWNESS = global_edges(120)
WEB = Shape(
    edges=(
        "FRA2-C1",
        "FRA6-C2",
        "LHR61-P1",
        "AMS54-C1",
        "IAD89-C1",
        "NRT57-C3",
        "GRU3-C1",
        "SIN2-P1",
        "CDG50-C1",
    ),
    edge_weights=np.array([18, 9, 16, 10, 20, 8, 5, 7, 7], float) / 100,
    edge_slowness=np.array([1.0, 1.2, 1.0, 1.1, 0.9, 1.4, 1.8, 1.5, 1.0]),
    paths=web_paths,
    api="/api",
    vod="/video",
)

SHAPES = {
    "web": WEB,
    "second": Shape(
        edges=("SEA19-C2", "MIA3-C1", "SYD4-C1", "BOM78-P2", "JNB1-C1"),
        edge_weights=np.array([45, 25, 15, 10, 5], float) / 100,
        edge_slowness=np.array([1.0, 1.1, 1.6, 1.4, 2.0]),
        paths=second_paths,
        api="/v1",
        vod="/vod",
    ),
    "bursty": replace(WEB, background=Background()),
    "many": Shape(
        edges=MANY_EDGES,
        edge_weights=MANY_WEIGHTS,
        edge_slowness=MANY_SLOWNESS,
        paths=web_paths,
        api="/api",
        vod="/video",
        busiest=20,
    ),
}
#: Each other shape with the bursts of ``bursty``: crawlers and hiccups on other edges and URLs.
SHAPES |= {f"{name}-bursty": replace(SHAPES[name], background=Background()) for name in ("second", "many")}
#: The quiet shapes with milder incidents.
SHAPES |= {f"{name}-mild": replace(SHAPES[name], strength="mild") for name in ("web", "second", "many")}


@dataclass(frozen=True)
class Incident:
    """What goes wrong, where (an edge, a path prefix, or everywhere) and when (minutes of its day)."""

    kind: str
    minutes: int
    dim: str = "service"
    value: str = "all"
    edge: str = ""
    prefix: str = ""
    share: float = 0.0
    factor: float = 1.0
    codes: tuple[int, ...] = ()
    start: int = 0

    def label(self, day: dt.date, number: int) -> Label:
        start = pd.Timestamp(day, tz="UTC") + pd.Timedelta(minutes=self.start)
        return Label(
            f"other-{number:03d}",
            self.kind,
            datasets.CDN,
            self.dim,
            self.value,
            start,
            start + pd.Timedelta(minutes=self.minutes),
        )


#: Each incident's size, plain and mild: the share of requests failing in the outage and in the 503
#: burst, how many times slower the edge and the origin answer, the share of the edge's viewers lost,
#: and the share of hits the purge turns into misses.
STRENGTHS = {
    "plain": {
        "outage": 0.35,
        "slice_5xx": 0.6,
        "latency_spike": 6.0,
        "traffic_drop": 0.8,
        "cache_purge": 0.6,
        "origin_slow": 5.0,
    },
    "mild": {
        "outage": 0.12,
        "slice_5xx": 0.25,
        "latency_spike": 2.5,
        "traffic_drop": 0.5,
        "cache_purge": 0.3,
        "origin_slow": 2.0,
    },
}


def planned(rng: np.random.Generator, shape: Shape) -> list[Incident | None]:
    """The scored days' incidents, in order (``None``: a quiet day)."""

    def edge() -> str:
        return shape.edges[int(rng.integers(shape.busiest or len(shape.edges)))]

    api, slow, lost = edge(), edge(), edge()
    size = STRENGTHS[shape.strength]
    return [
        Incident("outage", 10, share=size["outage"], codes=(502, 503, 504)),
        Incident(
            "slice_5xx", 20, "edge", api, edge=api, prefix=shape.api, share=size["slice_5xx"], codes=(503,)
        ),
        None,
        Incident("latency_spike", 25, "edge", slow, edge=slow, factor=size["latency_spike"]),
        Incident("traffic_drop", 30, "edge", lost, edge=lost, share=size["traffic_drop"]),
        Incident("cache_purge", 15, share=size["cache_purge"]),
        Incident("origin_slow", 20, "path", shape.vod, prefix=shape.vod, factor=size["origin_slow"]),
    ]


def intensity(minutes: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Expected requests of each minute (counted from ``START``)."""
    hour = (minutes % 1440) / 60
    shape = 1 + 0.55 * np.cos(2 * np.pi * (hour - 20.5) / 24) + 0.15 * np.cos(4 * np.pi * (hour - 9) / 24)
    # Saturday and Sunday, the change spread over about seven hours around midnight.
    weekday = (minutes / 1440 - 5 + 0.5) % 7 - 0.5
    weekend = np.clip((weekday + 0.15) / 0.3, 0, 1) * np.clip((2.15 - weekday) / 0.3, 0, 1)
    wander = np.repeat(rng.gamma(400, 1 / 400, minutes.size // 5 + 1), 5)[: minutes.size]
    return rate * shape * (1 - 0.15 * weekend) * wander


def paths(draws: PathDraws, kinds: np.ndarray) -> np.ndarray:
    out = np.empty(kinds.size, object)
    for kind, draw in enumerate(draws):
        chosen = kinds == kind
        out[chosen] = draw(int(chosen.sum()))
    return out


def day_requests(
    day_number: int, rate: float, rng: np.random.Generator, incident: Incident | None, shape: Shape
) -> pd.DataFrame:
    """One day's requests, ``incident`` in them."""
    minutes = np.arange(1440) + day_number * 1440
    weights = np.tile(shape.edge_weights, (1440, 1))
    if incident is not None and incident.kind == "traffic_drop":
        lost = slice(incident.start, incident.start + incident.minutes)
        weights[lost, shape.edges.index(incident.edge)] *= 1 - incident.share
        weights[lost] /= weights[lost].sum(axis=1, keepdims=True)
    minute = np.repeat(np.arange(1440), rng.poisson(intensity(minutes, rate, rng)))
    n = minute.size
    edge = np.minimum(
        (rng.random(n)[:, None] > np.cumsum(weights[minute], axis=1)).sum(axis=1), len(shape.edges) - 1
    )
    kind = rng.choice(len(KIND_SHARES), n, p=KIND_SHARES)
    path = paths(shape.paths(rng), kind)
    agent_weights = np.array([weight for _, weight in AGENTS], float)
    agent = rng.choice(len(AGENTS), n, p=agent_weights / agent_weights.sum())
    hit = rng.random(n) < HIT_SHARES[kind]
    status = np.full(n, 200)
    status[(kind == 3) & (rng.random(n) < 0.6)] = 206
    status[(kind == 1) & (rng.random(n) < 0.1)] = 304
    status[rng.random(n) < np.where(np.isin(agent, BOTS), 0.08, 0.012)] = 404
    status[(kind == 5) & (rng.random(n) < 0.7)] = 404
    size = SIZES[kind] * rng.lognormal(0, 0.5, n)
    ttfb = (
        np.where(hit, HIT_MS, MISS_MS[kind])
        * rng.lognormal(0, np.where(hit, 0.7, 0.5), n)
        * shape.edge_slowness[edge]
    )
    if incident is not None:
        inside = (minute >= incident.start) & (minute < incident.start + incident.minutes)
        if incident.edge and incident.kind != "traffic_drop":
            inside &= edge == shape.edges.index(incident.edge)
        if incident.prefix:
            inside &= np.char.startswith(path.astype(str), incident.prefix)
        if incident.codes:
            failed = inside & (rng.random(n) < incident.share)
            status[failed] = rng.choice(incident.codes, int(failed.sum()))
            hit[failed], size[failed] = False, 900
        if incident.kind == "cache_purge":
            missed = inside & hit & (rng.random(n) < incident.share)
            hit[missed] = False
            ttfb[missed] = (
                MISS_MS[kind[missed]]
                * rng.lognormal(0, 0.5, int(missed.sum()))
                * shape.edge_slowness[edge[missed]]
            )
        ttfb[inside] *= incident.factor
    if shape.background is not None:
        hiccups(rng, shape, minute, edge, hit, status, size)
    taken = ttfb + size / np.where(hit, 40_000, 15_000) * rng.lognormal(0, 0.3, n)
    result = np.where(status >= 500, "Error", np.where(hit, "Hit", "Miss"))
    day = pd.Timestamp(START + dt.timedelta(days=day_number))
    requests = pd.DataFrame(
        {
            "ts": day + pd.to_timedelta(minute * 60 + rng.uniform(0, 60, n), unit="s"),
            "edge": np.array(shape.edges)[edge],
            "bytes": size.astype(int),
            "ip": [
                f"203.0.{a}.{b}"
                for a, b in zip(rng.integers(0, 255, n), rng.integers(1, 255, n), strict=True)
            ],
            "path": path,
            "status": status,
            "agent": AGENT_FIELDS[agent],
            "result": result,
            "ttfb": ttfb / 1000,
            "taken": taken / 1000,
        }
    )
    if shape.background is not None:
        requests = pd.concat([requests, *crawls(rng, shape, day)], ignore_index=True)
    return requests.sort_values("ts")


def hiccups(
    rng: np.random.Generator,
    shape: Shape,
    minute: np.ndarray,
    edge: np.ndarray,
    hit: np.ndarray,
    status: np.ndarray,
    size: np.ndarray,
) -> None:
    """The day's origin hiccups, in place: in each, a share of one edge's misses fail."""
    background = shape.background
    for _ in range(rng.poisson(background.hiccups_per_day)):
        start, minutes = int(rng.integers(0, 1440)), int(rng.integers(*background.hiccup_minutes))
        where = int(rng.choice(len(shape.edges), p=shape.edge_weights))
        inside = (minute >= start) & (minute < start + minutes) & (edge == where) & ~hit
        failed = inside & (rng.random(minute.size) < rng.uniform(*background.hiccup_failures))
        status[failed] = rng.choice([502, 504], int(failed.sum()))
        size[failed] = 900


def crawls(rng: np.random.Generator, shape: Shape, day: pd.Timestamp) -> list[pd.DataFrame]:
    """The day's crawler sessions: one client, one bot's agent, one edge, mostly missing paths."""
    background = shape.background
    sessions = []
    for number in range(rng.poisson(background.crawls_per_day)):
        start, minutes = int(rng.integers(0, 1440)), int(rng.integers(*background.crawl_minutes))
        n = int(rng.poisson(rng.uniform(*background.crawl_rate) * minutes))
        seconds = np.sort(rng.uniform(0, minutes * 60, n)) + 60 * min(start, 1440 - minutes)
        missing = rng.random(n) < background.crawl_missing
        ttfb = MISS_MS[-1] * rng.lognormal(0, 0.5, n)
        size = np.where(missing, 500, SIZES[0] * rng.lognormal(0, 0.5, n))
        sessions.append(
            pd.DataFrame(
                {
                    "ts": day + pd.to_timedelta(seconds, unit="s"),
                    "edge": rng.choice(shape.edges, p=shape.edge_weights),
                    "bytes": size.astype(int),
                    "ip": f"198.51.100.{number + 1}",
                    "path": [
                        str(rng.choice(ODD_PATHS))
                        if rng.random() < 0.3
                        else str(rng.choice(CRAWLED)).format(n=x)
                        for x in rng.integers(0, 10**4, n)
                    ],
                    "status": np.where(missing, 404, 200),
                    "agent": AGENT_FIELDS[rng.choice(BOTS)],
                    "result": "Miss",
                    "ttfb": ttfb / 1000,
                    "taken": (ttfb + size / 15_000) / 1000,
                }
            )
        )
    return sessions


def write_logs(out: Path, requests: pd.DataFrame, seed: int) -> None:
    """Hourly gzip CloudFront standard logs (``<dist>.YYYY-MM-DD-HH.<id>.gz``), the 33 fields."""
    empty = "-"
    lines = pd.DataFrame(
        {
            "date": requests.ts.dt.strftime("%Y-%m-%d"),
            "time": requests.ts.dt.strftime("%H:%M:%S"),
            "x-edge-location": requests.edge,
            "sc-bytes": requests.bytes,
            "c-ip": requests.ip,
            "cs-method": "GET",
            "cs(Host)": "d111111abcdef8.cloudfront.net",
            "cs-uri-stem": requests.path,
            "sc-status": requests.status,
            "cs(Referer)": empty,
            "cs(User-Agent)": requests.agent,
            "cs-uri-query": empty,
            "cs(Cookie)": empty,
            "x-edge-result-type": requests.result,
            "x-edge-request-id": [f"r{seed}x{i:012d}==" for i in range(len(requests))],
            "x-host-header": "media.example.org",
            "cs-protocol": "https",
            "cs-bytes": 180,
            "time-taken": requests.taken.map("{:.3f}".format),
            "x-forwarded-for": empty,
            "ssl-protocol": "TLSv1.3",
            "ssl-cipher": "TLS_AES_128_GCM_SHA256",
            "x-edge-response-result-type": requests.result,
            "cs-protocol-version": "HTTP/2.0",
            "fle-status": empty,
            "fle-encrypted-fields": empty,
            "c-port": 443,
            "time-to-first-byte": requests.ttfb.map("{:.3f}".format),
            "x-edge-detailed-result-type": requests.result,
            "sc-content-type": empty,
            "sc-content-len": requests.bytes,
            "sc-range-start": empty,
            "sc-range-end": empty,
        }
    )[list(CLOUDFRONT_FIELDS)]
    for hour, part in lines.groupby(requests.ts.dt.floor("h").to_numpy()):
        with gzip.open(out / f"E2OTHER.{pd.Timestamp(hour):%Y-%m-%d-%H}.{seed:04x}beef.gz", "wt") as file:
            file.write("#Version: 1.0\n#Fields: " + " ".join(CLOUDFRONT_FIELDS) + "\n")
            part.to_csv(file, sep="\t", header=False, index=False)


def drawn(
    out: Path, seed: int, rate: float, days: int, train_days: int, anomalies: bool, *, shape: Shape
) -> tuple[dt.date, list[Label], tuple[str, ...]]:
    """``days`` days of logs into ``out``: their first day, the scored days' incidents as labels, and
    their one kind of source (no server metrics)."""
    rng = np.random.default_rng([seed, 7919])
    plan = planned(rng, shape) if anomalies else []
    out.mkdir(parents=True, exist_ok=True)
    labels = []
    for number in range(days):
        scored = number - train_days
        incident = plan[scored] if 0 <= scored < len(plan) else None
        if incident is not None:
            incident = replace(incident, start=int(rng.integers(60, 1380)))
            labels.append(incident.label(START + dt.timedelta(days=number), len(labels)))
        write_logs(out, day_requests(number, rate, rng, incident, shape), seed)
    return START, labels, (datasets.CDN,)


if __name__ == "__main__":
    main({name: partial(drawn, shape=shape) for name, shape in SHAPES.items()}, __doc__)
