"""The incident's plot, attached to alert emails: each series' actual and expected values around it."""

from __future__ import annotations

import io

import matplotlib.dates as mdates
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from passion_tasks.alerting.rules import Incident

#: Series drawn, most anomalous first; the email lists them all and the report has every plot.
MAX_SERIES_PLOTTED = 6
#: Time shown before and after the incident, so the reader sees what normal looked like.
CONTEXT = pd.Timedelta(hours=2)


def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG bytes, drawn by Agg without pyplot (no global state, safe in threads)."""
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


def incident_png(scores: pd.DataFrame, incident: Incident) -> bytes:
    """One panel per series of the incident: actual vs expected, anomalous minutes in red, the incident
    shaded. ``scores`` are the day's rows in ``schemas.SCORES`` columns."""
    peak_ratio: dict[tuple[str, str], float] = {}
    for anomaly in sorted(incident.anomalies, key=lambda anomaly: -anomaly.ratio):
        peak_ratio.setdefault((anomaly.series, anomaly.detector), anomaly.ratio)
    shown = list(peak_ratio)[:MAX_SERIES_PLOTTED]
    window = scores[(scores["ts"] >= incident.start - CONTEXT) & (scores["ts"] <= incident.end + CONTEXT)]
    figure = Figure(figsize=(9, 0.8 + 1.9 * len(shown)), dpi=80, layout="constrained")
    panels = figure.subplots(len(shown), 1, sharex=True, squeeze=False)[:, 0]
    for axes, (series, detector) in zip(panels, shown, strict=True):
        rows = window[(window["series"] == series) & (window["detector"] == detector)].sort_values("ts")
        ts = rows["ts"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
        anomalous = rows["is_anomaly"].to_numpy(dtype=bool)
        axes.plot(ts, rows["value"], color="tab:blue", linewidth=1, label="actual")
        axes.plot(ts, rows["expected"], color="tab:gray", linewidth=1, linestyle="--", label="expected")
        axes.scatter(ts[anomalous], rows["value"].to_numpy()[anomalous], color="red", s=10, zorder=3)
        axes.axvspan(_naive(incident.start), _naive(incident.end), color="red", alpha=0.12)
        axes.set_title(
            f"{series} ({detector}), peak {peak_ratio[series, detector]:.1f}x threshold",
            loc="left",
            fontsize="medium",
        )
        axes.grid(alpha=0.3)
    panels[0].legend(loc="upper left", fontsize="small")
    panels[-1].xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    panels[-1].set_xlabel("UTC")
    title = f"Incident {incident.start:%Y-%m-%d %H:%M}-{incident.end:%H:%M} UTC"
    if len(peak_ratio) > len(shown):
        title += f", the {len(shown)} most anomalous of {len(peak_ratio)} series"
    figure.suptitle(title, fontsize="medium")
    return png_bytes(figure)


def _naive(stamp: pd.Timestamp) -> pd.Timestamp:
    return stamp.tz_convert("UTC").tz_localize(None)
