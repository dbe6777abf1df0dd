"""Writing generated files reproducibly and atomically."""

from __future__ import annotations

import collections
import gzip
import json
import os
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

# Generated logs are large and compress about as well at level 1; speed matters more here.
GZIP_LEVEL = 1


class GzipWriter:
    """Writes gzip files on a background thread while the caller formats the next chunk or file.

    Files are reproducible (no file name, mtime 0 in the gzip header) and appear under their
    name only when complete. Compression (zlib releases the GIL) is the slowest step of log
    generation; overlapping it with formatting nearly halves the time. At most `in_flight`
    chunks wait to be compressed, which bounds memory.
    """

    def __init__(self, in_flight: int = 3):
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gzip")
        self._pending: collections.deque[Future] = collections.deque()
        self._in_flight = in_flight
        # Touched only by the single worker (which runs submissions in order), or after it stopped.
        self._open: dict[Path, tuple[BinaryIO, gzip.GzipFile]] = {}

    def __enter__(self) -> GzipWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ):
        try:
            if error is None:
                self.wait()
        finally:
            self._thread.shutdown(wait=True, cancel_futures=True)
            for path, (raw, _) in self._open.items():
                raw.close()
                _partial(path).unlink(missing_ok=True)

    def write(self, path: Path, chunks: Iterable[bytes | memoryview]) -> None:
        """Queue `chunks` to be written to `path` as one gzip member."""
        self._submit(self._start, path)
        for chunk in chunks:
            self._submit(self._append, path, chunk)
        self._submit(self._finish, path)

    def wait(self) -> None:
        """Block until every queued file is written; raise the first error."""
        while self._pending:
            self._pending.popleft().result()

    def _submit(self, task: Callable[..., None], *args: Any) -> None:
        self._pending.append(self._thread.submit(task, *args))
        while len(self._pending) > self._in_flight:
            self._pending.popleft().result()

    def _start(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        raw = open(_partial(path), "wb")  # noqa: SIM115 - closed in _finish or __exit__
        self._open[path] = (
            raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=GZIP_LEVEL),
        )

    def _append(self, path: Path, chunk: bytes | memoryview) -> None:
        self._open[path][1].write(chunk)

    def _finish(self, path: Path) -> None:
        raw, out = self._open.pop(path)
        out.close()  # writes the gzip trailer; leaves `raw` open
        raw.close()
        os.replace(_partial(path), path)


def _partial(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def write_json(path: Path, document: Any, indent: int | None = None) -> None:
    """Write `document` as JSON, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial(path)
    partial.write_text(json.dumps(document, indent=indent) + "\n")
    os.replace(partial, path)
