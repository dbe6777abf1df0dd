"""The Passion plugin: the lake's daily reports and leaderboards in the Airflow UI.

It mounts ``passion_airflow.reports_app`` at ``/passion`` of the API server and adds two links to the UI:

- "Passion" in the navigation: the days with a report, newest first, and the leaderboards;
- a "Passion report" tab on every DAG run: for a ``passion_score`` or ``passion_ingest`` run, the report
  of the day it processes (its ``day`` Param, else its data interval, as its tasks decide).

The app reads the lake through the DAGs' settings (the ``passion_lake`` Variable and ``aws``
connection, else the environment). Airflow does not authenticate a plugin's app: this one takes the
user from Airflow's token (the UI's cookie or a bearer header) and asks the auth manager whether they
may read the DAG runs the page shows, ``passion_score``'s for reports, ``passion_benchmark``'s for
leaderboards.

Every Airflow process that loads plugins imports this module, task runners included: Airflow's API
modules, the lake and the metadata database are imported only when a request needs them.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from airflow.plugins_manager import AirflowPlugin
from fastapi import Request
from passion_airflow.reports_app import create_app
from starlette.concurrency import run_in_threadpool

if TYPE_CHECKING:
    from passion_tasks.lake import Lake

URL_PREFIX = "/passion"


def lake_from_settings() -> Lake:
    """The lake the DAGs' tasks use."""
    from passion_airflow.settings import lake

    return lake()


async def authorize_airflow_user(request: Request, dag_id: str) -> None:
    """401 without a valid Airflow token, 403 unless its user may read the runs of ``dag_id``."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user, requires_access_dag

    user = await get_user(request, None, await bearer_scheme(request))
    may_read_runs = requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=dag_id)
    # It looks the DAG's team up in the metadata database.
    await run_in_threadpool(may_read_runs, request, user)


def day_of_airflow_run(dag_id: str, run_id: str) -> dt.date | None:
    """The day a run of a daily DAG processes, decided as its tasks do; None if the run does not exist."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from passion_airflow.settings import run_day
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        # The ``day`` Param defaults to empty, so the run's conf decides it as the merged Params would.
        return None if run is None else run_day(run.conf or {}, run)


class PassionReportsPlugin(AirflowPlugin):
    name = "passion_reports"
    fastapi_apps = [  # noqa: RUF012 (AirflowPlugin's attributes are class-level lists)
        {
            "app": create_app(
                open_lake=lake_from_settings,
                authorize=authorize_airflow_user,
                day_of_run=day_of_airflow_run,
            ),
            "url_prefix": URL_PREFIX,
            "name": "Passion reports",
        }
    ]
    # The UI resolves these hrefs against Airflow's base URL and fills in {DAG_ID} and {RUN_ID}.
    external_views = [  # noqa: RUF012
        {
            "name": "Passion",
            "href": "passion/",
            "destination": "nav",
            "url_route": "passion",
            "nav_top_level": True,
        },
        {
            "name": "Passion report",
            "href": "passion/runs/{DAG_ID}/{RUN_ID}",
            "destination": "dag_run",
            "url_route": "passion-report",
        },
    ]
