"""The defaults every entry point applies: the CLI's options and the DAGs' Params read them here.

Light on purpose (no pandas, no detectors): DAG files import it while they are parsed.
"""

from __future__ import annotations

from typing import Any

#: Days of features a model trains on when no range is given, ending at the last day with features.
LOOKBACK_DAYS = 14
#: Days before a scored day read as the models' context (windows, seasons).
HISTORY_DAYS = 8
#: The trailing means the benchmark's calibration stage reads beside each row, in rows: by default the
#: row alone (``detectors.calibration.scales_surprise``).
CALIBRATION_SCALES: tuple[int, ...] = (1,)
#: A detector that fits any series: the one the tests and benchmarks pin when they need one.
BASELINE = "rolling_mad"
#: Parameters a detector runs with unless told otherwise. The thresholds of unattended runs are false-
#: alarm budgets (``detectors.thresholds.false_alarm_budget_threshold``, 0.1 false incident per series
#: per 30 days): a percentile of the training scores flags a fixed share of every day by construction,
#: and 200 series with one each add up to dozens of false incidents a day. For the rolling MAD, a
#: deviation must also hold for 3 minutes. The count-aware detectors have budget thresholds of their own.
DETECTOR_DEFAULTS: dict[str, dict[str, Any]] = {
    "rolling_mad": {"persistence": 3, "threshold": "false_alarm_budget"},
    "seasonal_naive": {"threshold": "false_alarm_budget"},
}


def detector_params(detector: str, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parameters ``detector`` runs with: its defaults, overridden by those ``given``."""
    return {**DETECTOR_DEFAULTS.get(detector, {}), **(given or {})}
