"""Micro-batches (``passion live``) on generated CloudFront logs delivered an hour file at a time, judged
against the nightly run of the same day: the same scores on the same minutes, each alert once, and the
bad input of the issue (a file delivered twice, a late file, a model promoted during the day, two
batches at once) with defined behaviour.

The world is ``test_nightly_incidents``'s: seed 19 at 30 requests a minute, models trained on three
days; on the fifth day an outage at 11:23 (42% of requests answer 5xx) and a latency spike on
/live/ch3 at 20:37. Its 48 hour files (two distributions) land in six micro-batches of four hours;
one file of 11:00 comes a batch late, and ``cdn_requests`` gets a new model after the third batch.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import shutil
from http.server import ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from passion_tasks import cli, steps
from passion_tasks.alerting import AlertConfig, Secret, WebhookChannel
from passion_tasks.alerting.ledger import Ledger
from passion_tasks.alerting.rules import ANOMALY, Alert, Anomaly, Incident, Rules
from passion_tasks.alerting.run import news
from passion_tasks.ingest.arrivals import land_arrival, new_files
from passion_tasks.lake import Lake, datasets, leases
from passion_tasks.lake.leases import LeaseHeld
from passion_tasks.live import complete_until, micro_batch, pending_files, read_state, stream_of
from passion_tasks.synthetic import generate

START, TRAIN_TO, DAY = dt.date(2026, 10, 1), dt.date(2026, 10, 3), dt.date(2026, 10, 5)
SEED, KINDS = 19, {"outage": 0.5, "latency_spike": 0.5}
LATE = "E2LIVE7QX3ABCD.2026-10-05-11"
PROMOTED = "cdn_requests"


def hour_of(path: Path) -> int:
    return int(path.name.split(".")[1][-2:])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, alert_hook: ThreadingHTTPServer) -> dict:
    root = tmp_path_factory.mktemp("live")
    sources, delivered, lake = root / "sources", root / "delivered", Lake((root / "lake").as_uri())
    generate(sources, START, 5, SEED, rate=30, server_errors=False, kinds=KINDS)
    for offset in range(4):
        day = START + dt.timedelta(days=offset)
        for source in datasets.SOURCES:
            steps.ingest_day(lake, source, day, str(sources))
        steps.build_features(lake, day)
    steps.train(lake, train_from=START, train_to=TRAIN_TO, promote=True)
    url = f"http://127.0.0.1:{alert_hook.server_address[1]}/alerts"
    config = AlertConfig(webhook=WebhookChannel(url=Secret(url), secret=Secret("s" * 32)))
    files = sorted(sources.glob(f"cdn/*/*/*{DAY}-*.gz"))
    batches, payloads, notes = [], [], []
    for first in range(0, 24, 4):
        due = [f for f in files if first <= hour_of(f) < first + 4 and not f.name.startswith(LATE)]
        due += [f for f in files if f.name.startswith(LATE) and first == 12]
        for file in due:
            target = delivered / "cdn" / file.parent.name / file.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(file, target)
        now = dt.datetime.combine(DAY, dt.time(first + 3, 59), dt.UTC) + dt.timedelta(minutes=3)
        alert_hook.payloads.clear()
        ran = steps.live_batches(lake, str(delivered), now=now, config=config)
        batches += [batch for batch in ran if batch.day == DAY]
        notes += [batch.note for batch in ran if batch.day == DAY - dt.timedelta(days=1)]
        payloads.append(list(alert_hook.payloads))
        if first == 8:
            steps.train(
                lake,
                "rolling_mad",
                series=[PROMOTED],
                train_from=START,
                train_to=TRAIN_TO,
                promote=True,
                effective_from=DAY,
            )
    alert_hook.payloads.clear()
    # After midnight, through the command: the day's last minute completes.
    args = ["live", "--input", str(delivered), "--now", "2026-10-06T00:06:00", "--lake", lake.url]
    assert cli.main(args) == 0
    last = read_state(lake, DAY)
    payloads.append(list(alert_hook.payloads))
    live_scores = lake.read_partition(datasets.LIVE_SCORES, DAY).to_pandas()
    # The nightly run of the same day, the book of record.
    for source in datasets.SOURCES:
        steps.ingest_day(lake, source, DAY, str(sources))
    steps.build_features(lake, DAY)
    steps.score_day(lake, DAY)
    alert_hook.payloads.clear()
    nightly_alerts = steps.alert_day(lake, DAY, config)
    return {
        "lake": lake,
        "batches": batches,
        "yesterday": notes,
        "payloads": payloads,
        "last_state": last,
        "live_scores": live_scores,
        "nightly_alerts": nightly_alerts,
        "nightly_payloads": list(alert_hook.payloads),
        "delivered": delivered,
    }


def test_each_minute_is_scored_once_and_as_the_nightly_run_scores_it(live: dict) -> None:
    scores = live["live_scores"]
    nightly = live["lake"].read_partition(datasets.SCORES, DAY).to_pandas()
    cdn = nightly[nightly["series"].str.startswith("cdn_")]
    assert not scores.duplicated(["series", "ts"]).any()
    assert len(scores) == len(cdn) == 1440 * cdn["series"].nunique()
    both = scores.merge(cdn, on=["series", "ts"], suffixes=("_live", "_nightly"), validate="one_to_one")
    assert len(both) == len(scores)
    assert (both["model_version_live"] == both["model_version_nightly"]).all()
    assert (both["is_anomaly_live"] == both["is_anomaly_nightly"]).all()
    assert both["is_anomaly_live"].sum() > 0
    # A mean of many requests is summed in the order the files landed, not the nightly run's: the
    # values, and so the scores, are equal but for the last bits.
    for column in ("value", "expected", "score"):
        np.testing.assert_allclose(both[f"{column}_live"], both[f"{column}_nightly"], rtol=1e-6, atol=1e-9)


def test_each_batch_scores_its_complete_minutes_and_a_late_file_or_a_new_model_rescores(live: dict) -> None:
    spans = [(batch.start.strftime("%H:%M"), batch.end.strftime("%H:%M")) for batch in live["batches"]]
    assert spans == [
        ("00:00", "03:59"),
        ("03:59", "07:59"),
        # Its 11:00 file of one distribution is late: that stream has delivered up to 10:59 alone.
        ("07:59", "10:59"),
        # The model of cdn_requests was promoted for the day: the day is scored again from midnight.
        ("00:00", "15:59"),
        ("15:59", "19:59"),
        ("19:59", "23:59"),
    ]
    assert [len(batch.arrivals) for batch in live["batches"]] == [8, 8, 7, 9, 8, 8]
    assert live["last_state"].scored_until == "2026-10-06T00:00:00+00:00"
    assert live["last_state"].models[PROMOTED] == f"{PROMOTED}/rolling_mad@v1"
    # Each batch before midnight worked on the day before too, which the nightly ingest had landed.
    assert len(live["yesterday"]) == 5
    assert all(note.startswith("the nightly ingest landed the day whole") for note in live["yesterday"])


def test_the_outage_alerts_once_from_the_batch_that_lands_it_and_the_nightly_run_repeats_nothing(
    live: dict,
) -> None:
    outage = [
        (index, payload)
        for index, payloads in enumerate(live["payloads"])
        for payload in payloads
        if payload["cause"]["text"].startswith("5xx rate")
    ]
    assert [index for index, _ in outage] == [3]
    ((_, alert),) = outage
    assert pd.Timestamp(alert["start"]) == pd.Timestamp("2026-10-05T11:23:00+00:00")
    assert alert["cause"]["slice"] == {}
    assert "update_of" not in alert
    # Every CDN incident the batches alerted, the nightly run finds alerted already; it alerts on the
    # server metrics, which only it scores.
    sent = {name for payloads in live["payloads"] for payload in payloads for name in payload["series"]}
    assert live["nightly_alerts"].duplicates
    for payload in live["nightly_payloads"]:
        assert not any(name.startswith("cdn_") for name in payload["series"]), payload["title"]
    assert sent and all(name.startswith("cdn_") for name in sent)


def test_a_late_file_is_landed_and_scored_when_it_lands(live: dict) -> None:
    (late,) = [arrival for arrival in live["batches"][3].arrivals if LATE in arrival.name]
    assert late.first_minute == dt.datetime(2026, 10, 5, 11, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_file_delivered_again_lands_once_and_a_changed_one_replaces_its_rows(
    where: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if where == "local":
        lake = Lake((tmp_path / "lake").as_uri())
    else:
        lake = Lake(f"s3://{request.getfixturevalue('s3_bucket')}/lake")
    folder = tmp_path / "in"
    generate(tmp_path / "src", DAY, 1, SEED, rate=30, anomalies=False)
    (first, second) = sorted((tmp_path / "src").glob("cdn/*/*/*2026-10-05-0[12].*.gz"))[:2]
    folder.mkdir()
    shutil.copy(first, folder / first.name)
    landed = {}
    for file in new_files(str(folder), DAY, landed):
        landed[file.name] = land_arrival(lake, DAY, file).version
    rows = lake.read_partition(datasets.CDN_LOGS, DAY).num_rows
    assert rows > 0
    # The same file listed again, unchanged: nothing to land.
    assert new_files(str(folder), DAY, landed) == []
    # Delivered again with the same content (a new modification time): landed again, counted once.
    os.utime(folder / first.name, ns=(0, 10**18))
    (again,) = new_files(str(folder), DAY, landed)
    arrival = land_arrival(lake, DAY, again)
    assert arrival.rows == rows
    assert lake.read_partition(datasets.CDN_LOGS, DAY).num_rows == rows
    # Delivered again with ten lines fewer: its rows are replaced.
    lines = gzip.decompress((folder / first.name).read_bytes()).splitlines(keepends=True)
    (folder / first.name).write_bytes(gzip.compress(b"".join(lines[:-10])))
    (changed,) = new_files(str(folder), DAY, landed | {again.name: again.version})
    assert land_arrival(lake, DAY, changed).rows == rows - 10
    shutil.copy(second, folder / second.name)
    (other,) = new_files(str(folder), DAY, {changed.name: changed.version})
    more = land_arrival(lake, DAY, other).rows
    table = lake.read_partition(datasets.CDN_LOGS, DAY, columns=["source_file"]).to_pandas()
    assert table["source_file"].value_counts().to_dict() == {changed.name: rows - 10, other.name: more}


def test_the_watcher_hears_of_the_files_a_batch_would_land_and_no_other(live: dict, tmp_path: Path) -> None:
    lake, day = live["lake"], DAY + dt.timedelta(days=1)
    generate(tmp_path / "src", day, 1, SEED, rate=30, anomalies=False)
    folder = tmp_path / "in"
    delivered = []
    for file in sorted((tmp_path / "src").glob(f"cdn/*/*/*{day}-0[01].*.gz")):
        target = folder / "cdn" / file.parent.name / file.name
        target.parent.mkdir(parents=True, exist_ok=True)
        delivered.append(shutil.copy(file, target))
    # A file of the day before delivered again: the nightly ingest has landed that day whole.
    (old,) = live["delivered"].glob(f"cdn/*/{LATE}.*.gz")
    shutil.copy(old, folder / "cdn" / old.parent.name / old.name)
    now = dt.datetime.combine(day, dt.time(2, 5), dt.UTC)
    assert sorted(file.name for file in pending_files(lake, str(folder), now)) == sorted(map(str, delivered))
    batch = micro_batch(lake, day, str(folder), now=now)
    assert len(batch.arrivals) == 4 and batch.scores is not None
    assert pending_files(lake, str(folder), now) == []
    # Delivered again with other content: heard of again.
    lines = gzip.decompress(Path(delivered[0]).read_bytes()).splitlines(keepends=True)
    Path(delivered[0]).write_bytes(gzip.compress(b"".join(lines[:-1])))
    assert [file.name for file in pending_files(lake, str(folder), now)] == [str(delivered[0])]


def test_a_batch_of_a_day_another_batch_holds_fails_and_changes_nothing(live: dict) -> None:
    lake = live["lake"]
    day = dt.date(2026, 10, 7)
    leases.acquire(lake, f"live/dt={day}", "another-batch")
    with pytest.raises(LeaseHeld, match="another-batch"):
        micro_batch(lake, day, str(live["delivered"]))
    assert not lake.exists(f"live/dt={day}/state.json")


def test_a_batch_that_dies_holds_its_day_no_longer_than_the_live_lease(
    live: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, day = live["lake"], dt.date(2026, 10, 8)

    def dies(*args: object) -> None:
        raise MemoryError("killed")

    monkeypatch.setattr("passion_tasks.live._micro_batch", dies)
    monkeypatch.setattr(leases, "release", lambda *args, **kwargs: False)
    with pytest.raises(MemoryError):
        micro_batch(lake, day, str(live["delivered"]))
    name = f"live/dt={day}"
    held = leases.current(lake, name)
    assert held is not None and held.expires_at - held.acquired_at == dt.timedelta(minutes=20)
    assert leases.current(lake, name, now=held.acquired_at + dt.timedelta(minutes=21)) is None


def test_a_minute_is_complete_once_every_stream_has_passed_it_or_the_day_is_over() -> None:
    def at(text: str) -> pd.Timestamp:
        return pd.Timestamp(text, tz="UTC")

    seen = {"cf/E1": at("2026-10-05 11:59:30"), "cf/E2": at("2026-10-05 11:40:10")}
    assert complete_until(seen, DAY, at("2026-10-05 12:02")) == at("2026-10-05 11:40")
    # A stream two hours behind the others is stalled: its silence is for the detectors to judge.
    seen["cf/E3"] = at("2026-10-05 09:58")
    assert complete_until(seen, DAY, at("2026-10-05 12:02")) == at("2026-10-05 11:40")
    last = {"cf/E1": at("2026-10-05 23:59:30")}
    assert complete_until(last, DAY, at("2026-10-06 00:02")) == at("2026-10-05 23:59")
    assert complete_until(last, DAY, at("2026-10-06 00:05")) == at("2026-10-06 00:00")
    assert stream_of("s3://logs/cf/E2LIVE7QX3ABCD.2026-10-05-09.c13.gz") == "s3://logs/cf/E2LIVE7QX3ABCD"


def incident(series: tuple[str, ...], start: str, end: str, ratio: float) -> Incident:
    anomalies = tuple(
        Anomaly(
            series=name,
            detector="rate",
            start=pd.Timestamp(start),
            end=pd.Timestamp(end),
            minutes=int((pd.Timestamp(end) - pd.Timestamp(start)) / pd.Timedelta(minutes=1)) + 1,
            peak_score=ratio,
            peak_ts=pd.Timestamp(start),
            threshold=1.0,
            ratio=ratio,
        )
        for name in series
    )
    return Incident(anomalies, None)


def test_an_incident_that_grows_is_one_alert_and_is_sent_again_only_when_more_severe(lake: Lake) -> None:
    rules = Rules()
    ledger = Ledger(lake, DAY)
    first = Alert(
        ANOMALY, DAY, "warning", incident(("cdn_5xx_rate",), "2026-10-05T11:23Z", "2026-10-05T11:25Z", 3)
    )
    assert news(first, ledger, "webhook", rules) == first
    ledger.record(
        {"dedup_key": first.dedup_key, "channel": "webhook", "status": "sent", "incident": first.summary()}
    )
    assert news(first, ledger, "webhook", rules) is None
    grown = Alert(
        ANOMALY,
        DAY,
        "warning",
        incident(("cdn_5xx_rate", "cdn_requests"), "2026-10-05T11:23Z", "2026-10-05T11:40Z", 3),
    )
    assert news(grown, ledger, "webhook", rules) is None
    assert news(grown, ledger, "email", rules) == grown
    worse = Alert(ANOMALY, DAY, "critical", grown.incident)
    update = news(worse, ledger, "webhook", rules)
    assert update is not None and update.update_of == first.dedup_key
    assert update.summary()["update_of"] == first.dedup_key
    assert update.title.startswith("Now critical: ")
    ledger.record(
        {"dedup_key": update.dedup_key, "channel": "webhook", "status": "sent", "incident": update.summary()}
    )
    assert news(worse, ledger, "webhook", rules) is None
    later = Alert(
        ANOMALY, DAY, "warning", incident(("cdn_5xx_rate",), "2026-10-05T15:00Z", "2026-10-05T15:05Z", 3)
    )
    assert news(later, ledger, "webhook", rules) == later
