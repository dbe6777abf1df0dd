"""Import the labelled reference corpora into the lake as metric series, with their labels.

``passion import --corpus nab|asd|smd|kpi|nasa-http`` reads a corpus from the reference-data folder
(``config.reference_data()``) and writes:

- its series in the ``metrics`` dataset (long format, ``schemas.METRICS``), one leaf per UTC day
  under ``key={"source": <corpus>}``, so it never collides with the daily server-metrics ingest;
- ``labels/<corpus>/combined_windows.json``: NAB's label format, ``{series: [[start, end], ...]}``
  with inclusive bounds written as ``YYYY-MM-DD HH:MM:SS.ffffff`` (UTC). NAB's windows are kept as
  shipped; point labels (0/1 per row) become one window per contiguous run of 1s;
- ``labels/<corpus>/splits.json``: where each series' training part ends (``train_end``, the first
  timestamp that is *not* training, and ``train_rows``), the rule that put it there and, for the
  multivariate corpora, ``entities`` (``{"omi-1": [series, ...]}``).

Series names are ``<corpus>/<name>``: ``nab/realKnownCause/nyc_taxi``, ``asd/omi-1/m07``,
``smd/machine-1-6/m12``, ``kpi/cpu4``, ``nasa-http/requests``. ASD and SMD metrics are numbered
from 1 (``m01``), as the dimensions of their ``interpretation_label`` files are.

An import replaces the whole corpus in the lake: day leaves of an earlier import that the new one
does not cover are deleted, so the lake always holds exactly what the last import read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from passion_tasks import config
from passion_tasks.corpora import CORPORA
from passion_tasks.corpora.labels import (
    WINDOWS_FILE,
    Window,
    format_time,
    parse_time,
    parse_windows,
    set_path,
)
from passion_tasks.errors import UnknownFormatError, UsageError
from passion_tasks.lake import Lake, datasets, schemas

#: Folder of each corpus under the reference-data root.
FOLDERS = {"nab": "nab", "asd": "asd", "smd": "smd", "kpi": "kpi", "nasa-http": "nasa_http"}

#: What a folder must hold (a glob pattern) to be taken as the corpus itself, so the reference-data
#: root may also point straight at a corpus checkout (e.g. a clone of numenta/NAB) or at a folder of
#: other KPIs than ours.
MARKERS = {
    "nab": "data",
    "asd": "test_label",
    "smd": "test_label",
    "kpi": "*.csv",
    "nasa-http": "requests_per_minute.csv",
}

#: The endings an ASD or SMD file may have: compressed, as in our reference data, or as the
#: InterFusion and OmniAnomaly repositories ship them.
MACHINE_FILE_SUFFIXES = (".txt.gz", ".txt")

#: ASD and SMD rows carry no timestamps: train then test are laid contiguously on a regular grid
#: that starts here.
GRID_EPOCH = np.datetime64("2020-01-01T00:00", "ms")
GRID_STEP = {"asd": np.timedelta64(5, "m"), "smd": np.timedelta64(1, "m")}

#: NAB's probationary period (``nab/util.getProbationPeriod``): rows ``i < min(floor(0.15 N), 750)``.
NAB_PROBATION_FRACTION = 0.15
NAB_PROBATION_CAP = 750

#: KPI has no published split: the first half of each series (30.5 days of its 61) trains.
KPI_TRAIN_FRACTION = 0.5

#: NASA-HTTP trains on July 1995 in the server's local time (EDT, UTC-4); August, with the
#: outage, is the test month.
NASA_TRAIN_END = np.datetime64("1995-08-01T04:00", "ms")


@dataclass(frozen=True)
class ImportReport:
    """What one import wrote.

    ``windows`` counts label windows per series: an ASD or SMD machine's windows count once for each
    of its metrics.
    """

    corpus: str
    series: int
    rows: int
    days: int
    windows: int


@dataclass(frozen=True)
class Series:
    """One series as read: UTC timestamps (``datetime64[ms]``) and float values, in file order."""

    name: str
    ts: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class LabelledCorpus:
    """A corpus read into memory, ready to be written."""

    series: list[Series]
    windows: dict[str, list[tuple[np.datetime64, np.datetime64]]]
    train_rows: dict[str, int]
    rule: str
    entities: dict[str, list[str]] | None = None


# -- public API ----------------------------------------------------------------------------------


def import_corpus(
    lake: Lake, corpus: str, root: Path | None = None, *, entities: Collection[str] | None = None
) -> ImportReport:
    """Read ``corpus`` from the reference data at ``root`` and replace it in ``lake``.

    ``entities`` restricts ASD or SMD to some servers (e.g. ``["machine-1-6"]``); the lake then
    holds only those. Everything is read and checked before anything is written.
    """
    folder = corpus_folder(corpus, root)
    if entities is not None and corpus not in GRID_STEP:
        raise UsageError(f"entities can only be chosen for {' and '.join(GRID_STEP)}, not {corpus}")
    data = read_corpus(corpus, folder, entities)
    rows, days = write_series(lake, corpus, data.series, meta={"corpus": corpus, "read_from": str(folder)})
    write_labels(lake, corpus, data)
    return ImportReport(
        corpus=corpus,
        series=len(data.series),
        rows=rows,
        days=days,
        windows=sum(len(windows) for windows in data.windows.values()),
    )


def load_labels(lake: Lake, corpus: str) -> dict[str, list[Window]]:
    """The label windows of an imported corpus: ``{series: [(start, end), ...]}``, inclusive, UTC."""
    return parse_windows(_read_label_file(lake, corpus, WINDOWS_FILE))


def load_splits(lake: Lake, corpus: str) -> dict[str, Any]:
    """The training split of an imported corpus.

    Keys: ``rule`` (how it was chosen), ``train_end`` (``{series: pd.Timestamp}``, the first
    timestamp that is not training), ``train_rows`` (``{series: int}``, the leading rows that
    train, exact even where a series repeats a timestamp) and, for ASD and SMD, ``entities``.
    """
    splits = _read_label_file(lake, corpus, "splits.json")
    splits["train_end"] = {series: parse_time(ts) for series, ts in splits["train_end"].items()}
    return splits


def labels_path(corpus: str, name: str) -> str:
    """Where a corpus' label file lives in the lake, e.g. ``labels/nab/combined_windows.json``."""
    return set_path(_checked(corpus), name)


def corpus_folder(corpus: str, root: Path | None = None) -> Path:
    """The folder holding ``corpus``: ``<root>/<folder>``, or ``root`` itself if it is that corpus."""
    root = config.reference_data(root)
    folder = root / FOLDERS[_checked(corpus)]
    if folder.is_dir():
        return folder
    if any(root.glob(MARKERS[corpus])):
        return root
    raise UsageError(
        f"no {corpus} data at {folder} (nor a {corpus} checkout at {root}); "
        "point --reference-data or PASSION_REFERENCE_DATA at the reference-data folder"
    )


# -- reading -------------------------------------------------------------------------------------


def read_corpus(corpus: str, folder: Path, entities: Collection[str] | None = None) -> LabelledCorpus:
    if corpus == "nab":
        return read_nab(folder)
    if corpus in GRID_STEP:
        return read_server_machines(corpus, folder, entities)
    if corpus == "kpi":
        return read_kpi(folder)
    return read_nasa_http(folder)


def read_nab(folder: Path) -> LabelledCorpus:
    """NAB's 58 CSVs and its scoring windows; training is the probationary period."""
    files = sorted((folder / "data").glob("*/*.csv"))
    if not files:
        raise UsageError(f"no NAB data files (data/<category>/<file>.csv) under {folder / 'data'}")
    labels_file = folder / "labels" / "combined_windows.json"
    shipped = _read_json(labels_file)
    series, windows, train_rows = [], {}, {}
    for path in files:
        key = f"{path.parent.name}/{path.name}"
        frame = _read_csv(path, ["timestamp", "value"])
        one = Series(f"nab/{key.removesuffix('.csv')}", _utc(frame["timestamp"]), _floats(frame["value"]))
        series.append(one)
        windows[one.name] = [
            (_utc_scalar(start, labels_file), _utc_scalar(end, labels_file))
            for start, end in shipped.get(key, [])
        ]
        train_rows[one.name] = min(math.floor(NAB_PROBATION_FRACTION * len(one.ts)), NAB_PROBATION_CAP)
    rule = "NAB probationary period: rows i < min(floor(0.15 * N), 750) (nab/util.getProbationPeriod)"
    return LabelledCorpus(series, windows, train_rows, rule)


def read_server_machines(
    corpus: str, folder: Path, entities: Collection[str] | None = None
) -> LabelledCorpus:
    """ASD or SMD: per machine, train then test laid on one regular grid; test_label gives windows."""
    available = sorted(
        {
            path.name.removesuffix(suffix)
            for suffix in MACHINE_FILE_SUFFIXES
            for path in (folder / "train").glob(f"*{suffix}")
        }
    )
    if not available:
        raise UsageError(f"no {corpus} training files (<machine>.txt or .txt.gz) under {folder / 'train'}")
    chosen = available if entities is None else list(dict.fromkeys(entities))
    if not chosen:
        raise UsageError(f"no {corpus} entities chosen; {folder / 'train'} has {available}")
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        raise UsageError(f"unknown {corpus} entities {unknown}; {folder / 'train'} has {available}")
    series, windows, train_rows, members = [], {}, {}, {}
    for entity in chosen:
        train = _read_matrix(_machine_file(folder / "train", entity))
        test = _read_matrix(_machine_file(folder / "test", entity))
        labels = _read_point_labels(_machine_file(folder / "test_label", entity), len(test))
        if train.shape[1] != test.shape[1]:
            raise UnknownFormatError(
                f"{corpus} {entity}: train has {train.shape[1]} metrics, test {test.shape[1]}"
            )
        values = np.concatenate([train, test])
        ts = GRID_EPOCH + np.arange(len(values)) * GRID_STEP[corpus]
        entity_windows = _windows_of_runs(np.concatenate([np.zeros(len(train), int), labels]), ts)
        names = [f"{corpus}/{entity}/m{metric:02d}" for metric in range(1, values.shape[1] + 1)]
        for column, name in enumerate(names):
            series.append(Series(name, ts, values[:, column]))
            # The labels mark the machine, not a metric: every metric of it carries them.
            windows[name] = entity_windows
            train_rows[name] = len(train)
        members[entity] = names
    step_minutes = int(GRID_STEP[corpus] / np.timedelta64(1, "m"))
    rule = (
        f"{corpus}: train file, then test file, on a {step_minutes}-minute grid from "
        f"{GRID_EPOCH.astype('datetime64[m]')}Z; training ends where the test file begins"
    )
    return LabelledCorpus(series, windows, train_rows, rule, entities=members)


def read_kpi(folder: Path) -> LabelledCorpus:
    """The AIOps KPIs: ``timestamp,value,label`` (unix seconds); the first half of each trains."""
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise UsageError(f"no KPI files (<name>.csv with timestamp,value,label) in {folder}")
    series, windows, train_rows = [], {}, {}
    for path in files:
        frame = _read_csv(path, ["timestamp", "value", "label"])
        ts = frame["timestamp"].to_numpy("int64").astype("datetime64[s]").astype("datetime64[ms]")
        one = Series(f"kpi/{path.stem}", ts, _floats(frame["value"]))
        series.append(one)
        windows[one.name] = _windows_of_runs(frame["label"].to_numpy("int64"), ts)
        train_rows[one.name] = math.floor(KPI_TRAIN_FRACTION * len(ts))
    rule = f"kpi: the first {KPI_TRAIN_FRACTION:.0%} of each series' rows"
    return LabelledCorpus(series, windows, train_rows, rule)


def read_nasa_http(folder: Path) -> LabelledCorpus:
    """Requests per minute; minutes outside the trace (``in_trace=0``) were not observed: no row."""
    path = folder / "requests_per_minute.csv"
    frame = _read_csv(path, ["timestamp", "requests", "in_trace", "outage"])
    ts = _utc(frame["timestamp"])
    observed = frame["in_trace"].to_numpy("int64") == 1
    one = Series("nasa-http/requests", ts[observed], _floats(frame["requests"])[observed])
    windows = {one.name: _windows_of_runs(frame["outage"].to_numpy("int64"), ts)}
    train_rows = {one.name: int(np.count_nonzero(one.ts < NASA_TRAIN_END))}
    rule = "nasa-http: July 1995 in the server's local time (EDT); training ends 1995-08-01 04:00 UTC"
    return LabelledCorpus([one], windows, train_rows, rule)


def _read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    if not path.is_file():
        raise UsageError(f"missing file {path}")
    frame = pd.read_csv(path)
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise UnknownFormatError(f"{path} lacks the columns {missing} (has {list(frame.columns)})")
    return frame


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise UsageError(f"missing file {path}")
    return json.loads(path.read_text(encoding="utf-8"))


def _machine_file(folder: Path, entity: str) -> Path:
    """``<entity>.txt.gz`` or ``<entity>.txt`` in ``folder``, whichever exists (the first if both)."""
    candidates = [folder / f"{entity}{suffix}" for suffix in MACHINE_FILE_SUFFIXES]
    found = [path for path in candidates if path.is_file()]
    if not found:
        raise UsageError(f"missing file {candidates[0]} (or {candidates[1].name})")
    return found[0]


def _read_matrix(path: Path) -> np.ndarray:
    if not path.is_file():
        raise UsageError(f"missing file {path}")
    return np.loadtxt(path, delimiter=",", ndmin=2)


def _read_point_labels(path: Path, rows: int) -> np.ndarray:
    if not path.is_file():
        raise UsageError(f"missing file {path}")
    labels = np.loadtxt(path, dtype=np.int64, ndmin=1)
    if len(labels) != rows:
        raise UnknownFormatError(f"{path} has {len(labels)} labels for {rows} test rows")
    return labels


def _utc(column: pd.Series) -> np.ndarray:
    """Timestamps as UTC ``datetime64[ms]``; naive ones (NAB's) are taken as UTC."""
    parsed = pd.to_datetime(column, utc=True, format="ISO8601")
    return parsed.dt.tz_convert(None).to_numpy("datetime64[ms]")


def _utc_scalar(text: str, source: Path) -> np.datetime64:
    try:
        return np.datetime64(parse_time(text).tz_localize(None), "ms")
    except ValueError:
        raise UnknownFormatError(f"bad label timestamp {text!r} in {source}") from None


def _floats(column: pd.Series) -> np.ndarray:
    return column.to_numpy("float64", na_value=np.nan)


def _windows_of_runs(labels: np.ndarray, ts: np.ndarray) -> list[tuple[np.datetime64, np.datetime64]]:
    """One inclusive ``(start, end)`` window per contiguous run of 1s in ``labels``."""
    edges = np.diff(np.concatenate([[0], labels != 0, [0]]).astype(np.int8))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return [(ts[start], ts[end]) for start, end in zip(starts, ends, strict=True)]


# -- writing -------------------------------------------------------------------------------------


def write_series(
    lake: Lake, corpus: str, series: list[Series], meta: dict[str, str] | None = None
) -> tuple[int, int]:
    """Write ``series`` as one metrics leaf per UTC day under ``source=<corpus>``; returns (rows, days).

    Leaves of ``corpus`` on days the new series do not reach are deleted.
    """
    key = {"source": corpus}
    ts = np.concatenate([one.ts for one in series])
    values = np.concatenate([one.values for one in series])
    codes = np.repeat(np.arange(len(series), dtype=np.int32), [len(one.ts) for one in series])
    names = pa.array([one.name for one in series], pa.string())
    # A stable sort by day keeps each series' rows in file order within the day.
    order = np.argsort(ts.astype("datetime64[D]"), kind="stable")
    ts, values, codes = ts[order], values[order], codes[order]
    days = ts.astype("datetime64[D]")
    bounds = np.flatnonzero(days[1:] != days[:-1]) + 1
    written = set()
    for start, stop in zip(np.r_[0, bounds], np.r_[bounds, len(ts)], strict=True):
        day = days[start].item()
        table = pa.table(
            {
                "ts": pa.array(ts[start:stop], schemas.TS),
                "source": pa.repeat(corpus, stop - start),
                "series": names.take(pa.array(codes[start:stop])),
                "value": pa.array(values[start:stop], pa.float64(), from_pandas=True),
            },
            schema=schemas.METRICS,
        )
        lake.write_partition(datasets.METRICS, day, table, key=key, meta=meta)
        written.add(day)
    for day in set(lake.partitions(datasets.METRICS)) - written:
        if lake.has_partition(datasets.METRICS, day, key=key):
            lake.delete(Lake.leaf(datasets.METRICS, day, key))
    return len(ts), len(written)


def write_labels(lake: Lake, corpus: str, data: LabelledCorpus) -> None:
    """Write ``combined_windows.json`` and ``splits.json`` for ``corpus``."""
    windows = {
        name: [[format_time(start), format_time(end)] for start, end in pairs]
        for name, pairs in data.windows.items()
    }
    splits: dict[str, Any] = {
        "rule": data.rule,
        "train_end": {
            one.name: format_time(_train_end(one, data.train_rows[one.name])) for one in data.series
        },
        "train_rows": data.train_rows,
    }
    if data.entities is not None:
        splits["entities"] = data.entities
    lake.write_text(labels_path(corpus, WINDOWS_FILE), json.dumps(windows, indent=1))
    lake.write_text(labels_path(corpus, "splits.json"), json.dumps(splits, indent=1))


def _train_end(series: Series, train_rows: int) -> np.datetime64:
    """The first timestamp after training; past the last row if the whole series trains."""
    if train_rows < len(series.ts):
        return series.ts[train_rows]
    return series.ts[-1] + np.timedelta64(1, "ms")


def _read_label_file(lake: Lake, corpus: str, name: str) -> Any:
    path = labels_path(corpus, name)
    if not lake.exists(path):
        raise UsageError(
            f"no {name} for {corpus} at {lake.uri(path)}; run `passion import --corpus {corpus}`"
        )
    return json.loads(lake.read_bytes(path))


def _checked(corpus: str) -> str:
    if corpus not in CORPORA:
        raise UsageError(f"unknown corpus {corpus!r}; choose one of {', '.join(CORPORA)}")
    return corpus
