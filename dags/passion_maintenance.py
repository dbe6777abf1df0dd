"""Weekly housekeeping of the lake: remove what killed or superseded writes left behind.

Sundays at 04:00 UTC, and by hand. ``passion lake vacuum`` does the same from the command line: files
no manifest names are removed once they and the commit that superseded them are older than the grace
period (24 hours: a reader or writer that still needs one ends long before, see ``passion_tasks.lake``).
"""

from __future__ import annotations

import logging

from airflow.sdk import CronTriggerTimetable, dag, task
from passion_airflow.defaults import DEFAULT_ARGS, START_DATE, TAGS
from passion_airflow.settings import lake

log = logging.getLogger(__name__)


@dag(
    dag_id="passion_maintenance",
    schedule=CronTriggerTimetable("0 4 * * 0", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=TAGS,
    doc_md=__doc__,
)
def passion_maintenance() -> None:
    @task
    def vacuum() -> int:
        from passion_tasks import steps

        report = steps.vacuum(lake())
        log.info("%s", report.summary())
        return len(report.removed)

    vacuum()


passion_maintenance()
