"""The airflow-init step of docker-compose.yaml: run at every ``up`` before any other Airflow service, and
safe to re-run.

1. ``airflow db migrate``;
2. the API server's login: SimpleAuthManager's passwords file gets the user ``admin`` with the password
   ``AIRFLOW_ADMIN_PASSWORD``;
3. Passion's connections, made to match the environment (docker/.env): the ``aws`` connection
   ``passion_lake`` from the variables the ``passion`` command reads (``AWS_ACCESS_KEY_ID``,
   ``AWS_SECRET_ACCESS_KEY``, ``PASSION_S3_ENDPOINT_URL``, ``AWS_REGION``), and the alert channels
   ``passion_alerts``, ``passion_slack`` and ``passion_smtp`` from the ``PASSION_*`` variables
   ``AlertConfig.from_env`` reads. A channel whose settings are empty has no connection (one made
   before is deleted), so docker/.env is the one place to change them.

It prints connection ids and variable names, never a value.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from airflow.models.connection import Connection
from airflow.utils.session import create_session

# Importing airflow put the plugins folder on sys.path: these are the ids the DAGs and plugins read.
from passion_airflow.notifiers import ALERTS_CONN_ID, SLACK_CONN_ID, SMTP_CONN_ID
from passion_airflow.settings import LAKE_CONN_ID
from sqlalchemy import delete

from passion_tasks.alerting import AlertConfig, Secret
from passion_tasks.errors import PassionError, UsageError
from passion_tasks.lake import S3Options

MIGRATE = ("airflow", "db", "migrate")
ADMIN_USER = "admin"
ADMIN_PASSWORD_ENV = "AIRFLOW_ADMIN_PASSWORD"
MANAGED_CONN_IDS = (LAKE_CONN_ID, ALERTS_CONN_ID, SLACK_CONN_ID, SMTP_CONN_ID)


def lake_options_from_env() -> S3Options:
    """The lake's endpoint, region and keys from the variables the ``passion`` command reads."""
    return dataclasses.replace(
        S3Options.from_env(),
        access_key=os.environ.get("AWS_ACCESS_KEY_ID") or None,
        secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY") or None,
    )


def lake_connection(options: S3Options) -> dict[str, Any]:
    """The ``aws`` connection that ``passion_airflow.settings.lake_s3_options`` reads back as ``options``."""
    if not (options.access_key and options.secret_key):
        raise UsageError("the lake's keys are not set: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    extra = {"endpoint_url": options.endpoint_url, "region_name": options.region}
    return {
        "conn_type": "aws",
        "login": options.access_key,
        "password": options.secret_key,
        "extra": json.dumps({key: value for key, value in extra.items() if value}),
    }


def alert_connections(config: AlertConfig) -> dict[str, dict[str, Any]]:
    """The connections that ``passion_airflow.notifiers.alert_config`` reads back as ``config``'s channels."""
    connections: dict[str, dict[str, Any]] = {}
    if webhook := config.webhook:
        connections[ALERTS_CONN_ID] = {
            "conn_type": "http",
            "host": webhook.url.reveal(),
            "password": _revealed(webhook.secret),
        }
    if slack := config.slack:
        connections[SLACK_CONN_ID] = {"conn_type": "http", "host": slack.webhook_url.reveal()}
    if email := config.email:
        connections[SMTP_CONN_ID] = {
            "conn_type": "smtp",
            "host": email.host,
            "port": email.port,
            "login": email.user,
            "password": _revealed(email.password),
            "extra": json.dumps(
                {"from": email.sender, "to": ",".join(email.recipients), "starttls": email.starttls}
            ),
        }
    return connections


def _revealed(secret: Secret | None) -> str | None:
    return secret.reveal() if secret else None


def passion_connections() -> dict[str, dict[str, Any]]:
    """The connections the environment configures, by id: the lake's always, an alert channel's when set."""
    return {
        LAKE_CONN_ID: lake_connection(lake_options_from_env()),
        **alert_connections(AlertConfig.from_env()),
    }


def write_passwords_file(path: Path, passwords: Mapping[str, str]) -> None:
    """SimpleAuthManager's passwords file, readable by this user only, replaced in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as file:
        json.dump(dict(passwords), file)
    os.replace(temporary, path)


def apply_connections(connections: Mapping[str, Mapping[str, Any]]) -> None:
    """Make Passion's connections exactly ``connections``: the others of ``MANAGED_CONN_IDS`` are deleted."""
    with create_session() as session:
        session.execute(delete(Connection).where(Connection.conn_id.in_(MANAGED_CONN_IDS)))
        session.add_all(Connection(conn_id=conn_id, **fields) for conn_id, fields in connections.items())


def main() -> None:
    password = os.environ.get(ADMIN_PASSWORD_ENV)
    if not password:
        sys.exit(f"airflow-init: {ADMIN_PASSWORD_ENV} is not set (docker/.env)")
    try:
        connections = passion_connections()
    except PassionError as error:
        sys.exit(f"airflow-init: {error}")
    subprocess.run(MIGRATE, check=True)
    passwords_file = Path(SimpleAuthManager.get_generated_password_file())
    write_passwords_file(passwords_file, {ADMIN_USER: password})
    print(f"airflow-init: user {ADMIN_USER!r} logs in with {ADMIN_PASSWORD_ENV} ({passwords_file})")
    apply_connections(connections)
    for conn_id in MANAGED_CONN_IDS:
        print(f"airflow-init: connection {conn_id}: {'set' if conn_id in connections else 'not configured'}")


if __name__ == "__main__":
    main()
