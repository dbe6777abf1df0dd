"""Matplotlib figures as self-contained page content (Agg, no pyplot state)."""

from __future__ import annotations

import base64
import datetime as dt
import io

import matplotlib.dates as mdates
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

ANOMALY = "#d62728"
BASELINE = "#7f7f7f"


def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG bytes, drawn by Agg without pyplot (no global state, safe in threads)."""
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


def png_data_uri(figure: Figure) -> str:
    """The figure as a ``data:image/png;base64,...`` URI, for an ``<img>`` in a single-file page."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(figure)).decode("ascii")


def naive_utc(stamps: pd.Series | pd.DatetimeIndex | pd.Timestamp) -> object:
    """UTC timestamps without a time zone, as matplotlib's date axis wants them."""
    if isinstance(stamps, pd.Timestamp):
        return stamps.tz_convert("UTC").tz_localize(None).to_pydatetime()
    if isinstance(stamps, pd.Series):
        return stamps.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    return stamps.tz_convert("UTC").tz_localize(None).to_numpy()


def incident_figure(
    series_rows: list[pd.DataFrame],
    incident: tuple[pd.Timestamp, pd.Timestamp],
    baseline: tuple[pd.Timestamp, pd.Timestamp] | None = None,
) -> Figure:
    """Actual vs expected with the anomalous minutes in red, for each series (scores rows, one frame
    each, already cut to the plotted span); under the first, its score and threshold.

    The incident ``[start, stop)`` is shaded red, the ``baseline`` it was compared with grey.
    """
    heights = [3, 1.6] + [2] * (len(series_rows) - 1)
    figure = Figure(figsize=(10, 1.0 + 1.25 * sum(heights) / 2), dpi=100, layout="constrained")
    axes = figure.subplots(len(heights), 1, sharex=True, height_ratios=heights, squeeze=False)[:, 0]
    lead = series_rows[0]
    _values(axes[0], lead)
    _score(axes[1], lead)
    for panel, rows in zip(axes[2:], series_rows[1:], strict=True):
        _values(panel, rows, legend=False)
    for panel in axes:
        panel.axvspan(naive_utc(incident[0]), naive_utc(incident[1]), color=ANOMALY, alpha=0.1, lw=0)
        if baseline is not None:
            panel.axvspan(naive_utc(baseline[0]), naive_utc(baseline[1]), color=BASELINE, alpha=0.12, lw=0)
        panel.grid(alpha=0.3)
    axes[-1].xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    axes[-1].set_xlabel("UTC" + ("  (grey: the baseline the logs were compared with)" if baseline else ""))
    return figure


def _values(axes: Axes, rows: pd.DataFrame, *, legend: bool = True) -> None:
    ts = naive_utc(rows["ts"])
    anomalous = rows["is_anomaly"].to_numpy(dtype=bool)
    axes.plot(ts, rows["value"], color="tab:blue", linewidth=1, label="actual")
    if rows["expected"].notna().any():
        axes.plot(ts, rows["expected"], color="tab:gray", linewidth=1, linestyle="--", label="expected")
    axes.scatter(
        ts[anomalous], rows["value"].to_numpy()[anomalous], color=ANOMALY, s=10, zorder=3, label="anomalous"
    )
    axes.set_title(str(rows["series"].iloc[0]), loc="left", fontsize="medium")
    if legend:
        axes.legend(loc="upper left", fontsize="small", ncols=3)


def _score(axes: Axes, rows: pd.DataFrame) -> None:
    ts = naive_utc(rows["ts"])
    axes.plot(ts, rows["score"], color="black", linewidth=1, label="score")
    if "threshold" in rows:
        axes.plot(
            ts, rows["threshold"], color=ANOMALY, linestyle="--", drawstyle="steps-post", label="threshold"
        )
    axes.set_ylabel("score")
    axes.legend(loc="upper left", fontsize="small", ncols=2)


def day_span(day: dt.date) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``[midnight, next midnight)`` of ``day`` in UTC."""
    first = pd.Timestamp(day, tz="UTC")
    return first, first + pd.Timedelta(days=1)
