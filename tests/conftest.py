"""Shared fixtures: a temporary local lake, the reference data, a real S3-protocol server, and a local
webhook that records the alerts posted to it."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cluster import free_port
from prometheus_server import PrometheusServer, prometheus

from passion_tasks import config
from passion_tasks.lake import Lake, S3Options

REFERENCE = config.reference_data()


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake((tmp_path / "lake").as_uri())


@pytest.fixture(scope="session")
def reference_data() -> Path:
    if not REFERENCE.is_dir():
        pytest.fail(f"reference data not found at {REFERENCE}; set PASSION_REFERENCE_DATA")
    return REFERENCE


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (``s3_server``: its conditional writes atomic, as S3's are), spoken
    to over HTTP like any S3 endpoint."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("s3_server.py")), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail("moto S3 server did not start")
            time.sleep(0.1)
    yield endpoint
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Options:
    """Credentials and endpoint in the environment, as an operator would set them."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("PASSION_S3_ENDPOINT_URL", s3_endpoint)
    return S3Options.from_env()


@pytest.fixture
def s3_bucket(s3_env: S3Options) -> str:
    """A fresh bucket on the test server; returns its name."""
    import boto3

    name = f"passion-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_env.endpoint_url, region_name="us-east-1").create_bucket(Bucket=name)
    return name


class AlertHook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.server.payloads.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def alert_hook() -> Iterator[ThreadingHTTPServer]:
    """A webhook on 127.0.0.1 for a module's alerts: each posted JSON body lands in ``payloads``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), AlertHook)
    server.payloads = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def prometheus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """A real Prometheus on 127.0.0.1 over a week of known samples (``prometheus_server.py``)."""
    with prometheus(tmp_path_factory.mktemp("prometheus")) as server:
        yield server
