"""What one ingestion did, for the operator and for the exit code."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from passion_tasks.errors import ExitCode


@dataclass
class IngestReport:
    """One day of one dataset landed: files read, rows landed, lines quarantined, files damaged."""

    day: dt.date
    dataset: str
    files: list[str] = field(default_factory=list)
    formats: Counter[str] = field(default_factory=Counter)
    skipped_files: list[str] = field(default_factory=list)
    rows: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    damaged_files: list[str] = field(default_factory=list)
    location: str = ""
    quarantine_location: str = ""

    @property
    def quarantined_lines(self) -> int:
        return sum(self.quarantined.values())

    @property
    def exit_code(self) -> ExitCode:
        if self.damaged_files:
            return ExitCode.FILES_DAMAGED
        if self.quarantined_lines:
            return ExitCode.LINES_QUARANTINED
        return ExitCode.OK

    def meta(self) -> dict[str, Any]:
        """The counts kept in the landed partition's manifest."""
        return {
            "rows": self.rows,
            "quarantined": dict(sorted(self.quarantined.items())),
            "files": self.files,
            "formats": dict(sorted(self.formats.items())),
            "damaged_files": self.damaged_files,
            "skipped_files": self.skipped_files,
        }

    def summary(self) -> str:
        """One paragraph for a human: what landed where, what was set aside and why."""
        formats = ", ".join(f"{count} {name}" for name, count in sorted(self.formats.items()))
        text = (
            f"{self.day}: landed {self.rows:,} {self.dataset} rows from {len(self.files)} "
            f"file{'s' if len(self.files) != 1 else ''} ({formats or 'none readable'})"
        )
        text += f" in {self.location}." if self.location else "."
        if self.quarantined:
            reasons = ", ".join(f"{reason} {count:,}" for reason, count in self.quarantined.most_common())
            text += (
                f" {self.quarantined_lines:,} lines quarantined ({reasons}) in {self.quarantine_location}."
            )
        else:
            text += " No line was quarantined."
        if self.damaged_files:
            text += f" Damaged files, read up to the damage: {', '.join(self.damaged_files)}."
        if self.skipped_files:
            text += f" Skipped {len(self.skipped_files)} files of another source."
        return text
