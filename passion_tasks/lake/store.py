"""The lake: Parquet partitions and small blobs under one root URL, local or S3.

Layout: ``<dataset>/dt=YYYY-MM-DD[/<key>=<value>]/part-<token>-<n>.parquet`` plus a
``_manifest.json`` per leaf that names the committed files. Readers go through the manifest, so a
partition changes in one step: data files are written first, each of them atomically (rename on a
local disk, a single completed PUT on S3), then the manifest is replaced in one conditional write.
A failed write leaves the previous version untouched; a re-run replaces the day instead of adding
to it. Files whose names start with ``_`` or ``.`` are skipped by pyarrow's dataset discovery.

Snapshots: a commit never deletes the files of the version it supersedes. A reader that read a
manifest just before a commit can still read every file it names; ``vacuum`` removes such files once
they, and the commit that superseded them, are older than its grace period (``vacuum``).

Concurrent writers of one leaf are ordered (``versioned``): a commit replaces the manifest only if it
is still the one its writer read when it started. On a conflict the run that *started* last wins:
a writer that finds a commit of a run started before it re-applies its own over it; one that finds a
commit of a run started after it steps aside (its files stay unreferenced until vacuumed). Either
way the leaf holds one complete run's rows, the newest run's, and the log says what happened.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import posixpath
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlparse

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from passion_tasks import config
from passion_tasks.errors import ExitCode, PassionError
from passion_tasks.lake.versioned import LOCK_SUFFIX, LocalVersions, S3Versions, Versioned, VersionedStore

MANIFEST = "_manifest.json"
log = logging.getLogger(__name__)
#: The longest path segment the lake writes, in UTF-8 bytes: filesystems stop at 255, and a local
#: write adds a hidden temporary name around the final one.
MAX_SEGMENT_BYTES = 200
#: S3 keys stop at 1,024 bytes; local paths are kept to the same bound so a lake can move between them.
MAX_PATH_BYTES = 1024
#: Requests in flight at once when a remote lake reads or writes many small objects (manifests,
#: promotions, per-series leaves): each waits on a round trip, not on the CPU.
REMOTE_IO_THREADS = 16
#: Commits of one leaf by one writer before it gives up: each conflict means another run committed it.
COMMIT_ATTEMPTS = 10
#: Suffix of a local file being written; one left behind by a killed process is removed by ``vacuum``.
TEMPORARY_SUFFIX = ".tmp"


class LakeError(PassionError):
    """A lake operation that cannot be done: missing partition, bad URL, unreadable object."""


class ObjectNotFound(LakeError):
    """A blob the lake does not hold."""


class PartitionNotFound(LakeError):
    exit_code = ExitCode.NO_INPUT


Day = dt.date | str


def as_day(day: Day) -> dt.date:
    """Accept ``date`` or ``YYYY-MM-DD``; reject anything else with a clear message."""
    if isinstance(day, dt.datetime):
        return day.date()
    if isinstance(day, dt.date):
        return day
    try:
        return dt.date.fromisoformat(str(day))
    except ValueError:
        raise LakeError(f"not a day: {day!r} (expected YYYY-MM-DD)") from None


def day_range(start: Day, end: Day) -> list[dt.date]:
    """Every day from ``start`` to ``end``, both included."""
    first, last = as_day(start), as_day(end)
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


@dataclass(frozen=True)
class S3Options:
    """Connection settings for an S3-protocol store (AWS S3, MinIO, a local test server).

    Unset values fall back to the standard AWS environment variables and credential chain;
    nothing is read from code or written to logs.
    """

    endpoint_url: str | None = None
    region: str | None = None
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls) -> S3Options:
        env = os.environ
        return cls(
            endpoint_url=env.get("PASSION_S3_ENDPOINT_URL")
            or env.get("AWS_ENDPOINT_URL_S3")
            or env.get("AWS_ENDPOINT_URL"),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
        )

    def merged_over(self, other: S3Options) -> S3Options:
        """These options, with unset values taken from ``other``."""
        return S3Options(
            **{name: getattr(self, name) or getattr(other, name) for name in self.__dataclass_fields__}
        )

    def client(self) -> Any:
        """A boto3 S3 client with these settings (pyarrow's filesystem cannot write conditionally)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region or "us-east-1",
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            aws_session_token=self.session_token,
        )

    def filesystem(self) -> pafs.S3FileSystem:
        kwargs: dict[str, Any] = {"region": self.region or "us-east-1"}
        if self.endpoint_url:
            endpoint = urlparse(self.endpoint_url)
            kwargs["endpoint_override"] = endpoint.netloc or endpoint.path
            kwargs["scheme"] = endpoint.scheme or "https"
        if self.access_key:
            kwargs.update(access_key=self.access_key, secret_key=self.secret_key)
            if self.session_token:
                kwargs["session_token"] = self.session_token
        return pafs.S3FileSystem(**kwargs)


def resolved_s3(s3: S3Options | None) -> S3Options:
    """``s3`` with what it leaves unset taken from the environment."""
    return (s3 or S3Options()).merged_over(S3Options.from_env())


def filesystem_for(url: str, s3: S3Options | None = None) -> tuple[pafs.FileSystem, str]:
    """The filesystem and root path of a ``file://``, plain-path or ``s3://`` URL."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        root = unquote(parsed.path) if parsed.scheme else url
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(root))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise LakeError(f"S3 lake URL needs a bucket: {url!r} (expected s3://bucket/prefix)")
        return resolved_s3(s3).filesystem(), f"{parsed.netloc}{parsed.path}".rstrip("/")
    raise LakeError(f"unsupported lake URL {url!r}: use file:///path or s3://bucket/prefix")


@dataclass(frozen=True)
class Partition:
    """One committed leaf: its files, row count and the writer's metadata."""

    dataset: str
    day: dt.date
    key: Mapping[str, str]
    files: tuple[str, ...]
    rows: int
    meta: Mapping[str, Any]


class LeafFile:
    """One Parquet file streamed into a leaf, under its final name once published, named by no manifest
    until a commit names it."""

    def __init__(self, lake: Lake, leaf: str, schema: pa.Schema):
        self._lake, self._leaf, self._schema = lake, leaf, schema
        self.name = f"part-{uuid.uuid4().hex[:12]}-0.parquet"
        self._staging = lake._staging_path(posixpath.join(leaf, self.name))
        self._sink = lake.fs.open_output_stream(self._staging)
        self._writer = pq.ParquetWriter(self._sink, schema, compression="zstd")
        self.rows = 0

    def write(self, data: pa.Table | pa.RecordBatch) -> None:
        if data.num_rows:
            self._writer.write(data.select(self._schema.names).cast(self._schema))
            self.rows += data.num_rows

    def publish(self) -> str:
        """Close the file and make it visible under its final name; returns that name."""
        self._writer.close()
        self._sink.close()
        self._lake._publish(self._staging, posixpath.join(self._leaf, self.name))
        return self.name

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()
        with contextlib.suppress(Exception):
            self._sink.close()
        for path in {self._staging, self._lake._path(posixpath.join(self._leaf, self.name))}:
            with contextlib.suppress(Exception):
                self._lake.fs.delete_file(path)


class PartitionWriter:
    """Streams record batches of one leaf into a Parquet file, committed on ``commit()``."""

    def __init__(self, lake: Lake, leaf: str, schema: pa.Schema, meta: Mapping[str, Any] | None):
        self._lake, self._leaf = lake, leaf
        self.meta: dict[str, Any] = dict(meta or {})
        #: When this run began, and the leaf's manifest as it saw it then: what its commit replaces.
        self.started_at = dt.datetime.now(dt.UTC)
        self._base = lake.versions.read(posixpath.join(leaf, MANIFEST))
        self._file = LeafFile(lake, leaf, schema)

    @property
    def rows(self) -> int:
        return self._file.rows

    def write(self, data: pa.Table | pa.RecordBatch) -> None:
        self._file.write(data)

    def commit(self) -> Partition:
        return self._lake._commit_manifest(
            self._leaf, [self._file.publish()], self.rows, self.meta, self.started_at, self._base
        )

    def abort(self) -> None:
        self._file.abort()


class Lake:
    """Parquet partitions by day and named blobs under one root URL."""

    def __init__(self, url: str | None = None, s3: S3Options | None = None):
        self.url = config.lake_url(url).rstrip("/")
        #: The S3 settings this lake was opened with; ingestion reads ``s3://`` sources with them too.
        self.s3 = s3
        self.fs, self.root = filesystem_for(self.url, s3)
        self.is_local = isinstance(self.fs, pafs.LocalFileSystem)
        self._versions: VersionedStore | None = None

    @property
    def versions(self) -> VersionedStore:
        """Conditional reads and writes of this lake's objects (``versioned``)."""
        if self._versions is None:
            self._versions = LocalVersions(self) if self.is_local else S3Versions(self)
        return self._versions

    def s3_options(self) -> S3Options:
        """The S3 settings this lake uses, the environment's filling what it was not given."""
        return resolved_s3(self.s3)

    def __repr__(self) -> str:
        return f"Lake({self.url!r})"

    # -- paths ---------------------------------------------------------------------------------

    def _path(self, relative: str) -> str:
        if not relative:
            return self.root
        path = posixpath.join(self.root, relative)
        # Names come from data (series, dimension values): one that no store can hold is refused here,
        # as a LakeError naming it, instead of an OSError from deep inside a write or a listing.
        longest = max(len(segment.encode()) for segment in relative.split("/"))
        if longest > MAX_SEGMENT_BYTES:
            raise LakeError(
                f"cannot store {relative[:120]!r}...: a lake path segment may have {MAX_SEGMENT_BYTES} "
                f"bytes, this one has {longest}"
            )
        if len(path.encode()) > MAX_PATH_BYTES:
            raise LakeError(
                f"cannot store {relative[:120]!r}...: a lake path may have {MAX_PATH_BYTES} bytes, this one "
                f"has {len(path.encode())}"
            )
        return path

    def _staging_path(self, relative: str) -> str:
        # Local files are written beside their final name, hidden (a leading dot, which pyarrow's and
        # DuckDB's folder readers skip) until renamed; an S3 object becomes visible only when its
        # upload completes, so it is written in place.
        if not self.is_local:
            return self._path(relative)
        folder, name = posixpath.split(relative)
        return self._path(posixpath.join(folder, f".{name}.{uuid.uuid4().hex[:8]}{TEMPORARY_SUFFIX}"))

    def _publish(self, staging: str, relative: str) -> None:
        if self.is_local:
            self.fs.move(staging, self._path(relative))

    def uri(self, relative: str = "") -> str:
        """A URL for humans and other tools: ``file:///...`` or ``s3://bucket/...``."""
        path = posixpath.join(self.root, relative) if relative else self.root
        if self.is_local:
            return "file://" + quote(path, safe="/=:@,+")
        return "s3://" + path

    @staticmethod
    def leaf(dataset: str, day: Day, key: Mapping[str, str] | None = None) -> str:
        parts = [dataset, f"dt={as_day(day).isoformat()}"]
        parts += [f"{name}={_quote(value)}" for name, value in (key or {}).items()]
        return posixpath.join(*parts)

    # -- blobs ---------------------------------------------------------------------------------

    def write_bytes(self, relative: str, data: bytes) -> str:
        """Write one object atomically; returns its URI."""
        self._ensure_parent(relative)
        staging = self._staging_path(relative)
        try:
            with self.fs.open_output_stream(staging) as out:
                out.write(data)
            self._publish(staging, relative)
        except BaseException:
            if self.is_local:
                with contextlib.suppress(Exception):
                    self.fs.delete_file(staging)
            raise
        return self.uri(relative)

    def write_text(self, relative: str, text: str) -> str:
        return self.write_bytes(relative, text.encode("utf-8"))

    def read_bytes(self, relative: str) -> bytes:
        """An object's bytes, read whole (``VersionedStore.data``): objects that runs replace
        (manifests, promotions, live state) are never seen half old and half new."""
        data = self.versions.data(relative)
        if data is None:
            raise ObjectNotFound(f"{self.uri(relative)} does not exist")
        return data

    def exists(self, relative: str) -> bool:
        return self.fs.get_file_info(self._path(relative)).type != pafs.FileType.NotFound

    def list_files(self, prefix: str) -> list[str]:
        """Relative paths of every file under ``prefix`` (recursive, sorted), but files being written
        and the lock files of conditional writes."""
        selector = pafs.FileSelector(self._path(prefix), recursive=True, allow_not_found=True)
        base = len(self.root) + 1
        return sorted(
            info.path[base:]
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.File and not is_lake_internal(info.base_name)
        )

    def delete(self, relative: str) -> None:
        """Delete a file or a whole folder; missing paths are fine."""
        path = self._path(relative)
        info = self.fs.get_file_info(path)
        if info.type == pafs.FileType.Directory:
            self.fs.delete_dir(path)
        elif info.type == pafs.FileType.File:
            self.fs.delete_file(path)

    def _ensure_parent(self, relative: str) -> None:
        if self.is_local:
            self.fs.create_dir(posixpath.dirname(self._path(relative)), recursive=True)

    # -- partitions ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def partition_writer(
        self,
        dataset: str,
        day: Day,
        schema: pa.Schema,
        *,
        key: Mapping[str, str] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Iterator[PartitionWriter]:
        """Stream a leaf's rows; it replaces the previous version only if the block succeeds."""
        leaf = self.leaf(dataset, day, key)
        self._ensure_parent(posixpath.join(leaf, MANIFEST))
        writer = PartitionWriter(self, leaf, schema, meta)
        try:
            yield writer
        except BaseException:
            writer.abort()
            raise
        try:
            writer.commit()
        except BaseException:
            writer.abort()
            raise

    def write_partition(
        self,
        dataset: str,
        day: Day,
        table: pa.Table,
        *,
        schema: pa.Schema | None = None,
        key: Mapping[str, str] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Partition:
        """Replace a day's leaf with ``table`` atomically."""
        with self.partition_writer(dataset, day, schema or table.schema, key=key, meta=meta) as writer:
            writer.write(table)
        return self.partition(dataset, day, key=key)

    def _commit_manifest(
        self,
        leaf: str,
        files: list[str],
        rows: int,
        meta: Mapping[str, Any],
        started_at: dt.datetime,
        base: Versioned,
    ) -> Partition:
        """Replace the leaf's manifest by one naming ``files``, if no newer run committed meanwhile."""
        path = posixpath.join(leaf, MANIFEST)
        manifest = {
            "files": files,
            "rows": rows,
            "commit": uuid.uuid4().hex,
            "started_at": started_at.isoformat(),
            "meta": dict(meta),
        }
        for _ in range(COMMIT_ATTEMPTS):
            replaced = json.loads(base.data) if base.data is not None else None
            manifest["replaces"] = replaced.get("commit") if replaced else None
            manifest["committed_at"] = dt.datetime.now(dt.UTC).isoformat()
            encoded = json.dumps(manifest, indent=1, default=str).encode("utf-8")
            if self.versions.write_if(path, encoded, base.version):
                return self._partition_from(leaf, manifest)
            base = self.versions.read(path)
            current = json.loads(base.data) if base.data is not None else None
            if current is not None and _started_at(current) >= started_at:
                log.warning(
                    "%s: a run that started after this one (at %s) committed it first; this run's rows "
                    "are not committed",
                    self.uri(leaf),
                    current.get("started_at"),
                )
                return self._partition_from(leaf, current)
            log.warning(
                "%s: another run committed it while this one was writing; this run started later, so its "
                "rows replace that run's (commit %s)",
                self.uri(leaf),
                current.get("commit") if current else None,
            )
        raise LakeError(f"{self.uri(leaf)}: {COMMIT_ATTEMPTS} commits in a row conflicted with other runs")

    def _read_manifest(self, relative: str) -> dict[str, Any] | None:
        data = self.versions.data(relative)
        return json.loads(data) if data is not None else None

    def _partition_from(self, leaf: str, manifest: Mapping[str, Any]) -> Partition:
        parts = leaf.split("/")
        dt_index = next(i for i, part in enumerate(parts) if part.startswith("dt="))
        key = dict(_split_key(part) for part in parts[dt_index + 1 :])
        return Partition(
            dataset="/".join(parts[:dt_index]),
            day=as_day(parts[dt_index][3:]),
            key=key,
            files=tuple(posixpath.join(leaf, name) for name in manifest["files"]),
            rows=int(manifest["rows"]),
            meta=manifest.get("meta", {}),
        )

    def leaves(self, dataset: str, day: Day, key: Mapping[str, str] | None = None) -> list[Partition]:
        """The committed leaves of a day (all of them, or those matching ``key``)."""
        paths = [
            path
            for path in self.list_files(self.leaf(dataset, day, key))
            if posixpath.basename(path) == MANIFEST
        ]
        return [
            self._partition_from(posixpath.dirname(path), manifest)
            for path, manifest in zip(paths, self.map_io(self._read_manifest, paths), strict=True)
            if manifest is not None
        ]

    def map_io(self, function: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """``[function(item) for item in items]``, with requests to a remote lake made concurrently."""
        items = list(items)
        if self.is_local or len(items) < 2:
            return [function(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(REMOTE_IO_THREADS, len(items))) as pool:
            return list(pool.map(function, items))

    def partition(self, dataset: str, day: Day, *, key: Mapping[str, str] | None = None) -> Partition:
        """The single leaf at ``(dataset, day, key)``."""
        leaf = self.leaf(dataset, day, key)
        manifest = self._read_manifest(posixpath.join(leaf, MANIFEST))
        if manifest is None:
            raise PartitionNotFound(f"no partition {self.uri(leaf)}")
        return self._partition_from(leaf, manifest)

    def has_partition(self, dataset: str, day: Day, *, key: Mapping[str, str] | None = None) -> bool:
        return bool(self.leaves(dataset, day, key))

    def partitions(self, dataset: str) -> list[dt.date]:
        """Days of ``dataset`` with at least one committed leaf, in order."""
        days = set()
        for relative in self.list_files(dataset):
            if posixpath.basename(relative) == MANIFEST:
                part = next((p for p in relative.split("/") if p.startswith("dt=")), None)
                if part:
                    days.add(as_day(part[3:]))
        return sorted(days)

    def read_partition(
        self,
        dataset: str,
        day: Day,
        *,
        key: Mapping[str, str] | None = None,
        columns: list[str] | None = None,
        filter: pads.Expression | None = None,
    ) -> pa.Table:
        """A day's rows (every leaf, or those under ``key``); raises if the day has none."""
        leaves = self.leaves(dataset, day, key)
        if not leaves:
            raise PartitionNotFound(f"no partition {self.uri(self.leaf(dataset, day, key))}")
        return self._read_files([f for leaf in leaves for f in leaf.files], columns, filter)

    def read_range(
        self,
        dataset: str,
        start: Day,
        end: Day,
        *,
        columns: list[str] | None = None,
        filter: pads.Expression | None = None,
        missing_ok: bool = True,
    ) -> pa.Table:
        """Rows of every day from ``start`` to ``end`` inclusive; absent days are skipped."""
        files = []
        for day in day_range(start, end):
            leaves = self.leaves(dataset, day)
            if not leaves and not missing_ok:
                raise PartitionNotFound(f"no partition {self.uri(self.leaf(dataset, day))}")
            files += [f for leaf in leaves for f in leaf.files]
        if not files:
            raise PartitionNotFound(f"no partitions of {dataset} from {as_day(start)} to {as_day(end)}")
        return self._read_files(files, columns, filter)

    def _read_files(
        self, files: list[str], columns: list[str] | None, filter: pads.Expression | None
    ) -> pa.Table:
        dataset = pads.dataset([self._path(f) for f in files], filesystem=self.fs, format="parquet")
        return dataset.to_table(columns=columns, filter=filter)


def is_data_file(name: str) -> bool:
    return name.startswith("part-") and name.endswith(".parquet")


def is_temporary(name: str) -> bool:
    return name.startswith(".") and name.endswith(TEMPORARY_SUFFIX)


def is_lake_internal(name: str) -> bool:
    return is_temporary(name) or (name.startswith(".") and name.endswith(LOCK_SUFFIX))


def _started_at(manifest: Mapping[str, Any]) -> dt.datetime:
    """When the run that committed the manifest began; a manifest that does not say began long ago."""
    try:
        return dt.datetime.fromisoformat(manifest["started_at"])
    except (KeyError, TypeError, ValueError):
        return dt.datetime.min.replace(tzinfo=dt.UTC)


def _quote(value: str) -> str:
    return quote(str(value), safe="")


def _split_key(part: str) -> tuple[str, str]:
    name, _, value = part.partition("=")
    return name, unquote(value)
