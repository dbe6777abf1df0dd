"""From a fitted detector to the lake's ``scores`` rows, and from scores to ``events`` (incidents)."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pyarrow as pa

from passion_tasks.detectors import Detector
from passion_tasks.lake import schemas

SCORE_COLUMNS = schemas.SCORES.names

Instant = pd.Timestamp | dt.datetime | dt.date | str


def as_utc(instant: Instant) -> pd.Timestamp:
    """A UTC timestamp; naive values and dates are taken as UTC (a date means its midnight)."""
    stamp = pd.Timestamp(instant)
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


def score_frame(
    detector: Detector,
    frame: pd.DataFrame,
    *,
    series: str,
    model_version: str,
    start: Instant | None = None,
) -> pd.DataFrame:
    """Scores of ``frame``'s rows from ``start`` on, in ``SCORE_COLUMNS``.

    Rows before ``start`` are scored too, as context for windowed detectors, and then dropped:
    pass the tail of the previous day with the day to score so its first minutes have history.
    """
    result = detector.evaluate(frame)
    scores = pd.DataFrame(
        {
            "ts": frame.index.tz_convert("UTC"),
            "series": series,
            "detector": detector.name,
            "model_version": model_version,
            "value": frame[detector.feature_names_in_[0]].astype("float64").to_numpy(),
            "expected": result["expected"].to_numpy(),
            "score": result["score"].to_numpy(),
            "threshold": detector.threshold_,
            "is_anomaly": result["is_anomaly"].to_numpy(),
        },
        columns=SCORE_COLUMNS,
    )
    if start is not None:
        scores = scores[scores["ts"] >= as_utc(start)]
    return scores.reset_index(drop=True)


def grid_step(ts: pd.Series) -> pd.Timedelta:
    """The smallest interval between distinct timestamps; one minute when there is only one."""
    steps = ts.drop_duplicates().sort_values().diff().dropna()
    return steps.min() if len(steps) else pd.Timedelta(minutes=1)


def group_events(scores: pd.DataFrame, max_gap: str = "5min") -> pd.DataFrame:
    """Incidents in the columns of ``schemas.EVENTS``: runs of anomalous rows of one series and detector.

    Two anomalous rows at most ``max_gap`` apart belong to the same event. ``minutes`` is the time
    the event spans, its last row's grid step included. Ordered by start, series, detector.
    """
    gap = pd.Timedelta(max_gap)
    events = []
    for (series, detector), rows in scores.groupby(["series", "detector"], sort=True):
        rows = rows.sort_values("ts", kind="stable")
        step = grid_step(rows["ts"])
        anomalous = rows[rows["is_anomaly"]]
        event_number = (anomalous["ts"].diff() > gap).cumsum()
        for _, event in anomalous.groupby(event_number):
            peak = event.iloc[event["score"].to_numpy().argmax()]
            start, end = event["ts"].iloc[0], event["ts"].iloc[-1]
            events.append(
                {
                    "start": start,
                    "end": end,
                    "series": series,
                    "detector": detector,
                    "peak_score": float(peak["score"]),
                    "peak_ts": peak["ts"],
                    "minutes": math.ceil((end - start + step) / pd.Timedelta(minutes=1)),
                }
            )
    table = pa.Table.from_pylist(events, schema=schemas.EVENTS).to_pandas()
    return table.sort_values(["start", "series", "detector"], kind="stable").reset_index(drop=True)
