"""The Numenta Anomaly Benchmark score (NAB v1.1), one function per rule, vectorised over rows.

The rules are those of Lavin & Ahmad, "Evaluating Real-time Anomaly Detection Algorithms: the Numenta
Anomaly Benchmark" (2015), as numenta/NAB implements them (``nab/sweeper.py``, ``nab/optimizer.py``,
``nab/runner.py``); ``SCORING.md`` in the NAB reference-data folder states each with its source.

Row ``i`` of a file is a detection iff its anomaly score is ``>= threshold`` (``detections`` has NAB's
one exception, at its start threshold 1.1). Any finite anomaly score will do: only their order counts.
One threshold per profile applies to the whole corpus; rows in a file's probationary period are never
scored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from passion_tasks.evaluation.nab_corpus import (
    DataFile,
    NabCorpus,
    NabError,
    Profile,
    first_invalid_score,
    load_corpus,
    read_results,
    read_thresholds,
)

#: Where NAB's threshold sweep starts, standing for "no detection": above every score in [0, 1], and
#: 1.1 whatever the scores are (see ``threshold_sweep`` and ``detections``).
NO_DETECTION_THRESHOLD = 1.1

#: What the null detector outputs on every row (NAB's ``nab/detectors/null``).
NULL_DETECTOR_SCORE = 0.5


def scaled_sigmoid(y: ArrayLike) -> np.ndarray:
    """``2 sigmoid(-5y) - 1`` for ``y <= 3``, else -1 (``sweeper.scaledSigmoid``)."""
    y = np.asarray(y, dtype=float)
    with np.errstate(over="ignore"):
        sigmoid = 1.0 / (1.0 + np.exp(5.0 * y))
    return np.where(y > 3.0, -1.0, 2.0 * sigmoid - 1.0)


#: What a detection at a window's left edge earns before weighting, σs(-1) = 0.98661.
MAX_TP = float(scaled_sigmoid(-1.0))


def row_windows(file: DataFile) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the window holding it, and the last window that ended before it (-1 for none)."""
    rows = np.arange(file.rows)
    started = np.searchsorted(file.windows[:, 0], rows, side="right") - 1
    ended = np.searchsorted(file.windows[:, 1], rows, side="left") - 1
    holding = np.where(started > ended, started, -1)
    return holding, ended


def sigmoid_positions(file: DataFile) -> np.ndarray:
    """Per row, the scaled sigmoid's argument ``y`` (``sweeper.calcSweepScore``).

    In a window ``[l, r]`` of ``w`` rows, ``y = -(r - i + 1) / w``: -1 at its left edge, -1/w at its
    right edge. After a window, ``y = |i - r_prev| / (w_prev - 1)`` grows with the distance from the
    window that precedes the row (never the next one). Before the first window ``y`` is infinite: the
    full false-positive penalty. NAB divides by zero after a one-row window; here that also gives the
    full penalty.
    """
    holding, preceding = row_windows(file)
    rows = np.arange(file.rows)
    first, last = file.windows[:, 0], file.windows[:, 1]
    widths = (last - first + 1).astype(float)
    y = np.full(file.rows, np.inf)
    inside = holding >= 0
    y[inside] = -(last[holding[inside]] - rows[inside] + 1) / widths[holding[inside]]
    after = ~inside & (preceding >= 0)
    with np.errstate(divide="ignore"):
        y[after] = np.abs(rows[after] - last[preceding[after]]) / (widths[preceding[after]] - 1)
    return y


def weighted_scores(file: DataFile, profile: Profile) -> np.ndarray:
    """The per-row weighted score: what each row earns if it is a detection.

    In a window, ``A_TP σs(y) / σs(-1)``: exactly A_TP at its left edge, falling to about 0 at its right
    edge. Outside, ``A_FP σs(y)``: about 0 just after a window, -A_FP far from one.
    """
    sigma = scaled_sigmoid(sigmoid_positions(file))
    inside = row_windows(file)[0] >= 0
    return np.where(inside, sigma * profile.tp_weight / MAX_TP, sigma * profile.fp_weight)


def scorable_rows(file: DataFile) -> np.ndarray:
    """Rows past the probationary period: the only ones scored, as detections or as window rows."""
    return np.arange(file.rows) >= file.probationary_rows


def scorable_windows(file: DataFile) -> np.ndarray:
    """Windows with a row past the probationary period: each costs A_FN if missed."""
    return file.windows[:, 1] >= file.probationary_rows


def detections(anomaly_scores: np.ndarray, file: DataFile, threshold: float) -> np.ndarray:
    """The rows that are detections: scorable rows scoring at or above ``threshold``.

    Except at 1.1 in a file with a scorable score above 1.1: no detection there, as in NAB. Its sweep
    records "no detection" as threshold 1.1 before the scores above 1.1 (``threshold_sweep``), and
    ``Sweeper.scoreDataSet`` scores a file at the first sweep entry with the given threshold.
    """
    scorable = scorable_rows(file)
    if threshold == NO_DETECTION_THRESHOLD and (anomaly_scores[scorable] > threshold).any():
        return np.zeros(file.rows, dtype=bool)
    return (anomaly_scores >= threshold) & scorable


def score_file(anomaly_scores: np.ndarray, file: DataFile, profile: Profile, threshold: float) -> float:
    """A file's raw score: Σ windows' values + Σ false positives' (negative) weighted scores.

    A window's value is the weighted score of its earliest detection, or the missed-window penalty
    -A_FN: the weighted score falls across a window, so later detections in it add nothing.
    """
    holding = row_windows(file)[0]
    weighted = weighted_scores(file, profile)
    detected = detections(anomaly_scores, file, threshold)
    window_values = np.full(len(file.windows), -profile.fn_weight)
    true_positives = detected & (holding >= 0)
    np.maximum.at(window_values, holding[true_positives], weighted[true_positives])
    false_positives = detected & (holding < 0)
    return float(window_values[scorable_windows(file)].sum() + weighted[false_positives].sum())


def score_corpus(
    scores: Mapping[str, ArrayLike], corpus: NabCorpus, profile: Profile, threshold: float
) -> float:
    """The corpus raw score at ``threshold``: the sum of the files' raw scores."""
    checked = _checked_scores(scores, corpus)
    return sum(score_file(checked[name], file, profile, threshold) for name, file in corpus.files.items())


def detection_gains(anomaly_scores: np.ndarray, file: DataFile, profile: Profile) -> np.ndarray:
    """Per row, how much the file's raw score changes when the row turns into a detection.

    As the threshold falls, rows turn into detections in decreasing order of anomaly score, and the
    raw score is the missed-window penalties plus the gains of the rows detected so far. A false
    positive gains its weighted score. In a window only the earliest detection counts: a row changes
    it only when it scores strictly above every earlier row of the window (rows that tie turn into
    detections together, the earlier one counting). Those rows take over one after the other, from
    the last to the first, each gaining its weighted score minus that of the row it replaces (-A_FN
    for the first to be detected).
    """
    holding = row_windows(file)[0]
    weighted = weighted_scores(file, profile)
    scorable = scorable_rows(file)
    gains = np.where(scorable & (holding < 0), weighted, 0.0)
    for window in np.flatnonzero(scorable_windows(file)):
        rows = np.flatnonzero(scorable & (holding == window))
        window_scores = anomaly_scores[rows]
        best_before = np.concatenate([[-np.inf], np.maximum.accumulate(window_scores)[:-1]])
        takers = rows[window_scores > best_before]
        values = weighted[takers]
        gains[takers] = values - np.append(values[1:], -profile.fn_weight)
    return gains


def threshold_sweep(
    anomaly_scores: np.ndarray, gains: np.ndarray, no_detection_score: float
) -> tuple[np.ndarray, np.ndarray]:
    """The raw score at each candidate threshold, in NAB's order (``Sweeper.calcScoreByThreshold``).

    The candidates are 1.1 (no detections, scoring ``no_detection_score``), then every distinct
    anomaly score from the highest down; a threshold's total counts the gains of all rows scoring at
    or above it. Negative scores need nothing more. But NAB starts at 1.1 whatever the scores: scores
    above it come after it (the thresholds fall, jump up, fall again) and 1.1 still means no
    detection; where the highest score is 1.1 itself, NAB's first entry is that score's and there is
    no "no detection" entry. NAB sweeps the scorable rows only: pass those (``corpus_sweep``).
    """
    order = np.argsort(-anomaly_scores, kind="stable")
    ranked = anomaly_scores[order]
    running = np.cumsum(gains[order])
    last_of_each_score = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], ranked.size > 0))
    thresholds = ranked[last_of_each_score]
    totals = no_detection_score + running[last_of_each_score]
    if thresholds.size and thresholds[0] == NO_DETECTION_THRESHOLD:
        return thresholds, totals
    return np.append(NO_DETECTION_THRESHOLD, thresholds), np.append(no_detection_score, totals)


def corpus_sweep(
    scores: Mapping[str, ArrayLike], corpus: NabCorpus, profile: Profile
) -> tuple[np.ndarray, np.ndarray]:
    """The corpus raw score at each candidate threshold, over the files' scorable rows (NAB's sweep)."""
    checked = _checked_scores(scores, corpus)
    scorable = {name: scorable_rows(file) for name, file in corpus.files.items()}
    anomaly_scores = np.concatenate([checked[name][scorable[name]] for name in corpus.files])
    gains = np.concatenate(
        [detection_gains(checked[name], file, profile)[scorable[name]] for name, file in corpus.files.items()]
    )
    missed_windows = sum(int(scorable_windows(file).sum()) for file in corpus.files.values())
    return threshold_sweep(anomaly_scores, gains, -profile.fn_weight * missed_windows)


def optimise_threshold(
    scores: Mapping[str, ArrayLike], corpus: NabCorpus, profile: Profile
) -> tuple[float, float]:
    """The threshold with the highest corpus raw score, and that score (``optimizer.optimizeThreshold``).

    Every distinct anomaly score of the corpus is tried, so the optimum is global; among thresholds
    that tie, the first in the sweep wins, as NAB's stable sort has it: the highest, or 1.1 (no
    detection) before scores above it.
    """
    thresholds, totals = corpus_sweep(scores, corpus, profile)
    best = int(np.argmax(totals))
    return float(thresholds[best]), float(totals[best])


def null_score(corpus: NabCorpus, profile: Profile) -> float:
    """The raw score of NAB's null detector (0.5 on every row) at its optimised threshold."""
    constant = {name: np.full(file.rows, NULL_DETECTOR_SCORE) for name, file in corpus.files.items()}
    return optimise_threshold(constant, corpus, profile)[1]


def perfect_score(corpus: NabCorpus, profile: Profile) -> float:
    """The raw score of a detector that flags every window's left edge and nothing else."""
    return corpus.window_count * profile.tp_weight


def normalised_score(raw: float, null: float, perfect: float) -> float:
    """``100 (raw - null) / (perfect - null)``: the null detector scores 0, a perfect one 100."""
    return 100.0 * (raw - null) / (perfect - null)


def nab_scores(
    scores: Mapping[str, ArrayLike], corpus: NabCorpus, thresholds: Mapping[str, float] | None = None
) -> dict[str, float]:
    """The normalised NAB score per application profile.

    ``thresholds`` maps a profile to its threshold (see ``read_thresholds``); without it, each
    profile's threshold is optimised over the corpus.
    """
    checked = _checked_scores(scores, corpus)
    results = {}
    for name, profile in corpus.profiles.items():
        if thresholds is None:
            raw = optimise_threshold(checked, corpus, profile)[1]
        elif name in thresholds:
            raw = score_corpus(checked, corpus, profile, thresholds[name])
        else:
            raise NabError(f"no threshold for profile {name!r} (thresholds given for {sorted(thresholds)})")
        results[name] = normalised_score(raw, null_score(corpus, profile), perfect_score(corpus, profile))
    return results


def score_results_dir(
    results_dir: str | os.PathLike[str],
    nab_root: str | os.PathLike[str] | None = None,
    thresholds_path: str | os.PathLike[str] | None = None,
    detector: str | None = None,
) -> dict[str, float]:
    """``passion nab score``: the normalised scores of a NAB results folder, as full floats.

    ``detector`` (default: the folder's name) is the result files' prefix and the entry read from
    ``thresholds_path`` (NAB's ``config/thresholds.json`` format); without that file each profile's
    threshold is optimised.
    """
    corpus = load_corpus(nab_root)
    detector = detector or Path(results_dir).resolve().name
    scores = read_results(results_dir, corpus, detector)
    thresholds = None if thresholds_path is None else read_thresholds(thresholds_path, detector)
    return nab_scores(scores, corpus, thresholds)


def _checked_scores(scores: Mapping[str, ArrayLike], corpus: NabCorpus) -> dict[str, np.ndarray]:
    """One float array per corpus file, as long as the file, every value finite."""
    checked = {}
    for name, file in corpus.files.items():
        if name not in scores:
            raise NabError(f"no anomaly scores for {name}")
        values = np.asarray(scores[name], dtype=float)
        if values.shape != (file.rows,):
            raise NabError(f"{name}: anomaly scores of shape {values.shape} for its {file.rows} rows")
        row = first_invalid_score(values)
        if row is not None:
            raise NabError(f"{name}, row {row}: anomaly score {values[row]} is not a finite number")
        checked[name] = values
    return checked
