"""Where the DAGs' settings come from: Airflow Variables and connections first, then the environment.

Everything here is read inside tasks at run time, never while a DAG file is parsed.

- the lake: Variable ``passion_lake``, else ``PASSION_LAKE``, else the project's ``.passion/lake``;
  on S3, the ``aws`` connection ``passion_lake`` (keys, ``endpoint_url`` and ``region_name`` in its
  extra), else the environment and the AWS credential chain, as for the ``passion`` command;
- the sources: Variable ``passion_sources``, else ``PASSION_SOURCES``: one folder or ``s3://`` prefix
  holding both sources, or a JSON object ``{"cdn": ..., "metrics": ...}`` whose metrics may be
  ``prometheus:QUERIES_FILE``: pulled from the server of the ``http`` connection ``passion_prometheus``
  (else ``PASSION_PROMETHEUS_URL`` and its credentials in the environment);
- the model-signing key: the password of the connection ``passion_model_key``, else
  ``PASSION_MODEL_KEY`` (see ``passion_tasks.models.registry``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook, Variable
from airflow.sdk.exceptions import AirflowNotFoundException

from passion_tasks.lake.datasets import SOURCES

if TYPE_CHECKING:
    from airflow.sdk.types import DagRunProtocol

    from passion_tasks.ingest.prometheus import Server as PrometheusServer
    from passion_tasks.lake import Lake, S3Options

LAKE_VARIABLE = "passion_lake"
LAKE_CONN_ID = "passion_lake"
MODEL_KEY_CONN_ID = "passion_model_key"
PROMETHEUS_CONN_ID = "passion_prometheus"
SOURCES_VARIABLE = "passion_sources"
SOURCES_ENV = "PASSION_SOURCES"


def lake() -> Lake:
    """The lake the steps run on, with its S3 settings and the model-signing key of the connections."""
    from passion_tasks import config
    from passion_tasks.lake import Lake

    url = config.lake_url(Variable.get(LAKE_VARIABLE, default=None))
    use_model_key()
    return Lake(url, s3=lake_s3_options() if url.startswith("s3://") else None)


def use_model_key(conn_id: str = MODEL_KEY_CONN_ID) -> None:
    """Put the connection's password where the registry reads the model key, for this task's process.

    The registry reads ``PASSION_MODEL_KEY`` as the ``passion`` command does; a task process is this
    task's alone, and Airflow masks a connection's password in its logs.
    """
    from passion_tasks import config

    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return
    if connection.password:
        os.environ[config.MODEL_KEY_ENV] = connection.password


def lake_s3_options(conn_id: str = LAKE_CONN_ID) -> S3Options | None:
    """The lake's S3 settings from the ``aws`` connection ``conn_id``; None if there is no such connection.

    The amazon provider's hook resolves the credentials (keys, or a role or profile the connection
    names) and masks the secret key and token in task logs.
    """
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    from passion_tasks.lake import S3Options

    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    hook = AwsBaseHook(aws_conn_id=conn_id, client_type="s3")
    credentials = hook.get_credentials()
    return S3Options(
        endpoint_url=hook.conn_config.get_service_endpoint_url("s3"),
        region=hook.conn_config.region_name,
        access_key=credentials.access_key,
        secret_key=credentials.secret_key,
        session_token=credentials.token,
    )


def prometheus_server(conn_id: str = PROMETHEUS_CONN_ID) -> PrometheusServer | None:
    """The Prometheus server of the ``http`` connection ``conn_id`` (host: its URL; login and password:
    basic auth; a password alone: a bearer token), else of the environment (``PASSION_PROMETHEUS_URL``
    ...), else None. Airflow masks the connection's password in task logs."""
    from passion_tasks.ingest.prometheus import Server

    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return Server.from_env()
    url = connection.host or ""
    if "://" not in url:
        url = f"{connection.schema or 'http'}://{url}" + (f":{connection.port}" if connection.port else "")
    if connection.login:
        return Server(url, user=connection.login, password=connection.password or "")
    return Server(url, token=connection.password or "")


def source_inputs() -> dict[str, str]:
    """The folder or URL to land each source from: ``{"cdn": ..., "metrics": ...}``."""
    from passion_tasks.errors import UsageError

    value = Variable.get(SOURCES_VARIABLE, default=None) or os.environ.get(SOURCES_ENV)
    if not value:
        raise UsageError(
            f"no sources configured: set the Airflow Variable {SOURCES_VARIABLE!r} or {SOURCES_ENV} to a "
            'folder, an s3:// prefix or {"cdn": ..., "metrics": ...}'
        )
    if not value.lstrip().startswith("{"):
        return dict.fromkeys(SOURCES, value)
    try:
        inputs = json.loads(value)
    except json.JSONDecodeError as error:
        raise UsageError(f"the sources setting is not valid JSON: {error}") from None
    if missing := [source for source in SOURCES if not inputs.get(source)]:
        raise UsageError(f"the sources setting has no input for {', '.join(missing)}")
    return {source: inputs[source] for source in SOURCES}


def run_day(params: Mapping[str, Any], dag_run: DagRunProtocol) -> dt.date:
    """The day a daily run processes: its ``day`` Param if set, else the day its data interval starts,
    else the day before the run was triggered (UTC).

    Manual and ``dags trigger`` runs may have no data interval; the run's own fields keep every task of
    a run on the same day, whenever each of them runs.
    """
    from passion_tasks.lake import as_day

    if chosen := params.get("day"):
        return as_day(chosen)
    if dag_run.data_interval_start is not None:
        return dag_run.data_interval_start.astimezone(dt.UTC).date()
    return day_before_run(dag_run)


def day_before_run(dag_run: DagRunProtocol) -> dt.date:
    """The day before the run's logical date, or before it was triggered when it has none (UTC)."""
    instant = dag_run.logical_date or dag_run.run_after
    return instant.astimezone(dt.UTC).date() - dt.timedelta(days=1)
