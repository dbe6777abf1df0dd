"""Alert settings: rules, routes, snoozes and channels, from the environment or built by the caller.

The Airflow side builds an :class:`AlertConfig` from its connections; the ``passion`` command and
anything else use :meth:`AlertConfig.from_env`, which reads:

=================================  ======================================================================
``PASSION_ALERT_WEBHOOK_URL``      JSON webhook to POST alerts to
``PASSION_ALERT_WEBHOOK_SECRET``   HMAC-SHA256 key signing webhook bodies (``X-Passion-Signature``)
``PASSION_SLACK_WEBHOOK_URL``      Slack incoming webhook
``PASSION_SMTP_HOST``              SMTP relay; email is sent when it is set
``PASSION_SMTP_PORT``              default 587
``PASSION_SMTP_USER``              login, if the relay needs one
``PASSION_SMTP_PASSWORD``          its password
``PASSION_SMTP_STARTTLS``          ``true`` (default) or ``false``
``PASSION_SMTP_CA_FILE``           a private CA to trust for STARTTLS
``PASSION_ALERT_EMAIL_FROM``       sender address (required with a host)
``PASSION_ALERT_EMAIL_TO``         recipients, comma-separated (required with a host)
``PASSION_ALERT_TIMEOUT_S``        deadline of each delivery in seconds, default 10: connecting, sending
                                   and the whole answer (under Airflow, also of the connections' channels
                                   and of the failure notifier)
``PASSION_ALERT_MIN_SEVERITY``     the default route's minimum: every configured channel gets alerts of
                                   at least this severity (default ``warning``)
``PASSION_ALERT_ROUTES``           instead of the default route, a JSON list of
                                   ``{"name", "channels": [...], "min_severity", "series": [globs]}``
``PASSION_ALERT_MIN_RATIO``        minimum peak score / threshold of an event (default 1.0)
``PASSION_ALERT_MIN_MINUTES``      minimum event duration at the minimum ratio (default 3); a higher ratio
                                   needs fewer minutes, as much evidence (``alerting.rules``)
``PASSION_ALERT_COOLDOWN_MIN``     per-series cooldown between incidents (default 60; 0 = none)
``PASSION_ALERT_LEVELS``           JSON list of ``{"name", "min_ratio", "min_minutes"}``, mildest first
``PASSION_ALERT_NO_DATA_SEVERITY`` severity of a day without data (default ``critical``)
``PASSION_ALERT_EXPECTED``         datasets that must have rows each day (default ``cdn_logs,scores``)
``PASSION_ALERT_SNOOZES``          JSON list of ``{"series": glob, "until": ISO time, "reason"}``
``PASSION_REPORT_URL``             link to the day's report, ``{day}`` replaced by YYYY-MM-DD (default:
                                   the report's lake URI)
=================================  ======================================================================

Snoozes are also read from the lake's ``alerts/snoozes.json`` (the same JSON list) on every run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from passion_tasks.alerting.channels import (
    Channel,
    EmailChannel,
    Secret,
    SlackChannel,
    WebhookChannel,
    as_secret,
)
from passion_tasks.alerting.delivery import TIMEOUT_S
from passion_tasks.alerting.rules import Route, Rules, SeverityLevel, Snooze
from passion_tasks.errors import UsageError


@dataclass(frozen=True)
class AlertConfig:
    """Everything ``alert_day`` needs besides the lake. Without ``routes``, every configured channel
    gets alerts of at least ``min_severity`` (the route named ``default``)."""

    rules: Rules = field(default_factory=Rules)
    webhook: WebhookChannel | None = None
    slack: SlackChannel | None = None
    email: EmailChannel | None = None
    routes: tuple[Route, ...] = ()
    min_severity: str = "warning"
    snoozes: tuple[Snooze, ...] = ()
    report_url: str | None = None

    def __post_init__(self) -> None:
        for route in self.routes_in_effect():
            self.rules.rank(route.min_severity)
            if unknown := [name for name in route.channels if name not in self.channels]:
                raise UsageError(
                    f"alert route {route.name!r} names channels that are not configured: {unknown} "
                    f"(configured: {sorted(self.channels) or 'none'})"
                )

    @property
    def channels(self) -> dict[str, Channel]:
        return {channel.name: channel for channel in (self.webhook, self.slack, self.email) if channel}

    def routes_in_effect(self) -> tuple[Route, ...]:
        if self.routes:
            return self.routes
        return (Route(tuple(self.channels), min_severity=self.min_severity),) if self.channels else ()

    def secrets(self) -> list[str]:
        """The secret values of the channels, to scrub from anything written down."""
        return [
            value.reveal()
            for channel in self.channels.values()
            for item in fields(channel)
            if isinstance(value := getattr(channel, item.name), Secret) and value
        ]

    def scrub(self, text: str) -> str:
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return text

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AlertConfig:
        """The settings the ``PASSION_*`` variables in the module's table give; see there."""
        env = _Env(os.environ if environ is None else environ)
        timeout_s = delivery_timeout_s(env.values)
        rules = Rules(
            min_ratio=env.number("PASSION_ALERT_MIN_RATIO", 1.0),
            min_minutes=int(env.number("PASSION_ALERT_MIN_MINUTES", 3)),
            cooldown=dt.timedelta(minutes=env.number("PASSION_ALERT_COOLDOWN_MIN", 60)),
            levels=tuple(level_from_dict(item) for item in env.json_list("PASSION_ALERT_LEVELS"))
            or Rules.levels,
            no_data_severity=env.get("PASSION_ALERT_NO_DATA_SEVERITY") or Rules.no_data_severity,
            expected_datasets=env.names("PASSION_ALERT_EXPECTED") or Rules.expected_datasets,
        )
        webhook = slack = email = None
        if url := env.get("PASSION_ALERT_WEBHOOK_URL"):
            webhook = WebhookChannel(
                url=Secret(url),
                secret=as_secret(env.get("PASSION_ALERT_WEBHOOK_SECRET")),
                timeout_s=timeout_s,
            )
        if url := env.get("PASSION_SLACK_WEBHOOK_URL"):
            slack = SlackChannel(webhook_url=Secret(url), timeout_s=timeout_s)
        if host := env.get("PASSION_SMTP_HOST"):
            sender, recipients = env.get("PASSION_ALERT_EMAIL_FROM"), env.names("PASSION_ALERT_EMAIL_TO")
            if not sender or not recipients:
                raise UsageError(
                    "PASSION_SMTP_HOST is set: set PASSION_ALERT_EMAIL_FROM and PASSION_ALERT_EMAIL_TO"
                )
            email = EmailChannel(
                host=host,
                sender=sender,
                recipients=recipients,
                port=int(env.number("PASSION_SMTP_PORT", 587)),
                user=env.get("PASSION_SMTP_USER"),
                password=as_secret(env.get("PASSION_SMTP_PASSWORD")),
                starttls=env.flag("PASSION_SMTP_STARTTLS", True),
                ca_file=env.get("PASSION_SMTP_CA_FILE"),
                timeout_s=timeout_s,
            )
        return cls(
            rules=rules,
            webhook=webhook,
            slack=slack,
            email=email,
            routes=tuple(
                route_from_dict(item, i) for i, item in enumerate(env.json_list("PASSION_ALERT_ROUTES"), 1)
            ),
            min_severity=env.get("PASSION_ALERT_MIN_SEVERITY") or cls.min_severity,
            snoozes=tuple(Snooze.from_dict(item) for item in env.json_list("PASSION_ALERT_SNOOZES")),
            report_url=env.get("PASSION_REPORT_URL"),
        )


def delivery_timeout_s(environ: Mapping[str, str] | None = None) -> float:
    """``PASSION_ALERT_TIMEOUT_S``: the deadline of each delivery, read on its own by the Airflow side,
    whose channels come from connections."""
    env = _Env(os.environ if environ is None else environ)
    timeout_s = env.number("PASSION_ALERT_TIMEOUT_S", TIMEOUT_S)
    if timeout_s <= 0:
        raise UsageError(f"PASSION_ALERT_TIMEOUT_S must be a positive number of seconds, got {timeout_s:g}")
    return timeout_s


def level_from_dict(data: Mapping[str, Any]) -> SeverityLevel:
    """A severity level from ``{"name", "min_ratio", "min_minutes"}``."""
    try:
        return SeverityLevel(
            str(data["name"]), float(data.get("min_ratio", 0)), int(data.get("min_minutes", 0))
        )
    except (KeyError, TypeError, ValueError):
        raise UsageError(f"a severity level needs a name and numeric minimums, got {dict(data)!r}") from None


def route_from_dict(data: Mapping[str, Any], number: int = 1) -> Route:
    """A route from ``{"name", "channels": [...], "min_severity", "series": [globs]}``."""
    if not data.get("channels"):
        raise UsageError(f"alert route {number} needs a list of channels, got {dict(data)!r}")
    return Route(
        channels=tuple(data["channels"]),
        min_severity=str(data.get("min_severity", Route.min_severity)),
        series=tuple(data.get("series", ())),
        name=str(data.get("name") or f"route{number}"),
    )


@dataclass(frozen=True)
class _Env:
    """Typed reads of the environment, each failing with the variable's name."""

    values: Mapping[str, str]

    def get(self, name: str) -> str | None:
        return self.values.get(name) or None

    def number(self, name: str, default: float) -> float:
        text = self.get(name)
        if text is None:
            return default
        try:
            return float(text)
        except ValueError:
            raise UsageError(f"{name} must be a number, got {text!r}") from None

    def flag(self, name: str, default: bool) -> bool:
        text = (self.get(name) or "").strip().lower()
        if not text:
            return default
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise UsageError(f"{name} must be true or false, got {text!r}")

    def names(self, name: str) -> tuple[str, ...]:
        return tuple(part.strip() for part in (self.get(name) or "").split(",") if part.strip())

    def json_list(self, name: str) -> list[dict[str, Any]]:
        text = self.get(name)
        if text is None:
            return []
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise UsageError(f"{name} is not valid JSON: {error}") from None
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise UsageError(f"{name} must be a JSON list of objects")
        return value
