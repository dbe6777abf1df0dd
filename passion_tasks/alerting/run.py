"""One day's alerting: decide from the lake, skip what the ledger says was sent, deliver, record."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

from passion_tasks.alerting import ledger as ledgers
from passion_tasks.alerting.channels import AlertMessage
from passion_tasks.alerting.config import AlertConfig
from passion_tasks.alerting.delivery import DeliveryError
from passion_tasks.alerting.rules import (
    Alert,
    Anomaly,
    Incident,
    Rules,
    Snooze,
    decide,
    no_data_alert,
    route_targets,
)
from passion_tasks.errors import ExitCode, NoInputError, UsageError
from passion_tasks.incidents.day import EXPLAINED_INCIDENTS, day_incidents
from passion_tasks.lake import Day, Lake, PartitionNotFound, as_day, datasets, schemas
from passion_tasks.models.scoring import events_of
from passion_tasks.reporting import report_path

SNOOZES_PATH = f"{datasets.ALERTS}/snoozes.json"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """One alert to one channel, through the route that sent it there."""

    alert: Alert
    route: str
    channel: str
    error: str | None = None


@dataclass
class AlertRun:
    """What ``alert_day`` decided and did."""

    day: dt.date
    alerts: list[Alert] = field(default_factory=list)
    sent: list[Delivery] = field(default_factory=list)
    duplicates: list[Delivery] = field(default_factory=list)
    failed: list[Delivery] = field(default_factory=list)
    unrouted: list[Alert] = field(default_factory=list)
    snoozed: list[Anomaly] = field(default_factory=list)
    in_cooldown: list[Incident] = field(default_factory=list)
    below_minimums: list[Anomaly] = field(default_factory=list)
    #: How many series had scores on the day: none means the day had no data (and a no_data alert).
    series_scored: int = 0

    @property
    def exit_code(self) -> ExitCode:
        """FAILED when a delivery failed, NO_INPUT when nothing was scored that day, else OK."""
        if self.failed:
            return ExitCode.FAILED
        return ExitCode.OK if self.series_scored else ExitCode.NO_INPUT

    def summary(self) -> str:
        text = (
            f"{self.day}: {len(self.alerts)} alerts; sent {len(self.sent)}, "
            f"already sent {len(self.duplicates)}, failed {len(self.failed)}, "
            f"no route for {len(self.unrouted)}; held back {len(self.snoozed)} snoozed events, "
            f"{len(self.in_cooldown)} incidents in cooldown, "
            f"{len(self.below_minimums)} events below the minimums"
        )
        for delivery in self.failed:
            text += f"\n  failed {delivery.channel}: {delivery.alert.title}: {delivery.error}"
        return text

    def raise_for_failures(self) -> None:
        """Raise when a delivery failed, so a scheduler retries the run (which retries only those), and
        when nothing was scored: a day without data must not pass for a quiet day."""
        if self.failed:
            raise DeliveryError(self.summary())
        if not self.series_scored:
            raise NoInputError(
                f"{self.day}: nothing was scored (a no_data alert went to the configured channels)"
            )


def alert_day(
    lake: Lake,
    day: Day,
    config: AlertConfig | None = None,
    *,
    now: dt.datetime | None = None,
    live: bool = False,
) -> AlertRun:
    """Decide the day's alerts and deliver each one to its routes' channels once.

    ``config`` defaults to :meth:`AlertConfig.from_env`; ``now`` (UTC) is the ``sent_at`` written down.
    Every delivery is recorded in ``alerts/dt=D/sent.jsonl``; one already sent is skipped, one that
    failed is tried again. An incident already alerted (``Ledger.continued``) is sent again only when
    it has grown more severe, as an update of the first alert.

    ``live`` decides from the day's micro-batch scores so far (``live_scores``) instead of the nightly
    run's, and sends no ``no_data`` alert: the day is not over.
    """
    config = config or AlertConfig.from_env()
    day = as_day(day)
    sent_at = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    if live:
        table = day_table(lake, datasets.LIVE_SCORES, day, schemas.SCORES)
        scores, events = table.to_pandas(), events_of(table)
    else:
        scores = day_rows(lake, datasets.SCORES, day, schemas.SCORES)
        events = day_rows(lake, datasets.EVENTS, day, schemas.EVENTS)
    incidents = day_incidents(lake, day, scores, events)
    decisions = decide(
        day,
        incidents[:EXPLAINED_INCIDENTS],
        scores,
        config.rules,
        config.snoozes + lake_snoozes(lake),
        earlier=ledgers.alerted_incidents(ledgers.read_entries(lake, day - dt.timedelta(days=1))),
    )
    # Mid-day (``live``) a dataset without rows is the day not being over, not missing data.
    no_data = None
    if not live:
        rows = {dataset: dataset_rows(lake, dataset, day) for dataset in config.rules.expected_datasets}
        no_data = no_data_alert(day, rows, config.rules)
    run = AlertRun(
        day=day,
        alerts=[no_data, *decisions.alerts] if no_data else decisions.alerts,
        snoozed=decisions.snoozed,
        in_cooldown=decisions.in_cooldown,
        below_minimums=decisions.below_minimums,
        series_scored=scores["series"].nunique(),
    )
    ledger = ledgers.Ledger(lake, day)
    channels, routes, report = config.channels, config.routes_in_effect(), report_url(lake, day, config)
    for decided in run.alerts:
        targets = route_targets(decided, routes, config.rules)
        if not targets:
            run.unrouted.append(decided)
            continue
        for route, channel in targets:
            alert = news(decided, ledger, channel, config.rules)
            if alert is None:
                run.duplicates.append(Delivery(decided, route, channel))
                continue
            message = AlertMessage(alert, report, sent_at, _plot(scores, alert.incident))
            try:
                channels[channel].send(message)
            except DeliveryError as error:
                delivery = Delivery(alert, route, channel, error=config.scrub(str(error)))
                run.failed.append(delivery)
                log.warning("alert %s to %s failed: %s", alert.dedup_key[:12], channel, delivery.error)
            else:
                delivery = Delivery(alert, route, channel)
                run.sent.append(delivery)
                log.info("alert %s sent to %s: %s", alert.dedup_key[:12], channel, alert.title)
            ledger.record(
                {
                    "dedup_key": alert.dedup_key,
                    "channel": channel,
                    "route": route,
                    "sent_at": sent_at,
                    "status": ledgers.FAILED if delivery.error else ledgers.SENT,
                    "error": delivery.error,
                    "incident": alert.summary(),
                }
            )
    return run


def news(alert: Alert, ledger: ledgers.Ledger, channel: str, rules: Rules) -> Alert | None:
    """What ``channel`` is to get of ``alert``: the alert itself, the update of an alert sent for the
    same incident (when the incident is now more severe than every alert sent for it), or nothing
    when it was sent already."""
    if ledger.delivered(alert.dedup_key, channel):
        return None
    earlier = ledger.continued(alert, channel)
    if not earlier:
        return alert
    if rules.rank(alert.severity) <= max(rules.rank(entry["incident"]["severity"]) for entry in earlier):
        return None
    update = dataclasses.replace(alert, update_of=earlier[0]["dedup_key"])
    return None if ledger.delivered(update.dedup_key, channel) else update


def day_rows(lake: Lake, dataset: str, day: dt.date, schema: pa.Schema) -> pd.DataFrame:
    """The day's rows of ``dataset`` in ``schema``'s columns; none when the day has no partition."""
    return day_table(lake, dataset, day, schema).to_pandas()


def day_table(lake: Lake, dataset: str, day: dt.date, schema: pa.Schema) -> pa.Table:
    """``day_rows`` as an Arrow table."""
    try:
        return lake.read_partition(dataset, day, columns=schema.names)
    except PartitionNotFound:
        return schema.empty_table()


def dataset_rows(lake: Lake, dataset: str, day: dt.date) -> int | None:
    """Rows of the day's leaves of ``dataset``; None when it has no partition that day."""
    leaves = lake.leaves(dataset, day)
    return sum(leaf.rows for leaf in leaves) if leaves else None


def lake_snoozes(lake: Lake) -> tuple[Snooze, ...]:
    """The snoozes in the lake's ``alerts/snoozes.json``, a JSON list like ``PASSION_ALERT_SNOOZES``."""
    if not lake.exists(SNOOZES_PATH):
        return ()
    try:
        items = json.loads(lake.read_bytes(SNOOZES_PATH))
    except json.JSONDecodeError as error:
        raise UsageError(f"{lake.uri(SNOOZES_PATH)} is not valid JSON: {error}") from None
    if not isinstance(items, list):
        raise UsageError(f"{lake.uri(SNOOZES_PATH)} must hold a JSON list of snoozes")
    return tuple(Snooze.from_dict(item) for item in items)


def report_url(lake: Lake, day: dt.date, config: AlertConfig) -> str:
    if config.report_url:
        return config.report_url.replace("{day}", day.isoformat())
    return lake.uri(report_path(day))


def _plot(scores: pd.DataFrame, incident: Incident | None) -> Callable[[], bytes | None]:
    def render() -> bytes | None:
        if incident is None:
            return None
        # Imported here: matplotlib takes a while to load and only email needs the plot.
        from passion_tasks.alerting.plots import incident_png

        return incident_png(scores, incident)

    return render
