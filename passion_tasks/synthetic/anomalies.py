"""Named anomalies: where they go (deterministic from the seed) and what they do to the data.

CDN kinds act on the requests of one target (an edge, a live channel or a device family):

- ``latency_spike``: everything the target serves takes `latency_factor` times longer.
- ``error_burst_5xx``: `error_share` of the target's requests fail with 502/503/504 from the origin.
- ``traffic_drop``: only `kept_share` of the target's requests arrive (an encoder or an ISP fails).
- ``bytes_surge``: the target's media segments are `bytes_factor` times larger (a bitrate ladder
  pushed by mistake), and take that much longer to send.
- ``device_regression``: a player release on one device family is `latency_factor` times slower,
  or fails `client_error_share` of its requests with 4xx.

Two more CDN kinds, which ``generate(kinds=ALL_KINDS)`` adds (the incident evaluation uses them):

- ``outage``: `error_share` of every request fails with 502/503/504, whatever edge or path serves it.
- ``slice_5xx``: `error_share` of one edge's requests for one live channel fail: a thin slice.

Metric kinds act on one service's series: ``spike`` (a few minutes at `factor` times the value),
``level_shift`` (`factor` times the value for up to an hour), ``stall`` (the value stops changing).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np

from passion_tasks.lake.schemas import series_name
from passion_tasks.synthetic import catalog as cat
from passion_tasks.synthetic.metric_files import SERVICES
from passion_tasks.synthetic.requests import Requests, choice, time_to_first_byte
from passion_tasks.synthetic.traffic import DAY_MS, HOUR_MS, MINUTE_MS, intensity

#: Days at the start that stay clean, so detectors have something normal to learn from.
WARMUP_DAYS = 2
CDN_KINDS = {
    "latency_spike": 0.25,
    "error_burst_5xx": 0.25,
    "traffic_drop": 0.2,
    "bytes_surge": 0.15,
    "device_regression": 0.15,
}
#: The CDN kinds with the outage and the thin slice, for the incident evaluation.
ALL_KINDS = {**CDN_KINDS, "outage": 0.15, "slice_5xx": 0.2}
METRIC_KINDS = {"spike": 0.4, "level_shift": 0.35, "stall": 0.25}
#: Shortest and longest duration of each kind, in minutes.
DURATIONS = {
    "latency_spike": (10, 45),
    "error_burst_5xx": (5, 30),
    "traffic_drop": (10, 45),
    "bytes_surge": (20, 60),
    "device_regression": (30, 60),
    "outage": (5, 15),
    "slice_5xx": (10, 30),
    "spike": (2, 8),
    "level_shift": (20, 60),
    "stall": (15, 60),
}
#: Mean number of anomalies a day after the warm-up (the last day always has at least one of each).
CDN_PER_DAY = 0.8
METRIC_PER_DAY = 0.8
#: CDN anomalies start when their target has at least this share of its daily mean traffic.
BUSY_ENOUGH = 0.8
#: The metric each CDN kind moves by construction (device regressions: see `Anomaly.primary_series`).
PRIMARY_METRIC = {
    "latency_spike": "cdn_ttfb_p95",
    "error_burst_5xx": "cdn_5xx_rate",
    "traffic_drop": "cdn_requests",
    "bytes_surge": "cdn_bytes",
    "outage": "cdn_5xx_rate",
    "slice_5xx": "cdn_5xx_rate",
}
_SERVER_ERRORS = {502: 0.3, 503: 0.4, 504: 0.3}
_CLIENT_ERRORS = {404: 0.6, 403: 0.25, 400: 0.15}


@dataclass(frozen=True)
class Anomaly:
    """One injected anomaly: what, where, when (UTC, whole minutes) and how strong."""

    id: str
    kind: str
    source: str  # "cdn" or "metrics"
    dim: str  # "edge", "channel", "device" or "service" (the whole CDN for an outage)
    value: str
    start: dt.datetime
    minutes: int
    magnitude: dict[str, float]
    series: tuple[str, ...] = ()  # labelled series, known once the data exists
    channel: str = ""  # a slice_5xx's live channel, on its edge

    @property
    def end(self) -> dt.datetime:
        """The last affected minute (windows are inclusive, as in NAB)."""
        return self.start + dt.timedelta(minutes=self.minutes - 1)

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def stop_ms(self) -> int:
        """The end of the last affected minute (exclusive)."""
        return self.start_ms + self.minutes * MINUTE_MS

    @property
    def hours(self) -> range:
        """Epoch hours the anomaly touches."""
        return range(self.start_ms // HOUR_MS, (self.stop_ms - 1) // HOUR_MS + 1)

    @property
    def primary_series(self) -> str:
        """The series the anomaly moves by construction; it is always labelled."""
        if self.source == "metrics":
            return series_name(self.value)
        if self.dim == "service":
            return PRIMARY_METRIC[self.kind]
        if self.kind == "device_regression":
            metric = "cdn_time_taken_p95" if "latency_factor" in self.magnitude else "cdn_4xx_rate"
        else:
            metric = PRIMARY_METRIC[self.kind]
        return series_name(metric, self.dim, self.value)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "source": self.source,
            "dim": self.dim,
            "value": self.value,
            "start": f"{self.start:%Y-%m-%d %H:%M:%S}",
            "end": f"{self.end:%Y-%m-%d %H:%M:%S}",
            "minutes": self.minutes,
            "magnitude": self.magnitude,
            "series": list(self.series),
        } | ({"channel": self.channel} if self.channel else {})


# --- placement ---------------------------------------------------------------------------------


def plan_anomalies(
    start: dt.date, days: int, seed: int, kinds: dict[str, float] = CDN_KINDS
) -> list[Anomaly]:
    """Anomalies for `days` days from `start`: none in the warm-up days, at least one CDN and one
    metric anomaly on the last day; CDN anomalies never share a clock hour, a service's never overlap.
    """
    if unknown := sorted(set(kinds) - set(ALL_KINDS)):
        raise ValueError(f"unknown anomaly kinds {unknown}; the CDN kinds are {', '.join(ALL_KINDS)}")
    if not kinds or not all(weight >= 0 for weight in kinds.values()) or not sum(kinds.values()) > 0:
        raise ValueError(f"anomaly kinds need non-negative weights that add up to more than 0, got {kinds}")
    rng = np.random.default_rng([seed, 2_718_281])
    first_day = min(WARMUP_DAYS, days - 1)
    cdn: list[Anomaly] = []
    metrics: list[Anomaly] = []
    for offset in range(first_day, days):
        day = start + dt.timedelta(days=offset)
        at_least = 1 if offset == days - 1 else 0
        for _ in range(max(at_least, int(rng.poisson(CDN_PER_DAY)))):
            if placed := _place_cdn(rng, day, cdn, seed, kinds):
                cdn.append(placed)
        for _ in range(max(at_least, int(rng.poisson(METRIC_PER_DAY)))):
            if placed := _place_metric(rng, day, metrics):
                metrics.append(placed)
    return [
        dataclasses.replace(anomaly, id=f"{prefix}-{number:03d}")
        for prefix, placed in (("cdn", cdn), ("metric", metrics))
        for number, anomaly in enumerate(sorted(placed, key=lambda a: (a.start, a.value)), start=1)
    ]


def _place_cdn(
    rng: np.random.Generator, day: dt.date, placed: list[Anomaly], seed: int, kinds: dict[str, float]
) -> Anomaly | None:
    kind = _pick(rng, kinds)
    dim, value = _cdn_target(rng, kind)
    channel = cat.CHANNELS[int(choice(rng, cat.CHANNEL_WEIGHTS[:6], 1)[0])] if kind == "slice_5xx" else ""
    minutes = int(rng.integers(DURATIONS[kind][0], DURATIONS[kind][1], endpoint=True))
    magnitude = _cdn_magnitude(rng, kind)
    taken = {hour for anomaly in placed for hour in anomaly.hours}
    for _ in range(500):
        start = _midnight(day) + dt.timedelta(minutes=int(rng.integers(0, 1440 - minutes + 1)))
        candidate = Anomaly("", kind, "cdn", dim, value, start, minutes, magnitude, channel=channel)
        if taken.isdisjoint(candidate.hours) and _busy_enough(candidate, seed):
            return candidate
    return None


def _place_metric(rng: np.random.Generator, day: dt.date, placed: list[Anomaly]) -> Anomaly | None:
    kind = _pick(rng, METRIC_KINDS)
    service = SERVICES[int(rng.integers(len(SERVICES)))].name
    minutes = int(rng.integers(DURATIONS[kind][0], DURATIONS[kind][1], endpoint=True))
    magnitude = _metric_magnitude(rng, kind)
    for _ in range(500):
        # Never at midnight: a stall holds the minute before, which must be the same day's.
        start = _midnight(day) + dt.timedelta(minutes=int(rng.integers(1, 1440 - minutes + 1)))
        candidate = Anomaly("", kind, "metrics", "service", service, start, minutes, magnitude)
        if not any(a.value == service and _overlap(a, candidate) for a in placed):
            return candidate
    return None


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    return list(weights)[int(choice(rng, tuple(weights.values()), 1)[0])]


def _cdn_target(rng: np.random.Generator, kind: str) -> tuple[str, str]:
    if kind == "device_regression":
        families, client_family = cat.device_index()
        shares = np.bincount(client_family, weights=[c.weight for c in cat.CLIENTS], minlength=len(families))
        shares /= shares.sum()
        # A player release breaks one real device family; "Other" is every desktop browser at once.
        candidates = [i for i, name in enumerate(families) if name != "Other" and shares[i] >= 0.04]
        return "device", families[candidates[int(choice(rng, shares[candidates], 1)[0])]]
    if kind == "outage":
        return "service", "all"
    if kind == "slice_5xx":
        return "edge", cat.EDGES[int(choice(rng, tuple(e.weight for e in cat.EDGES), 1)[0])].code
    if kind == "bytes_surge" or rng.random() < 0.5:
        popular = cat.CHANNEL_WEIGHTS[:6]
        return "channel", cat.CHANNELS[int(choice(rng, popular, 1)[0])]
    return "edge", cat.EDGES[int(choice(rng, tuple(e.weight for e in cat.EDGES), 1)[0])].code


def _cdn_magnitude(rng: np.random.Generator, kind: str) -> dict[str, float]:
    def uniform(low: float, high: float) -> float:
        return round(float(rng.uniform(low, high)), 3)

    if kind == "latency_spike":
        return {"latency_factor": uniform(3, 8)}
    if kind == "error_burst_5xx":
        return {"error_share": uniform(0.15, 0.5)}
    if kind == "outage":
        return {"error_share": uniform(0.2, 0.5)}
    if kind == "slice_5xx":
        return {"error_share": uniform(0.3, 0.8)}
    if kind == "traffic_drop":
        return {"kept_share": uniform(0.05, 0.4)}
    if kind == "bytes_surge":
        return {"bytes_factor": uniform(2.5, 4)}
    if rng.random() < 0.5:
        return {"latency_factor": uniform(2.5, 5)}
    return {"client_error_share": uniform(0.2, 0.5)}


def _metric_magnitude(rng: np.random.Generator, kind: str) -> dict[str, float]:
    if kind == "spike":
        factor = rng.uniform(1.5, 2.5) if rng.random() < 0.7 else rng.uniform(0.3, 0.6)
    elif kind == "level_shift":
        factor = rng.uniform(1.25, 1.5) if rng.random() < 0.5 else rng.uniform(0.6, 0.8)
    else:
        return {}
    return {"factor": round(float(factor), 3)}


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def _overlap(a: Anomaly, b: Anomaly) -> bool:
    return a.start_ms < b.stop_ms and b.start_ms < a.stop_ms


def _busy_enough(anomaly: Anomaly, seed: int) -> bool:
    """Whether the target's traffic at the start is at least `BUSY_ENOUGH` of its daily mean.

    Incidents at 4 a.m. on a small edge move a handful of requests; nobody would see them.
    """
    day_start = anomaly.start_ms - anomaly.start_ms % DAY_MS
    minutes = np.append(day_start + MINUTE_MS * np.arange(0, 1440, 10), anomaly.start_ms)
    expected = sum(intensity(stream, minutes, 1.0, seed) for stream in cat.CLOUDFRONT_STREAMS)
    if anomaly.dim == "edge":
        expected = expected[:, [edge.code for edge in cat.EDGES].index(anomaly.value)]
    else:
        expected = expected.sum(axis=1)
    return bool(expected[-1] >= BUSY_ENOUGH * expected[:-1].mean())


# --- effects -----------------------------------------------------------------------------------


def target_mask(requests: Requests, anomaly: Anomaly) -> np.ndarray:
    """The requests an anomaly acts on: its target's, inside its window."""
    in_window = (requests.ts_ms >= anomaly.start_ms) & (requests.ts_ms < anomaly.stop_ms)
    if anomaly.dim == "service":
        on_target = np.ones(len(requests), dtype=bool)
    elif anomaly.dim == "edge":
        on_target = requests.edge == [edge.code for edge in cat.EDGES].index(anomaly.value)
        if anomaly.channel:
            on_target &= requests.channel == cat.CHANNELS.index(anomaly.channel)
    elif anomaly.dim == "channel":
        on_target = requests.channel == cat.CHANNELS.index(anomaly.value)
    else:
        on_target = requests.device == cat.device_index()[0].index(anomaly.value)
    return in_window & on_target


def apply_cdn_anomaly(requests: Requests, anomaly: Anomaly, rng: np.random.Generator) -> Requests:
    """`requests` as they are when `anomaly` happens."""
    affected = target_mask(requests, anomaly)
    magnitude = anomaly.magnitude
    if "latency_factor" in magnitude:
        factor = np.where(affected, magnitude["latency_factor"], 1.0)
        return requests.replace(ttfb_s=requests.ttfb_s * factor, transfer_s=requests.transfer_s * factor)
    if "error_share" in magnitude:
        return fail(
            requests, affected & (rng.random(len(requests)) < magnitude["error_share"]), _SERVER_ERRORS, rng
        )
    if "client_error_share" in magnitude:
        chosen = affected & (rng.random(len(requests)) < magnitude["client_error_share"])
        return fail(requests, chosen, _CLIENT_ERRORS, rng)
    if "kept_share" in magnitude:
        return requests.take(~(affected & (rng.random(len(requests)) >= magnitude["kept_share"])))
    grown = affected & requests.is_segment
    factor = np.where(grown, magnitude["bytes_factor"], 1.0)
    return requests.replace(
        object_size=np.rint(requests.object_size * factor).astype(np.int64),
        content_len=np.where(grown, np.rint(requests.content_len * factor), requests.content_len).astype(
            np.int64
        ),
        body_bytes=np.rint(requests.body_bytes * factor).astype(np.int64),
        transfer_s=requests.transfer_s * factor,
    )


def fail(
    requests: Requests, rows: np.ndarray, statuses: dict[int, float], rng: np.random.Generator
) -> Requests:
    """The `rows` answered with one of `statuses` instead: CloudFront's error page, no range."""
    status = requests.status.copy()
    status[rows] = np.array(list(statuses), dtype=np.int16)[
        choice(rng, tuple(statuses.values()), int(rows.sum()))
    ]
    result = np.where(rows, cat.ERROR, requests.result).astype(np.int8)
    detail = requests.detail.copy()
    for code in statuses:
        detail[rows & (status == code)] = cat.DETAILED_RESULTS.index(cat.DETAIL_FOR_STATUS[code])
    return requests.replace(
        status=status,
        result=result,
        detail=detail,
        content_len=np.where(rows, cat.ERROR_PAGE_BYTES, requests.content_len),
        range_start=np.where(rows, -1, requests.range_start),
        body_bytes=np.where(rows, cat.ERROR_PAGE_BYTES, requests.body_bytes),
        ttfb_s=np.where(rows, time_to_first_byte(rng, status, result, requests.region), requests.ttfb_s),
        transfer_s=np.where(rows, cat.ERROR_PAGE_BYTES * 8 / requests.bandwidth_bps, requests.transfer_s),
    )


def apply_metric_anomaly(values: np.ndarray, day_start_ms: int, anomaly: Anomaly) -> np.ndarray:
    """One day of a service's values as they are when `anomaly` happens."""
    first = (anomaly.start_ms - day_start_ms) // MINUTE_MS
    window = slice(first, first + anomaly.minutes)
    changed = values.copy()
    if anomaly.kind == "stall":
        changed[window] = values[first - 1]
    else:
        changed[window] = values[window] * anomaly.magnitude["factor"]
    return changed
