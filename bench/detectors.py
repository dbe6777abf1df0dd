"""Fit and score times of every detector: 30 days of 1-minute data for one series, then one day.

    python bench/detectors.py [--days 30] [--detectors a,b,c] [--epochs 1] [--window 1440]

Each detector runs in its own process so its peak memory is its own. The series is the
generator's `cif` metric (daily cycle, noise, injected incidents). Keras models train with
`--epochs` (default 1: the time per epoch is what matters; the seeds used 10 to 50) at `--window`
(default: each detector's own default, 1440 for the seed's forecasters). `rolling_mad` is the
baseline every other row is compared with.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

BASELINE = "rolling_mad"
START = dt.date(2026, 10, 1)


def series(days: int) -> pd.DataFrame:
    """``days + 1`` days of the generator's ``cif`` metric on a one-minute grid."""
    from passion_tasks.synthetic import generate

    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp, START, days + 1, seed=1, rate=1)
        values = {}
        for path in sorted(Path(tmp, "metrics").glob("*/cif.json")):
            values.update(json.loads(path.read_text()))
    frame = pd.Series(values, dtype="float64").rename("cif").to_frame()
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.index, utc=True), name="ts")
    return frame.asfreq("min")


def run_one(name: str, days: int, epochs: int, window: int | None) -> dict:
    from passion_tasks.detectors import make_detector, uses_keras

    frame = series(days)
    train, test = frame.iloc[: days * 1440], frame.iloc[-1440 - 1440 :]
    params = {}
    if uses_keras(name):
        params["epochs"] = epochs
        if window:
            params["window"] = window
    if name == "xgboost":
        labels = pd.Series(0, index=train.index)
        labels.iloc[np.argsort(np.abs(train["cif"] - train["cif"].median()).to_numpy())[-200:]] = 1
        began = time.perf_counter()
        detector = make_detector(name, **params).fit(train, labels=labels)
    else:
        began = time.perf_counter()
        detector = make_detector(name, **params).fit(train)
    fit_s = time.perf_counter() - began
    began = time.perf_counter()
    detector.decision_function(test)
    score_s = time.perf_counter() - began
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"detector": name, "params": params, "fit_s": fit_s, "score_day_s": score_s, "peak_mib": peak_mib}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--detectors", help="comma-separated names (default: all)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--window", type=int, help="Keras window (default: each model's own)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.days, args.epochs, args.window)))
        return

    from passion_tasks.detectors import detector_names

    names = args.detectors.split(",") if args.detectors else detector_names()
    names = [BASELINE] + [n for n in names if n != BASELINE]
    print(
        f"{args.days} days of 1-minute data ({args.days * 1440:,} rows), scoring 1 day; {os.cpu_count()} CPUs"
    )
    print(f"{'detector':<18} {'fit s':>9} {'score 1 day s':>14} {'fit / baseline':>15} {'peak MiB':>9}")
    baseline_fit = None
    for name in names:
        command = [
            sys.executable,
            __file__,
            "--one",
            name,
            "--days",
            str(args.days),
            "--epochs",
            str(args.epochs),
        ]
        if args.window:
            command += ["--window", str(args.window)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode
            print(f"{name:<18} failed: {reason}")
            continue
        row = json.loads(done.stdout.strip().splitlines()[-1])
        baseline_fit = baseline_fit or row["fit_s"]
        print(
            f"{name:<18} {row['fit_s']:>9.2f} {row['score_day_s']:>14.3f} "
            f"{row['fit_s'] / baseline_fit:>14.1f}x {row['peak_mib']:>9.0f}  {row['params'] or ''}"
        )


if __name__ == "__main__":
    main()
