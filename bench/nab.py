"""NAB scores of detector configurations: all 58 files, NAB's protocol, the project's scorer.

    python bench/nab.py [--configs likelihood,range,...] [--neighbours] [--nab-root PATH]

Protocol (no peeking): each file's detector is fitted on its probationary period only (rows
``i < min(floor(0.15 N), 750)``) and scores every row causally; NAB scores the rows after it. One
threshold per application profile for the whole corpus, optimised by NAB's sweep
(``evaluation.nab.nab_scores``). Labels reach nothing but the scorer. Frames are the benchmark
runner's (``evaluation.benchmark.detector_frame``): the file's grid with gaps as missing rows, or
its rows in order where its timestamps are not on a grid. Scores outside [0, 1] (the baselines'
z-scores) are mapped by ``s / (1 + s)``, a fixed monotone map that leaves NAB's scores unchanged. A
file a detector refuses (``art_flatline``: a constant training series) scores 0 on every row.

``--neighbours`` adds the likelihood detector with one parameter moved at a time from its defaults
(the best configuration found): their median is what a configuration near the best scores, the
honest figure next to the best one. Each configuration's two-fold standard score stands beside its
full-corpus one (``evaluation.two_fold``: the threshold chosen on one half of the files, scored on
the other, and swapped), and last the likelihood configurations run are judged two-fold together:
the configuration and threshold chosen on one half, scored on the other. NAB's published scoreboard
(``results/final_results.json``) is printed beneath.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from passion_tasks.detectors import DetectorError, make_detector
from passion_tasks.evaluation.benchmark import BenchmarkSeries, detector_frame, load_corpus_data, unit_scores
from passion_tasks.evaluation.leaderboard import published_scoreboard
from passion_tasks.evaluation.nab import nab_scores
from passion_tasks.evaluation.nab_corpus import NabCorpus
from passion_tasks.evaluation.two_fold import two_fold_score

#: name -> (detector, parameters). ``likelihood`` with its defaults is the best configuration found.
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "likelihood": ("likelihood", {}),
    "range": ("likelihood", {"signals": ["range"], "refractory": 0}),
    "range+level": ("likelihood", {"signals": ["range", "level"]}),
    "range+level+shape": ("likelihood", {"signals": ["range", "level", "shape"]}),
    "likelihood(rolling_mad)": ("likelihood", {"signals": [], "base": "rolling_mad"}),
    "rolling_mad": ("rolling_mad", {}),
    "windowed_gaussian": ("windowed_gaussian", {}),
}

#: The likelihood detector with one parameter moved from its default.
NEIGHBOURS: dict[str, tuple[str, dict[str, Any]]] = {
    f"likelihood {key}={value}": ("likelihood", {key: value})
    for key, values in {
        "memory": [1000.0, 4000.0, 8000.0],
        "secondary_weight": [0.7, 0.9],
        "refractory": [0, 10, 100],
        "record_margin": [0.0, 0.05],
        "level_window": [1000],
        "shape_length": [16],
    }.items()
    for value in values
}

PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def detector_scores(
    detector: str, params: dict[str, Any], series: BenchmarkSeries
) -> tuple[np.ndarray, str | None]:
    """One file's scores in [0, 1], one per row: fitted on its probationary rows, scored causally.

    Returns zeros and the reason where the detector refuses the file.
    """
    frame, positions = detector_frame(series)
    train_end = positions[series.train_rows]
    try:
        fitted = make_detector(detector, **params).fit(frame.iloc[:train_end])
    except DetectorError as error:
        return np.zeros(len(positions)), str(error)
    scores = fitted.decision_function(frame).to_numpy()[positions]
    in_unit_range = bool(((scores >= 0) & (scores <= 1)).all())
    return (scores if in_unit_range else unit_scores(scores)), None


def corpus_scores(
    detector: str, params: dict[str, Any], series: list[BenchmarkSeries]
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Every file's scores, and the files the detector refused (with why)."""
    scores, refused = {}, []
    for one in series:
        scores[one.name], reason = detector_scores(detector, params, one)
        if reason:
            refused.append(f"{one.name}: {reason}")
    return scores, refused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", help=f"comma-separated, from: {', '.join(CONFIGS)} (default: all)")
    parser.add_argument("--neighbours", action="store_true", help="add the one-parameter neighbours")
    parser.add_argument("--nab-root", type=Path, help="default: the reference data's nab folder")
    args = parser.parse_args()
    chosen = dict(CONFIGS)
    if args.configs:
        unknown = sorted(set(args.configs.split(",")) - set(CONFIGS))
        if unknown:
            parser.error(f"unknown configurations {unknown}; choose from {list(CONFIGS)}")
        chosen = {name: CONFIGS[name] for name in args.configs.split(",")}
    if args.neighbours:
        chosen.update(NEIGHBOURS)

    data = load_corpus_data("nab", args.nab_root)
    corpus = NabCorpus({one.name: one.scoring for one in data.series}, data.profiles)
    print(f"NAB: {len(data.series)} files, {sum(one.scoring.rows for one in data.series):,} rows")
    print(f"{'configuration':<36} {'standard':>9} {'low FP':>8} {'low FN':>8} {'seconds':>8} {'two-fold':>9}")
    standard = corpus.profiles["standard"]
    neighbour_scores, likelihood_scores = [], {}
    for name, (detector, params) in chosen.items():
        began = time.perf_counter()
        scores, refused = corpus_scores(detector, params, data.series)
        seconds = time.perf_counter() - began
        result = nab_scores(scores, corpus)
        honest = two_fold_score({name: scores}, corpus, standard).score
        print(
            f"{name:<36} "
            + " ".join(f"{result[p]:>8.2f}" for p in PROFILES)
            + f" {seconds:>8.1f} {honest:>9.2f}"
        )
        if detector == "likelihood":
            likelihood_scores[name] = scores
        for reason in refused:
            print(f"    refused, scored 0: {reason}")
        if name in NEIGHBOURS:
            neighbour_scores.append([result[p] for p in PROFILES])
        sys.stdout.flush()
    if neighbour_scores:
        median = np.median(neighbour_scores, axis=0)
        label = f"median of {len(neighbour_scores)} neighbours"
        print(f"{label:<36} " + " ".join(f"{value:>8.2f}" for value in median))

    if len(likelihood_scores) > 1:
        together = two_fold_score(likelihood_scores, corpus, standard)
        picks = "; ".join(f"{name} at {threshold:.4f}" for name, threshold in together.chosen)
        print(
            f"\nlikelihood, its {len(likelihood_scores)} configurations chosen two-fold: standard "
            f"{together.score:.2f} (chosen on each half, in turn: {picks})"
        )

    print("\nNAB's published scoreboard (results/final_results.json)")
    for row in published_scoreboard(data.folder / "results" / "final_results.json").itertuples():
        print(f"{row.detector:<36} " + " ".join(f"{getattr(row, p):>8.2f}" for p in PROFILES))


if __name__ == "__main__":
    main()
