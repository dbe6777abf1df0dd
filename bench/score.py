"""The nightly scoring of N series for a day, against the arithmetic lower bound measured in the same run.

    python bench/score.py --series 1000 [--lake local|s3] [--detector NAME] [--minutes 5]

A fleet of N server metrics (a daily cycle with noise, ``tests/cluster.py``) gets two days of features
and a model each (``rolling_mad`` unless ``--detector`` names another), trained on them and live on the
third day; ``steps.score_day`` then scores that day into the lake, in this process, as the
``passion_score`` task and ``passion score`` do. The lower bound is the same models' arithmetic on the
same rows (the passes of ``models.scoring``, each on the series × steps matrix of its models) with
nothing read or written: every model already loaded, every matrix already in memory. A micro-batch
then scores the day's 5 minutes before 20:00 (``--minutes``) as ``passion live`` does once its files
have landed. On S3 the worker's model cache (``PASSION_MODEL_CACHE``) starts empty: the nightly
scoring fills it, as a worker's first task of the day does, and the micro-batch finds it warm.
``--lake s3`` puts the lake on moto's S3 server on 127.0.0.1, spoken to over HTTP. Peak RSS is this
process's; objects written are the files the scoring added to the lake. The last line is the contract
of issue 15.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import pandas as pd
from cluster import fleet_names, train_fleet, write_fleet

from passion_tasks import steps
from passion_tasks.defaults import BASELINE, HISTORY_DAYS
from passion_tasks.lake import Lake, datasets
from passion_tasks.lake.store import S3Options

DAYS = [dt.date(2026, 11, 18) + dt.timedelta(days=offset) for offset in range(3)]


def objects(lake: Lake) -> int:
    """The files under the lake's root."""
    from pyarrow import fs

    selector = fs.FileSelector(lake.root, recursive=True, allow_not_found=True)
    return sum(info.type == fs.FileType.File for info in lake.fs.get_file_info(selector))


def lower_bound(lake: Lake, names: list[str]) -> float:
    """Seconds of the models' arithmetic alone on the day and its history: the passes the scoring makes
    (``models.scoring.passes``), each on its series × steps matrix, models and matrices in memory."""
    from passion_tasks.detectors.base import detect_batch
    from passion_tasks.features import read_series
    from passion_tasks.models import training
    from passion_tasks.models.scoring import as_utc, passes, scoring_rows

    day = DAYS[2]
    frame = read_series(lake, day - dt.timedelta(days=HISTORY_DAYS), day, names)
    loaded = {name: training.live_model(lake, name, day) for name in names}
    work = []
    for group in passes(loaded):
        models = [loaded[name][0] for name in group]
        features = [feature for model in models for feature in model.feature_names_in_]
        rows = scoring_rows(models[0], frame, day, features)
        values = rows.to_numpy().T.reshape(len(models), -1, len(rows)).copy()
        work.append((models, values, rows.index, rows.index.searchsorted(as_utc(day))))
    began = time.perf_counter()
    for models, values, index, start in work:
        detect_batch(models, values, index, start)
    return time.perf_counter() - began


def micro_batch(lake: Lake, names: list[str], minutes: int) -> tuple[float, int]:
    """Seconds a micro-batch at 20:00 takes to score the day's last ``minutes`` as the live path
    scores them (``live.micro_batch`` once its files are landed): the models live that day loaded, the
    day so far and the history they need read, the new minutes scored and written to ``live_scores``;
    and the score rows written."""
    from passion_tasks.models.live import live_frame, write_live_scores
    from passion_tasks.models.scoring import ScoreSummary, load_models, score_loaded, scores_table

    day = DAYS[2]
    end = pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=20)
    start = end - pd.Timedelta(minutes=minutes)
    began = time.perf_counter()
    summary = ScoreSummary(day=day)
    loaded = load_models(lake, day, names, summary)
    today = lake.read_partition(datasets.FEATURES, day)
    frame = live_frame(lake, day, today, end, loaded, HISTORY_DAYS)
    scores = scores_table(list(score_loaded(loaded, frame, start, summary).values()))
    write_live_scores(lake, day, scores, start, end)
    return time.perf_counter() - began, scores.num_rows


def moto_lake(count: int) -> tuple[Lake, subprocess.Popen]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        PASSION_S3_ENDPOINT_URL=f"http://127.0.0.1:{port}",
    )
    import boto3

    boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1").create_bucket(
        Bucket="bench"
    )
    return Lake(f"s3://bench/fleet-{count}", s3=S3Options.from_env()), server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--lake", choices=("local", "s3"), default="local")
    parser.add_argument("--minutes", type=int, default=5, help="the micro-batch's new minutes")
    parser.add_argument("--detector", default=BASELINE, help="the fleet's detector (default: %(default)s)")
    args = parser.parse_args()
    os.environ.setdefault("PASSION_MODEL_KEY", "b" * 64)
    with tempfile.TemporaryDirectory(prefix="passion-bench-score-") as tmp:
        os.environ["PASSION_MODEL_CACHE"] = str(Path(tmp, "model-cache"))
        server = None
        lake = Lake(Path(tmp, "lake").as_uri()) if args.lake == "local" else None
        if lake is None:
            lake, server = moto_lake(args.series)
        try:
            names = fleet_names(args.series)
            began = time.perf_counter()
            write_fleet(lake, names, DAYS)
            train_fleet(lake, names, DAYS[:2], live_from=DAYS[2], detector=args.detector)
            print(
                f"fleet of {args.series}: features and models in {time.perf_counter() - began:.1f} s",
                flush=True,
            )
            before = objects(lake)
            began = time.perf_counter()
            summary = steps.score_day(lake, DAYS[2])
            seconds = time.perf_counter() - began
            written = objects(lake) - before
            if summary.series_scored != args.series:
                raise SystemExit(f"scored {summary.series_scored} series, not {args.series}")
            scored_rows = lake.read_partition(datasets.SCORES, DAYS[2]).num_rows
            bound = lower_bound(lake, names)
            batch_seconds, batch_rows = micro_batch(lake, names, args.minutes)
            if batch_rows != args.series * args.minutes:
                raise SystemExit(f"the micro-batch wrote {batch_rows} score rows")
        finally:
            if server is not None:
                server.terminate()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.lake} lake: {scored_rows:,} score rows; peak RSS {peak:.0f} MiB (preparation included)")
    print(
        f"micro-batch: {args.minutes} minutes of {args.series} series scored in {batch_seconds:.1f} s "
        "(models loaded, history and the day so far read, live_scores written)"
    )
    print(
        f"scored {args.series} series-days in {seconds:.1f} s ({args.series / seconds:.1f} series-days/s); "
        f"lower bound {bound:.1f} s; ratio {seconds / bound:.1f}; objects written {written}"
    )


if __name__ == "__main__":
    main()
