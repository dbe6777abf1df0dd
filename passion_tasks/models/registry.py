"""The model registry: versioned detectors on the lake, checked byte for byte before they are used.

Layout under the lake root (a series or detector name is one percent-encoded path segment; the real
names are in the manifest)::

    models/<series>/<detector>/v<N>/artifact/...     the files a detector saved, unchanged
    models/<series>/<detector>/v<N>/manifest.json    what was trained on what, and each file's sha256
    models/<series>/promotions.json                  append-only history of which model is live when

The artifact files sit in their own folder so that a detector may save a ``manifest.json`` of its
own. They are uploaded first and the manifest last, so a version is listed only once it is complete.
:func:`fetch_files` reads a version's files and checks every one against the manifest before
returning them: storage is never trusted to hand back what Passion wrote, so nothing from it is
unpickled or loaded unless its checksum matches.

Checksums beside the files they check catch corruption, not tampering: whoever can write the files
can rewrite the manifest. So a manifest carries an HMAC-SHA256 ``signature`` made with a key that
only Passion's own processes hold (``PASSION_MODEL_KEY``, or the Airflow connection
``passion_model_key``), and :func:`fetch_files` refuses a manifest that does not verify with it. Without a
key, manifests are neither signed nor verified, and the log says so once. After a key rotation,
:func:`sign_models` re-signs the models that verify with the previous key.

A backfill must score with the model that was live on its day, so a promotion carries the day it takes
effect from and :func:`live` answers for any day. One process at a time writes a series: two concurrent
``register`` calls for the same (series, detector) may allocate the same version, and of two
concurrent promotions of one series the last write of ``promotions.json`` wins.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import hmac
import json
import logging
import platform
import posixpath
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pandas as pd

from passion_tasks import config
from passion_tasks.errors import ExitCode, PassionError, UsageError
from passion_tasks.lake import Day, Lake, ObjectNotFound, as_day, datasets

MODELS = datasets.MODELS
ARTIFACT = "artifact"
MANIFEST = "manifest.json"
PROMOTIONS = "promotions.json"
MANIFEST_FORMAT = 1
#: The manifest entry holding its HMAC, and the scheme named in it.
SIGNATURE = "signature"
SIGNATURE_SCHEME = "hmac-sha256"
VERSION = re.compile(r"v([1-9][0-9]*)")
#: Names that cannot be a path segment of their own, or that would collide with promotions.json.
RESERVED_NAMES = frozenset({"", ".", "..", PROMOTIONS})
#: Distributions whose versions decide whether a saved model loads and behaves the same.
LIBRARIES = (
    "numpy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "skops",
    "xgboost",
    "tensorflow",
    "tensorflow-cpu",
    "keras",
)

WHAT_TO_DO = (
    "Nothing was loaded. Retrain the model and register a new version, or roll the series back to its "
    "previous model (registry.rollback)."
)

ModelRef = tuple[str, str, str]

log = logging.getLogger(__name__)


class RegistryError(PassionError):
    """A registry operation that cannot be done."""


class UnknownModelError(RegistryError):
    exit_code = ExitCode.USAGE


class ArtifactIntegrityError(RegistryError):
    """A stored model differs from what Passion registered; it is refused, never loaded."""

    exit_code = ExitCode.MODEL_REFUSED


class NoLiveModelError(RegistryError):
    """No model of the series was promoted for the day asked about."""


@dataclass(frozen=True)
class ArtifactFile:
    """One file of a saved model: its path inside the artifact folder, sha256 and size in bytes."""

    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class ModelVersion:
    """One registered model, as its manifest describes it."""

    series: str
    detector: str
    version: str
    params: dict[str, Any]
    features: tuple[str, ...]
    scaler: Any
    threshold: Any
    train_start: dt.date
    train_end: dt.date
    fingerprint: str
    library_versions: dict[str, str]
    metrics: dict[str, Any]
    created_at: dt.datetime
    files: tuple[ArtifactFile, ...]

    @property
    def ref(self) -> str:
        return _ref(self.series, self.detector, self.version)

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> ModelVersion:
        return cls(
            series=manifest["series"],
            detector=manifest["detector"],
            version=manifest["version"],
            params=manifest["params"],
            features=tuple(manifest["features"]),
            scaler=manifest["scaler"],
            threshold=manifest["threshold"],
            train_start=_instant(manifest["train_start"]),
            train_end=_instant(manifest["train_end"]),
            fingerprint=manifest["fingerprint"],
            library_versions=manifest["library_versions"],
            metrics=manifest["metrics"],
            created_at=dt.datetime.fromisoformat(manifest["created_at"]),
            files=tuple(ArtifactFile(**file) for file in manifest["files"]),
        )


@dataclass(frozen=True)
class Promotion:
    """One entry of a series' promotion history: this model is live from ``effective_from`` on."""

    series: str
    detector: str
    version: str
    effective_from: dt.date
    promoted_at: dt.datetime
    reason: str = ""
    rolled_back_from: str | None = None

    @property
    def ref(self) -> str:
        return _ref(self.series, self.detector, self.version)

    def to_json(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "version": self.version,
            "effective_from": self.effective_from.isoformat(),
            "promoted_at": self.promoted_at.isoformat(),
            "reason": self.reason,
            "rolled_back_from": self.rolled_back_from,
        }

    @classmethod
    def from_json(cls, series: str, entry: dict[str, Any]) -> Promotion:
        return cls(
            series=series,
            detector=entry["detector"],
            version=entry["version"],
            effective_from=dt.date.fromisoformat(entry["effective_from"]),
            promoted_at=dt.datetime.fromisoformat(entry["promoted_at"]),
            reason=entry["reason"],
            rolled_back_from=entry["rolled_back_from"],
        )


# -- fingerprints and environment -------------------------------------------------------------------


def fingerprint(frame: pd.DataFrame) -> str:
    """sha256 over a frame's column names, dtypes, index and values: equal frames, equal fingerprints."""
    if isinstance(frame.index, pd.DatetimeIndex):
        # Equal instants stored in another unit or time zone are the same training data.
        index = frame.index.as_unit("ns")
        frame = frame.set_axis(index.tz_convert("UTC") if index.tz is not None else index)
    digest = hashlib.sha256()
    layout = [str(frame.index.dtype), *(f"{name}:{dtype}" for name, dtype in frame.dtypes.items())]
    digest.update(json.dumps(layout).encode("utf-8"))
    # hash_pandas_object uses a fixed key, so row hashes are the same in every process and machine.
    rows = pd.util.hash_pandas_object(frame, index=True).to_numpy()
    digest.update(rows.astype("<u8").tobytes())
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Python's version and those of the installed model libraries (read without importing them)."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


# -- registering and fetching -----------------------------------------------------------------------


def register(
    lake: Lake,
    series: str,
    detector: str,
    artifact_dir: Path,
    *,
    params: dict[str, Any],
    features: list[str],
    scaler: Any,
    threshold: Any,
    train_start: dt.date,
    train_end: dt.date,
    fingerprint: str,
    metrics: dict[str, Any],
) -> ModelVersion:
    """Store the files of ``artifact_dir`` as the next version of ``series``/``detector``.

    ``params``, ``scaler``, ``threshold`` and ``metrics`` are recorded as JSON (numpy values become
    numbers and lists); ``train_start``/``train_end`` are days or UTC timestamps.
    """
    recorded = {
        name: _as_json(name, value)
        for name, value in {
            "params": params,
            "features": list(features),
            "scaler": scaler,
            "threshold": threshold,
            "metrics": metrics,
        }.items()
    }
    files = _artifact_files(Path(artifact_dir))
    version = f"v{_last_version_number(lake, series, detector) + 1}"
    folder = _version_folder(series, detector, version)
    try:
        stored = [_upload(lake, posixpath.join(folder, ARTIFACT, name), path, name) for name, path in files]
        manifest = {
            "format": MANIFEST_FORMAT,
            "series": series,
            "detector": detector,
            "version": version,
            **recorded,
            "train_start": train_start.isoformat(),
            "train_end": train_end.isoformat(),
            "fingerprint": fingerprint,
            "library_versions": library_versions(),
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "files": [asdict(file) for file in stored],
        }
        if (key := config.model_key()) is not None:
            manifest[SIGNATURE] = manifest_signature(manifest, key)
        else:
            _warn_unsigned()
        lake.write_text(posixpath.join(folder, MANIFEST), json.dumps(manifest, indent=1))
    except BaseException:
        with contextlib.suppress(Exception):
            lake.delete(folder)
        raise
    return ModelVersion.from_manifest(manifest)


def fetch_files(
    lake: Lake, series: str, detector: str, version: str | int | None = None
) -> tuple[dict[str, bytes], ModelVersion]:
    """A model's artifact files (each path relative to the artifact folder → its bytes), verified,
    and its version.

    ``version=None`` fetches the version live today, which must be a ``detector`` model. The
    manifest's signature must verify with the model key (when one is configured), every file's
    sha256 and size must match the manifest, and the stored files must be exactly those it lists;
    otherwise ``ArtifactIntegrityError`` is raised. With a worker's cache (``config.model_cache``) and a
    remote lake, files verified once are read from the cache, checked against the manifest again,
    instead of from the lake: a model then costs two reads (its promotions and its manifest), not five.
    """
    if version is None:
        version = _live_detector(lake, series, detector).version
    manifest, model = _read_manifest(lake, series, detector, version)
    _check_signature(model, manifest)
    # A lake on the worker's own disk is its own cache.
    cache = None if lake.is_local else config.model_cache()
    if cache is not None and (cached := _cached_files(cache, model)) is not None:
        return cached, model
    files = {file.name: data for file, data in _verified_files(lake, model)}
    if cache is not None:
        _keep(cache, model, files)
    return files, model


def list_models(lake: Lake, series: str | None = None) -> list[ModelVersion]:
    """Every registered version (of one series), by series, detector and version number."""
    refs = _registered(lake, series)
    if series is not None and not refs:
        raise _unknown(lake, series)
    return [_read_model(lake, *ref) for ref in refs]


# -- signatures ------------------------------------------------------------------------------------


def manifest_signature(manifest: dict[str, Any], key: bytes) -> str:
    """``hmac-sha256:<hex>`` of the manifest's canonical JSON (sorted keys, no spaces) but its signature."""
    body = {name: value for name, value in manifest.items() if name != SIGNATURE}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return f"{SIGNATURE_SCHEME}:" + hmac.new(key, canonical, hashlib.sha256).hexdigest()


def signed_with(manifest: dict[str, Any], key: bytes) -> bool:
    """Whether the manifest's signature is the one ``key`` gives it (compared in constant time)."""
    stored = manifest.get(SIGNATURE)
    return isinstance(stored, str) and hmac.compare_digest(stored, manifest_signature(manifest, key))


@dataclass
class SigningReport:
    """What :func:`sign_models` did with each model: already valid, (re-)signed, or refused and why."""

    valid: list[str]
    signed: list[str]
    refused: dict[str, str]

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.MODEL_REFUSED if self.refused else ExitCode.OK

    def summary(self) -> str:
        text = (
            f"{len(self.valid)} models already signed with the current key, {len(self.signed)} signed now, "
            f"{len(self.refused)} refused"
        )
        return text + "".join(f"\n  refused {ref}: {reason}" for ref, reason in self.refused.items())


def sign_models(lake: Lake, series: str | None = None, *, adopt_unsigned: bool = False) -> SigningReport:
    """Sign every model (of one series) with ``PASSION_MODEL_KEY``: the way to rotate the key.

    A model whose signature verifies with ``PASSION_MODEL_PREVIOUS_KEY`` is re-signed; an unsigned one
    (registered before a key was configured) only with ``adopt_unsigned``, by which the operator vouches
    for it. Either way its files must still match the manifest's checksums. Any other model is refused
    and left as it is: retrain it.
    """
    key = config.model_key()
    if key is None:
        raise UsageError(f"set {config.MODEL_KEY_ENV} to the key to sign the models with")
    previous = config.model_key(config.PREVIOUS_MODEL_KEY_ENV)
    report = SigningReport(valid=[], signed=[], refused={})
    for ref in _registered(lake, series):
        label = _ref(*ref)
        try:
            manifest, model = _read_manifest(lake, *ref)
        except ArtifactIntegrityError as error:
            report.refused[label] = str(error)
            continue
        if signed_with(manifest, key):
            report.valid.append(label)
            continue
        if previous is not None and signed_with(manifest, previous):
            pass
        elif SIGNATURE in manifest:
            report.refused[label] = (
                f"its signature verifies with neither {config.MODEL_KEY_ENV} nor "
                f"{config.PREVIOUS_MODEL_KEY_ENV}"
            )
            continue
        elif not adopt_unsigned:
            report.refused[label] = "it is not signed; pass --adopt-unsigned if you trust it"
            continue
        try:
            for _ in _verified_files(lake, model):
                pass
        except ArtifactIntegrityError as error:
            report.refused[label] = str(error)
            continue
        manifest[SIGNATURE] = manifest_signature(manifest, key)
        lake.write_text(_manifest_path(*ref), json.dumps(manifest, indent=1))
        report.signed.append(label)
    return report


def _check_signature(model: ModelVersion, manifest: dict[str, Any]) -> None:
    key = config.model_key()
    if key is None:
        _warn_unsigned()
        return
    if SIGNATURE not in manifest:
        raise _integrity_error(
            model,
            f"its manifest is not signed and {config.MODEL_KEY_ENV} is set; if it was registered before "
            "signing was set up and you trust it, sign it: passion models sign --adopt-unsigned",
        )
    if not signed_with(manifest, key):
        raise _integrity_error(
            model,
            f"its manifest's signature does not verify with {config.MODEL_KEY_ENV}: it was changed after "
            f"Passion wrote it, or signed with another key (after a rotation, set "
            f"{config.PREVIOUS_MODEL_KEY_ENV} to the old key and run passion models sign)",
        )


@functools.cache
def _warn_unsigned() -> None:
    log.warning(
        "%s is not set: model manifests are not signed or verified, so their checksums catch corruption "
        "but not tampering by whoever can write to the lake",
        config.MODEL_KEY_ENV,
    )


# -- promotions ------------------------------------------------------------------------------------


def promote(
    lake: Lake,
    series: str,
    detector: str,
    version: str | int,
    *,
    effective_from: Day | None = None,
    reason: str = "",
) -> Promotion:
    """Make a registered model the series' live model from ``effective_from`` (default: today, UTC)."""
    model = _read_model(lake, series, detector, version)
    return _append_promotion(lake, model, _day_or_today(effective_from), reason, rolled_back_from=None)


def live(lake: Lake, series: str, on: Day | None = None) -> ModelVersion | None:
    """The model live for ``series`` on day ``on`` (default: today, UTC), or None if none was.

    That is the latest promotion taking effect on or before the day; of promotions taking effect
    on the same day, the one made last.
    """
    promotion = live_promotion(lake, series, on)
    return None if promotion is None else _read_model(lake, series, promotion.detector, promotion.version)


def live_promotion(lake: Lake, series: str, on: Day | None = None) -> Promotion | None:
    """The promotion that made :func:`live`'s model live, from the promotion history alone (one read,
    no manifest): what a caller that fetches the model next needs."""
    timeline = _timeline(_promotions(lake, series), _day_or_today(on))
    return timeline[-1] if timeline else None


def require_live(lake: Lake, series: str, on: Day | None = None) -> ModelVersion:
    """:func:`live`, raising ``NoLiveModelError`` with what there is instead when no model was live."""
    model = live(lake, series, on)
    if model is not None:
        return model
    day = _day_or_today(on)
    promotions = _promotions(lake, series)
    if promotions:
        first = min(p.effective_from for p in promotions)
        raise NoLiveModelError(
            f"no model was live for series {series!r} on {day}: the first takes effect {first}"
        )
    registered = [_ref(*ref) for ref in _registered(lake, series)]
    raise NoLiveModelError(
        f"series {series!r} has no promoted model; registered versions: {_listing(registered)}. "
        "Promote one before scoring."
    )


def rollback(lake: Lake, series: str, *, effective_from: Day | None = None, reason: str = "") -> Promotion:
    """Make the model live before the current one live again from ``effective_from`` (default today).

    The history only grows: a rollback is a new promotion that names the model it replaces. A
    second rollback goes one model further back, never forward to the model just rolled back.
    """
    day = _day_or_today(effective_from)
    live_models = _live_sequence(_timeline(_promotions(lake, series), day))
    if not live_models:
        raise NoLiveModelError(f"cannot roll back series {series!r}: no model is live on {day}")
    if len(live_models) == 1:
        raise RegistryError(
            f"cannot roll back series {series!r}: {live_models[0].ref} is the only model live up to {day}, "
            "there is nothing to roll back to"
        )
    current, previous = live_models[-1], live_models[-2]
    model = _read_model(lake, series, previous.detector, previous.version)
    return _append_promotion(lake, model, day, reason, rolled_back_from=current.ref)


def history(lake: Lake, series: str) -> list[Promotion]:
    """Every promotion of ``series`` in the order it was made."""
    promotions = _promotions(lake, series)
    if not promotions and not _registered(lake, series):
        raise _unknown(lake, series)
    return promotions


# -- internals -------------------------------------------------------------------------------------


def _ref(series: str, detector: str, version: str) -> str:
    return f"{series}/{detector}@{version}"


def _segment(name: str) -> str:
    if name in RESERVED_NAMES:
        raise RegistryError(f"{name!r} cannot name a series or detector in the registry")
    return quote(name, safe="")


def _series_folder(series: str) -> str:
    return posixpath.join(MODELS, _segment(series))


def _detector_folder(series: str, detector: str) -> str:
    return posixpath.join(_series_folder(series), _segment(detector))


def _version_folder(series: str, detector: str, version: str) -> str:
    return posixpath.join(_detector_folder(series, detector), version)


def _instant(text: str) -> dt.date:
    return dt.date.fromisoformat(text) if len(text) == len("YYYY-MM-DD") else dt.datetime.fromisoformat(text)


def _day_or_today(day: Day | None) -> dt.date:
    return as_day(day) if day is not None else dt.datetime.now(dt.UTC).date()


def _listing(names: list[str], shown: int = 20) -> str:
    if not names:
        return "none"
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _as_json(name: str, value: Any) -> Any:
    """``value`` as it reads back from the manifest; numpy arrays and scalars become lists and numbers."""

    def convert(item: Any) -> Any:
        if hasattr(item, "tolist"):
            return item.tolist()
        if isinstance(item, dt.date):
            return item.isoformat()
        raise TypeError(f"{type(item).__name__} is not JSON serialisable")

    try:
        return json.loads(json.dumps(value, default=convert))
    except (TypeError, ValueError) as error:
        raise RegistryError(f"cannot record the model's {name}: {error}") from None


def _artifact_files(folder: Path) -> list[tuple[str, Path]]:
    if not folder.is_dir():
        raise RegistryError(f"artifact folder {folder} does not exist")
    files = sorted(
        (path.relative_to(folder).as_posix(), path) for path in folder.rglob("*") if path.is_file()
    )
    if not files:
        raise RegistryError(f"artifact folder {folder} is empty: save the detector into it first")
    return files


def _upload(lake: Lake, relative: str, path: Path, name: str) -> ArtifactFile:
    # The digest is of the very bytes uploaded: the file is read once.
    data = path.read_bytes()
    lake.write_bytes(relative, data)
    return ArtifactFile(name=name, sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def _last_version_number(lake: Lake, series: str, detector: str) -> int:
    """The highest version folder, with or without a manifest: a failed upload's number is not reused."""
    folder = _detector_folder(series, detector)
    numbers = [
        int(match[1])
        for relative in lake.list_files(folder)
        if (match := VERSION.fullmatch(relative.removeprefix(folder + "/").split("/")[0]))
    ]
    return max(numbers, default=0)


def _registered(lake: Lake, series: str | None = None) -> list[ModelRef]:
    """(series, detector, version) of every version with a manifest, sorted, numbers numerically."""
    refs = []
    for relative in lake.list_files(MODELS if series is None else _series_folder(series)):
        parts = relative.split("/")
        if len(parts) == 5 and parts[4] == MANIFEST and VERSION.fullmatch(parts[3]):
            refs.append((unquote(parts[1]), unquote(parts[2]), parts[3]))
    return sorted(refs, key=lambda ref: (ref[0], ref[1], int(ref[2][1:])))


def _unknown(
    lake: Lake, series: str, detector: str | None = None, version: str | None = None
) -> UnknownModelError:
    registered = _registered(lake)
    all_series = sorted({s for s, _, _ in registered})
    if series not in all_series:
        return UnknownModelError(
            f"no models registered for series {series!r} in {lake.uri(MODELS)}; "
            f"registered series: {_listing(all_series)}"
        )
    detectors = sorted({d for s, d, _ in registered if s == series})
    if detector not in detectors:
        return UnknownModelError(
            f"series {series!r} has no {detector!r} model; its detectors: {_listing(detectors)}"
        )
    versions = [v for s, d, v in registered if (s, d) == (series, detector)]
    return UnknownModelError(
        f"{series}/{detector} has no version {version!r}; its versions: {_listing(versions)}"
    )


def _manifest_path(series: str, detector: str, version: str) -> str:
    return posixpath.join(_version_folder(series, detector, version), MANIFEST)


def _read_model(lake: Lake, series: str, detector: str, version: str | int) -> ModelVersion:
    return _read_manifest(lake, series, detector, version)[1]


def _read_manifest(
    lake: Lake, series: str, detector: str, version: str | int
) -> tuple[dict[str, Any], ModelVersion]:
    """A version's manifest as stored, and as a ``ModelVersion``; it must describe that very version."""
    label = f"v{version}" if str(version).isdigit() else str(version)
    if not VERSION.fullmatch(label):
        raise _unknown(lake, series, detector, label)
    path = _manifest_path(series, detector, label)
    try:
        text = lake.read_bytes(path)
    except ObjectNotFound:
        raise _unknown(lake, series, detector, label) from None
    ref = _ref(series, detector, label)
    try:
        manifest = json.loads(text)
        model = ModelVersion.from_manifest(manifest)
    except (KeyError, TypeError, ValueError) as error:
        raise ArtifactIntegrityError(
            f"the manifest of model {ref} at {lake.uri(path)} cannot be read ({error!r}). {WHAT_TO_DO}"
        ) from None
    if model.ref != ref:
        raise ArtifactIntegrityError(
            f"the manifest at {lake.uri(path)} describes {model.ref}, not {ref}. {WHAT_TO_DO}"
        )
    return manifest, model


def _integrity_error(model: ModelVersion, problem: str) -> ArtifactIntegrityError:
    return ArtifactIntegrityError(
        f"model {model.ref} (series {model.series!r}, detector {model.detector!r}, version {model.version}) "
        f"failed its integrity check: {problem}. {WHAT_TO_DO}"
    )


def _check_file_list(lake: Lake, model: ModelVersion, folder: str) -> None:
    """The stored files must be exactly those of the manifest, with names that stay inside the folder."""
    from passion_tasks.detectors.persistence import stays_inside

    for file in model.files:
        if not stays_inside(file.name):
            raise _integrity_error(model, f"the manifest lists an unsafe file name {file.name!r}")
    stored = {relative.removeprefix(folder + "/") for relative in lake.list_files(folder)} - {MANIFEST}
    expected = {posixpath.join(ARTIFACT, file.name) for file in model.files}
    if missing := sorted(expected - stored):
        raise _integrity_error(model, f"artifact files missing from {lake.uri(folder)}: {', '.join(missing)}")
    if extra := sorted(stored - expected):
        raise _integrity_error(
            model, f"files in {lake.uri(folder)} that the manifest does not list: {', '.join(extra)}"
        )


def _verified_files(lake: Lake, model: ModelVersion) -> Iterator[tuple[ArtifactFile, bytes]]:
    """Each artifact file of ``model`` with its bytes, once the file list and that file's checksum match."""
    folder = _version_folder(model.series, model.detector, model.version)
    _check_file_list(lake, model, folder)
    for file in model.files:
        data = lake.read_bytes(posixpath.join(folder, ARTIFACT, file.name))
        digest = hashlib.sha256(data).hexdigest()
        if digest != file.sha256 or len(data) != file.size:
            raise _integrity_error(
                model,
                f"artifact file {file.name!r} has sha256 {digest} ({len(data)} bytes), "
                f"the manifest recorded {file.sha256} ({file.size} bytes)",
            )
        yield file, data


def _cached_files(cache: Path, model: ModelVersion) -> dict[str, bytes] | None:
    """The model's files from the worker's cache when every one is there with the sha256 and size its
    (verified) manifest records, else None. A cached file is checked each time it is used, as a file
    from the lake is: the cache is a copy, trusted no further than its checksums."""
    files = {}
    for file in model.files:
        try:
            data = _cache_path(cache, file.sha256).read_bytes()
        except OSError:
            return None
        if len(data) != file.size or hashlib.sha256(data).hexdigest() != file.sha256:
            return None
        files[file.name] = data
    return files


def _keep(cache: Path, model: ModelVersion, files: dict[str, bytes]) -> None:
    """Keep a verified model's files in the worker's cache; a cache that cannot be written is skipped."""
    try:
        for file in model.files:
            path = _cache_path(cache, file.sha256)
            if path.exists():
                continue
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Written beside its place, then moved in: a reader never sees half a file.
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as partial:
                partial.write(files[file.name])
            Path(partial.name).replace(path)
    except OSError as error:
        log.warning("model cache %s not written: %s", cache, error)


def _cache_path(cache: Path, sha256: str) -> Path:
    return cache / sha256[:2] / sha256


def _live_detector(lake: Lake, series: str, detector: str) -> ModelVersion:
    model = require_live(lake, series)
    if model.detector != detector:
        raise NoLiveModelError(
            f"no {detector!r} model is live for series {series!r} today: the live model is {model.ref}; "
            "pass a version to fetch one that is not live"
        )
    return model


def _promotions_path(series: str) -> str:
    return posixpath.join(_series_folder(series), PROMOTIONS)


def _promotions(lake: Lake, series: str) -> list[Promotion]:
    path = _promotions_path(series)
    try:
        text = lake.read_bytes(path)
    except ObjectNotFound:
        return []
    return [Promotion.from_json(series, entry) for entry in json.loads(text)["promotions"]]


def _append_promotion(
    lake: Lake, model: ModelVersion, effective_from: dt.date, reason: str, rolled_back_from: str | None
) -> Promotion:
    promotion = Promotion(
        series=model.series,
        detector=model.detector,
        version=model.version,
        effective_from=effective_from,
        promoted_at=dt.datetime.now(dt.UTC),
        reason=reason,
        rolled_back_from=rolled_back_from,
    )
    entries = [p.to_json() for p in [*_promotions(lake, model.series), promotion]]
    lake.write_text(
        _promotions_path(model.series), json.dumps({"series": model.series, "promotions": entries}, indent=1)
    )
    return promotion


def _timeline(promotions: list[Promotion], day: dt.date) -> list[Promotion]:
    """Promotions in effect by ``day``, in the order they took effect (the last one is live)."""
    # sorted() is stable, so promotions with equal keys keep the order they were made in.
    in_effect = [p for p in promotions if p.effective_from <= day]
    return sorted(in_effect, key=lambda p: (p.effective_from, p.promoted_at))


def _live_sequence(timeline: list[Promotion]) -> list[Promotion]:
    """The models live one after another, minus those rolled back: a rollback returns to the one before."""
    sequence: list[Promotion] = []
    for promotion in timeline:
        if promotion.rolled_back_from and len(sequence) > 1 and sequence[-2].ref == promotion.ref:
            sequence.pop()
        elif not sequence or sequence[-1].ref != promotion.ref:
            sequence.append(promotion)
    return sequence
