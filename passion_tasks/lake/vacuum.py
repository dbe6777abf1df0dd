"""Vacuum: remove what killed or superseded writes left in the lake, once nobody can need it.

A commit never deletes the files of the version it replaces (``store``): a reader that read the old
manifest may still be reading them. The vacuum removes them, and crash leftovers, later.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs

from passion_tasks.lake import datasets
from passion_tasks.lake.store import MANIFEST, Lake, is_data_file, is_temporary

#: How long a file no manifest names is kept before the vacuum removes it. A reader that read a
#: manifest just before a commit replaced it may still be reading that version's files, and a writer
#: has written its files but not yet committed them: both live no longer than one Airflow task, and
#: every task's execution_timeout is far below a day.
VACUUM_GRACE = dt.timedelta(hours=24)
#: The model registry's folder: it keeps its own files, which the vacuum leaves alone.
REGISTRY_PREFIX = f"{datasets.MODELS}/"


@dataclass(frozen=True)
class VacuumReport:
    """What ``vacuum`` removed (or would remove, in a dry run) and what it kept for now."""

    removed: tuple[str, ...]
    freed_bytes: int
    kept_recent: int
    dry_run: bool

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        return (
            f"{verb} {len(self.removed)} files ({self.freed_bytes:,} bytes) that no manifest names; "
            f"kept {self.kept_recent} younger than the grace period"
        )


def vacuum(
    lake: Lake,
    prefix: str = "",
    *,
    grace: dt.timedelta = VACUUM_GRACE,
    now: dt.datetime | None = None,
    dry_run: bool = False,
) -> VacuumReport:
    """Remove what failed or superseded writes left under ``prefix``, once it is ``grace`` old.

    That is a local temporary file (a write that was killed), and a partition's data file that its
    leaf's manifest does not name (a write killed before its commit, or a version a later commit
    replaced) when both the file and the leaf's last commit are older than ``grace``: a reader that
    read the manifest before that commit, and a writer that has not committed yet, still need it.
    The model registry (``models/``) keeps its own files and is left alone.
    """
    cutoff = (now or dt.datetime.now(dt.UTC)) - grace
    selector = pafs.FileSelector(lake._path(prefix), recursive=True, allow_not_found=True)
    base = len(lake.root) + 1
    candidates: dict[str, list[pafs.FileInfo]] = {}
    for info in lake.fs.get_file_info(selector):
        relative = info.path[base:]
        if info.type != pafs.FileType.File:
            continue
        if relative.startswith(REGISTRY_PREFIX) and not is_temporary(info.base_name):
            continue
        candidates.setdefault(posixpath.dirname(relative), []).append(info)
    removed, freed, kept = [], 0, 0
    for folder, infos in sorted(candidates.items()):
        manifest = None
        if any(is_data_file(info.base_name) for info in infos):
            manifest = lake._read_manifest(posixpath.join(folder, MANIFEST))
        named = set(manifest.get("files", [])) if manifest else set()
        settled = manifest is None or _committed_at(manifest) < cutoff
        for info in infos:
            leftover = is_temporary(info.base_name) or (
                is_data_file(info.base_name) and info.base_name not in named
            )
            if not leftover:
                continue
            if info.mtime >= cutoff or (is_data_file(info.base_name) and not settled):
                kept += 1
                continue
            if not dry_run:
                with contextlib.suppress(FileNotFoundError):
                    lake.fs.delete_file(info.path)
            removed.append(info.path[base:])
            freed += info.size
    return VacuumReport(tuple(removed), freed, kept, dry_run)


def _committed_at(manifest: Mapping[str, Any]) -> dt.datetime:
    """When the manifest was committed; a manifest that does not say counts as committed just now."""
    try:
        return dt.datetime.fromisoformat(manifest["committed_at"])
    except (KeyError, TypeError, ValueError):
        return dt.datetime.now(dt.UTC)
