"""Per-minute feature series of a day, from the lake's cdn_logs and metrics, and the frames detectors read.

``features/dt=D/source=cdn`` and ``features/dt=D/source=metrics`` hold the series in long form
(schema ``FEATURES``), every series on the day's complete 1440-minute grid; ``read_series`` turns
days of them into one wide frame.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from passion_tasks.lake import Day, Lake, PartitionNotFound, as_day, datasets, schemas

from . import cdn, metrics
from .series import minute_grid, previous_hour_ohlc, read_series

__all__ = ["FeaturesReport", "build_features", "minute_grid", "previous_hour_ohlc", "read_series"]


@dataclass(frozen=True)
class FeaturesReport:
    """What ``build_features`` wrote: series and rows per source, and what it left out."""

    day: dt.date
    series: dict[str, int]
    rows: dict[str, int]
    skipped: list[str]

    def summary(self) -> str:
        written = ", ".join(
            f"{source}: {self.series[source]} series, {self.rows[source]} rows" for source in self.series
        )
        return f"{self.day}: features {written}" + "".join(f"\n  skipped {note}" for note in self.skipped)


def build_features(lake: Lake, day: Day) -> FeaturesReport:
    """Compute the day's feature series and replace ``features/dt=D/`` with them.

    Either input may be absent, not both (``PartitionNotFound``); the leaf of an absent input is
    replaced by an empty one, so a re-run never leaves a stale version behind.
    """
    day = as_day(day)
    skipped: list[str] = []
    logs = read_day(lake, datasets.CDN_LOGS, day, cdn.COLUMNS, skipped)
    day_metrics = read_day(lake, datasets.METRICS, day, metrics.COLUMNS, skipped)
    if logs is None and day_metrics is None:
        raise PartitionNotFound(f"no cdn_logs and no metrics partition for {day}: no features to build")

    tables = {
        datasets.CDN: schemas.FEATURES.empty_table() if logs is None else cdn.cdn_features(logs, day),
        datasets.SERVER_METRICS: schemas.FEATURES.empty_table(),
    }
    if day_metrics is not None:
        previous = read_previous_hour(lake, day, skipped)
        tables[datasets.SERVER_METRICS] = metrics.metric_features(day_metrics, previous, day)

    series = {source: pc.count_distinct(table["series"]).as_py() for source, table in tables.items()}
    for source, table in tables.items():
        lake.write_partition(
            datasets.FEATURES,
            day,
            table,
            schema=schemas.FEATURES,
            key={datasets.SOURCE_KEY: source},
            meta={"series": series[source]},
        )
    rows = {source: table.num_rows for source, table in tables.items()}
    return FeaturesReport(day=day, series=series, rows=rows, skipped=skipped)


def midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def ts_within(start: dt.datetime, end: dt.datetime) -> pads.Expression:
    """Rows with ``start <= ts < end``."""
    ts = pads.field("ts")
    return (ts >= pa.scalar(start, schemas.TS)) & (ts < pa.scalar(end, schemas.TS))


def read_day(
    lake: Lake, dataset: str, day: dt.date, columns: list[str], skipped: list[str]
) -> pa.Table | None:
    """The rows of the day's partition of ``dataset`` that fall within the day; None without one."""
    try:
        table = lake.read_partition(dataset, day, columns=columns)
    except PartitionNotFound:
        skipped.append(f"{dataset}: no partition for {day}")
        return None
    inside = table.filter(ts_within(midnight(day), midnight(day + dt.timedelta(days=1))))
    if outside := table.num_rows - inside.num_rows:
        skipped.append(f"{dataset}: ignored {outside} row(s) outside {day}")
    return inside


def read_previous_hour(lake: Lake, day: dt.date, skipped: list[str]) -> pa.Table | None:
    """Metrics of 23:00-24:00 of the day before, for hour 0's previous-hour features."""
    previous = day - dt.timedelta(days=1)
    last_hour = ts_within(midnight(day) - dt.timedelta(hours=1), midnight(day))
    try:
        return lake.read_partition(datasets.METRICS, previous, columns=metrics.COLUMNS, filter=last_hour)
    except PartitionNotFound:
        skipped.append(f"metrics: no partition for {previous}; hour 0 open/close/max/min are NaN")
        return None
