"""From a CDN log file landing in the sources to its alert, through Airflow: the ``passion_live`` DAG
started by its watcher on the real scheduler and triggerer, against the batch's own seconds measured in
the same run.

    python bench/alert_latency.py [--rate 300] [--watch 30] [--minutes 5] [--after 3]

``passion generate`` writes five days ending today (UTC: the watcher works on the wall clock's days) at
``--rate`` requests a minute with an outage on the last day; the nightly models (``passion train``) learn
the first four. Today's hour files are cut into files of ``--minutes`` minutes, as CloudFront delivers
them (``bench/live.py``'s ``cut``); those before the outage's are delivered at once and landed by one
batch, then each cut in turn, up to ``--after`` cuts past the outage, each once the batch of the one
before has finished. Airflow runs on SQLite with its LocalExecutor (``tests/cluster.py``), the watcher
polls every ``--watch`` seconds (``PASSION_LIVE_WATCH_S``) and the alerts go to a webhook in this
process. Printed per delivery: the seconds until the batch that landed it had finished, and that
batch's own seconds (Airflow's task duration: the baseline); then the seconds from the delivery of
the file that completed the outage's first minutes to its alert reaching the webhook.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from cluster import BIN, ROOT, Webhook, airflow_env, airflow_services, free_port, services_env
from live import DAYS, cut, trained_lake

from passion_tasks.live import read_state
from passion_tasks.synthetic import INJECTED

#: An alert whose incident starts this close to the outage's labelled start is the outage's.
NEAR = dt.timedelta(minutes=10)


def finished_runs(database: Path) -> list[tuple[float, float]]:
    """Each finished ``passion_live`` run's end (epoch seconds) and its task's seconds."""
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as db:
        rows = db.execute(
            "SELECT dag_run.end_date, task_instance.duration FROM dag_run JOIN task_instance"
            " ON task_instance.dag_id = dag_run.dag_id AND task_instance.run_id = dag_run.run_id"
            " WHERE dag_run.dag_id = 'passion_live' AND dag_run.state IN ('success', 'failed')"
            " ORDER BY dag_run.end_date"
        ).fetchall()
    return [(_epoch(end), duration) for end, duration in rows]


def _epoch(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp).replace(tzinfo=dt.UTC).timestamp()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--watch", type=float, default=30.0, help="seconds between the watcher's polls")
    parser.add_argument("--minutes", type=int, default=5, help="minutes of logs in a delivered file")
    parser.add_argument("--after", type=int, default=3, help="files delivered after the outage's")
    args = parser.parse_args()
    today = dt.datetime.now(dt.UTC).date()
    start = today - dt.timedelta(days=DAYS - 1)
    with tempfile.TemporaryDirectory(prefix="passion-bench-latency-") as tmp:
        root = Path(tmp)
        sources, staged, delivered = root / "sources", root / "staged", root / "delivered" / "cdn"
        lake = trained_lake(root, sources, start, args.rate)
        labels = json.loads((sources / INJECTED).read_text())["anomalies"]
        outage = next(label for label in labels if label["kind"] == "outage" and label["start"] >= str(today))
        outage_start = dt.datetime.fromisoformat(outage["start"]).replace(tzinfo=dt.UTC)
        hours = sorted(sources.glob(f"cdn/*/*/*{today}-*.gz"), key=lambda path: path.name.split(".")[1])
        cuts = [piece for hour in hours for piece in cut(hour, args.minutes, staged)]

        def slot(piece: Path) -> dt.datetime:
            hour, minute = int(piece.name.split(".")[1][-2:]), int(piece.name.split(".")[2][1:])
            return dt.datetime.combine(today, dt.time(hour, minute), dt.UTC)

        first = outage_start.replace(minute=outage_start.minute - outage_start.minute % args.minutes)
        slots = sorted({slot(piece) for piece in cuts if slot(piece) >= first})[: args.after + 1]
        deliveries = [[piece for piece in cuts if slot(piece) < first]]
        deliveries += [[piece for piece in cuts if slot(piece) == at] for at in slots]

        home, dags, webhook = root / "airflow", root / "dags", Webhook()
        dags.mkdir()
        (dags / "passion_live.py").symlink_to(ROOT / "dags" / "passion_live.py")
        api_port = free_port()
        env = services_env(airflow_env(home), api_port) | {
            "PASSION_LAKE": lake.url,
            "PASSION_SOURCES": json.dumps({"cdn": str(delivered), "metrics": str(sources / "metrics")}),
            "PASSION_LIVE_WATCH_S": str(args.watch),
            # The watcher alone starts batches: the cron's one run (the last past January 1st) is at once.
            "PASSION_LIVE_CRON": "0 0 1 1 *",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW_CONN_PASSION_ALERTS": webhook.connection,
        }
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True)
        database = home / "airflow.db"
        with airflow_services(env, api_port, root, "triggerer"):
            deadline = time.monotonic() + 300
            while not finished_runs(database) and time.monotonic() < deadline:
                time.sleep(1)
            latencies, batches, alert_after = [], [], None
            for number, pieces in enumerate(deliveries):
                names = set()
                for piece in pieces:
                    target = delivered / piece.parent.name / piece.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    piece.replace(target)
                    names.add(str(target))
                delivered_at, runs_before = time.time(), len(finished_runs(database))
                deadline = time.monotonic() + 600
                while time.monotonic() < deadline:
                    runs = finished_runs(database)
                    if names <= set(read_state(lake, today).landed) and len(runs) > runs_before:
                        break
                    time.sleep(0.2)
                else:
                    print(f"delivery {number}: not landed within 600 s; see {root}/*.log")
                    return 1
                end, seconds = runs[-1]
                label = "catch-up" if number == 0 else f"{slots[number - 1]:%H:%M}"
                print(
                    f"{label}: {len(pieces)} files landed, scored and alerted on {end - delivered_at:.1f} s "
                    f"after delivery (the batch itself: {seconds:.1f} s)"
                )
                if number:
                    latencies.append(end - delivered_at)
                    batches.append(seconds)
                arrived = [
                    at
                    for at, alert in zip(webhook.arrived_at, webhook.payloads(), strict=True)
                    if at >= delivered_at and "start" in alert and "update_of" not in alert
                    if abs(dt.datetime.fromisoformat(alert["start"]) - outage_start) <= NEAR
                ]
                if arrived and alert_after is None:
                    alert_after = (label, min(arrived) - delivered_at)
        webhook.server.shutdown()
        print(
            f"files after the catch-up: median {statistics.median(latencies):.1f} s, "
            f"max {max(latencies):.1f} s from delivery to its batch's end; the batches themselves median "
            f"{statistics.median(batches):.1f} s (watcher polling every {args.watch:g} s)"
        )
        if alert_after is None:
            print(f"outage at {outage_start:%H:%M}: no alert reached the webhook")
            return 1
        label, seconds = alert_after
        print(f"outage at {outage_start:%H:%M}: alert at the webhook {seconds:.1f} s after the {label} file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
