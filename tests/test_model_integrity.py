"""Models are loaded only as Passion wrote them: signed manifests, allow-listed state, fixed skops trust.

The attacker of these tests can write anything to the lake but does not hold ``PASSION_MODEL_KEY``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import posixpath
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from passion_tasks import cli, steps
from passion_tasks.errors import ExitCode
from passion_tasks.lake import Lake, schemas
from passion_tasks.models import registry
from passion_tasks.models.scoring import SeriesNotScored

KEY = "k" * 32
OTHER_KEY = "o" * 32
SERIES = ("api_latency", "cpu")
TRAIN_DAYS = [dt.date(2026, 11, 20) + dt.timedelta(days=i) for i in range(3)]
SCORED = dt.date(2026, 11, 23)
DETECTOR = "isolation_forest"
FAST = {"window": 5, "n_estimators": 10}


def write_features(lake: Lake) -> None:
    """Four days of two smooth metric series (three to train on, one to score)."""
    for offset, day in enumerate([*TRAIN_DAYS, SCORED]):
        index = pd.date_range(pd.Timestamp(day, tz="UTC"), periods=1440, freq="min")
        rows = np.arange(1440) + 1440 * offset
        frames = [
            pd.DataFrame(
                {
                    "ts": index,
                    "series": name,
                    "metric": name,
                    "dim": "",
                    "dim_value": "",
                    "value": 50
                    + 10 * np.sin(rows / (60 + 30 * n))
                    + np.random.default_rng(n).normal(0, 1, 1440),
                }
            )
            for n, name in enumerate(SERIES)
        ]
        table = pa.Table.from_pandas(pd.concat(frames), schema=schemas.FEATURES, preserve_index=False)
        lake.write_partition("features", day, table, schema=schemas.FEATURES, key={"source": "metrics"})


@pytest.fixture
def trained(lake: Lake) -> Lake:
    return trained_lake(lake)


def trained_lake(lake: Lake) -> Lake:
    """Both series with a live isolation forest, registered under whatever key the test has set."""
    write_features(lake)
    summary = steps.train(
        lake, DETECTOR, train_from=TRAIN_DAYS[0], train_to=TRAIN_DAYS[-1], params=FAST, promote=True
    )
    assert sorted(summary.trained) == sorted(SERIES), summary.failed
    return lake


def version_folder(series: str, detector: str = DETECTOR, version: str = "v1") -> str:
    return registry._version_folder(series, detector, version)


def rewrite_artifact(lake: Lake, series: str, files: dict[str, bytes]) -> None:
    """What an attacker with write access does: replace artifact files and make the manifest match."""
    folder = version_folder(series)
    manifest = json.loads(lake.read_bytes(posixpath.join(folder, registry.MANIFEST)))
    for name, data in files.items():
        lake.write_bytes(posixpath.join(folder, registry.ARTIFACT, name), data)
        entry = next(file for file in manifest["files"] if file["name"] == name)
        entry.update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    lake.write_text(posixpath.join(folder, registry.MANIFEST), json.dumps(manifest))


def system_call_skops(marker: Path) -> bytes:
    """A skops file that calls ``posix.system`` when it is loaded with that type trusted."""
    command = {
        "__class__": "str",
        "__module__": "builtins",
        "__loader__": "JsonNode",
        "content": json.dumps(f"touch {marker}"),
        "is_json": True,
        "__id__": 2,
    }
    schema = {
        "__class__": "system",
        "__module__": "posix",
        "__loader__": "ConstructorFromReduceNode",
        "content": {
            "__class__": "tuple",
            "__module__": "builtins",
            "__loader__": "TupleNode",
            "content": [command],
            "__id__": 3,
        },
        "__id__": 1,
        "protocol": 2,
        "_skops_version": "0.16.0",
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
    return buffer.getvalue()


def plant_system_call(lake: Lake, series: str, marker: Path, *, trust_list: bool) -> None:
    folder = version_folder(series)
    state = json.loads(lake.read_bytes(posixpath.join(folder, registry.ARTIFACT, "detector.json")))
    if trust_list:
        state["state"]["_trusted_types"] = ["posix.system"]
    rewrite_artifact(
        lake,
        series,
        {"model.skops": system_call_skops(marker), "detector.json": json.dumps(state).encode()},
    )


def test_the_crafted_skops_file_runs_its_payload_when_its_type_is_trusted(tmp_path: Path) -> None:
    # The attack of the tests below is real: skops would call os.system if told to trust it.
    import skops.io

    marker = tmp_path / "payload-ran"
    skops.io.loads(system_call_skops(marker), trusted=["posix.system"])
    assert marker.exists()


@pytest.mark.parametrize("trust_list", [True, False], ids=["with-stored-trust-list", "without"])
def test_a_rewritten_model_without_a_key_is_refused_and_its_payload_never_runs(
    trained: Lake, tmp_path: Path, capsys, trust_list: bool
) -> None:
    marker = tmp_path / "payload-ran"
    plant_system_call(trained, "cpu", marker, trust_list=trust_list)

    code = cli.main(["score", "--day", SCORED.isoformat(), "--lake", trained.url])

    assert not marker.exists()
    # The other series is scored, and the day still says that a model was refused.
    assert code == ExitCode.MODEL_REFUSED
    assert steps.scored_series(trained, SCORED) == ["api_latency"]
    out = capsys.readouterr().out
    assert "failed cpu: model cpu/isolation_forest@v1" in out
    reason = "does not learn ['_trusted_types']" if trust_list else "refusing to load untrusted types"
    assert reason in out


def test_a_refused_model_as_the_only_series_is_not_no_input(trained: Lake, tmp_path: Path, capsys) -> None:
    marker = tmp_path / "payload-ran"
    plant_system_call(trained, "cpu", marker, trust_list=True)

    code = cli.main(["score", "--day", SCORED.isoformat(), "--series", "cpu", "--lake", trained.url])

    assert code == ExitCode.MODEL_REFUSED
    assert not marker.exists()
    assert "does not learn ['_trusted_types']" in capsys.readouterr().err


def test_the_detector_saved_must_be_the_one_the_manifest_names(trained: Lake, tmp_path: Path) -> None:
    # A rolling_mad model's files, moved into the isolation forest's version with matching checksums.
    summary = steps.train(
        trained, "rolling_mad", series=["cpu"], train_from=TRAIN_DAYS[0], train_to=TRAIN_DAYS[-1]
    )
    assert summary.trained
    other = version_folder("cpu", "rolling_mad")
    files = {
        name.removeprefix(posixpath.join(other, registry.ARTIFACT) + "/"): trained.read_bytes(name)
        for name in trained.list_files(posixpath.join(other, registry.ARTIFACT))
    }
    folder = version_folder("cpu")
    for name in trained.list_files(posixpath.join(folder, registry.ARTIFACT)):
        trained.delete(name)
    manifest = json.loads(trained.read_bytes(posixpath.join(folder, registry.MANIFEST)))
    manifest["files"] = [{"name": name, "sha256": "", "size": 0} for name in files]
    trained.write_text(posixpath.join(folder, registry.MANIFEST), json.dumps(manifest))
    rewrite_artifact(trained, "cpu", files)

    expected = "holds a saved 'rolling_mad' detector where 'isolation_forest' was expected"
    with pytest.raises(SeriesNotScored, match=expected) as refused:
        steps.score_day(trained, SCORED, series=["cpu"])
    assert refused.value.exit_code == ExitCode.MODEL_REFUSED


def test_with_a_key_a_rewritten_manifest_is_refused_before_anything_is_read(
    monkeypatch: pytest.MonkeyPatch, lake: Lake, tmp_path: Path
) -> None:
    monkeypatch.setenv("PASSION_MODEL_KEY", KEY)
    trained = trained_lake(lake)
    marker = tmp_path / "payload-ran"
    # Without the trust list, allow-listing alone would not refuse it: the signature must.
    rewrite_artifact(trained, "cpu", {"model.skops": system_call_skops(marker)})

    summary = steps.score_day(trained, SCORED)

    assert not marker.exists()
    assert summary.series_scored == 1
    assert summary.exit_code == ExitCode.MODEL_REFUSED
    assert "signature does not verify with PASSION_MODEL_KEY" in str(summary.failed["cpu"])


def test_signed_models_verify_and_a_rotated_key_re_signs_them(
    monkeypatch: pytest.MonkeyPatch, lake: Lake, capsys
) -> None:
    monkeypatch.setenv("PASSION_MODEL_KEY", KEY)
    trained = trained_lake(lake)
    manifest = json.loads(trained.read_bytes(posixpath.join(version_folder("cpu"), registry.MANIFEST)))
    assert manifest["signature"] == registry.manifest_signature(manifest, KEY.encode())
    assert manifest["signature"].startswith("hmac-sha256:")
    assert steps.score_day(trained, SCORED).series_scored == 2

    # A new key: the models signed with the old one are refused until they are re-signed.
    monkeypatch.setenv("PASSION_MODEL_KEY", OTHER_KEY)
    assert cli.main(["score", "--day", SCORED.isoformat(), "--lake", trained.url]) == ExitCode.MODEL_REFUSED
    assert "signature does not verify with PASSION_MODEL_KEY" in capsys.readouterr().err
    assert cli.main(["models", "sign", "--lake", trained.url]) == ExitCode.MODEL_REFUSED
    assert "verifies with neither PASSION_MODEL_KEY nor PASSION_MODEL_PREVIOUS_KEY" in capsys.readouterr().out

    monkeypatch.setenv("PASSION_MODEL_PREVIOUS_KEY", KEY)
    assert cli.main(["models", "sign", "--lake", trained.url]) == ExitCode.OK
    assert "0 models already signed with the current key, 2 signed now, 0 refused" in capsys.readouterr().out
    assert cli.main(["models", "sign", "--lake", trained.url]) == ExitCode.OK
    assert "2 models already signed with the current key, 0 signed now" in capsys.readouterr().out
    assert steps.score_day(trained, SCORED).series_scored == 2


def test_models_from_before_a_key_are_signed_only_when_the_operator_adopts_them(
    monkeypatch: pytest.MonkeyPatch, trained: Lake, capsys
) -> None:
    monkeypatch.setenv("PASSION_MODEL_KEY", KEY)
    assert cli.main(["score", "--day", SCORED.isoformat(), "--lake", trained.url]) == ExitCode.MODEL_REFUSED
    assert "is not signed and PASSION_MODEL_KEY is set" in capsys.readouterr().err

    assert cli.main(["models", "sign", "--lake", trained.url]) == ExitCode.MODEL_REFUSED
    assert "not signed; pass --adopt-unsigned" in capsys.readouterr().out
    # A model whose files no longer match its manifest is not adopted.
    folder = version_folder("cpu")
    trained.write_bytes(posixpath.join(folder, registry.ARTIFACT, "model.skops"), b"corrupted")
    assert cli.main(["models", "sign", "--adopt-unsigned", "--lake", trained.url]) == ExitCode.MODEL_REFUSED
    assert "1 signed now, 1 refused" in capsys.readouterr().out
    assert steps.score_day(trained, SCORED, series=["api_latency"]).series_scored == 1


def test_without_a_key_the_log_says_so_once(trained: Lake, caplog: pytest.LogCaptureFixture) -> None:
    registry._warn_unsigned.cache_clear()
    with caplog.at_level(logging.WARNING, logger="passion_tasks.models.registry"):
        steps.score_day(trained, SCORED)
        steps.score_day(trained, SCORED)
    warnings = [record for record in caplog.records if "PASSION_MODEL_KEY is not set" in record.message]
    assert len(warnings) == 1


def test_a_short_key_is_refused_and_an_empty_one_is_no_key(
    monkeypatch: pytest.MonkeyPatch, trained: Lake
) -> None:
    monkeypatch.setenv("PASSION_MODEL_KEY", "short")
    assert cli.main(["models", "sign", "--lake", trained.url]) == ExitCode.USAGE
    monkeypatch.setenv("PASSION_MODEL_KEY", "")
    assert steps.score_day(trained, SCORED).series_scored == 2


def test_a_series_the_lake_cannot_hold_fails_alone_with_its_name(trained: Lake) -> None:
    # A name no filesystem can hold (bounded names never get there; one written by another tool might).
    long_name = "m" * 300
    table = trained.read_partition("features", SCORED).to_pandas()
    cpu = table[table["series"] == "cpu"].assign(series=long_name, metric=long_name)
    trained.write_partition(
        "features",
        SCORED,
        pa.Table.from_pandas(pd.concat([table, cpu]), schema=schemas.FEATURES, preserve_index=False),
        schema=schemas.FEATURES,
        key={"source": "metrics"},
    )

    training = steps.train(trained, DETECTOR, train_from=TRAIN_DAYS[0], train_to=SCORED, params=FAST)
    assert sorted(training.trained) == sorted(SERIES)
    assert "a lake path segment may have 200 bytes" in training.failed[long_name]
    assert steps.series_to_score(trained, SCORED) == sorted([*SERIES, long_name])
    summary = steps.score_day(trained, SCORED)
    assert summary.series_scored == 2
    assert list(summary.failed) == [long_name]
    assert "a lake path segment may have 200 bytes" in str(summary.failed[long_name])
    assert summary.exit_code == ExitCode.FAILED


def test_a_workers_cache_serves_verified_files_and_is_trusted_no_further_than_its_checksums(
    monkeypatch: pytest.MonkeyPatch, lake: Lake, s3_bucket: str, tmp_path: Path
) -> None:
    monkeypatch.setenv("PASSION_MODEL_KEY", KEY)
    cache = tmp_path / "cache"
    monkeypatch.setenv("PASSION_MODEL_CACHE", str(cache))
    # A local lake is its own cache.
    registry.fetch_files(trained_lake(lake), "cpu", DETECTOR, "v1")
    assert not cache.exists()
    trained = trained_lake(Lake(f"s3://{s3_bucket}/lake"))
    files, model = registry.fetch_files(trained, "cpu", DETECTOR, "v1")
    cached = sorted(path.name for path in cache.rglob("*") if path.is_file())
    assert cached == sorted(file.sha256 for file in model.files)
    assert {path.stat().st_mode & 0o777 for path in cache.rglob("*") if path.is_file()} == {0o600}

    # Served from the cache: the lake's artifact files are not read again.
    folder = posixpath.join(version_folder("cpu"), registry.ARTIFACT)
    for name in files:
        trained.delete(posixpath.join(folder, name))
    assert registry.fetch_files(trained, "cpu", DETECTOR, "v1")[0] == files
    assert steps.score_day(trained, SCORED).series_scored == 2

    # A cached file that no longer matches the manifest is not used: the lake is read, and refused.
    (cache / model.files[0].sha256[:2] / model.files[0].sha256).write_bytes(b"tampered")
    with pytest.raises(registry.ArtifactIntegrityError, match="artifact files missing"):
        registry.fetch_files(trained, "cpu", DETECTOR, "v1")

    # The manifest is verified before the cache is looked at: a rewritten one is refused.
    marker = tmp_path / "payload-ran"
    rewrite_artifact(trained, "api_latency", {"model.skops": system_call_skops(marker)})
    with pytest.raises(registry.ArtifactIntegrityError, match="signature does not verify"):
        registry.fetch_files(trained, "api_latency", DETECTOR, "v1")
    assert not marker.exists()
