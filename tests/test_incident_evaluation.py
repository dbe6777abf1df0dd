"""The incident-level evaluation's rules: what finds a label, when a cause is right, and the day's sums."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd

from passion_tasks.evaluation.incidents import Found, Label, cause_named, judge_day, summarise

DAY = dt.date(2026, 10, 8)


def at(clock: str) -> pd.Timestamp:
    return pd.Timestamp(f"{DAY} {clock}", tz="UTC")


def label(dim: str, value: str, start: str = "10:00", minutes: int = 20, **extra: str) -> Label:
    family = "metrics" if dim == "service" and value != "all" else "cdn"
    entry = {"id": f"{dim}-{value}", "kind": "k", "source": family, "dim": dim, "value": value}
    entry |= {"start": f"{DAY} {start}:00", "minutes": minutes, **extra}
    return Label.from_json(entry)


def found(start: str, stop: str, cause: dict[str, str] | None = None, family: str = "cdn") -> Found:
    return Found(at(start), at(stop), family, cause or {}, "cdn_5xx_rate")


def test_a_label_written_as_json_reads_back_the_same() -> None:
    burst = label("edge", "FRA2", "23:55", minutes=12, channel="/live/ch3")
    entry = burst.to_json()
    assert entry["start"] == "2026-10-08T23:55:00" and entry["minutes"] == 12
    assert Label.from_json(json.loads(json.dumps(entry))) == burst


def test_an_incident_finds_a_label_it_overlaps_or_follows_within_the_grace() -> None:
    burst = label("edge", "FRA2")  # 10:00 to 10:20
    assert found("10:19", "10:30").finds(burst)
    assert found("10:34", "10:40").finds(burst)  # 14 minutes after its end
    assert not found("10:35", "10:40").finds(burst)
    assert not found("09:00", "10:00").finds(burst)  # ends as it starts
    assert not found("10:05", "10:10", family="metrics").finds(burst)


def test_a_cause_is_right_when_it_names_the_labelled_slice_and_no_narrower_one_for_an_outage() -> None:
    assert cause_named(label("edge", "FRA2"), found("10:00", "10:10", {"edge": "AMS1, FRA2"}))
    thin = label("edge", "FRA2", channel="ch7")
    assert not cause_named(thin, found("10:00", "10:10", {"edge": "FRA2"}))
    assert cause_named(thin, found("10:00", "10:10", {"edge": "FRA2", "path": "/live/ch7"}))
    assert cause_named(label("channel", "ch7"), found("10:00", "10:10", {"path": "/live/ch7"}))
    assert not cause_named(label("channel", "ch7"), found("10:00", "10:10", {"path": "/live/ch70"}))
    assert cause_named(label("device", "Roku"), found("10:00", "10:10", {"device": "Roku"}))
    outage = label("service", "all")
    assert cause_named(outage, found("10:00", "10:10", {}))
    assert not cause_named(outage, found("10:00", "10:10", {"edge": "FRA2"}))
    spike = label("service", "cif")
    assert cause_named(spike, Found(at("10:00"), at("10:05"), "metrics", {}, "cif"))


def test_a_day_counts_the_earliest_delay_the_latest_end_and_what_was_for_nothing() -> None:
    labels = [label("edge", "FRA2"), label("channel", "ch7", start="14:00")]
    incidents = [
        found("10:03", "10:30", {"edge": "FRA2"}),
        found("10:01", "10:05", {}),  # earlier, cause not named: the delay is its, the cause the other's
        found("12:00", "12:05"),  # no label behind it
    ]
    alerts = [found("10:03", "10:30"), found("18:00", "18:10")]

    outcome = judge_day(DAY, labels, incidents, alerts)

    assert outcome.delays == {"edge-FRA2": 1.0}
    assert outcome.overruns == {"edge-FRA2": 10.0}  # the label ends at 10:20, its report at 10:30
    assert outcome.causes_right == {"edge-FRA2"}
    assert outcome.alerted == {"edge-FRA2"}
    assert (outcome.false_incidents, outcome.false_alerts) == (1, 1)

    # A crawler's entry, listed apart, is no incident: it neither finds a label nor counts as false.
    crawler = found("10:00", "10:20", {"edge": "FRA2"})
    quiet = judge_day(DAY + dt.timedelta(days=1), [], [found("03:00", "03:01")], [], [crawler, crawler])
    assert (quiet.false_incidents, quiet.routine) == (1, 2)
    summary = summarise([outcome, quiet])
    assert summary.row() == {
        "labelled": 2,
        "found": 1,
        "alerted": 1,
        "cause right": 1,
        "median delay (min)": 1.0,
        "median overrun (min)": 10.0,
        "false alerts/day (max)": 1,
        "false incidents/day (max)": 1,
        "false incidents/day (mean)": 1.0,
        "routine/day (mean)": 1.0,
        "quiet days": 1,
        "quiet days alerted": 0,
    }
