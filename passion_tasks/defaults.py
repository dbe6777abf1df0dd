"""The defaults every entry point applies: the CLI's options and the DAGs' Params read them here.

Light on purpose (no pandas, no detectors): DAG files import it while they are parsed.
"""

from __future__ import annotations

from typing import Any

#: Days of features a model trains on when no range is given, ending at the last day with features.
LOOKBACK_DAYS = 14
#: Days before a scored day read as the models' context (windows, seasons).
HISTORY_DAYS = 8
#: The detector of unattended daily runs.
BASELINE = "rolling_mad"
#: Parameters a detector runs with unless told otherwise. For the baseline: a deviation must hold for
#: 3 minutes, and the threshold is the 99.95th percentile of the training scores, which tolerates past
#: incidents inside the lookback (the training maximum would be set by them). When it was chosen, on
#: `make demo`'s 14 generated days, it found 7 of the last day's 13 labelled windows on watched series,
#: in 85 events over 212 series; the plain z-score with a training-maximum threshold found 1 of 13
#: among 81 events, most of them one-minute blips. The demo's days follow the date it runs on: on the
#: days up to 2026-12-02 it scored 214 series into 126 events.
DETECTOR_DEFAULTS: dict[str, dict[str, Any]] = {
    "rolling_mad": {"persistence": 3, "threshold": "anomaly_ratio", "threshold_params": {"ratio": 0.0005}},
}


def detector_params(detector: str, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parameters ``detector`` runs with: its defaults, overridden by those ``given``."""
    return {**DETECTOR_DEFAULTS.get(detector, {}), **(given or {})}
