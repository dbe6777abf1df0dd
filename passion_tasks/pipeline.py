"""The day's steps, each one plain function: the CLI, the tests and the Airflow tasks all call these.

Model and framework imports (detectors, TensorFlow, scikit-learn) stay inside the functions; the
DAG files import this module only inside their tasks.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from passion_tasks.errors import ExitCode, NoInputError, PassionError, UsageError
from passion_tasks.lake import Day, Lake, S3Options, as_day, schemas

if TYPE_CHECKING:
    from passion_tasks.evaluation.selection import Selection

#: Feature suffixes that are model inputs (the seed's previous-hour features), not series to watch.
INPUT_ONLY_SUFFIXES = ("_open", "_close", "_max", "_min")
#: CDN dimensions watched by default. The finer ones (device, path, protocol, method) carry a few
#: requests a minute, so their rates are too noisy to alert on; reports use them to explain incidents.
WATCHED_DIMS = ("", "edge", "channel")
#: Scoring defaults for unattended daily runs. For the baseline: a deviation must hold for 3
#: minutes, and the threshold is the 99.95th percentile of the training scores, which tolerates
#: past incidents inside the lookback (the training maximum would be set by them). On `make demo`'s
#: 14 generated days this finds 7 of the last day's 13 labelled windows on watched series, in 85
#: events over 212 series; the plain z-score with a training-maximum threshold found 1 of 13 among
#: 81 events, most of them one-minute blips.
BASELINE = "rolling_mad"
DETECTOR_DEFAULTS: dict[str, dict[str, Any]] = {
    "rolling_mad": {"persistence": 3, "threshold": "anomaly_ratio", "threshold_params": {"ratio": 0.0005}},
}
#: The leaves ``features.build_features`` writes for a day: ``features/dt=D/source=S``.
FEATURE_SOURCES = ("cdn", "metrics")
#: Where ``benchmark`` keeps each corpus' latest leaderboard: ``leaderboards/<corpus>/``.
LEADERBOARDS = "leaderboards"


def ingest_day(
    source: str, day: Day, input: str, *, lake_url: str | None = None, s3: S3Options | None = None
) -> Any:
    """Land one day of ``cdn`` logs or server ``metrics`` from ``input`` into the lake.

    ``s3`` configures the S3 store of the lake and of an ``s3://`` input alike.
    """
    from passion_tasks.ingest import ingest_cdn_day, ingest_metrics_day

    lake = Lake(lake_url, s3=s3)
    if source == "cdn":
        return ingest_cdn_day(lake, day, input)
    if source == "metrics":
        return ingest_metrics_day(lake, day, input)
    raise UsageError(f"unknown source {source!r}: use cdn or metrics")


def claim_day(
    scope: str, day: Day, holder: str, *, lake_url: str | None = None, s3: S3Options | None = None
) -> Any:
    """Take the lease of ``day`` for ``scope`` (a DAG) as ``holder`` (a run): ``LeaseHeld`` while
    another run has it. Runs that write the same day of a DAG take turns (``lake.leases``)."""
    from passion_tasks.lake import leases

    return leases.acquire(Lake(lake_url, s3=s3), day_lease(scope, day), holder)


def release_day(
    scope: str, day: Day, holder: str, *, lake_url: str | None = None, s3: S3Options | None = None
) -> bool:
    """Give back the lease ``claim_day`` took; False if ``holder`` no longer held it."""
    from passion_tasks.lake import leases

    return leases.release(Lake(lake_url, s3=s3), day_lease(scope, day), holder)


def day_lease(scope: str, day: Day) -> str:
    """The name of a day's lease: ``<scope>/dt=YYYY-MM-DD``."""
    return f"{scope}/dt={as_day(day).isoformat()}"


def vacuum(
    *,
    grace: dt.timedelta | None = None,
    dry_run: bool = False,
    lake_url: str | None = None,
    s3: S3Options | None = None,
) -> Any:
    """Remove what killed or superseded writes left, once older than ``grace`` (``Lake.vacuum``)."""
    from passion_tasks.lake import VACUUM_GRACE

    return Lake(lake_url, s3=s3).vacuum(grace=VACUUM_GRACE if grace is None else grace, dry_run=dry_run)


def build_features(day: Day, *, lake_url: str | None = None, s3: S3Options | None = None) -> Any:
    """Per-minute feature series of one day from its CDN logs and metrics."""
    from passion_tasks import features

    return features.build_features(Lake(lake_url, s3=s3), day)


def missing_features(day: Day, *, lake_url: str | None = None, s3: S3Options | None = None) -> list[str]:
    """URIs of the day's feature leaves not committed yet: empty once ``build_features`` has finished.

    Both leaves are checked because ``build_features`` commits them one after the other.
    """
    lake = Lake(lake_url, s3=s3)
    return [
        lake.uri(lake.leaf("features", day, key))
        for key in ({"source": source} for source in FEATURE_SOURCES)
        if not lake.has_partition("features", day, key=key)
    ]


def series_on(day: Day, *, lake_url: str | None = None, s3: S3Options | None = None) -> list[str]:
    """The watched series with features on ``day``, sorted."""
    import pyarrow.compute as pc

    table = Lake(lake_url, s3=s3).read_partition("features", day, columns=["series"])
    return sorted(watched_series(pc.unique(table["series"]).to_pylist()))


def series_to_score(day: Day, *, lake_url: str | None = None, s3: S3Options | None = None) -> list[str]:
    """The watched series with features on ``day`` and a model live that day: what ``score_day`` scores."""
    from passion_tasks.models import registry

    lake = Lake(lake_url, s3=s3)
    names = series_on(day, lake_url=lake_url, s3=s3)

    def has_live_model(name: str) -> bool:
        try:
            return registry.live(lake, name, day) is not None
        except (PassionError, OSError):
            # Planned all the same: scoring it fails that series alone, with its name and error.
            return True

    live = lake.map_io(has_live_model, names)
    return [name for name, has_model in zip(names, live, strict=True) if has_model]


def score_batches(
    day: Day, series_per_batch: int, *, lake_url: str | None = None, s3: S3Options | None = None
) -> list[list[str]]:
    """``series_to_score`` cut into batches of at most ``series_per_batch``, in order.

    Each batch is one scoring task: a task costs seconds to start and reads the day's features once,
    so a thousand series in batches of tens keeps the fan-out wide and the overhead small.
    """
    if series_per_batch < 1:
        raise UsageError(f"series per batch must be at least 1, not {series_per_batch}")
    series = series_to_score(day, lake_url=lake_url, s3=s3)
    return [series[start : start + series_per_batch] for start in range(0, len(series), series_per_batch)]


@dataclass
class TrainSummary:
    detector: str
    train_start: dt.date
    train_end: dt.date
    trained: dict[str, str] = field(default_factory=dict)  # series -> model ref
    failed: dict[str, str] = field(default_factory=dict)  # series -> reason
    promoted_from: dt.date | None = None

    def summary(self) -> str:
        text = (
            f"trained {len(self.trained)} {self.detector} models on {self.train_start}..{self.train_end}"
            + (f", live from {self.promoted_from}" if self.promoted_from else "")
        )
        for series, reason in list(self.failed.items())[:5]:
            text += f"\n  failed {series}: {reason}"
        if len(self.failed) > 5:
            text += f"\n  ... and {len(self.failed) - 5} more failures"
        return text


class SeriesNotScored(PassionError):
    """Series of a day that could not be scored, with the exit code their errors call for."""

    def __init__(self, message: str, exit_code: ExitCode):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class ScoreSummary:
    """What ``score_day`` did: figures of the scored series, and each series it did not score and why.

    ``skipped`` series had no model live on the day; ``failed`` ones had one that could not be used
    (refused by its integrity checks, unreadable, unwritable), each with its error.
    """

    day: dt.date
    series_scored: int
    anomalous_minutes: int
    events: int
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, PassionError | OSError] = field(default_factory=dict)

    @property
    def exit_code(self) -> ExitCode:
        """MODEL_REFUSED when a model failed its integrity checks, FAILED for other failures, else OK."""
        codes = [getattr(error, "exit_code", ExitCode.FAILED) for error in self.failed.values()]
        if ExitCode.MODEL_REFUSED in codes:
            return ExitCode.MODEL_REFUSED
        return ExitCode.FAILED if codes else ExitCode.OK

    def summary(self) -> str:
        text = (
            f"{self.day}: scored {self.series_scored} series, {self.anomalous_minutes} anomalous minutes "
            f"in {self.events} events"
        )
        if self.skipped:
            text += f"; skipped {len(self.skipped)} series (first: {next(iter(self.skipped.items()))})"
        for name, error in self.failed.items():
            text += f"\n  failed {name}: {error}"
        return text

    def raise_for_failures(self) -> None:
        """Raise when a series was skipped or failed, after the others were written.

        An I/O error may pass on a retry, so it is raised as one (``OSError``); anything else is a
        ``PassionError`` with the summary's exit code, which a retry cannot fix.
        """
        problems = {**self.skipped, **{name: str(error) for name, error in self.failed.items()}}
        if not problems:
            return
        total = self.series_scored + len(problems)
        message = f"{self.day}: {len(problems)} of {total} series not scored: {problems!r}"
        if any(isinstance(error, OSError) for error in self.failed.values()):
            raise OSError(message)
        if not self.failed:
            raise NoInputError(message)
        raise SeriesNotScored(message, self.exit_code)


def watched_series(columns: list[str]) -> list[str]:
    """Series scored by default: every metric; CDN series overall, per edge and per channel."""
    return [
        name
        for name in columns
        if not name.endswith(INPUT_ONLY_SUFFIXES) and _series_dim(name) in WATCHED_DIMS
    ]


def _series_dim(name: str) -> str:
    """The dimension of ``metric{dim=value}``, or "" for an overall series."""
    return name.partition("{")[2].partition("=")[0]


def train(
    detector: str,
    *,
    series: list[str] | None = None,
    train_from: Day | None = None,
    train_to: Day | None = None,
    lookback_days: int = 14,
    params: dict[str, Any] | None = None,
    promote: bool = False,
    effective_from: Day | None = None,
    lake_url: str | None = None,
    s3: S3Options | None = None,
) -> TrainSummary:
    """Train ``detector`` for each series (default: every watched series) and register the models.

    A series that cannot be trained (too little data, constant) is reported and the others go on.
    With ``promote`` the new versions become live from ``effective_from``, by default the day
    after the training range: a model never scores the days it learned from.
    """
    from passion_tasks.features import read_series
    from passion_tasks.models import registry, training

    lake = Lake(lake_url, s3=s3)
    if train_from is None:
        start, end = training.default_training_range(lake, train_to, lookback_days)
    else:
        start, end = as_day(train_from), as_day(train_to or dt.date.today() - dt.timedelta(days=1))
    frame = read_series(lake, start, end, series)
    names = series or watched_series(list(frame.columns))
    windows = training.label_windows(lake)
    live_from = as_day(effective_from) if effective_from else end + dt.timedelta(days=1)
    result = TrainSummary(detector, start, end, promoted_from=live_from if promote else None)
    for name in names:
        try:
            version = training.train_model(
                lake,
                frame[[name]],
                detector,
                params=params,
                labels=training.labels_on(frame.index, windows.get(name, [])),
            )
            if promote:
                registry.promote(
                    lake, name, detector, version.version, effective_from=live_from, reason="train"
                )
            result.trained[name] = version.ref
        except (PassionError, OSError) as error:
            result.failed[name] = str(error)
    return result


def score_day(
    day: Day,
    *,
    lake_url: str | None = None,
    series: list[str] | None = None,
    history_days: int = 8,
    s3: S3Options | None = None,
) -> ScoreSummary:
    """Score ``day`` for each series with the model that was live on that day.

    Reads ``history_days`` before the day as context for windowed and seasonal models. Each
    series' scores and events are their own leaf (``scores/dt=D/series=S``), so a series can be
    re-scored alone, as the Airflow DAG's batches of series do. Series without a live model are
    skipped and listed. On a remote lake the series are scored on threads: their time is round trips.
    """
    from passion_tasks.features import read_series

    lake = Lake(lake_url, s3=s3)
    day = as_day(day)
    frame = read_series(lake, day - dt.timedelta(days=history_days), day, series)
    names = series or watched_series(list(frame.columns))
    summary = ScoreSummary(day=day, series_scored=0, anomalous_minutes=0, events=0)
    outcomes = lake.map_io(lambda name: _score_series_outcome(lake, name, day, frame), names)
    for name, outcome in zip(names, outcomes, strict=True):
        if isinstance(outcome, str):
            summary.skipped[name] = outcome
        elif isinstance(outcome, PassionError | OSError):
            summary.failed[name] = outcome
        else:
            summary.series_scored += 1
            summary.anomalous_minutes += outcome[0]
            summary.events += outcome[1]
    if not summary.series_scored:
        summary.raise_for_failures()
    return summary


def _score_series_outcome(
    lake: Lake, name: str, day: dt.date, frame: pd.DataFrame
) -> tuple[int, int] | str | PassionError | OSError:
    """``_score_series``' figures, the reason no model was live, or the error that stopped this series
    alone: one series' bad model or unwritable name must not stop the day's other series."""
    try:
        return _score_series(lake, name, day, frame)
    except (PassionError, OSError) as error:
        return error


def _score_series(lake: Lake, name: str, day: dt.date, frame: pd.DataFrame) -> tuple[int, int] | str:
    """Score one series' day and write its two leaves: (anomalous minutes, events), or why it had no model."""
    from passion_tasks.models import training
    from passion_tasks.models.scoring import group_events, score_frame

    with tempfile.TemporaryDirectory(prefix="passion-score-") as tmp:
        loaded = training.live_model(lake, name, day, Path(tmp))
    if loaded is None:
        return f"no model was live on {day}; run `passion train --series '{name}' --promote`"
    model, version = loaded
    scores = score_frame(
        model,
        frame[list(version.features)],
        series=name,
        model_version=version.ref,
        start=pd.Timestamp(day, tz="UTC"),
    )
    events = group_events(scores)
    key = {"series": name}
    lake.write_partition("scores", day, _to_table(scores, schemas.SCORES), schema=schemas.SCORES, key=key)
    lake.write_partition("events", day, _to_table(events, schemas.EVENTS), schema=schemas.EVENTS, key=key)
    return int(scores["is_anomaly"].sum()), len(events)


def scored_series(day: Day, *, lake_url: str | None = None, s3: S3Options | None = None) -> list[str]:
    """The series with scores on ``day``."""
    lake = Lake(lake_url, s3=s3)
    return sorted(leaf.key["series"] for leaf in lake.leaves("scores", day) if "series" in leaf.key)


def alert_day(
    day: Day, *, lake_url: str | None = None, s3: S3Options | None = None, config: Any = None
) -> Any:
    """Send the day's alerts (incidents, or no data) through the configured channels, once each."""
    from passion_tasks.alerting import alert_day as run_alerts

    return run_alerts(Lake(lake_url, s3=s3), day, config)


def explore(
    start: Day,
    end: Day,
    *,
    series: list[str] | None = None,
    target: str | None = None,
    lake_url: str | None = None,
    s3: S3Options | None = None,
) -> str:
    """The exploration page of the days ``start``..``end``; returns its URI."""
    from passion_tasks.reporting.explore import explore as explore_page

    return explore_page(Lake(lake_url, s3=s3), start, end, series, target=target)


def report_day(day: Day, *, lake_url: str | None = None, s3: S3Options | None = None) -> str:
    """Render the day's HTML report into the lake; returns its URI."""
    from passion_tasks.reporting.report import render_day_report

    return render_day_report(Lake(lake_url, s3=s3), day)


def select_best(
    series: str,
    detectors: list[str],
    *,
    train_to: Day | None = None,
    lookback_days: int = 14,
    promote: bool = False,
    lake_url: str | None = None,
    s3: S3Options | None = None,
) -> Selection:
    """Pick the best of ``detectors`` for ``series`` on a holdout, retrain it and register it.

    The range is ``lookback_days`` days up to ``train_to`` (default: the last day with features), as
    for :func:`train`, and the detectors run with :data:`DETECTOR_DEFAULTS`. With ``promote`` the
    winner is live from the day after the range. See ``evaluation.selection`` for the criterion.
    """
    from passion_tasks.evaluation.selection import select_detector
    from passion_tasks.models import training

    lake = Lake(lake_url, s3=s3)
    start, end = training.default_training_range(lake, train_to, lookback_days)
    defaults = {name: DETECTOR_DEFAULTS[name] for name in detectors if name in DETECTOR_DEFAULTS}
    return select_detector(
        lake, series, detectors, train_from=start, train_to=end, params=defaults or None, promote=promote
    )


def benchmark(
    corpus: str,
    detectors: list[str] | None = None,
    *,
    profile: str = "fast",
    files: list[str] | None = None,
    lake_url: str | None = None,
    s3: S3Options | None = None,
) -> str:
    """Benchmark ``detectors`` (default: the profile's) on a labelled corpus of the reference data.

    The leaderboard's files replace the corpus' previous ones in ``leaderboards/<corpus>/`` of the
    lake; returns the URI of its HTML page.
    """
    from passion_tasks import config
    from passion_tasks.evaluation.benchmark import profile_detectors, run_benchmark
    from passion_tasks.evaluation.leaderboard import FILES

    lake = Lake(lake_url, s3=s3)
    with tempfile.TemporaryDirectory(prefix="passion-benchmark-") as tmp:
        run_benchmark(
            corpus,
            detectors or profile_detectors(profile),
            profile=profile,
            out=Path(tmp),
            reference_root=config.reference_data(),
            files=files,
            progress=False,
        )
        for name in FILES.values():
            lake.write_bytes(posixpath.join(LEADERBOARDS, corpus, name), (Path(tmp) / name).read_bytes())
    return lake.uri(posixpath.join(LEADERBOARDS, corpus, FILES["html"]))


def _to_table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)


def run_demo(
    workdir: Path,
    *,
    days: int = 14,
    start: dt.date | None = None,
    seed: int = 0,
    rate: float = 200.0,
    lake_url: str | None = None,
    echo: Callable[[str], None] = print,
) -> str:
    """Generate ``days`` of sources, land and featurise each day, score the last one, report it."""
    from passion_tasks.synthetic import generate

    start = start or dt.date.today() - dt.timedelta(days=days)
    last = start + dt.timedelta(days=days - 1)
    sources = Path(workdir) / "sources"

    def step(label: str, action: Callable[[], Any]) -> Any:
        began = time.perf_counter()
        result = action()
        echo(f"{label} ({time.perf_counter() - began:.1f} s)")
        return result

    step(
        f"generated {days} days of CloudFront logs and server metrics from {start} into {sources}",
        lambda: generate(sources, start, days, seed=seed, rate=rate),
    )
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        cdn = step(
            f"  {day}: ingested CDN logs", lambda d=day: ingest_day("cdn", d, str(sources), lake_url=lake_url)
        )
        step(
            f"  {day}: ingested metrics",
            lambda d=day: ingest_day("metrics", d, str(sources), lake_url=lake_url),
        )
        step(f"  {day}: built features", lambda d=day: build_features(d, lake_url=lake_url))
        echo(f"    {cdn.summary()}")
    from passion_tasks.models.training import store_label_windows

    store_label_windows(Lake(lake_url), "generated", sources / "labels" / "combined_windows.json")
    trained = step(
        f"trained the baseline for every watched series on {start}..{last - dt.timedelta(days=1)}",
        lambda: train(
            BASELINE,
            train_from=start,
            train_to=last - dt.timedelta(days=1),
            params=DETECTOR_DEFAULTS[BASELINE],
            promote=True,
            lake_url=lake_url,
        ),
    )
    echo(f"  {trained.summary()}")
    scored = step(f"scored {last} with the live models", lambda: score_day(last, lake_url=lake_url))
    echo(f"  {scored.summary()}")
    return step("rendered the report", lambda: report_day(last, lake_url=lake_url))
