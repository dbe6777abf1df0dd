"""A day's leaf written by batches: each batch adds one file, and the manifest says whose rows it holds.

Scoring writes a day as many batches (a mapped task each, or one series re-scored by hand). One leaf
per series made a day of 15,000 series 30,000 objects; one file per batch makes it as many files as
batches. The leaf's manifest names, for each file, the members it holds (the values of a column, such
as ``series``, or a minute of ``ts``) and its rows::

    {"files": [...], "rows": N, "parts": {"part-....parquet": {"rows": n, "members": {"cpu": 1440, ...}}}}

``replace_members`` writes a batch: its rows replace every earlier row of its members, in one
conditional write of the manifest, so a reader sees the day before the batch or after it, never half
of it. A file left with no member (its rows all replaced, or an empty batch's) leaves the manifest,
but for the newest batch's own, which keeps the day's columns readable.
A file that held other members too is rewritten without the replaced ones first; every file a manifest
names holds exactly its members' rows, so a reader outside Passion reads the files as they are.
Batches of one day commit concurrently: a commit that finds another one's manifest merges onto it and
tries again.
"""

from __future__ import annotations

import datetime as dt
import json
import posixpath
import random
import time
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from passion_tasks.lake.store import MANIFEST, Day, Lake, LakeError, LeafFile, Partition

#: The manifest's key for what each file holds.
PARTS = "parts"
#: Commits of one batch before it gives up: each conflict is another batch of the day committing.
MERGE_ATTEMPTS = 50
#: The longest pause between two attempts, in seconds; pauses are random so that batches spread out.
MAX_PAUSE_S = 0.5


def replace_members(
    lake: Lake,
    dataset: str,
    day: Day,
    table: pa.Table,
    *,
    column: str,
    members: Iterable[str],
    schema: pa.Schema,
) -> Partition:
    """Replace every row of ``members`` (values of ``column``) in the day's leaf by ``table``'s rows,
    atomically. A member with no row in ``table`` is left with none: its earlier rows go."""
    replaced = frozenset(members)
    present = set(member_names(table[column])) if table.num_rows else set()
    if strangers := present - replaced:
        raise LakeError(f"rows of {sorted(strangers)[:5]} are not among the members the batch replaces")
    leaf = lake.leaf(dataset, day)
    path = posixpath.join(leaf, MANIFEST)
    started_at = dt.datetime.now(dt.UTC)
    # A batch with no rows writes its empty file too: readers of a day take the columns from its files.
    own = {_write(lake, dataset, day, table, schema): _part(table, column)}
    rewritten: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}
    for attempt in range(MERGE_ATTEMPTS):
        base = lake.versions.read(path)
        current = json.loads(base.data) if base.data is not None else {PARTS: {}}
        if PARTS not in current:
            raise LakeError(f"{lake.uri(leaf)} was written whole, not by batches: its members are unknown")
        parts: dict[str, Any] = {}
        for name, part in current[PARTS].items():
            kept = tuple(sorted(set(part["members"]) - replaced))
            if kept and len(kept) == len(part["members"]):
                parts[name] = part
            elif kept:
                if (name, kept) not in rewritten:
                    rewritten[name, kept] = _without(lake, dataset, day, name, column, kept, schema)
                parts.update(rewritten[name, kept])
        parts.update(own)
        manifest = {
            "files": sorted(parts),
            "rows": sum(part["rows"] for part in parts.values()),
            PARTS: parts,
            "started_at": started_at.isoformat(),
            "committed_at": dt.datetime.now(dt.UTC).isoformat(),
            "meta": {},
        }
        if lake.versions.write_if(path, json.dumps(manifest, indent=1).encode("utf-8"), base.version):
            return lake._partition_from(leaf, manifest)
        time.sleep(random.uniform(0, MAX_PAUSE_S * (attempt + 1) / MERGE_ATTEMPTS))
    raise LakeError(f"{lake.uri(leaf)}: {MERGE_ATTEMPTS} commits in a row conflicted with other batches")


def member_names(values: pa.Array | pa.ChunkedArray) -> list[str]:
    """The distinct members among ``values``, as the manifest names them: a value as Arrow casts it to
    a string (a minute of a ``ts`` column: ``2026-10-05 11:23:00.000Z``)."""
    return pc.unique(values.cast(pa.string())).to_pylist()


def written_whole(lake: Lake, dataset: str, day: Day) -> bool:
    """Whether the day's leaf exists and was written in one piece (``Lake.partition_writer``), so that
    a batch cannot replace its members."""
    manifest = lake._read_manifest(posixpath.join(lake.leaf(dataset, day), MANIFEST))
    return manifest is not None and PARTS not in manifest


def members(lake: Lake, dataset: str, day: Day) -> dict[str, int]:
    """Each member of the day's leaf with its rows; none when the day has no leaf written by batches."""
    manifest = lake._read_manifest(posixpath.join(lake.leaf(dataset, day), MANIFEST)) or {}
    return {
        member: rows for part in manifest.get(PARTS, {}).values() for member, rows in part["members"].items()
    }


def _part(table: pa.Table, column: str) -> dict[str, Any]:
    counts = pc.value_counts(table[column].cast(pa.string())).to_pylist()
    return {
        "rows": table.num_rows,
        "members": {
            count["values"]: count["counts"] for count in sorted(counts, key=lambda count: count["values"])
        },
    }


def _write(lake: Lake, dataset: str, day: Day, table: pa.Table, schema: pa.Schema) -> str:
    leaf = lake.leaf(dataset, day)
    lake._ensure_parent(posixpath.join(leaf, MANIFEST))
    file = LeafFile(lake, leaf, schema)
    try:
        file.write(table)
        return file.publish()
    except BaseException:
        file.abort()
        raise


def _without(
    lake: Lake, dataset: str, day: Day, name: str, column: str, kept: tuple[str, ...], schema: pa.Schema
) -> dict[str, Any]:
    """The file ``name`` rewritten with the rows of ``kept`` alone, as a part of the manifest."""
    source = lake._path(posixpath.join(lake.leaf(dataset, day), name))
    dataset_of_file = pads.dataset(source, filesystem=lake.fs, format="parquet")
    table = dataset_of_file.to_table(filter=pc.field(column).cast(pa.string()).isin(list(kept)))
    return {_write(lake, dataset, day, table, schema): _part(table, column)}
