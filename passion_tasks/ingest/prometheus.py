"""Server metrics pulled from Prometheus, or a server that speaks its HTTP API (Thanos, Mimir,
VictoriaMetrics): ``passion ingest --source prometheus --day D --queries FILE``.

Each configured query is evaluated over the day by ``query_range`` at a 60 s step, in requests of at
most ``max_points`` steps (a server refuses more points per series than its limit: 11,000 for
Prometheus), and every series it returns lands in ``metrics/dt=D/source=prometheus/``, named after the
query and its labels (``api_latency[instance=web-1:9100,job=api]``; only the labels of the query's
``labels`` allow-list when it has one). What the server computes lands as it computes it: a counter
through the ``rate()`` or ``increase()`` the query writes, and a series' last sample carried over the
server's lookback (5 minutes by default), as in every PromQL evaluation. A step without a value is a
gap, no row, never a zero. ``NaN`` and ``±Inf`` values are quarantined with their series and time
(``not_finite``). A query returning more series than its ``max_series`` lands the first ones by name
and quarantines the others (``too_many_series``), so the exit code and the report say so.

The server's URL and credentials never come from the queries file: ``PASSION_PROMETHEUS_URL``, with
``PASSION_PROMETHEUS_TOKEN`` (a bearer token) or ``PASSION_PROMETHEUS_USER`` and
``PASSION_PROMETHEUS_PASSWORD`` (basic auth); under Airflow the ``passion_prometheus`` connection. A
server that cannot be reached or answers 429 or 5xx is asked again with backoff, then reported with its
URL (an ``OSError``, which a scheduler retries); a query the server refuses is reported with the
server's own message.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pyarrow as pa
import tenacity

from passion_tasks.errors import NoInputError, UsageError
from passion_tasks.ingest.landing import RowGroups, land_day
from passion_tasks.ingest.metrics import finite_number
from passion_tasks.ingest.quarantine import Quarantine
from passion_tasks.ingest.report import IngestReport
from passion_tasks.lake import Day, Lake, as_day, datasets
from passion_tasks.lake.datasets import PROMETHEUS
from passion_tasks.lake.schemas import INPUT_ONLY_SUFFIXES, METRICS, bounded_name

log = logging.getLogger(__name__)

URL_ENV, TOKEN_ENV = "PASSION_PROMETHEUS_URL", "PASSION_PROMETHEUS_TOKEN"
USER_ENV, PASSWORD_ENV = "PASSION_PROMETHEUS_USER", "PASSION_PROMETHEUS_PASSWORD"
#: The points per series a request asks for at most: Prometheus refuses more than 11,000.
MAX_POINTS = 11_000
STEP = dt.timedelta(minutes=1)
#: The series one query may land; more is a label that explodes (a request id, a pod name).
MAX_SERIES = 200
#: Seconds a request may take, and the attempts made when the server cannot be reached or is busy.
TIMEOUT_S, ATTEMPTS = 30.0, 4
#: A query's name starts its series' names: a Prometheus metric name, with none of the suffixes that
#: name a series' previous-hour features.
QUERY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Label values are chosen by whoever exports the metrics: kept readable, the rest percent-encoded, so
#: a value cannot forge the ``{dim=value}`` of a CDN breakdown or the list's own ``[`` ``,`` ``=`` ``]``.
LABEL_VALUE_SAFE = " -_.:/@"


class QueryRefused(UsageError):
    """The server answered a query with an error of its own (a bad query, a limit)."""


@dataclass(frozen=True)
class Query:
    """One configured query: its series land as ``name`` plus their (allowed) labels."""

    name: str
    promql: str
    labels: tuple[str, ...] | None = None
    max_series: int = MAX_SERIES


@dataclass(frozen=True)
class Server:
    """Where the queries go, and how to authenticate (a bearer ``token``, or ``user`` and ``password``)."""

    url: str
    token: str = field(default="", repr=False)
    user: str = ""
    password: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Server | None:
        """The server ``PASSION_PROMETHEUS_URL`` names, with its credentials; None when it is unset."""
        url = environ.get(URL_ENV, "")
        if not url:
            return None
        return cls(url, environ.get(TOKEN_ENV, ""), environ.get(USER_ENV, ""), environ.get(PASSWORD_ENV, ""))

    @property
    def where(self) -> str:
        """``Prometheus at <URL>`` for messages, without the credentials a URL may carry."""
        return f"Prometheus at {httpx.URL(self.url).copy_with(userinfo=b'')}"

    def client(self) -> httpx.Client:
        auth = httpx.BasicAuth(self.user, self.password) if self.user else None
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.url, auth=auth, headers=headers, timeout=TIMEOUT_S)


def read_queries(path: str | os.PathLike[str]) -> list[Query]:
    """The queries of a file ``{"queries": [{"name": ..., "promql": ..., "labels": [...],
    "max_series": N}, ...]}`` (other keys are allowed and ignored). Raises ``UsageError`` naming what
    is wrong."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read the Prometheus queries file {path}: {error}") from error
    entries = document.get("queries") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise UsageError(f'{path}: expected {{"queries": [{{"name": ..., "promql": ...}}, ...]}}')
    queries = [_query(entry, f"{path}: query {number}") for number, entry in enumerate(entries, 1)]
    names = [query.name for query in queries]
    if repeated := sorted({name for name in names if names.count(name) > 1}):
        raise UsageError(f"{path}: query names must be unique; repeated: {', '.join(repeated)}")
    return queries


def _query(entry: Any, where: str) -> Query:
    if not isinstance(entry, dict):
        raise UsageError(f"{where}: expected an object with a name and a promql")
    name, promql = entry.get("name"), entry.get("promql")
    if not isinstance(name, str) or not QUERY_NAME.fullmatch(name) or name.endswith(INPUT_ONLY_SUFFIXES):
        raise UsageError(
            f"{where}: name {name!r} must match {QUERY_NAME.pattern} and not end in "
            f"{', '.join(INPUT_ONLY_SUFFIXES)} (the names of a series' previous-hour features)"
        )
    if not isinstance(promql, str) or not promql.strip():
        raise UsageError(f"{where} ({name}): promql must be a non-empty string")
    labels = entry.get("labels")
    if labels is not None and (not isinstance(labels, list) or not all(isinstance(x, str) for x in labels)):
        raise UsageError(f"{where} ({name}): labels must be a list of label names")
    limit = entry.get("max_series", MAX_SERIES)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise UsageError(f"{where} ({name}): max_series must be a positive integer")
    return Query(name, promql, tuple(sorted(labels)) if labels is not None else None, limit)


def series_name(query: Query, labels: Mapping[str, str]) -> str:
    """``query.name``, then its allowed labels sorted by name (``__name__`` never), bounded as every
    series name is."""
    kept = sorted(
        key for key in labels if key != "__name__" and (query.labels is None or key in query.labels)
    )
    if not kept:
        return query.name
    pairs = ",".join(f"{key}={quote(labels[key], safe=LABEL_VALUE_SAFE)}" for key in kept)
    return bounded_name(f"{query.name}[{pairs}]")


def day_steps(day: dt.date, max_points: int) -> list[tuple[dt.datetime, dt.datetime]]:
    """The day's minutes as ``query_range`` spans (start and end both evaluated) of at most
    ``max_points`` steps each, in order, not overlapping."""
    if max_points < 1:
        raise UsageError(f"max_points must be positive, not {max_points}")
    first = dt.datetime.combine(day, dt.time(), dt.UTC)
    steps = int(dt.timedelta(days=1) / STEP)
    return [
        (first + offset * STEP, first + (min(offset + max_points, steps) - 1) * STEP)
        for offset in range(0, steps, max_points)
    ]


def ingest_prometheus_day(
    lake: Lake,
    day: Day,
    queries: list[Query],
    server: Server,
    *,
    max_points: int = MAX_POINTS,
) -> IngestReport:
    """Land ``day`` of every query's series from ``server`` as the day's ``prometheus`` leaf of
    ``metrics`` (a re-run replaces it). Every query is asked before anything is written, so a server
    error writes nothing. Raises ``NoInputError`` when no query has a value that day (a day beyond the
    server's retention)."""
    day = as_day(day)
    report = IngestReport(day, datasets.METRICS)
    with server.client() as client:
        answers = {query: _range(client, server, query, day, max_points) for query in queries}
    if not any(answers.values()):
        raise NoInputError(
            f"{server.where} has no value on {day} for any of the {len(queries)} queries "
            "(a day beyond its retention, or before the series existed)"
        )

    def land(landed: RowGroups, quarantine: Quarantine) -> None:
        for query, series in answers.items():
            if not series:
                log.warning("%s: query %s returned no series from %s", day, query.name, server.where)
            report.files.append(f"{PROMETHEUS}:{query.name}")
            report.formats[PROMETHEUS] += 1
            landed.write(_land_query(query, series, quarantine))

    return land_day(lake, report, METRICS, land, key={"source": PROMETHEUS})


def _range(
    client: httpx.Client, server: Server, query: Query, day: dt.date, max_points: int
) -> dict[str, list[tuple[float, str]]]:
    """The query's series over the day: series name -> its ``[unix time, value]`` pairs, in time order."""
    series: dict[str, list[tuple[float, str]]] = {}
    origin: dict[str, dict[str, str]] = {}
    for start, end in day_steps(day, max_points):
        params = {
            "query": query.promql,
            "start": start.timestamp(),
            "end": end.timestamp(),
            "step": STEP.total_seconds(),
        }
        for result in _ask(client, server, query, params):
            labels, values = _series(result, server, query)
            name = series_name(query, labels)
            if origin.setdefault(name, labels) != labels:
                raise QueryRefused(
                    f"query {query.name}: two series are both named {name!r} ({origin[name]} and {labels}); "
                    "add the label that tells them apart to its labels list, or aggregate them in the PromQL"
                )
            series.setdefault(name, []).extend(values)
    return series


def _series(result: Any, server: Server, query: Query) -> tuple[dict[str, str], list[tuple[float, str]]]:
    """One series of a range answer as the API defines it, ``{"metric": {label: value, ...}, "values":
    [[unix time, "value"], ...]}``; anything else is refused with what came."""
    labels = result.get("metric", {}) if isinstance(result, dict) else None
    values = result.get("values", []) if isinstance(result, dict) else None
    readable = (
        isinstance(labels, dict)
        and all(isinstance(key, str) and isinstance(value, str) for key, value in labels.items())
        and isinstance(values, list)
        and all(
            isinstance(pair, list)
            and len(pair) == 2
            and isinstance(pair[0], int | float)
            and not isinstance(pair[0], bool)
            and math.isfinite(pair[0])
            and isinstance(pair[1], str)
            for pair in values
        )
    )
    if not readable:
        raise QueryRefused(
            f"{server.where} answered query {query.name} with a series that is not Prometheus's "
            f'[time, "value"] pairs under labels: {json.dumps(result)[:300]}'
        )
    return labels, [(float(ts), value) for ts, value in values]


def _ask(client: httpx.Client, server: Server, query: Query, params: dict[str, Any]) -> list[dict]:
    try:
        response = _get_with_retries(client, params)
    except httpx.HTTPError as error:
        raise OSError(f"{server.where} could not be reached after {ATTEMPTS} attempts: {error}") from error
    if _busy(response):
        raise OSError(
            f"{server.where} answered {response.status_code} to {ATTEMPTS} attempts: {response.text[:300]}"
        )
    if response.status_code in (401, 403):
        raise UsageError(
            f"{server.where} refused the credentials ({response.status_code}); set "
            f"{TOKEN_ENV}, or {USER_ENV} and {PASSWORD_ENV} (the passion_prometheus connection under Airflow)"
        )
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        answer = {}
    if response.status_code >= 400 or answer.get("status") != "success":
        message = answer.get("error") or response.text[:300]
        raise QueryRefused(
            f"{server.where} refused query {query.name} ({response.status_code}, "
            f"{answer.get('errorType', 'error')}): {message}"
        )
    data = answer.get("data")
    data = data if isinstance(data, dict) else {}
    if data.get("resultType") != "matrix" or not isinstance(data.get("result"), list):
        raise QueryRefused(f"query {query.name}: expected a range vector, got {data.get('resultType')!r}")
    return data["result"]


def _busy(response: httpx.Response) -> bool:
    """An answer that may be different if asked again: the server overloaded, or between restarts."""
    return response.status_code == 429 or response.status_code >= 500


@tenacity.retry(
    stop=tenacity.stop_after_attempt(ATTEMPTS),
    wait=tenacity.wait_exponential(multiplier=0.5, max=8),
    retry=tenacity.retry_if_exception_type(httpx.TransportError) | tenacity.retry_if_result(_busy),
    # Out of attempts: the last answer as it came (a busy one), or the last error raised again.
    retry_error_callback=lambda state: state.outcome.result(),
)
def _get_with_retries(client: httpx.Client, params: dict[str, Any]) -> httpx.Response:
    return client.get("/api/v1/query_range", params=params)


def _land_query(query: Query, series: dict[str, list[tuple[float, str]]], quarantine: Quarantine) -> pa.Table:
    """The rows of a query's series, the first ``max_series`` by name; the others and the values that
    are not finite numbers go to ``quarantine``."""
    source = f"{PROMETHEUS}:{query.name}"
    names = sorted(series)
    for name in names[query.max_series :]:
        quarantine.add(source, None, "too_many_series", f"{name}: {len(series[name])} values")
    times, labels, values = [], [], []
    for name in names[: query.max_series]:
        for ts, text in series[name]:
            stamp = dt.datetime.fromtimestamp(ts, dt.UTC)
            number = finite_number(text)
            if number is None:
                quarantine.add(source, None, "not_finite", f"{name} {stamp.isoformat()} {text}")
                continue
            times.append(stamp)
            labels.append(name)
            values.append(number)
    return pa.table([times, [PROMETHEUS] * len(times), labels, values], schema=METRICS)
