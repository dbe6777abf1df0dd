"""The benchmark's leaderboard: one row per detector, written as Parquet, JSON and a self-contained page.

``leaderboard.parquet`` holds the detectors' rows, ``series.parquet`` every (detector, series) row,
``leaderboard.json`` both with the published NAB rows and the notes on how the run was made, and
``leaderboard.html`` the tables with their plots embedded as PNGs (it can be mailed or attached).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined
from matplotlib.figure import Figure

from passion_tasks.figures import png_data_uri

#: The detectors table's columns, in order. NAB scores use one threshold per profile optimised over
#: the corpus (NAB's rule), but the two-fold one (chosen on the other half of the files); VUS and
#: ROC AUC need no threshold (each series' mean); the F1s use the detector's own threshold, rows
#: pooled over the series, unless named ``oracle``. ``pa_`` figures are point-adjusted, which
#: flatters (``metrics``).
DETECTOR_COLUMNS = (
    "detector",
    "nab_standard",
    "nab_reward_low_FP_rate",
    "nab_reward_low_FN_rate",
    "nab_standard_own_threshold",
    "nab_standard_2fold",
    "nab_reward_low_FP_rate_2fold",
    "nab_reward_low_FN_rate_2fold",
    "vus_pr",
    "vus_roc",
    "auc",
    "f1_pointwise",
    "f1_event",
    "pa_precision",
    "pa_recall",
    "pa_f1",
    "best_pa_f1_oracle",
    "best_pa_f1_oracle_threshold",
    "fit_seconds",
    "score_seconds",
    "series",
    "failed_series",
)
SERIES_COLUMNS = (
    "detector",
    "series",
    "test_rows",
    "segments",
    "vus_window",
    "vus_pr",
    "vus_roc",
    "auc",
    "f1_pointwise",
    "f1_event",
    "pa_precision",
    "pa_recall",
    "pa_f1",
    "nab_standard_raw",
    "fit_seconds",
    "score_seconds",
    "error",
)
PUBLISHED_COLUMNS = ("detector", "standard", "reward_low_FP_rate", "reward_low_FN_rate")
NAB_PROFILE_NAMES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
PERFECT = "perfect"

#: TSB-AD's published VUS-PR (Liu and Paparrizos, NeurIPS 2024): its leaders on its own curated datasets
#: and splits (TSB-AD-U, univariate; TSB-AD-M, multivariate), which hold parts of these corpora but are not
#: them, and its PCA on its SMD subset. Each row: TSB-AD's method, where it was measured, its VUS-PR, and
#: the Passion detector that implements the method ("" for none).
TSB_AD_VUS_PR = (
    ("Sub-PCA", "univariate", 0.42, "sub_pca"),
    ("KShapeAD", "univariate", 0.40, ""),
    ("POLY", "univariate", 0.39, "poly"),
    ("Series2Graph", "univariate", 0.39, ""),
    ("KMeansAD", "univariate", 0.37, "kmeans_ad"),
    ("CNN", "multivariate", 0.31, "windowed_cnn"),
    ("OmniAnomaly", "multivariate", 0.31, "omni_anomaly"),
    ("PCA", "multivariate", 0.31, "pca"),
    ("LSTMAD", "multivariate", 0.31, ""),
    ("USAD", "multivariate", 0.30, "usad"),
    ("IForest", "multivariate", 0.20, "isolation_forest"),
    ("PCA", "smd", 0.364, "pca"),
)
#: The published rows each corpus is shown beside: the univariate ones for single series, the
#: multivariate ones (and SMD's own) for entities of many metrics.
TSB_AD_SCOPES = {
    "nab": ("univariate",),
    "kpi": ("univariate",),
    "nasa-http": ("univariate",),
    "asd": ("multivariate",),
    "smd": ("multivariate", "smd"),
}
TSB_AD_COLUMNS = ("method", "measured_on", "published_vus_pr", "passion_detector", "passion_vus_pr")

FILES = {
    "detectors": "leaderboard.parquet",
    "series": "series.parquet",
    "json": "leaderboard.json",
    "html": "leaderboard.html",
}

_TEMPLATES = Environment(
    loader=PackageLoader("passion_tasks.reporting"), autoescape=True, undefined=StrictUndefined
)


@dataclass(frozen=True)
class Leaderboard:
    """A benchmark run's figures.

    ``detectors`` has ``DETECTOR_COLUMNS`` (best NAB standard score first), ``series`` has
    ``SERIES_COLUMNS``, ``published`` NAB's scoreboard (``PUBLISHED_COLUMNS``; empty for other
    corpora) and ``method`` says in words how the run was made, one entry per choice.
    """

    corpus: str
    profile: str
    detectors: pd.DataFrame
    series: pd.DataFrame
    published: pd.DataFrame
    method: dict[str, str]

    def summary(self) -> str:
        """The detectors table as plain text, for a terminal."""
        shown = self.detectors[
            [
                "detector",
                "nab_standard",
                "nab_standard_2fold",
                "vus_pr",
                "vus_roc",
                "auc",
                "f1_pointwise",
                "f1_event",
                "pa_f1",
                "fit_seconds",
                "score_seconds",
            ]
        ]
        failed = self.detectors.loc[self.detectors["failed_series"] > 0, ["detector", "failed_series"]]
        text = f"{self.corpus} benchmark ({self.profile} profile)\n" + shown.to_string(
            index=False, float_format=lambda value: f"{value:.3f}"
        )
        for row in failed.itertuples(index=False):
            text += f"\n{row.detector}: failed on {row.failed_series} series (see series.parquet, 'error')"
        return text


def published_scoreboard(path: Path) -> pd.DataFrame:
    """NAB's ``results/final_results.json`` as rows, best standard score first; empty if absent.

    The file holds the null detector (0 by NAB's normalisation) but not the perfect one, 100 by the
    same normalisation: its row is added so both ends of the scale show.
    """
    if not path.is_file():
        return pd.DataFrame(columns=list(PUBLISHED_COLUMNS))
    shipped = json.loads(path.read_text(encoding="utf-8"))
    shipped.setdefault(PERFECT, dict.fromkeys(NAB_PROFILE_NAMES, 100.0))
    rows = [
        {"detector": detector, **{profile: scores[profile] for profile in NAB_PROFILE_NAMES}}
        for detector, scores in shipped.items()
    ]
    return pd.DataFrame(rows, columns=list(PUBLISHED_COLUMNS)).sort_values(
        "standard", ascending=False, ignore_index=True
    )


def tsb_ad_rows(board: Leaderboard) -> pd.DataFrame:
    """TSB-AD's published rows for the board's corpus (``TSB_AD_COLUMNS``), each beside the VUS-PR of
    the Passion detector that implements its method where the run has one (else NaN)."""
    ours = board.detectors.set_index("detector")["vus_pr"]
    scopes = TSB_AD_SCOPES.get(board.corpus, ())
    rows = [
        (method, scope, published, detector, float(ours.get(detector, np.nan)) if detector else np.nan)
        for method, scope, published, detector in TSB_AD_VUS_PR
        if scope in scopes
    ]
    return pd.DataFrame(rows, columns=list(TSB_AD_COLUMNS))


def write_leaderboard(board: Leaderboard, out: Path) -> dict[str, Path]:
    """Write the leaderboard's Parquet, JSON and HTML files into ``out``; returns them by kind."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {kind: out / name for kind, name in FILES.items()}
    board.detectors.to_parquet(paths["detectors"], index=False)
    board.series.to_parquet(paths["series"], index=False)
    document = {
        "corpus": board.corpus,
        "profile": board.profile,
        "method": board.method,
        "detectors": _records(board.detectors),
        "series": _records(board.series),
        "published": _records(board.published),
        "published_tsb_ad": _records(tsb_ad_rows(board)),
    }
    paths["json"].write_text(json.dumps(document, indent=1, allow_nan=False), encoding="utf-8")
    paths["html"].write_text(leaderboard_html(board), encoding="utf-8")
    return paths


def leaderboard_html(board: Leaderboard) -> str:
    """The self-contained leaderboard page."""
    figures = {
        "nab": _nab_figure(board),
        "quality": _quality_figure(board.detectors),
        "times": _times_figure(board.detectors),
    }
    return _TEMPLATES.get_template("leaderboard.html").render(
        corpus=board.corpus,
        profile=board.profile,
        method=board.method,
        detectors=_formatted(board.detectors),
        published=_formatted(board.published),
        tsb_ad=_formatted(tsb_ad_rows(board)),
        failures=_formatted(board.series[board.series["error"].notna()]),
        series=_formatted(board.series),
        figures={name: png_data_uri(figure) for name, figure in figures.items() if figure is not None},
    )


# -- plots -----------------------------------------------------------------------------------------


def _nab_figure(board: Leaderboard) -> Figure | None:
    """NAB standard scores: Passion's detectors beside NAB's published ones, best on top."""
    ours = board.detectors.dropna(subset=["nab_standard"])
    if ours.empty:
        return None
    bars = pd.concat(
        [
            pd.DataFrame(
                {"label": "passion: " + ours["detector"], "score": ours["nab_standard"], "ours": True}
            ),
            pd.DataFrame(
                {"label": board.published["detector"], "score": board.published["standard"], "ours": False}
            ),
        ],
        ignore_index=True,
    ).sort_values("score")
    figure = Figure(figsize=(8, 0.8 + 0.28 * len(bars)))
    axes = figure.add_subplot()
    colours = np.where(bars["ours"], "#1565c0", "#9e9e9e")
    axes.barh(bars["label"], bars["score"], color=colours)
    axes.axvline(0, color="#333", linewidth=0.8)
    axes.set_xlabel("NAB standard score (null = 0, perfect = 100)")
    axes.set_title(f"{board.corpus}: Passion (blue) and NAB's published detectors (grey)")
    figure.tight_layout()
    return figure


def _quality_figure(detectors: pd.DataFrame) -> Figure:
    """VUS-PR, VUS-ROC, and point-wise, event-wise and point-adjusted F1 at each detector's own threshold."""
    measures = ["vus_pr", "vus_roc", "f1_pointwise", "f1_event", "pa_f1"]
    figure = Figure(figsize=(8, 0.8 + 0.5 * len(detectors)))
    axes = figure.add_subplot()
    rows = np.arange(len(detectors))
    height = 0.8 / len(measures)
    for offset, measure in enumerate(measures):
        axes.barh(rows + offset * height, detectors[measure].fillna(0), height, label=measure)
    axes.set_yticks(rows + 0.4 - height / 2, detectors["detector"])
    axes.set_xlim(0, 1)
    axes.invert_yaxis()
    axes.legend(loc="lower right")
    axes.set_title("VUS-PR, VUS-ROC; point-wise, event-wise, point-adjusted F1 (own threshold)")
    figure.tight_layout()
    return figure


def _times_figure(detectors: pd.DataFrame) -> Figure:
    """Seconds spent fitting and scoring, summed over the corpus."""
    figure = Figure(figsize=(8, 0.8 + 0.35 * len(detectors)))
    axes = figure.add_subplot()
    axes.barh(detectors["detector"], detectors["fit_seconds"], label="fit")
    axes.barh(detectors["detector"], detectors["score_seconds"], left=detectors["fit_seconds"], label="score")
    axes.invert_yaxis()
    axes.set_xlabel("seconds over the corpus")
    axes.legend(loc="lower right")
    figure.tight_layout()
    return figure


# -- values ----------------------------------------------------------------------------------------


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: numpy scalars as Python numbers, NaN and missing as None."""
    return [{column: _plain(value) for column, value in row.items()} for row in frame.to_dict("records")]


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float | np.floating) and math.isnan(value)):
        return None
    if value is pd.NA:
        return None
    return value.item() if isinstance(value, np.generic) else value


def _formatted(frame: pd.DataFrame) -> list[dict[str, str]]:
    """Rows with every value as display text: 3 decimals for fractions and seconds, '-' for missing."""
    return [{column: _text(value) for column, value in row.items()} for row in _records(frame)]


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
