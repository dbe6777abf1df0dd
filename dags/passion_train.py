"""Train detectors per series and register the models; with ``promote`` they go live the next day.

Weekly (Monday 03:00 UTC, on the ``lookback_days`` days up to Sunday) and by hand from the trigger
form. Training fans out per series: a series that cannot be trained fails its own task, and the others
keep their new models. Each task is one call into ``steps.train_series``, which ``passion train`` and
``passion select`` share: the same defaults, the same models.

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
from passion_airflow.settings import day_before_run, lake

from passion_tasks.defaults import LOOKBACK_DAYS
from passion_tasks.detectors import detector_names

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
        [],
        type="array",
        items={"type": "string", "enum": detector_names()},
        uniqueItems=True,
        examples=detector_names(),
        title="Detectors",
        description="Detectors of the zoo to train for each series. Empty: what the nightly run trains, "
        "per series the detector of its kind (as `passion train` without --detector).",
    ),
    "train_to": Param(
        "",
        type=["null", "string"],
        pattern=r"^(\d{4}-\d{2}-\d{2})?$",
        title="Last training day",
        description="YYYY-MM-DD. Empty: the day before the run.",
    ),
    "lookback_days": Param(
        LOOKBACK_DAYS,
        type="integer",
        minimum=1,
        maximum=365,
        title="Lookback",
        description="Days of training data.",
    ),
    "select_best": Param(
        False,
        type="boolean",
        title="Select the best detector per series",
        description="Per series, pick the best of the detectors on a holdout (the range's last 2 days) "
        "and register only it.",
    ),
    "budget": Param(
        None,
        type=["null", "number"],
        exclusiveMinimum=0,
        title="False-alarm budget",
        description="False incidents per series per 30 days that the thresholds allow. Empty: 0.1, "
        "less where the series watched would make more than one false incident a day together.",
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
        from passion_tasks import steps

        train_to = last_training_day(params, dag_run)
        series = steps.plan_training(
            lake(),
            params["series"],
            params["detectors"],
            promote=params["promote"],
            select_best=params["select_best"],
            train_to=train_to,
        )
        log.info(
            "training %s for %d series up to %s",
            ", ".join(params["detectors"]) or "the nightly models",
            len(series),
            train_to,
        )
        return series

    @task(
        multiple_outputs=False,
        map_index_template="{{ task.op_kwargs['series'] }}",
        execution_timeout=TRAIN_TIMEOUT,
    )
    def train(series: str, params=None, dag_run=None) -> dict[str, str]:
        """The series' new models as detector -> model reference (with ``select_best``, the winner's)."""
        from passion_tasks import steps

        trained = steps.train_series(
            lake(),
            series,
            params["detectors"],
            select_best=params["select_best"],
            train_to=last_training_day(params, dag_run),
            lookback_days=params["lookback_days"],
            promote=params["promote"],
            budget=params["budget"],
        )
        log.info("%s: %s", series, trained)
        return trained

    train.expand(series=plan())


passion_train()
