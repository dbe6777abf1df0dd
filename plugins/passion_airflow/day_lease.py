"""The day's lease around a daily DAG's tasks: runs that write the same day take turns.

``claim_day`` (a setup task: a sensor in reschedule mode, so a waiting run holds no worker slot) takes
the lease of the run's day before the first write; ``release_day`` (its teardown) gives it back after
the last task, whether that succeeded or not. A teardown does not decide the run's state, so a run
still fails when its last real task fails.

``PASSION_DAY_LEASE_TIMEOUT_S`` and ``PASSION_DAY_LEASE_POKE_S`` (read when a DAG file is parsed) set
how long and how often a run waits for another run of its day (default: 6 hours, every minute).
"""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import BaseOperator, task

from passion_airflow.defaults import POKE_TIMEOUT
from passion_airflow.sensors import DayLeaseSensor
from passion_airflow.settings import lake, run_day

LEASE_TIMEOUT_S = float(os.environ.get("PASSION_DAY_LEASE_TIMEOUT_S", 6 * 3600))
LEASE_POKE_S = float(os.environ.get("PASSION_DAY_LEASE_POKE_S", 60))


def day_lease() -> tuple[BaseOperator, Any]:
    """``(claim_day, release_day)`` of the DAG being defined: ``claim >> first``, ``last >> release``."""
    claim = DayLeaseSensor(
        task_id="claim_day",
        mode="reschedule",
        timeout=LEASE_TIMEOUT_S,
        poke_interval=LEASE_POKE_S,
        execution_timeout=POKE_TIMEOUT,
    )

    @task(task_id="release_day", execution_timeout=POKE_TIMEOUT)
    def release(params=None, dag_run=None, dag=None) -> bool:
        from passion_tasks import steps

        return steps.release_day(lake(), dag.dag_id, run_day(params, dag_run), dag_run.run_id)

    return claim, release().as_teardown(setups=claim)
