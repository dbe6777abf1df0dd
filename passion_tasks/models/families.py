"""A metric's breakdowns at training: how long their departures usually last.

The 5xx rate of each edge, device and live channel is one family: a metric's breakdowns. An origin
whose fetches fail for two minutes every day, on some edge, departs on each edge only now and then,
too rarely for one series to show it (``on_most_days``), while the family plainly does it every
day, on that edge and on the devices and channels it served. ``usual_departures`` says, of each
family that departs on most training days, how long its departures last: the longest of a typical
day's (``longest_typical``); an incident made only of departures of such families, none longer, is
their habit (``incidents.day.usual_departure``): reported, not paged. A change that lasts longer is
news whatever its size. Every departure counts, not only those that would make an incident alone:
whether a hiccup of a handful of errors crosses that bar is chance, its habit is not. Durations,
not scores: a surprise grows with a slice's requests, and a busy edge's hiccup outscores a thin
edge's outage. A total has no family: its departure is the whole service's, news whatever the week
did, and its detector keeps seeing it (``counts.RateDetector`` leaves the week's departures out of
the rate it learns, on most days or not), unless the logs place its change on one edge or device,
whose departure it then is (``incidents.day.usual_departure``).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from passion_tasks.detectors import Detector
from passion_tasks.features.policy import metric_kind, metric_of, series_dim
from passion_tasks.models.scoring import MIN_MINUTES, group_events

#: Departures on more than this share of the training days are how a family behaves, not the
#: week's incidents: an incident is rare, an origin whose fetches fail every day is not.
USUAL_SHARE_OF_DAYS = 0.5
#: The manifest metric of a breakdown's model that holds its family's usual departure, in minutes.
USUAL_DEPARTURE = "usual_departure_minutes"
#: The kinds of metric (``policy.metric_kind``) whose detectors judge one side only (more errors,
#: fewer hits, slower requests): their habit says what the next departure is. Requests and bytes
#: depart both ways, and a crawler's daily surge on some edge says nothing of an edge that empties.
ONE_SIDED = ("rate", "percentile", "geometric_mean")
#: How many times longer than the median day's a day's longest departure is, at most, for the day to
#: be typical of the family: habits vary in length from day to day, but a departure of half an hour
#: in a family whose days depart for two minutes is the week's incident, not its habit.
INCIDENT_FACTOR = 2.0


def on_most_days(days: pd.DatetimeIndex, index: pd.DatetimeIndex) -> bool:
    """Whether ``days`` (midnights, repeated or not) are more than ``USUAL_SHARE_OF_DAYS`` of the
    days of ``index``."""
    return days.nunique() > USUAL_SHARE_OF_DAYS * index.normalize().nunique()


def departures(series: str, model: Detector, index: pd.DatetimeIndex) -> pd.DataFrame:
    """The events of a fitted model's training rows (``index``), as scoring groups them
    (``scoring.group_events``)."""
    scores = pd.DataFrame(
        {
            "series": series,
            "detector": model.name,
            "ts": index,
            "score": model.decision_scores_,
            "is_anomaly": model.decision_scores_ >= model.threshold_,
        }
    )
    if not scores["is_anomaly"].any():
        return pd.DataFrame(columns=["start", "minutes"])
    return group_events(scores)


def longest_typical(longest: pd.Series) -> int:
    """Of the longest departure of each day a family departs (minutes), the longest of a typical
    day, and at least an incident's ``MIN_MINUTES`` past the median day's: a day whose longest is
    beyond ``INCIDENT_FACTOR`` times the median day's, and beyond that margin, held one of the
    week's incidents and is left out. The median day's alone would be a knife edge (half the days
    depart for longer, by chance), and the longest of a week is outlasted one day in eight."""
    median = float(longest.median())
    margin = median + MIN_MINUTES
    typical = longest[longest <= max(INCIDENT_FACTOR * median, margin)]
    return int(max(typical.max(), margin))


def usual_departures(models: Mapping[str, Detector], index: pd.DatetimeIndex) -> dict[str, int]:
    """Of the fitted ``models`` (series -> detector, fitted on the rows ``index``), the breakdowns of
    ``ONE_SIDED`` metrics whose family departs on most training days, each with how long the
    family's departures last (``longest_typical``)."""
    families: dict[str, list[str]] = {}
    for series in models:
        if series_dim(series) and metric_kind(series) in ONE_SIDED:
            families.setdefault(metric_of(series), []).append(series)
    usual = {}
    for members in families.values():
        found = pd.concat([departures(series, models[series], index) for series in members])
        if found.empty:
            continue
        days = pd.DatetimeIndex(found["start"]).normalize()
        if on_most_days(days, index):
            usual |= dict.fromkeys(members, longest_typical(found.groupby(days)["minutes"].max()))
    return usual
