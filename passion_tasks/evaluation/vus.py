"""Volume under the surface: threshold-free accuracy of anomaly scores that credits a score rising
near a labelled segment, not only on it.

Paparrizos et al., "Volume Under the Surface: A New Accuracy Evaluation Measure for Time-Series
Anomaly Detection", PVLDB 15(11), 2022. For each buffer length from 0 to a window, every labelled
segment is widened by half the buffer on both sides with labels that fade as the square root of the
distance; precision, recall (weighted by the share of segments with a detection) and the false
positive rate are taken at 250 thresholds, and the areas under the ROC and precision-recall curves
are averaged over the buffer lengths: VUS-ROC and VUS-PR. TSB-AD (Liu and Paparrizos, NeurIPS 2024)
ranks detectors by VUS-PR, with the window the series' period (``detectors.windows.period_length``).

Computed as TSB-AD's ``RangeAUC_volume_opt`` computes it (Apache-2.0),
vectorised over thresholds and checked against them to the last digits; the TSB-AD package itself
needs numpy < 2 and torch, neither of which Passion can take.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from passion_tasks.evaluation.metrics import label_runs

#: Thresholds at which the curves are taken: evenly spaced ranks of the sorted scores.
THRESHOLDS = 250


def vus(
    labels: ArrayLike, scores: ArrayLike, window: int, thresholds: int = THRESHOLDS
) -> tuple[float, float]:
    """``(VUS-ROC, VUS-PR)`` of ``scores`` against the row ``labels`` over buffers of 0 to ``window``
    rows; NaN for both without a labelled row or without a normal one."""
    labels = np.asarray(labels, dtype=bool).ravel()
    scores = np.asarray(scores, dtype=float).ravel()
    rows = labels.size
    if not labels.any() or labels.all():
        return np.nan, np.nan
    segments = label_runs(labels)
    cuts = -np.sort(-scores)[np.linspace(0, rows - 1, thresholds).astype(int)]
    # The rows any buffer reaches: the only ones whose labels the buffers change.
    reach = _covering(_merged(segments, window, rows), rows)
    curves = _Curves(
        segments=segments,
        reach=reach,
        labelled=labels[reach],
        scores=scores[reach],
        cuts=cuts,
        flagged=(scores[None, reach] >= cuts[:, None]).astype(float),
        predicted=(scores[None, :] >= cuts[:, None]).sum(axis=1),
        positives=int(labels.sum()),
        rows=rows,
    )
    roc, pr = np.mean([curves.areas(buffer) for buffer in range(window + 1)], axis=0)
    return float(roc), float(pr)


@dataclass(frozen=True)
class _Curves:
    """What every buffer length shares: the labelled segments, the rows the buffers reach, their scores
    and flags (thresholds x rows) at each cut, and the rows flagged in all at each cut."""

    segments: np.ndarray
    reach: np.ndarray
    labelled: np.ndarray
    scores: np.ndarray
    cuts: np.ndarray
    flagged: np.ndarray
    predicted: np.ndarray
    positives: int
    rows: int

    def areas(self, buffer: int) -> tuple[float, float]:
        """The areas under the range ROC and precision-recall curves at one buffer length.

        A row's weight is 1 on a segment; in a zone (a segment widened by the buffer) its fading label
        where it is flagged; elsewhere its label as it is. True positives are the flagged rows' weights.
        """
        soft = _soft_labels(self.segments, buffer, self.rows)[self.reach]
        zones = _merged(self.segments, buffer, self.rows)
        in_zone = np.isin(self.reach, _covering(zones, self.rows))
        around = ~self.labelled
        true_positives = self.flagged @ soft
        weights = self.positives + self.flagged[:, in_zone & around] @ soft[in_zone & around]
        weights += soft[~in_zone & around].sum()
        # A zone is found at a cut when its highest score reaches the cut.
        zoned = self.scores[in_zone]
        highest = np.maximum.reduceat(zoned, np.searchsorted(self.reach[in_zone], zones[:, 0]))
        found = (highest[None, :] >= self.cuts[:, None]).sum(axis=1)
        positives_now = (self.positives + weights) / 2
        tpr = np.minimum(true_positives / positives_now, 1.0) * found / len(zones)
        fpr = (self.predicted - true_positives) / (self.rows - positives_now)
        precision = true_positives / self.predicted
        tpr_curve, fpr_curve = np.concatenate([[0.0], tpr, [1.0]]), np.concatenate([[0.0], fpr, [1.0]])
        roc = float(np.dot(np.diff(fpr_curve), (tpr_curve[1:] + tpr_curve[:-1]) / 2))
        pr = float(np.dot(np.diff(np.concatenate([[0.0], tpr])), precision))
        return roc, pr


def _merged(segments: np.ndarray, buffer: int, rows: int) -> np.ndarray:
    """The segments widened by ``buffer // 2`` rows on both sides, those that then overlap merged."""
    half = buffer // 2
    zones = [[max(segments[0, 0] - half, 0), 0]]
    for (_, last), (first, _) in itertools.pairwise(segments):
        if last + half < first - half:
            zones[-1][1] = last + half
            zones.append([first - half, 0])
    zones[-1][1] = min(segments[-1, 1] + half, rows - 1)
    return np.array(zones)


def _covering(zones: np.ndarray, rows: int) -> np.ndarray:
    """The rows inside ``zones``, in order."""
    mask = np.zeros(rows, dtype=bool)
    for first, last in zones:
        mask[first : last + 1] = True
    return np.flatnonzero(mask)


def _soft_labels(segments: np.ndarray, buffer: int, rows: int) -> np.ndarray:
    """1 on the segments, fading as ``sqrt(1 - distance / buffer)`` over ``buffer // 2`` rows on both
    sides, capped at 1 where two fades meet."""
    soft = np.zeros(rows)
    for first, last in segments:
        soft[first : last + 1] = 1.0
        after = np.arange(last + 1, min(last + buffer // 2 + 1, rows))
        soft[after] += np.sqrt(1 - (after - last) / buffer)
        before = np.arange(max(first - buffer // 2, 0), first)
        soft[before] += np.sqrt(1 - (first - before) / buffer)
    return np.minimum(soft, 1.0)
