"""The ``passion`` command. Each subcommand is one call into ``passion_tasks.pipeline`` or a module.

Imports of heavy modules happen inside the handlers so ``passion --help`` stays instant.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from passion_tasks import config, pipeline
from passion_tasks.errors import ExitCode, PassionError
from passion_tasks.lake import Lake, as_day


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
    from passion_tasks.sources import generate

    summary = generate(
        args.out,
        args.start,
        args.days,
        seed=args.seed,
        rate=args.rate,
        ds2=args.ds2,
        anomalies=args.anomalies,
    )
    print(summary)
    return ExitCode.OK


def cmd_ingest(args: argparse.Namespace) -> int:
    report = pipeline.ingest_day(args.source, args.day, args.input, lake_url=args.lake)
    print(report.summary())
    return report.exit_code


def cmd_import(args: argparse.Namespace) -> int:
    from passion_tasks.ingest.reference import import_corpus

    report = import_corpus(Lake(args.lake), args.corpus, config.reference_data(args.reference_data))
    print(report)
    return ExitCode.OK


def cmd_features(args: argparse.Namespace) -> int:
    print(pipeline.build_features(args.day, lake_url=args.lake).summary())
    return ExitCode.OK


def cmd_score(args: argparse.Namespace) -> int:
    summary = pipeline.score_day(
        args.day, lake_url=args.lake, lookback_days=args.lookback_days, series=args.series or None
    )
    print(summary.summary())
    return ExitCode.OK


def cmd_report(args: argparse.Namespace) -> int:
    print(pipeline.report_day(args.day, lake_url=args.lake))
    return ExitCode.OK


def cmd_partitions(args: argparse.Namespace) -> int:
    lake = Lake(args.lake)
    days = lake.partitions(args.dataset)
    if args.json:
        print(json.dumps([d.isoformat() for d in days]))
    else:
        for day in days:
            rows = sum(leaf.rows for leaf in lake.leaves(args.dataset, day))
            print(f"{day}  {rows:>12,} rows")
    return ExitCode.OK


def cmd_demo(args: argparse.Namespace) -> int:
    uri = pipeline.run_demo(
        Path(args.workdir),
        days=args.days,
        start=args.start,
        seed=args.seed,
        rate=args.rate,
        lake_url=args.lake,
    )
    print(f"\nReport: {uri}")
    return ExitCode.OK


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
    generate.set_defaults(handler=cmd_generate)

    ingest = commands.add_parser("ingest", help="land one day of CDN logs or server metrics in the lake")
    ingest.add_argument("--source", choices=["cdn", "metrics"], required=True)
    ingest.add_argument("--day", type=_day, required=True, metavar="YYYY-MM-DD")
    ingest.add_argument("--input", required=True, metavar="PATH_OR_URL", help="file, folder or s3:// prefix")
    _lake_option(ingest)
    ingest.set_defaults(handler=cmd_ingest)

    reference = commands.add_parser("import", help="import a real labelled corpus as metric series")
    reference.add_argument("--corpus", choices=["nab", "asd", "smd", "kpi", "nasa-http"], required=True)
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

    score = commands.add_parser("score", help="fit the robust baseline on past days and score a day")
    score.add_argument("--day", type=_day, required=True, metavar="YYYY-MM-DD")
    score.add_argument("--lookback-days", type=int, default=13)
    score.add_argument(
        "--series", action="append", metavar="NAME", help="score only this series (repeatable)"
    )
    _lake_option(score)
    score.set_defaults(handler=cmd_score)

    report = commands.add_parser("report", help="render the day's HTML report into the lake")
    report.add_argument("--day", type=_day, required=True, metavar="YYYY-MM-DD")
    _lake_option(report)
    report.set_defaults(handler=cmd_report)

    partitions = commands.add_parser("partitions", help="list a dataset's days and row counts")
    partitions.add_argument("dataset", help="e.g. cdn_logs, metrics, features, scores")
    partitions.add_argument("--json", action="store_true")
    _lake_option(partitions)
    partitions.set_defaults(handler=cmd_partitions)

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
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return int(args.handler(args))
    except PassionError as error:
        print(f"passion {args.command}: {error}", file=sys.stderr)
        return int(error.exit_code)


if __name__ == "__main__":
    sys.exit(main())
