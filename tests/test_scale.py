"""The distributed path, proven: ``passion_score`` on CeleryExecutor with two workers, PostgreSQL as the
metadata database, Redis as the broker and the lake on an S3-protocol server (``make test-scale``)."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from cluster import Cluster, fleet_names, train_fleet, write_fleet

from passion_tasks.lake import batches

pytestmark = pytest.mark.scale

DAYS = [dt.date(2026, 11, 18) + dt.timedelta(days=offset) for offset in range(3)]
SERIES = fleet_names(60)
SERIES_PER_TASK = 3


def test_score_fans_out_over_two_celery_workers_and_scores_every_series_once() -> None:
    with Cluster(workers=2, worker_concurrency=2) as cluster:
        lake = cluster.lake
        write_fleet(lake, SERIES, DAYS)
        train_fleet(lake, SERIES, DAYS[:2], live_from=DAYS[2])
        run_id = cluster.trigger(
            "passion_score", {"day": DAYS[2].isoformat(), "series_per_task": SERIES_PER_TASK}
        )
        state = cluster.wait_for_run("passion_score", run_id, timeout=600)
        instances = cluster.task_instances("passion_score", run_id)
        assert state == "success", (instances, cluster.log_tails())

        scoring = [row for row in instances if row["task_id"] == "score"]
        assert [row["map_index"] for row in scoring] == list(range(len(SERIES) // SERIES_PER_TASK))
        assert {row["state"] for row in instances} == {"success"}
        # Every task ran once: no retries hide a double scoring.
        assert {row["try_number"] for row in instances} == {1}
        # Both workers took mapped scoring tasks.
        per_worker = Counter(row["hostname"] for row in scoring)
        assert sorted(per_worker) == ["passion-worker-1", "passion-worker-2"], per_worker
        # The UI names each batch by its first series and how many follow.
        assert scoring[0]["rendered_map_index"] == f"{SERIES[0]} +2"

        # Each series was in exactly one task's batch, and the lake holds exactly its one day of scores.
        returned = cluster.returned("passion_score", run_id, "score")
        scored = [name for index in sorted(returned) for name in returned[index]["series"]]
        assert scored == SERIES
        assert batches.members(lake, "scores", DAYS[2]) == dict.fromkeys(SERIES, 1440)
        # A file per mapped task, not a leaf per series.
        [leaf] = lake.leaves("scores", DAYS[2])
        assert len(leaf.files) == len(SERIES) // SERIES_PER_TASK
        table = lake.read_partition("scores", DAYS[2], columns=["series", "model_version"])
        assert sorted(set(table["model_version"].to_pylist())) == [
            f"{name}/rolling_mad@v1" for name in SERIES
        ]
        assert lake.exists(f"reports/dt={DAYS[2]}/index.html")
