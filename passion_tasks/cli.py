"""The ``passion`` command. Each subcommand is one call into ``passion_tasks.steps``, with its defaults.

The steps import heavy modules inside themselves, so ``passion --help`` stays instant.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from passion_tasks import config, steps
from passion_tasks.corpora import CORPORA
from passion_tasks.defaults import CALIBRATION_SCALES, LOOKBACK_DAYS
from passion_tasks.errors import ExitCode, PassionError, UsageError
from passion_tasks.lake import VACUUM_GRACE, Lake, as_day, datasets


def _day(text: str) -> dt.date:
    try:
        return as_day(text)
    except PassionError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _lake_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lake",
        metavar="URL",
        default=None,
        help="lake root: file:///path or s3://bucket/prefix (default: $PASSION_LAKE, else "
        f"{config.DEFAULT_LAKE_URL})",
    )


def cmd_generate(args: argparse.Namespace) -> int:
    print(
        steps.generate(
            args.out,
            args.start,
            args.days,
            seed=args.seed,
            rate=args.rate,
            ds2=args.ds2,
            anomalies=args.anomalies,
            server_errors=args.server_errors,
            all_kinds=args.all_kinds,
        )
    )
    return ExitCode.OK


def cmd_ingest(args: argparse.Namespace) -> int:
    if args.source == datasets.PROMETHEUS:
        if not args.queries:
            raise UsageError(f"--source prometheus needs --queries FILE (or {config.PROMETHEUS_QUERIES_ENV})")
        report = steps.ingest_prometheus_day(Lake(args.lake), args.day, args.queries)
    elif not args.input:
        raise UsageError(f"--source {args.source} needs --input PATH_OR_URL")
    else:
        report = steps.ingest_day(Lake(args.lake), args.source, args.day, args.input)
    print(report.summary())
    return report.exit_code


def cmd_import(args: argparse.Namespace) -> int:
    print(steps.import_corpus(Lake(args.lake), args.corpus, config.reference_data(args.reference_data)))
    return ExitCode.OK


def cmd_features(args: argparse.Namespace) -> int:
    print(steps.build_features(Lake(args.lake), args.day).summary())
    return ExitCode.OK


def cmd_score(args: argparse.Namespace) -> int:
    summary = steps.score_day(Lake(args.lake), args.day, series=args.series or None)
    print(summary.summary())
    return summary.exit_code


def cmd_train(args: argparse.Namespace) -> int:
    summary = steps.train(
        Lake(args.lake),
        args.detector,
        series=args.series or None,
        train_from=args.train_from,
        train_to=args.train_to,
        lookback_days=args.lookback_days,
        params=dict(args.param or []),
        promote=args.promote,
        effective_from=args.effective_from,
        budget=args.budget,
    )
    print(summary.summary())
    return ExitCode.OK if summary.trained else ExitCode.FAILED


def cmd_apply(args: argparse.Namespace) -> int:
    result = steps.apply_model(Lake(args.lake), args.model, args.input)
    if args.out is None:
        result.to_csv(sys.stdout, index=False)
    elif args.out.suffix == ".parquet":
        result.to_parquet(args.out, index=False)
    else:
        result.to_csv(args.out, index=False)
    flagged = int(result["is_anomaly"].sum())
    print(f"{args.model}: scored {len(result)} rows, {flagged} anomalous", file=sys.stderr)
    return ExitCode.OK


def cmd_models(args: argparse.Namespace) -> int:
    lake = Lake(args.lake)
    if args.action == "list":
        for model, is_live in steps.list_models(lake, args.series):
            print(
                f"{'*' if is_live else ' '} {model.ref:<60} trained {model.train_start}..{model.train_end}  "
                f"threshold {model.threshold:.4g}"
            )
    elif args.action == "history":
        for entry in steps.model_history(lake, args.series):
            print(f"{entry.effective_from}  {entry.ref:<60} {entry.reason}")
    elif args.action == "promote":
        entry = steps.promote_model(
            lake,
            args.series,
            args.detector,
            args.version,
            effective_from=args.effective_from,
            reason=args.reason,
        )
        print(f"{entry.ref} is live from {entry.effective_from}")
    elif args.action == "rollback":
        entry = steps.roll_back_model(
            lake, args.series, effective_from=args.effective_from, reason=args.reason
        )
        print(f"rolled back: {entry.ref} is live from {entry.effective_from}")
    elif args.action == "sign":
        report = steps.sign_models(lake, args.series, adopt_unsigned=args.adopt_unsigned)
        print(report.summary())
        return report.exit_code
    return ExitCode.OK


def cmd_detectors(args: argparse.Namespace) -> int:
    if args.action == "list":
        print("\n".join(steps.detector_names()))
    else:
        print(steps.describe_detector(args.name, window=args.window, features=args.features))
    return ExitCode.OK


def _param(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _scales(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(rows) for rows in text.split(","))
    except ValueError:
        message = f"expected whole numbers of rows, e.g. 1,10,100; got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def cmd_alert(args: argparse.Namespace) -> int:
    run = steps.alert_day(Lake(args.lake), args.day)
    print(run.summary())
    return run.exit_code


def cmd_live(args: argparse.Namespace) -> int:
    ran = steps.live_batches(Lake(args.lake), args.input, now=args.now)
    for batch in ran:
        print(batch.summary())
    failed = any(batch.alerts is not None and batch.alerts.failed for batch in ran)
    return ExitCode.FAILED if failed else ExitCode.OK


def cmd_explore(args: argparse.Namespace) -> int:
    print(steps.explore(Lake(args.lake), args.start, args.end, series=args.series, target=args.target))
    return ExitCode.OK


def cmd_report(args: argparse.Namespace) -> int:
    print(steps.report_day(Lake(args.lake), args.day))
    return ExitCode.OK


def cmd_nab_score(args: argparse.Namespace) -> int:
    scores = steps.nab_score(
        args.results, nab_root=args.nab_root, thresholds=args.thresholds, detector=args.detector
    )
    print(json.dumps({profile: round(value, 2) for profile, value in scores.items()}))
    return ExitCode.OK


def cmd_benchmark(args: argparse.Namespace) -> int:
    params: dict[str, dict[str, object]] = {}
    for key, value in args.param or []:
        detector, _, name = key.partition(".")
        if not name:
            raise UsageError(f"--param {key}=...: expected DETECTOR.PARAMETER=VALUE")
        params.setdefault(detector, {})[name] = value
    board, _ = steps.benchmark(
        args.corpus,
        args.detectors.split(",") if args.detectors else None,
        profile=args.profile,
        params=params or None,
        reference_root=args.reference_data,
        out=args.out or config.PROJECT_ROOT / ".passion" / "benchmark" / args.corpus,
        scales=args.scales,
    )
    print(board.summary())
    return ExitCode.OK


def cmd_select(args: argparse.Namespace) -> int:
    selection = steps.select(
        Lake(args.lake),
        args.series,
        args.detectors.split(","),
        train_from=args.train_from,
        train_to=args.train_to,
        lookback_days=args.lookback_days,
        promote=args.promote,
    )
    print(selection.summary())
    return ExitCode.OK


def cmd_partitions(args: argparse.Namespace) -> int:
    days = steps.partitions(Lake(args.lake), args.dataset)
    if args.json:
        print(json.dumps([day.isoformat() for day in days]))
    else:
        for day, rows in days.items():
            print(f"{day}  {rows:>12,} rows")
    return ExitCode.OK


def cmd_lake(args: argparse.Namespace) -> int:
    lake = Lake(args.lake)
    if args.action == "vacuum":
        if not args.grace_hours >= 0:
            raise UsageError(f"--grace-hours must be 0 or more, not {args.grace_hours}")
        report = steps.vacuum(lake, grace=dt.timedelta(hours=args.grace_hours), dry_run=args.dry_run)
        print(report.summary())
        for path in report.removed if args.verbose else ():
            print(f"  {lake.uri(path)}")
    elif args.action == "files":
        if not (args.target and args.day):
            raise UsageError("lake files needs a DATASET and --day")
        print("\n".join(steps.committed_files(lake, args.target, args.day)))
    elif args.action == "lease":
        if not args.target:
            raise UsageError("lake lease needs a NAME, e.g. passion_score/dt=2026-12-02")
        held, released = steps.lease(lake, args.target, release=args.release)
        if released:
            print(f"released {args.target}, which {held.holder} held")
        elif held is not None:
            print(f"{args.target}: held by {held.holder} since {held.acquired_at}, until {held.expires_at}")
        else:
            print(f"{args.target}: free")
    return ExitCode.OK


def cmd_demo(args: argparse.Namespace) -> int:
    from passion_tasks.demo import run_demo

    uri = run_demo(
        Lake(args.lake), Path(args.workdir), days=args.days, start=args.start, seed=args.seed, rate=args.rate
    )
    print(f"\nReport: {uri}")
    return ExitCode.OK


def _instant(text: str) -> dt.datetime:
    try:
        instant = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r}") from None
    return instant.replace(tzinfo=dt.UTC) if instant.tzinfo is None else instant


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="passion", description="Anomaly detection for CDN logs and server metrics over a Parquet lake."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    generate = commands.add_parser("generate", help="write realistic labelled CDN logs and server metrics")
    generate.add_argument("--days", type=int, required=True)
    generate.add_argument("--start", type=_day, required=True, metavar="YYYY-MM-DD")
    generate.add_argument("--out", type=Path, required=True, metavar="DIR")
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--rate", type=float, default=200.0, help="mean requests per minute (default 200)")
    generate.add_argument("--ds2", action="store_true", help="also write an Akamai DataStream 2 stream")
    generate.add_argument("--no-anomalies", dest="anomalies", action="store_false")
    generate.add_argument(
        "--no-server-errors",
        dest="server_errors",
        action="store_false",
        help="healthy traffic never answers 5xx: error rates are 0 until an incident",
    )
    generate.add_argument(
        "--all-kinds", action="store_true", help="also outages and thin-slice 5xx bursts among the incidents"
    )
    generate.set_defaults(handler=cmd_generate)

    ingest = commands.add_parser("ingest", help="land one day of CDN logs or server metrics in the lake")
    ingest.add_argument("--source", choices=[*datasets.SOURCES, datasets.PROMETHEUS], required=True)
    ingest.add_argument("--day", type=_day, required=True, metavar="YYYY-MM-DD")
    ingest.add_argument("--input", metavar="PATH_OR_URL", help="file, folder or s3:// prefix (cdn, metrics)")
    ingest.add_argument(
        "--queries",
        default=config.prometheus_queries(),
        metavar="FILE",
        help=f"prometheus: the queries file (default: {config.PROMETHEUS_QUERIES_ENV}); the server is "
        "PASSION_PROMETHEUS_URL",
    )
    _lake_option(ingest)
    ingest.set_defaults(handler=cmd_ingest)

    reference = commands.add_parser("import", help="import a real labelled corpus as metric series")
    reference.add_argument("--corpus", choices=CORPORA, required=True)
    reference.add_argument(
        "--reference-data",
        metavar="PATH",
        default=None,
        help="default: $PASSION_REFERENCE_DATA or ../shared/data",
    )
    _lake_option(reference)
    reference.set_defaults(handler=cmd_import)

    features = commands.add_parser("features", help="build the day's per-minute feature series")
    features.add_argument("--day", type=_day, required=True, metavar="YYYY-MM-DD")
    _lake_option(features)
    features.set_defaults(handler=cmd_features)

    train = commands.add_parser("train", help="train a detector per series and register the models")
    train.add_argument(
        "--detector",
        help="a name from `passion detectors list` (default: what the nightly run trains, per series)",
    )
    train.add_argument("--series", action="append", metavar="NAME", help="default: every watched series")
    train.add_argument("--train-from", type=_day, metavar="YYYY-MM-DD")
    train.add_argument(
        "--train-to", type=_day, metavar="YYYY-MM-DD", help="default: the last day with features"
    )
    train.add_argument(
        "--lookback-days",
        type=int,
        default=LOOKBACK_DAYS,
        help=f"without --train-from (default {LOOKBACK_DAYS})",
    )
    train.add_argument(
        "--param", action="append", type=_param, metavar="KEY=VALUE", help="detector parameter"
    )
    train.add_argument(
        "--budget",
        type=float,
        metavar="N",
        help="false-alarm budget: false incidents per series per 30 days (default 0.1, less where the "
        "series watched would make more than one false incident a day together)",
    )
    train.add_argument("--promote", action="store_true", help="make the new models live")
    train.add_argument(
        "--effective-from",
        type=_day,
        metavar="YYYY-MM-DD",
        help="live from (default: the day after training)",
    )
    _lake_option(train)
    train.set_defaults(handler=cmd_train)

    score = commands.add_parser("score", help="score a day with the model live on that day, per series")
    score.add_argument("--day", type=_day, required=True, metavar="YYYY-MM-DD")
    score.add_argument(
        "--series", action="append", metavar="NAME", help="score only this series (repeatable)"
    )
    _lake_option(score)
    score.set_defaults(handler=cmd_score)

    models = commands.add_parser(
        "models", help="list, promote, roll back and sign (after a key rotation) registered models"
    )
    models.add_argument("action", choices=["list", "history", "promote", "rollback", "sign"])
    models.add_argument("--series", help="required except for list and sign")
    models.add_argument(
        "--adopt-unsigned",
        action="store_true",
        help="sign: also sign models registered before a key was set (you vouch for them)",
    )
    models.add_argument("--detector")
    models.add_argument("--version", help="e.g. v3")
    models.add_argument("--effective-from", type=_day, metavar="YYYY-MM-DD", help="default: today")
    models.add_argument("--reason", default="")
    _lake_option(models)
    models.set_defaults(handler=cmd_models)

    apply = commands.add_parser("apply", help="score another dataset with a saved model")
    apply.add_argument("--model", required=True, metavar="SERIES/DETECTOR[@VERSION]")
    apply.add_argument("--input", required=True, type=Path, metavar="FILE.csv|FILE.parquet")
    apply.add_argument("--out", type=Path, metavar="FILE", help="CSV or .parquet (default: CSV on stdout)")
    _lake_option(apply)
    apply.set_defaults(handler=cmd_apply)

    detectors = commands.add_parser("detectors", help="the detector zoo")
    detectors.add_argument("action", choices=["list", "describe"])
    detectors.add_argument("name", nargs="?")
    detectors.add_argument("--window", type=int)
    detectors.add_argument("--features", type=int)
    detectors.set_defaults(handler=cmd_detectors)

    report = commands.add_parser("report", help="render the day's HTML report into the lake")
    report.add_argument("--day", type=_day, required=True, metavar="YYYY-MM-DD")
    _lake_option(report)
    report.set_defaults(handler=cmd_report)

    benchmark = commands.add_parser(
        "benchmark", help="run detectors on a real labelled corpus, write a leaderboard"
    )
    benchmark.add_argument("--corpus", choices=CORPORA, required=True)
    benchmark.add_argument("--detectors", help="comma-separated names (default: the profile's)")
    benchmark.add_argument(
        "--profile", choices=["fast", "full"], default="fast", help="full adds the Keras models"
    )
    benchmark.add_argument("--out", type=Path, metavar="DIR", help="default: .passion/benchmark/<corpus>")
    benchmark.add_argument("--param", action="append", type=_param, metavar="DETECTOR.KEY=VALUE")
    benchmark.add_argument("--reference-data", metavar="PATH", default=None)
    benchmark.add_argument(
        "--scales",
        type=_scales,
        default=CALIBRATION_SCALES,
        metavar="ROWS",
        help="trailing means the calibration stage reads beside each row, e.g. 1,10,100 (default: 1, "
        "each row alone)",
    )
    benchmark.set_defaults(handler=cmd_benchmark)

    select = commands.add_parser(
        "select", help="pick the best detector for a series, register and promote it"
    )
    select.add_argument("--series", required=True)
    select.add_argument("--detectors", required=True, help="comma-separated candidates")
    select.add_argument("--train-from", type=_day, metavar="YYYY-MM-DD")
    select.add_argument("--train-to", type=_day, metavar="YYYY-MM-DD")
    select.add_argument("--lookback-days", type=int, default=LOOKBACK_DAYS)
    select.add_argument("--promote", action="store_true")
    _lake_option(select)
    select.set_defaults(handler=cmd_select)

    nab = commands.add_parser("nab", help="the Numenta Anomaly Benchmark scorer")
    nab_commands = nab.add_subparsers(dest="nab_command", required=True, metavar="NAB_COMMAND")
    nab_score = nab_commands.add_parser(
        "score", help="score per-row results laid out as NAB's results/<detector>/"
    )
    nab_score.add_argument("--results", type=Path, required=True, metavar="DIR")
    nab_score.add_argument(
        "--nab-root", type=Path, default=None, metavar="PATH", help="default: ../shared/data/nab"
    )
    nab_score.add_argument(
        "--thresholds",
        type=Path,
        metavar="PATH",
        help="NAB's config/thresholds.json format instead of optimising",
    )
    nab_score.add_argument(
        "--detector", help="result-file prefix and thresholds key (default: the folder's name)"
    )
    nab_score.set_defaults(handler=cmd_nab_score)

    explore = commands.add_parser(
        "explore", help="an HTML page to find the critical features: plots, correlations, importance"
    )
    explore.add_argument("--from", dest="start", type=_day, required=True, metavar="YYYY-MM-DD")
    explore.add_argument("--to", dest="end", type=_day, required=True, metavar="YYYY-MM-DD")
    explore.add_argument("--series", action="append", metavar="NAME", help="default: the watched series")
    explore.add_argument("--target", metavar="NAME", help="the series whose drivers are ranked")
    _lake_option(explore)
    explore.set_defaults(handler=cmd_explore)

    alert = commands.add_parser(
        "alert",
        help="send the day's alerts once each (channels from PASSION_ALERT_*/PASSION_SMTP_* settings)",
    )
    alert.add_argument("--day", type=_day, required=True, metavar="YYYY-MM-DD")
    _lake_option(alert)
    alert.set_defaults(handler=cmd_alert)

    live = commands.add_parser(
        "live",
        help="one micro-batch: land the new CDN log files of yesterday and today, score and alert",
    )
    live.add_argument("--input", required=True, metavar="PATH_OR_URL", help="folder or s3:// prefix")
    live.add_argument(
        "--now",
        type=_instant,
        metavar="ISO_TIME",
        help="the time the batch runs at, UTC (default: now): the days it works on, and when a day is over",
    )
    _lake_option(live)
    live.set_defaults(handler=cmd_live)

    partitions = commands.add_parser("partitions", help="list a dataset's days and row counts")
    partitions.add_argument("dataset", help="e.g. cdn_logs, metrics, features, scores")
    partitions.add_argument("--json", action="store_true")
    _lake_option(partitions)
    partitions.set_defaults(handler=cmd_partitions)

    lake = commands.add_parser(
        "lake",
        help="housekeeping: vacuum what failed or replaced writes left, list a day's committed files, "
        "show or release a day's lease",
    )
    lake.add_argument("action", choices=["vacuum", "files", "lease"])
    lake.add_argument(
        "target",
        nargs="?",
        help="files: a dataset (cdn_logs, features, scores...); "
        "lease: its name, e.g. passion_score/dt=2026-12-02",
    )
    lake.add_argument("--release", action="store_true", help="lease: give it back (its holder is dead)")
    lake.add_argument("--day", type=_day, metavar="YYYY-MM-DD", help="files: the day")
    lake.add_argument(
        "--grace-hours",
        type=float,
        default=VACUUM_GRACE.total_seconds() / 3600,
        help="vacuum: keep files younger than this (default %(default)g)",
    )
    lake.add_argument("--dry-run", action="store_true", help="vacuum: list, remove nothing")
    _lake_option(lake)
    lake.set_defaults(handler=cmd_lake)

    demo = commands.add_parser("demo", help="generate, ingest, featurise, score and report, end to end")
    demo.add_argument("--days", type=int, default=14)
    demo.add_argument("--start", type=_day, default=None, metavar="YYYY-MM-DD", help="default: DAYS days ago")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--rate", type=float, default=200.0)
    demo.add_argument("--workdir", default=str(config.PROJECT_ROOT / ".passion" / "demo"), metavar="DIR")
    _lake_option(demo)
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "models" and args.action not in ("list", "sign") and not args.series:
        parser.error(f"models {args.action} needs --series")
    if args.command == "models" and args.action == "promote" and not (args.detector and args.version):
        parser.error("models promote needs --detector and --version")
    if args.command == "detectors" and args.action == "describe" and not args.name:
        parser.error("detectors describe needs a NAME")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return int(args.handler(args))
    except PassionError as error:
        print(f"passion {args.command}: {error}", file=sys.stderr)
        return int(error.exit_code)


if __name__ == "__main__":
    sys.exit(main())
