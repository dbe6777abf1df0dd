"""Label windows: NAB's ``combined_windows.json`` format, in the lake and on a frame's rows.

A label set lives at ``labels/<set>/combined_windows.json``: ``{series: [[start, end], ...]}`` with
inclusive UTC bounds written ``YYYY-MM-DD HH:MM:SS.ffffff``. The corpus import writes one set per
corpus, the demo the generator's; training and selection read every set.
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path

import numpy as np
import pandas as pd

from passion_tasks.lake import Lake, datasets

WINDOWS_FILE = "combined_windows.json"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"

Window = tuple[pd.Timestamp, pd.Timestamp]


def set_path(label_set: str, name: str = WINDOWS_FILE) -> str:
    """Where a label set's file lives in the lake, e.g. ``labels/nab/combined_windows.json``."""
    return posixpath.join(datasets.LABELS, label_set, name)


def parse_windows(raw: dict[str, list[list[str]]]) -> dict[str, list[Window]]:
    """``combined_windows.json`` content as UTC timestamp pairs, inclusive."""
    return {
        series: [(parse_time(start), parse_time(end)) for start, end in windows]
        for series, windows in raw.items()
    }


def format_time(ts: np.datetime64 | pd.Timestamp) -> str:
    return pd.Timestamp(ts).strftime(TIME_FORMAT)


def parse_time(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def label_windows(lake: Lake) -> dict[str, list[Window]]:
    """Every labelled window of every label set in the lake, by series."""
    windows: dict[str, list[Window]] = {}
    for relative in lake.list_files(datasets.LABELS):
        if posixpath.basename(relative) == WINDOWS_FILE:
            for series, pairs in parse_windows(json.loads(lake.read_bytes(relative))).items():
                windows.setdefault(series, []).extend(pairs)
    return windows


def store_label_windows(lake: Lake, label_set: str, windows_file: Path) -> str:
    """Copy a ``combined_windows.json`` (e.g. the generator's) into the lake as ``label_set``."""
    data = json.loads(Path(windows_file).read_text())
    return lake.write_text(set_path(label_set), json.dumps(data, indent=1, sort_keys=True))


def labels_on(index: pd.DatetimeIndex, windows: list[Window]) -> pd.Series:
    """1 inside any of ``windows`` (inclusive), else 0, on ``index``."""
    labels = np.zeros(len(index), dtype=np.int8)
    for start, end in windows:
        labels[(index >= start) & (index <= end)] = 1
    return pd.Series(labels, index=index, name="label")
