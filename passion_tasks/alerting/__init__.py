"""Alerts operations can act on: the day's anomalies grouped into incidents, sent once per channel.

``alert_day(lake, day, config)`` reads the day's scores and events, applies the rules (``rules``:
minimum ratio to the threshold and duration, snoozes, incidents across series, severity, cooldown),
adds a ``no_data`` alert when an expected dataset has no rows that day (silence is not health),
routes each alert to its channels (``channels``: signed JSON webhook, Slack, email with the
incident's plot) and records every delivery in ``alerts/dt=D/sent.jsonl`` (``ledger``), which the
next run reads so that nothing is sent twice and failures are retried. ``AlertConfig.from_env()``
documents the environment variables.
"""

from passion_tasks.alerting.channels import EmailChannel, Secret, SlackChannel, WebhookChannel
from passion_tasks.alerting.config import AlertConfig
from passion_tasks.alerting.delivery import DeliveryError
from passion_tasks.alerting.rules import Route, Rules, SeverityLevel, Snooze
from passion_tasks.alerting.run import AlertRun, Delivery, alert_day

__all__ = [
    "AlertConfig",
    "AlertRun",
    "Delivery",
    "DeliveryError",
    "EmailChannel",
    "Route",
    "Rules",
    "Secret",
    "SeverityLevel",
    "SlackChannel",
    "Snooze",
    "WebhookChannel",
    "alert_day",
]
