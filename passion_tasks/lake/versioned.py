"""Conditional writes: replace an object only if it is still the version the writer read.

Two writers of one object (two runs committing the same partition, two runs taking the same day's
lease) must not overwrite each other unseen. S3 and MinIO compare an object's ETag on a PUT
(``If-Match``) and refuse to create one that exists (``If-None-Match: *``), atomically in the store.
A local lake does the same under an exclusive ``flock`` of a hidden lock file beside the object, with
the sha256 of the object's bytes as its version: one machine's processes, which is what a local lake
serves (a shared network filesystem is not supported).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import posixpath
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from passion_tasks.lake import Lake

#: Suffix of the hidden file a local lake locks to write an object conditionally.
LOCK_SUFFIX = ".lock"


class Versioned(NamedTuple):
    """An object's bytes and the version they are, or ``(None, None)`` for an object that is absent."""

    data: bytes | None
    version: str | None


class VersionedStore(Protocol):
    def data(self, relative: str) -> bytes | None:
        """The object's bytes, read whole (None for an object that is absent): never half of one
        version and half of the next."""

    def read(self, relative: str) -> Versioned:
        """The object and its version."""

    def write_if(self, relative: str, data: bytes, expected: str | None) -> bool:
        """Write ``data`` if the object is still at version ``expected`` (absent for None); else False."""


class LocalVersions:
    """Versions of a local lake's objects: the sha256 of their bytes, compared under a ``flock``."""

    def __init__(self, lake: Lake):
        self._lake = lake

    def data(self, relative: str) -> bytes | None:
        # One open of a file that writers replace whole (``os.replace``): one version or the other.
        try:
            with open(self._lake._path(relative), "rb") as stream:
                return stream.read()
        except FileNotFoundError:
            return None

    def read(self, relative: str) -> Versioned:
        data = self.data(relative)
        return Versioned(data, None if data is None else hashlib.sha256(data).hexdigest())

    def write_if(self, relative: str, data: bytes, expected: str | None) -> bool:
        path = self._lake._path(relative)
        with self._locked(path):
            if self.read(relative).version != expected:
                return False
            staging = self._lake._staging_path(relative)
            with open(staging, "wb") as out:
                out.write(data)
            os.replace(staging, path)
            return True

    @contextlib.contextmanager
    def _locked(self, path: str) -> Iterator[None]:
        folder, name = os.path.split(path)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f".{name}{LOCK_SUFFIX}"), "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield


class S3Versions:
    """Versions of an S3 lake's objects: their ETags, compared by the store on a conditional PUT."""

    def __init__(self, lake: Lake):
        self._bucket, _, self._prefix = lake.root.partition("/")
        self._client = lake.s3_options().client()

    def _key(self, relative: str) -> str:
        return posixpath.join(self._prefix, relative) if self._prefix else relative

    def data(self, relative: str) -> bytes | None:
        # One GET: pyarrow's S3 stream asks the size, then reads ranges, and a replacement between
        # the two is read cut at the old size.
        return self.read(relative).data

    def read(self, relative: str) -> Versioned:
        try:
            answer = self._client.get_object(Bucket=self._bucket, Key=self._key(relative))
        except self._client.exceptions.NoSuchKey:
            return Versioned(None, None)
        return Versioned(answer["Body"].read(), answer["ETag"])

    def write_if(self, relative: str, data: bytes, expected: str | None) -> bool:
        from botocore.exceptions import ClientError

        condition = {"IfMatch": expected} if expected is not None else {"IfNoneMatch": "*"}
        try:
            self._client.put_object(Bucket=self._bucket, Key=self._key(relative), Body=data, **condition)
        except ClientError as error:
            # 412: the object is not at the expected version; 409: another conditional write of it is
            # in flight (S3 asks to retry, which the caller does after reading the new version).
            if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (409, 412):
                return False
            raise
        return True
