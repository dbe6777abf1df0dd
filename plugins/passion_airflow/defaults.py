"""What every Passion DAG shares: start date, timetable, the ``day`` Param, retries, time limits and
failure alerts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import CronDataIntervalTimetable, ExceptionRetryPolicy, Param, RetryAction, RetryRule

from passion_airflow.notifiers import PassionWebhookNotifier

#: Early enough to backfill any history a lake holds; with catchup off, a new DAG runs only its latest day.
START_DATE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
TAGS = ["passion"]

#: Errors with a message for the operator (no input for the day, bad settings, a missing partition)
#: fail at once: retrying cannot fix them. Anything else (a network error, a lost worker) is retried.
RETRY_POLICY = ExceptionRetryPolicy(
    rules=[
        RetryRule(
            exception="passion_tasks.errors.PassionError",
            action=RetryAction.FAIL,
            reason="Passion reported a problem that a retry cannot fix; see the error above",
        )
    ]
)

# Time limits of one try of a task (``execution_timeout``): a task hung on a dead connection or a stuck
# read fails, is retried and alerts, instead of holding its worker slot for ever. dags/README.md lists
# them. The lake must keep the files a commit supersedes for longer than the longest (8 hours).

#: Any task without a limit of its own: a day's ingest, its features, a batch of scoring, the report.
#: They take minutes; two hours leave room for a large day and for the retries to end the same day.
TASK_TIMEOUT = dt.timedelta(hours=2)
#: The alert task: each delivery has its own deadline (``PASSION_ALERT_TIMEOUT_S``, 10 s by default),
#: so 15 minutes hold reading the day and some 90 deliveries to receivers that never answer.
ALERT_TIMEOUT = dt.timedelta(minutes=15)
#: One micro-batch of ``passion_live``: new files, the minutes they complete, the alerts. Past it, the
#: next run (every 5 minutes, never two at once) picks up what this one left.
LIVE_TIMEOUT = dt.timedelta(minutes=15)
#: One poke of the features sensor (a listing of the lake). In reschedule mode ``execution_timeout``
#: bounds each poke, not the wait: the sensor's own ``timeout`` (6 hours by default) still ends that.
POKE_TIMEOUT = dt.timedelta(minutes=10)
#: Training one series: each detector asked for, the Keras networks included, or with ``select_best``
#: each candidate on the holdout and the winner again on the whole range.
TRAIN_TIMEOUT = dt.timedelta(hours=4)
#: A benchmark of a whole corpus with the ``full`` profile (the Keras networks on every series); the
#: longest limit of all.
BENCHMARK_TIMEOUT = dt.timedelta(hours=8)

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "passion",
    "execution_timeout": TASK_TIMEOUT,
    "retries": 3,
    "retry_delay": dt.timedelta(minutes=2),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": dt.timedelta(minutes=30),
    "retry_policy": RETRY_POLICY,
    # Per task, in the worker, so the alert carries the error; a retried task alerts once, when it fails.
    "on_failure_callback": [PassionWebhookNotifier()],
}


def daily_timetable() -> CronDataIntervalTimetable:
    """Runs at 01:00 UTC for the day before: the data interval is one whole day, so runs can be backfilled."""
    return CronDataIntervalTimetable("0 1 * * *", timezone="UTC")


def day_param() -> Param:
    return Param(
        "",
        type=["null", "string"],
        pattern=r"^(\d{4}-\d{2}-\d{2})?$",
        title="Day",
        description=(
            "YYYY-MM-DD. Empty: the day of the run's data interval (the day before a scheduled run), "
            "or yesterday (UTC) for a run without one."
        ),
    )


def daily_dag_args() -> dict[str, Any]:
    """The ``@dag`` arguments the daily DAGs (ingest, score) share besides their ``daily_timetable()``:
    the same start, ``day`` Param and retries, so a backfill of one lines up day for day with the other."""
    return {
        "start_date": START_DATE,
        "catchup": False,
        "max_active_runs": 4,
        "default_args": DEFAULT_ARGS,
        "params": {"day": day_param()},
        "tags": TAGS,
    }
