"""Which feature series are watched (trained, scored, alerted on) and which only feed models.

CDN series are watched overall, per edge and per live channel, and per device family for their
error and hit rates and latencies (a player release that breaks one family shows nowhere else); the
finer breakdowns (path, protocol, method) and a family's volumes only explain incidents. A slice's
latency is watched by its p95, on which latency objectives are written, and by the geometric mean
of its requests' latencies, the typical request: a slice of four requests a minute has a p95 and a
p99 that are both its slowest request, and a latency change on it shows in the mean of the logs of
all its requests, which the detector pools over minutes with their counts. The median and the p99
are watched overall only: CDN latencies have two modes (cache hits in milliseconds, misses in tens
or hundreds of them), and a slice's median jumps from one to the other whenever its hit ratio
crosses a half. Every server metric is watched. The seed's previous-hour open/close/max/min are
model inputs, never watched on their own.
"""

from __future__ import annotations

from collections.abc import Iterable

from passion_tasks.features.cdn import GEOMETRIC_MEAN
from passion_tasks.lake.schemas import INPUT_ONLY_SUFFIXES

#: CDN metrics that are the geometric mean of the minute's requests' latencies.
GEOMETRIC_MEAN_SUFFIX = f"_{GEOMETRIC_MEAN}"

WATCHED_DIMS = ("", "edge", "channel")
#: Metrics watched overall only, not per edge or channel.
OVERALL_ONLY_SUFFIXES = ("_p50", "_p99")
#: Breakdowns watched for some metrics only (by their suffixes): a device family's requests and bytes
#: follow its viewers' habits; its error rates and latencies are its player's health, and the
#: count-aware detectors judge them with the family's own requests.
PARTLY_WATCHED = {"device": ("_rate", "_ratio", "_p95", GEOMETRIC_MEAN_SUFFIX)}


def is_input_only(name: str) -> bool:
    """A model input (a previous-hour feature), not a series of its own."""
    return name.endswith(INPUT_ONLY_SUFFIXES)


def series_dim(name: str) -> str:
    """The dimension of ``metric{dim=value}``, or "" for an overall series."""
    return name.partition("{")[2].partition("=")[0]


def series_dim_value(name: str) -> str:
    """The value of ``metric{dim=value}``, or "" for an overall series."""
    return name.partition("{")[2].partition("=")[2].removesuffix("}")


def watched_series(names: Iterable[str]) -> list[str]:
    """The watched ones of ``names``, in their order."""
    return [name for name in names if not is_input_only(name) and is_watched_dim(name)]


def is_watched_dim(name: str) -> bool:
    """Whether ``name``'s breakdown is watched: overall always, per edge and channel but for medians and
    p99s, per device for rates and latencies."""
    dim, metric = series_dim(name), metric_of(name)
    if dim in PARTLY_WATCHED:
        return metric.endswith(PARTLY_WATCHED[dim])
    return dim == "" or (dim in WATCHED_DIMS and not metric.endswith(OVERALL_ONLY_SUFFIXES))


#: CDN metrics that are a share of the minute's requests, and the direction in which they go bad.
RATES = {"cdn_4xx_rate": "up", "cdn_5xx_rate": "up", "cdn_cache_hit_ratio": "down"}
#: CDN metrics that are a percentile of the minute's requests.
PERCENTILE_SUFFIXES = ("_p50", "_p95", "_p99")
VOLUME = "cdn_requests"
HIT_RATIO = "cdn_cache_hit_ratio"


def metric_of(name: str) -> str:
    """``cdn_5xx_rate`` of ``cdn_5xx_rate{edge=FRA2}``."""
    return name.partition("{")[0]


def same_slice(metric: str, name: str) -> str:
    """``metric`` of the slice the CDN series ``name`` measures: ``cdn_requests{edge=FRA2}`` for
    ``cdn_5xx_rate{edge=FRA2}``."""
    return metric + name[len(metric_of(name)) :]


def volume_series(name: str) -> str:
    """The requests per minute of the slice a CDN series measures."""
    return same_slice(VOLUME, name)


def hit_ratio_series(name: str) -> str:
    """The cache hit ratio of the slice a CDN series measures."""
    return same_slice(HIT_RATIO, name)


def goes_bad_downwards(name: str) -> bool:
    """Whether the metric of series ``name`` goes bad as it falls (a hit ratio), not as it rises."""
    return RATES.get(metric_of(name), "up") == "down"


def metric_kind(name: str) -> str:
    """What a series measures: ``rate``, ``percentile`` and ``geometric_mean`` (of a slice's requests),
    ``count`` (the requests themselves), ``volume`` (bytes) for the CDN; ``metric`` for a server
    metric."""
    metric = metric_of(name)
    if not metric.startswith("cdn_"):
        return "metric"
    if metric in RATES:
        return "rate"
    if metric.endswith(PERCENTILE_SUFFIXES):
        return "percentile"
    if metric.endswith(GEOMETRIC_MEAN_SUFFIX):
        return "geometric_mean"
    return "count" if metric == VOLUME else "volume"
