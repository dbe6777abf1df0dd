"""Server metrics pulled from a real Prometheus (``tests/prometheus_server.py``: a week of known samples
behind basic auth): the landed rows exactly, the server's error paths, and the pulled series trained on
and scored."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
from pathlib import Path

import pandas as pd
import pytest
from cluster import free_port
from prometheus_server import ANOMALY, DAYS, GAP_DAY, LAST_DAY, PrometheusServer

from passion_tasks import cli, steps
from passion_tasks.errors import ExitCode, NoInputError, UsageError
from passion_tasks.ingest.prometheus import (
    PASSWORD_ENV,
    URL_ENV,
    USER_ENV,
    Query,
    QueryRefused,
    Server,
    day_steps,
    ingest_prometheus_day,
    read_queries,
    series_name,
)
from passion_tasks.lake import Lake, PartitionNotFound, datasets

CPU = Query("cpu_usage", "cpu_usage", labels=("instance",))
QUEUE = Query("queue_depth", "queue_depth", labels=("instance",))
QUERIES = {
    "queries": [
        {"name": "cpu_usage", "promql": "cpu_usage", "labels": ["instance"]},
        {"name": "request_rate", "promql": "rate(http_requests_total[5m])", "labels": []},
        {"name": "cpu_capped", "promql": "cpu_usage", "max_series": 1, "owner": "sre team"},
    ]
}


def server_of(prometheus: PrometheusServer, **changes: str) -> Server:
    """The test server with its credentials, but for ``changes``."""
    return Server(
        **{"url": prometheus.url, "user": prometheus.user, "password": prometheus.password, **changes}
    )


def landed(lake: Lake, day: dt.date) -> pd.DataFrame:
    frame = lake.read_partition(datasets.METRICS, day).to_pandas()
    return frame.sort_values(["series", "ts"], ignore_index=True)


def quarantined(lake: Lake, day: dt.date) -> list[tuple]:
    table = lake.read_partition(datasets.quarantine_of(datasets.METRICS), day).to_pandas()
    return sorted(table[["source_file", "reason", "raw"]].itertuples(index=False, name=None))


def minutes(day: dt.date, start: dt.time, end: dt.time) -> pd.DatetimeIndex:
    """The minutes of ``day`` from ``start`` up to ``end`` (excluded)."""
    first = pd.Timestamp(dt.datetime.combine(day, start, dt.UTC))
    last = pd.Timestamp(dt.datetime.combine(day, end, dt.UTC))
    return pd.date_range(first, last, freq="min", inclusive="left", unit="ms")


def test_the_command_lands_each_series_as_the_server_computes_it(
    prometheus_server: PrometheusServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = Lake((tmp_path / "lake").as_uri())
    queries = tmp_path / "queries.json"
    queries.write_text(json.dumps(QUERIES))
    monkeypatch.setenv(URL_ENV, prometheus_server.url)
    monkeypatch.setenv(USER_ENV, prometheus_server.user)
    monkeypatch.setenv(PASSWORD_ENV, prometheus_server.password)
    args = ["ingest", "--source", "prometheus", "--day", str(GAP_DAY), "--queries", str(queries)]
    # One series over cpu_capped's max_series is quarantined: the day landed, with lines set aside.
    assert cli.main([*args, "--lake", lake.url]) == ExitCode.LINES_QUARANTINED
    rows = landed(lake, GAP_DAY)
    assert set(rows["source"]) == {"prometheus"}
    by_series = {name: part.set_index("ts")["value"] for name, part in rows.groupby("series")}
    assert sorted(by_series) == [
        "cpu_capped[instance=web-1,job=node]",
        "cpu_usage[instance=web-1]",
        "cpu_usage[instance=web-2]",
        "request_rate",
    ]
    day = pd.date_range(pd.Timestamp(GAP_DAY, tz="UTC"), periods=1440, freq="min", unit="ms")
    web1 = by_series["cpu_usage[instance=web-1]"]
    assert web1.index.equals(day) and web1.tolist() == [stamp.minute / 4 for stamp in day]
    # The gap: Prometheus carries 09:59's sample over its 5-minute lookback, then nothing is landed.
    web2 = by_series["cpu_usage[instance=web-2]"]
    carried = minutes(GAP_DAY, dt.time(10, 0), dt.time(10, 5))
    assert web2.index.equals(day.difference(minutes(GAP_DAY, dt.time(10, 5), dt.time(11, 0))))
    assert web2[carried].tolist() == [14.75] * 5
    # A counter through rate(): one request a second at every minute, across its reset at 12:00 too.
    rate = by_series["request_rate"]
    assert rate.index.equals(day) and max(abs(rate - 1.0)) < 1e-12
    assert quarantined(lake, GAP_DAY) == [
        ("prometheus:cpu_capped", "too_many_series", "cpu_capped[instance=web-2,job=node]: 1385 values")
    ]


def test_values_that_are_not_finite_are_quarantined_with_their_series_and_time(
    prometheus_server: PrometheusServer, tmp_path: Path
) -> None:
    lake = Lake((tmp_path / "lake").as_uri())
    report = ingest_prometheus_day(lake, LAST_DAY, [QUEUE], server_of(prometheus_server))
    assert report.exit_code == ExitCode.LINES_QUARANTINED and report.rows == 1438
    assert dict(report.quarantined) == {"not_finite": 2}
    assert quarantined(lake, LAST_DAY) == [
        (
            "prometheus:queue_depth",
            "not_finite",
            f"queue_depth[instance=web-1] {LAST_DAY}T03:00:00+00:00 NaN",
        ),
        (
            "prometheus:queue_depth",
            "not_finite",
            f"queue_depth[instance=web-1] {LAST_DAY}T03:01:00+00:00 +Inf",
        ),
    ]
    rows = landed(lake, LAST_DAY)
    assert rows["value"].tolist() == [float(minute) for minute in range(1440) if minute not in (180, 181)]


def test_a_day_is_asked_in_spans_under_the_points_limit_and_lands_the_same(
    prometheus_server: PrometheusServer, tmp_path: Path
) -> None:
    midnight = dt.datetime.combine(LAST_DAY, dt.time(), dt.UTC)
    assert day_steps(LAST_DAY, 500) == [
        (midnight, midnight + dt.timedelta(minutes=499)),
        (midnight + dt.timedelta(minutes=500), midnight + dt.timedelta(minutes=999)),
        (midnight + dt.timedelta(minutes=1000), midnight + dt.timedelta(minutes=1439)),
    ]
    assert day_steps(LAST_DAY, 11_000) == [(midnight, midnight + dt.timedelta(minutes=1439))]
    whole, split = Lake((tmp_path / "whole").as_uri()), Lake((tmp_path / "split").as_uri())
    ingest_prometheus_day(whole, LAST_DAY, [CPU], server_of(prometheus_server))
    ingest_prometheus_day(split, LAST_DAY, [CPU], server_of(prometheus_server), max_points=500)
    assert len(landed(split, LAST_DAY)) == 2 * 1440
    pd.testing.assert_frame_equal(landed(split, LAST_DAY), landed(whole, LAST_DAY))


def test_a_day_pulled_again_replaces_its_rows_and_leaves_the_metric_files_leaf(
    prometheus_server: PrometheusServer, tmp_path: Path
) -> None:
    lake = Lake((tmp_path / "lake").as_uri())
    folder = tmp_path / "metrics" / str(LAST_DAY)
    folder.mkdir(parents=True)
    (folder / "paycore.json").write_text(json.dumps({f"{LAST_DAY} 00:00:00": 1.5}))
    steps.ingest_day(lake, datasets.SERVER_METRICS, LAST_DAY, str(tmp_path / "metrics"))
    server = server_of(prometheus_server)
    for _ in range(2):
        ingest_prometheus_day(lake, LAST_DAY, [CPU], server)
    assert landed(lake, LAST_DAY).groupby("series").size().to_dict() == {
        "cpu_usage[instance=web-1]": 1440,
        "cpu_usage[instance=web-2]": 1440,
        "paycore": 1,
    }
    ingest_prometheus_day(lake, LAST_DAY, [QUEUE], server)
    assert landed(lake, LAST_DAY).groupby("series").size().to_dict() == {
        "paycore": 1,
        "queue_depth[instance=web-1]": 1438,
    }


def test_the_servers_errors_are_reported_and_write_nothing(
    prometheus_server: PrometheusServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = Lake((tmp_path / "lake").as_uri())
    # A URL may carry credentials; messages name the server without them.
    port = free_port()
    down = Server(f"http://ops:hunter2@127.0.0.1:{port}")
    unreachable = rf"^Prometheus at http://127.0.0.1:{port} could not be reached after 4 attempts"
    with pytest.raises(OSError, match=unreachable) as error:
        ingest_prometheus_day(lake, LAST_DAY, [CPU], down)
    assert "hunter2" not in str(error.value)
    with pytest.raises(QueryRefused, match=r"refused query broken \(400, bad_data\): .*parse error"):
        ingest_prometheus_day(
            lake, LAST_DAY, [Query("broken", "rate(cpu_usage[5m]")], server_of(prometheus_server)
        )
    for refused in (
        server_of(prometheus_server, password="wrong"),
        Server(prometheus_server.url, token="t0ken"),
    ):
        with pytest.raises(UsageError, match=r"refused the credentials \(401\)"):
            ingest_prometheus_day(lake, LAST_DAY, [CPU], refused)
    with pytest.raises(NoInputError, match="no value on 2026-10-01 for any of the 1 queries"):
        ingest_prometheus_day(lake, dt.date(2026, 10, 1), [CPU], server_of(prometheus_server))
    with pytest.raises(PartitionNotFound):
        lake.read_partition(datasets.METRICS, LAST_DAY)
    # Through the command: beyond the server's retention exits as a day without input does.
    queries = tmp_path / "queries.json"
    queries.write_text(json.dumps(QUERIES))
    monkeypatch.setenv(URL_ENV, prometheus_server.url)
    monkeypatch.setenv(USER_ENV, prometheus_server.user)
    monkeypatch.setenv(PASSWORD_ENV, prometheus_server.password)
    args = ["ingest", "--source", "prometheus", "--day", "2026-10-01", "--queries", str(queries)]
    assert cli.main([*args, "--lake", lake.url]) == ExitCode.NO_INPUT
    monkeypatch.delenv(URL_ENV)
    assert cli.main([*args, "--lake", lake.url]) == ExitCode.USAGE


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        # Values are strings in the API; a null one, or a time that is not a number, is no series.
        (
            {"status": "success", "data": {"resultType": "matrix", "result": [
                {"metric": {"job": "api"}, "values": [[1_793_664_000, None]]},
            ]}},
            r"cpu_usage with a series that is not Prometheus's \[time, \"value\"\] pairs under labels: "
            r"\{\"metric\": \{\"job\": \"api\"\}, \"values\": \[\[1793664000, null\]\]\}",
        ),
        (
            {"status": "success", "data": {"resultType": "matrix", "result": [
                {"metric": {"job": ["api"]}, "values": [["noon", "1"]]},
            ]}},
            r"cpu_usage with a series that is not Prometheus's",
        ),
        (["success"], r"refused query cpu_usage \(200, error\)"),
        ({"status": "success", "data": ["matrix"]}, r"expected a range vector, got None"),
    ],
)  # fmt: skip
def test_an_answer_that_is_not_the_apis_is_refused_with_what_came(
    answer: object, message: str, tmp_path: Path
) -> None:
    # Any server may claim to speak Prometheus's API: what it sends is checked before it is read.
    body = json.dumps(answer).encode()

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        lake = Lake((tmp_path / "lake").as_uri())
        with pytest.raises(QueryRefused, match=message):
            ingest_prometheus_day(lake, LAST_DAY, [CPU], Server(f"http://127.0.0.1:{server.server_port}"))
        server.shutdown()
    with pytest.raises(PartitionNotFound):
        lake.read_partition(datasets.METRICS, LAST_DAY)


def test_a_queries_file_is_checked_and_names_are_bounded_and_cannot_forge_a_breakdown(tmp_path: Path) -> None:
    path = tmp_path / "queries.json"
    for document, message in [
        ({"queries": []}, "expected"),
        ({"queries": [{"name": "cpu max", "promql": "x"}]}, "must match"),
        ({"queries": [{"name": "cpu_max", "promql": "x"}]}, "_max"),
        ({"queries": [{"name": "cpu", "promql": ""}]}, "promql must be a non-empty string"),
        ({"queries": [{"name": "cpu", "promql": "x", "labels": "instance"}]}, "labels must be a list"),
        ({"queries": [{"name": "cpu", "promql": "x", "max_series": 0}]}, "max_series must be a positive"),
        ({"queries": [{"name": "cpu", "promql": "x"}, {"name": "cpu", "promql": "y"}]}, "repeated: cpu"),
    ]:
        path.write_text(json.dumps(document))
        with pytest.raises(UsageError, match=message):
            read_queries(path)
    path.write_text(json.dumps(QUERIES))
    assert read_queries(path)[1] == Query("request_rate", "rate(http_requests_total[5m])", labels=())
    # Exporters choose label values: the ones that would read as a CDN breakdown are percent-encoded.
    assert series_name(CPU, {"__name__": "cpu", "instance": "a{edge=FRA2}", "job": "x"}) == (
        "cpu_usage[instance=a%7Bedge%3DFRA2%7D]"
    )
    long = series_name(Query("cpu", "cpu"), {"pod": "p" * 300})
    assert long.startswith("cpu[pod=ppp") and "~" in long and len(long) < 64


def test_training_and_scoring_on_the_pulled_series_find_the_planted_anomaly(
    prometheus_server: PrometheusServer, tmp_path: Path
) -> None:
    lake = Lake((tmp_path / "lake").as_uri())
    for day in DAYS:
        ingest_prometheus_day(lake, day, [CPU], server_of(prometheus_server))
        steps.build_features(lake, day)
    spiked, quiet = "cpu_usage[instance=web-1]", "cpu_usage[instance=web-2]"
    # What the nightly train DAG trains: per series the detector of its kind.
    trained = steps.train(lake, series=[spiked, quiet], train_from=DAYS[0], train_to=GAP_DAY, promote=True)
    assert sorted(trained.trained) == [spiked, quiet], trained.summary()
    steps.score_day(lake, LAST_DAY)
    scores = lake.read_partition(datasets.SCORES, LAST_DAY).to_pandas()
    flagged = {
        name: pd.DatetimeIndex(part.loc[part["is_anomaly"], "ts"]) for name, part in scores.groupby("series")
    }
    planted = minutes(LAST_DAY, *ANOMALY)
    assert flagged[spiked].min() == planted[0] and planted.difference(flagged[spiked]).empty
    assert flagged[quiet].empty
