"""Score a day with the models live that day, write its report and send its alerts.

Alerts go through ``passion_tasks.alerting`` (rules, incidents across series, dedup in the lake's
``alerts/dt=D/sent.jsonl``) to the channels of the ``passion_alerts`` (webhook), ``passion_slack`` and
``passion_smtp`` connections, and the ``PASSION_ALERT_*`` settings.

Same timetable as ``passion_ingest`` (01:00 UTC, for the day before). Runs of the same day take turns
(``passion_airflow.day_lease``); a sensor in reschedule mode waits for the day's features. Scoring fans
out, by dynamic task mapping, over batches of the series that have a live model on the day (the
``series_per_task`` Param, default ``PASSION_SCORE_SERIES_PER_TASK`` or 25):
each batch writes one file to ``scores/dt=D/`` and one to ``events/dt=D/`` whose rows replace its series'
earlier rows (``passion_tasks.lake.batches``), so a backfill (``airflow backfill create --dag-id
passion_score --from-date ... --to-date ...``) scores history with each day's own model, and re-running a
day, a batch or a series replaces exactly its rows.

``PASSION_FEATURES_TIMEOUT_S`` and ``PASSION_FEATURES_POKE_S`` (read when the file is parsed) set how
long and how often the sensor waits (default: 6 hours, every 5 minutes).
"""

from __future__ import annotations

import logging
import os

from airflow.sdk import Param, TriggerRule, dag, task
from passion_airflow.day_lease import day_lease
from passion_airflow.defaults import ALERT_TIMEOUT, POKE_TIMEOUT, daily_dag_args, daily_timetable
from passion_airflow.notifiers import alert_config
from passion_airflow.sensors import FeaturesSensor
from passion_airflow.settings import lake, run_day

FEATURES_TIMEOUT_S = float(os.environ.get("PASSION_FEATURES_TIMEOUT_S", 6 * 3600))
FEATURES_POKE_S = float(os.environ.get("PASSION_FEATURES_POKE_S", 300))
SERIES_PER_TASK = int(os.environ.get("PASSION_SCORE_SERIES_PER_TASK", 25))

log = logging.getLogger(__name__)


DAG_ARGS = daily_dag_args()
DAG_ARGS["params"]["series_per_task"] = Param(
    SERIES_PER_TASK,
    type="integer",
    minimum=1,
    title="Series per task",
    description="How many series one mapped scoring task scores: 1 for a task per series.",
)


@dag(dag_id="passion_score", schedule=daily_timetable(), doc_md=__doc__, **DAG_ARGS)
def passion_score() -> None:
    wait_for_features = FeaturesSensor(
        task_id="wait_for_features",
        mode="reschedule",
        timeout=FEATURES_TIMEOUT_S,
        poke_interval=FEATURES_POKE_S,
        # Per poke in reschedule mode; ``timeout`` above bounds the whole wait.
        execution_timeout=POKE_TIMEOUT,
    )

    @task
    def series_to_score(params=None, dag_run=None) -> list[list[str]]:
        from passion_tasks import steps

        day = run_day(params, dag_run)
        batches = steps.score_batches(lake(), day, params["series_per_task"])
        log.info("%s: %d series to score in %d tasks", day, sum(map(len, batches)), len(batches))
        return batches

    # The map index names the batch in the UI: its first series, and how many follow.
    @task(
        multiple_outputs=False,
        map_index_template="{{ task.op_kwargs['series'][0] }} +{{ task.op_kwargs['series'] | length - 1 }}",
    )
    def score(series: list[str], params=None, dag_run=None) -> dict[str, int | list[str]]:
        from passion_tasks import steps

        summary = steps.score_day(lake(), run_day(params, dag_run), series=series)
        log.info("%s", summary.summary())
        # The batch's other series are written; the task fails so that the skipped ones are seen.
        summary.raise_for_failures()
        return {"series": series, "anomalous_minutes": summary.anomalous_minutes, "events": summary.events}

    # The report and the alert cover the series that were scored even if others failed.
    @task(trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS)
    def report(params=None, dag_run=None) -> str:
        from passion_tasks import steps

        return steps.report_day(lake(), run_day(params, dag_run))

    # ALL_DONE: a day whose features never came or whose scoring failed is itself an alert (no data).
    @task(trigger_rule=TriggerRule.ALL_DONE, execution_timeout=ALERT_TIMEOUT)
    def alert(params=None, dag_run=None) -> int:
        from passion_tasks import steps

        run = steps.alert_day(lake(), run_day(params, dag_run), config=alert_config())
        log.info("%s", run.summary())
        # A retry re-sends only the failed deliveries (the lake's sent.jsonl dedups the others). This is
        # the DAG's last task: it fails when nothing was scored, or the run would pass.
        run.raise_for_failures()
        return len(run.sent)

    claim, release = day_lease()
    series = series_to_score()
    claim >> wait_for_features >> series
    scored = score.expand(series=series)
    report_uri = report()
    scored >> report_uri >> alert() >> release


passion_score()
