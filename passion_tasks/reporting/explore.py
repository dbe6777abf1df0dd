"""The exploration page: look at a range of days before choosing series, features and models.

What the seed notebook did by hand ("visualize the input data, help the user to find critical
features"): each series with its anomalies in red, their distributions, Pearson correlations across
series and features, chi-square tests of where anomalies fall, and which inputs matter to the
anomalies of a target series (XGBoost when it has labels, an isolation forest's permutation
importance otherwise).
"""

from __future__ import annotations

import datetime as dt
import math
import posixpath
from typing import Any

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.dataset as pads
from jinja2 import Environment, PackageLoader, StrictUndefined
from matplotlib.figure import Figure

from passion_tasks.corpora.labels import label_windows, labels_on
from passion_tasks.errors import UsageError
from passion_tasks.features import read_series
from passion_tasks.features.policy import is_input_only
from passion_tasks.figures import ANOMALY, naive_utc, png_data_uri
from passion_tasks.lake import Day, Lake, PartitionNotFound, as_day, datasets
from passion_tasks.lake.schemas import INPUT_ONLY_SUFFIXES
from passion_tasks.reporting import analysis

#: Series drawn one panel each; the heatmap's columns; the inputs shown in the importance chart.
MAX_PLOTTED = 24
MAX_HEATMAP = 40
MAX_IMPORTANCE = 20

_TEMPLATES = Environment(
    loader=PackageLoader("passion_tasks.reporting"), autoescape=True, undefined=StrictUndefined
)


def explore(
    lake: Lake, start: Day, end: Day, series: list[str] | None = None, *, target: str | None = None
) -> str:
    """Write the exploration page of the days ``start`` to ``end`` to ``explore/<start>_<end>/index.html``.

    ``series`` default to every overall series (the CDN metrics over all requests, the server
    metrics); their previous-hour features (``_open`` ... ``_min``) join the correlations and the
    importance inputs. ``target`` (default: the first of ``series``, else the series with the most
    labelled minutes) is the series whose anomalies the importance explains. Returns the page's URI.
    """
    start, end = as_day(start), as_day(end)
    if end < start:
        raise UsageError(f"--to {end} is before --from {start}")
    available = overall_series(lake, start, end)
    chosen = list(series) if series else [name for name in available if not is_input_only(name)]
    inputs = [
        f"{name}{suffix}"
        for name in chosen
        for suffix in INPUT_ONLY_SUFFIXES
        if f"{name}{suffix}" in available
    ]
    frame = read_series(lake, start, end, chosen + inputs)
    empty = [name for name in chosen if frame[name].isna().all()]
    if empty:
        raise UsageError(f"no values from {start} to {end} for {', '.join(empty)}")
    windows = label_windows(lake)
    labels = pd.DataFrame({name: labels_on(frame.index, windows.get(name, [])) for name in chosen})
    target = target or (chosen[0] if series else _most_labelled(labels))
    if target not in chosen:
        raise UsageError(f"target {target!r} is not among the explored series")
    html = explore_html(
        start, end, frame[chosen + inputs], labels, scored_anomalies(lake, start, end, chosen), target
    )
    return lake.write_text(posixpath.join(datasets.EXPLORE, f"{start}_{end}", "index.html"), html)


def overall_series(lake: Lake, start: dt.date, end: dt.date) -> list[str]:
    """Every series without a dimension (``dim == ""``) with features in the range, sorted."""
    table = lake.read_range(datasets.FEATURES, start, end, columns=["series"], filter=pads.field("dim") == "")
    return sorted(pc.unique(table["series"]).to_pylist())


def scored_anomalies(lake: Lake, start: dt.date, end: dt.date, series: list[str]) -> pd.DataFrame | None:
    """The minutes the detectors flagged, per series (minutes x series, bool); None without scores."""
    try:
        table = lake.read_range(
            datasets.SCORES,
            start,
            end,
            columns=["ts", "series", "is_anomaly"],
            filter=pads.field("series").isin(series),
        )
    except PartitionNotFound:
        return None
    if not table.num_rows:
        return None
    flagged = table.to_pandas().pivot_table(index="ts", columns="series", values="is_anomaly", aggfunc="max")
    return flagged.reindex(columns=series).astype("boolean")


def _most_labelled(labels: pd.DataFrame) -> str:
    counts = labels.sum()
    return str(counts.idxmax()) if counts.max() > 0 else str(labels.columns[0])


def explore_html(
    start: dt.date,
    end: dt.date,
    frame: pd.DataFrame,
    labels: pd.DataFrame,
    scored: pd.DataFrame | None,
    target: str,
) -> str:
    """The page for ``frame`` (minutes x series and features), ``labels`` (0/1, minutes x the
    series) and the detectors' flags ``scored`` (bool, on its own grid; None without scores)."""
    chosen = list(labels.columns)
    observed = frame[chosen].notna()
    # True/False where a minute was observed (labelled: has data; flagged: was scored), NA elsewhere.
    sources = {"labelled": labels.astype("boolean").where(observed)}
    if scored is not None:
        sources["flagged by the detectors"] = scored.reindex(index=frame.index, columns=chosen)
    source = "flagged by the detectors" if scored is not None and scored.to_numpy().any() else "labelled"
    anomalous = sources[source]
    heatmap_columns = list(frame.columns[:MAX_HEATMAP])
    target_labels = labels[target] if labels[target].any() else None
    others = [column for column in frame.columns if column != target]
    importance = analysis.feature_importance(frame[[target, *others]], target_labels)
    tests = [
        (name, test)
        for name, flags in sources.items()
        if flags.fillna(False).to_numpy().any()
        for test in (analysis.anomalies_by_hour(_any_observed(flags)), analysis.anomalies_by_series(flags))
    ]
    return _TEMPLATES.get_template("explore.html").render(
        start=start.isoformat(),
        end=end.isoformat(),
        target=target,
        facts={
            "Series": len(chosen),
            "Previous-hour features": frame.shape[1] - len(chosen),
            "Minutes": f"{len(frame):,}",
            "Labelled anomalous minutes": f"{int(labels.to_numpy().sum()):,}",
            "Minutes flagged by the detectors": "no scores"
            if scored is None
            else f"{int(scored.to_numpy().sum()):,}",
        },
        series_plot=png_data_uri(
            series_figure(frame[chosen[:MAX_PLOTTED]], labels, sources.get("flagged by the detectors"))
        ),
        unplotted=max(len(chosen) - MAX_PLOTTED, 0),
        histograms=png_data_uri(histogram_figure(frame[chosen[:MAX_PLOTTED]], anomalous)),
        anomaly_source=source,
        heatmap=png_data_uri(heatmap_figure(frame[heatmap_columns].corr())),
        unmapped=max(frame.shape[1] - MAX_HEATMAP, 0),
        correlations=[_correlation_view(c) for c in analysis.correlations_with(frame, target)],
        tests=[_test_view(name, test) for name, test in tests if test is not None],
        untested=sum(test is None for _, test in tests),
        importance=_importance_view(importance),
        importance_plot=png_data_uri(importance_figure(importance)),
    )


def _any_observed(flags: pd.DataFrame) -> pd.Series:
    """Per minute: whether any series was anomalous, NA where none was observed."""
    return flags.fillna(False).any(axis=1).astype("boolean").where(flags.notna().any(axis=1))


# -- figures -----------------------------------------------------------------------------------


def series_figure(frame: pd.DataFrame, labels: pd.DataFrame, flagged: pd.DataFrame | None) -> Figure:
    """One panel per series: the values, labelled windows shaded red, flagged minutes as red dots."""
    figure = Figure(figsize=(11, 0.4 + 1.45 * frame.shape[1]), dpi=100, layout="constrained")
    axes = figure.subplots(frame.shape[1], 1, sharex=True, squeeze=False)[:, 0]
    ts = naive_utc(frame.index)
    # A 20-minute window in a month of minutes would be a hairline: draw it at least this wide.
    shortest = (frame.index[-1] - frame.index[0]) / 300
    for panel, name in zip(axes, frame.columns, strict=True):
        values = frame[name].to_numpy()
        panel.plot(ts, values, color="tab:blue", linewidth=0.6)
        for first, last in _runs(labels[name]):
            panel.axvspan(
                naive_utc(first), naive_utc(max(last, first + shortest)), color=ANOMALY, alpha=0.25, lw=0
            )
        if flagged is not None:
            hits = flagged[name].fillna(False).to_numpy(dtype=bool)
            panel.scatter(ts[hits], values[hits], color=ANOMALY, s=6, zorder=3)
        panel.set_title(name, loc="left", fontsize="small")
        panel.tick_params(labelsize="small")
        panel.margins(x=0)
        panel.grid(alpha=0.3)
    axes[-1].xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
    return figure


def _runs(labels: pd.Series) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """First and last timestamp of each run of labelled (1) minutes."""
    inside = labels.to_numpy(dtype=bool)
    edges = np.flatnonzero(np.diff(np.concatenate(([False], inside, [False])).astype(int)))
    return [
        (labels.index[first], labels.index[stop - 1])
        for first, stop in zip(edges[::2], edges[1::2], strict=True)
    ]


def histogram_figure(frame: pd.DataFrame, anomalous: pd.DataFrame) -> Figure:
    """The distribution of each series, its anomalous minutes' values stacked in red."""
    columns = 4
    rows = math.ceil(frame.shape[1] / columns)
    figure = Figure(figsize=(11, 0.3 + 1.9 * rows), dpi=100, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for panel, name in zip(axes, frame.columns, strict=False):
        values = frame[name]
        flags = anomalous[name].fillna(False).to_numpy(dtype=bool)
        finite = values.notna().to_numpy()
        bins = np.histogram_bin_edges(values[finite], bins=40)
        panel.hist(
            [values[finite & ~flags], values[finite & flags]],
            bins=bins,
            stacked=True,
            color=["tab:blue", ANOMALY],
            label=["normal", "anomalous"],
        )
        panel.set_yscale("log")
        panel.set_title(name, loc="left", fontsize="small")
        panel.tick_params(labelsize="x-small")
    for panel in axes[frame.shape[1] :]:
        panel.set_visible(False)
    return figure


def heatmap_figure(correlation: pd.DataFrame) -> Figure:
    """Pearson's r of every pair of columns, -1 (blue) to 1 (red)."""
    size = 2.5 + 0.28 * len(correlation)
    figure = Figure(figsize=(size + 1.5, size), dpi=80, layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(correlation.to_numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
    ticks = np.arange(len(correlation))
    axes.set_xticks(ticks, correlation.columns, rotation=90, fontsize="x-small")
    axes.set_yticks(ticks, correlation.index, fontsize="x-small")
    figure.colorbar(image, ax=axes, shrink=0.6, label="Pearson's r")
    return figure


def importance_figure(importance: analysis.Importance) -> Figure:
    shown = importance.by_input.head(MAX_IMPORTANCE)[::-1]
    figure = Figure(figsize=(9, 0.6 + 0.28 * max(len(shown), 1)), dpi=80, layout="constrained")
    axes = figure.subplots()
    axes.barh(shown.index, shown.to_numpy(), color="tab:blue")
    axes.set_title(importance.method, loc="left", fontsize="medium")
    axes.tick_params(labelsize="small")
    axes.grid(axis="x", alpha=0.3)
    return figure


# -- views -------------------------------------------------------------------------------------


def _correlation_view(correlation: analysis.Correlation) -> dict[str, str]:
    return {
        "column": correlation.column,
        "r": f"{correlation.r:+.3f}",
        "p_value": _p_value(correlation.p_value),
        "n": f"{correlation.n:,}",
    }


def _test_view(source: str, test: analysis.ChiSquare) -> dict[str, Any]:
    ratios = test.observed / test.expected
    return {
        "source": source,
        "question": test.question,
        "statistic": f"{test.statistic:,.1f}",
        "p_value": _p_value(test.p_value),
        "categories": len(test.observed),
        "over": ", ".join(
            f"{name} ({ratio:.1f}×)" for name, ratio in ratios.nlargest(3).items() if ratio > 1
        ),
    }


def _p_value(p: float) -> str:
    # Below the smallest double, scipy's p-values round to 0.
    return "< 1e-300" if p < 1e-300 else f"{p:.2g}"


def _importance_view(importance: analysis.Importance) -> dict[str, Any]:
    return {
        "method": importance.method,
        "description": importance.description,
        "inputs": [
            (name, f"{value:.4g}") for name, value in importance.by_input.head(MAX_IMPORTANCE).items()
        ],
        "features": [(name, f"{value:.4g}") for name, value in importance.features.head(10).items()],
        "left_out": ", ".join(importance.left_out),
    }
