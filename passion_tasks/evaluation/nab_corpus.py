"""NAB's corpus, application profiles and thresholds, and a detector's results folder, read and checked.

The layout is numenta/NAB's: ``data/<category>/<file>.csv``, ``labels/combined_windows.json``,
``config/profiles.json``, ``config/thresholds.json``, and a detector's per-row outputs in
``results/<detector>/<category>/<detector>_<file>.csv``. Files are named by their path under ``data/``
(``realKnownCause/nyc_taxi.csv``), as NAB's label and result files name them.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from passion_tasks import config
from passion_tasks.corpora import reference
from passion_tasks.errors import UsageError

LABELS = Path("labels") / "combined_windows.json"
PROFILES = Path("config") / "profiles.json"


class NabError(UsageError):
    """NAB input that cannot be scored: a missing file, mismatching timestamps, a bad anomaly score."""


@dataclass(frozen=True)
class Profile:
    """An application profile: weights of a true positive, a false positive and a missed window (A_FN).

    NAB's ``tnWeight`` is left out: its sweeper never reads it, true negatives score 0.
    """

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


@dataclass(frozen=True)
class DataFile:
    """One corpus file: its timestamps, its windows and its probationary period.

    ``windows`` is an ``(n, 2)`` integer array of inclusive ``[first row, last row]`` ranges, in
    order and disjoint, as NAB's labeller leaves them.
    """

    name: str
    timestamps: np.ndarray
    windows: np.ndarray
    probationary_rows: int

    def __post_init__(self) -> None:
        windows = self.windows
        valid = (
            windows.ndim == 2
            and windows.shape[1] == 2
            and (windows[:, 0] <= windows[:, 1]).all()
            and (windows[1:, 0] > windows[:-1, 1]).all()
            and ((windows >= 0) & (windows < self.rows)).all()
        )
        if not valid:
            raise NabError(
                f"{self.name}: windows must be ordered, disjoint row ranges within its {self.rows} rows"
            )

    @property
    def rows(self) -> int:
        return len(self.timestamps)


@dataclass(frozen=True)
class NabCorpus:
    """The benchmark: its files (by name under ``data/``) and its application profiles (by name)."""

    files: dict[str, DataFile]
    profiles: dict[str, Profile]

    @property
    def window_count(self) -> int:
        return sum(len(file.windows) for file in self.files.values())


def probationary_length(rows: int) -> int:
    """NAB's probationary period: rows ``i < min(floor(0.15 N), 750)`` are not scored (nab/util.py)."""
    return min(math.floor(reference.NAB_PROBATION_FRACTION * rows), reference.NAB_PROBATION_CAP)


def nab_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The NAB folder: ``explicit``, else ``nab`` in the reference data."""
    return Path(explicit).expanduser().resolve() if explicit else config.reference_data() / "nab"


def load_corpus(root: str | os.PathLike[str] | None = None) -> NabCorpus:
    """NAB's 58 files with their scoring windows (``labels/combined_windows.json``) and profiles."""
    root = nab_root(root)
    shipped = reference.read_nab(root)
    files = {}
    for series in shipped.series:
        name = series.name.removeprefix("nab/") + ".csv"
        windows = _window_rows(series.ts, shipped.windows[series.name], name)
        files[name] = DataFile(name, series.ts, windows, probationary_length(len(series.ts)))
    return NabCorpus(files, read_profiles(root / PROFILES))


def read_profiles(path: Path) -> dict[str, Profile]:
    """``config/profiles.json``: ``{profile: {"CostMatrix": {"tpWeight", "fpWeight", "fnWeight", ...}}}``."""
    profiles = {}
    for name, entry in _read_json(path).items():
        try:
            weights = entry["CostMatrix"]
            profiles[name] = Profile(
                name, float(weights["tpWeight"]), float(weights["fpWeight"]), float(weights["fnWeight"])
            )
        except (KeyError, TypeError, ValueError):
            raise NabError(f"{path}: profile {name!r} lacks a CostMatrix with tp/fp/fn weights") from None
    return profiles


def read_thresholds(path: str | os.PathLike[str], detector: str) -> dict[str, float]:
    """One detector's thresholds per profile from NAB's ``{detector: {profile: {"threshold": t}}}``."""
    shipped = _read_json(Path(path))
    if detector not in shipped:
        raise NabError(f"{path} has no thresholds for detector {detector!r} (it has {sorted(shipped)})")
    try:
        return {profile: float(entry["threshold"]) for profile, entry in shipped[detector].items()}
    except (KeyError, TypeError, ValueError):
        raise NabError(f"{path}: detector {detector!r} needs a numeric threshold per profile") from None


def result_path(name: str, detector: str) -> Path:
    """Where NAB puts a detector's output for data file ``<category>/<file>.csv``."""
    category, file = name.split("/")
    return Path(category) / f"{detector}_{file}"


def read_results(
    results_dir: str | os.PathLike[str], corpus: NabCorpus, detector: str | None = None
) -> dict[str, np.ndarray]:
    """Each corpus file's ``anomaly_score`` column from a NAB results folder, checked row by row.

    ``detector`` is the file-name prefix; by default the folder's name, as in NAB's ``results/``.
    """
    folder = Path(results_dir)
    detector = detector or folder.resolve().name
    return {
        name: _read_result_file(folder / result_path(name, detector), file)
        for name, file in corpus.files.items()
    }


def first_invalid_score(scores: np.ndarray) -> int | None:
    """The first row whose anomaly score is not a finite number, if any.

    NAB's scorer takes any number (expose's scores are partly negative): scores are only compared with
    thresholds drawn from the scores themselves, so only their order counts. NaN has no place in that
    order (NAB's sort would misplace it silently); ±inf is an overflow rather than a score, and no
    threshold NAB's JSON thresholds file can hold.
    """
    invalid = np.flatnonzero(~np.isfinite(scores))
    return int(invalid[0]) if invalid.size else None


def _read_result_file(path: Path, file: DataFile) -> np.ndarray:
    """The file's anomaly scores, in the data file's row order."""
    if not path.is_file():
        raise NabError(f"missing results file {path} (for data/{file.name})")
    frame = pd.read_csv(path, usecols=lambda column: column in ("timestamp", "anomaly_score"))
    missing = {"timestamp", "anomaly_score"} - set(frame.columns)
    if missing:
        raise NabError(f"{path} lacks the columns {sorted(missing)}")
    rows = _result_rows(path, frame["timestamp"], file)
    scores = pd.to_numeric(frame["anomaly_score"], errors="coerce").to_numpy("float64", na_value=np.nan)
    row = first_invalid_score(scores)
    if row is not None:
        raw = frame["anomaly_score"].iloc[row]
        raise NabError(f"{path}, row {row} (line {row + 2}): anomaly_score {raw} is not a finite number")
    return scores[rows]


def _result_rows(path: Path, column: pd.Series, file: DataFile) -> np.ndarray:
    """Per data-file row, the results row with its timestamp: results rows may come in any order.

    NAB pairs the two files' rows by position (``scorer.scoreCorpus`` takes the timestamps from the
    data file), and scores randomCutForest's results, whose machine_temperature_system_failure rows
    are sorted by timestamp while that data file goes back an hour. Matching by timestamp gives NAB's
    figure there: each row NAB's data files repeat or put out of order lies outside every window and
    weighs -A_FP (tests/test_nab.py), so no pairing among them changes a score.

    Every data-file row needs one results row; the first left without one is named.
    """
    data_rows = _data_rows(path, column, file)
    matched = np.zeros(file.rows, dtype=bool)
    matched[data_rows] = True
    if not matched.all():
        row = int(np.flatnonzero(~matched)[0])
        raise NabError(
            f"{path} has no row for {pd.Timestamp(file.timestamps[row])}, row {row} (line {row + 2}) of "
            f"data/{file.name} ({len(data_rows)} rows for its {file.rows})"
        )
    rows = np.empty(file.rows, dtype=np.int64)
    rows[data_rows] = np.arange(len(data_rows))
    return rows


def _data_rows(path: Path, column: pd.Series, file: DataFile) -> np.ndarray:
    """Per results row, the data-file row with its timestamp.

    NAB's data files repeat some timestamps (daylight-saving hours): results rows sharing one take its
    data rows in turn, first to first, so results in the data file's order keep every row where it is.
    Refused, naming the results row: a timestamp the data file does not have, or one repeated more
    often than there.
    """
    stamps = _parsed_timestamps(path, column)
    order = np.argsort(file.timestamps, kind="stable")
    ranked = file.timestamps[order]
    first = np.searchsorted(ranked, stamps, side="left")
    count = np.searchsorted(ranked, stamps, side="right") - first
    absent = np.flatnonzero(count == 0)
    if absent.size:
        _refuse_row(path, column, absent[0], f"is not a timestamp of data/{file.name}")
    turn = _occurrences(stamps)
    repeated = np.flatnonzero(turn >= count)
    if repeated.size:
        row = repeated[0]
        earlier = int(np.flatnonzero(stamps == stamps[row])[0])
        times = f", more often than data/{file.name} has it ({count[row]})" if count[row] > 1 else ""
        _refuse_row(path, column, row, f"repeats row {earlier} (line {earlier + 2}){times}")
    return order[first + turn]


def _parsed_timestamps(path: Path, column: pd.Series) -> np.ndarray:
    """The results' timestamps, as naive UTC like the data file's; one that cannot be read is refused."""
    parsed = pd.to_datetime(column, utc=True, format="ISO8601", errors="coerce")
    stamps = parsed.dt.tz_convert(None).to_numpy("datetime64[ms]")
    unreadable = np.flatnonzero(np.isnat(stamps))
    if unreadable.size:
        _refuse_row(path, column, unreadable[0], "is not a date and time")
    return stamps


def _occurrences(stamps: np.ndarray) -> np.ndarray:
    """Per entry, how many earlier entries have the same timestamp: 0 for its first, 1 for its second..."""
    order = np.argsort(stamps, kind="stable")
    ranked = stamps[order]
    starts = np.flatnonzero(np.append(True, ranked[1:] != ranked[:-1]))
    run_lengths = np.diff(np.append(starts, len(ranked)))
    turn = np.empty(len(stamps), dtype=np.int64)
    turn[order] = np.arange(len(ranked)) - np.repeat(starts, run_lengths)
    return turn


def _refuse_row(path: Path, column: pd.Series, row: int, why: str) -> NoReturn:
    raise NabError(f"{path}, row {row} (line {row + 2}): timestamp {column.iloc[row]!r} {why}")


def _window_rows(timestamps: np.ndarray, windows: list[tuple[Any, Any]], name: str) -> np.ndarray:
    """Windows as row ranges; both bounds must be timestamps of the file (nab/labeler.py getWindows)."""
    bounds = np.array(windows, dtype="datetime64[ms]").reshape(-1, 2)
    rows = np.searchsorted(timestamps, bounds)
    found = (rows < len(timestamps)) & (timestamps[np.minimum(rows, len(timestamps) - 1)] == bounds)
    if not found.all():
        missing = pd.Timestamp(bounds[~found][0])
        raise NabError(f"{LABELS}: window bound {missing} of {name} is not a timestamp of data/{name}")
    return rows


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise NabError(f"missing file {path}")
    return json.loads(path.read_text(encoding="utf-8"))
