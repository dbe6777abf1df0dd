"""Land a day's CDN logs and server metrics in the lake, then build its features.

Runs at 01:00 UTC for the day before (a one-day data interval, so it can be backfilled). The sources
come from the Variable ``passion_sources`` or ``PASSION_SOURCES`` (server metrics from Prometheus when
the metrics input is ``prometheus:QUERIES_FILE``, through the ``passion_prometheus`` connection); a day
with no input (or beyond Prometheus's retention) fails at once
with the path that was searched, other errors are retried with exponential backoff. Runs of the same
day take turns (``passion_airflow.day_lease``).
"""

from __future__ import annotations

import logging

from airflow.sdk import dag, task
from passion_airflow.day_lease import day_lease
from passion_airflow.defaults import daily_dag_args, daily_timetable
from passion_airflow.settings import lake, prometheus_server, run_day, source_inputs

from passion_tasks.lake.datasets import SOURCES

log = logging.getLogger(__name__)


@dag(dag_id="passion_ingest", schedule=daily_timetable(), doc_md=__doc__, **daily_dag_args())
def passion_ingest() -> None:
    @task
    def land(source: str, params=None, dag_run=None) -> str:
        from passion_tasks import steps

        day, input = run_day(params, dag_run), source_inputs()[source]
        report = steps.ingest_day(lake(), source, day, input, prometheus=prometheus_server())
        # The day landed; a non-zero exit code says some lines or files went to quarantine.
        log.log(logging.WARNING if report.exit_code else logging.INFO, "%s", report.summary())
        return report.summary()

    @task
    def features(params=None, dag_run=None) -> str:
        from passion_tasks import steps

        report = steps.build_features(lake(), run_day(params, dag_run))
        log.info("%s", report.summary())
        return report.summary()

    claim, release = day_lease()
    landed = [land.override(task_id=f"land_{source}")(source) for source in SOURCES]
    claim >> landed >> features() >> release


passion_ingest()
