"""Statistics of the exploration page: correlations, chi-square tests and feature importance.

The seed notebook looked for the critical inputs of a series with ``pearsonr``, ``chisquare`` and
XGBoost's ``plot_importance``; these are the same tools on the lake's feature frames (minutes x
series, UTC index).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import chisquare, pearsonr
from sklearn.ensemble import IsolationForest

from passion_tasks.detectors import DetectorError, make_detector
from passion_tasks.detectors.sklearn_detectors import lag_features

#: Lag window of the importance models: five minutes of history per input keeps a few dozen
#: inputs at a few hundred features, enough to see which inputs matter.
IMPORTANCE_WINDOW = 5
#: Inputs missing in more than this share of the minutes are left out of the importance models,
#: which need complete windows.
MAX_MISSING_SHARE = 0.5
#: The isolation forest's permutation importance is measured on at most this many evenly spaced rows.
PERMUTATION_ROWS = 3000
PERMUTATION_REPEATS = 3
#: A chi-square test needs at least this many expected counts in every category.
MIN_EXPECTED = 5
#: Widths, in hours, of the blocks of the day anomalies are counted in, finest first.
HOUR_BLOCKS = (1, 2, 3, 4, 6, 8, 12)


@dataclass(frozen=True)
class Correlation:
    """Pearson's r between the target and another column over the ``n`` minutes where both exist."""

    column: str
    r: float
    p_value: float
    n: int


@dataclass(frozen=True)
class ChiSquare:
    """A goodness-of-fit test of anomaly counts per category against the expected counts."""

    question: str
    observed: pd.Series
    expected: pd.Series
    statistic: float
    p_value: float


@dataclass(frozen=True)
class Importance:
    """How much each input column matters, as ``method`` measures it (``by_input``, largest first).

    ``features`` breaks it down by lag feature where the method can (XGBoost); ``left_out`` names
    the inputs too often missing to be used.
    """

    method: str
    description: str
    by_input: pd.Series
    features: pd.Series
    left_out: tuple[str, ...] = ()


def correlations_with(frame: pd.DataFrame, target: str) -> list[Correlation]:
    """Pearson's r and its p-value between ``target`` and every other column, strongest first.

    Columns with fewer than 3 joint minutes, or constant on them, are left out.
    """
    found = []
    for column in frame.columns.drop(target):
        both = frame[[target, column]].dropna()
        if len(both) < 3 or both[target].nunique() < 2 or both[column].nunique() < 2:
            continue
        result = pearsonr(both[target], both[column])
        found.append(Correlation(str(column), float(result.statistic), float(result.pvalue), len(both)))
    return sorted(found, key=lambda correlation: (-abs(correlation.r), correlation.column))


def anomalies_by_hour(anomalous: pd.Series) -> ChiSquare | None:
    """Whether anomalous minutes (True/False, NA where not observed; UTC index) cluster at some
    hours of the day.

    An hour is expected to hold anomalies in proportion to its observed minutes. Hours are merged
    into blocks of 2, 3, 4, 6, 8 or 12 until every block expects ``MIN_EXPECTED`` anomalies (the
    test does not hold with fewer); None when even halves of the day do not.
    """
    observed_minutes = anomalous.dropna().astype(bool)
    for width in HOUR_BLOCKS:
        block = observed_minutes.index.hour // width
        labels = [f"{first * width:02d}–{(first + 1) * width:02d} h" for first in range(24 // width)]
        counts = observed_minutes.groupby(block).sum().reindex(range(24 // width), fill_value=0)
        minutes = observed_minutes.groupby(block).size().reindex(range(24 // width), fill_value=0)
        question = "Do anomalous minutes cluster at some hours of the day (UTC)?"
        test = _chi_square(
            question, counts.set_axis(labels).astype(float), minutes.set_axis(labels).astype(float)
        )
        if test is not None:
            return test
    return None


def anomalies_by_series(anomalous: pd.DataFrame) -> ChiSquare | None:
    """Whether anomalous minutes (minutes x series: True/False, NA where not observed) fall on some
    series more than others, each expected in proportion to its observed minutes."""
    observed = anomalous.fillna(False).astype(bool).sum().astype(float)
    minutes = anomalous.notna().sum().astype(float)
    return _chi_square("Are anomalous minutes spread evenly over the series?", observed, minutes)


def _chi_square(question: str, observed: pd.Series, weights: pd.Series) -> ChiSquare | None:
    kept = weights > 0
    observed, weights = observed[kept], weights[kept]
    if len(observed) < 2:
        return None
    expected = observed.sum() * weights / weights.sum()
    if (expected < MIN_EXPECTED).any():
        return None
    result = chisquare(observed.to_numpy(), expected.to_numpy())
    return ChiSquare(question, observed, expected, float(result.statistic), float(result.pvalue))


def usable_inputs(frame: pd.DataFrame) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The first column (the target) and the others missing in at most ``MAX_MISSING_SHARE`` of the
    minutes; and the names of those left out."""
    kept = frame.isna().mean() <= MAX_MISSING_SHARE
    kept.iloc[0] = True
    return frame.loc[:, kept], tuple(str(name) for name in frame.columns[~kept.to_numpy()])


def xgboost_importance(
    frame: pd.DataFrame, labels: pd.Series, *, window: int = IMPORTANCE_WINDOW
) -> Importance:
    """XGBoost's gain importance for predicting ``labels`` (1 = anomalous) of ``frame``'s first column
    from the lag features of all its columns, summed per input column.

    Raises ``DetectorError`` when the labels hold a single class among the complete windows.
    """
    inputs, left_out = usable_inputs(frame)
    model = make_detector("xgboost", window=window).fit(inputs, labels=labels)
    windows = int((labels.diff().fillna(labels) == 1).sum())
    features = model.feature_importance()
    columns = list(inputs.columns)
    owner = {name: columns[position % len(columns)] for position, name in enumerate(model.feature_names())}
    by_input = features.groupby(features.index.map(owner)).sum().sort_values(ascending=False)
    return Importance(
        method="XGBoost gain",
        description=(
            f"An XGBoost classifier learned the labelled anomalies of {columns[0]} from the last {window} "
            "minutes of every input; an input's importance is its share of the trees' total gain "
            f"(the seed's plot_importance), summed over its lags. It learned from {windows} labelled "
            f"window(s), {int(labels.sum())} minutes: with few windows it describes them more than a rule."
        ),
        by_input=by_input.rename("importance"),
        features=features,
        left_out=left_out,
    )


def isolation_forest_importance(
    frame: pd.DataFrame,
    *,
    window: int = IMPORTANCE_WINDOW,
    max_rows: int = PERMUTATION_ROWS,
    repeats: int = PERMUTATION_REPEATS,
    random_state: int = 0,
) -> Importance:
    """Permutation importance of an isolation forest on the lag features of all of ``frame``'s columns.

    Without labels there is nothing to predict; what can be measured is what the forest's anomaly
    score (``-score_samples``, about 0.5 for ordinary minutes) depends on: each input's lag
    features are shuffled together across minutes, and its importance is how far each minute's
    score moves, on average over the minutes and ``repeats`` shuffles. (The mean score itself
    hardly moves: a shuffle keeps an input's values, it only deals them to other minutes.) An
    input the forest ignores, or that never changes, leaves every score where it was: 0.
    """
    inputs, left_out = usable_inputs(frame)
    features = lag_features(inputs.ffill(limit=window).to_numpy(), window, relative=True, differences=False)
    complete = features[~np.isnan(features).any(axis=1)]
    if len(complete) < 2 * window:
        raise DetectorError(
            f"isolation forest importance: only {len(complete)} complete windows of {window} minutes"
        )
    rows = complete[:: -(-len(complete) // max_rows)]
    forest = IsolationForest(random_state=random_state).fit(rows)
    scores = forest.score_samples(rows)
    rng = np.random.default_rng(random_state)
    columns = list(inputs.columns)
    owner = np.arange(rows.shape[1]) % len(columns)
    moves = {}
    for position, column in enumerate(columns):
        block = owner == position
        shuffles = []
        for _ in range(repeats):
            shuffled = rows.copy()
            shuffled[:, block] = rows[rng.permutation(len(rows))][:, block]
            shuffles.append(np.abs(forest.score_samples(shuffled) - scores).mean())
        moves[column] = float(np.mean(shuffles))
    by_input = pd.Series(moves, name="importance").sort_values(ascending=False)
    return Importance(
        method="Isolation forest permutation importance",
        description=(
            f"No labelled anomalies of {columns[0]} in this range to learn from: an "
            f"isolation forest was fitted on the last {window} minutes of every input, and an input's "
            "importance is how far a minute's anomaly score moves, on average, when that input's values "
            f"are shuffled across minutes ({repeats} shuffles of {len(rows)} minutes)."
        ),
        by_input=by_input,
        features=pd.Series(dtype=float, name="importance"),
        left_out=left_out,
    )


def feature_importance(frame: pd.DataFrame, labels: pd.Series | None) -> Importance:
    """XGBoost's importance when ``labels`` of the first column hold both classes, else the isolation
    forest's permutation importance."""
    if labels is not None and labels.nunique() == 2:
        try:
            return xgboost_importance(frame, labels)
        except DetectorError:
            pass  # a single class among the complete windows: no supervised model to ask
    return isolation_forest_importance(frame)
