"""Ground truth in NAB's format, keyed by the feature series an anomaly visibly moves.

Which series an anomaly moves is measured, not guessed: the requests of the hours it touches are
aggregated per minute twice, as they were generated and as the anomaly left them, the way the
features step aggregates them. A series is labelled when the anomaly shifts its typical minute in
the window by more than `VISIBLE_SIGMAS` times its usual minute-to-minute noise.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from passion_tasks.lake.schemas import series_name
from passion_tasks.synthetic import catalog as cat
from passion_tasks.synthetic.anomalies import Anomaly
from passion_tasks.synthetic.metric_files import SERVICES
from passion_tasks.synthetic.requests import Requests
from passion_tasks.synthetic.traffic import HOUR_MS, MINUTE_MS

#: Per-minute CDN feature metrics, as the features step names them.
CDN_METRICS = (
    "cdn_requests",
    "cdn_bytes",
    "cdn_4xx_rate",
    "cdn_5xx_rate",
    "cdn_ttfb_p50",
    "cdn_ttfb_p95",
    "cdn_ttfb_p99",
    "cdn_time_taken_p50",
    "cdn_time_taken_p95",
    "cdn_time_taken_p99",
    "cdn_cache_hit_ratio",
)
QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
VISIBLE_SIGMAS = 3.0
#: Fewer baseline minutes than this and a series' spread is unknown: it is not labelled.
MIN_BASELINE_MINUTES = 10
NAB_TIME = "%Y-%m-%d %H:%M:%S.000000"


@dataclass(frozen=True)
class Dimension:
    """A breakdown of the requests, named as the features step names it (``""``: overall)."""

    name: str
    values: tuple[str, ...]
    counts_only: bool = False  # the features step counts requests only (the seed's one-hot fields)

    @property
    def metrics(self) -> tuple[str, ...]:
        return ("cdn_requests",) if self.counts_only else CDN_METRICS


@functools.cache
def dimensions() -> tuple[Dimension, ...]:
    return (
        Dimension("", ("",)),
        Dimension("edge", tuple(edge.code for edge in cat.EDGES)),
        Dimension("channel", cat.CHANNELS),
        Dimension("device", cat.device_index()[0]),
        Dimension(
            "path", tuple(f"/live/{c}" for c in cat.CHANNELS) + tuple(f"/vod/{t}" for t, _ in cat.TITLES)
        ),
        Dimension("protocol", cat.VERSIONS, counts_only=True),
        Dimension("method", cat.METHODS, counts_only=True),
    )


def _codes(requests: Requests) -> dict[str, np.ndarray]:
    """Per dimension, each request's index into its values (-1: not in the breakdown)."""
    return {
        "": np.zeros(len(requests), dtype=np.int64),
        "edge": requests.edge,
        "channel": requests.channel,
        "device": requests.device,
        "path": np.where(
            requests.channel >= 0, requests.channel, len(cat.CHANNELS) + requests.title.astype(int)
        ),
        "protocol": requests.version,
        "method": requests.method,
    }


def all_series() -> list[str]:
    """Every series the labels cover: CDN metrics overall and per dimension value, and the services."""
    names = [
        series_name(metric, dim.name, value)
        for dim in dimensions()
        for metric in dim.metrics
        for value in dim.values
    ]
    return sorted(names + [series_name(service.name) for service in SERVICES])


def minute_metrics(requests: Requests, first_minute_ms: int, minutes: int) -> pd.DataFrame:
    """Every CDN feature series, one row per minute from `first_minute_ms`."""
    minute = (requests.ts_ms - first_minute_ms) // MINUTE_MS
    status = requests.status
    shares = {
        "cdn_4xx_rate": (status >= 400) & (status < 500),
        "cdn_5xx_rate": status >= 500,
        "cdn_cache_hit_ratio": np.isin(requests.result, cat.CACHE_HITS),
    }
    timings = {"cdn_ttfb": requests.ttfb_ms / 1000, "cdn_time_taken": requests.time_taken_ms / 1000}
    codes = _codes(requests)
    columns: dict[str, np.ndarray] = {}
    for dim in dimensions():
        rows = codes[dim.name] >= 0
        group = codes[dim.name][rows].astype(np.int64) * minutes + minute[rows]
        size = len(dim.values) * minutes
        count = np.bincount(group, minlength=size)
        metrics = {
            "cdn_requests": count.astype(float),
            "cdn_bytes": np.bincount(group, weights=requests.sc_bytes[rows], minlength=size),
        }
        with np.errstate(invalid="ignore", divide="ignore"):
            for name, flag in shares.items():
                metrics[name] = np.bincount(group, weights=flag[rows], minlength=size) / count
        for name, seconds in timings.items():
            per_quantile = _group_quantiles(group, seconds[rows], size)
            metrics |= {f"{name}_{label}": q for label, q in zip(QUANTILES, per_quantile, strict=True)}
        for metric in dim.metrics:
            for value, per_minute in zip(dim.values, metrics[metric].reshape(-1, minutes), strict=True):
                columns[series_name(metric, dim.name, value)] = per_minute
    return pd.DataFrame(columns)


def _group_quantiles(group: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    """`QUANTILES` of `values` in each of `size` groups (linear interpolation, NaN where empty)."""
    order = np.lexsort((values, group))
    ordered = values[order]
    count = np.bincount(group, minlength=size)
    first = np.concatenate(([0], np.cumsum(count)[:-1]))
    present = count > 0
    quantiles = np.full((len(QUANTILES), size), np.nan)
    for row, q in enumerate(QUANTILES.values()):
        position = first[present] + q * (count[present] - 1)
        low = np.floor(position).astype(np.int64)
        high = np.minimum(low + 1, first[present] + count[present] - 1)
        quantiles[row, present] = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
    return quantiles


def moved_series(anomaly: Anomaly, evidence: list[tuple[Requests, Requests]]) -> tuple[str, ...]:
    """The series `anomaly` visibly moves, from the hours it touched before and after it acted."""
    first_minute_ms = anomaly.hours.start * HOUR_MS
    minutes = len(anomaly.hours) * 60
    before = minute_metrics(Requests.concat([b for b, _ in evidence]), first_minute_ms, minutes)
    after = minute_metrics(Requests.concat([a for _, a in evidence]), first_minute_ms, minutes)
    offset = (anomaly.start_ms - first_minute_ms) // MINUTE_MS
    window = slice(offset, offset + anomaly.minutes)
    spread = _noise(before)
    shift = (after.iloc[window] - before.iloc[window]).median()
    enough = before.count() >= MIN_BASELINE_MINUTES
    visible = enough & (shift.abs() > VISIBLE_SIGMAS * spread) & (shift != 0)
    return tuple(sorted({*visible[visible].index, anomaly.primary_series}))


def _noise(frame: pd.DataFrame) -> pd.Series:
    """Each series' minute-to-minute noise, robustly: the daily trend within the span and the odd
    outlier (a 504 after seconds in a p99) do not count.
    """
    steps = frame.diff()
    return 1.4826 * (steps - steps.median()).abs().median() / np.sqrt(2)


def combined_windows(anomalies: list[Anomaly]) -> dict[str, list[list[str]]]:
    """NAB's ``combined_windows.json``: every series, with the windows of the anomalies on it."""
    windows: dict[str, list[list[str]]] = {name: [] for name in all_series()}
    for anomaly in sorted(anomalies, key=lambda a: a.start):
        for name in anomaly.series:
            windows.setdefault(name, []).append(
                [anomaly.start.strftime(NAB_TIME), anomaly.end.strftime(NAB_TIME)]
            )
    return dict(sorted(windows.items()))
