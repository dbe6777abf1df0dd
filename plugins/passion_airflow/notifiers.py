"""Alerts to a webhook: failed runs (a notifier) and the day's anomaly events (a plain call).

The webhook is the Airflow ``http`` connection ``passion_alerts``: its host is the URL (or host, schema,
port and an ``endpoint`` in the extra), and its password, if set, is the secret that signs each body:
``X-Passion-Signature: sha256=<HMAC-SHA256 of the body, hex>``. Without the connection nothing is sent
and the log says so. Neither the URL nor the secret is ever logged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import urllib.request
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook, BaseNotifier
from airflow.sdk.exceptions import AirflowNotFoundException

if TYPE_CHECKING:
    from airflow.sdk import Connection, Context

    from passion_tasks.alerting import AlertConfig

ALERTS_CONN_ID = "passion_alerts"
SLACK_CONN_ID = "passion_slack"
SMTP_CONN_ID = "passion_smtp"
SIGNATURE_HEADER = "X-Passion-Signature"
TIMEOUT_S = 10

log = logging.getLogger(__name__)


def webhook_url(connection: Connection) -> str:
    """The URL an ``http`` connection points at: its host if that is a URL, else schema://host:port/endpoint."""
    host = connection.host or ""
    if "://" in host:
        return host
    port = f":{connection.port}" if connection.port else ""
    endpoint = connection.extra_dejson.get("endpoint", "")
    return f"{connection.schema or 'https'}://{host}{port}{endpoint}"


def signature(secret: str, body: bytes) -> str:
    # The same signature as passion_tasks.alerting.channels.signature, kept here because importing the
    # alerting package (pandas) would cost every DAG file parse a second.
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def alert_config() -> AlertConfig:
    """Alert settings from the environment, with channels from the Airflow connections that exist.

    ``passion_alerts`` (http) is the signed JSON webhook, ``passion_slack`` (http, host = the incoming
    webhook URL) Slack, ``passion_smtp`` (smtp; extra ``from``, ``to``, ``starttls``) email.
    """
    from passion_tasks.alerting import AlertConfig, EmailChannel, SlackChannel, WebhookChannel

    config = AlertConfig.from_env()
    channels: dict[str, Any] = {}
    if (connection := _connection(ALERTS_CONN_ID)) is not None:
        channels["webhook"] = WebhookChannel(url=webhook_url(connection), secret=connection.password or None)
    if (connection := _connection(SLACK_CONN_ID)) is not None:
        channels["slack"] = SlackChannel(webhook_url=webhook_url(connection))
    if (connection := _connection(SMTP_CONN_ID)) is not None:
        extra = connection.extra_dejson
        channels["email"] = EmailChannel(
            host=connection.host,
            port=connection.port or 587,
            user=connection.login or None,
            password=connection.password or None,
            sender=extra["from"],
            recipients=tuple(address.strip() for address in str(extra["to"]).split(",")),
            starttls=bool(extra.get("starttls", True)),
        )
    return dataclasses.replace(config, **channels)


def _connection(conn_id: str) -> Connection | None:
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def post_json(payload: dict[str, Any], conn_id: str = ALERTS_CONN_ID) -> bool:
    """POST ``payload`` as JSON to the connection's webhook; False when the connection does not exist."""
    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        log.info("no %r connection: alert not sent", conn_id)
        return False
    body = json.dumps(payload, sort_keys=True, default=str).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "passion-airflow"}
    if connection.password:
        headers[SIGNATURE_HEADER] = signature(connection.password, body)
    request = urllib.request.Request(webhook_url(connection), data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        log.info("alert %r posted through connection %r: HTTP %s", payload["event"], conn_id, response.status)
    return True


def failure_payload(context: Context) -> dict[str, Any]:
    """What an operator needs to find a failed run: DAG, run, the failed task, the run's Params."""
    ti = context.get("ti")
    dag_run = context.get("dag_run")
    return {
        "event": "failure",
        "dag_id": context["dag"].dag_id,
        "run_id": context.get("run_id") or (dag_run.run_id if dag_run else None),
        "task_id": ti.task_id if ti else None,
        "map_index": ti.map_index if ti else None,
        "logical_date": dag_run.logical_date if dag_run else None,
        "data_interval_start": dag_run.data_interval_start if dag_run else None,
        "params": dict(context.get("params") or {}),
        "exception": str(context["exception"]) if context.get("exception") else None,
    }


class PassionWebhookNotifier(BaseNotifier):
    """Posts a failed DAG run or task to the webhook of the ``http`` connection ``conn_id``."""

    template_fields = ("conn_id",)

    def __init__(self, conn_id: str = ALERTS_CONN_ID):
        super().__init__()
        self.conn_id = conn_id

    def notify(self, context: Context) -> None:
        post_json(failure_payload(context), self.conn_id)
