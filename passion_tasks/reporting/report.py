"""The day's HTML report: a summary, then one section per incident with its plots.

The page is self-contained (plots are PNGs embedded as data URIs), so it can be mailed, attached to
a ticket or served straight from the lake.
"""

from __future__ import annotations

import datetime as dt
import posixpath
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import matplotlib.dates as mdates
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined
from matplotlib.figure import Figure

from passion_tasks.lake import Day, Lake, as_day
from passion_tasks.reporting.figures import png_data_uri
from passion_tasks.scoring import grid_step

#: Incidents drawn in the report, longest first (a sustained deviation matters more than a one-minute
#: blip), then by peak score; the rest are only counted.
MAX_EVENTS = 20
TIME_FORMAT = "%Y-%m-%d %H:%M UTC"

_TEMPLATES = Environment(
    loader=PackageLoader("passion_tasks.reporting"), autoescape=True, undefined=StrictUndefined
)


@dataclass(frozen=True)
class IngestCounts:
    """What the CDN log ingest of the day recorded: rows landed and lines quarantined, by reason."""

    rows: int
    quarantined: dict[str, int] = field(default_factory=dict)

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())


def ingest_counts(lake: Lake, day: Day) -> IngestCounts | None:
    """The day's ``cdn_logs`` ingest counts summed over its leaves; None when nothing was ingested."""
    leaves = lake.leaves("cdn_logs", day)
    if not leaves:
        return None
    quarantined: Counter[str] = Counter()
    for leaf in leaves:
        quarantined.update(leaf.meta.get("quarantined") or {})
    return IngestCounts(
        rows=sum(int(leaf.meta.get("rows", leaf.rows)) for leaf in leaves),
        quarantined=dict(sorted(quarantined.items())),
    )


def render_day_report(lake: Lake, day: Day) -> str:
    """Render the report of ``day`` from its scores and events; writes ``reports/dt=D/index.html``.

    Returns the URI of the page.
    """
    day = as_day(day)
    html = day_report_html(
        day,
        lake.read_partition("scores", day).to_pandas(),
        lake.read_partition("events", day).to_pandas(),
        ingest_counts(lake, day),
    )
    return lake.write_text(posixpath.join(Lake.leaf("reports", day), "index.html"), html)


def day_report_html(
    day: dt.date,
    scores: pd.DataFrame,
    events: pd.DataFrame,
    ingest: IngestCounts | None = None,
    *,
    max_events: int = MAX_EVENTS,
) -> str:
    """The report page for one day's scores (``scoring.SCORE_COLUMNS``) and events (``schemas.EVENTS``).

    Without a ``threshold`` column in the scores the score plots have no threshold line.
    """
    shown = events.sort_values(
        ["minutes", "peak_score", "start", "series", "detector"],
        ascending=[False, False, True, True, True],
        kind="stable",
    ).head(max_events)
    series_rows = [
        _series_row(keys, rows) for keys, rows in scores.groupby(["series", "detector"], sort=True)
    ]
    return _TEMPLATES.get_template("day_report.html").render(
        day=day.isoformat(),
        summary={
            "series_scored": scores["series"].nunique(),
            "anomalous_minutes": sum(row["anomalous_minutes"] for row in series_rows),
            "incidents": len(events),
        },
        ingest=_ingest_view(ingest),
        series=series_rows,
        events=[_event_section(event, scores) for event in shown.to_dict("records")],
        hidden_events=len(events) - len(shown),
    )


def _ingest_view(ingest: IngestCounts | None) -> dict[str, Any] | None:
    if ingest is None:
        return None
    return {
        "rows": f"{ingest.rows:,}",
        "quarantined_total": f"{ingest.quarantined_total:,}",
        "quarantined": [(reason, f"{count:,}") for reason, count in ingest.quarantined.items()],
    }


def _series_row(keys: tuple[str, str], rows: pd.DataFrame) -> dict[str, Any]:
    series, detector = keys
    step_minutes = grid_step(rows["ts"]) / pd.Timedelta(minutes=1)
    return {
        "series": series,
        "detector": detector,
        "model_version": ", ".join(sorted(rows["model_version"].unique())),
        "rows": len(rows),
        "anomalous_minutes": round(int(rows["is_anomaly"].sum()) * step_minutes),
        "max_score": f"{rows['score'].max():.2f}",
        "threshold": f"{rows['threshold'].iloc[-1]:.2f}" if "threshold" in rows else "not recorded",
    }


def _event_section(event: dict[str, Any], scores: pd.DataFrame) -> dict[str, Any]:
    rows = scores[(scores["series"] == event["series"]) & (scores["detector"] == event["detector"])]
    rows = rows.sort_values("ts", kind="stable")
    during = rows[(rows["ts"] >= event["start"]) & (rows["ts"] <= event["end"])]
    return {
        "series": event["series"],
        "detector": event["detector"],
        "model_version": ", ".join(sorted(during["model_version"].unique())),
        "start": event["start"].strftime(TIME_FORMAT),
        "end": event["end"].strftime(TIME_FORMAT),
        "duration": _duration(int(event["minutes"])),
        "peak_score": f"{event['peak_score']:.2f}",
        "peak_ts": event["peak_ts"].strftime("%H:%M"),
        "plot": png_data_uri(_event_figure(rows, event)),
    }


def _duration(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest:02d} min" if hours else f"{minutes} min"


def _event_figure(rows: pd.DataFrame, event: dict[str, Any]) -> Figure:
    """Actual vs expected with the anomalous points in red, over the score and its threshold."""
    figure = Figure(figsize=(10, 5.5), dpi=80, layout="constrained")
    values_axes, score_axes = figure.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    ts = rows["ts"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    anomalous = rows["is_anomaly"].to_numpy(dtype=bool)

    values_axes.plot(ts, rows["value"], color="tab:blue", linewidth=1, label="actual")
    values_axes.plot(ts, rows["expected"], color="tab:gray", linewidth=1, linestyle="--", label="expected")
    values_axes.scatter(
        ts[anomalous], rows["value"].to_numpy()[anomalous], color="red", s=12, zorder=3, label="anomalous"
    )
    values_axes.set_title(event["series"], loc="left")
    score_axes.plot(ts, rows["score"], color="black", linewidth=1, label="score")
    if "threshold" in rows:
        score_axes.plot(
            ts, rows["threshold"], color="red", linestyle="--", drawstyle="steps-post", label="threshold"
        )
    span_end = event["end"] + grid_step(rows["ts"])
    for axes in (values_axes, score_axes):
        axes.axvspan(_naive_utc(event["start"]), _naive_utc(span_end), color="red", alpha=0.12)
        axes.legend(loc="upper left", fontsize="small")
        axes.grid(alpha=0.3)
    score_axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    score_axes.set_xlabel("UTC")
    return figure


def _naive_utc(stamp: pd.Timestamp) -> dt.datetime:
    return stamp.tz_convert("UTC").tz_localize(None).to_pydatetime()
