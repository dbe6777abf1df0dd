"""The benchmark runner: detectors trained causally on each series of a labelled corpus, then scored.

``passion benchmark --corpus nab --detectors rolling_mad,isolation_forest`` reads a corpus straight
from the reference data (``ingest.reference``'s readers, no lake) and, for every series and detector:

- **trains on the training part only**: NAB's probationary period (rows ``i < min(floor(0.15 N),
  750)``), ASD's and SMD's train files, KPI's first half, NASA-HTTP's July (``reference``'s splits).
  Labels of the training part reach supervised detectors (``label_use``); test labels reach nobody;
- **scores the whole series** with the fitted model (causal: the test part is scored with the
  training part as its history) and evaluates the rows after the training part;
- **calibrates** each raw score (``detectors.calibration.online_surprise``): ``-log10`` of its tail
  probability under the scores the detector gave before it, the training part's and then every
  earlier row's (causal, no label), so that NAB's one threshold over a corpus, and the highest score
  over an entity's metrics, compare like with like; a detector whose scores are already calibrated by
  its own model (``Detector.calibrated``: the surprises of the count-aware and profile detectors, the
  record-relative likelihood) passes through. Then ``s / (1 + s)`` maps it to [0, 1). On NAB's 58
  files with the defaults this lifted NAB standard from 1.6 to 43.8 (kmeans), 1.2 to 40.7
  (seasonal_naive), 16.8 to 32.1 (isolation_forest) and 40.2 to 45.6 (windowed_gaussian): raw
  residuals, distances and depths are not on one scale from one file to the next. The likelihood's
  66.1 would fall to 51.6 calibrated again: its records already are a calibration. ``scales``
  (``--scales 1,10,100``) has it read trailing means of the scores too, each against its own
  earlier means (``calibration.scales_surprise``), for shifts too small for a row alone that last;
- **flags** a row where ``raw score >= threshold_``, the detector's own threshold learned on the
  training part: precision, recall, F1 and the "own threshold" NAB score use these flags.

Frames: where a series' timestamps rise on a regular grid (gaps allowed), the detector sees that
grid with gaps as missing rows; otherwise (NAB files with repeated, backward or off-grid timestamps)
it sees the rows in file order, one step of the most common interval apart, as NAB's streaming
detectors do. Either way every row of the file gets its score, in file order.

Multivariate corpora (ASD, SMD) are scored per entity on one frame of all its metrics. Detectors
whose score looks at every column (``Detector.reads_every_column``: the lag-feature models, the LSTM
autoencoder and USAD) are fitted once on it; the others score the first column only, so one model is
fitted per metric and a row's score is the highest of the metrics' mapped scores (flagged where
any metric is). Metrics constant over the training part are left out of both (nothing to learn a
scale from). A series on which a detector fails (too short, constant) scores 0 on every row, and
the error is listed.

Profiles: ``fast`` runs every detector that is not a Keras network (baselines, scikit-learn,
XGBoost, fusion); ``full`` runs them all. A Keras detector under ``fast`` is refused.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd

from passion_tasks.corpora import reference
from passion_tasks.defaults import CALIBRATION_SCALES
from passion_tasks.detectors import DetectorError, detector_class, detector_names, make_detector, uses_keras
from passion_tasks.detectors.calibration import checked_scales, scales_surprise
from passion_tasks.detectors.windows import period_length
from passion_tasks.errors import UsageError
from passion_tasks.evaluation import leaderboard, metrics, nab
from passion_tasks.evaluation.leaderboard import DETECTOR_COLUMNS, SERIES_COLUMNS, Leaderboard
from passion_tasks.evaluation.nab_corpus import DataFile, NabCorpus, Profile, load_corpus, result_path
from passion_tasks.evaluation.two_fold import two_fold_score
from passion_tasks.evaluation.vus import vus
from passion_tasks.models.training import training_labels

PROFILES = ("fast", "full")
#: Flags are scored as 1 (flagged) or 0: NAB's threshold between them.
FLAG_THRESHOLD = 0.5
#: The Keras models default to a day of minutes (1440 rows) of history per window, longer than most
#: training parts here (NAB's shortest probationary period has 169 rows): the benchmark gives them
#: the LSTM autoencoder's 30 rows. ``params`` overrides it.
KERAS_WINDOW = 30
NAB_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class BenchmarkSeries:
    """One series to benchmark (a NAB file, an ASD or SMD entity with all its metrics, a KPI).

    ``values`` has one row per row of the file and one column per metric (``columns``); ``labels``
    marks the labelled rows, training part included; ``scoring`` is the NAB file it is scored as,
    whose probationary rows are the training part.
    """

    name: str
    values: np.ndarray
    columns: tuple[str, ...]
    labels: np.ndarray
    scoring: DataFile

    @property
    def timestamps(self) -> np.ndarray:
        return self.scoring.timestamps

    @property
    def train_rows(self) -> int:
        return self.scoring.probationary_rows


@dataclass(frozen=True)
class DetectorRun:
    """One detector on one series: per-row scores in [0, 1), flags, seconds spent, and any error."""

    scores: np.ndarray
    flagged: np.ndarray
    fit_seconds: float
    score_seconds: float
    error: str | None = None


@dataclass(frozen=True)
class CorpusData:
    """The series of a corpus, its NAB profiles, how its training part was chosen and where it was read."""

    series: list[BenchmarkSeries]
    profiles: dict[str, Profile]
    split_rule: str
    folder: Path


# -- the runner ------------------------------------------------------------------------------------


def run_benchmark(
    corpus: str,
    detectors: list[str],
    *,
    profile: str = "fast",
    out: Path,
    reference_root: Path | None = None,
    files: list[str] | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    scales: tuple[int, ...] = CALIBRATION_SCALES,
    progress: bool = True,
) -> Leaderboard:
    """Benchmark ``detectors`` on ``corpus``; write the leaderboard (and NAB's results layout) to ``out``.

    ``files`` restricts the run to some series: NAB file names (``realKnownCause/nyc_taxi.csv``),
    ASD or SMD entities (``omi-1``), KPI names (``cpu4``). ``params`` maps a detector to parameters
    that override its defaults. ``scales``: the trailing means of rows that the calibration stage
    reads beside each row (``calibration.scales_surprise``).
    """
    configured = checked_detectors(detectors, profile, params)
    try:
        scales = checked_scales(scales)
    except ValueError as error:
        raise UsageError(str(error)) from None
    data = load_corpus_data(corpus, reference_root, files)
    runs: dict[str, dict[str, DetectorRun]] = {name: {} for name in configured}
    bar = Progress(len(data.series) * len(configured), enabled=progress)
    for series in data.series:
        frame, positions = detector_frame(series)
        for name, detector_params in configured.items():
            runs[name][series.name] = run_detector(name, detector_params, series, frame, positions, scales)
            bar.advance(f"{name} on {series.name}")
    bar.close()
    published = (
        leaderboard.published_scoreboard(data.folder / "results" / "final_results.json")
        if corpus == "nab"
        else pd.DataFrame(columns=list(leaderboard.PUBLISHED_COLUMNS))
    )
    board = evaluate(corpus, profile, data, runs, published, scales)
    out = Path(out)
    leaderboard.write_leaderboard(board, out)
    if corpus == "nab":
        write_nab_results(out / "results", data.series, runs)
    return board


def profile_detectors(profile: str) -> list[str]:
    """Every detector a profile runs: ``fast`` all but the Keras networks, ``full`` all."""
    _check_profile(profile)
    return [name for name in detector_names() if profile == "full" or not uses_keras(name)]


def checked_detectors(
    detectors: list[str], profile: str, params: dict[str, dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """The parameters each detector runs with, after checking names, profile and parameters.

    Raises ``UsageError`` for an empty list, an unknown name, a Keras detector under ``fast``,
    parameters for a detector not in the run, or a detector that cannot be built with its parameters.
    """
    _check_profile(profile)
    if not detectors:
        raise UsageError("no detectors given; name some, e.g. --detectors rolling_mad,isolation_forest")
    unknown = [name for name in detectors if name not in detector_names()]
    if unknown:
        raise UsageError(
            f"unknown detector(s) {', '.join(unknown)}; choose from {', '.join(detector_names())}"
        )
    keras = [name for name in detectors if uses_keras(name)]
    if profile == "fast" and keras:
        raise UsageError(
            f"{', '.join(keras)}: Keras detector(s) are not in the fast profile (baselines, scikit-learn, "
            "XGBoost and fusion); run them with --profile full"
        )
    strays = sorted(set(params or {}) - set(detectors))
    if strays:
        raise UsageError(f"parameters given for {', '.join(strays)}, which are not among the detectors run")
    configured = {}
    for name in dict.fromkeys(detectors):
        chosen = {"window": KERAS_WINDOW} if uses_keras(name) else {}
        chosen.update((params or {}).get(name, {}))
        try:
            make_detector(name, **chosen)
        except ImportError as error:
            raise UsageError(f"detector {name} cannot be loaded here: {error}") from error
        except DetectorError as error:
            raise UsageError(f"detector {name} with {chosen}: {error}") from error
        configured[name] = chosen
    return configured


# -- reading the corpus ----------------------------------------------------------------------------


def load_corpus_data(
    corpus: str, reference_root: Path | None = None, files: list[str] | None = None
) -> CorpusData:
    """Read ``corpus`` from the reference data as benchmark series, in a stable order."""
    folder = reference.corpus_folder(corpus, reference_root)
    if corpus == "nab":
        return _nab_data(folder, files)
    entities = files if corpus in reference.GRID_STEP else None
    shipped = reference.read_corpus(corpus, folder, entities)
    if shipped.entities is not None:
        grouped = [
            (entity, [one for one in shipped.series if one.name in members])
            for entity, members in shipped.entities.items()
        ]
    else:
        grouped = [(one.name.split("/", 1)[1], [one]) for one in shipped.series]
        grouped = _chosen(grouped, files, corpus)
    series = []
    for name, members in grouped:
        first = members[0]
        labels = _inside(first.ts, shipped.windows[first.name])
        series.append(
            BenchmarkSeries(
                name=name,
                values=np.column_stack([one.values for one in members]),
                columns=tuple(one.name.rsplit("/", 1)[1] for one in members),
                labels=labels,
                scoring=metrics.windowed_file(name, first.ts, labels, shipped.train_rows[first.name]),
            )
        )
    return CorpusData(series, dict(metrics.NAB_PROFILES), shipped.rule, folder)


def _nab_data(folder: Path, files: list[str] | None) -> CorpusData:
    """NAB's files with its own windows, probationary periods and profiles (``nab_corpus``)."""
    scoring = load_corpus(folder)
    shipped = reference.read_nab(folder)
    values = {one.name.removeprefix("nab/") + ".csv": one.values for one in shipped.series}
    chosen = _chosen(list(scoring.files.items()), files and [_nab_name(name) for name in files], "nab")
    series = [
        BenchmarkSeries(
            name=name,
            values=values[name][:, None],
            columns=("value",),
            labels=_window_rows(file),
            scoring=file,
        )
        for name, file in chosen
    ]
    return CorpusData(series, scoring.profiles, shipped.rule, folder)


def _nab_name(name: str) -> str:
    return name if name.endswith(".csv") else f"{name}.csv"


def _chosen(items: list[tuple[str, Any]], names: list[str] | None, corpus: str) -> list[tuple[str, Any]]:
    """The items named in ``names`` (all when None); an unknown name is a ``UsageError``."""
    if names is None:
        return items
    available = [name for name, _ in items]
    unknown = sorted(set(names) - set(available))
    if unknown:
        raise UsageError(f"{corpus} has no series {', '.join(unknown)}; it has {', '.join(available)}")
    return [(name, item) for name, item in items if name in set(names)]


def _inside(timestamps: np.ndarray, windows: list[tuple[np.datetime64, np.datetime64]]) -> np.ndarray:
    """True for the rows within any of the inclusive ``windows``."""
    labels = np.zeros(len(timestamps), dtype=bool)
    for start, end in windows:
        labels |= (timestamps >= start) & (timestamps <= end)
    return labels


def _window_rows(file: DataFile) -> np.ndarray:
    labels = np.zeros(file.rows, dtype=bool)
    for first, last in file.windows:
        labels[first : last + 1] = True
    return labels


# -- running one detector --------------------------------------------------------------------------


def detector_frame(series: BenchmarkSeries) -> tuple[pd.DataFrame, np.ndarray]:
    """The series as a detector frame (see the module docstring), and the frame row of each file row."""
    stamps = series.timestamps.astype("datetime64[ms]").astype(np.int64)
    steps = np.diff(stamps)
    forward, counts = np.unique(steps[steps > 0], return_counts=True)
    step = int(forward[np.argmax(counts)]) if len(forward) else 60_000
    offsets = stamps - stamps[0]
    on_grid = bool((steps > 0).all() and not (offsets % step).any())
    positions = offsets // step if on_grid else np.arange(len(stamps))
    grid = stamps[0] + np.arange(positions[-1] + 1) * step
    values = np.full((len(grid), series.values.shape[1]), np.nan)
    values[positions] = series.values
    index = pd.DatetimeIndex(grid.astype("datetime64[ms]"), name="ts").tz_localize("UTC")
    return pd.DataFrame(values, index=index, columns=list(series.columns)), positions


def unit_scores(raw: np.ndarray) -> np.ndarray:
    """Raw scores mapped into [0, 1] by ``s / (1 + s)``, ``s`` clipped at 0."""
    clipped = np.clip(np.nan_to_num(raw, nan=0.0, posinf=np.finfo(float).max), 0.0, None)
    return clipped / (1.0 + clipped)


def run_detector(
    name: str,
    params: dict[str, Any],
    series: BenchmarkSeries,
    frame: pd.DataFrame,
    positions: np.ndarray,
    scales: tuple[int, ...] = CALIBRATION_SCALES,
) -> DetectorRun:
    """Fit ``name`` on the series' training part and score every row of it, calibrated over ``scales``."""
    rows = len(positions)
    train_end = positions[series.train_rows] if series.train_rows < rows else len(frame)
    training = frame.iloc[:train_end]
    fit_seconds = score_seconds = 0.0
    try:
        groups = _column_groups(name, training)
        marked = np.zeros(len(frame), dtype=np.int8)
        marked[positions[series.labels]] = 1
        labels = training_labels(name, pd.Series(marked[:train_end], index=training.index))
        scores, flagged = np.zeros(rows), np.zeros(rows, dtype=bool)
        for columns in groups:
            detector = make_detector(name, **params)
            began = time.perf_counter()
            detector.fit(training[columns], labels=labels)
            fitted = time.perf_counter()
            raw = detector.decision_function(frame[columns]).to_numpy()[positions]
            score_seconds += time.perf_counter() - fitted
            fit_seconds += fitted - began
            flagged |= raw >= detector.threshold_
            surprises = raw if detector.calibrated else scales_surprise(raw, series.train_rows, scales)
            scores = np.maximum(scores, unit_scores(surprises))
    # A benchmark runs foreign data through every detector: one that fails on a series is recorded
    # against it, and the run goes on.
    except Exception as error:
        failure = f"{type(error).__name__}: {error}"
        return DetectorRun(np.zeros(rows), np.zeros(rows, dtype=bool), fit_seconds, score_seconds, failure)
    return DetectorRun(scores, flagged, fit_seconds, score_seconds)


def _column_groups(name: str, training: pd.DataFrame) -> list[list[str]]:
    """The column lists fitted one model each: all columns at once, or one model per column."""
    varying = [str(column) for column in training.columns if training[column].nunique() > 1]
    if not varying:
        raise UsageError("every metric is constant over the training part")
    if len(training.columns) > 1 and detector_class(name).reads_every_column:
        # A column that varies goes first: the contract needs a target to learn from.
        return [[varying[0], *[str(column) for column in training.columns if column != varying[0]]]]
    return [[column] for column in varying]


# -- evaluation ------------------------------------------------------------------------------------


def evaluate(
    corpus: str,
    profile: str,
    data: CorpusData,
    runs: dict[str, dict[str, DetectorRun]],
    published: pd.DataFrame,
    scales: tuple[int, ...] = CALIBRATION_SCALES,
) -> Leaderboard:
    """The leaderboard of ``runs``: NAB scores, VUS, ROC AUC, and point-wise, event-wise and
    point-adjusted F1 over the test parts."""
    scoring = NabCorpus({series.name: series.scoring for series in data.series}, data.profiles)
    windows = {series.name: vus_window(series) for series in data.series}
    detector_rows, series_rows = [], []
    for name, by_series in runs.items():
        scores = {series: run.scores for series, run in by_series.items()}
        optimised = metrics.nab_profile_scores(scores, scoring)
        flags = {series: run.flagged.astype(float) for series, run in by_series.items()}
        own = metrics.nab_profile_scores(flags, scoring, FLAG_THRESHOLD)
        standard = scoring.profiles["standard"]
        threshold = nab.optimise_threshold(scores, scoring, standard)[0] if scoring.window_count else np.nan
        two_fold = {
            profile_name: (
                two_fold_score({name: scores}, scoring, profile).score if scoring.window_count else np.nan
            )
            for profile_name, profile in scoring.profiles.items()
        }
        counts, events = metrics.Counts(), metrics.Events()
        test_labels, test_scores, by_row = [], [], []
        for series in data.series:
            run = by_series[series.name]
            test = slice(series.train_rows, None)
            series_counts = metrics.point_adjusted_counts(series.labels[test], run.flagged[test])
            series_events = metrics.event_counts(series.labels[test], run.flagged[test])
            counts += series_counts
            events += series_events
            test_labels.append(series.labels[test])
            test_scores.append(run.scores[test])
            vus_roc, vus_pr = vus(series.labels[test], run.scores[test], windows[series.name])
            areas = {
                "auc": metrics.roc_auc(series.labels[test], run.scores[test]),
                "vus_roc": vus_roc,
                "vus_pr": vus_pr,
            }
            by_row.append(areas)
            series_rows.append(
                {
                    "detector": name,
                    "series": series.name,
                    "test_rows": series.scoring.rows - series.train_rows,
                    "segments": len(series.scoring.windows),
                    "vus_window": windows[series.name],
                    **areas,
                    "f1_pointwise": series_events.rows.f1,
                    "f1_event": series_events.f1,
                    "pa_precision": series_counts.precision,
                    "pa_recall": series_counts.recall,
                    "pa_f1": series_counts.f1,
                    "nab_standard_raw": (
                        nab.score_file(run.scores, series.scoring, standard, threshold)
                        if scoring.window_count
                        else np.nan
                    ),
                    "fit_seconds": run.fit_seconds,
                    "score_seconds": run.score_seconds,
                    "error": run.error,
                }
            )
        oracle = metrics.best_point_adjusted_f1(test_labels, test_scores)
        detector_rows.append(
            {
                "detector": name,
                **{f"nab_{profile_name}": value for profile_name, value in optimised.items()},
                "nab_standard_own_threshold": own["standard"],
                **{f"nab_{profile_name}_2fold": value for profile_name, value in two_fold.items()},
                **{
                    area: _mean_defined([row[area] for row in by_row])
                    for area in ("vus_pr", "vus_roc", "auc")
                },
                "f1_pointwise": events.rows.f1,
                "f1_event": events.f1,
                "pa_precision": counts.precision,
                "pa_recall": counts.recall,
                "pa_f1": counts.f1,
                "best_pa_f1_oracle": oracle.f1,
                "best_pa_f1_oracle_threshold": oracle.threshold,
                "fit_seconds": sum(run.fit_seconds for run in by_series.values()),
                "score_seconds": sum(run.score_seconds for run in by_series.values()),
                "series": len(by_series),
                "failed_series": sum(run.error is not None for run in by_series.values()),
            }
        )
    detectors = pd.DataFrame(detector_rows, columns=list(DETECTOR_COLUMNS)).sort_values(
        "nab_standard", ascending=False, na_position="last", ignore_index=True
    )
    series_table = pd.DataFrame(series_rows, columns=list(SERIES_COLUMNS))
    return Leaderboard(corpus, profile, detectors, series_table, published, _method(corpus, data, scales))


def vus_window(series: BenchmarkSeries) -> int:
    """The buffer window of a series' VUS: the period of its first metric that varies (``vus``)."""
    varying = [column for column in range(series.values.shape[1]) if np.nanstd(series.values[:, column]) > 0]
    return period_length(series.values[:, varying[0] if varying else 0])


def _mean_defined(values: list[float]) -> float:
    defined = [value for value in values if not np.isnan(value)]
    return float(np.mean(defined)) if defined else np.nan


def _method(corpus: str, data: CorpusData, scales: tuple[int, ...]) -> dict[str, str]:
    """How the run was made, in words, for the leaderboard's readers."""
    windows = (
        "NAB's own scoring windows (labels/combined_windows.json)"
        if corpus == "nab"
        else "one NAB window per labelled segment, kept as the segment (not widened); segments inside the "
        "training part are not scored"
    )
    return {
        "training": f"on each series' training part only: {data.split_rule}",
        "scores": "raw score through the calibration stage (-log10 of its tail probability under the "
        "detector's earlier scores, training first, refitted every 64 rows; detectors calibrated by their "
        f"own model pass through){_scales_text(scales)}, then s / (1 + s) for NAB's threshold sweep; rows "
        "flagged where the raw score >= threshold_, the detector's own threshold learned on the training "
        "part",
        "frames": "a regular time grid with gaps as missing rows where the timestamps allow it, else the "
        "rows in file order",
        "multivariate": "per entity, all metrics in one frame; detectors that score the first column only "
        "run once per metric and a row takes the highest mapped score (metrics constant in training left "
        "out)",
        "NAB scores": f"{windows}; one threshold per profile optimised over the corpus, as NAB does; "
        "'own threshold' scores the flags instead; 'two-fold' chooses the threshold on one half of the "
        "files and scores the other half with it, and the other way round (evaluation.two_fold: a fixed, "
        "seeded split within each folder)",
        "VUS": "VUS-PR and VUS-ROC as TSB-AD computes them (buffers of 0 to the series' period, 250 "
        "thresholds) per series (test part), averaged over the series with both classes; the period is "
        "that of the series' first varying metric (TSB-AD's find_length_rank)",
        "F1": "at the detector's own threshold, rows pooled over series: point-wise (rows as they are), "
        "event-wise (labelled segments with a flagged row, with the precision of rows) and point-adjusted "
        "(PA: a detected row in a labelled segment detects the whole segment, which flatters); best PA F1 "
        "(oracle) uses the test labels",
        "AUC": "ROC AUC of the mapped scores per series (test part), averaged over series with both classes",
        "failures": "a series a detector cannot be trained on scores 0 everywhere and is listed",
    }


def _scales_text(scales: tuple[int, ...]) -> str:
    if scales == (1,):
        return ", each row alone"
    return (
        f"; the same of the trailing means of {', '.join(map(str, scales))} rows, each against its own "
        f"earlier means, the highest less log10({len(scales)})"
    )


# -- NAB's results layout --------------------------------------------------------------------------


def write_nab_results(
    folder: Path, series: list[BenchmarkSeries], runs: dict[str, dict[str, DetectorRun]]
) -> None:
    """Each detector's rows as NAB writes them: ``<detector>/<category>/<detector>_<file>.csv``.

    Columns ``timestamp,value,anomaly_score,label``; scores written at full precision, so
    ``nab.score_results_dir`` and NAB's own scorer read back exactly the scores evaluated here.
    """
    for one in series:
        timestamps = pd.DatetimeIndex(one.timestamps).strftime(NAB_TIME_FORMAT)
        for name, by_series in runs.items():
            path = folder / name / result_path(one.name, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(
                {
                    "timestamp": timestamps,
                    "value": one.values[:, 0],
                    "anomaly_score": by_series[one.name].scores,
                    "label": one.labels.astype(int),
                }
            ).to_csv(path, index=False)


# -- progress --------------------------------------------------------------------------------------


class Progress:
    """A plain-text progress line with an ETA on stderr.

    On a terminal the line is redrawn in place; elsewhere (a log) one line is written at most every
    ``every`` seconds, and at the end.
    """

    def __init__(
        self, total: int, *, enabled: bool = True, stream: TextIO | None = None, every: float = 10.0
    ):
        self.total = total
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.every = every
        self.done = 0
        self.started = time.monotonic()
        self.last_line = -np.inf

    def advance(self, label: str) -> None:
        self.done += 1
        if not self.enabled:
            return
        now = time.monotonic()
        interactive = self.stream.isatty()
        if not interactive and now - self.last_line < self.every and self.done < self.total:
            return
        self.last_line = now
        elapsed = now - self.started
        remaining = elapsed / self.done * (self.total - self.done)
        filled = round(20 * self.done / self.total)
        line = (
            f"[{'#' * filled}{'.' * (20 - filled)}] {self.done}/{self.total} "
            f"elapsed {_clock(elapsed)} ETA {_clock(remaining)}  {label}"
        )
        self.stream.write(f"\r{line[:150]:<150}" if interactive else f"{line}\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.stream.isatty():
            self.stream.write("\n")


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes // 60:d}:{minutes % 60:02d}:{seconds:02d}"


def _check_profile(profile: str) -> None:
    if profile not in PROFILES:
        raise UsageError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
