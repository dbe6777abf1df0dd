"""A day's incidents with what drove each: the one definition the report, the alerts and the Airflow
plugin all use.

``day_incidents`` reads the day's events and scores, groups the events into incidents
(``incidents.model``) and explains each: a CDN incident from the logs (``incidents.causes``, the
slices that hold its change), a server-metric incident from the services that moved with it. An
incident's ``cause`` is what an alert carries: a sentence and the slice it names.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads

from passion_tasks.features import read_series, ts_within
from passion_tasks.features.cdn import OTHER
from passion_tasks.features.policy import (
    goes_bad_downwards,
    is_input_only,
    metric_kind,
    metric_of,
    series_dim,
    series_dim_value,
)
from passion_tasks.figures import day_span
from passion_tasks.incidents import causes as drv
from passion_tasks.incidents.model import Incident, group_incidents, with_severity
from passion_tasks.lake import Lake, PartitionNotFound, datasets, schemas
from passion_tasks.models import registry
from passion_tasks.models.families import ONE_SIDED, USUAL_DEPARTURE
from passion_tasks.models.scoring import enough_alone

#: Incidents of a day that are explained (their causes read from the logs), most important first: the
#: report gives each a section, and only they can alert.
EXPLAINED_INCIDENTS = 20
#: The metrics of an incident are explained causes first: failing requests are slow and small, a
#: traffic drop moves the cache, not the reverse; latencies come last.
CAUSES_FIRST = ("cdn_5xx_rate", "cdn_4xx_rate", "cdn_requests", "cdn_bytes", "cdn_cache_hit_ratio")
#: Metrics of one CDN incident explained from the logs: causes first, then the most severe. As many
#: as there are causes: a crawler's 404s, requests, bytes and misses are all its own, and a hit ratio
#: left unexplained beside them would be the service's news.
MAX_EXPLAINED = len(CAUSES_FIRST)


@dataclass(frozen=True)
class Drivers:
    """What drove one incident: explanations from the CDN logs, or how the services moved.

    ``note`` says why there is neither (no logs, no features).
    """

    explanations: tuple[drv.Explanation, ...] = ()
    #: The window each explanation compared the incident with.
    baselines: tuple[drv.Window, ...] = ()
    movements: tuple[drv.Movement, ...] = ()
    note: str = ""
    #: Why the incident is how its breakdowns behave on most days (``usual_departure``), if it is.
    usual: str = ""
    #: A change the incident still shows beside the few clients that made its other changes, where
    #: they never asked (``set_clients_apart``), if it shows one.
    beside_clients: drv.Explanation | None = None

    def shaded(self, day: dt.date) -> drv.Window | None:
        """The first comparison window within ``day``: the one the plot can show."""
        return next((window for window in self.baselines if window[0] >= day_span(day)[0]), None)

    @property
    def sentences(self) -> list[str]:
        found = [explanation.sentence for explanation in self.explanations]
        if self.beside_clients is not None:
            clients = drv.clients_named(sorted(_clients(self.explanations)))
            found.append(f"Without the requests of {clients}: {self.beside_clients.sentence}")
        if self.movements:
            found.append(drv.co_movement_sentence(self.movements))
        return (found or [self.note]) + ([self.usual] if self.usual else [])


def incident_drivers(
    lake: Lake,
    day: dt.date,
    incident: Incident,
    services: pd.DataFrame | None,
    elsewhere: Sequence[drv.Window] = (),
    since: pd.Timestamp | None = None,
    watched: Collection[str] | None = None,
) -> Drivers:
    """Explain a CDN incident from the logs (never against the requests of the day's other incidents,
    ``elsewhere``) from ``since``, when it ``began`` (default: its start), a metrics incident from how
    the services moved. ``watched``: the series scored that day (None: unknown); the edges they name
    have series of their own (``_day_edges``), the others' requests are the ``(other)`` edge's."""
    bounds = day_span(day)
    if incident.family == datasets.SERVER_METRICS:
        if services is None or services.empty:
            return Drivers(note=f"no metric features for {day}: cannot compare the services")
        baseline = drv.baseline_window(incident.start, incident.stop, bounds)
        movements = drv.co_movements(
            services, incident.start, incident.stop, baseline, anomalous=set(incident.events["series"])
        )
        return Drivers(movements=tuple(movements), baselines=(baseline,))

    metrics = _explainable(incident.events["series"])[:MAX_EXPLAINED]
    if not lake.has_partition(datasets.CDN_LOGS, day):
        return Drivers(note=f"no cdn_logs for {day}: the logs cannot say what drove it")
    if not metrics:
        return Drivers(note="none of its series is computed from the CDN logs")
    decisive = _decisive_slices(_decisive_series(incident.events))
    start = incident.start if since is None else since
    previous_day = lake.has_partition(datasets.CDN_LOGS, (start - pd.Timedelta(days=1)).date())
    windows = {
        metric: drv.comparison_window(metric, start, incident.stop, bounds, previous_day=previous_day)
        for metric in dict.fromkeys([*metrics, *(metric for metric, _ in decisive)])
    }
    spans = [(start, incident.stop), *windows.values()]
    rows = drv.log_slices(read_logs(lake, min(first for first, _ in spans), max(end for _, end in spans)))
    # Where the detectors flagged it: a minute grazing its threshold places nothing (``witnessed_slice``).
    starts = starting_slices(_decisive_series(incident.events))
    # Where the logs are too thin to say which edge, the detectors' flag says it.
    witnessed = {metric: witnessed_slice(incident.events, metric) for metric in windows}
    for within in starts:
        explanations = tuple(
            drv.explain_rows(
                rows,
                start,
                incident.stop,
                windows[metric],
                metric,
                elsewhere=elsewhere,
                within=within,
                witnessed=witnessed[metric],
            )
            for metric in metrics
        )
        if any(explanation.changed for explanation in explanations):
            break
    explanations, beside = set_clients_apart(
        rows,
        explanations,
        decisive,
        (start, incident.stop),
        windows,
        elsewhere,
        within,
        witnessed,
        None if watched is None else _day_edges(watched),
        set() if watched is None else set(watched) - set(incident.events["series"]),
    )
    return Drivers(
        explanations=explanations,
        baselines=tuple(windows[metric] for metric in metrics),
        beside_clients=beside,
    )


def _decisive_slices(series: Iterable[str]) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    """The metrics of ``series`` (an incident's events that are enough alone) that the logs explain,
    causes first, each with the slice its series breaks down to (``flagged_slice``; nothing for a
    total, which comes before its breakdowns): what may have changed beside a crawler, and where its
    detector saw it. A volume only
    where a breakdown of it moved: the whole CDN's requests wander with the hour, and are compared
    with the day before, whose crawlers and downloads were other clients."""
    series = list(series)
    metrics = _explainable(series)
    found = dict.fromkeys((drv.metric_of(name), flagged_slice([name])) for name in series)
    return sorted(
        (
            (metric, flagged)
            for metric, flagged in found
            if metric in metrics and (flagged or drv.MEASURES[metric].kind != "volume")
        ),
        key=lambda pair: (metrics.index(pair[0]), bool(pair[1])),
    )


def set_clients_apart(
    rows: pd.DataFrame,
    explanations: Sequence[drv.Explanation],
    decisive: Sequence[tuple[str, tuple[tuple[str, str], ...]]],
    span: drv.Window,
    windows: Mapping[str, drv.Window],
    elsewhere: Sequence[drv.Window] = (),
    within: Sequence[tuple[str, str]] = (),
    witnessed: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    named_edges: Collection[str] | None = None,
    quiet: Collection[str] = (),
) -> tuple[tuple[drv.Explanation, ...], drv.Explanation | None]:
    """``explanations`` with the few clients that made some of their changes set apart: the others
    explained again from the other rows (``causes.explain_rows`` over ``span`` and their baseline of
    ``windows``), then each of the ``decisive`` metrics in the slice its detector flagged
    (``_decisive_slices``: a total's rate, or a breakdown none of their requests fell in, or one on an
    edge that never served them of a metric they made), a total of a metric they made last. A change
    there made by other few clients (a second crawler on another edge) joins the explanations, theirs
    too, and the rest is searched without their requests either; the first made by none, in a slice
    holding none of their requests or over every place alike, is returned beside them.
    Unchanged and None without such clients. ``witnessed``: where the detectors place each metric's
    change (``witnessed_slice``); ``named_edges``: the edges with series of their own that day
    (``_day_edges``; None: unknown), so that the edges that served them are named as the series name
    them (``_as_series_name_them``); ``quiet``: the series scored that day that flagged nothing in the
    incident.

    A crawler walks one edge most days; an origin that slows down one folder while it does is news
    all the same, and its requests are no part of it. A change the logs still show without the
    crawler's requests is not enough to say so: the crawler's edge and the other bots at work carry
    the rest of its footprint, and show a 4xx rate or a hit ratio beside it on most crawling days. A
    slice it never asked for (the folder that slowed) does not. Nor is a change a detector did not see:
    the crawler's misses slow its edge's p95, and another edge's few requests, searched for a change
    without its detector's flag, show one by chance; a breakdown of the crawler's own edge is its
    doing, and a search of that edge's few other requests finds a path that changed by chance too,
    but for a volume that fell there, their requests and all (``causes.fell``): few clients only add
    requests, and an edge whose viewers left while a crawler made up their count is the edge's.
    A total's flag read their requests as well: without them, a slice the search finds while the
    whole no longer moves is what its detector saw only where no detector of its own watched it (a
    folder that slowed); one whose own breakdowns stayed ``quiet`` (one edge's hit ratio among a
    hundred) is the search's chance.
    An edge's requests that fell while the crawler's made up for them in the whole CDN's are the
    edge's, as its detector saw them. A change spread over every edge, path and device holds their few
    requests no more than anyone's: a purge while a crawler walks one edge is the whole service's, and
    the whole CDN's flag is read before its breakdowns', which fell with it.
    """
    clients = _clients(explanations)
    if not clients:
        return tuple(explanations), None
    explanations = [_as_series_name_them(e, named_edges) for e in explanations]
    made = _made(explanations)
    served = _served(explanations)
    others = rows[~rows[drv.CLIENT].isin(clients)]

    def requests_of(few: Collection[str]) -> pd.DataFrame:
        return rows[rows[drv.CLIENT].isin(few) & (rows["ts"] >= span[0]) & (rows["ts"] < span[1])]

    theirs = requests_of(clients)

    def walked(flagged: Sequence[tuple[str, str]]) -> bool:
        return bool(flagged) and all(theirs[column].eq(value).any() for column, value in flagged)

    def explain(metric: str, inside: Sequence[tuple[str, str]] = within) -> drv.Explanation:
        # A flag on a slice they walked read their requests: without them, it witnesses nothing.
        witness = (witnessed or {}).get(metric, ())
        return drv.explain_rows(
            others,
            *span,
            windows[metric],
            metric,
            elsewhere=elsewhere,
            within=inside,
            witnessed=() if walked(witness) else witness,
        )

    again = {e.metric: e if e.metric in made else explain(e.metric) for e in explanations}
    also: list[drv.Explanation] = []
    # A total of a metric they made is searched without them last: a change there is on a slice
    # whose own flag, searched first, names it better (a second crawler's edge).
    for metric, flagged in sorted(decisive, key=lambda pair: not pair[1] and pair[0] in made):
        # A breakdown of a slice they walked read their requests: its departure is theirs, whatever
        # a search of the slice's few other requests finds, but for a volume that fell there with
        # their requests in it: few clients only add requests. A breakdown of a metric they made is
        # theirs but on an edge that never served them; its total read their requests and others'.
        theirs_there = walked(flagged)
        lost = theirs_there and drv.fell(rows, *span, windows[metric], metric, flagged)
        if (theirs_there and not lost) or (metric in made and flagged and not _off(flagged, served)):
            continue
        reused = metric in again and metric not in made and flagged == tuple(within)
        explanation = again[metric] if reused else explain(metric, flagged)
        if explanation.changed and explanation.clients:
            # Other few clients made it (a second crawler, on another edge): routine as theirs is.
            explanation = _as_series_name_them(explanation, named_edges)
            also.append(explanation)
            served |= set(explanation.client_edges)
            clients |= set(explanation.clients)
            theirs = requests_of(clients)
            others = rows[~rows[drv.CLIENT].isin(clients)]
            continue
        apart = (
            lost
            or not explanation.slices
            or any(not theirs[part.dimension].isin(part.values).any() for part in explanation.slices)
        )
        # A total read their requests too: without them, its flag places no change in a slice whose
        # own detectors saw none.
        seen = bool(flagged) or explanation.overall_changed or not _watched_in(explanation, quiet)
        if explanation.changed and apart and seen and _the_bad_way(explanation):
            return (*again.values(), *also), explanation
    return (*again.values(), *also), None


def _as_series_name_them(
    explanation: drv.Explanation, named_edges: Collection[str] | None
) -> drv.Explanation:
    """``explanation`` whose clients' edges include ``(other)`` when one of them has no series of its
    own (not in ``named_edges``; None: unknown): a crawler on a thin edge departs the ``(other)`` edge's
    series, and that edge served them too."""
    if named_edges is None or set(explanation.client_edges) <= set(named_edges):
        return explanation
    return replace(explanation, client_edges=(*explanation.client_edges, OTHER))


def _the_bad_way(explanation: drv.Explanation) -> bool:
    """Whether the change of ``explanation`` goes the way its detectors judge bad where they judge one
    way only (``families.ONE_SIDED``: more errors, fewer hits, slower requests); a volume's either way.
    Without a crawler's slow misses, a thin edge's median that fell by chance is no slowdown beside it."""
    if metric_kind(explanation.metric) not in ONE_SIDED:
        return True
    worse = explanation.during - explanation.before
    if not np.isfinite(worse):
        return True
    return bool(worse < 0 if goes_bad_downwards(explanation.metric) else worse > 0)


def _watched_in(explanation: drv.Explanation, series: Collection[str]) -> bool:
    """Whether a slice of ``explanation`` is edges or devices whose breakdowns of its metric are all
    among ``series``."""
    return any(
        (named := _breakdowns(explanation.metric, part.dimension, part.values)) and set(named) <= set(series)
        for part in explanation.slices
    )


def _breakdowns(metric: str, column: str, values: Iterable[str]) -> list[str]:
    """The series of ``metric`` that break it down to each of ``values`` of the log ``column``, edges
    or devices; none for a column no series breaks down by (a path)."""
    dim = BREAKDOWN_DIMS.get(column)
    return [schemas.series_name(metric, dim, value) for value in values] if dim else []


def _explained(metric: str, explanations: Iterable[drv.Explanation]) -> drv.Explanation | None:
    """The explanation of ``metric`` among ``explanations`` that found a change, if any."""
    return next((e for e in explanations if e.metric == metric and e.changed), None)


def _off(flagged: Sequence[tuple[str, str]], edges: Collection[str]) -> bool:
    """Whether the slice ``flagged`` lies on an edge other than ``edges``."""
    return any(column == BREAKDOWN_COLUMNS["edge"] and value not in edges for column, value in flagged)


def _clients(explanations: Iterable[drv.Explanation]) -> set[str]:
    """The few clients that made any of the changes of ``explanations``."""
    return {client for explanation in explanations for client in explanation.clients}


def _explainable(series: Iterable[str]) -> list[str]:
    """The metrics of ``series`` that the logs explain, causes first, then in the order given (by
    severity, the events' order): a thin 5xx slice under a louder latency."""
    metrics = dict.fromkeys(drv.metric_of(name) for name in series)
    return sorted([metric for metric in metrics if metric in drv.MEASURES], key=_cause_first)


def began(lake: Lake, day: dt.date, incident: Incident) -> pd.Timestamp:
    """When ``incident`` began: its start, unless it opens the day while events of its series ran
    into it from the day before (the ``events`` of that day that reach its last minute), then the
    first of theirs. An incident across midnight is one incident: after midnight the detectors still
    read the minutes before it, and its first minutes of the day may hold too little of it to show."""
    first = day_span(day)[0]
    if incident.start > first:
        return incident.start
    try:
        before = lake.read_partition(
            datasets.EVENTS, day - dt.timedelta(days=1), columns=["start", "end", "series"]
        ).to_pandas()
    except PartitionNotFound:
        return incident.start
    running = before[
        (before["end"] + incident.step >= first) & before["series"].isin(incident.events["series"])
    ]
    return min(incident.start, running["start"].min()) if len(running) else incident.start


#: The log column of each watched breakdown of the CDN series.
BREAKDOWN_COLUMNS = {"edge": "edge_location", "channel": "live_channel", "device": "device_family"}
#: The breakdown of each log column an explanation's slice may name (a channel it names by its path).
BREAKDOWN_DIMS = {"edge_location": "edge", "device_family": "device"}


def flagged_slice(series: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """The one edge, live channel and/or device family that every series of a CDN incident breaks down
    to, as (log column, value) pairs, when none of them is a total: the slice the detectors found
    alone, where its explanation starts. Nothing when a total moved or the series disagree."""
    values: dict[str, set[str]] = {}
    for name in series:
        dim = series_dim(name)
        if dim not in BREAKDOWN_COLUMNS:
            return ()
        values.setdefault(dim, set()).add(series_dim_value(name))
    if not values or any(len(found) > 1 for found in values.values()):
        return ()
    return tuple((column, values[dim].pop()) for dim, column in BREAKDOWN_COLUMNS.items() if dim in values)


def starting_slices(series: Iterable[str]) -> list[tuple[tuple[str, str], ...]]:
    """Where the explanation of a CDN incident starts, in the order to try: the slice every series
    breaks down to (``flagged_slice``), its edge first, then with its channel and device too; else
    the whole CDN, then the slice its breakdown series alone break down to. A total that left its
    noise for two minutes of a channel's twenty is the channel's echo, and the channel's change may
    be plain inside it while the whole CDN's is within its noise. The broader first: an origin that
    fails an edge's misses for every device flags the device that happened to send most of them too,
    and a search inside that device alone would name it."""
    series = list(series)
    if alone := flagged_slice(series):
        return [alone[:parts] for parts in range(1, len(alone) + 1)]
    inside = placed_slice(series)
    return [(), inside] if inside else [()]


def placed_slice(series: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """Where a CDN incident's ``series`` place it: the slice they all break down to
    (``flagged_slice``), else the one their breakdowns do; nothing where they disagree."""
    series = list(series)
    return flagged_slice(series) or flagged_slice([name for name in series if series_dim(name)])


def _decisive_series(events: pd.DataFrame) -> pd.Series:
    """The series of ``events`` that are ``enough`` alone: those that make an incident."""
    return events.loc[enough_alone(events), "series"]


def witnessed_slice(events: pd.DataFrame, metric: str) -> tuple[tuple[str, str], ...]:
    """Where the detectors place the change of ``metric`` in an incident of ``events``: the slice its
    own breakdowns' events that are ``enough`` alone break down to (``placed_slice``), else the
    one all the incident's that are do. Two changes at once (an origin's hiccup on one edge while a
    crawler walks another) are each where its own detectors saw it; a minute grazing its threshold
    places nothing."""
    decisive = list(_decisive_series(events))
    return placed_slice([name for name in decisive if drv.metric_of(name) == metric]) or placed_slice(
        decisive
    )


def _cause_first(metric: str) -> int:
    return CAUSES_FIRST.index(metric) if metric in CAUSES_FIRST else len(CAUSES_FIRST)


def _beside_first(services: list[drv.Explanation], beside: list[drv.Explanation]) -> list[drv.Explanation]:
    """The explanations no few clients made, the one searched without their requests first where it
    explains the same metric as the first: that one was searched in its detector's slice, the other in
    the slice the incident's series share, which the few clients' own device or path may narrow."""
    if services and beside and services[0].metric == beside[0].metric:
        return [*beside, *services]
    return services or beside


def read_logs(lake: Lake, start: pd.Timestamp, stop: pd.Timestamp) -> pd.DataFrame:
    """The ``drivers.LOG_COLUMNS`` of the cdn_logs rows in ``[start, stop)``, from every day it touches."""
    within = ts_within(start.to_pydatetime(), stop.to_pydatetime())
    tables = []
    for day in pd.date_range(start.floor("D"), (stop - pd.Timedelta(milliseconds=1)).floor("D"), freq="D"):
        try:
            tables.append(
                lake.read_partition(datasets.CDN_LOGS, day.date(), columns=drv.LOG_COLUMNS, filter=within)
            )
        except PartitionNotFound:
            continue
    return pa.concat_tables(tables).to_pandas() if tables else pd.DataFrame(columns=drv.LOG_COLUMNS)


def _services(lake: Lake, day: dt.date) -> pd.DataFrame | None:
    """The server metrics of the day and the day before, one column per service (minutes x series);
    None without features on the day."""
    try:
        names = lake.read_partition(
            datasets.FEATURES,
            day,
            key={datasets.SOURCE_KEY: datasets.SERVER_METRICS},
            columns=["series"],
            filter=pads.field("dim") == "",
        )["series"].unique()
    except PartitionNotFound:
        return None
    services = sorted(name for name in names.to_pylist() if not is_input_only(name))
    # With the day before, when the lake has it: the services are compared with it (``co_movements``).
    return read_series(lake, day - dt.timedelta(days=1), day, services) if services else None


@dataclass(frozen=True)
class Cause:
    """What an alert says drove its incident: a sentence, and the slice it names (dimension -> value;
    empty when the whole service moved)."""

    text: str
    slice: dict[str, str]
    #: The few clients that made the change (``causes.Explanation.clients``), if few did.
    clients: tuple[str, ...] = ()
    #: Why it is how its breakdowns behave on most days (``usual_departure``), if it is.
    usual: str = ""
    #: Where few clients made some of its changes and another is its cause: the series of the events
    #: that are the service's (``_news``), which alone say how severe it is. Empty: every series.
    news: tuple[str, ...] = ()

    @property
    def routine(self) -> bool:
        """Whether it is routine, not the service's incident: a few clients made the change (a crawler's
        404s, one download), or its breakdowns depart as briefly on most days."""
        return bool(self.clients or self.usual)

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "slice": dict(self.slice),
            "clients": list(self.clients),
            "usual": self.usual,
            "news": list(self.news),
        }


def cause_of(incident: Incident, drivers: Drivers) -> Cause:
    """``_cause``, whether the incident is its breakdowns' habit (``Drivers.usual``), and which of its
    series are the service's where few clients made the rest (``Cause.news``)."""
    cause = replace(_cause(incident, drivers), usual=drivers.usual)
    if cause.routine or incident.family != datasets.CDN:
        return cause
    news = _news(incident, drivers.explanations, drivers.beside_clients)
    if len(news) == enough_alone(incident.events).sum():
        return cause
    return replace(cause, news=tuple(sorted(set(news["series"]))))


def _cause(incident: Incident, drivers: Drivers) -> Cause:
    """The first explanation that found a change, causes first; else the services that moved.

    A change a few clients made (a crawler's 404s) is the incident's cause, and theirs, when no event
    of it that is ``enough`` alone lies on an edge that did not serve them and nothing changed
    beside them (``Drivers.beside_clients``); else the first change that no few clients made is
    (``_beside_first``), and the incident the service's: a crawler at work on one edge while another
    slows down, or while the origin of one folder does, does not explain the other."""
    changed = [explanation for explanation in drivers.explanations if explanation.changed]
    if changed:
        services = [explanation for explanation in changed if not explanation.clients]
        theirs = next((explanation for explanation in changed if explanation.clients), None)
        beside = [drivers.beside_clients] if drivers.beside_clients is not None else []
        if theirs is not None and not beside and not _elsewhere(incident, _served(changed)):
            explanation, clients = theirs, tuple(dict.fromkeys(c for e in changed for c in e.clients))
        else:
            explanation, clients = (_beside_first(services, beside) or changed)[0], ()
        names = {part.dimension: ", ".join(part.values) for part in explanation.slices}
        return Cause(
            explanation.sentence,
            {drv.DIMENSION_NAMES[dim]: value for dim, value in names.items()},
            clients,
        )
    if drivers.movements:
        moved = [movement.series for movement in drivers.movements if movement.moved]
        return Cause(
            drv.co_movement_sentence(drivers.movements),
            {"service": ", ".join(moved)} if moved else {},
        )
    others = incident.events["series"].nunique() - 1
    text = f"{incident.lead['series']}" + (f" and {others} more series" if others else "") + " anomalous"
    # The logs did not show the change beyond their noise; the slice the detectors flagged alone is
    # still where it happened.
    where = (
        _slice_names(placed_slice(_decisive_series(incident.events)))
        if incident.family == datasets.CDN
        else {}
    )
    if where:
        text += " at " + ", ".join(f"{dimension} {value}" for dimension, value in where.items()) + " alone"
    return Cause(text, where)


def _elsewhere(incident: Incident, edges: Collection[str]) -> bool:
    """Whether an event of ``incident`` that is ``enough`` alone is on an edge other than ``edges``."""
    return any(map(_off_edges, _decisive_series(incident.events), repeat(edges)))


def _served(explanations: Iterable[drv.Explanation]) -> set[str]:
    """The edges that served the few clients who made a change of ``explanations``."""
    return {edge for e in explanations if e.changed and e.clients for edge in e.client_edges}


def _off_edges(series: str, edges: Collection[str]) -> bool:
    """Whether ``series`` is an edge's other than ``edges``."""
    return series_dim(series) == "edge" and series_dim_value(series) not in edges


def usual_departure(
    lake: Lake,
    day: dt.date,
    incident: Incident,
    since: pd.Timestamp | None = None,
    explanations: Sequence[drv.Explanation] = (),
    beside_clients: drv.Explanation | None = None,
) -> str:
    """Why a CDN incident is how its breakdowns behave on most days, or "" when it is not: each of its
    events that is ``enough`` alone is a breakdown's whose family departs on most training days
    (``families.usual_departures``, in the manifest of the model live on ``day``), and lasts no
    longer than the family's departures usually do; an event that opens the day lasts from ``since``,
    when its incident ``began`` (default: its start).

    A total's event is the breakdown's that its ``explanations`` place the change in (``_holding``;
    the change it still shows without few clients' requests first, ``beside_clients``):
    an origin's two minutes of errors on one edge move a 5xx rate of 0 for the whole CDN, and are
    that edge's habit. A total whose change the logs place in no one edge or device is the whole
    service's departure, news whatever the week did. A breakdown by device or channel whose change
    the logs place on edges (those they name, or those that carry part of a change they place on a
    path), and not in its own slice, lasts as long as those edges' events (``_held_by_edges``): an
    iPhone's 5xx rate while two edges' origins hiccup, ten minutes apart, for every device, joins
    both hiccups into one departure of its own that no origin made. The
    events few clients made (``_news``) are theirs, and routine: a hiccup beside a crawler is as much
    a habit as alone."""
    decisive = _news(incident, explanations, beside_clients)
    if incident.family != datasets.CDN or decisive.empty:
        return ""
    placed = [beside_clients, *explanations] if beside_clients is not None else explanations
    usual = {}
    for series in decisive["series"].unique():
        breakdown = series if series_dim(series) else _holding(series, placed)
        model = registry.live(lake, breakdown, on=day) if breakdown else None
        if model is None or (minutes := model.metrics.get(USUAL_DEPARTURE)) is None:
            return ""
        usual[series] = minutes
    first = day_span(day)[0]
    before = ((first - since) / pd.Timedelta(minutes=1)) if since is not None and since < first else 0.0

    def lasted(events: pd.DataFrame) -> np.ndarray:
        return events["minutes"].to_numpy(float) + np.where(events["start"] == first, before, 0.0)

    longest = lasted(decisive)
    for position, series in enumerate(decisive["series"]):
        if (held := _held_by_edges(series, incident.events, explanations)) is not None:
            longest[position] = lasted(held).max()
    if (longest > decisive["series"].map(usual).to_numpy(float)).any():
        return ""
    families = sorted({metric_of(series) for series in usual})
    return (
        f"As on most training days: the breakdowns of {' and '.join(families)} departed on them for up "
        f"to {max(usual.values())} minutes at a time; a departure as short is their habit, not news."
    )


def _news(
    incident: Incident,
    explanations: Sequence[drv.Explanation],
    beside_clients: drv.Explanation | None = None,
) -> pd.DataFrame:
    """The events of ``incident`` that are ``enough`` alone and that no few clients made: of a metric
    whose change few clients made (``explanations``), unless on an edge that none of them was served
    by, or a total whose change the logs still show without their requests (``beside_clients``). The
    service's part of it: a crawler's 4xx beside an origin's two minutes of errors make the incident
    no longer nor more severe than those two minutes are."""
    made, served = _made(explanations), _served(explanations)
    still = beside_clients.metric if beside_clients is not None else None

    def theirs(name: str) -> bool:
        if metric_of(name) not in made or _off_edges(name, served):
            return False
        return bool(series_dim(name)) or metric_of(name) != still

    decisive = incident.events[enough_alone(incident.events)]
    return decisive[~decisive["series"].map(theirs)]


def _made(explanations: Iterable[drv.Explanation]) -> set[str]:
    """The metrics whose change few clients made."""
    return {explanation.metric for explanation in explanations if explanation.changed and explanation.clients}


def _holding(total: str, explanations: Sequence[drv.Explanation]) -> str:
    """The series of ``total``'s metric on the one edge or device that its explanation's slices name
    first, or "" when they name none."""
    explanation = _explained(metric_of(total), explanations)
    for part in explanation.slices if explanation is not None else ():
        if len(named := _breakdowns(explanation.metric, part.dimension, part.values)) == 1:
            return named[0]
    return ""


def _held_by_edges(
    series: str, events: pd.DataFrame, explanations: Sequence[drv.Explanation]
) -> pd.DataFrame | None:
    """The ``events`` of the edges that hold the change of ``series``, a breakdown by device or
    channel (``_edges_holding`` its metric's explanation), when the explanation does not place the
    change in the slice of ``series`` too and each of them has events; else None."""
    dim = series_dim(series)
    if dim not in BREAKDOWN_COLUMNS or dim == "edge":
        return None
    explanation = _explained(metric_of(series), explanations)
    if explanation is None:
        return None
    column, value = drv.slice_dimension(BREAKDOWN_COLUMNS[dim], series_dim_value(series))
    if any(part.dimension == column and value in part.values for part in explanation.slices):
        return None
    edges = _edges_holding(explanation)
    held = events[events["series"].isin(edges)]
    return held if edges and held["series"].nunique() == len(edges) else None


def _edges_holding(explanation: drv.Explanation) -> list[str]:
    """The series of ``explanation``'s metric on each edge its change lies on: the edges its slices
    name; where they name none (a path, spread over every edge it is served by), each edge of its
    breakdown that carries part of the change, when the breakdown lists them all (its last edge
    carries none). Nothing when neither says."""
    edge = BREAKDOWN_COLUMNS["edge"]
    if named := [value for part in explanation.slices if part.dimension == edge for value in part.values]:
        return _breakdowns(explanation.metric, edge, named)
    listed = [part for part in explanation.breakdown if part.dimension == edge]
    if not listed or listed[-1].change_share > 0:
        return []
    return _breakdowns(explanation.metric, edge, [part.value for part in listed if part.change_share > 0])


def _slice_names(within: Iterable[tuple[str, str]]) -> dict[str, str]:
    """A flagged slice as a cause names it (``edge``, ``path``, ``device``): a live channel by its path."""
    return dict(
        (drv.DIMENSION_NAMES[dimension], value)
        for dimension, value in (drv.slice_dimension(*pair) for pair in within)
    )


def _day_edges(series: Iterable[str]) -> set[str]:
    """The edges that ``series`` (a day's) name, ``(other)`` left out: those with series of their own."""
    return {series_dim_value(name) for name in series if series_dim(name) == "edge"} - {OTHER}


@dataclass(frozen=True)
class ExplainedIncident:
    """An incident of the day, what drove it and its cause."""

    incident: Incident
    drivers: Drivers
    cause: Cause


def day_incidents(
    lake: Lake,
    day: dt.date,
    scores: pd.DataFrame,
    events: pd.DataFrame,
    *,
    explained: int = EXPLAINED_INCIDENTS,
) -> list[ExplainedIncident]:
    """The day's incidents, most important first; the first ``explained`` are explained (finding a
    cause reads the logs), the others get a cause that names their lead series."""
    incidents = group_incidents(with_severity(events, scores))
    watched = set(scores["series"].unique())
    services = _services(lake, day) if any(i.family == datasets.SERVER_METRICS for i in incidents) else None
    found = []
    spans = [(incident.start, incident.stop) for incident in incidents if incident.family == datasets.CDN]
    for number, incident in enumerate(incidents):
        elsewhere = [span for span in spans if span != (incident.start, incident.stop)]
        if number < explained:
            since = began(lake, day, incident)
            drivers = incident_drivers(lake, day, incident, services, elsewhere, since, watched)
            usual = usual_departure(lake, day, incident, since, drivers.explanations, drivers.beside_clients)
            drivers = replace(drivers, usual=usual)
        else:
            drivers = Drivers(note="not explained: the day has more important incidents")
        found.append(ExplainedIncident(incident, drivers, cause_of(incident, drivers)))
    return found
