"""Micro-batches every five minutes: land the CDN log files that are new, score the minutes they
complete with the day's live models, and alert on them (``passion_tasks.live``; ``passion live`` by hand).

Each run works on yesterday and today (UTC): a file of yesterday that lands after midnight is scored
when it lands, until the nightly ingest has landed that day whole. Alerts go through the incidents,
rules, channels and ledger of ``passion_score``'s alert task (an incident that grows across batches
is alerted once, and again only when it grows more severe); the nightly run stays the book of record
and gives the same scores to the same minutes. Runs never overlap (``max_active_runs=1``, and a lease
per day in the lake against a run by hand); catchup is off, as a batch works on what has landed, not
on an interval. The ``now`` Param replays a batch at another time (the days, and whether a day is over).

A run starts at the cron cadence and also when a new log file lands: the watcher of the
``passion_cdn_log_files`` asset (``passion_airflow.triggers.NewLogFilesTrigger``, run by the triggerer)
polls the source every ``PASSION_LIVE_WATCH_S`` seconds (default 30; 0: no watcher, the cron alone), so
a file's alert comes within that interval plus the scheduler's and the batch's seconds. The cron stays:
it completes the day's last minutes when no file comes, and lands a file whose triggered batch failed.
``PASSION_LIVE_CRON`` (default ``*/5 * * * *``) sets it. Both are read when the file is parsed.
"""

from __future__ import annotations

import datetime as dt
import logging
import os

from airflow.sdk import Asset, AssetOrTimeSchedule, AssetWatcher, CronTriggerTimetable, Param, dag, task
from passion_airflow.defaults import DEFAULT_ARGS, LIVE_TIMEOUT, START_DATE, TAGS
from passion_airflow.notifiers import alert_config
from passion_airflow.settings import lake, source_inputs
from passion_airflow.triggers import NewLogFilesTrigger

LIVE_CRON = os.environ.get("PASSION_LIVE_CRON", "*/5 * * * *")
WATCH_SECONDS = float(os.environ.get("PASSION_LIVE_WATCH_S", "30"))

cron = CronTriggerTimetable(LIVE_CRON, timezone="UTC")
schedule = cron
if WATCH_SECONDS > 0:
    watcher = AssetWatcher(name="new_cdn_log_files", trigger=NewLogFilesTrigger(poll_interval=WATCH_SECONDS))
    schedule = AssetOrTimeSchedule(
        timetable=cron, assets=Asset(name="passion_cdn_log_files", watchers=[watcher])
    )

log = logging.getLogger(__name__)


@dag(
    dag_id="passion_live",
    schedule=schedule,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    # The next batch does what a failed one left: no retry to hold it up.
    default_args=DEFAULT_ARGS | {"retries": 0},
    params={
        "now": Param(
            "",
            type=["null", "string"],
            title="Now",
            description="ISO time (UTC) the batch runs at; empty: when it starts.",
        )
    },
    tags=TAGS,
    doc_md=__doc__,
)
def passion_live() -> None:
    @task(execution_timeout=LIVE_TIMEOUT)
    def micro_batch(params=None) -> list[str]:
        from passion_tasks import steps
        from passion_tasks.alerting.delivery import DeliveryError

        now = dt.datetime.fromisoformat(params["now"]) if params.get("now") else None
        if now is not None and now.tzinfo is None:
            now = now.replace(tzinfo=dt.UTC)
        ran = steps.live_batches(lake(), source_inputs()["cdn"], now=now, config=alert_config())
        for batch in ran:
            log.info("%s", batch.summary())
        # The deliveries that failed are tried again by the next batch (the ledger has them as failed).
        if failed := [batch.alerts.summary() for batch in ran if batch.alerts and batch.alerts.failed]:
            raise DeliveryError("; ".join(failed))
        return [batch.summary() for batch in ran]

    micro_batch()


passion_live()
