"""How well a detector's per-row output matches labelled anomalies: point-wise, event-wise and
point-adjusted F1, and ROC AUC (VUS in ``vus``).

Labels mark anomalous rows; a *segment* is a run of consecutive labelled rows. Point-wise counts take
rows as they are. Point adjustment (Xu et al., "Unsupervised Anomaly Detection via Variational
Auto-Encoder for Seasonal KPIs in Web Applications", WWW 2018): if any row of a segment is detected,
every row of it counts as detected; detections outside segments count row by row. It flatters: one
row in a long segment makes all of it found, and a random score reaches a high F1 that way (Kim et
al., AAAI 2022), so it stands beside the others, never alone. The event-wise F1 is the composite F1
of Garg et al. (IEEE TNNLS 2022; TSB-AD's "event-based F1" at a given threshold): the recall of
segments (one detected row finds one) with the precision of rows.

The NAB score is ``nab.py``'s. Corpora other than NAB get one NAB window per labelled segment, kept
as the segment (not widened by NAB's 10%-of-the-file rule, which would merge most of SMD's
segments), scored with NAB's cost matrices (``NAB_PROFILES``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import roc_auc_score

from passion_tasks.evaluation import nab
from passion_tasks.evaluation.nab_corpus import DataFile, NabCorpus, Profile

#: NAB's application profiles (``config/profiles.json`` of numenta/NAB v1.1), for corpora scored
#: without a NAB checkout at hand.
NAB_PROFILES = {
    "standard": Profile("standard", tp_weight=1.0, fp_weight=0.11, fn_weight=1.0),
    "reward_low_FP_rate": Profile("reward_low_FP_rate", tp_weight=1.0, fp_weight=0.22, fn_weight=1.0),
    "reward_low_FN_rate": Profile("reward_low_FN_rate", tp_weight=1.0, fp_weight=0.11, fn_weight=2.0),
}


@dataclass(frozen=True)
class Counts:
    """Point-adjusted row counts: true and false positives, false and true negatives."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)

    @property
    def precision(self) -> float:
        """TP / (TP + FP); NaN when nothing was detected."""
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        """TP / (TP + FN); NaN when nothing is labelled."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        """2 TP / (2 TP + FP + FN); NaN when nothing is labelled nor detected."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)


@dataclass(frozen=True)
class OracleF1:
    """The best point-adjusted F1 over every threshold, chosen with the test labels: an upper bound."""

    f1: float
    precision: float
    recall: float
    threshold: float


def label_runs(labels: ArrayLike) -> np.ndarray:
    """The runs of consecutive labelled rows as an ``(n, 2)`` array of inclusive ``[first, last]`` rows."""
    flags = np.asarray(labels, dtype=bool).astype(np.int8)
    edges = np.diff(np.concatenate([[0], flags, [0]]))
    return np.column_stack([np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1])


def point_counts(labels: ArrayLike, detected: ArrayLike) -> Counts:
    """Row counts of ``detected`` against ``labels``, as they are."""
    labels = np.asarray(labels, dtype=bool)
    detected = np.asarray(detected, dtype=bool)
    return Counts(
        tp=int(np.count_nonzero(detected & labels)),
        fp=int(np.count_nonzero(detected & ~labels)),
        fn=int(np.count_nonzero(~detected & labels)),
        tn=int(np.count_nonzero(~detected & ~labels)),
    )


@dataclass(frozen=True)
class Events:
    """Labelled segments found (one detected row each) and in all, beside the point-wise counts."""

    found: int = 0
    segments: int = 0
    rows: Counts = Counts()

    def __add__(self, other: Events) -> Events:
        return Events(self.found + other.found, self.segments + other.segments, self.rows + other.rows)

    @property
    def f1(self) -> float:
        """The composite F1: the harmonic mean of segment recall and row precision; NaN without a
        segment, 0 when nothing is found."""
        recall, precision = _ratio(self.found, self.segments), self.rows.precision
        if np.isnan(recall):
            return np.nan
        if not self.found:
            return 0.0
        return 2 * recall * precision / (recall + precision)


def event_counts(labels: ArrayLike, detected: ArrayLike) -> Events:
    """The segments of ``labels`` that ``detected`` finds, and the point-wise counts."""
    detected = np.asarray(detected, dtype=bool)
    runs = label_runs(labels)
    found = sum(bool(detected[first : last + 1].any()) for first, last in runs)
    return Events(found, len(runs), point_counts(labels, detected))


def point_adjust(labels: ArrayLike, detected: ArrayLike) -> np.ndarray:
    """``detected`` with every labelled segment holding a detection detected in full."""
    labels = np.asarray(labels, dtype=bool)
    adjusted = np.asarray(detected, dtype=bool).copy()
    for first, last in label_runs(labels):
        if adjusted[first : last + 1].any():
            adjusted[first : last + 1] = True
    return adjusted


def point_adjusted_counts(labels: ArrayLike, detected: ArrayLike) -> Counts:
    """Row counts of ``detected`` against ``labels`` after point adjustment."""
    return point_counts(labels, point_adjust(labels, detected))


def best_point_adjusted_f1(labels: Sequence[ArrayLike], scores: Sequence[ArrayLike]) -> OracleF1:
    """The best point-adjusted F1 of one threshold applied to every series (rows ``score >= threshold``).

    A segment is detected at every threshold up to its highest score, so the counts at all
    candidate thresholds (every distinct score) come from two sorted arrays. Ties in F1 go to the
    highest threshold. NaN figures when no row is labelled.
    """
    segment_peaks, segment_sizes, normal_scores = [], [], []
    for series_labels, series_scores in zip(labels, scores, strict=True):
        flags = np.asarray(series_labels, dtype=bool)
        values = np.asarray(series_scores, dtype=float)
        runs = label_runs(flags)
        if len(runs):
            # Bounds [first, last + 1) of every segment, interleaved; the even slices are the segments.
            bounds = np.column_stack([runs[:, 0], runs[:, 1] + 1]).ravel()
            segment_peaks.append(np.maximum.reduceat(np.append(values, -np.inf), bounds)[::2])
            segment_sizes.append(runs[:, 1] - runs[:, 0] + 1)
        normal_scores.append(values[~flags])
    if not segment_peaks:
        return OracleF1(np.nan, np.nan, np.nan, np.nan)
    peaks, sizes = np.concatenate(segment_peaks), np.concatenate(segment_sizes)
    normal = np.sort(np.concatenate(normal_scores))
    order = np.argsort(peaks)
    sorted_peaks = peaks[order]
    # detected_rows[i]: labelled rows of the segments whose peak ranks i-th or higher.
    detected_rows = np.concatenate([np.cumsum(sizes[order][::-1])[::-1], [0]])
    candidates = np.unique(np.concatenate([peaks, normal]))[::-1]
    tp = detected_rows[np.searchsorted(sorted_peaks, candidates, side="left")]
    fp = len(normal) - np.searchsorted(normal, candidates, side="left")
    positives = int(sizes.sum())
    f1 = 2 * tp / (2 * tp + fp + (positives - tp))
    best = int(np.argmax(f1))
    return OracleF1(
        f1=float(f1[best]),
        precision=_ratio(int(tp[best]), int(tp[best] + fp[best])),
        recall=_ratio(int(tp[best]), positives),
        threshold=float(candidates[best]),
    )


def roc_auc(labels: ArrayLike, scores: ArrayLike) -> float:
    """ROC AUC of the scores against the row labels (no point adjustment); NaN without both classes."""
    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        return np.nan
    return float(roc_auc_score(labels, np.asarray(scores, dtype=float)))


def windowed_file(name: str, timestamps: np.ndarray, labels: ArrayLike, training_rows: int) -> DataFile:
    """A NAB file whose windows are the labelled segments that reach past the training rows.

    The training rows are NAB's probationary period: never scored. Segments wholly inside them are
    left out, so they count neither as windows to find nor towards the perfect score.
    """
    runs = label_runs(labels)
    return DataFile(name, timestamps, runs[runs[:, 1] >= training_rows], training_rows)


def nab_profile_scores(
    scores: Mapping[str, ArrayLike], corpus: NabCorpus, threshold: float | None = None
) -> dict[str, float]:
    """Normalised NAB scores per profile, at ``threshold`` or (None) at each profile's optimum.

    NaN for every profile when the corpus has no window: NAB's normalisation divides by the
    perfect minus the null score, both 0 then.
    """
    if corpus.window_count == 0:
        return dict.fromkeys(corpus.profiles, np.nan)
    thresholds = None if threshold is None else dict.fromkeys(corpus.profiles, threshold)
    return nab.nab_scores(scores, corpus, thresholds)


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else np.nan
