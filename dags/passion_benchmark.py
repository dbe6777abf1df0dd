"""Benchmark detectors on a labelled corpus of the reference data; the leaderboard goes to the lake.

By hand only, from the trigger form: a corpus, the detectors (empty: every detector of the profile;
``full`` adds the Keras networks), optionally some of its series, and the scales the calibration
stage reads (``passion benchmark --scales``). Each detector is trained on the
training part of each series and scored on the rest (``evaluation.benchmark``); the leaderboard's
HTML, JSON and Parquet files replace the corpus' previous ones in ``leaderboards/<corpus>/``.
"""

from __future__ import annotations

import logging

from airflow.sdk import Param, dag, task
from passion_airflow.defaults import BENCHMARK_TIMEOUT, DEFAULT_ARGS, START_DATE, TAGS
from passion_airflow.settings import lake

from passion_tasks.corpora import CORPORA
from passion_tasks.defaults import CALIBRATION_SCALES
from passion_tasks.detectors import detector_names

log = logging.getLogger(__name__)

PARAMS = {
    "corpus": Param("nab", type="string", enum=list(CORPORA), title="Corpus"),
    "detectors": Param(
        [],
        type="array",
        items={"type": "string", "enum": detector_names()},
        uniqueItems=True,
        examples=detector_names(),
        title="Detectors",
        description="Empty: every detector of the profile.",
    ),
    "profile": Param(
        "fast",
        type="string",
        enum=["fast", "full"],
        title="Profile",
        description="fast: baselines, scikit-learn, XGBoost and fusion; full adds the Keras networks.",
    ),
    "files": Param(
        [],
        type="array",
        items={"type": "string"},
        title="Series",
        description="Only these series, e.g. realKnownCause/nyc_taxi.csv (NAB), omi-1 (ASD, SMD), "
        "cpu4 (KPI). Empty: all.",
    ),
    "scales": Param(
        list(CALIBRATION_SCALES),
        type="array",
        items={"type": "integer", "minimum": 1},
        minItems=1,
        uniqueItems=True,
        title="Calibration scales",
        description="Rows of the trailing means the calibration stage reads beside each row, e.g. "
        "[1, 10, 100]; [1]: each row alone.",
    ),
}


@dag(
    dag_id="passion_benchmark",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    # A benchmark takes long and fails for reasons a retry does not fix: run it again by hand.
    default_args=DEFAULT_ARGS | {"retries": 0},
    params=PARAMS,
    tags=TAGS,
    doc_md=__doc__,
)
def passion_benchmark() -> None:
    @task(execution_timeout=BENCHMARK_TIMEOUT)
    def benchmark(params=None) -> str:
        from passion_tasks import steps

        _, uri = steps.benchmark(
            params["corpus"],
            params["detectors"],
            lake=lake(),
            profile=params["profile"],
            files=params["files"] or None,
            scales=tuple(params["scales"]),
        )
        log.info("leaderboard: %s", uri)
        return uri

    benchmark()


passion_benchmark()
