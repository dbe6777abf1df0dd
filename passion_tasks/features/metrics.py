"""Per-minute metric features: each series' value and its previous-hour open/close/max/min."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from passion_tasks.lake import Day

from .series import OHLC, long_table, minute_grid, previous_hour

COLUMNS = ["ts", "source", "series", "value"]


def metric_features(day_rows: pa.Table, previous_hour_rows: pa.Table | None, day: Day) -> pa.Table:
    """FEATURES rows for every series of ``day_rows`` (the day's metrics, only that day's rows).

    ``previous_hour_rows`` are the metrics of the last hour of the day before; they feed hour 0's
    open/close/max/min, which stay NaN without them.
    """
    check_unique_series(day_rows)
    names = sorted(pc.unique(day_rows["series"]).to_pylist())
    grid = minute_grid(day, day)
    extended = pd.date_range(grid[0] - pd.Timedelta(hours=1), grid[-1], freq="min", unit="ms")

    rows = day_rows if previous_hour_rows is None else pa.concat_tables([previous_hour_rows, day_rows])
    wide = minute_means(rows).reindex(index=extended, columns=names)
    parts = [wide.loc[grid]]
    parts += [previous_hour(wide, how).loc[grid].add_suffix(f"_{name}") for name, how in OHLC.items()]
    features = pd.concat(parts, axis=1)
    features.columns = pd.MultiIndex.from_tuples(
        [(name, "", "") for name in features.columns], names=["metric", "dim", "dim_value"]
    )
    return long_table(features)


def minute_means(rows: pa.Table) -> pd.DataFrame:
    """Mean value per series and minute, wide: index = minute, one column per series."""
    frame = pa.table(
        {
            "minute": pc.floor_temporal(rows["ts"], unit="minute"),
            "series": pc.dictionary_encode(rows["series"]),
            "value": rows["value"],
        }
    ).to_pandas()
    means = frame.groupby(["minute", "series"], observed=True)["value"].mean().unstack("series")
    means.columns = means.columns.astype(str)
    return means


def check_unique_series(rows: pa.Table) -> None:
    """Feature names carry no source, so one series name must not come from two sources."""
    pairs = rows.group_by(["series", "source"]).aggregate([])
    shared = pairs.group_by("series").aggregate([("source", "count")]).filter(pc.field("source_count") > 1)
    if shared.num_rows:
        raise ValueError(
            f"metric series names must be unique across sources; {shared.num_rows} are not, "
            f"e.g. {shared['series'][0].as_py()!r}"
        )
