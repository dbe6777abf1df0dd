"""Alerting: rules, dedup across runs, and delivery to real local receivers (HTTP and SMTP)."""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.policy
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cluster import free_port

from passion_tasks.alerting import (
    AlertConfig,
    DeliveryError,
    EmailChannel,
    Route,
    Rules,
    Secret,
    SeverityLevel,
    SlackChannel,
    Snooze,
    WebhookChannel,
    alert_day,
)
from passion_tasks.alerting.channels import AlertMessage
from passion_tasks.alerting.rules import (
    ANOMALY,
    NO_DATA,
    Alert,
    Anomaly,
    Incident,
    anomalies,
    apply_cooldown,
    decide,
    route_targets,
    severity,
)
from passion_tasks.errors import ExitCode, UsageError
from passion_tasks.incidents.day import Cause, Drivers, ExplainedIncident
from passion_tasks.incidents.model import group_incidents, with_severity
from passion_tasks.lake import Lake, schemas
from passion_tasks.models.scoring import group_events, write_batch

DAY = dt.date(2026, 11, 21)
NOW = dt.datetime(2026, 11, 22, 1, 0, tzinfo=dt.UTC)
LATER = dt.datetime(2026, 11, 22, 2, 0, tzinfo=dt.UTC)
P95, P99, ERRORS = "cdn_ttfb_p95{edge=FRA2}", "cdn_ttfb_p99{edge=FRA2}", "cdn_5xx_rate{edge=FRA2}"
LHR = "cdn_ttfb_p95{edge=LHR1}"
WEBHOOK_SECRET = "whsec-9f8e7d6c5b4a"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# -- the day's data ----------------------------------------------------------------------------


def day_scores(
    series: str, anomalous: list[tuple[int, int]], *, day: dt.date = DAY, peak: float = 10.0
) -> pd.DataFrame:
    """A day of scores for ``series`` with threshold 4: score 1, and ``peak`` on the minutes
    ``[first, last)`` of each range (so the peak is ``peak / 4`` times the threshold)."""
    minutes = np.arange(1440)
    score = np.ones(1440)
    for first, last in anomalous:
        score[first:last] = peak
    expected = 0.2 + 0.05 * np.sin(2 * np.pi * minutes / 1440)
    return pd.DataFrame(
        {
            "ts": pd.date_range(pd.Timestamp(day, tz="UTC"), periods=1440, freq="min"),
            "series": series,
            "detector": "rolling_mad",
            "model_version": "fit:2026-11-07..2026-11-20",
            "value": expected + 0.02 * score,
            "expected": expected,
            "score": score,
            "threshold": 4.0,
            "is_anomaly": score >= 4.0,
        }
    )


def write_day(lake: Lake, *scores: pd.DataFrame, day: dt.date = DAY, cdn_rows: int = 1) -> None:
    """Scores and events of the series, one batch as ``steps.score_day`` writes them, and ``cdn_rows`` log
    rows."""
    table = pa.Table.from_pandas(pd.concat(scores), schema=schemas.SCORES, preserve_index=False)
    write_batch(lake, day, table, [frame["series"].iloc[0] for frame in scores])
    row = {
        "ts": pd.Timestamp(day, tz="UTC"),
        "sc_status": 200,
        "source_format": "cloudfront",
        "source_file": "a",
    }
    lake.write_partition("cdn_logs", day, pa.Table.from_pylist([row] * cdn_rows, schema=schemas.CDN_LOGS))


def ledger_lines(lake: Lake, day: dt.date = DAY) -> list[dict]:
    text = lake.read_bytes(f"alerts/dt={day}/sent.jsonl").decode()
    return [json.loads(line) for line in text.splitlines()]


# -- receivers ---------------------------------------------------------------------------------


@dataclass
class Request:
    path: str
    headers: Message
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A local HTTP endpoint that records POSTs and answers ``statuses`` in turn, then 200."""

    url: str
    requests: list[Request] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)


class RecordingHandler(BaseHTTPRequestHandler):
    """Records each POST on its server's ``receiver`` and answers the next status queued there."""

    def do_POST(self) -> None:
        received: Receiver = self.server.receiver
        body = self.rfile.read(int(self.headers["Content-Length"]))
        received.requests.append(Request(self.path, self.headers, body))
        self.send_response(received.statuses.pop(0) if received.statuses else 200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingHandler)
    server.receiver = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.receiver
    server.shutdown()
    server.server_close()


def webhook_config(receiver: Receiver, **rules: object) -> AlertConfig:
    return AlertConfig(
        rules=Rules(**rules),
        webhook=WebhookChannel(url=Secret(receiver.url + "/alerts"), secret=Secret(WEBHOOK_SECRET)),
        min_severity="info",
    )


# -- webhook, dedup, retries -------------------------------------------------------------------


def test_webhook_is_delivered_once_across_two_runs_with_a_valid_signature(
    lake: Lake, receiver: Receiver
) -> None:
    write_day(lake, day_scores(P95, [(845, 855)]))
    config = webhook_config(receiver)

    first = alert_day(lake, DAY, config, now=NOW)
    second = alert_day(lake, DAY, config, now=LATER)

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert request.path == "/alerts"
    expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Passion-Signature"] == expected
    payload = request.json()
    assert payload["kind"] == ANOMALY
    assert payload["severity"] == "warning"  # 2.5x the threshold for 10 minutes
    assert payload["series"] == [P95]
    assert (payload["start"], payload["end"], payload["minutes"]) == (
        "2026-11-21T14:05:00+00:00",
        "2026-11-21T14:14:00+00:00",
        10,
    )
    assert payload["peak"]["ratio"] == 2.5
    assert payload["report"] == lake.uri("reports/dt=2026-11-21/index.html")
    assert payload["sent_at"] == "2026-11-22T01:00:00+00:00"
    key = first.alerts[0].dedup_key
    assert payload["dedup_key"] == key == second.alerts[0].dedup_key
    assert request.headers["X-Passion-Dedup-Key"] == key
    assert [(d.channel, d.route) for d in first.sent] == [("webhook", "default")]
    assert (second.sent, len(second.duplicates)) == ([], 1)
    lines = ledger_lines(lake)
    assert [(line["dedup_key"], line["channel"], line["status"]) for line in lines] == [
        (key, "webhook", "sent")
    ]
    assert lines[0]["sent_at"] == "2026-11-22T01:00:00+00:00"
    assert lines[0]["incident"]["series"] == [P95]


def test_the_ledger_deduplicates_on_an_s3_lake(s3_bucket: str, receiver: Receiver) -> None:
    lake = Lake(f"s3://{s3_bucket}/lake")
    write_day(lake, day_scores(P95, [(845, 855)]))
    config = webhook_config(receiver)

    runs = [alert_day(lake, DAY, config, now=NOW) for _ in range(2)]

    assert [(len(run.sent), len(run.duplicates)) for run in runs] == [(1, 0), (0, 1)]
    assert len(receiver.requests) == 1
    assert [line["status"] for line in ledger_lines(lake)] == ["sent"]


def test_a_failed_delivery_is_logged_and_retried_on_the_next_run(lake: Lake, receiver: Receiver) -> None:
    write_day(lake, day_scores(P95, [(845, 855)]))
    config = webhook_config(receiver)
    receiver.statuses = [500]

    failing = alert_day(lake, DAY, config, now=NOW)

    assert failing.exit_code == ExitCode.FAILED
    assert failing.failed[0].error == f"webhook: {receiver.url} answered HTTP 500 Internal Server Error"
    with pytest.raises(DeliveryError, match="failed 1"):
        failing.raise_for_failures()
    assert [line["status"] for line in ledger_lines(lake)] == ["failed"]

    retried = alert_day(lake, DAY, config, now=LATER)
    again = alert_day(lake, DAY, config, now=LATER)

    assert (len(retried.sent), retried.exit_code) == (1, ExitCode.OK)
    assert (again.sent, len(again.duplicates)) == ([], 1)
    assert len(receiver.requests) == 2
    assert receiver.requests[0].body.replace(b"01:00:00", b"02:00:00") == receiver.requests[1].body
    assert [(line["status"], line["sent_at"]) for line in ledger_lines(lake)] == [
        ("failed", "2026-11-22T01:00:00+00:00"),
        ("sent", "2026-11-22T02:00:00+00:00"),
    ]


def test_a_redirect_is_not_a_delivery(lake: Lake, receiver: Receiver) -> None:
    write_day(lake, day_scores(P95, [(845, 855)]))
    receiver.statuses = [302]

    run = alert_day(lake, DAY, webhook_config(receiver), now=NOW)

    assert run.failed[0].error == f"webhook: {receiver.url} answered HTTP 302 Found"


# -- incidents, snoozes, cooldown --------------------------------------------------------------


def test_overlapping_events_of_several_series_are_one_incident(lake: Lake, receiver: Receiver) -> None:
    # An edge's p95 and p99 ttfb overlap, its 5xx rate follows 3 minutes later: one incident.
    # Another edge at 20:00 is another incident.
    write_day(
        lake,
        day_scores(P95, [(845, 860)]),
        day_scores(P99, [(848, 856)]),
        day_scores(ERRORS, [(862, 867)], peak=16.0),
        day_scores(LHR, [(1200, 1206)]),
    )

    run = alert_day(lake, DAY, webhook_config(receiver), now=NOW)

    assert [alert.series for alert in run.alerts] == [(ERRORS, P95, P99), (LHR,)]
    payloads = [request.json() for request in receiver.requests]
    assert [(p["start"], p["end"], p["minutes"]) for p in payloads] == [
        ("2026-11-21T14:05:00+00:00", "2026-11-21T14:26:00+00:00", 22),
        ("2026-11-21T20:00:00+00:00", "2026-11-21T20:05:00+00:00", 6),
    ]
    assert [a["series"] for a in payloads[0]["anomalies"]] == [P95, P99, ERRORS]
    assert [p["severity"] for p in payloads] == ["critical", "warning"]
    # The day has no log rows to explain it from: the cause is the edge the detectors flagged alone.
    assert payloads[0]["title"] == (
        "cdn_5xx_rate{edge=FRA2} and 2 more series anomalous at edge FRA2 alone 2026-11-21 14:05-14:26 UTC "
        "(22 min, peak 4.0x threshold)"
    )
    assert payloads[0]["cause"]["slice"] == {"edge": "FRA2"}


def test_a_snoozed_series_sends_nothing_until_the_snooze_ends(lake: Lake, receiver: Receiver) -> None:
    write_day(lake, day_scores(P95, [(845, 855), (1140, 1150)]))  # 14:05 and 19:00
    snoozes = [{"series": "cdn_ttfb_*{edge=FRA2}", "until": "2026-11-21T18:00:00Z", "reason": "maintenance"}]
    lake.write_text("alerts/snoozes.json", json.dumps(snoozes))

    run = alert_day(lake, DAY, webhook_config(receiver), now=NOW)

    assert [(a.series, a.start.hour) for a in run.snoozed] == [(P95, 14)]
    assert [request.json()["start"] for request in receiver.requests] == ["2026-11-21T19:00:00+00:00"]


def test_a_snooze_from_the_config_silences_the_whole_day(lake: Lake, receiver: Receiver) -> None:
    write_day(lake, day_scores(P95, [(845, 855)]))
    config = webhook_config(receiver)
    config = AlertConfig(
        rules=config.rules,
        webhook=config.webhook,
        min_severity="info",
        snoozes=(Snooze.from_dict({"series": P95, "until": "2026-11-22"}),),
    )

    run = alert_day(lake, DAY, config, now=NOW)

    assert (len(run.snoozed), run.alerts, receiver.requests) == (1, [], [])


def test_cooldown_holds_back_repeats_within_the_window_across_midnight(
    lake: Lake, receiver: Receiver
) -> None:
    before = DAY - dt.timedelta(days=1)
    write_day(lake, day_scores(P95, [(1420, 1430)], day=before), day=before)  # 23:40-23:49
    # 00:20 is 31 minutes after yesterday's incident; 10:00 is clear; 10:40 is 31 minutes after it.
    write_day(lake, day_scores(P95, [(20, 30), (600, 610), (640, 650)]))
    config = webhook_config(receiver, cooldown=dt.timedelta(hours=1))

    alert_day(lake, before, config, now=NOW)
    run = alert_day(lake, DAY, config, now=NOW)

    assert [incident.start.strftime("%H:%M") for incident in run.in_cooldown] == ["00:20", "10:40"]
    starts = [request.json()["start"] for request in receiver.requests]
    assert starts == ["2026-11-20T23:40:00+00:00", "2026-11-21T10:00:00+00:00"]


def test_without_cooldown_every_incident_alerts(lake: Lake, receiver: Receiver) -> None:
    write_day(lake, day_scores(P95, [(600, 610), (640, 650)]))

    run = alert_day(lake, DAY, webhook_config(receiver, cooldown=dt.timedelta(0)), now=NOW)

    assert (len(run.sent), run.in_cooldown) == (2, [])


# -- a day without data ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("write", "missing"),
    [
        (lambda lake: None, {"cdn_logs": "has no partition", "scores": "has no partition"}),
        (lambda lake: write_day(lake, day_scores(P95, []), cdn_rows=0), {"cdn_logs": "has 0 rows"}),
    ],
    ids=["nothing", "no-log-rows"],
)
def test_a_day_without_data_is_an_alert(lake: Lake, receiver: Receiver, write, missing: dict) -> None:
    write(lake)
    config = webhook_config(receiver)

    run = alert_day(lake, DAY, config, now=NOW)
    rerun = alert_day(lake, DAY, config, now=LATER)

    assert [(alert.kind, alert.severity, dict(alert.missing)) for alert in run.alerts] == [
        (NO_DATA, "critical", missing)
    ]
    assert (len(run.sent), len(rerun.duplicates), len(receiver.requests)) == (1, 1, 1)
    payload = receiver.requests[0].json()
    assert (payload["kind"], payload["missing"], payload["series"]) == (NO_DATA, missing, [])


# -- Slack and email ---------------------------------------------------------------------------


def test_slack_gets_blocks_with_title_severity_series_times_and_the_report(
    lake: Lake, receiver: Receiver
) -> None:
    write_day(lake, day_scores(P95, [(845, 865)], peak=14.0))  # 3.5x for 20 minutes
    config = AlertConfig(
        slack=SlackChannel(webhook_url=Secret(receiver.url + "/services/T0/B0/tok")),
        report_url="https://reports.example.com/passion/{day}/",
    )

    run = alert_day(lake, DAY, config, now=NOW)

    assert [(d.channel, d.alert.severity) for d in run.sent] == [("slack", "critical")]
    request = receiver.requests[0]
    assert request.path == "/services/T0/B0/tok"
    title = (
        f"[CRITICAL] {P95} anomalous at edge FRA2 alone 2026-11-21 14:05-14:24 UTC "
        "(20 min, peak 3.5x threshold)"
    )
    blocks = request.json()["blocks"]
    assert request.json()["text"] == title
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": title}}
    assert [item["text"] for item in blocks[1]["fields"]] == [
        "*Severity*\ncritical",
        "*Day*\n2026-11-21",
        "*Start*\n2026-11-21 14:05 UTC",
        "*End*\n2026-11-21 14:24 UTC",
        "*Duration*\n20 min",
        f"*Peak*\n3.50x threshold on {P95} at 14:05 UTC",
    ]
    assert blocks[2]["text"]["text"] == f"*Series*\n• `{P95}`"
    assert (
        blocks[3]["text"]["text"] == "<https://reports.example.com/passion/2026-11-21/|Open the day's report>"
    )


@dataclass
class Inbox:
    """An aiosmtpd handler keeping each message, whether it came over TLS, and the logins tried."""

    messages: list[tuple[list[str], bytes, bool]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append((envelope.rcpt_tos, envelope.content, session.ssl is not None))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=auth_data.password == b"smtp-pass")


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, in PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "passion test relay")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "relay.pem", folder / "relay.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def test_email_goes_over_starttls_with_login_and_the_incident_plot(lake: Lake, tmp_path: Path) -> None:
    write_day(lake, day_scores(P95, [(845, 855)]), day_scores(P99, [(846, 852)]))
    cert_file, key_file = self_signed_certificate(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_file, key_file)
    inbox = Inbox()
    port = free_port()
    relay = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=tls,
        require_starttls=True,
        authenticator=inbox.authenticate,
    )
    relay.start()
    try:
        config = AlertConfig(
            email=EmailChannel(
                host="127.0.0.1",
                port=port,
                sender="passion@example.com",
                recipients=("oncall@example.com", "sre@example.com"),
                user="passion",
                password=Secret("smtp-pass"),
                ca_file=str(cert_file),
            )
        )
        run = alert_day(lake, DAY, config, now=NOW)
    finally:
        relay.stop()

    assert [d.channel for d in run.sent] == ["email"]
    assert inbox.logins == [("passion", "smtp-pass")]
    [(recipients, content, over_tls)] = inbox.messages
    assert (recipients, over_tls) == (["oncall@example.com", "sre@example.com"], True)
    mail = email.message_from_bytes(content, policy=email.policy.default)
    assert mail["Subject"] == (
        f"[Passion WARNING] {P95} and 1 more series anomalous at edge FRA2 alone 2026-11-21 14:05-14:14 UTC "
        "(10 min, peak 2.5x threshold)"
    )
    assert "Report: " + lake.uri("reports/dt=2026-11-21/index.html") in mail.get_body().get_content()
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_content_type() == "image/png"
    assert attachment.get_filename() == f"passion-2026-11-21-{run.alerts[0].dedup_key[:12]}.png"
    png = attachment.get_content()
    assert png.startswith(PNG_MAGIC)
    # IHDR: the report's incident figure for 2 series (values, score, values): 10 x 5.125 in at 100 dpi.
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1000, 512)


# -- deadlines ---------------------------------------------------------------------------------

#: A trickling receiver sends a byte this often: never silent for as long as a per-read timeout.
TRICKLE_S = 0.1
#: The deadline the tests give a delivery; a trickled answer takes 4 to 8 s in all.
DEADLINE_S = 1


class Trickler:
    """A receiver on 127.0.0.1 that answers one byte every :data:`TRICKLE_S`, over TLS with ``tls``.

    ``converse(reader, send)`` speaks the protocol. One thread, started before a test counts its threads,
    serves the connections one after the other; ``idle`` is set while it holds none.
    """

    def __init__(
        self,
        converse: Callable[[Any, Callable[[bytes], None]], None],
        tls: ssl.SSLContext | None = None,
    ):
        self.converse, self.tls = converse, tls
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.stop, self.idle = threading.Event(), threading.Event()
        self.idle.set()
        self.thread = threading.Thread(target=self._serve, name="trickler", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.idle.clear()
            with contextlib.suppress(OSError):
                self._converse(conn)
            conn.close()
            self.idle.set()

    def _converse(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        if self.tls:
            conn = self.tls.wrap_socket(conn, server_side=True)
        with conn, conn.makefile("rb") as reader:
            self.converse(reader, lambda data: self._trickle(conn, data))

    def _trickle(self, conn: socket.socket, data: bytes) -> None:
        for offset in range(len(data)):
            if self.stop.wait(TRICKLE_S):
                raise OSError("receiver stopped")
            conn.sendall(data[offset : offset + 1])

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.listener.close()


def answer_http(reader: Any, send: Callable[[bytes], None]) -> None:
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    reader.read(length)
    send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")


def answer_smtp(reader: Any, send: Callable[[bytes], None]) -> None:
    send(b"220 trickle ESMTP\r\n")
    while command := reader.readline():
        verb = command[:4].upper()
        if verb == b"DATA":
            send(b"354 go on\r\n")
            while reader.readline() not in (b".\r\n", b""):
                pass
            send(b"250 queued\r\n")
        else:
            send({b"EHLO": b"250 trickle\r\n", b"QUIT": b"221 bye\r\n"}.get(verb, b"250 OK\r\n"))
        if verb == b"QUIT":
            return


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def no_data_message() -> AlertMessage:
    alert = Alert(NO_DATA, DAY, "critical", missing={"scores": "has no partition"})
    return AlertMessage(alert, "https://reports.example.com/passion/2026-11-21/", NOW.isoformat())


def http_url(port: int, scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{port}/hooks/tok-in-the-path-4321"


# Each receiver answers, complete and correct, after 4 to 8 s: a per-read timeout of 1 s never fires.
TRICKLED = {
    "webhook": (answer_http, lambda port: WebhookChannel(url=Secret(http_url(port)), timeout_s=DEADLINE_S)),
    "webhook-https": (
        answer_http,
        lambda port: WebhookChannel(url=Secret(http_url(port, "https")), timeout_s=DEADLINE_S),
    ),
    "slack": (
        answer_http,
        lambda port: SlackChannel(webhook_url=Secret(http_url(port)), timeout_s=DEADLINE_S),
    ),
    "email": (
        answer_smtp,
        lambda port: EmailChannel(
            host="127.0.0.1",
            port=port,
            sender="passion@example.com",
            recipients=("oncall@example.com",),
            starttls=False,
            timeout_s=DEADLINE_S,
        ),
    ),
}


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files in /proc")
@pytest.mark.parametrize("case", list(TRICKLED))
def test_a_receiver_answering_one_byte_at_a_time_fails_the_delivery_at_its_deadline(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    converse, channel_at = TRICKLED[case]
    tls = None
    if case.endswith("https"):
        cert_file, key_file = self_signed_certificate(tmp_path)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert_file, key_file)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))  # trusted by the default context
    receiver = Trickler(converse, tls)
    try:
        channel = channel_at(receiver.port)
        scheme = "https" if tls else "http"
        where = (
            f"127.0.0.1:{receiver.port}"
            if channel.name == "email"
            else f"{scheme}://127.0.0.1:{receiver.port}"
        )
        threads, fds = threading.active_count(), open_fds()

        began = time.monotonic()
        with pytest.raises(DeliveryError) as failure:
            channel.send(no_data_message())
        elapsed = time.monotonic() - began

        assert str(failure.value) == f"{channel.name}: {where} gave no complete answer within 1 s"
        assert DEADLINE_S <= elapsed < DEADLINE_S + 2
        # Nothing is left behind: no worker thread, and, once the receiver has seen the connection
        # end, not one open socket.
        assert threading.active_count() == threads
        assert receiver.idle.wait(5)
        assert open_fds() == fds
    finally:
        receiver.close()


# -- secrets -----------------------------------------------------------------------------------


def test_secrets_stay_out_of_the_ledger_reprs_and_logs(
    lake: Lake, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = {
        "PASSION_ALERT_WEBHOOK_URL": receiver.url + "/hooks/tok-webhook-path-1234",
        "PASSION_ALERT_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "PASSION_SLACK_WEBHOOK_URL": receiver.url + "/services/T0/B0/tok-slack-5678",
        "PASSION_SMTP_PASSWORD": "smtp-password-9012",
    }
    env = secrets | {
        "PASSION_SMTP_HOST": "127.0.0.1",
        "PASSION_SMTP_PORT": str(free_port()),  # nothing listens: the delivery fails
        "PASSION_SMTP_USER": "passion",
        "PASSION_ALERT_EMAIL_FROM": "passion@example.com",
        "PASSION_ALERT_EMAIL_TO": "oncall@example.com",
    }
    config = AlertConfig.from_env(env)
    write_day(lake, day_scores(P95, [(845, 855)]))
    receiver.statuses = [500, 500]

    with caplog.at_level(logging.INFO, logger="passion_tasks.alerting"):
        run = alert_day(lake, DAY, config, now=NOW)

    assert sorted(d.channel for d in run.failed) == ["email", "slack", "webhook"]
    ledger = lake.read_bytes("alerts/dt=2026-11-21/sent.jsonl").decode()
    for text in (ledger, repr(config), str(config), run.summary(), caplog.text):
        for name, secret in secrets.items():
            assert secret.split("/")[-1] not in text, name
    assert "Secret('***')" in repr(config)


# -- rules, routes and settings ----------------------------------------------------------------


def anomaly(series: str, start: str, end: str, ratio: float = 2.0) -> Anomaly:
    first, last = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC")
    minutes = round((last - first) / pd.Timedelta(minutes=1)) + 1
    return Anomaly(series, "rolling_mad", first, last, minutes, 4.0 * ratio, first, 4.0, ratio)


def explained(scores: pd.DataFrame) -> list[ExplainedIncident]:
    """The day's incidents of ``scores`` as the report groups them, with a cause naming their lead."""
    incidents = group_incidents(with_severity(group_events(scores), scores))
    return [ExplainedIncident(i, Drivers(), Cause(i.lead["series"], {})) for i in incidents]


def test_an_incident_alerts_whole_as_the_report_has_it() -> None:
    scores = pd.concat(
        [
            day_scores(P95, [(600, 610)]),
            day_scores(P99, [(605, 606)]),  # inside P95's span, too short alone: part of the incident
            day_scores(LHR, [(700, 705)]),  # an hour later: an incident of its own
        ]
    )
    decisions = decide(DAY, explained(scores), scores, Rules(min_minutes=3))
    assert [(a.series, a.incident.start.strftime("%H:%M"), a.incident.minutes) for a in decisions.alerts] == [
        ((P95, P99), "10:00", 10),
        ((LHR,), "11:40", 5),
    ]
    assert [a.series for a in decisions.below_minimums] == [P99]


@pytest.mark.parametrize(
    ("ratio", "minutes", "expected"),
    [
        (1.2, 30, "info"),  # long, but below every ratio minimum
        (1.5, 3, "warning"),
        (5.0, 1, "info"),
        (5.0, 2, "warning"),  # fewer minutes at a higher ratio: as much evidence as 3 at 1.5
        (3.0, 14, "warning"),
        (3.0, 15, "critical"),
        (8.0, 10, "critical"),
    ],
)
def test_severity_needs_the_ratio_of_a_level_and_its_evidence(
    ratio: float, minutes: int, expected: str
) -> None:
    incident = Incident((anomaly(P95, "2026-11-21 10:00", f"2026-11-21 10:{minutes - 1:02d}", ratio),))
    assert severity(incident, Rules().levels) == expected


def test_an_incident_is_as_severe_as_the_minutes_it_was_anomalous() -> None:
    # An origin's errors at 10:00-10:02 and again at 10:09-10:11, at eight times the threshold: the
    # rate's 15-minute window joins them into one event of 12 minutes across six minutes back to
    # normal, anomalous for six of them, as an incident is of 12 minutes that fail throughout.
    def errors(*bursts: tuple[int, int]) -> pd.DataFrame:
        scores = day_scores(ERRORS, list(bursts), peak=32.0).assign(detector="rate")
        return scores.assign(score=scores["score"].where(scores["is_anomaly"], 0.0))

    twice, throughout = errors((600, 603), (609, 612)), errors((600, 612))
    (event,) = group_events(twice).itertuples()
    assert event.minutes == 12

    def alerted(scores: pd.DataFrame) -> tuple[int, int, str]:
        (alert,) = decide(DAY, explained(scores), scores, Rules()).alerts
        return alert.incident.minutes, alert.incident.anomalous_minutes, alert.severity

    assert alerted(twice) == (12, 6, "warning")
    assert alerted(throughout) == (12, 12, "critical")


def test_a_change_a_few_clients_made_is_the_mildest_level_however_strong() -> None:
    crawl = (anomaly(ERRORS, "2026-11-21 10:00", "2026-11-21 10:29", 8.0),)
    theirs = Cause("4xx rate 2.0% → 40% at edge FRA2, made by one client 198.51.100.7", {}, ("198.51.100.7",))
    ours = Cause("4xx rate 2.0% → 40% at edge FRA2", {"edge": "FRA2"})
    assert severity(Incident(crawl, theirs), Rules().levels) == "info"
    assert severity(Incident(crawl, ours), Rules().levels) == "critical"


def test_a_departure_as_short_as_its_breakdowns_make_on_most_days_is_the_mildest_level() -> None:
    hiccup = (anomaly(ERRORS, "2026-11-21 10:00", "2026-11-21 10:02", 40.0),)
    cause = Cause("5xx rate 0% → 40% at edge FRA2", {"edge": "FRA2"})
    usual = replace(cause, usual="As on most training days: cdn_5xx_rate by edge departed for 3 minutes")
    assert severity(Incident(hiccup, usual), Rules().levels) == "info"
    assert severity(Incident(hiccup, cause), Rules().levels) == "warning"


def test_where_few_clients_made_part_of_an_incident_its_size_is_the_services_part() -> None:
    crawl = anomaly("cdn_4xx_rate{edge=FRA2}", "2026-11-21 10:00", "2026-11-21 10:29", 40.0)
    hiccup = anomaly("cdn_5xx_rate{edge=LHR3}", "2026-11-21 10:10", "2026-11-21 10:11", 2.5)
    cause = Cause("5xx rate 0% → 4.0% at edge LHR3", {"edge": "LHR3"})
    both = Incident((crawl, hiccup), replace(cause, news=("cdn_5xx_rate{edge=LHR3}",)))
    assert severity(both, Rules().levels) == "info"
    assert severity(replace(both, cause=cause), Rules().levels) == "critical"
    # A longer burst of errors beside the crawler is as severe as it would be alone.
    longer = replace(hiccup, end=hiccup.start + pd.Timedelta(minutes=4), minutes=5)
    assert severity(replace(both, anomalies=(crawl, longer)), Rules().levels) == "warning"


def test_the_ratio_is_the_peak_score_over_the_threshold_at_the_peak() -> None:
    scaled, unscaled, zero = (
        day_scores(P95, [(600, 610)]),
        day_scores(P99, [(600, 610)]),
        day_scores(LHR, [(600, 610)]),
    )
    scaled.loc[605, "score"] = 12.0
    unscaled["threshold"] = np.nan
    zero["threshold"] = 0.0
    scores = pd.concat([scaled, unscaled, zero])
    found = anomalies(group_events(scores), scores)
    assert [(a.series, a.peak_ts.strftime("%H:%M"), a.threshold, a.ratio) for a in found] == [
        (P95, "10:05", 4.0, 3.0),
        (LHR, "10:00", 0.0, 1.0),
        (P99, "10:00", None, 1.0),
    ]


def test_events_below_the_minimum_ratio_or_evidence_do_not_alert() -> None:
    scores = pd.concat(
        [
            day_scores(P95, [(600, 602)], peak=5.0),  # 2 minutes at 1.25x: less than 3 at 1.1x
            day_scores(P99, [(600, 610)], peak=4.2),  # 1.05x the threshold: too weak for 1.1
            day_scores(LHR, [(700, 703)], peak=4.4),  # 3 minutes at 1.1x: just enough
            day_scores(ERRORS, [(800, 802)], peak=16.0),  # 2 minutes at 4x: a spike, sure
        ]
    )
    decisions = decide(DAY, explained(scores), scores, Rules(min_ratio=1.1, min_minutes=3))
    # The 10:00 incident has no event that meets the minimums: it does not alert.
    assert sorted(a.series for a in decisions.below_minimums) == [P95, P99]
    assert [(alert.series, alert.severity) for alert in decisions.alerts] == [
        ((LHR,), "info"),
        ((ERRORS,), "warning"),
    ]


def test_cooldown_needs_every_series_of_an_incident_to_be_cooling_down() -> None:
    earlier = [([P95], pd.Timestamp("2026-11-21 09:50", tz="UTC"))]
    joined = Incident((anomaly(P95, "2026-11-21 10:00", "2026-11-21 10:05"),))
    with_new_series = Incident(
        (
            anomaly(P95, "2026-11-21 10:20", "2026-11-21 10:25"),
            anomaly(P99, "2026-11-21 10:20", "2026-11-21 10:22"),
        )
    )
    alerting, held = apply_cooldown([with_new_series, joined], dt.timedelta(hours=1), earlier)
    assert (alerting, held) == ([with_new_series], [joined])


def test_an_incident_more_severe_than_the_one_cooling_its_series_down_is_an_escalation() -> None:
    first = Incident((anomaly(P95, "2026-11-21 10:00", "2026-11-21 10:03", 1.2),))
    worse = Incident((anomaly(P95, "2026-11-21 10:20", "2026-11-21 10:39", 4.0),))
    same = Incident((anomaly(P95, "2026-11-21 10:50", "2026-11-21 10:53", 1.1),))
    rules = Rules()

    def rank(incident: Incident) -> int:
        return rules.rank(severity(incident, rules.levels))

    alerting, held = apply_cooldown([first, worse, same], dt.timedelta(hours=1), rank=rank)
    assert [severity(incident, rules.levels) for incident in alerting] == ["info", "critical"]
    assert held == [same]


def test_routes_send_by_severity_and_series_pattern() -> None:
    rules = Rules()
    routes = [
        Route(("webhook",), min_severity="warning", name="all"),
        Route(("email", "webhook"), min_severity="critical", name="pager"),
        Route(("slack",), min_severity="info", series=("*{edge=FRA2}",), name="fra2-team"),
    ]
    incident = Incident((anomaly(P95, "2026-11-21 10:00", "2026-11-21 10:05"),))
    fra2 = Alert(ANOMALY, DAY, "critical", incident)
    lhr = Alert(ANOMALY, DAY, "info", Incident((anomaly(LHR, "2026-11-21 10:00", "2026-11-21 10:05"),)))
    no_data = Alert(NO_DATA, DAY, "critical", missing={"scores": "has no partition"})

    assert route_targets(fra2, routes, rules) == [
        ("all", "webhook"),
        ("pager", "email"),
        ("fra2-team", "slack"),
    ]
    assert route_targets(lhr, routes, rules) == []
    assert route_targets(no_data, routes, rules) == [("all", "webhook"), ("pager", "email")]


def test_settings_from_the_environment() -> None:
    config = AlertConfig.from_env(
        {
            "PASSION_ALERT_WEBHOOK_URL": "https://hooks.example.com/passion",
            "PASSION_SMTP_HOST": "smtp.example.com",
            "PASSION_SMTP_STARTTLS": "false",
            "PASSION_ALERT_EMAIL_FROM": "passion@example.com",
            "PASSION_ALERT_EMAIL_TO": "a@example.com, b@example.com",
            "PASSION_ALERT_ROUTES": '[{"channels": ["email"], "min_severity": "page"}]',
            "PASSION_ALERT_MIN_MINUTES": "5",
            "PASSION_ALERT_COOLDOWN_MIN": "30",
            "PASSION_ALERT_LEVELS": '[{"name": "low"}, {"name": "page", "min_ratio": 2, "min_minutes": 10}]',
            "PASSION_ALERT_NO_DATA_SEVERITY": "page",
            "PASSION_ALERT_EXPECTED": "cdn_logs,metrics,scores",
            "PASSION_ALERT_SNOOZES": '[{"series": "cpu_*", "until": "2026-11-22T06:00"}]',
        }
    )
    assert sorted(config.channels) == ["email", "webhook"]
    assert config.email == EmailChannel(
        host="smtp.example.com",
        sender="passion@example.com",
        recipients=("a@example.com", "b@example.com"),
        starttls=False,
    )
    assert config.routes_in_effect() == (Route(("email",), min_severity="page", name="route1"),)
    assert config.rules == Rules(
        min_minutes=5,
        cooldown=dt.timedelta(minutes=30),
        levels=(SeverityLevel("low"), SeverityLevel("page", 2.0, 10)),
        no_data_severity="page",
        expected_datasets=("cdn_logs", "metrics", "scores"),
    )
    assert config.snoozes == (Snooze("cpu_*", pd.Timestamp("2026-11-22 06:00", tz="UTC")),)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PASSION_ALERT_ROUTES": '[{"channels": ["slack"]}]'}, "not configured"),
        ({"PASSION_ALERT_MIN_RATIO": "high"}, "PASSION_ALERT_MIN_RATIO must be a number"),
        ({"PASSION_ALERT_TIMEOUT_S": "0"}, "PASSION_ALERT_TIMEOUT_S must be a positive number"),
        ({"PASSION_SMTP_HOST": "smtp.example.com"}, "PASSION_ALERT_EMAIL_TO"),
        (
            {
                "PASSION_ALERT_MIN_SEVERITY": "urgent",
                "PASSION_SLACK_WEBHOOK_URL": "https://hooks.example.com/x",
            },
            "unknown severity 'urgent'",
        ),
    ],
)
def test_bad_settings_are_usage_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        AlertConfig.from_env(env)
