"""The Passion plugin: its FastAPI app over a temporary lake (TestClient, no Airflow), then Airflow loading
the plugin and its API server serving the app with Airflow's users and DAG runs.

Airflow runs in subprocesses with a temporary AIRFLOW_HOME, as in ``test_airflow_dags``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cluster import free_port
from fastapi import FastAPI, HTTPException, Request
from fastapi.testclient import TestClient

from passion_tasks.lake import Lake

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Airflow puts the plugins folder on sys.path; the app is imported from it as the plugin imports it.
sys.path.insert(0, str(ROOT / "plugins"))

from passion_airflow.reports_app import create_app  # noqa: E402

OLDER, NEWER = dt.date(2026, 11, 18), dt.date(2026, 11, 19)
# Not ASCII, with a data-URI image: served byte for byte.
REPORT_BYTES = {
    day: f"<title>{day}</title><p>Réseau: 3 events</p><img src='data:image/png;base64,iVB'>".encode()
    for day in (OLDER, NEWER)
}
LEADERBOARD_BYTES = (
    b"<!doctype html><title>kpi leaderboard</title><table><tr><td>rolling_mad</td></tr></table>"
)
SECRET = b"a file beside the lake that no URL may reach"
SCHEDULED_RUN = "scheduled__2026-11-19T01:00:00+00:00"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'"
)


@pytest.fixture
def reports_lake(tmp_path: Path) -> Lake:
    """Two days of reports (the newer one written first) and the kpi leaderboard, with a secret beside."""
    lake = Lake((tmp_path / "lake").as_uri())
    for day in (NEWER, OLDER):
        lake.write_bytes(f"reports/dt={day}/index.html", REPORT_BYTES[day])
    lake.write_bytes("leaderboards/kpi/leaderboard.html", LEADERBOARD_BYTES)
    lake.write_bytes("leaderboards/kpi/leaderboard.json", b'{"corpus": "kpi"}')
    (tmp_path / "secret.html").write_bytes(SECRET)
    return lake


class Gate:
    """An authorizer that records the DAGs it is asked about and lets everyone in, or no one."""

    def __init__(self, allowed: bool = True) -> None:
        self.allowed = allowed
        self.asked: list[str] = []

    async def __call__(self, request: Request, dag_id: str) -> None:
        self.asked.append(dag_id)
        if not self.allowed:
            raise HTTPException(403, f"may not read the runs of {dag_id}")


def run_days(dag_id: str, run_id: str) -> dt.date | None:
    return {("passion_score", SCHEDULED_RUN): NEWER, ("passion_ingest", "manual_1"): OLDER}.get(
        (dag_id, run_id)
    )


def mounted(open_lake: Callable[[], Lake], gate: Gate) -> TestClient:
    """The app under ``/passion`` of a parent app, as the API server mounts it."""
    parent = FastAPI()
    parent.mount("/passion", create_app(open_lake=open_lake, authorize=gate, day_of_run=run_days))
    return TestClient(parent)


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def client(reports_lake: Lake, gate: Gate) -> TestClient:
    return mounted(lambda: reports_lake, gate)


def links(page: str) -> list[str]:
    return re.findall(r'href="([^"]+)"', page)


def test_index_lists_the_days_newest_first_and_the_leaderboards(
    client: TestClient, gate: Gate, reports_lake: Lake
) -> None:
    response = client.get("/passion/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert links(response.text) == ["reports/2026-11-19", "reports/2026-11-18", "leaderboards/kpi"]
    assert f"Lake: {reports_lake.uri()}" in response.text
    assert gate.asked == ["passion_score"]
    # The links are relative to the mount: each leads to its page.
    pages = {link: client.get(f"/passion/{link}").content for link in links(response.text)}
    assert pages == {
        "reports/2026-11-19": REPORT_BYTES[NEWER],
        "reports/2026-11-18": REPORT_BYTES[OLDER],
        "leaderboards/kpi": LEADERBOARD_BYTES,
    }


def test_index_of_an_empty_lake_says_where_reports_come_from(tmp_path: Path, gate: Gate) -> None:
    response = mounted(lambda: Lake((tmp_path / "empty").as_uri()), gate).get("/passion/")
    assert response.status_code == 200
    assert links(response.text) == []
    assert "No report yet: each <code>passion_score</code> run writes the report of its day." in response.text
    assert "No leaderboard yet" in response.text


def test_bad_lake_settings_are_shown_as_passion_states_them(gate: Gate) -> None:
    client = mounted(lambda: Lake("ftp://files.example.com/lake"), gate)
    response = client.get("/passion/reports/2026-11-18")
    assert response.status_code == 500
    assert "<h1>Passion cannot read the lake</h1>" in response.text
    expected = "unsupported lake URL 'ftp://files.example.com/lake': use file:///path or s3://bucket/prefix"
    assert expected in html.unescape(response.text)


def test_a_report_is_served_as_it_is_in_the_lake_with_no_script_allowed(client: TestClient) -> None:
    response = client.get("/passion/reports/2026-11-18")
    assert response.status_code == 200
    assert response.content == REPORT_BYTES[OLDER]
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_day_without_a_report_is_a_404_naming_where_it_was_looked_for(
    client: TestClient, reports_lake: Lake
) -> None:
    response = client.get("/passion/reports/2026-11-17")
    assert response.status_code == 404
    expected = (
        f"No report for 2026-11-17: {reports_lake.uri('reports/dt=2026-11-17/index.html')} does not exist."
    )
    assert expected in html.unescape(response.text)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        # Percent-encoded slashes are decoded before routing: a day is one path segment. (A client
        # resolves plain dot segments itself: /passion/reports/.. asks for /passion/.)
        ("/passion/reports/..%2F..%2Fsecret.html", 404),
        ("/passion/reports/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd", 404),
        ("/passion/reports/2026-11-18%2F..%2F..%2F..%2Fsecret.html", 404),
        ("/passion/reports/%2e%2e", 422),
        ("/passion/reports/2026-11-18.html", 422),
        ("/passion/reports/2026-02-30", 422),
        ("/passion/reports/20261118", 422),
        ("/passion/leaderboards/..%2F..%2Fsecret.html", 404),
        ("/passion/leaderboards/.kpi", 422),
    ],
)
def test_no_url_reaches_outside_the_lake_or_a_day_that_is_not_a_date(
    client: TestClient, path: str, status: int
) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert SECRET not in response.content
    assert b"root:" not in response.content


def test_a_leaderboard_is_served_and_a_missing_one_is_a_404(
    client: TestClient, gate: Gate, reports_lake: Lake
) -> None:
    served = client.get("/passion/leaderboards/kpi")
    assert (served.status_code, served.content) == (200, LEADERBOARD_BYTES)
    missing = client.get("/passion/leaderboards/nab")
    assert missing.status_code == 404
    uri = reports_lake.uri("leaderboards/nab/leaderboard.html")
    assert f"No leaderboard for nab: {uri} does not exist." in html.unescape(missing.text)
    assert gate.asked == ["passion_benchmark", "passion_benchmark"]


def test_a_daily_run_leads_to_the_report_of_its_day(client: TestClient, gate: Gate) -> None:
    # The UI puts the run id in the URL percent-encoded.
    url = "/passion/runs/passion_score/scheduled__2026-11-19T01%3A00%3A00%2B00%3A00"
    redirect = client.get(url, follow_redirects=False)
    assert (redirect.status_code, redirect.headers["location"]) == (303, "../../reports/2026-11-19")
    followed = client.get(url)
    assert (followed.status_code, followed.content) == (200, REPORT_BYTES[NEWER])
    assert str(followed.url) == "http://testserver/passion/reports/2026-11-19"
    assert client.get("/passion/runs/passion_ingest/manual_1").content == REPORT_BYTES[OLDER]
    # The run's own DAG, then the report's (passion_score's).
    assert gate.asked == ["passion_score"] * 3 + ["passion_ingest", "passion_score"]


def test_runs_that_have_no_report_say_why(client: TestClient, gate: Gate) -> None:
    unknown = client.get("/passion/runs/passion_score/manual__nope")
    assert unknown.status_code == 404
    assert "passion_score has no run 'manual__nope'." in html.unescape(unknown.text)
    other = client.get("/passion/runs/passion_train/scheduled__2026-11-16T03:00:00+00:00")
    assert other.status_code == 404
    assert "Runs of passion_train have no daily report; passion_score runs write them." in html.unescape(
        other.text
    )
    assert gate.asked == ["passion_score", "passion_train"]


@pytest.mark.parametrize(
    ("path", "dag_id"),
    [
        ("/passion/", "passion_score"),
        ("/passion/reports/2026-11-18", "passion_score"),
        ("/passion/leaderboards/kpi", "passion_benchmark"),
        ("/passion/runs/passion_ingest/manual_1", "passion_ingest"),
    ],
)
def test_a_user_who_may_not_read_the_runs_gets_403_and_the_lake_is_not_opened(path: str, dag_id: str) -> None:
    def open_lake() -> Lake:
        raise AssertionError("the lake was opened")

    response = mounted(open_lake, Gate(allowed=False)).get(path)
    assert (response.status_code, response.json()) == (403, {"detail": f"may not read the runs of {dag_id}"})


def test_the_app_is_built_without_importing_airflow_or_the_lake() -> None:
    script = """
import sys
sys.path.insert(0, "plugins")
from passion_airflow.reports_app import create_app
create_app(open_lake=None, authorize=None, day_of_run=None)
print(sorted(name for name in sys.modules if name.split(".")[0] in ("airflow", "pyarrow", "pandas")))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]"


# -- in Airflow --------------------------------------------------------------------------------------


def airflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "airflow"), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Airflow's environment: its own home and SQLite database, the project's plugins, and only the
    score DAG (the run tab needs its runs; parsing the others would only cost time)."""
    home = tmp_path_factory.mktemp("airflow_home")
    (home / "dags").mkdir()
    (home / "dags" / "passion_score.py").symlink_to(ROOT / "dags" / "passion_score.py")
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AIRFLOW", "AWS_", "PASSION_")) or name == "PASSION_REFERENCE_DATA"
    }
    env |= {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    return env


def test_airflow_loads_the_plugin_with_its_app_and_links(airflow_env: dict[str, str]) -> None:
    result = airflow(airflow_env, "plugins", "--output", "json")
    assert result.returncode == 0, result.stderr[-3000:]
    [plugin] = json.loads(result.stdout)  # the passion_airflow package is not loaded as plugins
    assert (plugin["name"], plugin["source"]) == (
        "passion_reports",
        "$PLUGINS_FOLDER/passion_reports_plugin.py",
    )
    assert plugin["fastapi_apps"] == [
        {"app": "fastapi.applications.FastAPI", "url_prefix": "/passion", "name": "Passion reports"}
    ]
    assert [(view["destination"], view["href"]) for view in plugin["external_views"]] == [
        ("nav", "passion/"),
        ("dag_run", "passion/runs/{DAG_ID}/{RUN_ID}"),
    ]


@contextlib.contextmanager
def api_server(env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    """``airflow api-server`` on ``port`` until the block ends; yields its URL."""
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(BIN / "airflow"), "api-server", "--workers", "1"],
            env=env | {"AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": str(port)},
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the API server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.slow
def test_the_api_server_serves_reports_to_airflow_users_and_from_score_runs(
    airflow_env: dict[str, str], reports_lake: Lake, tmp_path: Path
) -> None:
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"admin": "admin-password"}))
    env = airflow_env | {
        "PASSION_LAKE": reports_lake.url,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
    }
    for command in (("db", "migrate"), ("dags", "reserialize")):
        result = airflow(env, *command)
        assert result.returncode == 0, result.stderr[-3000:]
    with api_server(env, free_port(), tmp_path / "api-server.log") as url, httpx.Client(base_url=url) as http:
        login = http.post("/auth/token", json={"username": "admin", "password": "admin-password"})
        token = login.json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}

        anonymous = http.get("/passion/")
        assert (anonymous.status_code, anonymous.json()) == (401, {"detail": "Not authenticated"})
        index = http.get("/passion/", headers=bearer)
        assert index.status_code == 200
        assert links(index.text) == ["reports/2026-11-19", "reports/2026-11-18", "leaderboards/kpi"]
        # The UI's session cookie is enough, as in the iframe of the run tab.
        by_cookie = http.get("/passion/reports/2026-11-18", headers={"Cookie": f"_token={token}"})
        assert (by_cookie.status_code, by_cookie.content) == (200, REPORT_BYTES[OLDER])

        # A run for a chosen day, and one that takes its day from its data interval (the day before
        # its logical date), as the tasks decide.
        runs = [
            {"dag_run_id": "by_param", "logical_date": None, "conf": {"day": str(OLDER)}},
            {"dag_run_id": "by_interval", "logical_date": "2026-11-20T01:00:00Z"},
        ]
        for body in runs:
            created = http.post("/api/v2/dags/passion_score/dagRuns", json=body, headers=bearer)
            assert created.status_code == 200, created.text
        for run_id, day in (("by_param", OLDER), ("by_interval", NEWER)):
            tab = http.get(f"/passion/runs/passion_score/{run_id}", headers=bearer, follow_redirects=True)
            assert (str(tab.url), tab.content) == (f"{url}/passion/reports/{day}", REPORT_BYTES[day])

        # What the UI reads to draw the nav entry and the run tab.
        plugins = http.get("/api/v2/plugins", headers=bearer).json()["plugins"]
        [views] = [plugin["external_views"] for plugin in plugins if plugin["name"] == "passion_reports"]
        assert [(view["url_route"], view["destination"]) for view in views] == [
            ("passion", "nav"),
            ("passion-report", "dag_run"),
        ]
