"""Per-minute CDN features: traffic, errors, latency percentiles and cache hits, overall and by dimension."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import ArrayLike

from passion_tasks.lake import Day, schemas

from .series import long_table, minute_grid

#: The cdn_logs columns the features are computed from.
COLUMNS = [
    "ts",
    "edge_location",
    "live_channel",
    "device_family",
    "cs_uri_stem",
    "cs_protocol_version",
    "cs_method",
    "sc_status",
    "sc_bytes",
    "edge_result_type",
    "time_to_first_byte",
    "time_taken",
]

CACHE_HITS = ("Hit", "RefreshHit", "OriginShieldHit")
#: The bucket of a breakdown's values beyond its top ones.
OTHER = "(other)"
QUANTILES = {0.5: "p50", 0.95: "p95", 0.99: "p99"}
LATENCIES = {"time_to_first_byte": "cdn_ttfb", "time_taken": "cdn_time_taken"}
PERCENTILES = pd.MultiIndex.from_product([list(LATENCIES), list(QUANTILES)])
#: The suffix of a latency's geometric mean over the minute's requests: the typical request's latency.
GEOMETRIC_MEAN = "gmean"
#: CDN logs give latencies in whole milliseconds: a 0 is "under one", and counts as one in a log.
LATENCY_FLOOR = 0.001
#: Metrics that are 0, not unknown, in a minute without requests.
COUNTS = ["cdn_requests", "cdn_bytes"]


@dataclass(frozen=True)
class Breakdown:
    """One split of the requests: ``dim`` in the series name, ``column`` of the request frame.

    ``top`` bounds how many of a day's values get series of their own; the rest share the ``OTHER``
    series. Clients choose URLs, methods and user agents, so without a bound a few hundred odd
    requests would multiply the series a day scores.
    """

    dim: str
    column: str
    top: int
    counts_only: bool = False


BREAKDOWNS = (
    Breakdown("", "overall", top=1),
    Breakdown("edge", "edge_location", top=64),
    Breakdown("channel", "live_channel", top=32),
    Breakdown("device", "device_group", top=12),
    Breakdown("path", "path_group", top=10),
    # The seed notebook's one-hot encoding of categorical fields, summed per minute.
    Breakdown("protocol", "cs_protocol_version", top=8, counts_only=True),
    Breakdown("method", "cs_method", top=8, counts_only=True),
)


def cdn_features(logs: pa.Table, day: Day) -> pa.Table:
    """FEATURES rows of a day's cdn_logs (only that day's rows), on the day's complete minute grid."""
    requests = request_frame(logs)
    grid = minute_grid(day, day)
    wide = pd.concat(
        {breakdown.dim: breakdown_frame(requests, breakdown, grid) for breakdown in BREAKDOWNS},
        axis=1,
        names=["dim", "metric", "dim_value"],
    )
    return long_table(wide)


def path_group(uri_stem: pa.ChunkedArray) -> pa.ChunkedArray:
    """The first two folders of a URI path, its file left out: ``/vod/big_buck_bunny/seg_001.ts`` ->
    ``/vod/big_buck_bunny``, ``/img/poster12.jpg`` and ``/img/poster13.jpg`` -> ``/img``,
    ``/favicon.ico`` -> ``/``: requests for the many files of one folder are one slice."""
    # A day repeats far fewer distinct stems than it has requests: parse each distinct stem once.
    # An empty column can arrive typed null (pandas' empty frames): it is still a column of paths.
    uri_stem = uri_stem.cast(pa.string())
    stems = pc.unique(uri_stem)
    folders = pc.replace_substring_regex(stems, pattern=r"/[^/]*$", replacement="")
    groups = pc.replace_substring_regex(folders, pattern=r"^(/?[^/]*(?:/[^/]*)?).*$", replacement=r"\1")
    groups = pc.if_else(pc.equal(groups, ""), "/", groups)
    return pc.take(groups, pc.index_in(uri_stem, value_set=stems))


def path_root(groups: pa.ChunkedArray) -> pa.ChunkedArray:
    """The first folder of each ``path_group``: ``/vod/big_buck_bunny`` and ``/vod/sintel`` -> ``/vod``,
    ``/img`` -> ``/img``, ``/`` -> ``/``."""
    roots = pc.replace_substring_regex(groups, pattern=r"^(/[^/]*|[^/]+)/.*$", replacement=r"\1")
    return pc.if_else(pc.equal(roots, ""), "/", roots)


def top_values(values: pa.ChunkedArray, n: int) -> pa.Array:
    """The ``n`` most frequent non-null values; ties go to the smaller value, so the choice is stable."""
    counts = pc.value_counts(values)
    table = pa.table({"value": counts.field("values"), "count": counts.field("counts")}).drop_null()
    return (
        table.sort_by([("count", "descending"), ("value", "ascending")]).slice(0, n)["value"].combine_chunks()
    )


def bounded_values(values: pa.ChunkedArray, top: int) -> pa.ChunkedArray:
    """Each value as ``schemas.bounded_name`` writes it, the ``top`` most frequent kept and the others
    ``OTHER``; a missing value (a request outside every live channel, say) stays missing."""
    values = values.cast(pa.string())
    distinct = pc.unique(values)
    named = pa.array(
        [None if v is None else schemas.bounded_name(v) for v in distinct.to_pylist()], pa.string()
    )
    bounded = pc.take(named, pc.index_in(values, value_set=distinct))
    kept = pc.or_kleene(pc.is_in(bounded, value_set=top_values(bounded, top)), pc.is_null(bounded))
    return pc.if_else(kept, bounded, OTHER)


def request_frame(logs: pa.Table) -> pd.DataFrame:
    """One row per request: its minute, dimension values (categorical) and the measures to aggregate."""
    status = logs["sc_status"]
    raw = {
        "edge_location": logs["edge_location"],
        "live_channel": logs["live_channel"],
        "device_group": pc.fill_null(logs["device_family"].cast(pa.string()), OTHER),
        "path_group": path_group(logs["cs_uri_stem"]),
        "cs_protocol_version": logs["cs_protocol_version"],
        "cs_method": logs["cs_method"],
    }
    tops = {breakdown.column: breakdown.top for breakdown in BREAKDOWNS}
    dims = {
        "overall": pa.DictionaryArray.from_arrays(np.zeros(logs.num_rows, dtype=np.int8), [""]),
        **{column: bounded_values(values, tops[column]) for column, values in raw.items()},
    }
    columns = {
        "minute": pc.floor_temporal(logs["ts"], unit="minute"),
        **{name: pc.dictionary_encode(values) for name, values in dims.items()},
        "sc_bytes": logs["sc_bytes"],
        "is_4xx": pc.and_(pc.greater_equal(status, 400), pc.less(status, 500)),
        "is_5xx": pc.and_(pc.greater_equal(status, 500), pc.less(status, 600)),
        "is_hit": pc.is_in(logs["edge_result_type"], value_set=pa.array(CACHE_HITS)),
        **{name: logs[name] for name in LATENCIES},
        **{log_latency(name): log_of_latency(logs[name].to_numpy()) for name in LATENCIES},
    }
    return pa.table(columns).to_pandas()


def log_latency(column: str) -> str:
    """The request frame's column of ``column``'s natural log."""
    return f"log_{column}"


def log_of_latency(latencies: ArrayLike) -> np.ndarray:
    """The natural log of each latency (in seconds), ``LATENCY_FLOOR`` at least; NaN stays NaN."""
    return np.log(np.maximum(np.asarray(latencies, dtype=float), LATENCY_FLOOR))


def breakdown_frame(requests: pd.DataFrame, breakdown: Breakdown, grid: pd.DatetimeIndex) -> pd.DataFrame:
    """Wide frame of one breakdown: index = ``grid``, columns = (metric, dim_value)."""
    grouped = requests.groupby(["minute", breakdown.column], observed=True)
    stats = grouped.size().rename("cdn_requests").to_frame()
    if not breakdown.counts_only:
        sums = grouped[["sc_bytes", "is_4xx", "is_5xx", "is_hit"]].sum()
        stats["cdn_bytes"] = sums["sc_bytes"]
        stats["cdn_4xx_rate"] = sums["is_4xx"] / stats["cdn_requests"]
        stats["cdn_5xx_rate"] = sums["is_5xx"] / stats["cdn_requests"]
        quantiles = (
            grouped[list(LATENCIES)].quantile(list(QUANTILES)).unstack(-1).reindex(columns=PERCENTILES)
        )
        log_means = grouped[[log_latency(column) for column in LATENCIES]].mean()
        for column, prefix in LATENCIES.items():
            for q, suffix in QUANTILES.items():
                stats[f"{prefix}_{suffix}"] = quantiles[(column, q)]
            stats[f"{prefix}_{GEOMETRIC_MEAN}"] = np.exp(log_means[log_latency(column)])
        stats["cdn_cache_hit_ratio"] = sums["is_hit"] / stats["cdn_requests"]

    # Every value of the dimension gets every metric, also when the day has no request to show it.
    values = requests[breakdown.column].cat.categories.astype(str)
    wide = stats.unstack(breakdown.column).reindex(
        index=grid, columns=pd.MultiIndex.from_product([stats.columns, values])
    )
    counts = wide.columns.get_level_values(0).isin(COUNTS)
    wide.loc[:, counts] = wide.loc[:, counts].fillna(0)
    return wide
