"""Which feature series are watched (trained, scored, alerted on) and which only feed models.

CDN series are watched overall, per edge and per live channel; the finer breakdowns (device, path,
protocol, method) carry a few requests a minute, too noisy to alert on, and reports use them to
explain an incident. Every server metric is watched. The seed's previous-hour open/close/max/min are
model inputs, never watched on their own.
"""

from __future__ import annotations

from collections.abc import Iterable

INPUT_ONLY_SUFFIXES = ("_open", "_close", "_max", "_min")
WATCHED_DIMS = ("", "edge", "channel")


def is_input_only(name: str) -> bool:
    """A model input (a previous-hour feature), not a series of its own."""
    return name.endswith(INPUT_ONLY_SUFFIXES)


def series_dim(name: str) -> str:
    """The dimension of ``metric{dim=value}``, or "" for an overall series."""
    return name.partition("{")[2].partition("=")[0]


def watched_series(names: Iterable[str]) -> list[str]:
    """The watched ones of ``names``, in their order."""
    return [name for name in names if not is_input_only(name) and series_dim(name) in WATCHED_DIMS]
