"""A distributed Airflow on one machine: PostgreSQL, Redis, an S3-protocol lake, CeleryExecutor workers.

The production topology of ``docker/docker-compose.yaml`` without Docker: each part is the real server
(Debian's PostgreSQL and Redis, moto's S3 server, Airflow's own commands) on 127.0.0.1 in a temporary
folder, and everything is stopped and removed on exit. Used by ``tests/test_scale.py`` and
``bench/scale.py``. Each worker reports its own name as the task instances' hostname, as separate
machines (or containers) would.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import hashlib
import hmac
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from passion_tasks import steps
from passion_tasks.defaults import BASELINE
from passion_tasks.lake import Lake, S3Options, schemas

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BUCKET = "passion"
WORKER_NAME_ENV = "PASSION_WORKER_NAME"
WEBHOOK_SECRET = "webhook-signing-secret"


def worker_hostname() -> str:
    """Airflow's ``hostname_callable`` in the workers: the name the cluster gave the worker."""
    return os.environ[WORKER_NAME_ENV]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"{process.args[0]} exited with {process.returncode} before listening on {port}"
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on port {port} after {timeout} s")
        time.sleep(0.3)


def run_or_raise(command: list[str], timeout: float = 120) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"`{' '.join(command)}` failed: {done.stderr[-2000:]}")


def airflow_env(home: Path) -> dict[str, str]:
    """What every Airflow command of the tests runs with: this environment without Airflow, AWS and
    Passion settings (the reference data excepted), its own home, the project's DAGs and plugins, DAGs
    unpaused at creation and no runs of the scheduler's own."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AIRFLOW", "AWS_", "PASSION_")) or name == "PASSION_REFERENCE_DATA"
    }
    return env | {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
        "AWS_EC2_METADATA_DISABLED": "true",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }


@contextlib.contextmanager
def airflow_services(env: dict[str, str], api_port: int, logs: Path, *more: str) -> Iterator[None]:
    """Airflow on SQLite with its LocalExecutor, for a test or a benchmark: api-server (the workers'
    execution API), then scheduler, dag-processor and the components named in ``more``; stopped at the
    end. Each writes its output to ``logs/<component>.log``."""
    processes = []

    def start(name: str, *args: str) -> None:
        with (logs / f"{name}.log").open("w") as log:
            processes.append(
                subprocess.Popen(
                    [str(BIN / "airflow"), name, *args],
                    env=env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    try:
        start("api-server", "--workers", "1")
        # A task whose worker cannot reach the API fails and waits out a retry delay.
        wait_for_port(api_port, timeout=90)
        for component in ("scheduler", "dag-processor", *more):
            start(component)
        yield
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def services_env(base: dict[str, str], api_port: int) -> dict[str, str]:
    """``base`` (an ``airflow_env``) for ``airflow_services`` whose API listens on ``api_port``."""
    return base | {
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        # The DAG files are parsed once; reparsing them every 30 s would only cost CPU here.
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
    }


class Webhook:
    """A local HTTP endpoint that records what is posted to it; with ``trickle``, it answers 200 one byte
    every 0.1 s instead: never silent for a per-read timeout, about 6.5 s in all."""

    TRICKLED_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"

    def __init__(self, trickle: bool = False) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        #: When each post arrived (``time.time()``), in the order of ``received``.
        self.arrived_at: list[float] = []
        received, arrived_at, answer = self.received, self.arrived_at, self.TRICKLED_ANSWER

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
                arrived_at.append(time.time())
                if not trickle:
                    self.send_response(204)
                    self.end_headers()
                    return
                for offset in range(len(answer)):
                    time.sleep(0.1)
                    self.wfile.write(answer[offset : offset + 1])

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def connection(self) -> str:
        """An ``AIRFLOW_CONN_...`` value for the ``passion_alerts`` http connection."""
        url = f"http://127.0.0.1:{self.server.server_port}/hooks/passion"
        return json.dumps({"conn_type": "http", "host": url, "password": WEBHOOK_SECRET})

    def payloads(self) -> list[dict]:
        """The posted bodies, each checked against its signature."""
        for headers, body in self.received:
            expected = hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert headers["X-Passion-Signature"] == f"sha256={expected}"
        return [json.loads(body) for _, body in self.received]


def postgres_bin() -> Path:
    """Debian's PostgreSQL server programs (``make services`` installs them)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError(
            "no PostgreSQL server: run `make services` (apt-get install postgresql redis-server)"
        )
    return Path(found[-1]).parent


@dataclass
class Cluster:
    """Start with ``with Cluster(workers=2) as cluster:``; ``cluster.airflow(...)`` runs a command in it."""

    workers: int = 2
    worker_concurrency: int = 2
    parallelism: int = 32
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="passion-cluster-")))
    env: dict[str, str] = field(init=False, default_factory=dict)
    s3: S3Options = field(init=False)
    _processes: list[subprocess.Popen] = field(init=False, default_factory=list)
    _pgdata: Path = field(init=False)

    @property
    def lake(self) -> Lake:
        return Lake(f"s3://{BUCKET}/lake", s3=self.s3)

    @property
    def logs(self) -> Path:
        return self.folder / "logs"

    def __enter__(self) -> Cluster:
        try:
            self.logs.mkdir(parents=True)
            self._start_postgres()
            redis_port = self._start_redis()
            self._start_s3()
            self._configure_airflow(redis_port)
            migrated = self.airflow("db", "migrate", timeout=300)
            if migrated.returncode:
                raise RuntimeError(f"airflow db migrate failed:\n{migrated.stdout[-3000:]}")
            self._start_airflow()
        except Exception as error:
            tails = self.log_tails()
            self.__exit__(None, None, None)
            raise RuntimeError(f"the cluster did not start: {error}\n{tails}") from error
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def log_tails(self, chars: int = 3000) -> str:
        """The end of every server's log, to explain a failure (the folder is removed on exit)."""
        return "\n".join(
            f"--- {path.name}\n{path.read_text()[-chars:]}" for path in sorted(self.logs.glob("*.log"))
        )

    def __exit__(self, *exc: object) -> None:
        for process in reversed(self._processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self._processes):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if hasattr(self, "_pgdata"):
            subprocess.run(
                [
                    *self._as_postgres(),
                    str(postgres_bin() / "pg_ctl"),
                    "stop",
                    "-D",
                    str(self._pgdata),
                    "-m",
                    "fast",
                ],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- servers ---------------------------------------------------------------------------------

    def _popen(self, name: str, command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        with (self.logs / f"{name}.log").open("w") as log:
            process = subprocess.Popen(
                command,
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._processes.append(process)
        return process

    def _start_redis(self) -> int:
        port = free_port()
        command = [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        wait_for_port(port, timeout=30, process=self._popen("redis", command))
        return port

    @staticmethod
    def _as_postgres() -> list[str]:
        # PostgreSQL refuses to run as root: as root, its programs run as Debian's postgres user.
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _start_postgres(self) -> None:
        self._pgdata = self.folder / "pgdata"
        self.folder.chmod(0o755)
        if os.geteuid() == 0:
            self._pgdata.mkdir()
            shutil.chown(self._pgdata, "postgres", "postgres")
        bin_dir = postgres_bin()
        run_or_raise(
            [
                *self._as_postgres(),
                str(bin_dir / "initdb"),
                "-D",
                str(self._pgdata),
                "-U",
                "passion",
                "--auth=trust",
            ]
        )
        self.pg_port = free_port()
        server = [
            *self._as_postgres(),
            str(bin_dir / "postgres"),
            "-D",
            str(self._pgdata),
            "-p",
            str(self.pg_port),
            "-k",
            str(self._pgdata),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=200",
            "-c",
            "fsync=off",
        ]
        wait_for_port(self.pg_port, timeout=60, process=self._popen("postgres", server))
        run_or_raise(
            [
                str(bin_dir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.pg_port),
                "-U",
                "passion",
                "airflow",
            ]
        )

    def _start_s3(self) -> None:
        port = free_port()
        server = self._popen("s3", [str(BIN / "python"), str(ROOT / "tests" / "s3_server.py"), str(port)])
        wait_for_port(port, timeout=60, process=server)
        self.s3 = S3Options(
            endpoint_url=f"http://127.0.0.1:{port}",
            region="us-east-1",
            access_key="cluster",
            secret_key="cluster",
        )
        import boto3

        boto3.client(
            "s3",
            endpoint_url=self.s3.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="cluster",
            aws_secret_access_key="cluster",
        ).create_bucket(Bucket=BUCKET)

    # -- Airflow ---------------------------------------------------------------------------------

    @property
    def database_url(self) -> str:
        return f"postgresql+psycopg2://passion@127.0.0.1:{self.pg_port}/airflow"

    def _configure_airflow(self, redis_port: int) -> None:
        self.api_port = free_port()
        self.env = airflow_env(self.folder / "airflow") | {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://passion@127.0.0.1:{self.pg_port}/airflow",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(self.parallelism),
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
            # The lake on the S3 server, as the docker deployment's MinIO.
            "PASSION_LAKE": self.lake.url,
            "PASSION_S3_ENDPOINT_URL": self.s3.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.s3.access_key,
            "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
            "AWS_REGION": self.s3.region,
        }

    def airflow(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        """An ``airflow`` command against the cluster; stdout and stderr together in ``stdout``."""
        return subprocess.run(
            [str(BIN / "airflow"), *args],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )

    def _start_airflow(self) -> None:
        reserialized = self.airflow("dags", "reserialize")
        if reserialized.returncode:
            raise RuntimeError(f"airflow dags reserialize failed:\n{reserialized.stdout[-3000:]}")
        api = self._popen("api-server", [str(BIN / "airflow"), "api-server", "--workers", "1"], self.env)
        # A task whose worker cannot reach the execution API fails and waits out a retry delay.
        wait_for_port(self.api_port, timeout=120, process=api)
        self._popen("scheduler", [str(BIN / "airflow"), "scheduler"], self.env)
        self._popen("dag-processor", [str(BIN / "airflow"), "dag-processor"], self.env)
        for number in range(1, self.workers + 1):
            self.start_worker(f"passion-worker-{number}")
        self.wait_for_workers(self.workers, timeout=180)

    def start_worker(self, name: str) -> None:
        env = self.env | {
            WORKER_NAME_ENV: name,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "cluster.worker_hostname",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")])),
            # Each worker serves its task logs on its own port, as on its own machine.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        }
        command = [str(BIN / "airflow"), "celery", "worker", "--celery-hostname", f"{name}@%h"]
        self._popen(name, command, env)

    def wait_for_workers(self, count: int, timeout: float) -> None:
        """Until ``count`` Celery workers answer a ping, so that work is shared from the first task."""
        deadline = time.monotonic() + timeout
        probe = (
            "from airflow.providers.celery.executors.celery_executor_utils import app; "
            "print(len(app.control.ping(timeout=2.0)))"
        )
        while time.monotonic() < deadline:
            answered = subprocess.run(
                [str(BIN / "python"), "-c", probe], env=self.env, capture_output=True, text=True, timeout=120
            )
            lines = answered.stdout.strip().splitlines()
            if answered.returncode == 0 and lines and int(lines[-1]) >= count:
                return
            time.sleep(2)
        raise TimeoutError(f"{count} Celery workers did not answer within {timeout} s; see {self.logs}")

    # -- runs ------------------------------------------------------------------------------------

    def query(self, sql: str, *params: Any) -> list[tuple]:
        import psycopg2

        with (
            contextlib.closing(
                psycopg2.connect(host="127.0.0.1", port=self.pg_port, user="passion", dbname="airflow")
            ) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, params)
            return cursor.fetchall()

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        run_id = f"scale__{uuid.uuid4().hex[:12]}"
        triggered = self.airflow("dags", "trigger", dag_id, "--run-id", run_id, "--conf", json.dumps(conf))
        if triggered.returncode:
            raise RuntimeError(f"airflow dags trigger failed:\n{triggered.stdout[-3000:]}")
        return run_id

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        """The run's final state (success or failed), or its state at the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            [(state,)] = self.query(
                "select state from dag_run where dag_id = %s and run_id = %s", dag_id, run_id
            )
            if state in ("success", "failed") or time.monotonic() > deadline:
                return state
            time.sleep(1)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        keys = (
            "task_id",
            "map_index",
            "rendered_map_index",
            "state",
            "hostname",
            "try_number",
            "start_date",
            "end_date",
        )
        rows = self.query(
            f"select {', '.join(keys)} from task_instance where dag_id = %s and run_id = %s "
            "order by task_id, map_index",
            dag_id,
            run_id,
        )
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def returned(self, dag_id: str, run_id: str, task_id: str) -> dict[int, Any]:
        """What each (mapped) instance of ``task_id`` returned, by map index."""
        rows = self.query(
            "select map_index, value from xcom where dag_id = %s and run_id = %s and task_id = %s "
            "and key = 'return_value'",
            dag_id,
            run_id,
            task_id,
        )
        return dict(rows)


# -- a fleet of series ---------------------------------------------------------------------------


def fleet_names(count: int) -> list[str]:
    """``count`` server metrics, as a fleet of services would report them."""
    return [f"svc{number:04d}_latency_ms" for number in range(count)]


def write_fleet(lake: Lake, names: list[str], days: list[dt.date], seed: int = 0) -> None:
    """One day of per-minute features per series and day: a daily cycle with noise, a level per series."""
    rng = np.random.default_rng(seed)
    minutes = np.arange(1440)
    levels = rng.uniform(50, 500, len(names))
    for day in days:
        start = np.datetime64(day.isoformat(), "ms").astype(np.int64)
        cycle = 1 + 0.3 * np.sin(2 * np.pi * minutes / 1440)
        values = levels[:, None] * cycle[None, :] * rng.lognormal(0, 0.05, (len(names), 1440))
        table = pa.table(
            {
                "ts": pa.array(np.tile(start + minutes * 60_000, len(names)), pa.int64()).cast(schemas.TS),
                "series": pa.array(np.repeat(names, 1440)),
                "metric": pa.array(np.repeat(names, 1440)),
                "dim": pa.array([""] * (1440 * len(names))),
                "dim_value": pa.array([""] * (1440 * len(names))),
                "value": pa.array(values.ravel()),
            }
        )
        lake.write_partition("features", day, table, schema=schemas.FEATURES, key={"source": "metrics"})
        lake.write_partition(
            "features", day, schemas.FEATURES.empty_table(), schema=schemas.FEATURES, key={"source": "cdn"}
        )


def train_fleet(
    lake: Lake, names: list[str], train_days: list[dt.date], live_from: dt.date, detector: str = BASELINE
) -> None:
    """A ``detector`` model (the baseline unless told) of every series, live from ``live_from``."""
    trained = steps.train(
        lake,
        detector,
        series=names,
        train_from=train_days[0],
        train_to=train_days[-1],
        promote=True,
        effective_from=live_from,
    )
    if trained.failed:
        raise RuntimeError(trained.summary())
