"""The DAGs run by Airflow itself: parsing, ``airflow dags test`` end to end on a local and an S3 lake,
Params, failures, and a backfill run by the real scheduler.

Airflow runs in subprocesses with a temporary AIRFLOW_HOME (SQLite, migrated once per session), so this
test process never imports it. Lakes are prepared through ``passion_tasks.steps`` on generated sources.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import cluster
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from cluster import Webhook, airflow_services, free_port, services_env
from prometheus_server import FIRST_DAY, PrometheusServer

from passion_tasks import cli, steps
from passion_tasks.defaults import BASELINE, DETECTOR_DEFAULTS
from passion_tasks.detectors import detector_names
from passion_tasks.lake import VACUUM_GRACE, Lake, S3Options, datasets, leases
from passion_tasks.lake.datasets import SOURCES
from passion_tasks.models import registry
from passion_tasks.synthetic import GenerationSummary, generate

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
START = dt.date(2026, 11, 16)
DAYS = [START + dt.timedelta(days=offset) for offset in range(4)]
SERIES = ["cdn_requests", "cif", "paycore"]
#: A service with a labelled spike on the scored day.
SPIKY = "paydecision2"


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of every Airflow command: its own home and SQLite database, the project's DAGs."""
    env = cluster.airflow_env(tmp_path_factory.mktemp("airflow_home")) | {"AIRFLOW__CORE__PARALLELISM": "4"}
    migrated = airflow(env, "db", "migrate")
    assert migrated.returncode == 0, migrated.stdout[-3000:]
    return env


def airflow(env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "airflow"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def dags_test(env: dict[str, str], dag_id: str, conf: dict) -> subprocess.CompletedProcess[str]:
    """``airflow dags test``: one run of the DAG, its tasks run one by one in the command's own process
    (no scheduler); stdout and stderr together."""
    result = airflow(env, "dags", "test", dag_id, "--conf", json.dumps(conf))
    result.stdout += result.stderr
    return result


def sources_setting(sources: Path) -> str:
    return json.dumps({"cdn": str(sources / "cdn"), "metrics": str(sources / "metrics")})


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> GenerationSummary:
    return generate(tmp_path_factory.mktemp("sources"), START, len(DAYS), seed=3, rate=5)


@pytest.fixture(scope="module")
def sources(generated: GenerationSummary) -> Path:
    return generated.out


@pytest.fixture(scope="module")
def landed(sources: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local lake folder with days 0 and 1 landed; tests work on copies of it."""
    folder = tmp_path_factory.mktemp("landed") / "lake"
    land(sources, Lake(folder.as_uri()), DAYS[:2])
    return folder


def copy_lake(landed: Path, into: Path) -> Lake:
    shutil.copytree(landed, into / "lake")
    return Lake((into / "lake").as_uri())


def land(sources: Path, lake: Lake, days: list[dt.date]) -> None:
    for day in days:
        for source in SOURCES:
            steps.ingest_day(lake, source, day, str(sources / source))
        steps.build_features(lake, day)


def train_baseline(lake: Lake, until: dt.date, live_from: dt.date) -> None:
    trained = steps.train(
        lake,
        BASELINE,
        series=SERIES,
        train_from=DAYS[0],
        train_to=until,
        promote=True,
        effective_from=live_from,
    )
    assert sorted(trained.trained) == SERIES, trained.summary()


def scores_of(lake: Lake, day: dt.date) -> pd.DataFrame:
    frame = lake.read_partition("scores", day).to_pandas()
    return frame.sort_values(["series", "ts"], ignore_index=True)


def model_versions(lake: Lake, day: dt.date) -> dict[str, list[str]]:
    table = lake.read_partition("scores", day, columns=["series", "model_version"])
    return {
        series: sorted(
            pc.unique(table.filter(pc.equal(table["series"], series))["model_version"]).to_pylist()
        )
        for series in sorted(pc.unique(table["series"]).to_pylist())
    }


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.server.shutdown()


def test_dagbag_parses_every_dag_quickly_without_heavy_imports(airflow_env: dict[str, str]) -> None:
    script = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
for name in ("passion_ingest.py", "passion_score.py"):
    DagBag(dag_folder=f"{sys.argv[1]}/{name}")
loaded_by_light = {name: name in sys.modules for name in ("pandas", "pyarrow", "tensorflow")}
began = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
seconds = time.perf_counter() - began
score, train = bag.dags["passion_score"], bag.dags["passion_train"]
from passion_tasks.detectors import detector_names
from airflow.sdk.exceptions import ParamValidationError
from airflow.serialization.serialized_objects import DagSerialization
# What a trigger form's submission goes through: the stored DAG's Params merged with the conf, validated.
stored = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(train))
rejected = {}
for name, value in [
    ("lookback_days", 0), ("lookback_days", 400), ("detectors", ["no_such_detector"]), ("budget", 0)
]:
    try:
        stored.params.deep_merge({name: value}).validate()
    except ParamValidationError as error:
        rejected[name + "=" + json.dumps(value)] = str(error).splitlines()[0]
benchmark = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(bag.dags["passion_benchmark"]))
for name, value in [("corpus", "yahoo"), ("scales", [1, 0])]:
    try:
        benchmark.params.deep_merge({name: value}).validate()
    except ParamValidationError as error:
        rejected[name + "=" + json.dumps(value)] = str(error).splitlines()[0]
stored_score = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(score))
try:
    stored_score.params.deep_merge({"series_per_task": 0}).validate()
except ParamValidationError as error:
    rejected["series_per_task=0"] = str(error).splitlines()[0]
print(json.dumps({
    "dags": sorted(bag.dag_ids),
    "errors": bag.import_errors,
    "seconds": seconds,
    "files": {stat.file: stat.duration.total_seconds() for stat in bag.dagbag_stats},
    "loaded_by_light": loaded_by_light,
    "tensorflow": "tensorflow" in sys.modules,
    "timetables": {dag.dag_id: type(dag.timetable).__name__ for dag in bag.dags.values()},
    "sensor_mode": score.get_task("wait_for_features").mode,
    "mapped": sorted(f"{dag.dag_id}.{task.task_id}" for dag in bag.dags.values() for task in dag.tasks
                     if getattr(task, "is_mapped", False)),
    "retries": score.get_task("report").retries,
    "detector_enum": train.params.get_param("detectors").schema["items"]["enum"] == detector_names(),
    "train_params": sorted(train.params.keys()),
    "rejected": rejected,
}))
"""
    result = subprocess.run(
        [sys.executable, "-c", script, str(ROOT / "dags")],
        env=airflow_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    assert parsed["dags"] == [
        "passion_benchmark",
        "passion_ingest",
        "passion_live",
        "passion_maintenance",
        "passion_score",
        "passion_train",
    ]
    assert parsed["errors"] == {}
    assert parsed["loaded_by_light"] == {"pandas": False, "pyarrow": False, "tensorflow": False}
    assert parsed["tensorflow"] is False
    assert parsed["timetables"] == {
        "passion_ingest": "CronDataIntervalTimetable",
        "passion_score": "CronDataIntervalTimetable",
        "passion_train": "CronTriggerTimetable",
        "passion_maintenance": "CronTriggerTimetable",
        "passion_live": "AssetOrTimeSchedule",
        "passion_benchmark": "NullTimetable",
    }
    assert parsed["sensor_mode"] == "reschedule"
    assert parsed["mapped"] == ["passion_score.score", "passion_train.train"]
    assert parsed["retries"] == 3
    assert parsed["detector_enum"] is True
    assert parsed["train_params"] == [
        "budget",
        "detectors",
        "lookback_days",
        "promote",
        "select_best",
        "series",
        "train_to",
    ]
    assert parsed["rejected"] == {
        "lookback_days=0": "Invalid input for param lookback_days: 0 is less than the minimum of 1",
        "lookback_days=400": "Invalid input for param lookback_days: 400 is greater than the maximum of 365",
        "budget=0": "Invalid input for param budget: 0 is less than or equal to the minimum of 0",
        'detectors=["no_such_detector"]': "Invalid input for param detectors: 'no_such_detector' is not one "
        f"of {detector_names()!r}",
        'corpus="yahoo"': "Invalid input for param corpus: 'yahoo' is not one of "
        "['nab', 'asd', 'smd', 'kpi', 'nasa-http']",
        "scales=[1, 0]": "Invalid input for param scales: 0 is less than the minimum of 1",
        "series_per_task=0": "Invalid input for param series_per_task: 0 is less than the minimum of 1",
    }
    # The train and benchmark DAGs import the detector zoo for their Params; the others need no more
    # than Airflow.
    assert parsed["seconds"] < 10, parsed["files"]
    assert parsed["files"]["passion_ingest.py"] < 2 and parsed["files"]["passion_score.py"] < 2, parsed[
        "files"
    ]


#: The ``execution_timeout`` of each task in seconds, as dags/README.md lists them.
EXECUTION_TIMEOUTS = {
    "passion_benchmark.benchmark": 8 * 3600,
    "passion_ingest.claim_day": 10 * 60,
    "passion_ingest.release_day": 10 * 60,
    "passion_score.claim_day": 10 * 60,
    "passion_score.release_day": 10 * 60,
    "passion_ingest.features": 2 * 3600,
    "passion_ingest.land_cdn": 2 * 3600,
    "passion_ingest.land_metrics": 2 * 3600,
    "passion_live.micro_batch": 15 * 60,
    "passion_maintenance.vacuum": 2 * 3600,
    "passion_score.alert": 15 * 60,
    "passion_score.report": 2 * 3600,
    "passion_score.score": 2 * 3600,
    "passion_score.series_to_score": 2 * 3600,
    "passion_score.wait_for_features": 10 * 60,
    "passion_train.plan": 2 * 3600,
    "passion_train.train": 4 * 3600,
}


def test_every_task_of_every_dag_has_an_execution_timeout(tmp_path: Path) -> None:
    # Parsing needs no database: a bare AIRFLOW_HOME does.
    script = """
import datetime as dt, json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization
bag = DagBag(dag_folder=sys.argv[1])
def limit(task):
    value = task.execution_timeout
    return value.total_seconds() if isinstance(value, dt.timedelta) else repr(value)
limits, stored = {}, {}
for dag in bag.dags.values():
    # What the scheduler and the UI see: the DAG as stored.
    copy = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    for task in dag.tasks:
        limits[f"{dag.dag_id}.{task.task_id}"] = limit(task)
        stored[f"{dag.dag_id}.{task.task_id}"] = limit(copy.get_task(task.task_id))
sensor = bag.dags["passion_score"].get_task("wait_for_features")
print(json.dumps({"errors": bag.import_errors, "limits": limits, "stored": stored,
                  "sensor": {"mode": sensor.mode, "timeout": sensor.timeout}}))
"""
    result = subprocess.run(
        [sys.executable, "-c", script, str(ROOT / "dags")],
        env=cluster.airflow_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    assert parsed["errors"] == {}
    limits = parsed["limits"]
    without = {task: limit for task, limit in limits.items() if not isinstance(limit, float) or limit <= 0}
    assert without == {}, f"tasks without a positive execution_timeout: {without}"
    assert limits == parsed["stored"] == EXECUTION_TIMEOUTS
    # The lake keeps superseded files for longer than the longest task may read them.
    assert max(limits.values()) < VACUUM_GRACE.total_seconds() / 2
    # In reschedule mode execution_timeout bounds one poke; the sensor's timeout still ends the wait.
    assert parsed["sensor"] == {"mode": "reschedule", "timeout": 6 * 3600}
    assert limits["passion_score.wait_for_features"] < parsed["sensor"]["timeout"]


def test_the_failure_notifier_signs_and_gives_up_at_the_alert_deadline(
    tmp_path: Path, webhook: Webhook
) -> None:
    script = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from passion_airflow.notifiers import post_json
post_json({"event": "failure", "dag_id": "passion_ingest"})
began = time.monotonic()
try:
    post_json({"event": "failure", "dag_id": "passion_ingest"}, "passion_trickle")
    error = None
except Exception as failure:
    error = f"{type(failure).__name__}: {failure}"
print(json.dumps({"error": error, "seconds": time.monotonic() - began}))
"""
    trickling = Webhook(trickle=True)
    env = cluster.airflow_env(tmp_path) | {
        "AIRFLOW_CONN_PASSION_ALERTS": webhook.connection,
        "AIRFLOW_CONN_PASSION_TRICKLE": trickling.connection,
        "PASSION_ALERT_TIMEOUT_S": "1",
    }
    try:
        result = subprocess.run(
            [sys.executable, "-c", script, str(ROOT / "plugins")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        trickling.server.shutdown()
    assert result.returncode == 0, result.stderr[-3000:]
    parsed = json.loads(result.stdout.strip().splitlines()[-1])
    [(headers, _)] = webhook.received
    assert headers["User-Agent"] == "passion-airflow"
    assert webhook.payloads() == [{"event": "failure", "dag_id": "passion_ingest"}]  # signature checked
    port = trickling.server.server_port
    assert (
        parsed["error"]
        == f"DeliveryError: webhook: http://127.0.0.1:{port} gave no complete answer within 1 s"
    )
    assert 1 <= parsed["seconds"] < 3


@pytest.fixture(scope="module")
def scored_local_lake(
    airflow_env: dict[str, str], sources: Path, landed: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Lake, subprocess.CompletedProcess[str], list[dict]]:
    """Days 0 and 1 landed and a baseline live from day 2; then Airflow ingests and scores day 2."""
    lake = copy_lake(landed, tmp_path_factory.mktemp("local"))
    train_baseline(lake, until=DAYS[1], live_from=DAYS[2])
    # The day's labelled incident on a watched series: a 2-minute spike of paydecision2 at 22:32.
    spiky = steps.train(
        lake,
        BASELINE,
        series=[SPIKY],
        train_from=DAYS[0],
        train_to=DAYS[1],
        params={"persistence": 1},
        promote=True,
        effective_from=DAYS[2],
    )
    assert spiky.trained, spiky.summary()
    webhook = Webhook()
    env = airflow_env | {
        "PASSION_LAKE": lake.url,
        "PASSION_SOURCES": sources_setting(sources),
        "AIRFLOW_CONN_PASSION_ALERTS": webhook.connection,
        "PASSION_ALERT_MIN_SEVERITY": "info",
        # The spike lasts 2 minutes; the default rules wait for 3.
        "PASSION_ALERT_MIN_MINUTES": "1",
    }
    day = {"day": DAYS[2].isoformat()}
    ingested = dags_test(env, "passion_ingest", day)
    assert ingested.returncode == 0, ingested.stdout[-5000:]
    scored = dags_test(env, "passion_score", day)
    webhook.server.shutdown()
    return lake, scored, webhook.payloads()


@pytest.mark.slow
def test_the_live_dag_lands_and_scores_the_new_files_of_a_day(
    airflow_env: dict[str, str], sources: Path, landed: Path, tmp_path: Path
) -> None:
    lake = copy_lake(landed, tmp_path)
    train_baseline(lake, until=DAYS[1], live_from=DAYS[2])
    webhook = Webhook()
    env = airflow_env | {
        "PASSION_LAKE": lake.url,
        "PASSION_SOURCES": sources_setting(sources),
        "AIRFLOW_CONN_PASSION_ALERTS": webhook.connection,
    }
    # Ten minutes after the day's end: its files all land, and all of its minutes are complete.
    now = dt.datetime.combine(DAYS[3], dt.time(0, 10)).isoformat()
    ran = dags_test(env, "passion_live", {"now": now})
    webhook.server.shutdown()
    assert ran.returncode == 0, ran.stdout[-5000:]
    scores = lake.read_partition("live_scores", DAYS[2]).to_pandas()
    assert scores.groupby("series")["ts"].nunique().to_dict() == {"cdn_requests": 1440}
    assert set(scores["model_version"]) == {"cdn_requests/rolling_mad@v1"}
    state = json.loads(lake.read_bytes(f"live/dt={DAYS[2]}/state.json"))
    assert state["scored_until"] == f"{DAYS[3]}T00:00:00+00:00"
    assert len(state["landed"]) == len(list((sources / "cdn").rglob(f"*{DAYS[2]}*")))
    # A batch that finds nothing new does nothing: the lake's scores stay as they were.
    again = dags_test(env, "passion_live", {"now": now})
    assert again.returncode == 0, again.stdout[-5000:]
    assert "nothing new" in again.stdout
    assert lake.read_partition("live_scores", DAYS[2]).to_pandas().equals(scores)


@pytest.mark.slow
def test_airflow_ingests_then_scores_a_day_of_a_local_lake(
    scored_local_lake, generated: GenerationSummary
) -> None:
    lake, scored, alerts = scored_local_lake
    assert scored.returncode == 0, scored.stdout[-5000:]
    day = DAYS[2]
    assert lake.partitions("features") == DAYS[:3]
    assert lake.read_partition("cdn_logs", day).num_rows == generated.cdn_lines_per_day[day.isoformat()]
    assert lake.read_partition("metrics", day).num_rows == 5 * 1440
    assert model_versions(lake, day) == {name: [f"{name}/rolling_mad@v1"] for name in [*SERIES, SPIKY]}
    assert len(scores_of(lake, day)) == 1440 * (len(SERIES) + 1)
    assert steps.scored_series(lake, day) == sorted([*SERIES, SPIKY])
    # One file a day for the whole batch, in each of the two datasets.
    assert [len(leaf.files) for leaf in lake.leaves("scores", day)] == [1]
    assert lake.exists(f"reports/dt={day}/index.html")
    events = Counter(lake.read_partition("events", day, columns=["series"])["series"].to_pylist())
    assert SPIKY in events
    # Each incident the rules kept was posted once, signed, and logged as sent in the lake.
    ledger = [json.loads(line) for line in lake.read_bytes(f"alerts/dt={day}/sent.jsonl").splitlines()]
    assert alerts and all(alert["event"] == "passion_alert" for alert in alerts)
    assert sorted(alert["dedup_key"] for alert in alerts) == sorted(
        entry["dedup_key"] for entry in ledger if entry["status"] == "sent"
    )
    assert {name for alert in alerts for name in alert["series"]} <= set(events)


@pytest.mark.slow
def test_rescoring_a_day_replaces_it_with_the_same_rows(
    scored_local_lake, airflow_env: dict[str, str]
) -> None:
    lake, _, _ = scored_local_lake
    day = DAYS[2]
    before = scores_of(lake, day)
    files_before = {file for leaf in lake.leaves("scores", day) for file in leaf.files}
    # In batches of 3 this time (2 mapped tasks, not 1): the batching does not change what is written.
    conf = {"day": day.isoformat(), "series_per_task": 3}
    again = dags_test(airflow_env | {"PASSION_LAKE": lake.url}, "passion_score", conf)
    assert again.returncode == 0, again.stdout[-5000:]
    assert again.stdout.count("scored 3 series") == 1 and again.stdout.count("scored 1 series") == 1
    files_after = {file for leaf in lake.leaves("scores", day) for file in leaf.files}
    pd.testing.assert_frame_equal(scores_of(lake, day), before)
    # The first run's batch is replaced by the two new ones: a file each, none of the first run's.
    assert (len(files_before), len(files_after)) == (1, 2)
    assert files_after.isdisjoint(files_before)


@pytest.mark.slow
def test_a_series_that_cannot_be_scored_fails_its_batch_and_the_others_are_kept(
    airflow_env: dict[str, str], sources: Path, landed: Path, tmp_path: Path
) -> None:
    lake = copy_lake(landed, tmp_path)
    land(sources, lake, [DAYS[2]])
    train_baseline(lake, until=DAYS[1], live_from=DAYS[2])
    # cif's model no longer matches its manifest's checksum: it must not be loaded.
    [stored, *_] = lake.list_files("models/cif/rolling_mad/v1/artifact")
    tampered = bytearray(lake.read_bytes(stored))
    tampered[-1] ^= 0x01
    lake.write_bytes(stored, bytes(tampered))

    # Batches of 2: [cdn_requests, cif] and [paycore].
    conf = {"day": DAYS[2].isoformat(), "series_per_task": 2}
    result = dags_test(airflow_env | {"PASSION_LAKE": lake.url}, "passion_score", conf)
    assert "1 of 2 series not scored: {'cif': " in result.stdout, result.stdout[-5000:]
    assert steps.scored_series(lake, DAYS[2]) == ["cdn_requests", "paycore"]
    # The report and the alert still cover the series that were scored.
    assert lake.exists(f"reports/dt={DAYS[2]}/index.html")


@pytest.mark.slow
def test_the_cli_and_the_train_dag_train_the_same_model(
    airflow_env: dict[str, str], landed: Path, tmp_path: Path
) -> None:
    lake = copy_lake(landed, tmp_path)
    conf = {"series": ["cif"], "detectors": [BASELINE], "train_to": DAYS[1].isoformat(), "lookback_days": 2}
    result = dags_test(airflow_env | {"PASSION_LAKE": lake.url}, "passion_train", conf)
    assert result.returncode == 0, result.stdout[-5000:]
    command = ["train", "--detector", BASELINE, "--series", "cif", "--train-to", DAYS[1].isoformat()]
    assert cli.main([*command, "--lookback-days", "2", "--lake", lake.url]) == 0

    by_dag, by_cli = (
        json.loads(lake.read_bytes(f"models/cif/{BASELINE}/{version}/manifest.json"))
        for version in ("v1", "v2")
    )
    # The same defaults, range and data: the same model, file for file, apart from when it was made.
    for manifest in (by_dag, by_cli):
        for made in ("created_at", "version"):
            del manifest[made]
        del manifest["metrics"]["fit_seconds"]
    assert by_dag == by_cli
    assert by_dag["params"]["persistence"] == DETECTOR_DEFAULTS[BASELINE]["persistence"]
    assert (by_dag["train_start"], by_dag["train_end"]) == (DAYS[0].isoformat(), DAYS[1].isoformat())


@pytest.mark.slow
def test_a_run_waits_while_another_run_holds_its_day_and_gives_its_own_lease_back(
    airflow_env: dict[str, str], sources: Path, landed: Path, tmp_path: Path
) -> None:
    lake = copy_lake(landed, tmp_path)
    land(sources, lake, [DAYS[2]])
    train_baseline(lake, until=DAYS[1], live_from=DAYS[2])
    name = steps.day_lease("passion_score", DAYS[2])
    leases.acquire(lake, name, "manual__another-run")
    env = airflow_env | {
        "PASSION_LAKE": lake.url,
        "PASSION_DAY_LEASE_TIMEOUT_S": "2",
        "PASSION_DAY_LEASE_POKE_S": "0.5",
    }
    conf = {"day": DAYS[2].isoformat()}

    waited = dags_test(env, "passion_score", conf)
    assert waited.returncode == 1
    assert (
        f"AirflowSensorTimeout: another run still writes {DAYS[2]} after 2 s: lease {name!r} is held by "
        "'manual__another-run'"
    ) in waited.stdout, waited.stdout[-5000:]
    assert not lake.partitions("scores")
    # The waiting run never held the lease, so its teardown did not give the other run's back.
    assert leases.current(lake, name).holder == "manual__another-run"

    assert leases.release(lake, name, "manual__another-run")
    ran = dags_test(env, "passion_score", conf)
    assert ran.returncode == 0, ran.stdout[-5000:]
    assert lake.partitions("scores") == [DAYS[2]]
    assert leases.current(lake, name) is None


@pytest.mark.slow
def test_airflow_ingests_and_scores_a_lake_on_s3_through_an_aws_connection(
    airflow_env: dict[str, str], sources: Path, s3_endpoint: str
) -> None:
    import boto3

    access_key, secret_key = "passion-access-key", "passion-secret-key-never-logged"
    bucket = f"passion-{uuid.uuid4().hex[:10]}"
    s3 = S3Options(endpoint_url=s3_endpoint, region="us-east-1", access_key=access_key, secret_key=secret_key)
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
    ).create_bucket(Bucket=bucket)
    lake = Lake(f"s3://{bucket}/lake", s3=s3)
    land(sources, lake, DAYS[:2])
    train_baseline(lake, until=DAYS[1], live_from=DAYS[2])
    connection = {
        "conn_type": "aws",
        "login": access_key,
        "password": secret_key,
        "extra": {"endpoint_url": s3_endpoint, "region_name": "us-east-1"},
    }
    # No AWS_* credentials in the environment: the connection is the only way in.
    env = airflow_env | {
        "PASSION_LAKE": lake.url,
        "PASSION_SOURCES": sources_setting(sources),
        "AIRFLOW_CONN_PASSION_LAKE": json.dumps(connection),
    }
    day = {"day": DAYS[2].isoformat()}
    ingested = dags_test(env, "passion_ingest", day)
    assert ingested.returncode == 0, ingested.stdout[-5000:]
    scored = dags_test(env, "passion_score", day)
    assert scored.returncode == 0, scored.stdout[-5000:]
    assert lake.partitions("features") == DAYS[:3]
    assert model_versions(lake, DAYS[2]) == {name: [f"{name}/rolling_mad@v1"] for name in SERIES}
    assert lake.exists(f"reports/dt={DAYS[2]}/index.html")
    assert secret_key not in ingested.stdout + scored.stdout


@pytest.mark.slow
def test_a_day_without_input_fails_ingest_at_once_and_alerts(
    airflow_env: dict[str, str], sources: Path, tmp_path: Path, webhook: Webhook
) -> None:
    env = airflow_env | {
        "PASSION_LAKE": (tmp_path / "lake").as_uri(),
        "PASSION_SOURCES": sources_setting(sources),
        "AIRFLOW_CONN_PASSION_ALERTS": webhook.connection,
    }
    result = dags_test(env, "passion_ingest", {"day": "2026-10-01"})
    assert result.returncode == 1
    assert f"NoInputError: no input files for 2026-10-01 under {sources / 'cdn'}" in result.stdout
    assert f"NoInputError: no input files for 2026-10-01 under {sources / 'metrics'}" in result.stdout
    assert result.stdout.count("Retry policy decision") == 2
    assert "up_for_retry" not in result.stdout
    alerts = sorted(webhook.payloads(), key=lambda alert: alert["task_id"])
    assert [(alert["event"], alert["task_id"], alert["exception"]) for alert in alerts] == [
        ("failure", "land_cdn", f"no input files for 2026-10-01 under {sources / 'cdn'}"),
        ("failure", "land_metrics", f"no input files for 2026-10-01 under {sources / 'metrics'}"),
    ]
    assert {alert["dag_id"] for alert in alerts} == {"passion_ingest"}
    assert not Lake((tmp_path / "lake").as_uri()).partitions("features")


@pytest.mark.slow
def test_score_sensor_times_out_naming_the_missing_partition(
    airflow_env: dict[str, str], tmp_path: Path
) -> None:
    lake = Lake((tmp_path / "lake").as_uri())
    env = airflow_env | {
        "PASSION_LAKE": lake.url,
        "PASSION_FEATURES_TIMEOUT_S": "1",
        "PASSION_FEATURES_POKE_S": "0.5",
    }
    result = dags_test(env, "passion_score", {"day": "2026-10-01"})
    assert result.returncode == 1
    missing = [lake.uri(f"features/dt=2026-10-01/source={source}") for source in ("cdn", "metrics")]
    assert (
        "AirflowSensorTimeout: features partition of 2026-10-01 still missing after 1 s: "
        f"{', '.join(missing)}. Run passion_ingest for 2026-10-01"
    ) in result.stdout
    assert not lake.partitions("scores")


@pytest.mark.slow
def test_train_fans_out_per_series_and_keeps_the_models_of_the_others(
    airflow_env: dict[str, str], landed: Path, tmp_path: Path
) -> None:
    lake = copy_lake(landed, tmp_path)
    conf = {
        "series": ["cif", "no_such_series", "paycore"],
        "detectors": ["rolling_mad"],
        "train_to": DAYS[1].isoformat(),
        "lookback_days": 2,
        "promote": True,
    }
    # The model-signing key comes from its connection, and never reaches the log.
    key = "passion-model-key-never-logged-0123456789"
    connection = json.dumps({"conn_type": "generic", "password": key})
    env = airflow_env | {"PASSION_LAKE": lake.url, "AIRFLOW_CONN_PASSION_MODEL_KEY": connection}
    result = dags_test(env, "passion_train", conf)
    assert result.returncode == 1
    assert "PassionError: no_such_series: rolling_mad: target series 'no_such_series'" in result.stdout
    for name in ("cif", "paycore"):
        live = registry.live(lake, name, DAYS[2])
        assert (live.ref, live.train_start, live.train_end) == (f"{name}/rolling_mad@v1", DAYS[0], DAYS[1])
        assert registry.live(lake, name, DAYS[1]) is None
        manifest = json.loads(lake.read_bytes(f"models/{name}/rolling_mad/v1/manifest.json"))
        assert registry.signed_with(manifest, key.encode())
    assert key not in result.stdout
    assert registry.list_models(lake) == [registry.live(lake, name, DAYS[2]) for name in ("cif", "paycore")]


@pytest.mark.slow
def test_train_with_select_best_registers_the_winner_of_each_series(
    airflow_env: dict[str, str], sources: Path, landed: Path, tmp_path: Path
) -> None:
    lake = copy_lake(landed, tmp_path)
    land(sources, lake, DAYS[2:3])
    candidates = ["rolling_mad", "windowed_gaussian"]
    conf = {
        "series": ["cif", "paycore"],
        "detectors": candidates,
        "train_to": DAYS[2].isoformat(),
        "lookback_days": 3,
        "select_best": True,
        "promote": True,
    }
    result = dags_test(airflow_env | {"PASSION_LAKE": lake.url}, "passion_train", conf)
    assert result.returncode == 0, result.stdout[-5000:]
    for name in ("cif", "paycore"):
        [model] = registry.list_models(lake, name)
        assert registry.live(lake, name, DAYS[3]) == model
        assert model.detector in candidates
        assert (model.train_start, model.train_end) == (DAYS[0], DAYS[2])
        assert sorted(model.metrics["selection"]["candidates"]) == candidates
        assert f"{name}: {model.detector} selected by the injected criterion" in result.stdout


@pytest.mark.slow
def test_the_maintenance_dag_vacuums_what_a_killed_write_left(
    airflow_env: dict[str, str], tmp_path: Path
) -> None:
    lake = Lake((tmp_path / "lake").as_uri())
    lake.write_partition("scores", DAYS[0], pa.table({"value": [1.0]}), key={"series": "cif"})
    # A first write of another leaf, killed before its commit, two days ago; and a fresh one.
    stale = f"scores/dt={DAYS[0]}/series=paycore/part-0123456789ab-0.parquet"
    fresh = f"scores/dt={DAYS[0]}/series=paydecision/part-ba9876543210-0.parquet"
    for orphan in (stale, fresh):
        lake.write_bytes(orphan, b"an uncommitted file")
    two_days_ago = time.time() - 2 * 86400
    os.utime(lake._path(stale), (two_days_ago, two_days_ago))

    result = dags_test(airflow_env | {"PASSION_LAKE": lake.url}, "passion_maintenance", {})
    assert result.returncode == 0, result.stdout[-5000:]
    assert "removed 1 files (19 bytes) that no manifest names; kept 1 younger than the grace period" in (
        result.stdout
    )
    assert not lake.exists(stale) and lake.exists(fresh)
    assert lake.read_partition("scores", DAYS[0]).num_rows == 1


@pytest.mark.slow
def test_benchmark_dag_writes_the_leaderboard_into_the_lake(
    airflow_env: dict[str, str], tmp_path: Path
) -> None:
    lake = Lake((tmp_path / "lake").as_uri())
    conf = {"corpus": "kpi", "detectors": ["rolling_mad"], "scales": [10, 1]}
    result = dags_test(airflow_env | {"PASSION_LAKE": lake.url}, "passion_benchmark", conf)
    assert result.returncode == 0, result.stdout[-5000:]
    assert lake.list_files("leaderboards") == [
        f"leaderboards/kpi/{name}"
        for name in ("leaderboard.html", "leaderboard.json", "leaderboard.parquet", "series.parquet")
    ]
    board = json.loads(lake.read_bytes("leaderboards/kpi/leaderboard.json"))
    assert (board["corpus"], [row["detector"] for row in board["detectors"]]) == ("kpi", ["rolling_mad"])
    assert "the trailing means of 1, 10 rows" in board["method"]["scores"]
    assert f"leaderboard: {lake.uri('leaderboards/kpi/leaderboard.html')}" in result.stdout


def backfill_runs(env: dict[str, str], dag_id: str) -> list[dict]:
    listed = airflow(env, "dags", "list-runs", dag_id, "--output", "json").stdout
    runs = json.loads(next((line for line in listed.splitlines() if line.startswith("[")), "[]"))
    return [run for run in runs if run["run_id"].startswith("backfill")]


def wait_for_backfill(
    env: dict[str, str], dag_id: str, lake: Lake, written: str, days: list[dt.date], timeout: float
) -> list[dict]:
    """The backfill's runs of ``days`` once all have finished, or at the timeout.

    The lake is watched (cheap) and the runs listed (an Airflow command) when the dataset the runs
    write last (``written``) has every day, or every 30 s to notice failed runs.
    """
    deadline, listed_at = time.monotonic() + timeout, time.monotonic()
    while time.monotonic() < deadline:
        if set(days) <= set(lake.partitions(written)) or time.monotonic() - listed_at > 30:
            runs, listed_at = backfill_runs(env, dag_id), time.monotonic()
            if len(runs) == len(days) and all(run["state"] in ("success", "failed") for run in runs):
                return runs
        time.sleep(2)
    return backfill_runs(env, dag_id)


@pytest.mark.slow
def test_backfill_scores_each_day_with_the_model_live_that_day(
    airflow_env: dict[str, str], sources: Path, landed: Path, tmp_path: Path
) -> None:
    lake = copy_lake(landed, tmp_path)
    land(sources, lake, DAYS[2:])
    train_baseline(lake, until=DAYS[0], live_from=DAYS[1])  # v1: days 1 and 2
    train_baseline(lake, until=DAYS[1], live_from=DAYS[3])  # v2: day 3
    api_port = free_port()
    env = services_env(airflow_env, api_port) | {"PASSION_LAKE": lake.url}
    reserialized = airflow(env, "dags", "reserialize")
    assert reserialized.returncode == 0, reserialized.stderr[-3000:]
    # A backfill only queues runs (before the services start: SQLite takes one writer at a time).
    # Each run's logical date is 01:00 UTC of its day: this range holds days 1 to 3.
    created = airflow(
        env,
        "backfill",
        "create",
        "--dag-id",
        "passion_score",
        "--from-date",
        DAYS[1].isoformat(),
        "--to-date",
        f"{DAYS[3]}T01:00:00+00:00",
    )
    assert created.returncode == 0, created.stderr[-3000:]
    with airflow_services(env, api_port, tmp_path):
        runs = wait_for_backfill(env, "passion_score", lake, "reports", DAYS[1:], timeout=300)
    logs = "".join(path.read_text()[-2000:] for path in tmp_path.glob("*.log"))
    assert sorted((run["logical_date"][:10], run["state"]) for run in runs) == [
        (day.isoformat(), "success") for day in DAYS[1:]
    ], logs
    assert lake.partitions("scores") == DAYS[1:]
    expected = {DAYS[1]: "v1", DAYS[2]: "v1", DAYS[3]: "v2"}
    for day, version in expected.items():
        assert model_versions(lake, day) == {name: [f"{name}/rolling_mad@{version}"] for name in SERIES}
        assert len(scores_of(lake, day)) == 1440 * len(SERIES)


def live_state(lake: Lake, day: dt.date) -> dict:
    path = f"live/dt={day}/state.json"
    return json.loads(lake.read_bytes(path)) if lake.exists(path) else {"landed": {}}


def wait_for_landed(lake: Lake, day: dt.date, names: set[str], timeout: float) -> set[str]:
    """The files the day's micro-batches have landed, once ``names`` are among them or at the timeout."""
    deadline = time.monotonic() + timeout
    while not names <= set(live_state(lake, day)["landed"]) and time.monotonic() < deadline:
        time.sleep(1)
    return set(live_state(lake, day)["landed"])


def live_runs(home: Path, run_type: str) -> list[str]:
    """The states of the ``passion_live`` runs of ``run_type``, in the order they were made."""
    with contextlib.closing(sqlite3.connect(home / "airflow.db", timeout=30)) as db:
        query = "SELECT state FROM dag_run WHERE dag_id = 'passion_live' AND run_type = ? ORDER BY id"
        return [state for (state,) in db.execute(query, (run_type,))]


def asset_payloads(home: Path, asset: str) -> list[dict]:
    with contextlib.closing(sqlite3.connect(home / "airflow.db", timeout=30)) as db:
        query = (
            "SELECT asset_event.extra FROM asset_event JOIN asset ON asset.id = asset_event.asset_id"
            " WHERE asset.name = ? ORDER BY asset_event.id"
        )
        return [json.loads(extra)["payload"] for (extra,) in db.execute(query, (asset,))]


@pytest.mark.slow
def test_a_log_file_that_lands_starts_a_live_batch_through_the_triggerers_watcher(tmp_path: Path) -> None:
    # The watcher works on the wall clock's days: the files are of today, the model learnt the two before.
    today = dt.datetime.now(dt.UTC).date()
    generated = generate(tmp_path / "generated", today - dt.timedelta(days=2), 3, seed=5, rate=2).out
    lake = Lake((tmp_path / "lake").as_uri())
    land(generated, lake, [today - dt.timedelta(days=2), today - dt.timedelta(days=1)])
    trained = steps.train(
        lake,
        BASELINE,
        series=["cdn_requests"],
        train_from=today - dt.timedelta(days=2),
        train_to=today - dt.timedelta(days=1),
        promote=True,
        effective_from=today,
    )
    assert list(trained.trained) == ["cdn_requests"], trained.summary()
    staged = generated / "cdn" / "cloudfront"
    first, second = sorted(staged.rglob(f"*.{today}-0[12].*.gz"))[:2]
    source = tmp_path / "sources" / "cdn"
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "passion_live.py").symlink_to(ROOT / "dags" / "passion_live.py")
    api_port = free_port()
    # A database of its own: the session's holds passion_live as other tests parsed it, with their cron.
    env = services_env(cluster.airflow_env(tmp_path / "airflow"), api_port) | {
        "PASSION_LAKE": lake.url,
        "PASSION_SOURCES": json.dumps({"cdn": str(source), "metrics": str(tmp_path / "sources" / "metrics")}),
        "PASSION_LIVE_WATCH_S": "1",
        # The scheduler makes runs of its own, for the asset; the DAG is alone and its cron makes one run
        # (the last past January 1st, at once) and no other.
        "PASSION_LIVE_CRON": "0 0 1 1 *",
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
    }
    home = Path(env["AIRFLOW_HOME"])
    migrated = airflow(env, "db", "migrate")
    assert migrated.returncode == 0, migrated.stdout[-3000:]

    def deliver(file: Path) -> str:
        target = source / file.relative_to(staged.parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(file, target)
        return str(target)

    with airflow_services(env, api_port, tmp_path, "triggerer"):
        deadline = time.monotonic() + 180
        while live_runs(home, "scheduled") != ["success"] and time.monotonic() < deadline:
            time.sleep(1)
        cron_runs = live_runs(home, "scheduled")
        first_name = deliver(first)
        after_first = wait_for_landed(lake, today, {first_name}, timeout=120)
        second_name = deliver(second)
        after_second = wait_for_landed(lake, today, {first_name, second_name}, timeout=120)
        # Landed files are not announced again: no run follows.
        time.sleep(5)
    logs = "".join(path.read_text()[-2000:] for path in tmp_path.glob("*.log"))
    assert cron_runs == ["success"], logs
    assert after_first == {first_name}, logs
    assert after_second == {first_name, second_name}, logs
    assert live_runs(home, "asset_triggered") == ["success", "success"], logs
    assert asset_payloads(home, "passion_cdn_log_files") == [
        {"files": [first_name], "count": 1},
        {"files": [second_name], "count": 1},
    ]
    scored = lake.read_partition("live_scores", today, columns=["series", "ts"]).to_pandas()
    assert set(scored["series"]) == {"cdn_requests"}


@pytest.mark.slow
def test_an_ingest_backfill_pulls_each_day_from_prometheus_and_fails_a_day_it_has_not(
    prometheus_server: PrometheusServer, tmp_path: Path
) -> None:
    # The server's week starts on FIRST_DAY: the day before has no value, as a day beyond its retention.
    days = [FIRST_DAY - dt.timedelta(days=1), FIRST_DAY, FIRST_DAY + dt.timedelta(days=1)]
    cdn = generate(tmp_path / "generated", days[0], len(days), seed=5, rate=2).out / "cdn"
    queries = tmp_path / "queries.json"
    queries.write_text(
        json.dumps({"queries": [{"name": "cpu_usage", "promql": "cpu_usage", "labels": ["instance"]}]})
    )
    lake = Lake((tmp_path / "lake").as_uri())
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "passion_ingest.py").symlink_to(ROOT / "dags" / "passion_ingest.py")
    api_port = free_port()
    connection = {
        "conn_type": "http",
        "host": prometheus_server.url,
        "login": prometheus_server.user,
        "password": prometheus_server.password,
    }
    env = services_env(cluster.airflow_env(tmp_path / "airflow"), api_port) | {
        "PASSION_LAKE": lake.url,
        "PASSION_SOURCES": json.dumps({"cdn": str(cdn), "metrics": f"prometheus:{queries}"}),
        "AIRFLOW_CONN_PASSION_PROMETHEUS": json.dumps(connection),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
    }
    for command in (["db", "migrate"], ["dags", "reserialize"]):
        done = airflow(env, *command)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    last = f"{days[-1]}T01:00:00+00:00"
    created = airflow(
        env,
        "backfill",
        "create",
        "--dag-id",
        "passion_ingest",
        "--from-date",
        str(days[0]),
        "--to-date",
        last,
    )
    assert created.returncode == 0, created.stderr[-3000:]
    with airflow_services(env, api_port, tmp_path):
        runs = wait_for_backfill(env, "passion_ingest", lake, "features", days, timeout=300)
    logs = "".join(path.read_text()[-2000:] for path in tmp_path.glob("*.log"))
    assert sorted((run["logical_date"][:10], run["state"]) for run in runs) == [
        (str(days[0]), "failed"),
        (str(days[1]), "success"),
        (str(days[2]), "success"),
    ], logs
    assert lake.partitions("features") == days[1:]
    for day in days[1:]:
        metrics = lake.read_partition(datasets.METRICS, day).to_pandas()
        assert metrics.groupby(["source", "series"]).size().to_dict() == {
            ("prometheus", "cpu_usage[instance=web-1]"): 1440,
            ("prometheus", "cpu_usage[instance=web-2]"): 1440,
        }
    # Run ids carry the time a run was due (the day after its own); its land_metrics log says why it failed.
    task_logs = Path(env["AIRFLOW_HOME"], "logs", "dag_id=passion_ingest")
    texts = [path.read_text() for path in task_logs.glob("run_id=*/task_id=land_metrics/*.log")]
    assert sum(f"no value on {days[0]} for any of the 1 queries" in text for text in texts) == 1
