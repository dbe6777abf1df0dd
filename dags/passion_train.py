"""Train detectors per series and register the models; with ``promote`` they go live the next day.

Weekly (Monday 03:00 UTC, on the 14 days up to Sunday) and by hand from the trigger form. Training
fans out per series: a series that cannot be trained fails its own task, and the others keep their
new models.

With ``select_best`` the detectors are candidates: per series, the best of them on a holdout of the
range's last days is retrained on the whole range and registered (``evaluation.selection``). Without
it every detector is trained; promoting then needs a single detector.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from airflow.sdk import CronTriggerTimetable, Param, dag, task
from passion_airflow.defaults import DEFAULT_ARGS, START_DATE, TAGS, TRAIN_TIMEOUT
from passion_airflow.settings import day_before_run, lake_kwargs

from passion_tasks.detectors import detector_names

#: ``pipeline.BASELINE``; importing the pipeline here would load pandas and pyarrow on every parse.
DEFAULT_DETECTOR = "rolling_mad"

log = logging.getLogger(__name__)

PARAMS = {
    "series": Param(
        [],
        type="array",
        items={"type": "string"},
        title="Series",
        description="Series to train, e.g. cdn_requests. Empty: every watched series with features on "
        "the last training day.",
    ),
    "detectors": Param(
        [DEFAULT_DETECTOR],
        type="array",
        items={"type": "string", "enum": detector_names()},
        minItems=1,
        uniqueItems=True,
        examples=detector_names(),
        title="Detectors",
        description="Detectors of the zoo to train for each series.",
    ),
    "train_to": Param(
        "",
        type=["null", "string"],
        pattern=r"^(\d{4}-\d{2}-\d{2})?$",
        title="Last training day",
        description="YYYY-MM-DD. Empty: the day before the run.",
    ),
    "lookback_days": Param(
        14, type="integer", minimum=1, maximum=365, title="Lookback", description="Days of training data."
    ),
    "select_best": Param(
        False,
        type="boolean",
        title="Select the best detector per series",
        description="Per series, pick the best of the detectors on a holdout (the range's last 2 days) "
        "and register only it.",
    ),
    "promote": Param(
        True,
        type="boolean",
        title="Promote",
        description="Make the new models live from the day after the training range.",
    ),
}


def last_training_day(params: dict[str, Any], dag_run: Any) -> dt.date:
    """The ``train_to`` Param, else the day before the run: the same for every task of a run."""
    from passion_tasks.lake import as_day

    return as_day(params["train_to"]) if params["train_to"] else day_before_run(dag_run)


@dag(
    dag_id="passion_train",
    schedule=CronTriggerTimetable("0 3 * * 1", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params=PARAMS,
    tags=TAGS,
    doc_md=__doc__,
)
def passion_train() -> None:
    @task
    def plan(params=None, dag_run=None) -> list[str]:
        from passion_tasks import pipeline
        from passion_tasks.errors import UsageError

        if params["promote"] and len(params["detectors"]) > 1 and not params["select_best"]:
            raise UsageError(
                "promote with several detectors needs select_best to choose one per series; "
                "or train them without promote"
            )
        train_to = last_training_day(params, dag_run)
        series = params["series"] or pipeline.series_on(train_to, **lake_kwargs())
        log.info("training %s for %d series up to %s", ", ".join(params["detectors"]), len(series), train_to)
        return series

    @task(
        multiple_outputs=False,
        map_index_template="{{ task.op_kwargs['series'] }}",
        execution_timeout=TRAIN_TIMEOUT,
    )
    def train(series: str, params=None, dag_run=None) -> dict[str, str]:
        """The series' new models as detector -> model reference (with ``select_best``, the winner's)."""
        from passion_tasks import pipeline
        from passion_tasks.errors import PassionError

        options = {
            "train_to": last_training_day(params, dag_run),
            "lookback_days": params["lookback_days"],
            "promote": params["promote"],
            **lake_kwargs(),
        }
        if params["select_best"]:
            selection = pipeline.select_best(series, params["detectors"], **options)
            log.info("%s", selection.summary())
            return {selection.winner: selection.model.ref}
        trained, failed = {}, {}
        for detector in params["detectors"]:
            summary = pipeline.train(
                detector, series=[series], params=pipeline.DETECTOR_DEFAULTS.get(detector), **options
            )
            log.info("%s", summary.summary())
            if series in summary.trained:
                trained[detector] = summary.trained[series]
            if series in summary.failed:
                failed[detector] = summary.failed[series]
        if failed:
            raise PassionError(f"{series}: " + "; ".join(failed.values()))
        return trained

    train.expand(series=plan())


passion_train()
