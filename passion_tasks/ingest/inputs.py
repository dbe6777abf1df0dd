"""Finding a day's input files and reading them as decompressed bytes, whatever their name says.

An input is a file, a local folder, a ``file://`` URL or an ``s3://bucket/prefix``. Gzip is
recognised by its magic bytes, and a damaged gzip (truncated upload, corrupt block) ends the
stream cleanly after its last complete line, so every good line before the damage is kept.
"""

from __future__ import annotations

import datetime as dt
import io
import posixpath
import re
import zlib
from dataclasses import dataclass
from urllib.parse import quote, urlparse

import pyarrow as pa
import pyarrow.fs as pafs

from passion_tasks.errors import NoInputError
from passion_tasks.lake import S3Options, filesystem_for

GZIP_MAGIC = b"\x1f\x8b"
#: Compressed bytes fed to zlib at a time; on corrupt data at most this much input is replayed.
COMPRESSED_CHUNK = 256 * 1024
#: Replay step after corrupt data: output is recovered up to this many compressed bytes before it.
REPLAY_STEP = 512
#: A "line" longer than this (a binary file has no newlines) is handed out in pieces.
MAX_PARTIAL = 16 * 1024 * 1024
DATE_IN_PATH = re.compile(r"(?<!\d)(\d{4})[-/](\d{2})[-/](\d{2})(?!\d)")


@dataclass(frozen=True)
class InputFile:
    """One input file: where to read it, the name reports and quarantine rows give it, the days its
    path names (below the input folder), and its ``version`` when it was listed (size and
    modification time: a file delivered again, or replaced, has another)."""

    fs: pafs.FileSystem
    path: str
    name: str
    days: frozenset[dt.date] = frozenset()
    version: str = ""

    @property
    def stem(self) -> str:
        """The file name without its extensions (``cif.json.gz`` -> ``cif``)."""
        return posixpath.basename(self.path).split(".")[0]


def days_in_path(path: str) -> frozenset[dt.date]:
    """The days a path names as ``YYYY-MM-DD`` or ``YYYY/MM/DD``."""
    found = set()
    for year, month, day in DATE_IN_PATH.findall(path):
        try:
            found.add(dt.date(int(year), int(month), int(day)))
        except ValueError:
            continue
    return frozenset(found)


def day_files(
    input: str, day: dt.date, *, undated: bool = False, s3: S3Options | None = None
) -> list[InputFile]:
    """The files of ``day`` under ``input``.

    A file input is the day's only file. Below a folder (searched recursively, hidden files and
    ``_``-prefixed markers skipped) the day's files are those whose path below the folder names
    the day; with ``undated``, when no path names it, the files whose path names no day at all
    (files that cover many days).
    """
    fs, root = filesystem_for(input, s3)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise NoInputError(f"no input for {day}: {input} does not exist")
    if info.type == pafs.FileType.File:
        name = _display_name(input, root)
        return [InputFile(fs, root, name, days_in_path(posixpath.basename(root)), _version(info))]
    selector = pafs.FileSelector(root, recursive=True)
    entries = sorted(
        (entry for entry in fs.get_file_info(selector) if entry.type == pafs.FileType.File),
        key=lambda entry: entry.path,
    )
    # Only the part below the input counts: a dated input folder names no file's day.
    files = [
        InputFile(
            fs,
            entry.path,
            _display_name(input, entry.path),
            days_in_path(entry.path[len(root) :]),
            _version(entry),
        )
        for entry in entries
        if not posixpath.basename(entry.path).startswith((".", "_"))
    ]
    chosen = [file for file in files if day in file.days]
    if not chosen and undated:
        chosen = [file for file in files if not file.days]
    if not chosen:
        raise NoInputError(f"no input files for {day} under {input}")
    return chosen


def _version(info: pafs.FileInfo) -> str:
    return f"{info.size}:{info.mtime_ns}"


def _display_name(input: str, path: str) -> str:
    scheme = urlparse(input).scheme
    if scheme == "s3":
        return f"s3://{path}"
    if scheme == "file":
        return "file://" + quote(path)
    return path


class SourceStream(io.RawIOBase):
    """The decompressed bytes of one file, ending cleanly where a damaged gzip stops.

    Only complete lines are handed out while more data may follow. When the gzip is truncated or
    corrupt the stream ends after the last complete line; ``damage`` then says what happened,
    ``tail`` holds the partial line that followed and ``damage_line`` is its 1-based line number.
    """

    def __init__(self, raw: pa.NativeFile):
        super().__init__()
        self._raw = raw
        self._pending = raw.read(COMPRESSED_CHUNK)
        self._decompressor = zlib.decompressobj(wbits=31) if self._pending.startswith(GZIP_MAGIC) else None
        self._ready = bytearray()
        self._partial = bytearray()
        self._finished = False
        self._newlines = 0
        self.damage: str | None = None
        self.damage_line: int | None = None
        self.tail = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._ready and not self._finished:
            self._fill()
        size = min(len(buffer), len(self._ready))
        buffer[:size] = self._ready[:size]
        del self._ready[:size]
        return size

    def close(self) -> None:
        self._raw.close()
        super().close()

    def _fill(self) -> None:
        data = self._pending or self._raw.read(COMPRESSED_CHUNK)
        self._pending = b""
        if self._decompressor is None:
            if data:
                self._take(data)
            else:
                self._finish()
            return
        if not data:
            if self._decompressor.eof and not self._decompressor.unused_data:
                self._finish()
            else:
                self._fail("truncated_gzip")
            return
        self._decompress(data)

    def _decompress(self, data: bytes) -> None:
        while data:
            backup = self._decompressor.copy()
            try:
                self._take(self._decompressor.decompress(data))
            except zlib.error:
                self._take(_replay(backup, data))
                self._fail("corrupt_gzip")
                return
            # A gzip file may hold several members back to back (concatenated logs).
            data = self._decompressor.unused_data if self._decompressor.eof else b""
            if data:
                self._decompressor = zlib.decompressobj(wbits=31)

    def _take(self, data: bytes) -> None:
        if not data:
            return
        cut = data.rfind(b"\n") + 1
        if cut:
            self._newlines += data.count(b"\n", 0, cut)
            self._ready += self._partial
            self._ready += data[:cut]
            self._partial = bytearray(data[cut:])
        else:
            self._partial += data
            if len(self._partial) > MAX_PARTIAL:
                self._ready += self._partial
                self._partial = bytearray()

    def _finish(self) -> None:
        self._ready += self._partial
        self._partial = bytearray()
        self._finished = True

    def _fail(self, damage: str) -> None:
        self.damage, self.damage_line, self.tail = damage, self._newlines + 1, bytes(self._partial)
        self._partial = bytearray()
        self._finished = True


def _replay(decompressor: zlib._Decompress, data: bytes) -> bytes:
    """The output of ``data`` up to the corrupt point, give or take ``REPLAY_STEP`` bytes."""
    recovered = []
    for start in range(0, len(data), REPLAY_STEP):
        try:
            recovered.append(decompressor.decompress(data[start : start + REPLAY_STEP]))
        except zlib.error:
            break
    return b"".join(recovered)


def open_source(file: InputFile, buffer_size: int = 1 << 20) -> io.BufferedReader:
    """A buffered reader of ``file``'s decompressed bytes; ``.raw`` is its :class:`SourceStream`."""
    # compression=None: pyarrow would otherwise guess from the extension; the magic bytes decide.
    return io.BufferedReader(
        SourceStream(file.fs.open_input_stream(file.path, compression=None)), buffer_size
    )


def read_head(file: InputFile, size: int = 64 * 1024) -> bytes:
    """The first ``size`` decompressed bytes of ``file`` (fewer if it is shorter or damaged)."""
    with open_source(file) as stream:
        return stream.read(size)
