"""The steps: every entry point (the ``passion`` command, the Airflow tasks, the demo) calls these.

Each step takes the ``Lake`` it works on and applies the defaults of ``passion_tasks.defaults`` here
and only here, so a model trained from the command line and one trained by the train DAG are the same
model. Model and framework imports (detectors, TensorFlow, scikit-learn) stay inside the steps: the
DAG files import this module only inside their tasks.
"""

from __future__ import annotations

import datetime as dt
import logging
import posixpath
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from passion_tasks.defaults import CALIBRATION_SCALES, HISTORY_DAYS, LOOKBACK_DAYS, detector_params
from passion_tasks.errors import NoInputError, PassionError, UsageError
from passion_tasks.lake import Day, Lake, PartitionNotFound, as_day, datasets

log = logging.getLogger(__name__)

#: The metrics input that names a Prometheus queries file instead of a folder: ``prometheus:FILE``.
PROMETHEUS_INPUT = f"{datasets.PROMETHEUS}:"

if TYPE_CHECKING:
    import pandas as pd

    from passion_tasks.alerting import AlertConfig, AlertRun
    from passion_tasks.corpora.reference import ImportReport
    from passion_tasks.evaluation.leaderboard import Leaderboard
    from passion_tasks.evaluation.selection import Selection
    from passion_tasks.features import FeaturesReport
    from passion_tasks.ingest.prometheus import Server as PrometheusServer
    from passion_tasks.ingest.report import IngestReport
    from passion_tasks.lake import VacuumReport
    from passion_tasks.lake.leases import Lease
    from passion_tasks.live import MicroBatch
    from passion_tasks.models.registry import ModelVersion, Promotion, SigningReport
    from passion_tasks.models.scoring import ScoreSummary
    from passion_tasks.models.training import TrainSummary


# -- landing and features ---------------------------------------------------------------------------


def generate(out: Path, start: dt.date, days: int, *, all_kinds: bool = False, **options: Any) -> Any:
    """Realistic, labelled synthetic sources for ``days`` days into ``out``, with the ``options`` of
    ``synthetic.generate`` (seed, rate, ds2, anomalies, server_errors); ``all_kinds`` adds outages and
    thin-slice incidents to the classic kinds."""
    from passion_tasks.synthetic import ALL_KINDS, CDN_KINDS
    from passion_tasks.synthetic import generate as write_sources

    return write_sources(out, start, days, kinds=ALL_KINDS if all_kinds else CDN_KINDS, **options)


def ingest_day(
    lake: Lake, source: str, day: Day, input: str, *, prometheus: PrometheusServer | None = None
) -> IngestReport:
    """Land one day of ``cdn`` logs or server ``metrics`` from ``input`` (a file, folder or ``s3://``
    prefix, read with the lake's S3 settings). Server metrics whose ``input`` is
    ``prometheus:QUERIES_FILE`` are pulled from ``prometheus`` instead (``ingest_prometheus_day``)."""
    from passion_tasks.ingest import ingest_cdn_day, ingest_metrics_day

    if source == datasets.SERVER_METRICS and input.startswith(PROMETHEUS_INPUT):
        return ingest_prometheus_day(lake, day, input.removeprefix(PROMETHEUS_INPUT), prometheus)
    landers = {datasets.CDN: ingest_cdn_day, datasets.SERVER_METRICS: ingest_metrics_day}
    if source not in landers:
        raise UsageError(f"unknown source {source!r}: use {' or '.join(datasets.SOURCES)}")
    return landers[source](lake, day, input)


def ingest_prometheus_day(
    lake: Lake, day: Day, queries: str | Path, server: PrometheusServer | None = None
) -> IngestReport:
    """Pull one day of server metrics from Prometheus with the queries of the file ``queries``, from
    ``server`` (default: ``PASSION_PROMETHEUS_URL`` and its credentials in the environment), into the
    day's ``prometheus`` leaf of ``metrics``."""
    from passion_tasks.ingest import prometheus

    server = server or prometheus.Server.from_env()
    if server is None:
        raise UsageError(
            f"no Prometheus server: set {prometheus.URL_ENV} (under Airflow, the passion_prometheus "
            "connection)"
        )
    return prometheus.ingest_prometheus_day(lake, day, prometheus.read_queries(queries), server)


def import_corpus(lake: Lake, corpus: str, reference_root: Path) -> ImportReport:
    """Replace a real labelled corpus (NAB, ASD, SMD, KPI, NASA HTTP) in the lake, with its labels."""
    from passion_tasks.corpora.reference import import_corpus as import_reference

    return import_reference(lake, corpus, reference_root)


def build_features(lake: Lake, day: Day) -> FeaturesReport:
    """Per-minute feature series of one day from its CDN logs and metrics."""
    from passion_tasks import features

    return features.build_features(lake, day)


def missing_features(lake: Lake, day: Day) -> list[str]:
    """URIs of the day's feature leaves not committed yet: empty once ``build_features`` has finished.

    Every source's leaf is checked because ``build_features`` commits them one after the other.
    """
    keys = [{datasets.SOURCE_KEY: source} for source in datasets.SOURCES]
    return [
        lake.uri(lake.leaf(datasets.FEATURES, day, key))
        for key in keys
        if not lake.has_partition(datasets.FEATURES, day, key=key)
    ]


def series_on(lake: Lake, day: Day, *, since: Day | None = None) -> list[str]:
    """The watched series with features on ``day`` (or on any day from ``since`` to it), sorted."""
    import pyarrow.compute as pc

    from passion_tasks.features.policy import watched_series

    if since is None:
        table = lake.read_partition(datasets.FEATURES, day, columns=["series"])
    else:
        table = lake.read_range(datasets.FEATURES, since, day, columns=["series"])
    return sorted(watched_series(pc.unique(table["series"]).to_pylist()))


# -- training -------------------------------------------------------------------------------------


def train(
    lake: Lake,
    detector: str | None = None,
    *,
    series: list[str] | None = None,
    train_from: Day | None = None,
    train_to: Day | None = None,
    lookback_days: int = LOOKBACK_DAYS,
    params: dict[str, Any] | None = None,
    promote: bool = False,
    effective_from: Day | None = None,
    budget: float | None = None,
) -> TrainSummary:
    """Train a model for each series (default: every watched series) and register it.

    With ``detector``, that detector with its defaults (``defaults.DETECTOR_DEFAULTS``) overridden by
    ``params``. Without, what the nightly run trains: per series the detector of its kind, or the best
    of its kind's candidates on its own history (``training.nightly_candidates``; the choice is
    ``select``'s, promoted from the day after the range), and for a series that never moved one that
    flags any departure; with too short a history to choose on, the first candidate that can be
    trained (a daily profile needs two days). The range is ``training.training_range``'s. With
    ``promote`` the new versions are live from ``effective_from``, by default the day after the range:
    a model never scores the days it learned from. A series that cannot be trained is reported and the
    others go on. ``budget`` (false incidents per series per 30 days) sets the false-alarm budget of
    every model whose threshold is one; the nightly run's default is ``nightly_budget``'s.
    """
    from passion_tasks.features import read_series
    from passion_tasks.features.policy import volume_series, watched_series
    from passion_tasks.models import training

    if params and detector is None:
        raise UsageError("detector parameters need the detector they are for")
    check_budget(budget)
    start, end = training.training_range(lake, train_from, train_to, lookback_days)
    if budget is None and detector is None:
        budget = nightly_budget(lake, end)
    wanted = None if series is None else sorted({*series, *map(volume_series, series)})
    frame = read_series(lake, start, end, wanted)
    names = series or watched_series(frame.columns)
    live_from = (
        (as_day(effective_from) if effective_from else end + dt.timedelta(days=1)) if promote else None
    )
    choices = {
        name: (detector,) if detector else training.nightly_candidates(name, frame[name]) for name in names
    }
    plan = dict(choices)
    selected = {}
    for name, candidates in choices.items():
        if len(candidates) > 1:
            try:
                chosen = select(
                    lake,
                    name,
                    list(candidates),
                    train_from=start,
                    train_to=end,
                    promote=promote,
                    budget=budget,
                )
                selected[name] = chosen.model.ref
                del plan[name]
            except (PassionError, OSError) as error:
                # Too short a history to hold days out: the first candidate that trains.
                log.info("%s: no selection (%s); training %s", name, error, " or ".join(candidates))
    summary = training.train_each(
        lake,
        frame,
        plan,
        params={
            name: budgeted(name, detector_params(name, params if name == detector else None), budget)
            for name in {candidate for candidates in plan.values() for candidate in candidates}
        },
        live_from=live_from,
    )
    summary.trained |= selected
    return summary


def select(
    lake: Lake,
    series: str,
    detectors: list[str],
    *,
    train_from: Day | None = None,
    train_to: Day | None = None,
    lookback_days: int = LOOKBACK_DAYS,
    promote: bool = False,
    budget: float | None = None,
) -> Selection:
    """Pick the best of ``detectors`` for ``series`` on a holdout, retrain it and register it.

    The same range, detector defaults and ``budget`` as :func:`train`; with ``promote`` the winner is
    live from the day after the range. See ``evaluation.selection`` for the criterion.
    """
    from passion_tasks.evaluation.selection import select_detector

    check_budget(budget)
    return select_detector(
        lake,
        series,
        detectors,
        train_from=train_from,
        train_to=train_to,
        lookback_days=lookback_days,
        params={name: budgeted(name, detector_params(name), budget) for name in detectors},
        promote=promote,
    )


def nightly_budget(lake: Lake, day: Day) -> float:
    """The false-alarm budget of each nightly model (``thresholds.series_budget``): the default one,
    less where the deployment watches so many series (on ``day``) that their false incidents would
    add up to more than ``thresholds.DEFAULT_DAILY_BUDGET`` a day."""
    import pyarrow.compute as pc

    from passion_tasks.detectors.thresholds import series_budget
    from passion_tasks.features.policy import watched_series

    try:
        names = lake.read_partition(datasets.FEATURES, as_day(day), columns=["series"])["series"]
    except PartitionNotFound:
        return series_budget(0)
    budget = series_budget(len(watched_series(pc.unique(names).to_pylist())))
    log.info("nightly false-alarm budget: %.3g false incidents per series per 30 days", budget)
    return budget


def check_budget(budget: float | None) -> float | None:
    """``budget`` if it is None or a positive number of false incidents per series per 30 days."""
    from passion_tasks.detectors.thresholds import check_budget as positive

    try:
        return None if budget is None else positive(budget)
    except ValueError as error:
        raise UsageError(str(error)) from None


def budgeted(detector: str, params: dict[str, Any], budget: float | None) -> dict[str, Any]:
    """``params`` with the false-alarm ``budget`` when ``detector`` runs with a budget threshold."""
    from passion_tasks.detectors import detector_class

    if budget is None:
        return params
    if params.get("threshold", detector_class(detector)().threshold) != "false_alarm_budget":
        return params
    return {
        **params,
        "threshold_params": {**params.get("threshold_params", {}), "incidents_per_30_days": budget},
    }


def plan_training(
    lake: Lake,
    series: list[str] | None,
    detectors: list[str],
    *,
    promote: bool,
    select_best: bool,
    train_to: Day,
) -> list[str]:
    """The series a training run covers (default: every watched series with features on ``train_to``),
    after checking that its options agree."""
    if promote and len(detectors) > 1 and not select_best:
        raise UsageError(
            "promote with several detectors needs select_best to choose one per series; or train them "
            "without promote"
        )
    return list(series) if series else series_on(lake, train_to)


def train_series(
    lake: Lake,
    series: str,
    detectors: list[str],
    *,
    select_best: bool = False,
    train_to: Day | None = None,
    lookback_days: int = LOOKBACK_DAYS,
    promote: bool = False,
    budget: float | None = None,
) -> dict[str, str]:
    """One series' new models as detector -> model reference: each of ``detectors`` (as :func:`train`
    trains them), the winner of them with ``select_best`` (as :func:`select`), or without detectors
    what the nightly run trains for it; ``budget`` as :func:`train` has it."""
    from passion_tasks.models.training import parse_model_ref

    options = {"train_to": train_to, "lookback_days": lookback_days, "promote": promote, "budget": budget}
    if select_best and detectors:
        chosen = select(lake, series, detectors, **options)
        log.info("%s", chosen.summary())
        return {chosen.winner: chosen.model.ref}
    trained, failed = {}, []
    # No detector: one run of what the nightly run trains for the series.
    for detector in detectors or [None]:
        summary = train(lake, detector, series=[series], **options)
        log.info("%s", summary.summary())
        trained |= {parse_model_ref(ref)[1]: ref for ref in summary.trained.values()}
        failed += summary.failed.values()
    if failed:
        raise PassionError(f"{series}: " + "; ".join(failed))
    return trained


# -- scoring, reports and alerts ------------------------------------------------------------------


def series_to_score(lake: Lake, day: Day) -> list[str]:
    """The watched series with features on ``day`` and a model live that day: what ``score_day`` scores."""
    from passion_tasks.models import registry

    names = series_on(lake, day)

    def has_live_model(name: str) -> bool:
        try:
            return registry.live_promotion(lake, name, day) is not None
        except (PassionError, OSError):
            # Planned all the same: scoring it fails that series alone, with its name and error.
            return True

    live = lake.map_io(has_live_model, names)
    return [name for name, has_model in zip(names, live, strict=True) if has_model]


def score_batches(lake: Lake, day: Day, series_per_batch: int) -> list[list[str]]:
    """``series_to_score`` cut into batches of at most ``series_per_batch``, in order.

    Each batch is one scoring task: a task costs seconds to start and reads the day's features once,
    so a thousand series in batches of tens keeps the fan-out wide and the overhead small.
    """
    if series_per_batch < 1:
        raise UsageError(f"series per batch must be at least 1, not {series_per_batch}")
    series = series_to_score(lake, day)
    if not series:
        raise NoInputError(f"no series with features on {day} has a live model: train some first")
    return [series[start : start + series_per_batch] for start in range(0, len(series), series_per_batch)]


def score_day(
    lake: Lake, day: Day, *, series: list[str] | None = None, history_days: int = HISTORY_DAYS
) -> ScoreSummary:
    """Score ``day`` for each series (default: every watched one with features in the ``history_days``
    before it, or on it) with the model live on that day, reading at most ``history_days`` before it
    as the models' context (``models.scoring.score_each``)."""
    from passion_tasks.models.scoring import score_each

    day = as_day(day)
    names = series or series_on(lake, day, since=day - dt.timedelta(days=history_days))
    return score_each(lake, day, names, history_days)


def scored_series(lake: Lake, day: Day) -> list[str]:
    """The series with scores on ``day``."""
    from passion_tasks.lake import batches

    return sorted(batches.members(lake, datasets.SCORES, day))


def report_day(lake: Lake, day: Day) -> str:
    """Render the day's HTML report into the lake; returns its URI."""
    from passion_tasks.reporting.report import render_day_report

    return render_day_report(lake, day)


def alert_day(lake: Lake, day: Day, config: AlertConfig | None = None) -> AlertRun:
    """Send the day's alerts (incidents, or no data) through the configured channels, once each."""
    from passion_tasks.alerting import alert_day as run_alerts

    return run_alerts(lake, day, config)


def live_batches(
    lake: Lake, input: str, *, now: dt.datetime | None = None, config: AlertConfig | None = None
) -> list[MicroBatch]:
    """A micro-batch of yesterday and of today (UTC, at ``now``): land the CDN log files under ``input``
    that are new, score the minutes they complete with the day's live models, alert on them
    (``passion_tasks.live``). Yesterday's go on until its last files and minute are in."""
    from passion_tasks.live import live_days, micro_batch

    now = now or dt.datetime.now(dt.UTC)
    return [micro_batch(lake, day, input, now=now, config=config) for day in live_days(now)]


def explore(
    lake: Lake, start: Day, end: Day, *, series: list[str] | None = None, target: str | None = None
) -> str:
    """The exploration page of the days ``start``..``end``; returns its URI."""
    from passion_tasks.reporting.explore import explore as explore_page

    return explore_page(lake, start, end, series, target=target)


# -- models ---------------------------------------------------------------------------------------


def list_models(lake: Lake, series: str | None = None) -> list[tuple[ModelVersion, bool]]:
    """Every registered version (of one series), each with whether it is live today."""
    from passion_tasks.models import registry

    models = registry.list_models(lake, series)
    live = {model.series: registry.live(lake, model.series) for model in models}
    return [
        (model, live[model.series] is not None and live[model.series].ref == model.ref) for model in models
    ]


def model_history(lake: Lake, series: str) -> list[Promotion]:
    """Every promotion of ``series`` in the order it was made."""
    from passion_tasks.models import registry

    return registry.history(lake, series)


def promote_model(
    lake: Lake,
    series: str,
    detector: str,
    version: str,
    *,
    effective_from: Day | None = None,
    reason: str = "",
) -> Promotion:
    """Make a registered model the series' live model from ``effective_from`` (default: today, UTC)."""
    from passion_tasks.models import registry

    return registry.promote(lake, series, detector, version, effective_from=effective_from, reason=reason)


def roll_back_model(
    lake: Lake, series: str, *, effective_from: Day | None = None, reason: str = ""
) -> Promotion:
    """Make the model live before the current one live again."""
    from passion_tasks.models import registry

    return registry.rollback(lake, series, effective_from=effective_from, reason=reason)


def sign_models(lake: Lake, series: str | None = None, *, adopt_unsigned: bool = False) -> SigningReport:
    """Sign every model with the current key (after a key rotation; see ``models.registry``)."""
    from passion_tasks.models import registry

    return registry.sign_models(lake, series, adopt_unsigned=adopt_unsigned)


def apply_model(lake: Lake, ref: str, input_path: Path) -> pd.DataFrame:
    """Score another dataset with a saved model (``SERIES/DETECTOR[@VERSION]``)."""
    from passion_tasks.models.training import apply_model as apply

    return apply(lake, ref, input_path)


# -- the zoo --------------------------------------------------------------------------------------


def detector_names() -> list[str]:
    from passion_tasks.detectors import detector_names as names

    return names()


def describe_detector(name: str, *, window: int | None = None, features: int | None = None) -> str:
    """A detector's class and parameters, and for a network its layers at ``window`` and ``features``."""
    from passion_tasks.detectors import make_detector, uses_keras

    detector = make_detector(name, **({"window": window} if window and uses_keras(name) else {}))
    lines = [
        f"{name}: {type(detector).__name__}",
        *(f"  {k} = {v!r}" for k, v in detector.get_params().items()),
    ]
    if not uses_keras(name):
        return "\n".join([*lines, "parameters: 0 (no neural network; its size is learned from the data)"])
    from passion_tasks.detectors.architectures import describe

    inputs = features or (5 if name in ("lstm_ohlc", "mlstm_fcn") else 1)
    return "\n".join([*lines, describe(detector.network(inputs))])


# -- benchmarks -----------------------------------------------------------------------------------


def benchmark(
    corpus: str,
    detectors: list[str] | None = None,
    *,
    lake: Lake | None = None,
    profile: str = "fast",
    files: list[str] | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    reference_root: Path | None = None,
    out: Path | None = None,
    scales: tuple[int, ...] = CALIBRATION_SCALES,
) -> tuple[Leaderboard, str]:
    """Benchmark ``detectors`` (default: the profile's) on a labelled corpus of the reference data.

    The leaderboard's files go to the folder ``out`` (with progress on the terminal) or replace the
    corpus' previous ones in ``leaderboards/<corpus>/`` of ``lake``; returns it and its page's URI.
    ``scales``: the trailing means the calibration stage reads beside each row.
    """
    if (lake is None) == (out is None):
        raise UsageError("a benchmark goes to a lake or to a folder: give one of them")
    from passion_tasks import config
    from passion_tasks.evaluation.benchmark import profile_detectors, run_benchmark
    from passion_tasks.evaluation.leaderboard import FILES

    def run(folder: Path) -> Leaderboard:
        return run_benchmark(
            corpus,
            detectors or profile_detectors(profile),
            profile=profile,
            out=folder,
            reference_root=config.reference_data(reference_root),
            files=files,
            params=params,
            scales=scales,
            progress=out is not None,
        )

    if out is not None:
        return run(out), (out / FILES["html"]).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="passion-benchmark-") as tmp:
        board = run(Path(tmp))
        for name in FILES.values():
            lake.write_bytes(
                posixpath.join(datasets.LEADERBOARDS, corpus, name), (Path(tmp) / name).read_bytes()
            )
    return board, lake.uri(posixpath.join(datasets.LEADERBOARDS, corpus, FILES["html"]))


def nab_score(
    results: Path,
    *,
    nab_root: Path | None = None,
    thresholds: Path | None = None,
    detector: str | None = None,
) -> dict[str, float]:
    """NAB's normalised scores of a detector's results folder laid out as NAB's ``results/<detector>/``."""
    from passion_tasks.evaluation.nab import score_results_dir

    return score_results_dir(results, nab_root=nab_root, thresholds_path=thresholds, detector=detector)


# -- the lake -------------------------------------------------------------------------------------


def partitions(lake: Lake, dataset: str) -> dict[dt.date, int]:
    """The days of ``dataset`` with their committed rows, in order."""
    return {day: sum(leaf.rows for leaf in lake.leaves(dataset, day)) for day in lake.partitions(dataset)}


def committed_files(lake: Lake, dataset: str, day: Day) -> list[str]:
    """URIs of the files a day's manifests name: what a reader outside Passion reads."""
    return [lake.uri(path) for leaf in lake.leaves(dataset, day) for path in leaf.files]


def vacuum(lake: Lake, *, grace: dt.timedelta | None = None, dry_run: bool = False) -> VacuumReport:
    """Remove what killed or superseded writes left, once older than ``grace`` (``lake.vacuum``)."""
    from passion_tasks.lake import vacuum as housekeeping

    return housekeeping.vacuum(
        lake, grace=housekeeping.VACUUM_GRACE if grace is None else grace, dry_run=dry_run
    )


def day_lease(scope: str, day: Day) -> str:
    """The name of a day's lease: ``<scope>/dt=YYYY-MM-DD``."""
    return f"{scope}/dt={as_day(day).isoformat()}"


def claim_day(lake: Lake, scope: str, day: Day, holder: str) -> Lease:
    """Take the lease of ``day`` for ``scope`` (a DAG) as ``holder`` (a run): ``LeaseHeld`` while
    another run has it. Runs that write the same day of a DAG take turns (``lake.leases``)."""
    from passion_tasks.lake import leases

    return leases.acquire(lake, day_lease(scope, day), holder)


def release_day(lake: Lake, scope: str, day: Day, holder: str) -> bool:
    """Give back the lease ``claim_day`` took; False if ``holder`` no longer held it."""
    from passion_tasks.lake import leases

    return leases.release(lake, day_lease(scope, day), holder)


def lease(lake: Lake, name: str, *, release: bool = False) -> tuple[Lease | None, bool]:
    """The lease on ``name`` in force (None if free) and, with ``release``, whether it was given back."""
    from passion_tasks.lake import leases

    held = leases.current(lake, name)
    return held, bool(release and held is not None and leases.release(lake, name))
