"""The day's HTML report, the exploration page and the figures they share."""

from __future__ import annotations

import posixpath

from passion_tasks.lake import Day, Lake, datasets


def report_path(day: Day) -> str:
    """Where the day's report lives in the lake: ``reports/dt=D/index.html``."""
    return posixpath.join(Lake.leaf(datasets.REPORTS, day), datasets.REPORT_PAGE)
