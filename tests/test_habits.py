"""The rule of days for a family of breakdowns: an origin that hiccups on some edge every day."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from passion_tasks.alerting.rules import Incident as Alerted
from passion_tasks.alerting.rules import Rules, anomalies, severity
from passion_tasks.detectors import Detector, make_detector
from passion_tasks.features.policy import volume_series
from passion_tasks.incidents.causes import MEASURES, Contribution, Explanation, Slice
from passion_tasks.incidents.day import Drivers, cause_of, usual_departure
from passion_tasks.incidents.model import group_incidents, with_severity
from passion_tasks.lake import Lake
from passion_tasks.models import registry
from passion_tasks.models.families import USUAL_DEPARTURE, departures, longest_typical, usual_departures
from passion_tasks.models.scoring import MIN_MINUTES, enough_alone, group_events
from passion_tasks.models.training import live_model, train_each

DAY = 1440
TRAIN = 7 * DAY
START = pd.Timestamp("2026-11-01", tz="UTC")
#: Twelve edges' 5xx rates: a family (one metric, one breakdown).
EDGE_RATES = [f"cdn_5xx_rate{{edge=E{number}}}" for number in range(12)]
TOTAL = "cdn_5xx_rate"


def hiccuping_edges(
    training_days: tuple[int, ...], seed: int = 3, minutes: int = 2, errors: int | None = None
) -> pd.DataFrame:
    """A week of twelve edges of 60 requests a minute and no 5xx but in hiccups: three on each of
    ``training_days``, each ``minutes`` in which a twentieth to a fifth of one edge's requests fail
    (or ``errors`` of them a minute), the edge drawn anew each time; each edge's rate beside its
    requests."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(index=pd.date_range(START, periods=TRAIN, freq="min"))
    for name in EDGE_RATES:
        frame[name] = 0.0
        frame[volume_series(name)] = rng.poisson(60, TRAIN).astype(float)
    for day in training_days:
        for start in day * DAY + rng.choice(DAY - minutes, 3, replace=False):
            name = str(rng.choice(EDGE_RATES))
            requests = frame[volume_series(name)].to_numpy()[start : start + minutes]
            failed = np.round(requests * rng.uniform(0.05, 0.2)) if errors is None else errors
            frame.iloc[start : start + minutes, frame.columns.get_loc(name)] = failed / requests
    return frame


def fitted_edges(frame: pd.DataFrame) -> dict[str, Detector]:
    return {name: make_detector("rate").fit(frame[[name, volume_series(name)]]) for name in EDGE_RATES}


def test_a_breakdown_family_that_departs_on_most_days_has_a_usual_departure() -> None:
    # Each edge hiccups on a few of the seven days, too few for its own rule of days; their family
    # every day, for two minutes each time.
    models = fitted_edges(hiccuping_edges(tuple(range(7))))
    index = hiccuping_edges(()).index
    assert not any(model.overdispersion_ for model in models.values())
    assert usual_departures(models, index) == dict.fromkeys(EDGE_RATES, 2 + MIN_MINUTES)
    # A metric's breakdowns by edge and by device are one family: the edges hiccup on three days,
    # the devices on three others, neither on most days alone.
    edges = fitted_edges(hiccuping_edges((0, 2, 4)))
    devices = {
        name.replace("edge=E", "device=D"): model
        for name, model in fitted_edges(hiccuping_edges((1, 3, 5))).items()
    }
    assert usual_departures(edges, index) == usual_departures(devices, index) == {}
    assert usual_departures(edges | devices, index) == dict.fromkeys(edges | devices, 2 + MIN_MINUTES)
    # Requests depart both ways: a habit of surges says nothing of a drop.
    assert usual_departures({volume_series(name): model for name, model in models.items()}, index) == {}


def test_departures_too_weak_to_make_an_incident_alone_still_make_the_familys_habit() -> None:
    # Two errors in a minute among sixty cross an edge's threshold but make no incident alone:
    # whether a hiccup of a handful of errors does is chance, the family's habit is not.
    frame = hiccuping_edges(tuple(range(7)), minutes=1, errors=2)
    models = fitted_edges(frame)
    found = pd.concat([departures(name, model, frame.index) for name, model in models.items()])
    severities = found["peak_score"] / found["series"].map({n: m.threshold_ for n, m in models.items()})
    assert len(found) == 21 and not enough_alone(found.assign(severity=severities)).any()
    assert usual_departures(models, frame.index) == dict.fromkeys(EDGE_RATES, 1 + MIN_MINUTES)


def test_the_usual_departure_is_the_longest_of_a_typical_day() -> None:
    # The median day's longest would be a knife edge: half the days depart for longer, by chance.
    assert longest_typical(pd.Series([20, 25, 24, 32, 13, 26, 22])) == 32
    # Nor is the longest of a week enough: a hiccup of three minutes among days of one or two
    # comes once a week, and the next week's may be the one.
    assert longest_typical(pd.Series([1, 1, 1, 2, 1, 1, 1])) == 1 + MIN_MINUTES
    # A day of half an hour among days of two minutes held the week's incident, not its habit.
    assert longest_typical(pd.Series([2, 2, 1, 2, 30, 2, 2])) == 2 + MIN_MINUTES
    assert longest_typical(pd.Series([10, 12, 9, 11, 25, 10, 12])) == 11 + MIN_MINUTES


def test_a_familys_departures_on_a_few_days_are_the_weeks_incidents() -> None:
    frame = hiccuping_edges((1, 4, 5))
    models = fitted_edges(frame)
    assert usual_departures(models, frame.index) == {}
    # A total is no family, though it departs on most days: its departure is the whole service's.
    total = make_detector("rate").fit(hiccuping_total().iloc[:TRAIN])
    assert len(departures(TOTAL, total, frame.index)) == 7
    assert usual_departures({TOTAL: total}, frame.index) == {}


def edge_events(name: str, start: pd.Timestamp, minutes: int, ratio: float = 20.0) -> pd.DataFrame:
    """One event of ``name`` (threshold 5), ``minutes`` long from ``start``."""
    end = start + pd.Timedelta(minutes=minutes - 1)
    return pd.DataFrame(
        {
            "start": [start],
            "end": [end],
            "series": [name],
            "detector": ["rate"],
            "peak_score": [5.0 * ratio],
            "peak_ts": [start],
            "minutes": [minutes],
            "threshold": [5.0],
            "severity": [ratio],
        }
    )


def edge_incident(name: str, start: pd.Timestamp, minutes: int, ratio: float = 20.0):
    """The incident of one event of ``name`` (threshold 5), ``minutes`` long from ``start``."""
    return group_incidents(edge_events(name, start, minutes, ratio))[0]


@pytest.mark.parametrize(("minutes", "level"), [(2, "info"), (20, "critical")])
def test_a_departure_no_longer_than_its_familys_habit_is_reported_and_pages_nobody(
    lake: Lake, minutes: int, level: str
) -> None:
    frame = hiccuping_edges(tuple(range(7)))
    scored_day = (START + pd.Timedelta(days=7)).date()
    plan = {name: ("rate",) for name in EDGE_RATES}
    trained = train_each(lake, frame, plan, params={}, live_from=scored_day)

    assert trained.usual_departures == dict.fromkeys(EDGE_RATES, 2 + MIN_MINUTES)
    assert registry.live(lake, EDGE_RATES[4], on=scored_day).metrics[USUAL_DEPARTURE] == 2 + MIN_MINUTES
    incident = edge_incident(EDGE_RATES[4], START + pd.Timedelta(days=7, hours=10), minutes)
    usual = usual_departure(lake, scored_day, incident)
    assert bool(usual) is (level == "info")
    cause = cause_of(incident, Drivers(usual=usual))
    assert cause.to_json()["usual"] == usual
    alerted = Alerted(
        tuple(anomalies(incident.events, incident.events.rename(columns={"peak_ts": "ts"}))), cause
    )
    assert severity(alerted, Rules().levels) == level
    # A departure that opens the day lasts from when its incident began, the day before.
    opening = edge_incident(EDGE_RATES[4], START + pd.Timedelta(days=7), minutes)
    assert usual_departure(lake, scored_day, opening) == usual
    assert usual_departure(lake, scored_day, opening, opening.start - pd.Timedelta(minutes=10)) == ""
    # The day before the models went live, nothing says what the family does on most days.
    assert usual_departure(lake, scored_day - dt.timedelta(days=1), incident) == ""


def hiccuping_total(seed: int = 4) -> pd.DataFrame:
    """Eight days of a 5xx rate of 60 requests a minute and no errors but in a two-minute hiccup on
    each of the seven training days, a fifth to a half of the requests failing (an origin that
    fails often and hard); on the eighth, a hiccup like them at 10:00 and an outage of a third of
    the requests for 20 minutes at 15:00."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(index=pd.date_range(START, periods=TRAIN + DAY, freq="min"))
    requests = rng.poisson(60, len(frame)).astype(float)
    failing = np.zeros(len(frame))
    for day in range(7):
        start = day * DAY + rng.integers(DAY - 2)
        failing[start : start + 2] = rng.uniform(0.2, 0.5)
    failing[TRAIN + 600 : TRAIN + 602] = 0.35
    failing[TRAIN + 900 : TRAIN + 920] = 0.35
    frame[TOTAL] = np.round(requests * failing) / requests
    frame[volume_series(TOTAL)] = requests
    return frame


def test_a_total_that_hiccups_hard_on_most_days_still_sees_an_outage(lake: Lake) -> None:
    frame = hiccuping_total()
    scored_day = (START + pd.Timedelta(days=7)).date()
    trained = train_each(lake, frame.iloc[:TRAIN], {TOTAL: ("rate",)}, params={}, live_from=scored_day)
    assert trained.usual_departures == {}

    model = live_model(lake, TOTAL, scored_day)[0]
    # The hiccups stay out of the rate it learns: widened to expect them, it missed the outage.
    assert model.overdispersion_ == 0.0
    detected = model.detect(frame).iloc[TRAIN:]
    scores = detected.assign(series=TOTAL, detector="rate", threshold=model.threshold_)
    scores = scores.rename_axis("ts").reset_index()
    levels = {}
    for incident in group_incidents(with_severity(group_events(scores), scores)):
        cause = cause_of(incident, Drivers(usual=usual_departure(lake, scored_day, incident)))
        alerted = Alerted(tuple(anomalies(incident.events, scores)), cause)
        levels[f"{incident.start:%H:%M}"] = severity(alerted, Rules().levels)
    assert levels == {"10:00": "warning", "15:00": "critical"}


def errors_at(*slices: Slice) -> Explanation:
    """The logs' explanation of a 5xx rate that rose from 0 to 5% inside ``slices``."""
    measure = MEASURES[TOTAL]
    return Explanation(TOTAL, measure, 0.0, 0.05, 0.0, 0.01, slices, (), None, 1.0, True, True, 600)


@pytest.mark.parametrize(("minutes", "edge_too"), [(2, False), (2, True), (20, True)])
def test_a_total_that_one_edges_hiccup_moved_is_that_edges_habit(
    lake: Lake, minutes: int, edge_too: bool
) -> None:
    # The whole CDN's 5xx rate is 0 but when an origin hiccups on some edge: a hiccup moves it with the
    # edge, or alone where the edge's own requests are too few to show it. Placed on one edge by
    # the logs, the total's departure is that edge's, and the family's habit speaks for it; placed
    # everywhere, or nowhere, it is the whole service's.
    frame = hiccuping_edges(tuple(range(7)))
    scored_day = (START + pd.Timedelta(days=7)).date()
    train_each(lake, frame, {name: ("rate",) for name in EDGE_RATES}, params={}, live_from=scored_day)
    start = START + pd.Timedelta(days=7, hours=10)
    names = [TOTAL, EDGE_RATES[4]] if edge_too else [TOTAL]
    (incident,) = group_incidents(pd.concat([edge_events(name, start, minutes) for name in names]))

    def usual(*explanations: Explanation) -> bool:
        return bool(usual_departure(lake, scored_day, incident, explanations=explanations))

    on_e4 = Slice("edge_location", ("E4",), 1.0, 0.08)
    assert usual(errors_at(on_e4)) is (minutes <= 2 + MIN_MINUTES)
    assert usual(errors_at(Slice("path_group", ("/api",), 1.0, 0.1), on_e4)) is (minutes <= 2 + MIN_MINUTES)
    assert not usual(errors_at())
    assert not usual(errors_at(Slice("edge_location", ("E4", "E5"), 1.0, 0.16)))
    assert not usual()


IPHONE = "cdn_5xx_rate{device=iPhone}"


def iphone_joining_two_hiccups(lake: Lake, explanation: Explanation, edges_flagged: int = 2) -> bool:
    """Whether the iPhones' twelve minutes of 5xx from 10:00, their windows joining E4's two-minute
    hiccup at 10:00 and E5's at 10:10 (flagged on the first ``edges_flagged`` of the two), are the
    family's habit, the logs explaining the 5xx rate as ``explanation``."""
    frame = hiccuping_edges(tuple(range(7)))
    frame[IPHONE], frame[volume_series(IPHONE)] = frame[EDGE_RATES[0]], frame[volume_series(EDGE_RATES[0])]
    scored_day = (START + pd.Timedelta(days=7)).date()
    plan = {name: ("rate",) for name in [*EDGE_RATES, IPHONE]}
    trained = train_each(lake, frame, plan, params={}, live_from=scored_day)
    assert trained.usual_departures[IPHONE] == 2 + MIN_MINUTES
    start = START + pd.Timedelta(days=7, hours=10)
    hiccups = [
        edge_events(EDGE_RATES[4], start, 2),
        edge_events(EDGE_RATES[5], start + pd.Timedelta(minutes=10), 2),
    ]
    (incident,) = group_incidents(pd.concat([*hiccups[:edges_flagged], edge_events(IPHONE, start, 12)]))
    return bool(usual_departure(lake, scored_day, incident, explanations=(explanation,)))


@pytest.mark.parametrize(
    ("edges_flagged", "on_iphone", "habit"), [(2, False, True), (1, False, False), (2, True, False)]
)
def test_a_device_that_joins_two_edges_hiccups_into_one_departure_lasts_as_long_as_theirs(
    lake: Lake, edges_flagged: int, on_iphone: bool, habit: bool
) -> None:
    # E4's and E5's origins hiccup ten minutes apart, for every device. Where the logs place the
    # change on E4 and E5, each flagged with its own two minutes, the iPhones' twelve minutes are
    # theirs: the family's habit. Not where E5's detector saw nothing, nor where the logs place the
    # change on the iPhones too.
    places = [Slice("edge_location", ("E4", "E5"), 1.0, 0.16)]
    if on_iphone:
        places.append(Slice("device_family", ("iPhone",), 1.0, 0.5))

    assert iphone_joining_two_hiccups(lake, errors_at(*places), edges_flagged) is habit


def edges_carrying(*shares: float) -> tuple[Contribution, ...]:
    """An explanation's breakdown by edge: E4, E5, E1... carrying these shares of the change."""
    edges = ("E4", "E5", "E1")
    return tuple(
        Contribution("edge_location", edge, 0.0, share / 10, share, 0.1)
        for edge, share in zip(edges[: len(shares)], shares, strict=True)
    )


@pytest.mark.parametrize(
    ("breakdown", "habit"),
    [
        ((0.8, 0.2, 0.0), True),
        # E1 carries part of it too, with no event of its own; ...
        ((0.7, 0.2, 0.1), False),
        # ... or the logs do not say which edges carry it.
        ((), False),
    ],
)
def test_a_device_that_joins_two_edges_hiccups_on_one_path_lasts_as_long_as_theirs(
    lake: Lake, breakdown: tuple[float, ...], habit: bool
) -> None:
    # As above, but the hiccups failed the misses of /api, the path the logs place the change on, on
    # every edge they fell on: the edges are those of the breakdown that carry part of the change,
    # when it lists every one that does (the last it lists carries none).
    on_api = replace(
        errors_at(Slice("path_group", ("/api",), 1.0, 0.1)), breakdown=edges_carrying(*breakdown)
    )

    assert iphone_joining_two_hiccups(lake, on_api) is habit


def test_a_hiccup_beside_a_crawler_is_as_much_a_habit_as_alone(lake: Lake) -> None:
    # A crawler walks E1 for 25 minutes, its 404s flagging E1's 4xx rate and the whole CDN's, while E4
    # hiccups for two minutes: one incident, routine in both its parts.
    frame = hiccuping_edges(tuple(range(7)))
    scored_day = (START + pd.Timedelta(days=7)).date()
    train_each(lake, frame, {name: ("rate",) for name in EDGE_RATES}, params={}, live_from=scored_day)
    start = START + pd.Timedelta(days=7, hours=10)
    crawled = ["cdn_4xx_rate", "cdn_4xx_rate{edge=E1}", "cdn_4xx_rate{edge=E7}"]

    def usual(crawler: Explanation, *flagged: str) -> bool:
        events = [edge_events(name, start + pd.Timedelta(minutes=3), 25) for name in flagged]
        (incident,) = group_incidents(pd.concat([edge_events(EDGE_RATES[4], start, 2), *events]))
        hiccup = errors_at(Slice("edge_location", ("E4",), 1.0, 0.08))
        return bool(usual_departure(lake, scored_day, incident, explanations=(hiccup, crawler)))

    crawler = replace(
        errors_at(),
        metric="cdn_4xx_rate",
        measure=MEASURES["cdn_4xx_rate"],
        clients=("198.51.100.7",),
        client_edges=("E1",),
    )
    assert usual(crawler, *crawled[:2])
    # Unless its metric moved on an edge that never served it, or no few clients made it.
    assert not usual(crawler, *crawled)
    assert not usual(replace(crawler, clients=(), client_edges=()), *crawled[:2])
