"""The seed's networks at their own settings: window 1,440, 10 epochs, a month of minutes per series.

    python bench/networks.py [--days 30] [--detectors lstm,gru,...] [--windows-per-epoch N]

Per network, in its own process: the fit with a fresh sample of training windows each epoch (the
detectors' ``windows_per_epoch``, or ``--windows-per-epoch``) and early stopping on the last tenth of the
training windows in time (the default), against the baseline measured in the same run, one epoch over
every window (``windows_per_epoch=None``), from which the seeds' ten full epochs are extrapolated.
Quality: ROC AUC of each on a scored day with a spike, a level shift and a stall planted in it (the
series is the generator's ``cif`` metric).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from detectors import series

SEED_EPOCHS = 10
NETWORKS = ("lstm", "gru", "gru_dense", "cnn1d", "lstm_ohlc", "mlstm_fcn")
#: Planted in the scored day: (first minute, minutes, what happens) in units of the day's spread.
PLANTED = ((300, 3, "spike"), (700, 30, "level shift"), (1100, 20, "stall"))


def planted_day(frame):
    """The last two days (history and the scored day) with the anomalies planted in the scored day."""
    test = frame.iloc[-2 * 1440 :].copy()
    values = test.iloc[:, 0].to_numpy().copy()
    labels = np.zeros(len(values), dtype=bool)
    spread = np.nanstd(values[:1440])
    for first, minutes, kind in PLANTED:
        rows = slice(1440 + first, 1440 + first + minutes)
        if kind == "spike":
            values[rows] += 4 * spread
        elif kind == "level shift":
            values[rows] -= 2 * spread
        else:
            values[rows] = values[1440 + first - 1]
        labels[rows] = True
    test.iloc[:, 0] = values
    return test, labels[1440:]


def run_one(name: str, days: int, epochs: int, per_epoch: int | None, every_window: bool) -> dict:
    from sklearn.metrics import roc_auc_score

    from passion_tasks.detectors import make_detector

    frame = series(days)
    train = frame.iloc[: days * 1440]
    test, labels = planted_day(frame)
    began = time.perf_counter()
    params = {"epochs": epochs}
    if every_window or per_epoch:
        params["windows_per_epoch"] = None if every_window else per_epoch
    detector = make_detector(name, **params).fit(train)
    fit_s = time.perf_counter() - began
    scores = detector.decision_function(test).to_numpy()[1440:]
    return {
        "fit_s": fit_s,
        "epochs_run": len(detector.training_loss_),
        "best_val_loss": min(detector.validation_loss_) if detector.validation_loss_ else float("nan"),
        "auc": float(roc_auc_score(labels, scores)),
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measured(name: str, days: int, epochs: int, per_epoch: int | None, every_window: bool) -> dict | str:
    """One fit in its own process: with ``per_epoch`` windows an epoch (None: the detector's default),
    or with every window each epoch."""
    command = [sys.executable, __file__, "--one", name, "--days", str(days), "--epochs", str(epochs)]
    command += ["--windows-per-epoch", str(per_epoch)] if per_epoch else []
    command += ["--every-window"] if every_window else []
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--detectors", default=",".join(NETWORKS))
    parser.add_argument("--windows-per-epoch", type=int, help="default: the detectors' own")
    parser.add_argument("--every-window", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=SEED_EPOCHS, help=argparse.SUPPRESS)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        figures = run_one(args.one, args.days, args.epochs, args.windows_per_epoch, args.every_window)
        print(json.dumps(figures))
        return
    print(
        f"{args.days} days of 1-minute data, window 1440, {SEED_EPOCHS} epochs; {os.cpu_count()} CPUs. "
        f"sampled: {args.windows_per_epoch or 'the default number of'} windows an epoch, early stopping; "
        f"all: one epoch over every window (the seeds' {SEED_EPOCHS} extrapolated)"
    )
    print(
        f"{'network':<10} {'sampled fit s':>14} {'epochs':>7} {'val loss':>9} {'AUC':>6} "
        f"{'all: 1 epoch s':>15} {'x10 s':>8} {'AUC':>6} {'speed-up':>9}"
    )
    for name in args.detectors.split(","):
        sampled = measured(name, args.days, SEED_EPOCHS, args.windows_per_epoch, every_window=False)
        full = measured(name, args.days, 1, None, every_window=True)
        if isinstance(sampled, str) or isinstance(full, str):
            print(f"{name:<10} failed: {sampled if isinstance(sampled, str) else full}")
            continue
        seeds = SEED_EPOCHS * full["fit_s"]
        print(
            f"{name:<10} {sampled['fit_s']:>14.1f} {sampled['epochs_run']:>7} "
            f"{sampled['best_val_loss']:>9.4f} {sampled['auc']:>6.3f} {full['fit_s']:>15.1f} {seeds:>8.0f} "
            f"{full['auc']:>6.3f} "
            f"{seeds / sampled['fit_s']:>8.1f}x"
        )


if __name__ == "__main__":
    main()
