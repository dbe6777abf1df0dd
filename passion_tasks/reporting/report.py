"""The day's HTML report: a summary with the data quality, then one section per incident saying what
drove it, with its plots.

The page is self-contained (plots are PNGs embedded as data URIs), so it can be mailed, attached to
a ticket or served straight from the lake.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.dataset as pads
from jinja2 import Environment, PackageLoader, StrictUndefined

from passion_tasks.features.policy import is_input_only
from passion_tasks.features.series import grid_step
from passion_tasks.figures import day_span, incident_figure, png_data_uri
from passion_tasks.incidents import causes as drv
from passion_tasks.incidents.day import EXPLAINED_INCIDENTS, Drivers, ExplainedIncident, day_incidents
from passion_tasks.incidents.model import Incident
from passion_tasks.lake import Day, Lake, PartitionNotFound, as_day, datasets
from passion_tasks.reporting import report_path

#: Series plotted per incident, and listed in its table.
MAX_PLOTTED = 4
MAX_LISTED = 12
#: Context shown around an incident: at least this much, or its own duration, on each side.
MIN_CONTEXT = pd.Timedelta(minutes=90)
TIME_FORMAT = "%Y-%m-%d %H:%M UTC"
#: The ingested datasets, and the feature source whose grid tells their missing minutes.
SOURCES = {dataset: source for source, dataset in datasets.LANDS_IN.items()}

_TEMPLATES = Environment(
    loader=PackageLoader("passion_tasks.reporting"), autoescape=True, undefined=StrictUndefined
)


@dataclass(frozen=True)
class SourceQuality:
    """One ingested dataset on the day: rows landed, lines quarantined by reason, minutes without data.

    ``rows`` is None when nothing was ingested; ``missing_minutes`` None when the day has no
    features to count them on. ``missing_by_series`` details the metrics' gaps.
    """

    dataset: str
    rows: int | None
    quarantined: dict[str, int] = field(default_factory=dict)
    missing_minutes: int | None = None
    missing_by_series: dict[str, int] = field(default_factory=dict)

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())


def render_day_report(lake: Lake, day: Day) -> str:
    """Render the report of ``day`` from its scores, events, logs and features; writes
    ``reports/dt=D/index.html``. Returns the URI of the page."""
    day = as_day(day)
    scores = lake.read_partition(datasets.SCORES, day).to_pandas()
    events = lake.read_partition(datasets.EVENTS, day).to_pandas()
    explained = day_incidents(lake, day, scores, events)
    html = day_report_html(day, scores, explained, data_quality(lake, day))
    return lake.write_text(report_path(day), html)


def day_report_html(
    day: dt.date,
    scores: pd.DataFrame,
    explained: Sequence[ExplainedIncident],
    quality: list[SourceQuality],
    *,
    sections: int = EXPLAINED_INCIDENTS,
) -> str:
    """The report page of one day's scores (``scoring.SCORE_COLUMNS``) and incidents (most important
    first, the first ``sections`` of them explained, as ``day_incidents`` gives them).

    An explained incident gets a section, unless it is routine (``Cause.routine``: a crawler, a
    download, a breakdown's daily habit): those are listed apart, with what made them, so that the
    day's incidents are the service's. Without a ``threshold`` column in the scores there are no
    threshold lines nor severities.
    """
    by_series = {
        keys: rows.sort_values("ts", kind="stable") for keys, rows in scores.groupby(["series", "detector"])
    }
    series_rows = [_series_row(keys, rows) for keys, rows in sorted(by_series.items())]
    anomalous = sorted(
        (row for row in series_rows if row["anomalous_minutes"]), key=lambda row: -row["anomalous_minutes"]
    )
    # Only an explained incident's cause can say it is routine: the others' names their lead series.
    routine = [item for item in explained if item.cause.routine]
    unexplained = [item.incident for item in explained[sections:]]
    shown = [
        _incident_section(number, item.incident, item.drivers, by_series, day)
        for number, item in enumerate(
            (item for item in explained[:sections] if not item.cause.routine), start=1
        )
    ]
    return _TEMPLATES.get_template("day_report.html").render(
        day=day.isoformat(),
        summary={
            "series_scored": scores["series"].nunique(),
            "anomalous_minutes": sum(row["anomalous_minutes"] for row in series_rows),
            "incidents": len(shown) + len(unexplained),
            "routine": len(routine),
            "events": sum(len(item.incident.events) for item in explained),
        },
        quality=[_quality_view(source) for source in quality],
        sections=shown,
        others=[_overview_row(n, incident) for n, incident in enumerate(unexplained, start=len(shown) + 1)],
        routine=[_routine_row(item) for item in routine],
        anomalous_series=anomalous,
        quiet_series=len(series_rows) - len(anomalous),
    )


# -- data quality ------------------------------------------------------------------------------


def data_quality(lake: Lake, day: Day) -> list[SourceQuality]:
    """Rows ingested, lines quarantined and minutes missing for each of ``SOURCES`` on ``day``."""
    day = as_day(day)
    return [
        _source_quality(lake, dataset, feature_source, day) for dataset, feature_source in SOURCES.items()
    ]


def _source_quality(lake: Lake, dataset: str, feature_source: str, day: dt.date) -> SourceQuality:
    leaves = lake.leaves(dataset, day)
    quarantined: Counter[str] = Counter()
    for leaf in leaves:
        quarantined.update(leaf.meta.get("quarantined") or {})
    rows = sum(int(leaf.meta.get("rows", leaf.rows)) for leaf in leaves) if leaves else None
    gaps = _gaps(lake, feature_source, day)
    return SourceQuality(
        dataset=dataset,
        rows=rows,
        quarantined=dict(sorted(quarantined.items())),
        missing_minutes=None if gaps is None else int(gaps.any(axis=1).sum()),
        missing_by_series={} if gaps is None or gaps.shape[1] < 2 else _nonzero(gaps.sum()),
    )


def _gaps(lake: Lake, feature_source: str, day: dt.date) -> pd.DataFrame | None:
    """Minutes x series, True where the source had no data: no request at all for the CDN, a missing
    value for a metric."""
    wanted = (
        pads.field("series") == "cdn_requests" if feature_source == datasets.CDN else pads.field("dim") == ""
    )
    try:
        table = lake.read_partition(
            datasets.FEATURES,
            day,
            key={datasets.SOURCE_KEY: feature_source},
            columns=["ts", "series", "value"],
            filter=wanted,
        )
    except PartitionNotFound:
        return None
    frame = table.to_pandas()
    # astype: an empty day maps to an object column, which pandas would take for column labels.
    frame = frame[~frame["series"].map(is_input_only).astype(bool)]
    values = frame.pivot(index="ts", columns="series", values="value")
    return values.isna() | (values == 0) if feature_source == datasets.CDN else values.isna()


def _nonzero(counts: pd.Series) -> dict[str, int]:
    return {str(name): int(count) for name, count in counts.items() if count}


def _quality_view(source: SourceQuality) -> dict[str, Any]:
    return {
        "dataset": source.dataset,
        "rows": "not ingested" if source.rows is None else f"{source.rows:,}",
        "quarantined_total": f"{source.quarantined_total:,}",
        "quarantined": [(reason, f"{count:,}") for reason, count in source.quarantined.items()],
        "missing_minutes": "no features" if source.missing_minutes is None else f"{source.missing_minutes:,}",
        "missing_by_series": ", ".join(f"{name} {count}" for name, count in source.missing_by_series.items()),
    }


# -- views -------------------------------------------------------------------------------------


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


def _span_view(incident: Incident) -> dict[str, Any]:
    return {
        "start": incident.start.strftime("%H:%M"),
        "end": incident.end.strftime("%H:%M"),
        "duration": _duration(incident.minutes),
        "series": incident.events["series"].nunique(),
    }


def _overview_row(number: int, incident: Incident) -> dict[str, Any]:
    return {
        "number": number,
        **_span_view(incident),
        "severity": _severity(incident.severity),
        "lead": incident.lead["series"],
    }


def _routine_row(explained: ExplainedIncident) -> dict[str, Any]:
    return {
        **_span_view(explained.incident),
        "sentences": [explained.cause.text, *([explained.cause.usual] if explained.cause.usual else [])],
    }


def _incident_section(
    number: int,
    incident: Incident,
    drivers: Drivers,
    by_series: dict[tuple[str, str], pd.DataFrame],
    day: dt.date,
) -> dict[str, Any]:
    events = incident.events
    listed = events.drop_duplicates(["series", "detector"]).head(MAX_LISTED)
    plotted = _plotted(events)
    span = _context(incident, day)
    rows = [_within(by_series[pair], *span) for pair in plotted]
    return {
        **_overview_row(number, incident),
        "family": "CDN" if incident.family == datasets.CDN else "server metrics",
        "start_full": incident.start.strftime(TIME_FORMAT),
        "end_full": incident.end.strftime(TIME_FORMAT),
        "sentences": drivers.sentences,
        "breakdown": [
            _contribution_view(explanation, row)
            for explanation in drivers.explanations[:1]
            for row in explanation.breakdown
        ],
        "breakdown_measure": drivers.explanations[0].measure.label if drivers.explanations else "",
        "comparisons": _comparisons(drivers, day),
        "movements": [_movement_view(movement) for movement in drivers.movements],
        "events": [_event_view(event, by_series) for event in listed.to_dict("records")],
        "unlisted": events[["series", "detector"]].drop_duplicates().shape[0] - len(listed),
        "plot": png_data_uri(incident_figure(rows, (incident.start, incident.stop), drivers.shaded(day))),
    }


def _plotted(events: pd.DataFrame) -> list[tuple[str, str]]:
    """Up to ``MAX_PLOTTED`` series: the most severe, the overall ones (the big picture), then the
    most severe of each other metric, then the rest; ``events`` come most severe first."""
    pairs = list(dict.fromkeys(zip(events["series"], events["detector"], strict=True)))
    overall = [pair for pair in pairs if drv.metric_of(pair[0]) == pair[0]]
    per_metric = list(
        {drv.metric_of(series): (series, detector) for series, detector in reversed(pairs)}.values()
    )
    ordered = [pairs[0], *overall, *sorted(per_metric, key=pairs.index), *pairs]
    return list(dict.fromkeys(ordered))[:MAX_PLOTTED]


def _context(incident: Incident, day: dt.date) -> tuple[pd.Timestamp, pd.Timestamp]:
    pad = max(MIN_CONTEXT, incident.stop - incident.start)
    first, end = day_span(day)
    return max(first, incident.start - pad), min(end, incident.stop + pad)


def _within(rows: pd.DataFrame, start: pd.Timestamp, stop: pd.Timestamp) -> pd.DataFrame:
    return rows[(rows["ts"] >= start) & (rows["ts"] < stop)]


def _event_view(event: dict[str, Any], by_series: dict[tuple[str, str], pd.DataFrame]) -> dict[str, Any]:
    rows = by_series[event["series"], event["detector"]]
    during = rows[(rows["ts"] >= event["start"]) & (rows["ts"] <= event["end"])]
    return {
        "series": event["series"],
        "detector": event["detector"],
        "model": _model_text(event["series"], event["detector"], during["model_version"].unique()),
        "start": event["start"].strftime("%H:%M"),
        "end": event["end"].strftime("%H:%M"),
        "duration": _duration(int(event["minutes"])),
        "peak_score": f"{event['peak_score']:.2f}",
        "peak_ts": event["peak_ts"].strftime("%H:%M"),
        "threshold": "not recorded" if pd.isna(event["threshold"]) else f"{event['threshold']:.2f}",
        "severity": _severity(event["severity"]),
    }


def _model_text(series: str, detector: str, versions: list[str]) -> str:
    """``rolling_mad@v3`` for the registry's ``<series>/rolling_mad@v3``; the detector and the
    version as they are otherwise."""
    shown = sorted(str(version).removeprefix(f"{series}/") for version in versions)
    return (
        ", ".join(text if text.startswith(detector) else f"{detector} {text}" for text in shown) or detector
    )


def _contribution_view(explanation: drv.Explanation, row: drv.Contribution) -> dict[str, str]:
    fmt = explanation.measure.format
    return {
        "dimension": drv.DIMENSION_NAMES[row.dimension],
        "value": row.value,
        "before": fmt(row.before),
        "during": fmt(row.during),
        "change_share": _share(row.change_share),
        "traffic_share": _share(row.traffic_share),
    }


def _movement_view(movement: drv.Movement) -> dict[str, str]:
    return {
        "series": movement.series,
        "before": f"{movement.before:,.4g}",
        "during": f"{movement.during:,.4g}",
        "change": drv.signed_percent(movement.change),
        "z": drv.signed_number(movement.z),
        "compared": "the day before" if movement.seasonal else "the baseline",
        "moved": "moved" if movement.moved else "",
    }


def _comparisons(drivers: Drivers, day: dt.date) -> str:
    """``13:47–14:47 (5xx rate, ttfb p99; grey in the plot) and 2026-11-20 14:52–15:21 (requests)``."""
    labels = [explanation.measure.label for explanation in drivers.explanations] or ["the services"]
    windows: dict[drv.Window, list[str]] = {}
    for label, window in zip(labels, drivers.baselines, strict=False):
        windows.setdefault(window, []).append(label)
    shaded = drivers.shaded(day)
    return " and ".join(
        f"{_window_text(window, day)} ({', '.join(names)}{'; grey in the plot' if window == shaded else ''})"
        for window, names in windows.items()
    )


def _window_text(window: drv.Window, day: dt.date) -> str:
    start = window[0].strftime("%H:%M" if window[0].date() == day else "%Y-%m-%d %H:%M")
    return f"{start}–{window[1].strftime('%H:%M')}"


def _share(share: float) -> str:
    return "n/a" if not np.isfinite(share) else f"{min(max(share, -9.99), 9.99):.0%}"


def _severity(severity: float) -> str:
    return "n/a" if not np.isfinite(severity) else f"{severity:.1f}×"


def _duration(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest:02d} min" if hours else f"{minutes} min"
