"""A real Prometheus on 127.0.0.1 over a week of known samples, for ``tests/test_prometheus.py`` and the
ingest DAG's backfill test.

The week is written as OpenMetrics, turned into TSDB blocks by ``promtool tsdb create-blocks-from
openmetrics`` and served by Debian's ``prometheus`` (``make test`` installs the package where it is
missing) behind basic auth (``--web.config.file``, a bcrypt hash). Every sample is at a whole minute:

- ``cpu_usage{instance="web-1"|"web-2", job="node"}``: ``(minute of the hour) / 4`` (0 to 14.75, exact
  in binary), but web-1 reads ``ANOMALY_VALUE`` from 14:00 to 14:19 of the last day (the planted
  anomaly) and web-2 has no sample from 10:00 to 10:59 of ``GAP_DAY`` (the gap);
- ``http_requests_total{instance="web-1"}``: a counter 60 higher every minute (one request a second),
  reset at 12:00 of ``GAP_DAY`` (it reads 60 there, having counted from 0);
- ``queue_depth{instance="web-1"}``: the minute of the day, but ``NaN`` at 03:00 and ``+Inf`` at 03:01
  of the last day.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import httpx
from cluster import free_port

FIRST_DAY = dt.date(2026, 11, 2)
DAYS = [FIRST_DAY + dt.timedelta(days=offset) for offset in range(7)]
LAST_DAY, GAP_DAY = DAYS[-1], DAYS[-2]
ANOMALY = (dt.time(14, 0), dt.time(14, 20))
ANOMALY_VALUE = 50.0
GAP = (dt.time(10, 0), dt.time(11, 0))
RESET = dt.time(12, 0)
USER, PASSWORD = "passion", "scrape-secret-7"


@dataclass(frozen=True)
class PrometheusServer:
    url: str
    user: str
    password: str


def cpu_usage(instance: str, at: dt.datetime) -> float | None:
    """The planted value of ``cpu_usage{instance}`` at ``at``; None in the gap."""
    if instance == "web-2" and at.date() == GAP_DAY and GAP[0] <= at.time() < GAP[1]:
        return None
    if instance == "web-1" and at.date() == LAST_DAY and ANOMALY[0] <= at.time() < ANOMALY[1]:
        return ANOMALY_VALUE
    return at.minute / 4


def openmetrics() -> str:
    start = dt.datetime.combine(FIRST_DAY, dt.time(), dt.UTC)
    minutes = [start + dt.timedelta(minutes=offset) for offset in range(len(DAYS) * 1440)]
    lines = ["# TYPE cpu_usage gauge"]
    for instance in ("web-1", "web-2"):
        for at in minutes:
            if (value := cpu_usage(instance, at)) is not None:
                lines.append(f'cpu_usage{{instance="{instance}",job="node"}} {value} {int(at.timestamp())}')
    lines.append("# TYPE http_requests counter")
    count = 0
    for at in minutes:
        count = 60 if (at.date(), at.time()) == (GAP_DAY, RESET) else count + 60
        lines.append(f'http_requests_total{{instance="web-1"}} {count} {int(at.timestamp())}')
    lines.append("# TYPE queue_depth gauge")
    for at in minutes:
        special = {dt.time(3, 0): "NaN", dt.time(3, 1): "+Inf"} if at.date() == LAST_DAY else {}
        value = special.get(at.time(), str(at.hour * 60 + at.minute))
        lines.append(f'queue_depth{{instance="web-1"}} {value} {int(at.timestamp())}')
    return "\n".join([*lines, "# EOF", ""])


def binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is missing: install Debian's prometheus package (make test does)")
    return found


@contextlib.contextmanager
def prometheus(folder: Path) -> Iterator[PrometheusServer]:
    """The server over the week's blocks in ``folder``; stopped at the end."""
    (folder / "week.om").write_text(openmetrics())
    subprocess.run(
        [
            binary("promtool"),
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            str(folder / "week.om"),
            str(folder / "tsdb"),
        ],
        check=True,
        capture_output=True,
    )
    (folder / "prometheus.yml").write_text("global:\n  scrape_interval: 1m\n")
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    (folder / "web.yml").write_text(f"basic_auth_users:\n  {USER}: '{hashed}'\n")
    port = free_port()
    with (folder / "prometheus.log").open("w") as log:
        server = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={folder / 'prometheus.yml'}",
                f"--web.config.file={folder / 'web.yml'}",
                f"--storage.tsdb.path={folder / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/-/ready", auth=(USER, PASSWORD), timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"prometheus did not start: {(folder / 'prometheus.log').read_text()[-2000:]}"
                )
            time.sleep(0.2)
        yield PrometheusServer(url, USER, PASSWORD)
    finally:
        server.terminate()
        server.wait(timeout=30)
