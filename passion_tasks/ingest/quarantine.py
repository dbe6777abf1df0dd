"""Rejected lines: where they came from, why, and the line itself, so nothing read is lost."""

from __future__ import annotations

from collections import Counter
from typing import Protocol

import pyarrow as pa

from passion_tasks.lake.schemas import QUARANTINE

#: Single rejected lines are buffered and written this many at a time.
FLUSH_ROWS = 10_000


class TableWriter(Protocol):
    """Where landed rows go: a partition's writer, its row groups, or tables collected for one file."""

    def write(self, table: pa.Table) -> None: ...


class Quarantine:
    """Streams one day's rejected lines into its quarantine partition and counts them by reason."""

    def __init__(self, writer: TableWriter):
        self._writer = writer
        self._pending: dict[str, list] = {name: [] for name in QUARANTINE.names}
        self.counts: Counter[str] = Counter()

    def add(self, source_file: str, line_number: int | None, reason: str, raw: str | None) -> None:
        """Reject one line."""
        for name, value in zip(QUARANTINE.names, (source_file, line_number, reason, raw), strict=True):
            self._pending[name].append(value)
        self.counts[reason] += 1
        if len(self._pending["reason"]) >= FLUSH_ROWS:
            self.flush()

    def add_rows(self, source_file: str, line_numbers: pa.Array, reasons: pa.Array, raw: pa.Array) -> None:
        """Reject many lines of one file at once (arrays of equal length)."""
        self.flush()
        rows = len(reasons)
        counted = reasons.value_counts()
        self.counts.update(
            dict(zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True))
        )
        self._writer.write(
            pa.table(
                [pa.repeat(source_file, rows), line_numbers, reasons, raw.cast(pa.string())],
                schema=QUARANTINE,
            )
        )

    def flush(self) -> None:
        if self._pending["reason"]:
            self._writer.write(pa.table(self._pending, schema=QUARANTINE))
            self._pending = {name: [] for name in QUARANTINE.names}

    @property
    def total(self) -> int:
        return sum(self.counts.values())
