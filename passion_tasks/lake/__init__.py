"""The lake: every dataset Passion keeps, in Parquet partitions and named files under one root URL.

- ``store``: the ``Lake`` (local or S3), partitions committed through manifests, blobs;
- ``versioned``: conditional writes, which order concurrent commits;
- ``batches``: a day's leaf written by batches, each replacing its members' rows;
- ``leases``: one run at a time per DAG and day;
- ``vacuum``: removing what killed or superseded writes left;
- ``schemas``: the Arrow schemas of the datasets; ``datasets``: their names and partition keys.

The package itself imports nothing heavy, so ``passion_tasks.lake.datasets`` stays light for the DAG
files; the store's names are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_FROM_STORE = [
    "MANIFEST",
    "Day",
    "Lake",
    "LakeError",
    "ObjectNotFound",
    "PartitionNotFound",
    "PartitionWriter",
    "S3Options",
    "as_day",
    "day_range",
    "filesystem_for",
]
_FROM_VACUUM = ["VACUUM_GRACE", "VacuumReport"]
_LAZY = {
    **dict.fromkeys(_FROM_STORE, "passion_tasks.lake.store"),
    **dict.fromkeys(_FROM_VACUUM, "passion_tasks.lake.vacuum"),
}
__all__ = [*_FROM_STORE, *_FROM_VACUUM]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
