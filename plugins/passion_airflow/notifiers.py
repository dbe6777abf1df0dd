"""Alerts to a webhook: failed runs (a notifier) and the day's anomaly events (a plain call).

The webhook is the Airflow ``http`` connection ``passion_alerts``: its host is the URL (or host, schema,
port and an ``endpoint`` in the extra), and its password, if set, is the secret that signs each body:
``X-Passion-Signature: sha256=<HMAC-SHA256 of the body, hex>``. Without the connection nothing is sent
and the log says so. Neither the URL nor the secret is ever logged.

Failure alerts go through ``passion_tasks.alerting.channels``, as the day's alerts do: the same signing
and the same deadline for the whole delivery (``PASSION_ALERT_TIMEOUT_S``, default 10 s). That package
is imported inside the functions that run at task time, never at module level: it loads pandas, and
every DAG file imports this module, so a top-level import would cost each parse about a second.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook, BaseNotifier
from airflow.sdk.exceptions import AirflowNotFoundException

if TYPE_CHECKING:
    from airflow.sdk import Connection, Context

    from passion_tasks.alerting import AlertConfig

ALERTS_CONN_ID = "passion_alerts"
SLACK_CONN_ID = "passion_slack"
SMTP_CONN_ID = "passion_smtp"
#: The failure notifier's User-Agent; the day's alerts send ``passion-alerts``.
USER_AGENT = "passion-airflow"

log = logging.getLogger(__name__)


def webhook_url(connection: Connection) -> str:
    """The URL an ``http`` connection points at: its host if that is a URL, else schema://host:port/endpoint."""
    host = connection.host or ""
    if "://" in host:
        return host
    port = f":{connection.port}" if connection.port else ""
    endpoint = connection.extra_dejson.get("endpoint", "")
    return f"{connection.schema or 'https'}://{host}{port}{endpoint}"


def alert_config() -> AlertConfig:
    """Alert settings from the environment, with channels from the Airflow connections that exist.

    ``passion_alerts`` (http) is the signed JSON webhook, ``passion_slack`` (http, host = the incoming
    webhook URL) Slack, ``passion_smtp`` (smtp; extra ``from``, ``to``, ``starttls``) email.
    """
    from passion_tasks.alerting import AlertConfig, EmailChannel, SlackChannel, WebhookChannel
    from passion_tasks.alerting.config import delivery_timeout_s

    config, timeout_s = AlertConfig.from_env(), delivery_timeout_s()
    channels: dict[str, Any] = {}
    if (connection := _connection(ALERTS_CONN_ID)) is not None:
        channels["webhook"] = WebhookChannel(
            url=webhook_url(connection), secret=connection.password or None, timeout_s=timeout_s
        )
    if (connection := _connection(SLACK_CONN_ID)) is not None:
        channels["slack"] = SlackChannel(webhook_url=webhook_url(connection), timeout_s=timeout_s)
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
            timeout_s=timeout_s,
        )
    return dataclasses.replace(config, **channels)


def _connection(conn_id: str) -> Connection | None:
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def post_json(payload: dict[str, Any], conn_id: str = ALERTS_CONN_ID) -> bool:
    """POST ``payload`` as JSON to the connection's webhook, signed with its password if it has one;
    False when the connection does not exist. A failed delivery, or one with no complete answer within
    ``PASSION_ALERT_TIMEOUT_S``, raises ``DeliveryError`` (naming the URL's scheme, host and port only).
    """
    from passion_tasks.alerting import channels, delivery
    from passion_tasks.alerting.config import delivery_timeout_s

    connection = _connection(conn_id)
    if connection is None:
        log.info("no %r connection: alert not sent", conn_id)
        return False
    body = json.dumps(payload, sort_keys=True, default=str).encode()
    headers = {"User-Agent": USER_AGENT}
    if connection.password:
        headers[channels.SIGNATURE_HEADER] = channels.signature(connection.password, body)
    status = delivery.post_json("webhook", webhook_url(connection), body, delivery_timeout_s(), headers)
    log.info("alert %r posted through connection %r: HTTP %s", payload["event"], conn_id, status)
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
