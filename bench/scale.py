"""Scoring throughput of the distributed path: ``passion_score`` on CeleryExecutor with 1 and 2 workers.

    python bench/scale.py [--series 10,100,1000] [--workers 1,2] [--series-per-task 25]

One cluster (PostgreSQL, Redis, moto's S3 server, Airflow api-server, scheduler, dag-processor and
Celery workers, see ``tests/cluster.py``) scores one day of a fleet of N server metrics (a lake per N,
rolling_mad models trained on the two days before) with each worker count in turn, on the same data.
Each run is a whole DAG run (sensor, batching, the mapped scoring tasks, report, alert); the table gives
its wall time, the scoring phase (first scoring task's start to the last one's end) and throughput in
series-days per minute over both. Needs ``make services`` (Debian's postgresql and redis-server).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from cluster import Cluster, fleet_names, train_fleet, write_fleet

from passion_tasks import steps
from passion_tasks.lake import Lake

DAYS = [dt.date(2026, 11, 18) + dt.timedelta(days=offset) for offset in range(3)]


def prepare(cluster: Cluster, count: int) -> Lake:
    lake = Lake(f"s3://passion/fleet-{count}", s3=cluster.s3)
    started = time.perf_counter()
    names = fleet_names(count)
    write_fleet(lake, names, DAYS)
    train_fleet(lake, names, DAYS[:2], live_from=DAYS[2])
    seconds = time.perf_counter() - started
    print(f"  fleet of {count}: features + {count} models in {seconds:.1f} s", flush=True)
    return lake


def score_run(cluster: Cluster, lake: Lake, count: int, series_per_task: int) -> dict:
    set_lake = cluster.airflow("variables", "set", "passion_lake", lake.url)
    if set_lake.returncode:
        raise RuntimeError(set_lake.stdout[-2000:])
    conf = {"day": DAYS[2].isoformat(), "series_per_task": series_per_task}
    run_id = cluster.trigger("passion_score", conf)
    state = cluster.wait_for_run("passion_score", run_id, timeout=3600)
    if state != "success":
        raise RuntimeError(f"run {run_id} ended {state}:\n{cluster.log_tails()}")
    [(start, end)] = cluster.query(
        "select start_date, end_date from dag_run where dag_id = 'passion_score' and run_id = %s", run_id
    )
    scoring = [row for row in cluster.task_instances("passion_score", run_id) if row["task_id"] == "score"]
    phase = max(row["end_date"] for row in scoring) - min(row["start_date"] for row in scoring)
    scored = steps.scored_series(lake, DAYS[2])
    if len(scored) != count:
        raise RuntimeError(f"{len(scored)} series scored, not {count}")
    return {
        "run_s": (end - start).total_seconds(),
        "scoring_s": phase.total_seconds(),
        "tasks": len(scoring),
        "per_worker": dict(sorted(Counter(row["hostname"] for row in scoring).items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--series", default="10,100,1000")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--series-per-task", type=int, default=25)
    parser.add_argument("--concurrency", type=int, default=2, help="task slots per worker")
    args = parser.parse_args()
    sizes = [int(value) for value in args.series.split(",")]
    worker_counts = sorted(int(value) for value in args.workers.split(","))

    print(f"machine: {os.cpu_count()} cores; {args.concurrency} task slots per worker", flush=True)
    rows = []
    with Cluster(workers=worker_counts[0], worker_concurrency=args.concurrency) as cluster:
        lakes = {count: prepare(cluster, count) for count in sizes}
        running = worker_counts[0]
        for workers in worker_counts:
            while running < workers:
                running += 1
                cluster.start_worker(f"passion-worker-{running}")
            cluster.wait_for_workers(workers, timeout=180)
            for count in sizes:
                result = score_run(cluster, lakes[count], count, args.series_per_task)
                rows.append({"workers": workers, "series": count, **result})
                print(f"  {workers} worker(s), {count} series: {result}", flush=True)

    print()
    print("| workers | series | tasks | DAG run s | scoring phase s | series-days/min (run) | (scoring) |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        per_minute = [60 * row["series"] / row[seconds] for seconds in ("run_s", "scoring_s")]
        print(
            f"| {row['workers']} | {row['series']} | {row['tasks']} | {row['run_s']:.1f} "
            f"| {row['scoring_s']:.1f} | {per_minute[0]:.0f} | {per_minute[1]:.0f} |"
        )


if __name__ == "__main__":
    main()
