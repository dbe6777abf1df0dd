"""The minute grid, the long FEATURES layout and the wide frames that detectors read."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from passion_tasks.lake import Day, Lake, as_day, datasets, schemas

#: The seed notebook's previous-hour features: output column -> pandas aggregation.
OHLC = {"open": "first", "close": "last", "max": "max", "min": "min"}


def minute_grid(start: Day, end: Day) -> pd.DatetimeIndex:
    """Every UTC minute of the days ``start`` to ``end``, both included."""
    first = pd.Timestamp(as_day(start), tz="UTC")
    stop = pd.Timestamp(as_day(end), tz="UTC") + pd.Timedelta(days=1)
    return pd.date_range(first, stop, freq="min", inclusive="left", unit="ms", name="ts")


def grid_step(ts: pd.Series) -> pd.Timedelta:
    """The smallest interval between distinct timestamps; one minute when there is only one."""
    steps = ts.drop_duplicates().sort_values().diff().dropna()
    return steps.min() if len(steps) else pd.Timedelta(minutes=1)


def previous_hour(values: pd.Series | pd.DataFrame, how: str) -> pd.Series | pd.DataFrame:
    """Each minute gets the ``how`` aggregate (first, last, max, min) of the previous UTC clock hour.

    Null values are ignored, so ``first`` is the hour's first known value; a minute whose previous
    hour holds no value gets NaN.
    """
    if values.index.tz is not None:
        values = values.tz_convert("UTC")
    hourly = values.resample("h").agg(how)
    hourly.index = hourly.index + pd.Timedelta(hours=1)
    shifted = hourly.reindex(values.index.floor("h"))
    shifted.index = values.index
    return shifted


def previous_hour_ohlc(values: pd.Series) -> pd.DataFrame:
    """Previous-hour ``open, close, max, min`` of a 1-minute series (index: timestamps, UTC if naive)."""
    return pd.DataFrame({name: previous_hour(values, how) for name, how in OHLC.items()})


def long_table(wide: pd.DataFrame) -> pa.Table:
    """FEATURES rows of a wide frame: index = minute grid, columns = (metric, dim, dim_value) levels."""
    labels = wide.columns.to_frame(index=False)[["metric", "dim", "dim_value"]].astype(str)
    names = [schemas.series_name(*label) for label in labels.itertuples(index=False)]
    minutes = len(wide.index)
    # Series-major order: each series' minutes are contiguous, which Parquet compresses well.
    codes = pa.array(np.repeat(np.arange(len(names), dtype=np.int32), minutes))

    def per_series(values: list[str]) -> pa.Array:
        return pa.DictionaryArray.from_arrays(codes, pa.array(values, pa.string())).cast(pa.string())

    ts = np.tile(wide.index.as_unit("ms").asi8, len(names))
    values = wide.to_numpy(dtype=float, na_value=np.nan).T.ravel()
    return pa.table(
        {
            "ts": pa.array(ts, pa.int64()).cast(schemas.TS),
            "series": per_series(names),
            "metric": per_series(labels["metric"].tolist()),
            "dim": per_series(labels["dim"].tolist()),
            "dim_value": per_series(labels["dim_value"].tolist()),
            "value": pa.array(values, pa.float64(), from_pandas=True),
        },
        schema=schemas.FEATURES,
    )


def read_series(lake: Lake, start: Day, end: Day, series: list[str] | None = None) -> pd.DataFrame:
    """Feature series of the days ``start`` to ``end`` as a wide frame on the complete minute grid.

    One column per series, sorted (all series of the range, or exactly those asked for); minutes
    without a value are NaN. Raises ``PartitionNotFound`` when no day of the range has features.
    """
    wanted = None if series is None else pads.field("series").isin(sorted(set(series)))
    table = lake.read_range(datasets.FEATURES, start, end, columns=["ts", "series", "value"], filter=wanted)
    return wide_frame(table, minute_grid(start, end), series)


def wide_frame(table: pa.Table, grid: pd.DatetimeIndex, series: list[str] | None = None) -> pd.DataFrame:
    """FEATURES rows (``ts``, ``series``, ``value``) as a wide frame on ``grid``, one column per series
    (those of ``table``, or exactly ``series``), sorted. Every row must be on the grid and of a series
    named."""
    names = sorted(set(series) if series is not None else pc.unique(table["series"]).to_pylist())
    rows = (table["ts"].cast(pa.int64()).to_numpy() - grid.asi8[0]) // 60_000
    columns = pc.index_in(table["series"], value_set=pa.array(names, pa.string())).to_numpy()
    # Column-major, as the lake holds each series' minutes together: the values land in order.
    matrix = np.full((len(grid), len(names)), np.nan, order="F")
    matrix[rows, columns] = table["value"].to_numpy(zero_copy_only=False)
    return pd.DataFrame(matrix, index=grid, columns=pd.Index(names, dtype=str, name="series"))
