"""The day's HTML report, and what it says drove each incident."""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from passion_tasks.alerting.rules import Rules, decide, severity
from passion_tasks.incidents.causes import (
    baseline_window,
    co_movement_sentence,
    co_movements,
    comparison_window,
    explain_incident,
    explain_rows,
    log_slices,
)
from passion_tasks.incidents.day import (
    Cause,
    ExplainedIncident,
    cause_of,
    day_incidents,
    flagged_slice,
    starting_slices,
    witnessed_slice,
)
from passion_tasks.incidents.model import Incident, group_incidents, with_severity
from passion_tasks.lake import Lake, schemas
from passion_tasks.models.scoring import group_events
from passion_tasks.reporting.report import (
    Drivers,
    SourceQuality,
    data_quality,
    day_report_html,
    render_day_report,
)

DAY = dt.date(2026, 11, 21)
SERIES = "cdn_ttfb_p95{edge=FRA2}"
IMAGE = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
CARD = re.compile(r'<div class="value">(\d+)</div><div class="label">([\w ]+)<')
EDGES = ("AMS1", "FRA2", "LHR3", "PAR4")
STEMS = ("/live/ch7/seg_001.ts", "/live/ch8/seg_001.ts")
DEVICES = ("iPhone", "Roku")
Rule = Callable[[str, str, str], bool]


def only(edge: str | None = None, stem: str | None = None, device: str | None = None) -> Rule:
    """The rule of the requests on ``edge``, for ``stem`` and from ``device`` (each: any, when None)."""
    wanted = {"edge": edge, "stem": stem, "device": device}

    def rule(edge: str, stem: str, device: str) -> bool:
        found = {"edge": edge, "stem": stem, "device": device}
        return all(value is None or found[part] == value for part, value in wanted.items())

    return rule


def at(clock: str, day: dt.date = DAY) -> pd.Timestamp:
    return pd.Timestamp(f"{day} {clock}", tz="UTC")


def requests(
    start: pd.Timestamp,
    minutes: int,
    *,
    fails: Rule = lambda edge, stem, device: False,
    slow: Rule = lambda edge, stem, device: False,
    served: Rule = lambda edge, stem, device: True,
    stems: tuple[str, ...] = STEMS,
) -> pd.DataFrame:
    """One request a minute for each edge, path (``stems``) and device (16 a minute), 10 s into the minute.

    Every tenth minute AMS1 serves Roku on ch8 a 503 (a 0.62% background error rate); ``fails``
    gives 503s, ``slow`` a 2 s time to first byte (else 0.1 s), ``served`` drops the others.
    """
    rows = []
    for minute in range(minutes):
        ts = start + pd.Timedelta(minutes=minute, seconds=10)
        for edge in EDGES:
            for stem in stems:
                for device in DEVICES:
                    if not served(edge, stem, device):
                        continue
                    background = minute % 10 == 0 and (edge, stem, device) == ("AMS1", STEMS[1], "Roku")
                    rows.append(
                        {
                            "ts": ts,
                            "edge_location": edge,
                            "cs_uri_stem": stem,
                            "live_channel": stem.split("/")[2] if stem.startswith("/live/") else None,
                            "sc_status": 503 if background or fails(edge, stem, device) else 200,
                            "device_family": device,
                            "edge_result_type": "Hit",
                            "sc_bytes": 1000,
                            "time_to_first_byte": 2.0 if slow(edge, stem, device) else 0.1,
                            "time_taken": 0.5,
                            "c_ip": f"10.{start.hour}.{len(rows) // 256}.{len(rows) % 256}",
                        }
                    )
    return pd.DataFrame(rows)


def fra2_ch7(edge: str, stem: str, device: str) -> bool:
    return edge == "FRA2" and stem == STEMS[0]


def ch7_iphone(edge: str, stem: str, device: str) -> bool:
    return stem == STEMS[0] and device == "iPhone"


def incident_logs(stems: tuple[str, ...] = STEMS, **rules: Rule) -> pd.DataFrame:
    """10:00-11:00 normal, then 11:00-11:30 with ``rules``."""
    return pd.concat(
        [requests(at("10:00"), 60, stems=stems), requests(at("11:00"), 30, stems=stems, **rules)],
        ignore_index=True,
    )


BASELINE = (at("10:00"), at("11:00"))


# -- explain_incident --------------------------------------------------------------------------


def test_a_5xx_burst_on_one_edge_and_path_is_named_by_both() -> None:
    explanation = explain_incident(
        incident_logs(fails=fra2_ch7), at("11:00"), at("11:30"), BASELINE, "cdn_5xx_rate"
    )

    assert explanation.sentence == (
        "5xx rate 0% → 100% at edge FRA2, path /live/ch7, all devices (overall 0.62% → 13%)"
    )
    assert [(part.dimension, part.values) for part in explanation.slices] == [
        ("edge_location", ("FRA2",)),
        ("path_group", ("/live/ch7",)),
    ]
    assert explanation.slices[0].traffic_share == 0.25
    assert explanation.slices[0].change_share == pytest.approx(1.0)
    assert explanation.spread == ("device_family",)
    assert explanation.explained_share == pytest.approx(1.0)


def crawl(
    start: pd.Timestamp, requests: int, addresses: Callable[[int], str | None], edge: str = "FRA2"
) -> pd.DataFrame:
    """A crawler on ``edge`` from ``start``: ``requests`` 404s, four a minute, on paths that do not
    exist, from ``addresses(request number)``."""
    return pd.DataFrame(
        {
            "ts": start + pd.Timedelta(seconds=15 * number),
            "edge_location": edge,
            "cs_uri_stem": f"/wp-content/plugins/p{number}/readme.txt",
            "live_channel": None,
            "sc_status": 404,
            "device_family": "Other",
            "edge_result_type": "Error",
            "sc_bytes": 500,
            "time_to_first_byte": 0.05,
            "time_taken": 0.05,
            "c_ip": addresses(number),
        }
        for number in range(requests)
    )


def crawled(addresses: Callable[[int], str | None], edge: str = "FRA2") -> pd.DataFrame:
    """``incident_logs`` with a ``crawl`` on ``edge`` from 11:00 to 11:30."""
    return pd.concat([incident_logs(), crawl(at("11:00"), 120, addresses, edge)], ignore_index=True)


def test_a_change_a_few_clients_made_is_named_with_them() -> None:
    def explained(addresses: Callable[[int], str | None], edge: str = "FRA2") -> tuple[tuple[str, ...], str]:
        logs = crawled(addresses, edge)
        explanation = explain_incident(logs, at("11:00"), at("11:30"), BASELINE, "cdn_4xx_rate")
        return explanation.clients, explanation.sentence

    clients, sentence = explained(lambda number: "198.51.100.7")
    assert clients == ("198.51.100.7",)
    assert sentence.endswith("(overall 0% → 20%), made by one client 198.51.100.7")
    clients, sentence = explained(lambda number: f"198.51.100.{number % 2}")
    assert clients == ("198.51.100.0", "198.51.100.1")
    assert sentence.endswith("made by clients 198.51.100.0 and 198.51.100.1")
    # On an edge that served nobody before, its requests are new traffic: the edge failed no viewer.
    clients, sentence = explained(lambda number: "198.51.100.7", "NEW1")
    assert clients == ("198.51.100.7",)
    assert sentence.endswith("made by one client 198.51.100.7")
    # The same 404s from 120 clients are the service's; logged without an address, no one's.
    for addresses in (lambda number: f"198.51.100.{number}", lambda number: None):
        clients, sentence = explained(addresses)
        assert clients == ()
        assert sentence.endswith("(overall 0% → 20%)")


def test_an_edge_that_fails_its_only_viewer_is_the_edges_incident() -> None:
    # THIN serves one viewer four requests a minute; from 11:00 every one of them fails. Its requests
    # are no new traffic there and nobody else's show the edge served anyone well.
    viewer = "198.51.100.9"
    logs = pd.concat(
        [
            incident_logs(),
            crawl(at("10:00"), 240, lambda number: viewer, "THIN").assign(sc_status=200),
            crawl(at("11:00"), 120, lambda number: viewer, "THIN"),
        ],
        ignore_index=True,
    )

    explanation = explain_incident(logs, at("11:00"), at("11:30"), BASELINE, "cdn_4xx_rate")

    assert explanation.clients == ()
    assert explanation.sentence == "4xx rate 0% → 100% at edge THIN (overall 0% → 20%)"


def test_a_cause_on_every_edge_says_all_edges() -> None:
    explanation = explain_incident(
        incident_logs(fails=ch7_iphone), at("11:00"), at("11:30"), BASELINE, "cdn_5xx_rate"
    )

    assert explanation.sentence == (
        "5xx rate 0% → 100% at path /live/ch7, device iPhone, all edges (overall 0.62% → 26%)"
    )
    assert explanation.spread == ("edge_location",)


def test_a_latency_spike_on_one_edge() -> None:
    explanation = explain_incident(
        incident_logs(slow=only(edge="FRA2")), at("11:00"), at("11:30"), BASELINE, "cdn_ttfb_p95"
    )

    assert explanation.sentence == (
        "ttfb p95 100 ms → 2.0 s at edge FRA2, all paths, all devices (overall 100 ms → 2.0 s)"
    )


def test_a_slowdown_of_every_title_of_one_folder_is_named_by_the_folder() -> None:
    # Six titles, the first two watched most: they hold most of the change, and the more of it per
    # request than the folder, but only as much of the folder's change as of its traffic.
    stems = (
        *(f"/vod/title{n}/seg_001.ts" for n in (0,) * 8 + (1,) * 3 + (2, 3, 4, 5)),
        *(f"/img/poster{n}.jpg" for n in range(4)),
        "/api/v2/items",
        "/api/v1/items",
        "/static/js/app.js",
        "/static/css/site.css",
        "/favicon.ico",
    )

    def vod(edge: str, stem: str, device: str) -> bool:
        return stem.startswith("/vod/")

    logs = incident_logs(stems, slow=vod)
    explanation = explain_incident(logs, at("11:00"), at("11:30"), BASELINE, "cdn_ttfb_gmean")

    assert explanation.sentence == (
        "ttfb geometric mean 100 ms → 2.0 s at path /vod, all edges, all devices (overall 100 ms → 650 ms)"
    )
    assert [(part.dimension, part.values) for part in explanation.slices] == [("path_root", ("/vod",))]

    # One version of the API, half of its folder's requests, slow alone: named by its own path.
    def v1(edge: str, stem: str, device: str) -> bool:
        return stem.startswith("/api/v1/")

    explanation = explain_incident(
        incident_logs(stems, slow=v1), at("11:00"), at("11:30"), BASELINE, "cdn_ttfb_p95"
    )
    assert [(part.dimension, part.values) for part in explanation.slices] == [("path_group", ("/api/v1",))]


def test_slow_requests_that_are_failures_are_named_as_such() -> None:
    explanation = explain_incident(
        incident_logs(fails=fra2_ch7, slow=fra2_ch7), at("11:00"), at("11:30"), BASELINE, "cdn_ttfb_p99"
    )

    assert explanation.mechanism is not None
    assert explanation.mechanism.values == ("5xx",)
    assert explanation.sentence.endswith("mostly 5xx responses (overall 100 ms → 2.0 s)")


def test_a_traffic_drop_is_compared_with_the_same_minutes_the_day_before() -> None:
    yesterday = DAY - dt.timedelta(days=1)
    logs = pd.concat(
        [
            requests(at("11:00", yesterday), 30),
            requests(at("11:00"), 30, served=lambda edge, stem, device: edge != "PAR4"),
        ],
        ignore_index=True,
    )
    window = comparison_window(
        "cdn_requests", at("11:00"), at("11:30"), (at("00:00"), at("23:59")), previous_day=True
    )

    explanation = explain_incident(logs, at("11:00"), at("11:30"), window, "cdn_requests")

    assert window == (at("11:00", yesterday), at("11:30", yesterday))
    assert (
        explanation.sentence
        == "requests 4.0/min → 0/min at edge PAR4, all paths, all devices (overall 16/min → 12/min)"
    )


def test_an_edge_whose_viewers_went_to_the_others_is_named_not_the_edges_that_took_them() -> None:
    # FRA2 serves half the requests the day before; in the incident it keeps a sixth of them, and
    # the other three edges take a third more each: the whole rises a little, 48/min -> 52/min.
    yesterday = DAY - dt.timedelta(days=1)

    def copies(start: pd.Timestamp, fra2: int, others: int) -> list[pd.DataFrame]:
        return fra2 * [requests(start, 30, served=lambda edge, stem, device: edge == "FRA2")] + others * [
            requests(start, 30, served=lambda edge, stem, device: edge != "FRA2")
        ]

    logs = pd.concat([*copies(at("11:00", yesterday), 6, 2), *copies(at("11:00"), 1, 4)], ignore_index=True)
    window = (at("11:00", yesterday), at("11:30", yesterday))

    explanation = explain_incident(logs, at("11:00"), at("11:30"), window, "cdn_requests")

    assert explanation.sentence == (
        "requests 24/min → 4.0/min at edge FRA2, all paths, all devices (overall 48/min → 52/min)"
    )
    edges = [row for row in explanation.breakdown if row.dimension == "edge_location"]
    assert (edges[0].value, edges[0].change_share) == ("FRA2", 1.0)


def test_an_edge_that_failed_over_is_named_though_the_busiest_gained_more_requests() -> None:
    # FRA2 (a quarter of the requests) serves none; its players retry on the others, and AMS1, half
    # the traffic, gains 12 requests a minute where FRA2 lost 8: the whole rises, 32/min -> 44/min.
    yesterday = DAY - dt.timedelta(days=1)

    def served(start: pd.Timestamp, copies: dict[str, int]) -> list[pd.DataFrame]:
        return [
            requests(start, 30, served=lambda edge, stem, device, chosen=name: edge == chosen)
            for name, count in copies.items()
            for _ in range(count)
        ]

    logs = pd.concat(
        [
            *served(at("11:00", yesterday), {"AMS1": 4, "FRA2": 2, "LHR3": 1, "PAR4": 1}),
            *served(at("11:00"), {"AMS1": 7, "LHR3": 2, "PAR4": 2}),
        ],
        ignore_index=True,
    )
    window = (at("11:00", yesterday), at("11:30", yesterday))

    explanation = explain_incident(logs, at("11:00"), at("11:30"), window, "cdn_requests")

    assert explanation.sentence == (
        "requests 8.0/min → 0/min at edge FRA2, all paths, all devices (overall 32/min → 44/min)"
    )


def test_an_edge_that_lost_its_viewers_is_named_though_a_thin_device_family_grew_more_for_its_share() -> None:
    # FRA2 keeps a sixth of its viewers and the other edges take them; meanwhile Macs, a fiftieth of
    # the requests the day before, ask for five a minute instead of one: more change for their share
    # of the traffic than FRA2's, but FRA2's 120 requests where 720 were expected are far less likely
    # than the Macs' 150 where 30 were.
    yesterday = DAY - dt.timedelta(days=1)

    def copies(start: pd.Timestamp, fra2: int, others: int, macs: int) -> list[pd.DataFrame]:
        mac = requests(
            start, 30, served=lambda edge, stem, device: (edge, stem, device) == ("AMS1", STEMS[0], "iPhone")
        )
        return (
            fra2 * [requests(start, 30, served=lambda edge, stem, device: edge == "FRA2")]
            + others * [requests(start, 30, served=lambda edge, stem, device: edge != "FRA2")]
            + macs * [mac.assign(device_family="Mac")]
        )

    logs = pd.concat(
        [*copies(at("11:00", yesterday), 6, 2, 1), *copies(at("11:00"), 1, 4, 5)], ignore_index=True
    )
    window = (at("11:00", yesterday), at("11:30", yesterday))

    explanation = explain_incident(logs, at("11:00"), at("11:30"), window, "cdn_requests")

    assert explanation.sentence == (
        "requests 24/min → 4.0/min at edge FRA2, all paths, all devices (overall 49/min → 57/min)"
    )


def test_the_small_bodies_of_errors_do_not_turn_a_drop_of_bytes_into_a_rise() -> None:
    # Every third minute every response fails with a small body: the bytes drop by a third, while
    # the 5xx class's bytes rise, further beyond their noise than the drop: they are how the bytes
    # fell, not a rise to explain, and no status class holds the change.
    yesterday = DAY - dt.timedelta(days=1)
    logs = pd.concat([requests(at("11:00", yesterday), 30), requests(at("11:00"), 30)], ignore_index=True)
    failing = (logs["ts"] >= at("11:00")) & (logs["ts"].dt.minute % 3 == 0)
    logs["sc_status"] = np.where(failing, 503, logs["sc_status"])
    logs["sc_bytes"] = np.where(logs["sc_status"] == 503, 200, 50_000)
    window = (at("11:00", yesterday), at("11:30", yesterday))

    explanation = explain_incident(logs, at("11:00"), at("11:30"), window, "cdn_bytes")

    assert explanation.sentence == "bytes sent 0.80 MB/min → 0.53 MB/min at all edges, all paths, all devices"
    assert explanation.mechanism is None


def test_the_report_shares_a_latency_change_as_its_cause_does() -> None:
    # FRA2 answers half its requests slowly (none the day before); the other three edges a fifth
    # instead of three tenths, each within its noise. The whole gains 24 slow requests, FRA2 60.
    yesterday = DAY - dt.timedelta(days=1)

    def slowed(start: pd.Timestamp, minutes: Callable[[str, int], bool]) -> pd.DataFrame:
        logs = requests(start, 30)
        minute = ((logs["ts"] - start) // pd.Timedelta(minutes=1)).astype(int)
        slow = [minutes(edge, m) for edge, m in zip(logs["edge_location"], minute, strict=True)]
        return logs.assign(time_to_first_byte=np.where(slow, 0.3, 0.1))

    logs = pd.concat(
        [
            slowed(at("11:00", yesterday), lambda edge, m: edge != "FRA2" and m % 10 < 3),
            slowed(at("11:00"), lambda edge, m: m % 2 == 0 if edge == "FRA2" else m % 10 < 2),
        ],
        ignore_index=True,
    )
    window = (at("11:00", yesterday), at("11:30", yesterday))

    explanation = explain_incident(logs, at("11:00"), at("11:30"), window, "cdn_ttfb_gmean")

    assert [(part.dimension, part.values, part.change_share) for part in explanation.slices] == [
        ("edge_location", ("FRA2",), 1.0)
    ]
    edges = [row for row in explanation.breakdown if row.dimension == "edge_location"]
    assert (edges[0].value, edges[0].change_share) == ("FRA2", 1.0)


def test_a_slice_that_lost_its_viewers_is_named_though_the_whole_barely_moved() -> None:
    # Three requests a minute per edge, path and device; FRA2's ch8 served nothing for 40 of the
    # incident's 120 minutes: 4% of the whole's requests, a third of its own.
    yesterday = DAY - dt.timedelta(days=1)
    logs = pd.concat(
        3
        * [
            requests(at("11:00", yesterday), 120),
            requests(at("11:00"), 40, served=lambda edge, stem, device: (edge, stem) != ("FRA2", STEMS[1])),
            requests(at("11:40"), 80),
        ],
        ignore_index=True,
    )
    window = (at("11:00", yesterday), at("13:00", yesterday))

    explanation = explain_incident(logs, at("11:00"), at("13:00"), window, "cdn_requests")

    assert explanation.sentence == (
        "requests 6.0/min → 4.0/min at edge FRA2, path /live/ch8, all devices (overall 48/min → 46/min)"
    )


def test_an_edge_that_served_nothing_the_day_before_is_named_for_the_traffic_it_took() -> None:
    # A standby edge takes FRA2's share of the viewers (a failover, a new edge): its requests were
    # 0 a minute the day before, not an undefined value, and its series is the one flagged.
    yesterday = DAY - dt.timedelta(days=1)
    logs = pd.concat(
        3
        * [
            requests(at("11:00", yesterday), 30, served=lambda edge, stem, device: edge != "FRA2"),
            requests(at("11:00"), 30),
        ],
        ignore_index=True,
    )
    window = (at("11:00", yesterday), at("11:30", yesterday))
    within = flagged_slice(["cdn_requests{edge=FRA2}"])

    explanation = explain_rows(
        log_slices(logs), at("11:00"), at("11:30"), window, "cdn_requests", within=within
    )

    assert explanation.changed
    assert explanation.sentence == (
        "requests 0/min → 12/min at edge FRA2, all paths, all devices (overall 36/min → 48/min)"
    )


def test_a_slice_the_detectors_flagged_alone_is_where_the_explanation_starts() -> None:
    # One failing request a minute on FRA2's ch7 among 16: flagged on those two series only.
    logs = incident_logs(
        fails=lambda edge, stem, device: edge == "FRA2" and stem == STEMS[0] and device == "Roku"
    )
    within = flagged_slice(["cdn_5xx_rate{edge=FRA2}", "cdn_5xx_rate{channel=ch7}"])

    explanation = explain_rows(
        log_slices(logs), at("11:00"), at("11:30"), BASELINE, "cdn_5xx_rate", within=within
    )

    assert within == (("edge_location", "FRA2"), ("live_channel", "ch7"))
    assert [(part.dimension, part.values) for part in explanation.slices][:2] == [
        ("edge_location", ("FRA2",)),
        ("path_group", ("/live/ch7",)),
    ]
    assert explanation.changed
    # A total among the series, or two edges: the search starts from the whole.
    assert flagged_slice(["cdn_ttfb_p95{device=Roku}"]) == (("device_family", "Roku"),)
    assert flagged_slice(["cdn_5xx_rate", "cdn_5xx_rate{edge=FRA2}"]) == ()
    assert flagged_slice(["cdn_5xx_rate{edge=FRA2}", "cdn_5xx_rate{edge=AMS1}"]) == ()


def test_a_slice_too_thin_for_the_logs_alone_is_named_when_its_detector_flagged_it() -> None:
    # Three minutes of FRA2's ch7 failing: 6 errors among 48 requests. FRA2 holds them beyond noise;
    # inside FRA2, ch7 holds all 6 in half the requests, too few to tell from 6 spread over both paths.
    rows = log_slices(incident_logs(fails=fra2_ch7))
    witnessed = starting_slices(["cdn_5xx_rate", "cdn_5xx_rate{channel=ch7}"])[-1]

    def places(**options) -> list[tuple[str, tuple[str, ...]]]:
        explanation = explain_rows(rows, at("11:00"), at("11:03"), BASELINE, "cdn_5xx_rate", **options)
        return [(part.dimension, part.values) for part in explanation.slices]

    assert places() == [("edge_location", ("FRA2",))]
    assert places(witnessed=witnessed) == [("edge_location", ("FRA2",)), ("path_group", ("/live/ch7",))]
    # A flag that holds the change only as its share of the traffic names nothing: every edge failed.
    everywhere = log_slices(incident_logs(fails=lambda edge, stem, device: stem == STEMS[0]))
    explanation = explain_rows(
        everywhere, at("11:00"), at("11:03"), BASELINE, "cdn_5xx_rate", witnessed=(("edge_location", "FRA2"),)
    )
    assert [(part.dimension, part.values) for part in explanation.slices] == [("path_group", ("/live/ch7",))]
    assert "all edges" in explanation.sentence


def test_a_flag_names_its_slice_inside_a_narrower_one_where_fewer_errors_are_left() -> None:
    # Ten minutes of FRA2's API failing now and then: 503s at 11:02 and 11:06 on /api/search (a
    # twentieth of the traffic), at 11:04 on an item. /api holds two of the three beyond noise; inside
    # it FRA2 holds both, two errors, fewer than a change worth explaining alone. All three are on the
    # edge whose 5xx rate its detector flagged: the flag names the edge inside the path.
    failing = {("11:02", "/api/search"), ("11:06", "/api/search"), ("11:04", "/api/items/1")}
    rows = []
    for minute in pd.date_range(at("10:00"), at("11:09"), freq="min"):
        stems = (
            ["/img/p.jpg"] * 8
            + ["/api/items/1", "/api/items/2", "/api/items/3"]
            + ["/api/search"] * (minute.minute % 2 == 0)
        )
        for edge in EDGES:
            for stem in stems:
                failed = edge == "FRA2" and (f"{minute:%H:%M}", stem) in failing
                rows.append((minute + pd.Timedelta(seconds=10), edge, stem, 503 if failed else 200))
    logs = pd.DataFrame(rows, columns=["ts", "edge_location", "cs_uri_stem", "sc_status"]).assign(
        device_family="iPhone",
        live_channel=None,
        edge_result_type="Hit",
        sc_bytes=1000,
        time_to_first_byte=0.1,
        time_taken=0.5,
        c_ip=[f"10.0.{row // 256}.{row % 256}" for row in range(len(rows))],
    )
    explanation = explain_rows(
        log_slices(logs),
        at("11:00"),
        at("11:10"),
        BASELINE,
        "cdn_5xx_rate",
        witnessed=(("edge_location", "FRA2"),),
    )
    assert [(part.dimension, part.values) for part in explanation.slices] == [
        ("path_group", ("/api",)),
        ("edge_location", ("FRA2",)),
    ]


def sampled_requests(
    rng: np.random.Generator,
    start: pd.Timestamp,
    minutes: int,
    edges: np.ndarray,
    stems: np.ndarray,
    ttfb: np.ndarray,
) -> pd.DataFrame:
    """Requests at random times of ``minutes`` from ``start``, one per edge, path and time to first byte."""
    return pd.DataFrame(
        {
            "ts": start + pd.to_timedelta(np.sort(rng.uniform(0, minutes * 60, edges.size)), unit="s"),
            "edge_location": edges,
            "cs_uri_stem": stems,
            "sc_status": 200,
            "device_family": "iPhone",
            "live_channel": None,
            "edge_result_type": "Hit",
            "sc_bytes": 1000,
            "time_to_first_byte": ttfb,
            "time_taken": ttfb,
            "c_ip": [f"10.{start.hour}.{row // 256}.{row % 256}" for row in range(edges.size)],
        }
    )


def drifting_logs(factor: float, others: float) -> pd.DataFrame:
    """An hour at 40 requests a minute over nine edges, then 25 minutes with E0's time to first byte
    ``factor`` times and the other edges' ``others`` times what it was (seeded)."""
    rng = np.random.default_rng(7)

    def minutes(start: pd.Timestamp, count: int, slower: tuple[float, float]) -> pd.DataFrame:
        edges = np.array([f"E{i}" for i in range(9)])[rng.integers(0, 9, count * 40)]
        ttfb = 0.006 * rng.lognormal(0, 0.6, edges.size) * np.where(edges == "E0", *slower)
        return sampled_requests(rng, start, count, edges, np.full(edges.size, "/img/a.jpg"), ttfb)

    return pd.concat([minutes(at("10:00"), 60, (1, 1)), minutes(at("11:00"), 25, (factor, others))])


def test_one_slow_edge_is_named_though_every_edge_drifted_a_little() -> None:
    # E0 six times slower; the eight others 15% slower, each within its noise, together as much of the
    # gmean's change as E0: the change E0 makes is the change, not half of it.
    def explained(factor: float, others: float) -> tuple[list[tuple[str, tuple[str, ...]]], str]:
        rows = log_slices(drifting_logs(factor, others))
        explanation = explain_rows(rows, at("11:00"), at("11:25"), BASELINE, "cdn_ttfb_gmean")
        return [(part.dimension, part.values) for part in explanation.slices], explanation.sentence

    assert explained(6.0, 1.15)[0] == [("edge_location", ("E0",))]
    # Every edge slower alike, a little or much: no edge is named.
    for factor in (1.15, 3.0):
        assert explained(factor, factor)[0] == []
        assert explained(factor, factor)[1].endswith("at all edges")


def test_a_folder_whose_titles_all_slowed_is_named_though_only_its_most_watched_pass_their_noise() -> None:
    # 20 requests a minute, 30% to sixty titles of /video (Zipf), all three times slower for 20 minutes.
    rng = np.random.default_rng(0)

    def minutes(start: pd.Timestamp, count: int, factor: float) -> pd.DataFrame:
        video = rng.random(count * 20) < 0.3
        titles = rng.zipf(1.5, video.size) % 60
        stems = np.where(video, [f"/video/t{title:04d}/seg_1.m4s" for title in titles], "/img/poster.jpg")
        ttfb = 0.006 * rng.lognormal(0, 0.6, video.size) * np.where(video, factor, 1.0)
        return sampled_requests(rng, start, count, np.full(video.size, "E0"), stems, ttfb)

    rows = log_slices(pd.concat([minutes(at("10:00"), 60, 1.0), minutes(at("11:00"), 20, 3.0)]))
    explanation = explain_rows(rows, at("11:00"), at("11:20"), BASELINE, "cdn_ttfb_gmean")

    assert [(part.dimension, part.values) for part in explanation.slices] == [("path_root", ("/video",))]


def test_a_few_requests_that_all_turned_slow_are_no_certain_concentration() -> None:
    # Edge E0's nine requests are all slow, three of them on /i/3, which had two requests before, both
    # fast: a rate of 1 after 0, each measured on a handful of requests, is within their noise.
    rng = np.random.default_rng(1)

    def part(start: pd.Timestamp, minutes: int, rows: list[tuple[str, str, float]]) -> pd.DataFrame:
        edges, stems, ttfb = (np.array(column) for column in zip(*rows, strict=True))
        return sampled_requests(rng, start, minutes, edges, stems, ttfb)

    busy = [("E1", "/img/p.jpg", ttfb) for ttfb in [0.004, 0.012] * 100]
    e0 = [("E0", "/i/3/a.webp", 0.004)] * 2 + [("E0", "/static/js/b.js", t) for t in (0.004, 0.012)]
    e0 += [("E0", "/vod/t1/s.m4s", t) for t in (0.012,) * 4 + (0.004,) * 2]
    stems = ("/i/3/a.webp", "/static/js/b.js", "/vod/t1/s.m4s")
    slow = [("E0", stem, 0.05) for stem in stems for _ in range(3)]
    rows = log_slices(pd.concat([part(at("10:00"), 60, busy + e0), part(at("11:00"), 20, busy[:60] + slow)]))

    explanation = explain_rows(rows, at("11:00"), at("11:20"), BASELINE, "cdn_ttfb_gmean")

    assert explanation.slices == ()
    assert explanation.sentence.endswith("over 69 requests: within noise, not attributed")


def test_a_slice_with_fewer_baseline_requests_than_the_incident_is_judged_against_the_place_around_it() -> (
    None
):
    # A crawler of its own device family walks FRA2: the detectors flagged FRA2 and the family, whose
    # baseline on FRA2 is two requests (one a 404). Against them its 404s are no change beyond noise;
    # against FRA2's they are its.
    spider = {"device_family": "Spider", "c_ip": "198.51.100.9"}
    baseline = crawl(at("10:20"), 2, lambda number: "198.51.100.9").assign(**spider)
    baseline.loc[0, "sc_status"] = 200
    walk = crawl(at("11:00"), 40, lambda number: "198.51.100.7").assign(device_family="Spider")
    logs = pd.concat([incident_logs(), baseline, walk], ignore_index=True)
    within = flagged_slice(["cdn_4xx_rate{edge=FRA2}", "cdn_4xx_rate{device=Spider}"])

    explanation = explain_rows(
        log_slices(logs), at("11:00"), at("11:30"), BASELINE, "cdn_4xx_rate", within=within
    )

    assert explanation.changed
    assert explanation.clients == ("198.51.100.7",)
    assert explanation.sentence == (
        "4xx rate 0.41% → 100% at edge FRA2, device Spider, all paths (overall 0.10% → 7.7%), "
        "made by one client 198.51.100.7"
    )


def test_an_incident_the_logs_cannot_explain_still_names_the_slice_the_detectors_flagged() -> None:
    def cause(*series: str) -> Cause:
        scores = pd.concat([day_scores(name, list(range(600, 605))) for name in series], ignore_index=True)
        (incident,) = group_incidents(with_severity(group_events(scores), scores))
        return cause_of(incident, Drivers(note="the logs show nothing beyond their noise"))

    assert cause("cdn_requests{channel=ch24}") == Cause(
        "cdn_requests{channel=ch24} anomalous at path /live/ch24 alone", {"path": "/live/ch24"}
    )
    assert cause("cdn_5xx_rate{edge=FRA2}", "cdn_5xx_rate").slice == {"edge": "FRA2"}
    # Nothing narrower than the whole CDN: no slice.
    assert cause("cdn_5xx_rate", "cdn_4xx_rate") == Cause("cdn_4xx_rate and 1 more series anomalous", {})


def test_a_crawlers_incident_is_theirs_unless_an_edge_that_did_not_serve_it_moved_too() -> None:
    crawler = explain_incident(
        crawled(lambda number: "198.51.100.7"), at("11:00"), at("11:30"), BASELINE, "cdn_4xx_rate"
    )
    assert crawler.client_edges == ("FRA2",)

    def cause(*series: str) -> Cause:
        scores = pd.concat([day_scores(name, list(range(600, 605))) for name in series], ignore_index=True)
        (incident,) = group_incidents(with_severity(group_events(scores), scores))
        return cause_of(incident, Drivers(explanations=(crawler,)))

    assert cause("cdn_4xx_rate{edge=FRA2}", "cdn_4xx_rate").clients == ("198.51.100.7",)
    assert cause("cdn_4xx_rate{edge=FRA2}", "cdn_ttfb_gmean{edge=AMS1}").clients == ()


def test_a_total_that_echoes_one_slice_is_explained_inside_the_slice_when_the_whole_is_noise() -> None:
    edge_and_total = ["cdn_bytes{channel=ch7}", "cdn_bytes"]
    assert starting_slices(edge_and_total) == [(), (("live_channel", "ch7"),)]
    assert starting_slices(["cdn_bytes{channel=ch7}"]) == [(("live_channel", "ch7"),)]
    # The edge first, then the device inside it.
    assert starting_slices(["cdn_5xx_rate{device=iPhone}", "cdn_5xx_rate{edge=FRA2}"]) == [
        (("edge_location", "FRA2"),),
        (("edge_location", "FRA2"), ("device_family", "iPhone")),
    ]
    assert starting_slices(["cdn_bytes", "cdn_5xx_rate"]) == [()]
    assert starting_slices(["cdn_bytes", "cdn_bytes{edge=FRA2}", "cdn_bytes{edge=AMS1}"]) == [()]


def test_noise_is_not_explained() -> None:
    explanation = explain_incident(incident_logs(), at("11:00"), at("11:30"), BASELINE, "cdn_5xx_rate")

    assert not explanation.changed
    assert explanation.slices == ()
    assert explanation.sentence == "5xx rate 0.62% → 0.62% over 480 requests: within noise, not attributed"


def test_baseline_windows() -> None:
    day = (at("00:00"), at("00:00") + pd.Timedelta(days=1))
    # Before the incident, as long as it and at least an hour, ending 5 minutes before it.
    assert baseline_window(at("11:00"), at("11:30"), day) == (at("09:55"), at("10:55"))
    assert baseline_window(at("11:00"), at("13:00"), day) == (at("08:55"), at("10:55"))
    # Too early in the day: after it.
    assert baseline_window(at("00:10"), at("00:40"), day) == (at("00:45"), at("01:45"))
    # Rates are compared within the day even when the day before has logs.
    assert comparison_window("cdn_5xx_rate", at("11:00"), at("11:30"), day, previous_day=True) == (
        at("09:55"),
        at("10:55"),
    )


def test_services_that_moved_together() -> None:
    index = pd.date_range(at("10:00"), periods=120, freq="min")
    noise = np.tile([0.0, 1.0, -1.0, 0.5], 30)
    frame = pd.DataFrame({name: 1000 + noise for name in ("cif", "paycore", "paydecision")}, index=index)
    frame.loc[at("11:30") :, ["paycore", "paydecision"]] *= 0.8

    movements = co_movements(frame, at("11:30"), at("12:00"), (at("10:25"), at("11:25")))

    assert [(movement.series, movement.moved) for movement in movements] == [
        ("paycore", True),
        ("paydecision", True),
        ("cif", False),
    ]
    assert movements[0].change == pytest.approx(-0.2, abs=0.001)
    assert co_movement_sentence(movements) == (
        "paycore −20% (−269.9σ) and paydecision −20% (−269.9σ) moved together; cif held"
    )


def test_services_are_compared_with_the_day_before_when_there_is_one() -> None:
    # Two days of a daily ramp every service follows; on the second, paycore halves for 30 minutes.
    index = pd.date_range(at("00:00", DAY - dt.timedelta(days=1)), periods=2 * 1440, freq="min")
    rng = np.random.default_rng(0)
    ramp = 1000 + 2 * np.tile(np.arange(1440.0), 2)
    frame = pd.DataFrame(
        {name: ramp + rng.normal(0, 2, len(index)) for name in ("cif", "paycore", "paydecision")}, index=index
    )
    frame.loc[at("10:00") : at("10:29"), "paycore"] *= 0.5
    baseline = (at("08:55"), at("09:55"))

    movements = co_movements(frame, at("10:00"), at("10:30"), baseline)
    without_the_day_before = co_movements(
        frame[frame.index >= at("00:00")], at("10:00"), at("10:30"), baseline
    )

    assert [(m.series, m.moved, m.seasonal) for m in movements] == [
        ("paycore", True, True),
        ("cif", False, True),
        ("paydecision", False, True),
    ]
    assert movements[0].change == pytest.approx(-0.5, abs=0.005)
    assert re.fullmatch(
        r"only paycore −50% \(−\d+\.\dσ\) moved; cif and paydecision held", co_movement_sentence(movements)
    )
    assert movements[1].change == pytest.approx(0.0, abs=0.005)
    # Against the hour before only, cif "changed" by the ramp: medians 1000 + 2 * 614.5 over 1000 + 2 * 564.5.
    cif = next(m for m in without_the_day_before if m.series == "cif")
    assert not cif.seasonal
    assert cif.change == pytest.approx(2229 / 2129 - 1, abs=0.005)


# -- incidents ---------------------------------------------------------------------------------


def day_scores(series: str, anomalous_minutes: list[int], *, threshold: float = 4.0) -> pd.DataFrame:
    """One day of scores for ``series``: a smooth cycle, spiking at ``anomalous_minutes``."""
    minutes = np.arange(1440)
    expected = 0.2 + 0.05 * np.sin(2 * np.pi * minutes / 1440)
    score = np.full(1440, 1.0)
    score[anomalous_minutes] = 10.0 + np.arange(len(anomalous_minutes))
    return pd.DataFrame(
        {
            "ts": pd.date_range(pd.Timestamp(DAY, tz="UTC"), periods=1440, freq="min"),
            "series": series,
            "detector": "rolling_mad",
            "model_version": f"{series}/rolling_mad@v2",
            "value": expected + 0.01 * score,
            "expected": expected,
            "score": score,
            "threshold": threshold,
            "is_anomaly": score >= threshold,
        }
    )


def test_overlapping_events_of_several_series_are_one_incident() -> None:
    scores = pd.concat(
        [
            day_scores("cdn_5xx_rate", list(range(660, 690))),  # 11:00-11:29
            day_scores("cdn_5xx_rate{edge=FRA2}", list(range(665, 680)), threshold=2.0),  # 11:05-11:19
            day_scores("paycore", list(range(670, 675))),  # a server metric: its own incident
            day_scores("cdn_4xx_rate", [900], threshold=1.25),  # 15:00, alone, 8 times its threshold
            day_scores("cdn_bytes", [1000]),  # 16:40, one minute at 2.5 times: no incident
        ],
        ignore_index=True,
    )

    incidents = group_incidents(with_severity(group_events(scores), scores))

    assert [(i.start, i.end, i.minutes, list(i.events["series"])) for i in incidents] == [
        (at("11:00"), at("11:29"), 30, ["cdn_5xx_rate{edge=FRA2}", "cdn_5xx_rate"]),
        (at("11:10"), at("11:14"), 5, ["paycore"]),
        (at("15:00"), at("15:00"), 1, ["cdn_4xx_rate"]),
    ]
    # Peak 24 over a threshold of 2 for the FRA2 series; 39 over 4 for the overall one.
    assert incidents[0].severity == 12.0


def test_an_incident_ends_with_its_evidence_not_with_the_single_minutes_chained_after_it() -> None:
    scores = pd.concat(
        [
            day_scores("cdn_5xx_rate", list(range(660, 670))),  # 11:00-11:09, the outage
            day_scores("cdn_5xx_rate{edge=FRA2}", [658]),  # 10:58: one minute at 2.5 times, first
            day_scores("cdn_cache_hit_ratio{device=Roku}", [673]),  # 11:13, as weak, after it
            day_scores("cdn_cache_hit_ratio{edge=AMS}", [677]),  # 11:17, as weak, 4 minutes later
        ],
        ignore_index=True,
    )

    (incident,) = group_incidents(with_severity(group_events(scores), scores))

    assert (incident.start, incident.end) == (at("10:58"), at("11:09"))
    assert list(incident.events["series"]) == ["cdn_5xx_rate", "cdn_5xx_rate{edge=FRA2}"]


# -- the report --------------------------------------------------------------------------------


def write_day(lake: Lake, scores: pd.DataFrame) -> None:
    events = group_events(scores)
    lake.write_partition(
        "scores", DAY, pa.Table.from_pandas(scores, schema=schemas.SCORES, preserve_index=False)
    )
    lake.write_partition(
        "events", DAY, pa.Table.from_pandas(events, schema=schemas.EVENTS, preserve_index=False)
    )


def write_logs(lake: Lake, logs: pd.DataFrame, meta: dict, day: dt.date = DAY) -> None:
    columns = {
        name: pa.array(logs[name], schemas.CDN_LOGS.field(name).type)
        if name in logs
        else pa.nulls(len(logs), schemas.CDN_LOGS.field(name).type)
        for name in schemas.CDN_LOGS.names
    }
    columns["source_format"] = pa.array(["cloudfront"] * len(logs))
    columns["source_file"] = pa.array(["E1.2026-11-21-11.gz"] * len(logs))
    lake.write_partition("cdn_logs", day, pa.table(columns, schema=schemas.CDN_LOGS), meta=meta)


def test_an_incident_that_ran_into_the_day_is_explained_from_when_it_began(lake: Lake) -> None:
    # A crawler on FRA2 from 23:40 to midnight. After midnight the 4xx rate's windows still hold its
    # 404s and flag FRA2 for four minutes in which it made none.
    yesterday = DAY - dt.timedelta(days=1)
    walk = crawl(at("23:40", yesterday), 80, lambda number: "198.51.100.7")
    evening = pd.concat([requests(at("23:00", yesterday), 60), walk], ignore_index=True)
    write_logs(lake, evening, {}, yesterday)
    write_logs(lake, requests(at("00:00"), 90), {})
    scores = day_scores("cdn_4xx_rate{edge=FRA2}", [0, 1, 2, 3])
    (alone,) = day_incidents(lake, DAY, scores, group_events(scores))
    assert alone.cause.clients == ()
    assert alone.cause.text == "cdn_4xx_rate{edge=FRA2} anomalous at edge FRA2 alone"

    before = scores.assign(ts=scores["ts"] - pd.Timedelta(days=1))
    before["is_anomaly"] = before["ts"] >= at("23:40", yesterday)
    lake.write_partition(
        "events",
        yesterday,
        pa.Table.from_pandas(group_events(before), schema=schemas.EVENTS, preserve_index=False),
    )
    (whole,) = day_incidents(lake, DAY, scores, group_events(scores))
    assert whole.incident.start == at("00:00")
    assert whole.cause.clients == ("198.51.100.7",)
    assert whole.cause.text.endswith("made by one client 198.51.100.7")


def test_a_slowdown_beside_a_crawler_is_the_services_incident(lake: Lake) -> None:
    # From 11:00 to 11:30 a crawler walks FRA2 while channel 8 slows down on every edge: one incident
    # (they overlap), whose 4xx rate, requests and bytes are the crawler's (its 404s are cache hits
    # here: the hit ratio did not move).
    walk = crawl(at("11:00"), 120, lambda number: "198.51.100.7")
    flagged = [
        "cdn_4xx_rate{edge=FRA2}",
        "cdn_requests{edge=FRA2}",
        "cdn_bytes{edge=FRA2}",
        "cdn_cache_hit_ratio{edge=FRA2}",
        "cdn_ttfb_gmean",
    ]
    scores = pd.concat([day_scores(name, list(range(660, 690))) for name in flagged], ignore_index=True)

    def explained(slow: Rule) -> ExplainedIncident:
        write_logs(lake, pd.concat([incident_logs(slow=slow), walk], ignore_index=True), {})
        (incident,) = day_incidents(lake, DAY, scores, group_events(scores))
        return incident

    both = explained(only(stem=STEMS[1]))
    assert [(e.metric, e.clients) for e in both.drivers.explanations] == [
        ("cdn_4xx_rate", ("198.51.100.7",)),
        ("cdn_requests", ("198.51.100.7",)),
        ("cdn_bytes", ("198.51.100.7",)),
        ("cdn_cache_hit_ratio", ()),
        ("cdn_ttfb_gmean", ()),
    ]
    assert both.cause == Cause(
        "ttfb geometric mean 100 ms → 2.0 s at path /live/ch8, all edges, all devices "
        "(overall 100 ms → 447 ms)",
        {"path": "/live/ch8"},
        # The crawler's 4xx rate, requests and bytes are no part of how severe it is.
        news=("cdn_cache_hit_ratio{edge=FRA2}", "cdn_ttfb_gmean"),
    )
    assert both.drivers.sentences[-1] == "Without the requests of one client 198.51.100.7: " + both.cause.text

    # The crawler alone: what is left without its requests is noise, and the incident is its own.
    alone = explained(lambda edge, stem, device: False)
    assert alone.drivers.beside_clients is None
    assert alone.cause.clients == ("198.51.100.7",)
    # The report lists it as routine, apart from the day's incidents.
    write_day(lake, scores)
    html = report_of(lake)
    cards = dict((label, value) for value, label in re.findall(CARD, html))
    assert (cards["Incidents"], cards["Routine"]) == ("0", "1")
    assert "No incidents on 2026-11-21." in html
    assert html.index("<h2>Routine</h2>") < html.index(alone.cause.text) < html.index("<h2>Series</h2>")


def test_a_change_beside_a_crawler_counts_only_where_its_detector_saw_it(lake: Lake) -> None:
    # A crawler walks FRA2 while LHR3 and FRA2's ch8 slow down. The detectors flagged the 4xx rate of
    # FRA2 and of the whole CDN, and the latency of FRA2 alone: FRA2's latency read the crawler's
    # requests, and is its doing whatever FRA2's other requests show (on a thin CDN, a few requests of
    # one of its paths show a change by chance); LHR3's slowdown, which no detector of LHR3 saw, is no
    # reason to take the crawler's incident for the service's either.
    def lhr3_fra2_ch8(edge: str, stem: str, device: str) -> bool:
        return edge == "LHR3" or (edge == "FRA2" and stem == STEMS[1])

    walk = crawl(at("11:00"), 120, lambda number: "198.51.100.7")
    write_logs(lake, pd.concat([incident_logs(slow=lhr3_fra2_ch8), walk], ignore_index=True), {})

    def explained(*flagged: str) -> ExplainedIncident:
        scores = pd.concat([day_scores(name, list(range(660, 690))) for name in flagged], ignore_index=True)
        (incident,) = day_incidents(lake, DAY, scores, group_events(scores))
        return incident

    crawler = explained("cdn_4xx_rate{edge=FRA2}", "cdn_4xx_rate", "cdn_ttfb_gmean{edge=FRA2}")
    assert crawler.drivers.beside_clients is None
    assert crawler.cause.clients == ("198.51.100.7",)
    # Flagged on LHR3 too, the slowdown is the service's, named where its detector saw it.
    both = explained(
        "cdn_4xx_rate{edge=FRA2}", "cdn_4xx_rate", "cdn_ttfb_gmean{edge=FRA2}", "cdn_ttfb_gmean{edge=LHR3}"
    )
    assert both.drivers.beside_clients is not None
    assert both.drivers.beside_clients.slices[0].values == ("LHR3",)
    assert both.cause.clients == ()


@pytest.mark.parametrize(
    ("lhr3_requests", "lhr3_watched", "services"), [(1, True, False), (1, False, True), (16, True, True)]
)
def test_a_total_flagged_beside_a_crawler_places_no_change_where_the_slices_own_detector_saw_none(
    lake: Lake, lhr3_requests: int, lhr3_watched: bool, services: bool
) -> None:
    # A crawler walks FRA2 from 11:00 to 11:30; its 404s are no cache hits, and the detectors flagged
    # FRA2's requests, bytes, 4xx and hit ratios, and the whole CDN's hit ratio. One request in five
    # misses, and every request of LHR3 from 11:00. On a thin LHR3 (one request a minute) the whole
    # CDN's hit ratio without the crawler barely moves (80% → 74%, within its noise): a search of its
    # slices finds LHR3, and where LHR3's hit ratio has a detector of its own that flagged nothing, that
    # is the search's chance (one edge of a hundred shows a change so); an edge no detector watches is
    # where the whole's flag places it. When LHR3 serves a quarter of the requests, the whole CDN's hit
    # ratio falls without the crawler too: the service's, whatever LHR3's own detector said.
    def served(edge: str, stem: str, device: str) -> bool:
        return edge != "LHR3" or lhr3_requests == 16 or (stem, device) == (STEMS[1], "Roku")

    logs = pd.concat(
        [requests(at("10:00"), 60, served=served), requests(at("11:00"), 30, served=served)],
        ignore_index=True,
    )
    lhr3_from_11 = (logs["edge_location"] == "LHR3") & (logs["ts"] >= at("11:00"))
    misses = (np.arange(len(logs)) % 5 == 0) | lhr3_from_11
    logs["edge_result_type"] = np.where(misses, "Miss", "Hit")
    walk = crawl(at("11:00"), 120, lambda number: "198.51.100.7")
    write_logs(lake, pd.concat([logs, walk], ignore_index=True), {})
    flagged = [
        *(f"cdn_{metric}{{edge=FRA2}}" for metric in ("4xx_rate", "requests", "bytes", "cache_hit_ratio")),
        "cdn_cache_hit_ratio",
    ]
    quiet = ["cdn_cache_hit_ratio{edge=LHR3}"] if lhr3_watched else []
    days = [day_scores(name, list(range(660, 690))) for name in flagged]
    scores = pd.concat(days + [day_scores(name, []) for name in quiet], ignore_index=True)

    (incident,) = day_incidents(lake, DAY, scores, group_events(scores))

    # On a thin LHR3 the crawler's misses make the whole CDN's hit ratio fall, and without them it is
    # searched beside them; on a busy one LHR3's misses make it.
    (hit_ratio,) = [e for e in incident.drivers.explanations if e.metric == "cdn_cache_hit_ratio"]
    assert hit_ratio.clients == (() if lhr3_requests == 16 else ("198.51.100.7",))
    beside = incident.drivers.beside_clients
    if services:
        assert beside is not None
        assert beside.slices[0].values == ("LHR3",)
        assert incident.cause.clients == ()
        if lhr3_requests == 1:
            # How severe it is is the whole CDN's hit ratio's to say: FRA2's is the crawler's misses.
            assert incident.cause.news == ("cdn_cache_hit_ratio",)
    else:
        assert beside is None
        assert incident.cause.clients == ("198.51.100.7",)


def test_a_purge_beside_a_crawler_is_the_whole_services_incident(lake: Lake) -> None:
    # A crawler walks FRA2 from 11:00 to 11:30 while a purge empties every edge's cache: one request in
    # five misses, then three in five. The detectors flagged the crawler's metrics of FRA2, the hit
    # ratio of each device and of the whole CDN. Without the crawler's requests the whole CDN's hit
    # ratio fell alike everywhere: the cause is the whole service's, not the first device that fell
    # with it.
    logs = incident_logs()
    purged = logs["ts"] >= at("11:00")
    misses = np.arange(len(logs)) % 5 < np.where(purged, 3, 1)
    logs["edge_result_type"] = np.where(misses, "Miss", "Hit")
    walk = crawl(at("11:00"), 120, lambda number: "198.51.100.7")
    write_logs(lake, pd.concat([logs, walk], ignore_index=True), {})
    flagged = [
        *(f"cdn_{metric}{{edge=FRA2}}" for metric in ("4xx_rate", "requests", "bytes", "cache_hit_ratio")),
        *(f"cdn_cache_hit_ratio{{device={device}}}" for device in DEVICES),
        "cdn_cache_hit_ratio",
    ]
    scores = pd.concat([day_scores(name, list(range(660, 690))) for name in flagged], ignore_index=True)

    (incident,) = day_incidents(lake, DAY, scores, group_events(scores))

    assert incident.cause.text == "cache hit ratio 80% → 40% at all edges, all paths, all devices"
    assert (incident.cause.slice, incident.cause.clients) == ({}, ())


def test_a_latency_that_fell_beside_a_crawler_is_no_slowdown(lake: Lake) -> None:
    # A crawler walks FRA2 while LHR3 answers ten times faster; the whole CDN's typical latency was
    # flagged (the crawler's misses). Without the crawler's requests the logs show LHR3's change, the
    # wrong way for a latency: the incident stays the crawler's.
    walk = crawl(at("11:00"), 120, lambda number: "198.51.100.7")
    logs = pd.concat([incident_logs(), walk], ignore_index=True)
    # Half the requests take 50 ms, half 150 ms; LHR3's take 10 ms from 11:00.
    typical = np.where(logs.index % 2, 0.05, 0.15)
    faster = (logs["edge_location"] == "LHR3") & (logs["ts"] >= at("11:00"))
    write_logs(lake, logs.assign(time_to_first_byte=np.where(faster, 0.01, typical)), {})
    flagged = ["cdn_4xx_rate{edge=FRA2}", "cdn_4xx_rate", "cdn_ttfb_gmean"]
    scores = pd.concat([day_scores(name, list(range(660, 690))) for name in flagged], ignore_index=True)

    (incident,) = day_incidents(lake, DAY, scores, group_events(scores))

    assert incident.drivers.beside_clients is None
    assert incident.cause.clients == ("198.51.100.7",)


def test_a_change_the_logs_explain_beside_a_crawler_comes_before_one_found_without_it(lake: Lake) -> None:
    # A crawler on FRA2 while FRA2 fails and channel 8 slows down: the 5xx rate, explained among the
    # incident's first metrics, is its cause, on the crawler's edge as it is; the slowdown, which only a
    # slice the crawler never asked for tells apart, is reported beside it.
    flagged = ["cdn_4xx_rate{edge=FRA2}", "cdn_5xx_rate{edge=FRA2}", "cdn_ttfb_gmean"]
    scores = pd.concat([day_scores(name, list(range(660, 690))) for name in flagged], ignore_index=True)
    walk = crawl(at("11:00"), 120, lambda number: "198.51.100.7")
    write_logs(
        lake,
        pd.concat(
            [incident_logs(fails=only(edge="FRA2"), slow=only(stem=STEMS[1])), walk], ignore_index=True
        ),
        {},
    )

    (incident,) = day_incidents(lake, DAY, scores, group_events(scores))

    assert incident.cause == Cause(
        "5xx rate 0% → 100% at edge FRA2, all paths, all devices (overall 0.68% → 26%)",
        {"edge": "FRA2"},
        news=("cdn_5xx_rate{edge=FRA2}", "cdn_ttfb_gmean"),
    )
    assert incident.drivers.beside_clients is not None
    assert incident.drivers.beside_clients.metric == "cdn_ttfb_gmean"


def test_two_crawlers_on_two_edges_make_a_routine_incident_of_both(lake: Lake) -> None:
    # A crawler walks FRA2 from 11:00 to 11:30 while a second one, from another address, walks AMS1
    # for five minutes: one incident, whose 4xx rate the first one's 404s explain. AMS1's departure is
    # the second one's doing, not the service's.
    walks = [
        crawl(at("11:00"), 120, lambda number: "198.51.100.7"),
        crawl(at("11:10"), 20, lambda number: "198.51.100.8", edge="AMS1"),
    ]
    write_logs(lake, pd.concat([incident_logs(), *walks], ignore_index=True), {})
    flagged = ["cdn_4xx_rate{edge=FRA2}", "cdn_4xx_rate", "cdn_4xx_rate{edge=AMS1}"]
    scores = pd.concat([day_scores(name, list(range(660, 690))) for name in flagged], ignore_index=True)

    (incident,) = day_incidents(lake, DAY, scores, group_events(scores))

    assert incident.drivers.explanations[0].clients == ("198.51.100.7",)
    assert incident.drivers.beside_clients is None
    assert incident.cause.clients == ("198.51.100.7", "198.51.100.8")
    assert incident.drivers.sentences[-1] == (
        "4xx rate n/a → 100% at edge AMS1, path /wp-content/plugins (overall 0% → 4.0%), "
        "made by one client 198.51.100.8"
    )


def test_an_edge_that_empties_beside_a_crawler_is_the_cause(lake: Lake) -> None:
    # A crawler doubles FRA2's requests while AMS1 serves nothing: the requests the CDN gained are the
    # crawler's, and the edge that emptied, which its detector flagged, is the cause.
    def not_ams1(edge: str, stem: str, device: str) -> bool:
        return edge != "AMS1"

    walk = crawl(at("11:00"), 120, lambda number: "198.51.100.7")
    logs = pd.concat([incident_logs(served=not_ams1), walk], ignore_index=True)
    write_logs(lake, logs, {})
    flagged = ["cdn_4xx_rate{edge=FRA2}", "cdn_requests{edge=FRA2}", "cdn_requests{edge=AMS1}"]
    scores = pd.concat([day_scores(name, list(range(660, 690))) for name in flagged], ignore_index=True)

    (incident,) = day_incidents(lake, DAY, scores, group_events(scores))

    assert [explanation.clients for explanation in incident.drivers.explanations[:2]] == [
        ("198.51.100.7",),
        ("198.51.100.7",),
    ]
    assert incident.cause == Cause(
        "requests 3.7/min → 0/min at edge AMS1, all paths, all devices (overall 15/min → 12/min)",
        {"edge": "AMS1"},
        news=("cdn_requests{edge=AMS1}",),
    )


def test_an_edge_whose_viewers_left_while_a_crawler_made_up_their_requests_is_the_cause(lake: Lake) -> None:
    # FRA2 serves 20 requests a minute, then 4 from 11:00, while a crawler asks it for 16 small 404s a
    # minute: its requests do not move, its bytes fall (their detector flagged it) and its 4xx rate
    # rises. A crawler only adds requests: the bytes that fell on the edge it walked are the
    # viewers'. With the viewers staying, the same crawler's bytes rise there, and it is its own.
    # The crawler's device family flagged too narrows the slice the incident's series share to its
    # device on FRA2; the bytes are still those of the edge's viewers, every device's.
    def explained(viewers_leave: bool, crawlers_device_flagged: bool = False) -> ExplainedIncident:
        walk = [
            crawl(at("11:00") + pd.Timedelta(seconds=offset), 120, lambda number: "198.51.100.7")
            for offset in (0, 4, 8, 12)
        ]
        stay = 4 * [requests(at("10:00"), 90 if not viewers_leave else 60, served=only(edge="FRA2"))]
        write_logs(lake, pd.concat([requests(at("10:00"), 90), *stay, *walk], ignore_index=True), {})
        flagged = ["cdn_4xx_rate{edge=FRA2}", "cdn_bytes{edge=FRA2}"]
        flagged += ["cdn_4xx_rate{device=Other}"] if crawlers_device_flagged else []
        scores = pd.concat([day_scores(name, list(range(660, 690))) for name in flagged], ignore_index=True)
        (incident,) = day_incidents(lake, DAY, scores, group_events(scores))
        return incident

    left = explained(viewers_leave=True)
    assert left.cause == Cause(
        "bytes sent 0.018 MB/min → 0.0040 MB/min at edge FRA2, all paths, all devices "
        "(overall 0.029 MB/min → 0.016 MB/min)",
        {"edge": "FRA2"},
        news=("cdn_bytes{edge=FRA2}",),
    )
    assert left.drivers.beside_clients is not None
    assert explained(viewers_leave=True, crawlers_device_flagged=True).cause == left.cause
    stayed = explained(viewers_leave=False)
    assert stayed.drivers.beside_clients is None
    assert stayed.cause.clients == ("198.51.100.7",)


def test_a_device_flagged_in_an_edges_failure_is_named_only_where_the_logs_place_the_change_in_it(
    lake: Lake,
) -> None:
    # FRA2 fails every request from 11:00 to 11:30, every device's; its 5xx rate is anomalous all
    # along. The iPhones' is too: for one minute at 2.5 times its threshold (too little to be an
    # incident alone, which places nothing), or all along (the iPhones sent half the errors). Either
    # way the Rokus failed as much: the cause is the edge's. Where only the iPhones failed, it is theirs.
    def cause(fails: Callable[[str, str, str], bool], iphones: list[int]) -> Cause:
        write_logs(lake, pd.concat([requests(at("10:00"), 60), requests(at("11:00"), 30, fails=fails)]), {})
        scores = pd.concat(
            [
                day_scores("cdn_5xx_rate{edge=FRA2}", list(range(660, 690))),
                day_scores("cdn_5xx_rate{device=iPhone}", iphones),
            ],
            ignore_index=True,
        )
        (incident,) = day_incidents(lake, DAY, scores, group_events(scores))
        return incident.cause

    edge = Cause(
        "5xx rate 0% → 100% at edge FRA2, all paths, all devices (overall 0.68% → 26%)", {"edge": "FRA2"}
    )
    assert cause(only(edge="FRA2"), [670]) == edge
    assert cause(only(edge="FRA2"), list(range(660, 690))) == edge
    assert cause(only(edge="FRA2", device="iPhone"), list(range(660, 690))).slice == {
        "edge": "FRA2",
        "device": "iPhone",
    }


def test_a_burst_of_errors_beside_a_crawler_on_another_edge_is_where_its_own_detectors_saw_it(
    lake: Lake,
) -> None:
    # A service without errors. A crawler walks FRA2 from 11:00 to 11:30; at 11:10 LHR3, which serves
    # half the requests, fails six in three minutes. Too few errors for the logs alone to place them
    # on one edge, the 5xx rate's detectors flagged LHR3, though the incident's breakdowns name two
    # edges. The incident is the service's, its cause the burst, its size the burst's.
    logs = pd.concat(
        [
            *(requests(at("10:00"), 90, served=only(edge="LHR3")) for _ in range(3)),
            requests(at("10:00"), 70).assign(sc_status=200),
            requests(at("11:10"), 3, fails=only(edge="LHR3", device="iPhone")),
            requests(at("11:13"), 17).assign(sc_status=200),
            crawl(at("11:00"), 120, lambda number: "198.51.100.7"),
        ],
        ignore_index=True,
    )
    write_logs(lake, logs, {})
    crawler = [
        day_scores(name, list(range(660, 690))) for name in ("cdn_4xx_rate{edge=FRA2}", "cdn_4xx_rate")
    ]
    burst = [
        day_scores(name, [670, 671], threshold=6.0) for name in ("cdn_5xx_rate{edge=LHR3}", "cdn_5xx_rate")
    ]
    scores = pd.concat([*crawler, *burst], ignore_index=True)

    (incident,) = day_incidents(lake, DAY, scores, group_events(scores))

    assert incident.cause == Cause(
        "5xx rate 0% → 1.2% at edge LHR3, all paths, all devices (overall 0% → 0.83%)",
        {"edge": "LHR3"},
        news=("cdn_5xx_rate", "cdn_5xx_rate{edge=LHR3}"),
    )
    assert witnessed_slice(incident.incident.events, "cdn_5xx_rate") == (("edge_location", "LHR3"),)
    (alert,) = decide(DAY, [incident], scores, Rules()).alerts
    assert alert.severity == "info"
    # Sized whole, the crawler's half hour would have made it critical.
    assert (
        severity(replace(alert.incident, cause=replace(incident.cause, news=())), Rules().levels)
        == "critical"
    )


def test_a_flag_on_the_crawlers_edge_witnesses_nothing_without_its_requests(lake: Lake) -> None:
    # A crawler walks FRA2 from 11:00 to 11:30 while ch8 slows down on every edge. Every ten minutes
    # each edge sends one large response; at 11:05 FRA2 sends one more, within the noise of bytes.
    # FRA2's bytes departed, its detector reading the crawler's pages too: without them its flag
    # places no change at FRA2, and the slowdown is the incident's cause.
    logs = pd.concat(
        [
            incident_logs(slow=only(stem=STEMS[1])),
            requests(at("11:05"), 1, served=only(edge="FRA2", stem=STEMS[0], device="iPhone")),
        ]
    )
    large = (
        (logs["ts"].dt.minute % 10 == 0)
        & (logs["cs_uri_stem"] == STEMS[0])
        & (logs["device_family"] == "iPhone")
    )
    logs.loc[large | (logs["ts"] == at("11:05:10")), "sc_bytes"] = 200_000
    write_logs(
        lake, pd.concat([logs, crawl(at("11:00"), 120, lambda number: "198.51.100.7")], ignore_index=True), {}
    )
    crawler = [
        day_scores(name, list(range(660, 690))) for name in ("cdn_4xx_rate{edge=FRA2}", "cdn_4xx_rate")
    ]
    scores = pd.concat(
        [
            *crawler,
            day_scores("cdn_bytes{edge=FRA2}", list(range(665, 685))),
            day_scores("cdn_ttfb_p95", list(range(660, 690))),
        ],
        ignore_index=True,
    )

    (incident,) = day_incidents(lake, DAY, scores, group_events(scores))

    bytes_sent = next(e for e in incident.drivers.explanations if e.metric == "cdn_bytes")
    assert not bytes_sent.changed
    assert incident.cause == Cause(
        "ttfb p95 100 ms → 2.0 s at path /live/ch8, all edges, all devices (overall 100 ms → 2.0 s)",
        {"path": "/live/ch8"},
        news=("cdn_bytes{edge=FRA2}", "cdn_ttfb_p95"),
    )


def test_a_crawler_on_an_edge_without_series_of_its_own_departs_the_other_edges_series(lake: Lake) -> None:
    # NEW1 is not among the edges the day's breakdowns name: the crawler's 404s there depart the
    # (other) edge's series, and that edge served the crawler. The incident is its, routine.
    write_logs(lake, crawled(lambda number: "198.51.100.7", "NEW1"), {})
    crawler = [
        day_scores(name, list(range(660, 690)))
        for name in ("cdn_4xx_rate{edge=(other)}", "cdn_4xx_rate", "cdn_requests{edge=(other)}")
    ]
    scores = pd.concat([*crawler, *(day_scores(f"cdn_4xx_rate{{edge={edge}}}", []) for edge in EDGES)])

    (incident,) = day_incidents(lake, DAY, scores, group_events(scores))

    assert incident.cause.clients == ("198.51.100.7",)
    assert incident.cause.routine


def report_of(lake: Lake) -> str:
    uri = render_day_report(lake, DAY)
    assert uri == lake.uri("reports/dt=2026-11-21/index.html")
    return lake.read_bytes("reports/dt=2026-11-21/index.html").decode("utf-8")


def test_report_names_the_edge_and_path_that_drove_a_5xx_burst(lake: Lake) -> None:
    write_logs(
        lake,
        incident_logs(fails=fra2_ch7),
        {"rows": 1440, "quarantined": {"bad_status": 3, "truncated_line": 1}},
    )
    write_day(
        lake,
        pd.concat(
            [
                day_scores("cdn_5xx_rate", list(range(660, 690))),
                day_scores("cdn_5xx_rate{edge=FRA2}", list(range(662, 690))),
                day_scores("cdn_ttfb_p95", []),
            ],
            ignore_index=True,
        ),
    )

    html = report_of(lake)

    sentence = "5xx rate 0% → 100% at edge FRA2, path /live/ch7, all devices (overall 0.68% → 13%)"
    # In the incidents table and in the incident's own section.
    assert html.count(sentence) == 2
    assert "#1 · 11:00–11:29 · 30 min · CDN: cdn_5xx_rate" in html
    assert "cdn_5xx_rate{edge=FRA2}" in html
    assert "Compared with 09:55–10:55 (5xx rate; grey in the plot)" in html
    assert "rolling_mad@v2" in html
    cards = re.findall(CARD, html)
    assert cards == [
        ("1", "Incidents"),
        ("0", "Routine"),
        ("58", "Anomalous minutes"),
        ("3", "Series scored"),
        ("2", "Anomalous events"),
    ]
    assert '<td>cdn_logs</td><td class="num">1,440</td><td class="num">4</td>' in html
    assert "bad_status 3, truncated_line 1" in html
    images = IMAGE.findall(html)
    assert len(images) == 1
    assert base64.b64decode(images[0]).startswith(b"\x89PNG\r\n\x1a\n")


def test_report_of_a_quiet_day_without_logs(lake: Lake) -> None:
    write_day(lake, day_scores(SERIES, []))

    html = report_of(lake)

    assert "No incidents on 2026-11-21." in html
    assert '<td>cdn_logs</td><td class="num">not ingested</td>' in html
    assert '<td class="num">no features</td>' in html
    assert IMAGE.findall(html) == []


def test_report_of_an_incident_without_logs(lake: Lake) -> None:
    write_day(lake, day_scores(SERIES, [845, 846, 847]))

    html = report_of(lake)

    assert "no cdn_logs for 2026-11-21: the logs cannot say what drove it" in html
    assert "#1 · 14:05–14:07 · 3 min · CDN: cdn_ttfb_p95{edge=FRA2}" in html
    assert len(IMAGE.findall(html)) == 1


def test_report_says_which_services_moved_with_a_metric_incident(lake: Lake) -> None:
    grid = pd.date_range(pd.Timestamp(DAY, tz="UTC"), periods=1440, freq="min", unit="ms")
    wiggle = np.tile([0.0, 1.0, -1.0, 0.5], 360)
    values = {name: 1000 + wiggle for name in ("cif", "paycore", "paydecision")}
    for name in ("paycore", "paydecision"):
        values[name][600:630] *= 0.5  # 10:00-10:29
    rows = [
        {"ts": ts, "series": name, "metric": name, "dim": "", "dim_value": "", "value": value}
        for name, series in values.items()
        for ts, value in zip(grid, series, strict=True)
    ]
    features = pa.Table.from_pylist(rows, schema=schemas.FEATURES)
    lake.write_partition("features", DAY, features, key={"source": "metrics"})
    write_day(lake, day_scores("paycore", list(range(600, 630))))

    html = report_of(lake)

    # The incident's own series leads; the others that moved with it follow.
    assert "paycore −50% (−674.7σ) anomalous; paydecision −50% (−674.7σ) moved too; cif held" in html
    assert '<td>metrics</td><td class="num">not ingested</td>' in html


def test_data_quality_counts_minutes_without_data(lake: Lake) -> None:
    grid = pd.date_range(pd.Timestamp(DAY, tz="UTC"), periods=1440, freq="min", unit="ms")
    requests_per_minute = np.full(1440, 5.0)
    requests_per_minute[100:110] = 0  # ten minutes without a request
    cif = np.full(1440, 1.0)
    cif[5:8] = np.nan
    cdn = pd.DataFrame(
        {"ts": grid, "series": "cdn_requests", "metric": "cdn_requests", "value": requests_per_minute}
    )
    metrics = pd.DataFrame({"ts": grid, "series": "cif", "metric": "cif", "value": cif})
    for source, frame in (("cdn", cdn), ("metrics", metrics)):
        table = pa.Table.from_pandas(
            frame.assign(dim="", dim_value=""), schema=schemas.FEATURES, preserve_index=False
        )
        lake.write_partition("features", DAY, table, key={"source": source})
    lake.write_partition(
        "metrics", DAY, schemas.METRICS.empty_table(), key={"source": "server"}, meta={"rows": 4317}
    )

    assert data_quality(lake, DAY) == [
        SourceQuality("cdn_logs", None, {}, 10, {}),
        SourceQuality("metrics", 4317, {}, 3, {}),
    ]


def noted(incidents: list[Incident], note: str = "a note") -> list[ExplainedIncident]:
    """``incidents`` as ``day_incidents`` gives them when the logs say nothing but ``note``."""
    return [
        ExplainedIncident(incident, drivers := Drivers(note=note), cause_of(incident, drivers))
        for incident in incidents
    ]


def test_report_escapes_names_and_caps_the_incidents_explained() -> None:
    scores = pd.concat(
        [
            day_scores("<script>alert(1)</script>", [*range(100, 103), *range(300, 303), *range(500, 503)]),
            day_scores(SERIES, list(range(700, 703))),
        ],
        ignore_index=True,
    )
    incidents = group_incidents(with_severity(group_events(scores), scores))

    html = day_report_html(DAY, scores, noted(incidents), [], sections=2)

    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert len(IMAGE.findall(html)) == 2
    assert "2 more incidents, not explained here" in html


def test_report_without_recorded_thresholds() -> None:
    scores = day_scores(SERIES, list(range(845, 848))).drop(columns="threshold")
    incidents = group_incidents(with_severity(group_events(scores), scores))

    html = day_report_html(DAY, scores, noted(incidents), [])

    assert "not recorded" in html
    assert len(IMAGE.findall(html)) == 1


def test_data_quality_of_a_source_whose_features_leaf_is_empty(lake: Lake) -> None:
    # A metrics-only day: build_features commits an empty cdn leaf beside the metrics one.
    lake.write_partition("features", DAY, schemas.FEATURES.empty_table(), key={"source": "cdn"})
    lake.write_partition("cdn_logs", DAY, schemas.CDN_LOGS.empty_table(), meta={"rows": 0})

    assert data_quality(lake, DAY)[0] == SourceQuality("cdn_logs", 0, {}, 0, {})
