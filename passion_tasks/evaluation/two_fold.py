"""An honest NAB score: a detector's settings chosen on one half of the files, scored on the other.

NAB optimises one threshold per profile over the very files it scores, and a detector configured by
trying its settings on the whole corpus is scored on what it was tuned to. Here the files are split
in two fixed halves (a seeded shuffle within each of NAB's folders, so both halves hold every kind of
data); on each half the configuration and the threshold with the best raw score are chosen, the other
half is scored with them, and the two raw scores are added and normalised against the whole
corpus's null and perfect detectors, as NAB normalises. A single configuration still has its
threshold chosen on the other half.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from passion_tasks.evaluation.nab import (
    normalised_score,
    null_score,
    optimise_threshold,
    perfect_score,
    score_corpus,
)
from passion_tasks.evaluation.nab_corpus import NabCorpus, Profile

#: The seed of the split: fixed, so every detector is judged on the same halves.
SEED = 2026


@dataclass(frozen=True)
class TwoFold:
    """The normalised score of the two halves together, and what each half's choice was: the
    configuration and threshold chosen on the other half, with which it was scored."""

    score: float
    chosen: tuple[tuple[str, float], tuple[str, float]]


def halves(names: Sequence[str], seed: int = SEED) -> tuple[list[str], list[str]]:
    """The files split in two: each folder (``realKnownCause/...``) shuffled, its files dealt one by one
    to the half with fewer files so far (the first half on a tie)."""
    first: list[str] = []
    second: list[str] = []
    rng = np.random.default_rng(seed)
    for folder in sorted({name.rpartition("/")[0] for name in names}):
        members = sorted(name for name in names if name.rpartition("/")[0] == folder)
        for name in rng.permutation(members):
            (first if len(first) <= len(second) else second).append(str(name))
    return sorted(first), sorted(second)


def two_fold_score(
    configurations: Mapping[str, Mapping[str, ArrayLike]],
    corpus: NabCorpus,
    profile: Profile,
    split: tuple[Sequence[str], Sequence[str]] | None = None,
) -> TwoFold:
    """``configurations`` (name -> per-file scores) judged two-fold on ``corpus``: on each half the
    configuration and threshold with the best raw score (the first of tied ones) score the other half.
    ``split`` defaults to ``halves`` of the corpus's files. A corpus of one file has no two halves:
    its score is NaN."""
    one, other = split or halves(list(corpus.files))
    if not one or not other:
        return TwoFold(np.nan, (("", np.nan), ("", np.nan)))
    raw, chosen = 0.0, []
    for choosing, scored in ((one, other), (other, one)):
        on_choosing, on_scored = _part(corpus, choosing), _part(corpus, scored)
        best = {
            name: optimise_threshold(scores, on_choosing, profile) for name, scores in configurations.items()
        }
        name = max(best, key=lambda candidate: best[candidate][1])
        threshold = best[name][0]
        raw += score_corpus(configurations[name], on_scored, profile, threshold)
        chosen.append((name, threshold))
    score = normalised_score(raw, null_score(corpus, profile), perfect_score(corpus, profile))
    return TwoFold(score, (chosen[0], chosen[1]))


def _part(corpus: NabCorpus, names: Sequence[str]) -> NabCorpus:
    return NabCorpus({name: corpus.files[name] for name in names}, corpus.profiles)
