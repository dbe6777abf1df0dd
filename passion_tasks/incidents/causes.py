"""What drove an incident: the CDN log slices that hold a metric's change, and the services that moved.

``explain_incident`` compares the log rows of an incident window with those of a baseline window
and drills down, one dimension at a time (edge, path group or its folder, device family), into the
values that hold most of the change while carrying a much smaller share of the traffic, the way an
operator narrows a dashboard; the status class then says which responses carry the change. A dimension
where the change is spread like the traffic is reported as "all edges", "all devices".
``co_movements`` does the same job for server metrics, which have no rows to slice: it says which
services left their baseline together.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.special import xlogy

from passion_tasks.detectors.thresholds import robust_spread
from passion_tasks.features.cdn import (
    CACHE_HITS,
    GEOMETRIC_MEAN,
    LATENCIES,
    QUANTILES,
    log_of_latency,
    path_group,
    path_root,
)
from passion_tasks.ingest.convert import live_path

#: A change, or its concentration in a slice, must exceed this many standard deviations of its noise.
SIGNIFICANCE_Z = 3.0
#: A change is explained by the fewest values of a dimension that together hold this share of it,
#: each significantly more than its share of the traffic ...
EXPLAINED_SHARE = 0.8
#: ... provided they hold at least this share, ...
MIN_EXPLAINED_SHARE = 0.5
#: ... are at most this many values, ...
MAX_VALUES = 3
#: ... and hold this many times more of the change than of the traffic (else it is everywhere).
MIN_LIFT = 1.5
#: Fewer extra flagged requests than this (an error, a slow request) is no change to explain.
MIN_EXCESS_REQUESTS = 3
#: A volume (requests, bytes per minute) must move by this share of its baseline to be explained.
MIN_VOLUME_CHANGE = 0.05
#: A service moved when its median left the baseline median by this many robust deviations.
MOVED_Z = 3.0
#: The baseline of an incident is at least this long, and ends this long before the incident.
BASELINE_MINIMUM = pd.Timedelta(minutes=60)
BASELINE_GUARD = pd.Timedelta(minutes=5)
#: Server metrics are compared with themselves this long before, to take their daily cycle out.
SEASON = pd.Timedelta(days=1)
MISSING = "(none)"
STATUS_CLASSES = np.array([f"{digit}xx" for digit in range(10)])

Window = tuple[pd.Timestamp, pd.Timestamp]


@dataclass(frozen=True)
class Dimension:
    """A breakdown of the log rows: its column and how a sentence names it."""

    column: str
    singular: str
    plural: str


#: Where requests go (edge, path, device) narrows an incident down; the status class says what
#: kind of responses carry the change there.
DIMENSIONS = (
    Dimension("edge_location", "edge", "edges"),
    Dimension("path_group", "path", "paths"),
    Dimension("path_root", "path", "paths"),
    Dimension("device_family", "device", "devices"),
    Dimension("status_class", "status", "statuses"),
)
STATUS = "status_class"
#: The column of ``log_slices`` that counts requests (1 a row).
REQUESTS = "requests"
#: Who sent a request (its address): not a place to narrow an incident down to, but who made it.
CLIENT = "c_ip"
#: A path is grouped two ways: by its first two folders (``/vod/big_buck_bunny``, ``/live/ch7``)
#: and by its first (``/vod``), for a change spread over the many titles of one folder. A slice
#: names one of them; the other then says nothing more.
PATH_LEVELS = ("path_group", "path_root")
_BY_COLUMN = {dimension.column: dimension for dimension in DIMENSIONS}
#: How a report names each dimension column.
DIMENSION_NAMES = {dimension.column: dimension.singular for dimension in DIMENSIONS}
#: The log columns ``explain_incident`` reads.
LOG_COLUMNS = [
    "ts",
    "edge_location",
    "cs_uri_stem",
    "sc_status",
    "device_family",
    CLIENT,
    "live_channel",
    "edge_result_type",
    "sc_bytes",
    *LATENCIES,
]


@dataclass(frozen=True)
class Measure:
    """How a CDN feature metric is computed from log rows.

    ``share``: the share of requests with the boolean ``column`` set (an error rate); ``volume``:
    the sum of ``column`` per minute (requests, bytes); ``quantile``: the ``q`` quantile of
    ``column`` (a latency percentile), whose change is attributed through the requests slower
    than the baseline's quantile; ``geometric_mean``: a latency's geometric mean, attributed the
    same way through the baseline's median (``q`` 0.5).
    """

    label: str
    kind: Literal["share", "volume", "quantile", "geometric_mean"]
    column: str
    q: float = 0.0
    #: Whether the status class can say which responses carry the change: not for the error rates,
    #: which are status classes.
    by_status: bool = True

    @property
    def latency(self) -> bool:
        """Whether it measures latencies, and attributes their change through the slow requests."""
        return self.kind in ("quantile", "geometric_mean")

    def format(self, value: float) -> str:
        if not np.isfinite(value):
            return "n/a"
        if self.kind == "share":
            return _percent(value)
        if self.latency:
            return f"{_digits(value)} s" if value >= 1 else f"{_digits(value * 1000)} ms"
        if self.column == "sc_bytes":
            return f"{_digits(value / 1e6)} MB/min"
        return f"{_digits(value)}/min"


def _measures() -> dict[str, Measure]:
    measures = {
        "cdn_requests": Measure("requests", "volume", REQUESTS),
        "cdn_bytes": Measure("bytes sent", "volume", "sc_bytes"),
        "cdn_4xx_rate": Measure("4xx rate", "share", "is_4xx", by_status=False),
        "cdn_5xx_rate": Measure("5xx rate", "share", "is_5xx", by_status=False),
        "cdn_cache_hit_ratio": Measure("cache hit ratio", "share", "is_hit"),
    }
    for column, prefix in LATENCIES.items():
        label = prefix.removeprefix("cdn_").replace("_", " ")
        for q, suffix in QUANTILES.items():
            measures[f"{prefix}_{suffix}"] = Measure(f"{label} {suffix}", "quantile", column, q)
        typical = Measure(f"{label} geometric mean", "geometric_mean", column, 0.5)
        measures[f"{prefix}_{GEOMETRIC_MEAN}"] = typical
    return measures


#: The explainable metrics of ``features.cdn``, by metric name.
MEASURES = _measures()


def metric_of(series: str) -> str:
    """``cdn_5xx_rate{edge=FRA2}`` -> ``cdn_5xx_rate``."""
    return series.partition("{")[0]


@dataclass(frozen=True)
class Slice:
    """Values of one dimension holding ``change_share`` of the change and ``traffic_share`` of the traffic.

    ``change`` is the part of the change they hold, in the measure's units (flagged requests, requests
    a minute): what compares slices of two dimensions, whose shares are of changes measured apart.
    """

    dimension: str
    values: tuple[str, ...]
    change_share: float
    traffic_share: float
    change: float = float("nan")
    #: How unlikely the change is (``_surprise``): what ranks slices of different dimensions.
    surprise: float = float("nan")

    def describe(self) -> str:
        names = _BY_COLUMN[self.dimension]
        if len(self.values) == 1:
            return f"{names.singular} {self.values[0]}"
        return f"{names.plural} {', '.join(self.values[:-1])} and {self.values[-1]}"


@dataclass(frozen=True)
class Contribution:
    """One value of a dimension: the measure before and during, and its share of change and traffic."""

    dimension: str
    value: str
    before: float
    during: float
    change_share: float
    traffic_share: float


@dataclass(frozen=True)
class Explanation:
    """Where in the logs a metric changed between a baseline and an incident window.

    ``before``/``during`` are the measure inside the explaining slices (all rows when there is
    none), ``overall_*`` over all rows. ``spread`` names the dimensions the change covers evenly;
    ``mechanism`` the status classes that carry it inside the slices, when they concentrate it.
    ``explained_share`` is the share of the whole change inside the slices. ``changed`` is False
    when the logs show too small a change to attribute; ``overall_changed`` whether all rows changed
    beyond their noise, wherever the change lies. ``requests`` counts the incident window's
    requests; ``breakdown`` holds the top values of every dimension over all rows.
    """

    metric: str
    measure: Measure
    before: float
    during: float
    overall_before: float
    overall_during: float
    slices: tuple[Slice, ...]
    spread: tuple[str, ...]
    mechanism: Slice | None
    explained_share: float
    changed: bool
    overall_changed: bool
    requests: int
    breakdown: tuple[Contribution, ...] = ()
    #: The few clients that made the change (``_clients_who_made_it``), and the edges that served them
    #: (``incidents.day`` adds ``(other)`` where one of those has no series of its own that day).
    clients: tuple[str, ...] = ()
    client_edges: tuple[str, ...] = ()

    @property
    def sentence(self) -> str:
        """E.g. ``5xx rate 0.2% → 9.1% at edge FRA2, path /live/ch7, all devices (overall 0.2% → 1.3%)``.

        ``ttfb p95 350 ms → 2.1 s at edge SIN2, all paths, all devices, mostly 5xx responses``
        when the slow requests are the failing ones.
        """
        fmt = self.measure.format
        if not self.changed:
            return (
                f"{self.measure.label} {fmt(self.overall_before)} → {fmt(self.overall_during)} over "
                f"{self.requests:,} requests: within noise, not attributed"
            )
        places = [part.describe() for part in self.slices]
        places += [f"all {_BY_COLUMN[column].plural}" for column in self.spread]
        if self.mechanism is not None:
            places.append(f"mostly {_and(self.mechanism.values)} responses")
        text = f"{self.measure.label} {fmt(self.before)} → {fmt(self.during)}"
        if places:
            text += " at " + ", ".join(places)
        if self.slices:
            text += f" (overall {fmt(self.overall_before)} → {fmt(self.overall_during)})"
        if self.clients:
            text += f", made by {clients_named(self.clients)}"
        return text


def clients_named(clients: Sequence[str]) -> str:
    """``one client 198.51.100.7``, ``clients 198.51.100.0 and 198.51.100.1``."""
    return f"{'one client' if len(clients) == 1 else 'clients'} {_and(clients)}"


def log_slices(logs: pd.DataFrame) -> pd.DataFrame:
    """CDN log rows with the dimensions (categorical) and flags ``explain_rows`` works on.

    ``logs`` has the ``LOG_COLUMNS`` of ``schemas.CDN_LOGS``; missing dimension values become
    ``(none)`` so that they are a slice like any other.
    """
    status = logs["sc_status"].to_numpy(dtype="int64")
    groups = path_group(pa.chunked_array([pa.array(logs["cs_uri_stem"], pa.string())]))
    dimensions = {
        "edge_location": logs["edge_location"],
        "path_group": groups.to_pandas().set_axis(logs.index),
        "path_root": path_root(groups).to_pandas().set_axis(logs.index),
        # HTTP statuses have three digits; CloudFront logs 000 when the client went away.
        "status_class": pd.Series(STATUS_CLASSES[np.clip(status // 100, 0, 9)], index=logs.index),
        "device_family": logs["device_family"],
    }
    return pd.DataFrame(
        {
            "ts": logs["ts"],
            **{name: values.fillna(MISSING).astype("category") for name, values in dimensions.items()},
            # Not a dimension of its own (its requests are those of its path): what a detector's
            # channel series names, to find them.
            "live_channel": logs["live_channel"],
            CLIENT: logs[CLIENT].fillna(MISSING).astype(str),
            "is_4xx": (status >= 400) & (status < 500),
            "is_5xx": (status >= 500) & (status < 600),
            "is_hit": logs["edge_result_type"].isin(CACHE_HITS),
            REQUESTS: 1,
            "sc_bytes": logs["sc_bytes"].fillna(0),
            **{column: logs[column] for column in LATENCIES},
        },
        index=logs.index,
    )


def baseline_window(
    start: pd.Timestamp,
    stop: pd.Timestamp,
    day: Window,
    *,
    minimum: pd.Timedelta = BASELINE_MINIMUM,
    guard: pd.Timedelta = BASELINE_GUARD,
) -> Window:
    """The window to compare the incident ``[start, stop)`` with, inside ``day`` (``[first, end)``).

    As long as the incident and at least ``minimum``, ending ``guard`` before it (detectors flag
    an incident a few minutes after it began); after the incident when it starts too early in the
    day; else whatever the day has left on the longer side.
    """
    length = max(stop - start, minimum)
    first, end = day
    if start - guard - length >= first:
        return start - guard - length, start - guard
    if stop + guard + length <= end:
        return stop + guard, stop + guard + length
    if start - first >= end - stop:
        return first, max(first, start - guard)
    return min(end, stop + guard), end


def comparison_window(
    metric: str, start: pd.Timestamp, stop: pd.Timestamp, day: Window, *, previous_day: bool
) -> Window:
    """The baseline ``explain_incident`` compares ``metric`` with for the incident ``[start, stop)``.

    Volumes (requests, bytes) follow the time of day, differently on each edge as its viewers'
    evening comes: they are compared with the same minutes of the day before when that day's logs
    exist (``previous_day``). Rates and latencies change little within an hour: they are compared
    with the ``baseline_window`` of the same day.
    """
    if MEASURES[metric].kind == "volume" and previous_day:
        return start - pd.Timedelta(days=1), stop - pd.Timedelta(days=1)
    return baseline_window(start, stop, day)


def explain_incident(
    logs: pd.DataFrame, start: pd.Timestamp, stop: pd.Timestamp, baseline: Window, metric: str
) -> Explanation:
    """Which slices of the CDN logs explain the change of ``metric`` in ``[start, stop)`` over ``baseline``.

    ``logs`` are rows of ``schemas.CDN_LOGS`` (at least ``LOG_COLUMNS``) covering both windows;
    ``metric`` is a key of ``MEASURES`` (``cdn_5xx_rate``, ``cdn_ttfb_p95``, ...). At each step the
    place dimension (edge, path, device) whose explaining values are the most concentrated (change
    share over traffic share) narrows the rows; it stops when none concentrates the change. The
    status class then says what kind of responses carry the change inside that place.
    """
    return explain_rows(log_slices(logs), start, stop, baseline, metric)


def explain_rows(
    rows: pd.DataFrame,
    start: pd.Timestamp,
    stop: pd.Timestamp,
    baseline: Window,
    metric: str,
    *,
    elsewhere: Sequence[Window] = (),
    within: Sequence[tuple[str, str]] = (),
    witnessed: Sequence[tuple[str, str]] = (),
) -> Explanation:
    """``explain_incident`` of rows already through ``log_slices``, to explain several metrics of
    the same rows without preparing them again.

    The requests of the day's other incidents (``elsewhere``) are no baseline for a rate or a
    latency: a 5xx burst on another edge an hour before would hide this one's. Volumes are per
    minute of their window, and keep them. ``within`` (column, value) pairs are a slice the detectors
    flagged alone (``edge_location``, ``device_family``, or ``live_channel`` named by its path): the
    search starts inside it, and it counts as changed only if the measure changed there.
    ``witnessed`` pairs are the slice the detectors flagged alone among breakdowns while a total moved
    too: where no value of a dimension concentrates the change beyond the logs' noise, the witnessed
    value names it all the same if it holds most of the change and ``MIN_LIFT`` times its share of the
    traffic (three errors, all on the edge whose 5xx rate its detector flagged, a third of the requests
    there, is that edge's burst, not noise spread over all edges)."""
    measure = MEASURES[metric]
    during, before, minutes = _windows(rows, start, stop, baseline)
    if measure.kind != "volume":
        for other in elsewhere:
            before = before[(before["ts"] < other[0]) | (before["ts"] >= other[1])]
    # The same minutes of another day have the day's rhythm already.
    same_clock = (start - baseline[0]) % pd.Timedelta(days=1) == pd.Timedelta(0) and minutes[0] == minutes[1]
    if measure.latency:
        slow = before[measure.column].quantile(measure.q) if len(before) else np.inf
        during = during.assign(flag=during[measure.column] > slow)
        before = before.assign(flag=before[measure.column] > slow)
    overall = (_value(measure, before, minutes[1]), _value(measure, during, minutes[0]))
    everywhere = during, before
    requests = len(during)
    places = [d.column for d in DIMENSIONS if d.column != STATUS]

    tables = {
        column: _contributions(measure, during, before, column, minutes, same_clock)
        for column in places + [STATUS] * measure.by_status
    }
    breakdown = tuple(row for column, table in tables.items() for row in _top_rows(column, table))
    flagged = _flagged_slices(during, within)
    for part in flagged:
        during = during[during[part.dimension].isin(part.values)]
        inside = before[before[part.dimension].isin(part.values)]
        # A share in a slice whose baseline holds fewer requests than the incident's (a crawler's
        # device on a thin edge) is known worse from them than the incident shows it: it is judged
        # against the place around it, as ``_contributions`` judges a value without any.
        if measure.kind != "share" or len(inside) >= len(during):
            before = inside
        places = _without(places, part.dimension)
    if flagged:
        tables = {
            column: _contributions(measure, during, before, column, minutes, same_clock) for column in places
        }
    # A flagged value witnesses where the whole change is worth explaining; inside a narrower slice of
    # it, fewer errors than that, its flag still speaks for them.
    witnesses = [
        (column, value)
        for column, value in (slice_dimension(*pair) for pair in witnessed)
        if column in places
        and _worth_explaining(measure, tables[column])
        and _witness(measure, column, value, tables[column])
    ]
    slices: list[Slice] = []
    explained = 1.0
    while candidates := [
        part for column in places if (part := _concentration(measure, column, tables[column]))
    ] or [
        part
        for column, value in witnesses
        if column in places and (part := _witness(measure, column, value, tables[column]))
    ]:
        best = _broadest(max(candidates, key=lambda part: part.surprise), candidates)
        slices.append(best)
        explained *= min(best.change_share, 1.0)
        places = _without(places, best.dimension)
        during = during[during[best.dimension].isin(best.values)]
        before = before[before[best.dimension].isin(best.values)]
        tables = {
            column: _contributions(measure, during, before, column, minutes, same_clock) for column in places
        }
    changed = bool(slices) or _overall_change(measure, during, before, minutes)
    slices = [*flagged, *slices]
    clients, client_edges = (
        _clients_who_made_it(measure, during, before, minutes, everywhere) if changed else ((), ())
    )
    mechanism = None
    if changed and measure.by_status:
        mechanism = _mechanism(_contributions(measure, during, before, STATUS, minutes, same_clock))
    return Explanation(
        metric=metric,
        measure=measure,
        before=_value(measure, before, minutes[1]),
        during=_value(measure, during, minutes[0]),
        overall_before=overall[0],
        overall_during=overall[1],
        slices=tuple(slices),
        spread=_spread(places, during, before) if changed else (),
        mechanism=mechanism,
        explained_share=explained if changed else 0.0,
        changed=changed,
        overall_changed=_overall_change(measure, *everywhere, minutes),
        requests=requests,
        breakdown=breakdown,
        clients=clients,
        client_edges=client_edges,
    )


def fell(
    rows: pd.DataFrame,
    start: pd.Timestamp,
    stop: pd.Timestamp,
    baseline: Window,
    metric: str,
    within: Sequence[tuple[str, str]],
) -> bool:
    """Whether the volume ``metric`` fell beyond its noise (``_overall_change``) in the slice ``within``
    of ``rows`` (through ``log_slices``) from ``baseline`` to ``[start, stop)``; False for a rate or
    a latency."""
    measure = MEASURES[metric]
    if measure.kind != "volume":
        return False
    for column, value in within:
        rows = rows[rows[column] == value]
    during, before, minutes = _windows(rows, start, stop, baseline)
    lower = _value(measure, during, minutes[0]) < _value(measure, before, minutes[1])
    return lower and _overall_change(measure, during, before, minutes)


def _flagged_slices(during: pd.DataFrame, within: Sequence[tuple[str, str]]) -> list[Slice]:
    """The slices of ``within`` as the incident's rows name them (a live channel by its path)."""
    slices = []
    for column, value in within:
        inside = during[column] == value
        if not inside.any():
            return []
        dimension, name = slice_dimension(column, value)
        slices.append(Slice(dimension, (name,), 1.0, float(inside.mean())))
        during = during[inside]
    return slices


def slice_dimension(column: str, value: str) -> tuple[str, str]:
    """A flagged (column, value) as the dimension that names it: a live channel by its path."""
    return ("path_group", live_path(value)) if column == "live_channel" else (column, value)


def _witness(measure: Measure, column: str, value: str, table: pd.DataFrame) -> Slice | None:
    """``value`` of ``column`` as a slice if it holds ``MIN_EXPLAINED_SHARE`` of the change and
    ``MIN_LIFT`` times more of it than of the traffic: ``_concentration`` without the significance
    its detector's flag stands in for. Its share is of the whole change, all values' parts counted:
    none of them is beyond the logs' noise, the witness included."""
    if value not in table.index or (table["traffic_share"] > 0).sum() < 2:
        return None
    total = table["delta"].sum()
    if total == 0:
        return None
    change = float(table.at[value, "delta"])
    traffic_share = float(table.at[value, "traffic_share"])
    if not _holds_the_change(change / total, traffic_share):
        return None
    return Slice(
        column, (value,), change / total, traffic_share, change, _surprise(measure, table.loc[[value]])
    )


def _worth_explaining(measure: Measure, table: pd.DataFrame) -> bool:
    """Whether the whole change of ``table`` is one to explain: none without rows; a volume's whatever
    its sum (the parts beyond their noise make it, ``_made``), a share's or a quantile's from ``least``
    flagged requests on."""
    if table.empty:
        return False
    return measure.kind == "volume" or abs(table["delta"].sum()) >= table["least"].iloc[0]


def _surprise(measure: Measure, chosen: pd.DataFrame) -> float:
    """How unlikely the change of the ``chosen`` rows of a ``_contributions`` table is without one, to
    rank slices of different dimensions: a rate's or a latency's change per share of the traffic (the
    slice's own rate against the rest's); the requests' Poisson deviance of the count against the one
    expected, as a likelihood ratio test reads it. An edge that lost 240 of 400 requests to the others
    is less likely than a device family that asked for 117 instead of 68, though that is more change
    for its share; traffic from nowhere (a crawler's device) is the least likely of all."""
    if measure.column != REQUESTS:
        return abs(float(chosen["delta"].sum())) / max(float(chosen["traffic_share"].sum()), 1e-12)
    return float(_poisson_deviance(chosen["sum_during"].sum(), chosen["expected"].sum()))


def _poisson_deviance(count: float | pd.Series, expected: float | pd.Series) -> float | pd.Series:
    """The Poisson deviance of ``count`` requests where ``expected`` were (numbers or arrays): the
    statistic of a likelihood ratio test, how unlikely the count is. ``xlogy`` takes a count of 0; an
    expected count of 0 is floored, so that traffic from nowhere is the least likely of all."""
    expected = np.maximum(expected, 1e-12)
    return 2 * (xlogy(count, count / expected) - (count - expected))


def _broadest(best: Slice, candidates: Sequence[Slice]) -> Slice:
    """``best``, or the folder its path groups lie in when the folder holds more traffic than they do
    and they hold its change only in proportion to their share of its traffic: a slowdown of every
    title of ``/vod`` is named ``/vod``, not by its two most watched titles, though those hold as
    much of the change per request."""
    if best.dimension != PATH_LEVELS[0]:
        return best
    for folder in candidates:
        inside = all(
            any(group == root or group.startswith(root.rstrip("/") + "/") for root in folder.values)
            for group in best.values
        )
        # A concentration holds at least MIN_EXPLAINED_SHARE of the change: never a division by 0.
        broader = folder.traffic_share > best.traffic_share and not np.isclose(
            folder.traffic_share, best.traffic_share
        )
        if folder.dimension == PATH_LEVELS[1] and inside and broader:
            lift = (best.change / folder.change) / (best.traffic_share / folder.traffic_share)
            if lift < MIN_LIFT:
                return folder
    return best


def _without(places: list[str], dimension: str) -> list[str]:
    """``places`` less ``dimension``, and less the other path level when it is one."""
    named = PATH_LEVELS if dimension in PATH_LEVELS else (dimension,)
    return [place for place in places if place not in named]


def _spread(places: list[str], during: pd.DataFrame, before: pd.DataFrame) -> tuple[str, ...]:
    """The dimensions of ``places`` whose values the rows vary over, each path named once."""
    varied = [column for column in places if _varies(during, before, column)]
    if all(level in varied for level in PATH_LEVELS):
        varied.remove(PATH_LEVELS[1])
    return tuple(varied)


def _varies(during: pd.DataFrame, before: pd.DataFrame, column: str) -> bool:
    return pd.concat([during[column], before[column]]).nunique() > 1


def _windows(
    rows: pd.DataFrame, start: pd.Timestamp, stop: pd.Timestamp, baseline: Window
) -> tuple[pd.DataFrame, pd.DataFrame, tuple[float, float]]:
    """The ``rows`` of the incident ``[start, stop)`` and of its ``baseline``, and the minutes of each."""
    during = rows[(rows["ts"] >= start) & (rows["ts"] < stop)]
    before = rows[(rows["ts"] >= baseline[0]) & (rows["ts"] < baseline[1])]
    return during, before, (_minutes(stop - start), _minutes(baseline[1] - baseline[0]))


def _minutes(span: pd.Timedelta) -> float:
    return max(span / pd.Timedelta(minutes=1), 1.0)


def _weight(measure: Measure) -> str:
    """The per-row numerator of the measure: a flag for latencies, the summed (or shared) column else."""
    return "flag" if measure.latency else measure.column


def _value(measure: Measure, rows: pd.DataFrame, minutes: float) -> float:
    if measure.kind == "volume":
        return float(rows[measure.column].sum()) / minutes
    if rows.empty:
        return float("nan")
    if measure.kind == "quantile":
        return float(rows[measure.column].quantile(measure.q))
    if measure.kind == "geometric_mean":
        return float(np.exp(np.nanmean(log_of_latency(rows[measure.column]))))
    return float(rows[measure.column].mean())


def _overall_change(
    measure: Measure, during: pd.DataFrame, before: pd.DataFrame, minutes: tuple[float, float]
) -> bool:
    """Whether the measure changed over all of ``during`` by more than its noise (``SIGNIFICANCE_Z``).

    A rate or a latency over no requests is undefined, so no change; a volume over none is 0 a minute."""
    if measure.kind != "volume" and (during.empty or before.empty):
        return False
    weight = during[_weight(measure)].astype(float), before[_weight(measure)].astype(float)
    if measure.kind == "volume":
        change = weight[0].sum() / minutes[0] - weight[1].sum() / minutes[1]
        noise = (weight[0] ** 2).sum() / minutes[0] ** 2 + (weight[1] ** 2).sum() / minutes[1] ** 2
        least = MIN_VOLUME_CHANGE * weight[1].sum() / minutes[1]
    else:
        rate = weight[1].mean()
        change = weight[0].sum() - len(weight[0]) * rate
        noise = len(weight[0]) * rate * (1 - rate) * (1 + len(weight[0]) / len(weight[1]))
        least = MIN_EXCESS_REQUESTS
    return bool(abs(change) >= max(least, SIGNIFICANCE_Z * np.sqrt(noise)) and change != 0)


def _contributions(
    measure: Measure,
    during: pd.DataFrame,
    before: pd.DataFrame,
    column: str,
    minutes: tuple[float, float],
    same_clock: bool = False,
) -> pd.DataFrame:
    """Per value of ``column``: the measure before and during, its part of the change and of the traffic.

    ``delta`` adds up to the whole change: for shares and quantiles, the flagged requests beyond what
    the value's own baseline rate would give (the overall rate where the value had no baseline
    traffic); for volumes, the change per minute beyond the day's own rhythm. ``noise`` is the
    variance ``delta`` would have without any change (binomial, or compound Poisson for volumes).
    ``least`` (on every row) is the smallest whole change worth explaining.
    """
    weight = _weight(measure)
    aggregations = {"sum": (weight, "sum"), "size": (weight, "size"), "squares": ("squares", "sum")}
    now = during.assign(squares=during[weight].astype(float) ** 2).groupby(column, observed=True)
    then = before.assign(squares=before[weight].astype(float) ** 2).groupby(column, observed=True)
    table = (
        now.agg(**aggregations)
        .join(then.agg(**aggregations), how="outer", suffixes=("_during", "_before"))
        .fillna(0.0)
    )
    if measure.kind == "volume":
        rate_before = table["sum_before"] / minutes[1]
        rate_during = table["sum_during"] / minutes[0]
        # Traffic rises and falls through the day for every value alike: scale a baseline of other
        # minutes by the typical ratio, so only departures from it count (else an evening decline
        # hides a surge). The same minutes of another day need no scaling, and a median of two or
        # three values would take one of them for the rhythm.
        trend = 1.0 if same_clock else _weighted_median(rate_during / rate_before, rate_before)
        table["delta"] = rate_during - trend * rate_before
        table["noise"] = (
            table["squares_during"] / minutes[0] ** 2 + trend**2 * table["squares_before"] / minutes[1] ** 2
        )
        table["least"] = MIN_VOLUME_CHANGE * rate_before.sum()
        table["expected"] = trend * rate_before * minutes[0]
        traffic = table["size_before"] if table["size_before"].sum() else table["size_during"]
    else:
        overall_rate = before[weight].mean() if len(before) else 0.0
        rate = (table["sum_before"] / table["size_before"].where(table["size_before"] > 0)).fillna(
            overall_rate
        )
        table["delta"] = table["sum_during"] - table["size_during"] * rate
        # Binomial noise of the incident's counts at the rate a change spread like the traffic would
        # give every value, plus that of the baseline rate, an estimate too. Both rates are estimated
        # with half a request more of each kind (Jeffreys): three slow requests of three, after none of
        # two, are not a rate of 1 after one of 0 known without error.
        spread_rate = (table["sum_during"].sum() + 0.5) / (table["size_during"].sum() + 1)
        known_rate = ((table["sum_before"] + 0.5) / (table["size_before"] + 1)).where(
            table["size_before"] > 0, rate
        )
        table["noise"] = table["size_during"] * spread_rate * (1 - spread_rate) + table[
            "size_during"
        ] ** 2 * known_rate * (1 - known_rate) / table["size_before"].clip(1)
        table["least"] = float(MIN_EXCESS_REQUESTS)
        traffic = table["size_during"]
    table["traffic_share"] = traffic / traffic.sum()
    table["before"] = _values_by(measure, before, column, minutes[1]).reindex(table.index)
    table["during"] = _values_by(measure, during, column, minutes[0]).reindex(table.index)
    if measure.kind == "volume":
        table[["before", "during"]] = table[["before", "during"]].fillna(0.0)
    # Shares of the change the values beyond their noise make (``_made``), as the drill-down takes
    # them: the report's rows rank the edge the cause names first, not one whose small drift is a
    # large share of a whole change that nearly cancels, nor the edges that took a share each of the
    # viewers another lost. Without such a value, shares of the whole change.
    table["change_share"] = table["delta"] / (_made(measure, table) or table["delta"].sum())
    table.index = table.index.astype(str)
    return table.sort_index().sort_values("change_share", ascending=False, kind="stable")


def _weighted_median(values: pd.Series, weights: pd.Series) -> float:
    """The median of the finite ``values`` weighted by ``weights``; 1 without any."""
    usable = np.isfinite(values) & (weights > 0)
    if not usable.any():
        return 1.0
    order = values[usable].sort_values(kind="stable")
    cumulative = weights[order.index].cumsum()
    return float(order[cumulative >= cumulative.iloc[-1] / 2].iloc[0])


def _values_by(measure: Measure, rows: pd.DataFrame, column: str, minutes: float) -> pd.Series:
    if measure.kind == "geometric_mean":
        logs = pd.Series(log_of_latency(rows[measure.column]), index=rows.index)
        return np.exp(logs.groupby(rows[column], observed=True).mean())
    grouped = rows.groupby(column, observed=True)[measure.column]
    if measure.kind == "volume":
        return grouped.sum() / minutes
    if measure.kind == "quantile":
        return grouped.quantile(measure.q)
    return grouped.mean()


def _concentration(measure: Measure, column: str, table: pd.DataFrame) -> Slice | None:
    """The values of ``column`` that concentrate the change, if a few do.

    Values join, largest part of the change first, while they hold less than ``EXPLAINED_SHARE``
    and each holds more than a change spread like the traffic would give it, by
    ``SIGNIFICANCE_Z`` times its noise. The slice must hold ``MIN_EXPLAINED_SHARE`` of the change
    and ``MIN_LIFT`` times more of it than of the traffic, in at most ``MAX_VALUES`` values and
    not all there are. The whole change of a share or quantile must be at least ``least``; a volume's
    slice must change by ``MIN_VOLUME_CHANGE`` of its own baseline: a channel that lost most of its
    requests barely moves the whole CDN's. The shares are of the change the parts beyond their noise
    make (``_made``). What a change spread like the traffic would give each value is reckoned from the
    whole change of a share or quantile, and from the change made for a volume, whose many small
    parts drift with the hour.
    """
    if table.empty:
        return None
    total, made = table["delta"].sum(), _made(measure, table)
    if made == 0 or not _worth_explaining(measure, table):
        return None
    if measure.kind == "volume":
        total = made
    beyond_spread = (table["delta"] - table["traffic_share"] * total) * np.sign(total)
    significant = beyond_spread >= SIGNIFICANCE_Z * np.sqrt(table["noise"])
    count = 0
    while (
        count < len(table)
        and significant.iloc[count]
        and (count == 0 or table["change_share"].iloc[:count].sum() < EXPLAINED_SHARE)
    ):
        count += 1
    present = int((table["traffic_share"] > 0).sum())
    # One more significant value than allowed: the change is spread over many, not concentrated.
    if count == 0 or count > MAX_VALUES or count >= present:
        return None
    chosen = table.iloc[:count]
    if measure.kind == "volume" and abs(chosen["delta"].sum()) < MIN_VOLUME_CHANGE * chosen["before"].sum():
        return None
    change_share = float(chosen["change_share"].sum())
    traffic_share = float(chosen["traffic_share"].sum())
    if not _holds_the_change(change_share, traffic_share):
        return None
    return Slice(
        column,
        tuple(chosen.index),
        change_share,
        traffic_share,
        float(chosen["delta"].sum()),
        _surprise(measure, chosen),
    )


def _made(measure: Measure, table: pd.DataFrame) -> float:
    """The change that the values beyond their noise make: not the sum of every value's, where many
    small parts drifting with the hour (latencies a little higher at nine than at eight on every edge,
    VOD titles that grew a little over a long incident) would outweigh the one that changed.

    A volume's parts may cancel: the viewers an edge lost went to the others, and the whole barely
    moved, or rose as their players retried, its sign left to chance. Its change is the side of its
    leading part, that side's parts summed: the edge that lost them, not the edges that took a share
    each. For requests, the leading part is the least likely count (``_poisson_deviance``, as the
    drill-down ranks slices, ``_surprise``): the busiest edge may gain more requests than another
    lost, but fewer of its own noise's worth. For
    bytes it is the largest: their noise is that of the sizes, and a class of small bodies (the 5xx
    pages of an outage) is far beyond it for kilobytes a minute beside a drop of megabytes."""
    deviations = table["delta"].abs() / np.sqrt(table["noise"])
    parts = table["delta"].where(deviations >= SIGNIFICANCE_Z, 0.0)
    if measure.kind == "volume" and parts.any():
        size = (
            _poisson_deviance(table["sum_during"], table["expected"])
            if measure.column == REQUESTS
            else parts.abs()
        )
        leading = size.where(parts.ne(0)).idxmax()
        parts = parts[np.sign(parts) == np.sign(parts.loc[leading])]
    return float(parts.sum())


def _clients_who_made_it(
    measure: Measure,
    during: pd.DataFrame,
    before: pd.DataFrame,
    minutes: tuple[float, float],
    everywhere: tuple[pd.DataFrame, pd.DataFrame],
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The few clients that made the change in ``during`` (over ``before``), if few did (a crawler
    walking missing paths, two bots at once, one downloader), and the edges that served them.

    At most ``MAX_VALUES`` clients, each with ``MIN_EXCESS_REQUESTS`` requests or more, that make
    ``EXPLAINED_SHARE`` of the change (a client's part: its flagged requests beyond the baseline rate;
    for a volume, its change per minute), while the other requests their edges served (of
    ``everywhere``, the incident's and the baseline's rows: a crawler's made-up paths are its slice
    alone) fared otherwise: a volume's did not change beyond their noise; a share's or a latency's
    rate departed not a fifth as far as those clients', and they were enough to have shown the change
    had they fared alike; or those clients' requests are new traffic there, more a minute than their
    edges served in the baseline beyond the noise of requests (``_new_traffic``). A thin edge whose
    only viewers all failed is the edge's outage, not theirs; so is an outage whose heaviest viewer
    made most of its errors while the others failed as often."""
    weight = _weight(measure)
    if measure.kind == "volume":
        now = during.groupby(CLIENT)[weight].sum() / minutes[0]
        parts = now.sub(before.groupby(CLIENT)[weight].sum() / minutes[1], fill_value=0.0)
    else:
        rate = before[weight].mean() if len(before) else 0.0
        parts = (during[weight].astype(float) - rate).groupby(during[CLIENT]).sum()
    total = parts.sum()
    requests = during[CLIENT].value_counts()
    # Requests logged without an address are no one client's.
    busy = parts.drop(MISSING, errors="ignore")
    busy = busy[requests.reindex(busy.index) >= MIN_EXCESS_REQUESTS]
    ranked = (busy * np.sign(total)).sort_values(ascending=False).head(MAX_VALUES)
    made = ranked.cumsum() >= EXPLAINED_SHARE * abs(total)
    if total == 0 or not made.any():
        return (), ()
    clients = tuple(str(client) for client in ranked.index[: int(made.to_numpy().argmax()) + 1])
    theirs = during[during[CLIENT].isin(clients)]
    edges = tuple(sorted(map(str, theirs["edge_location"].unique())))
    others, others_before = (
        rows[rows["edge_location"].isin(edges) & ~rows[CLIENT].isin(clients)] for rows in everywhere
    )
    if measure.kind == "volume":
        spared = not _overall_change(measure, others, others_before, minutes)
    else:
        # The others departed from their baseline not a fifth as far as those clients (the part of the
        # change those clients leave to others), though faring as those clients did they would have
        # shown it.
        baseline, their_rate = others_before[weight].mean(), theirs[weight].astype(float).mean()
        fared_alike = others.assign(**{weight: their_rate})
        spared = abs(others[weight].mean() - baseline) <= (1 - EXPLAINED_SHARE) * abs(
            their_rate - baseline
        ) and _overall_change(measure, fared_alike, others_before, minutes)
        served_before = everywhere[1][everywhere[1]["edge_location"].isin(edges)]
        spared = spared or _new_traffic(theirs, served_before, minutes)
    return (clients, edges) if spared else ((), ())


def _new_traffic(theirs: pd.DataFrame, served_before: pd.DataFrame, minutes: tuple[float, float]) -> bool:
    """Whether the requests ``theirs`` outnumber, a minute and beyond their noise, all that their edges
    served in the baseline (``served_before``): a crawler on an edge its viewers leave nearly idle.
    Its 404s are its session's: no viewer the edge served before is seen failing, and an edge that
    fails its own viewers fails no more requests than they make."""
    more = len(theirs) / minutes[0] > len(served_before) / minutes[1]
    return more and _overall_change(MEASURES["cdn_requests"], theirs, served_before, minutes)


def _holds_the_change(change_share: float, traffic_share: float) -> bool:
    """Whether a slice holds enough of the change, and enough more of it than of the traffic, to name."""
    return change_share >= MIN_EXPLAINED_SHARE and change_share >= MIN_LIFT * traffic_share


def _mechanism(statuses: pd.DataFrame) -> Slice | None:
    """The status class other than 2xx holding ``EXPLAINED_SHARE`` of the change, if one does.

    Unlike a place, it need not be rarer than the traffic: inside a failing slice every response
    may be a 5xx, and that is the point. Successful responses are what one expects: not named.
    """
    if statuses.empty or abs(statuses["delta"].sum()) < statuses["least"].iloc[0]:
        return None
    top = statuses.iloc[0]
    if statuses.index[0] == "2xx" or not top["change_share"] >= EXPLAINED_SHARE:
        return None
    return Slice(STATUS, (statuses.index[0],), float(top["change_share"]), float(top["traffic_share"]))


def _top_rows(column: str, table: pd.DataFrame, count: int = 3) -> list[Contribution]:
    return [
        Contribution(column, str(value), row.before, row.during, row.change_share, row.traffic_share)
        for value, row in table.head(count).iterrows()
    ]


# -- metrics: which services moved together ----------------------------------------------------


@dataclass(frozen=True)
class Movement:
    """How one series moved in an incident window against its baseline window.

    ``before``/``during`` are its medians there; ``change`` and ``z`` (the move in robust
    deviations of the baseline) are measured on the series divided by its value a day earlier
    when ``seasonal``, on the series itself otherwise.
    """

    series: str
    before: float
    during: float
    change: float
    z: float
    seasonal: bool
    #: Whether its detector flagged it in the incident: it moved, whatever its median did (a stall,
    #: a spike of a few minutes in a longer window).
    anomalous: bool = False

    @property
    def moved(self) -> bool:
        return self.anomalous or abs(self.z) >= MOVED_Z

    def describe(self) -> str:
        return f"{self.series} {signed_percent(self.change)} ({signed_number(self.z)}σ)"


def co_movements(
    frame: pd.DataFrame,
    start: pd.Timestamp,
    stop: pd.Timestamp,
    baseline: Window,
    *,
    season: pd.Timedelta = SEASON,
    anomalous: Collection[str] = (),
) -> list[Movement]:
    """How each column of ``frame`` (minutes x series) moved in ``[start, stop)`` against ``baseline``:
    the ``anomalous`` ones (flagged in the incident) first, then the strongest.

    Server metrics follow the clock: an evening rise is no news when the evening before rose
    alike. Where ``frame`` also holds the minutes one ``season`` earlier, each series is divided by
    its value then, and the move is that ratio's: the change of the median ratio, and the
    difference of median ratios over the baseline's robust spread. Else the series' own values.
    """
    ratios = frame / frame.shift(freq=season).reindex(frame.index)
    # Rows sliced once for all series: a fleet has hundreds of them.
    during, before = _rows(frame.index, (start, stop)), _rows(frame.index, baseline)
    values, ratio_values = frame.to_numpy(dtype=float), ratios.to_numpy(dtype=float)
    movements = []
    for column, series in enumerate(frame.columns):
        seasonal = all(np.isfinite(ratio_values[rows, column]).any() for rows in (during, before))
        measured = ratio_values[:, column] if seasonal else values[:, column]
        new, old = _finite(measured[during]), _finite(measured[before])
        if not old.size or not new.size:
            continue
        new_median, old_median = float(np.median(new)), float(np.median(old))
        # A series without any noise moved if it changed at all: floor its spread far below its level.
        spread = robust_spread(old) or abs(old_median) * 1e-6 or 1.0
        movements.append(
            Movement(
                series=str(series),
                before=_median(values[before, column]),
                during=_median(values[during, column]),
                change=new_median / old_median - 1 if old_median else float("nan"),
                z=(new_median - old_median) / spread,
                seasonal=seasonal,
                anomalous=str(series) in anomalous,
            )
        )
    return sorted(movements, key=lambda movement: (not movement.anomalous, -abs(movement.z), movement.series))


def _rows(index: pd.DatetimeIndex, window: Window) -> np.ndarray:
    return (index >= window[0]) & (index < window[1])


def _finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def _median(values: np.ndarray) -> float:
    """The median of the known values, NaN if none (as pandas' ``median``)."""
    known = _finite(values)
    return float(np.median(known)) if known.size else float("nan")


def co_movement_sentence(movements: Sequence[Movement]) -> str:
    """E.g. ``paycore −12% (−6.3σ) and paydecision −10% (−5.1σ) moved together; cif held``; the
    anomalous series lead: ``paydecision2 −0.4% (−0.3σ) anomalous; cif +6.6% (+3.3σ) moved too``."""
    flagged = [movement.describe() for movement in movements if movement.anomalous]
    moved = [movement.describe() for movement in movements if movement.moved and not movement.anomalous]
    held = sorted(movement.series for movement in movements if not movement.moved)
    if flagged:
        text = f"{_and(flagged)} anomalous" + (f"; {_and(moved)} moved too" if moved else "")
    elif not moved:
        return f"no service left its baseline by {MOVED_Z:g}σ or more"
    elif len(moved) == 1:
        text = f"only {moved[0]} moved"
    else:
        text = f"{_and(moved)} moved together"
    return text + (f"; {_and(held)} held" if held else "")


# -- formatting --------------------------------------------------------------------------------


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _digits(value: float, digits: int = 2) -> str:
    """``value`` to ``digits`` significant digits, in plain notation with thousands separators."""
    if value == 0:
        return "0"
    decimals = max(digits - 1 - int(np.floor(np.log10(abs(value)))), 0)
    return f"{round(value, decimals):,.{decimals}f}"


def _percent(share: float) -> str:
    """Two significant digits under 10%, whole percents above: 0.21%, 9.1%, 43%."""
    return f"{_digits(share * 100) if share < 0.1 else f'{share * 100:.0f}'}%"


def signed_number(value: float) -> str:
    """``+5.9`` or ``−5.9``, with a true minus sign."""
    return f"{value:+.1f}".replace("-", "−")


def signed_percent(change: float) -> str:
    if not np.isfinite(change):
        return "n/a"
    return ("+" if change >= 0 else "−") + _percent(abs(change))
