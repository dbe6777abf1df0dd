"""Where alerts go: a signed JSON webhook, a Slack incoming webhook, email over SMTP.

Plain HTTP (``urllib``) and ``smtplib``, so the package needs no Airflow; the Airflow side builds the
same channels from its connections. A channel raises :class:`DeliveryError` when a delivery fails;
its message names the channel and the cause, never a URL's path or a secret: webhook URLs carry
tokens, so they, the signing secret and the SMTP password are :class:`Secret` values, masked in
every ``repr`` and ``str``.

A channel's ``timeout_s`` is the deadline of the whole delivery (``delivery``): connecting, sending,
and the whole answer.

Webhook bodies are signed as the Airflow failure notifier signs them, so one receiver checks both:
``X-Passion-Signature: sha256=<HMAC-SHA256 of the body with the secret, hex>``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, ClassVar, Protocol

from passion_tasks.alerting.delivery import (
    TIMEOUT_S,
    Deadline,
    DeadlineSMTP,
    DeliveryError,
    post_json,
    within_deadline,
)
from passion_tasks.alerting.rules import TIME_FORMAT, Alert

SIGNATURE_HEADER = "X-Passion-Signature"
DEDUP_HEADER = "X-Passion-Dedup-Key"
#: Series listed one by one in a Slack message or an email; the report has them all.
SERIES_SHOWN = 20


class Secret:
    """A value that never shows itself in a ``repr``, a ``str`` or a log line; ``reveal()`` gives it."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)


def as_secret(value: Secret | str | None) -> Secret | None:
    return Secret(value) if isinstance(value, str) else value


@dataclass
class AlertMessage:
    """An alert as a channel gets it: the alert, the link to the day's report, when it is sent, and its
    plot, rendered on first use (only email attaches it)."""

    alert: Alert
    report_url: str
    sent_at: str
    render_plot: Callable[[], bytes | None] = lambda: None

    @functools.cached_property
    def plot_png(self) -> bytes | None:
        return self.render_plot()


class Channel(Protocol):
    name: ClassVar[str]

    def send(self, message: AlertMessage) -> None: ...


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_payload(message: AlertMessage) -> dict[str, Any]:
    """The alert's summary with its dedup key, every anomaly of its incident, the report and the send time."""
    alert = message.alert
    anomalies = alert.incident.anomalies if alert.incident else ()
    return {
        "event": "passion_alert",
        "dedup_key": alert.dedup_key,
        **alert.summary(),
        "anomalies": [anomaly.summary() for anomaly in anomalies],
        "report": message.report_url,
        "sent_at": message.sent_at,
    }


@dataclass(frozen=True)
class WebhookChannel:
    """POSTs :func:`webhook_payload` as JSON, signed with ``secret`` when one is set."""

    url: Secret
    secret: Secret | None = None
    timeout_s: float = TIMEOUT_S
    name: ClassVar[str] = "webhook"

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", as_secret(self.url))
        object.__setattr__(self, "secret", as_secret(self.secret))

    def send(self, message: AlertMessage) -> None:
        body = json.dumps(webhook_payload(message), sort_keys=True).encode()
        headers = {DEDUP_HEADER: message.alert.dedup_key}
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(self.secret.reveal(), body)
        post_json(self.name, self.url.reveal(), body, self.timeout_s, headers)


def slack_payload(message: AlertMessage) -> dict[str, Any]:
    """An incoming-webhook message: a header with the title, then severity, start, end and peak, the
    series, and the link to the report. ``text`` is the notification's fallback."""
    alert = message.alert
    title = f"[{alert.severity.upper()}] {alert.title}"
    fields = [_field("Severity", alert.severity), _field("Day", alert.day.isoformat())]
    if alert.incident is not None:
        peak = alert.incident.peak
        fields += [
            _field("Start", alert.incident.start.strftime(TIME_FORMAT)),
            _field("End", alert.incident.end.strftime(TIME_FORMAT)),
            _field("Duration", f"{alert.incident.minutes} min"),
            _field("Peak", f"{peak.ratio:.2f}x threshold on {peak.series} at {peak.peak_ts:%H:%M} UTC"),
        ]
        details = "*Series*\n" + "\n".join(f"• `{_mrkdwn(line)}`" for line in _series_lines(alert))
    else:
        details = "*Missing*\n" + "\n".join(
            f"• `{_mrkdwn(name)}` {_mrkdwn(why)}" for name, why in alert.missing.items()
        )
    report = message.report_url
    link = (
        f"<{report}|Open the day's report>"
        if report.startswith(("http://", "https://"))
        else f"Report: `{_mrkdwn(report)}`"
    )
    return {
        "text": title,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": _clip(title, 150)}},
            {"type": "section", "fields": fields},
            {"type": "section", "text": {"type": "mrkdwn", "text": _clip(details, 3000)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": link}},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"dedup key {alert.dedup_key[:16]}"}],
            },
        ],
    }


def _field(label: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": f"*{label}*\n{_mrkdwn(value)}"}


def _mrkdwn(text: str) -> str:
    """Slack's three control characters escaped, so a series name cannot become a link or a mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _series_lines(alert: Alert) -> list[str]:
    series = list(alert.series)
    lines = series[:SERIES_SHOWN]
    if len(series) > SERIES_SHOWN:
        lines.append(f"... and {len(series) - SERIES_SHOWN} more")
    return lines


@dataclass(frozen=True)
class SlackChannel:
    """Posts :func:`slack_payload` to a Slack incoming webhook (its URL is the secret)."""

    webhook_url: Secret
    timeout_s: float = TIMEOUT_S
    name: ClassVar[str] = "slack"

    def __post_init__(self) -> None:
        object.__setattr__(self, "webhook_url", as_secret(self.webhook_url))

    def send(self, message: AlertMessage) -> None:
        body = json.dumps(slack_payload(message)).encode()
        post_json(self.name, self.webhook_url.reveal(), body, self.timeout_s, {})


def alert_text(message: AlertMessage) -> str:
    """The alert in plain text, for an email body."""
    alert = message.alert
    lines = [alert.title, "", f"Severity: {alert.severity}", f"Day: {alert.day}"]
    if alert.incident is None:
        lines += ["", "Missing:"] + [f"  - {name} {why}" for name, why in alert.missing.items()]
        lines += ["", "Silence is not health: check the day's ingest and scoring runs."]
    else:
        incident, peak = alert.incident, alert.incident.peak
        threshold = f"{peak.threshold:.4g}" if peak.threshold is not None else "not recorded"
        lines += [
            f"From: {incident.start.strftime(TIME_FORMAT)}",
            f"To: {incident.end.strftime(TIME_FORMAT)} ({incident.minutes} min)",
            f"Peak: {peak.ratio:.2f}x threshold on {peak.series} at {peak.peak_ts:%H:%M} UTC "
            f"(score {peak.peak_score:.4g}, threshold {threshold})",
            "",
            "Series:",
        ]
        lines += [f"  - {line}" for line in _series_lines(alert)]
    lines += ["", f"Report: {message.report_url}", f"Dedup key: {alert.dedup_key}"]
    return "\n".join(lines) + "\n"


def email_message(message: AlertMessage, sender: str, recipients: tuple[str, ...]) -> EmailMessage:
    """The alert as an email, with the incident's plot attached as a PNG when there is one."""
    alert = message.alert
    mail = EmailMessage()
    mail["Subject"] = f"[Passion {alert.severity.upper()}] {alert.title}"
    mail["From"] = sender
    mail["To"] = ", ".join(recipients)
    mail["Date"] = formatdate(usegmt=True)
    mail[DEDUP_HEADER] = alert.dedup_key
    mail.set_content(alert_text(message))
    if message.plot_png:
        filename = f"passion-{alert.day}-{alert.dedup_key[:12]}.png"
        mail.add_attachment(message.plot_png, maintype="image", subtype="png", filename=filename)
    return mail


@dataclass(frozen=True)
class EmailChannel:
    """Sends :func:`email_message` over SMTP, with STARTTLS and login when asked for.

    ``ca_file`` trusts a private CA (an internal relay's) for STARTTLS besides the system's.
    """

    host: str
    sender: str
    recipients: tuple[str, ...]
    port: int = 587
    user: str | None = None
    password: Secret | None = None
    starttls: bool = True
    ca_file: str | None = None
    timeout_s: float = TIMEOUT_S
    name: ClassVar[str] = "email"

    def __post_init__(self) -> None:
        object.__setattr__(self, "recipients", tuple(self.recipients))
        object.__setattr__(self, "password", as_secret(self.password))

    def send(self, message: AlertMessage) -> None:
        mail = email_message(message, self.sender, self.recipients)  # the plot is drawn here, not timed
        where = f"{self.host}:{self.port}"
        refused = within_deadline(
            f"email: {where}", self.timeout_s, lambda deadline: self._send(mail, deadline)
        )
        if refused:
            # Retried as a whole on the next run: a recipient may get it twice, none misses it.
            raise DeliveryError(f"email: {where} refused {', '.join(sorted(refused))}")

    def _send(self, mail: EmailMessage, deadline: Deadline) -> dict[str, Any]:
        try:
            with DeadlineSMTP(self.host, self.port, deadline) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context(cafile=self.ca_file))
                if self.user:
                    smtp.login(self.user, self.password.reveal() if self.password else "")
                return smtp.send_message(mail)
        except (smtplib.SMTPException, OSError) as error:
            raise DeliveryError(f"email: {self.host}:{self.port}: {error}") from None
