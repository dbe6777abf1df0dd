"""The rule of days: what a series, or a family of series, does on most training days is how it
behaves, not the week's incidents.

An incident is rare; an origin whose fetches fail for two minutes every day is not. The rate
detector applies the rule to one series (``counts.RateDetector``); training applies it to the
breakdowns of one metric, whose hiccups land on some edge most days and on each edge only now and
then (``models.families``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Departures on more than this share of the training days are how a series (or a family) behaves,
#: not the week's incidents.
USUAL_SHARE_OF_DAYS = 0.5


def on_most_days(rows: np.ndarray, index: pd.DatetimeIndex) -> bool:
    """Whether ``rows`` (a boolean series) fall on more than ``USUAL_SHARE_OF_DAYS`` of the days of
    ``index``."""
    days = index.normalize()
    return days[rows].nunique() > USUAL_SHARE_OF_DAYS * days.nunique()
