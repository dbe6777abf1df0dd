"""Score a day with the models live that day, write its report and alert on its events.

Same timetable as ``passion_ingest`` (01:00 UTC, for the day before); a sensor in reschedule mode waits
for the day's features. Scoring fans out per series over the series that have a live model on the day,
each writing its own ``scores/dt=D/series=S/`` and ``events/dt=D/series=S/`` leaves, so a backfill
(``airflow backfill create --dag-id passion_score --from-date ... --to-date ...``) scores history with
each day's own model, and re-running a day replaces its rows.

``PASSION_FEATURES_TIMEOUT_S`` and ``PASSION_FEATURES_POKE_S`` (read when the file is parsed) set how
long and how often the sensor waits (default: 6 hours, every 5 minutes).
"""

from __future__ import annotations

import logging
import os

from airflow.sdk import TriggerRule, dag, task
from passion_airflow.defaults import DEFAULT_ARGS, START_DATE, TAGS, daily_timetable, day_param
from passion_airflow.notifiers import post_json
from passion_airflow.sensors import FeaturesSensor
from passion_airflow.settings import lake_kwargs, run_day

FEATURES_TIMEOUT_S = float(os.environ.get("PASSION_FEATURES_TIMEOUT_S", 6 * 3600))
FEATURES_POKE_S = float(os.environ.get("PASSION_FEATURES_POKE_S", 300))
#: Series named in an alert; the report has them all.
ALERT_SERIES_SHOWN = 10

log = logging.getLogger(__name__)


@dag(
    dag_id="passion_score",
    schedule=daily_timetable(),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=4,
    default_args=DEFAULT_ARGS,
    params={"day": day_param()},
    tags=TAGS,
    doc_md=__doc__,
)
def passion_score() -> None:
    wait_for_features = FeaturesSensor(
        task_id="wait_for_features",
        mode="reschedule",
        timeout=FEATURES_TIMEOUT_S,
        poke_interval=FEATURES_POKE_S,
    )

    @task
    def series_to_score(params=None, dag_run=None) -> list[str]:
        from passion_tasks import pipeline
        from passion_tasks.errors import NoInputError

        day = run_day(params, dag_run)
        series = pipeline.series_to_score(day, **lake_kwargs())
        if not series:
            raise NoInputError(f"no series with features on {day} has a live model: run passion_train first")
        log.info("%s: %d series to score", day, len(series))
        return series

    @task(multiple_outputs=False, map_index_template="{{ task.op_kwargs['series'] }}")
    def score(series: str, params=None, dag_run=None) -> dict[str, int | str]:
        from passion_tasks import pipeline

        summary = pipeline.score_day(run_day(params, dag_run), series=[series], **lake_kwargs())
        log.info("%s", summary.summary())
        return {"series": series, "anomalous_minutes": summary.anomalous_minutes, "events": summary.events}

    # The report and the alert cover the series that were scored even if others failed.
    @task(trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS)
    def report(params=None, dag_run=None) -> str:
        from passion_tasks import pipeline

        return pipeline.report_day(run_day(params, dag_run), **lake_kwargs())

    @task(trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS)
    def alert(scored: list[dict], report_uri: str, params=None, dag_run=None) -> int:
        day = run_day(params, dag_run)
        # A slice reads every mapped result in one request; iterating would probe past the last one.
        scored = scored[:]
        events = {row["series"]: row["events"] for row in scored if row["events"]}
        if not events:
            log.info("%s: no events in %d series", day, len(scored))
            return 0
        worst = sorted(events.items(), key=lambda item: -item[1])[:ALERT_SERIES_SHOWN]
        total = sum(events.values())
        log.warning(
            "%s: %d events in %d series (most: %s); report %s",
            day,
            total,
            len(events),
            ", ".join(f"{name} {count}" for name, count in worst),
            report_uri,
        )
        post_json(
            {
                "event": "anomalies",
                "day": day.isoformat(),
                "events": total,
                "series": events,
                "report": report_uri,
            }
        )
        return total

    series = series_to_score()
    wait_for_features >> series
    scored = score.expand(series=series)
    report_uri = report()
    scored >> report_uri
    alert(scored, report_uri)


passion_score()
