"""The model registry: versions, verified fetches, promotions by day and rollback, locally and over S3."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from passion_tasks.errors import PassionError
from passion_tasks.lake import Lake
from passion_tasks.models.registry import (
    ArtifactFile,
    ArtifactIntegrityError,
    ModelVersion,
    NoLiveModelError,
    RegistryError,
    UnknownModelError,
    fetch_files,
    fingerprint,
    history,
    list_models,
    live,
    promote,
    register,
    require_live,
    rollback,
)

SERIES = "cdn_ttfb_p95{edge=FRA56-P1}"
NAB_SERIES = "nab/realKnownCause/nyc_taxi"
DETECTOR = "isolation_forest"
STORED_SERIES = "cdn_ttfb_p95%7Bedge%3DFRA56-P1%7D"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> Lake:
    """A local lake, then a lake at ``s3://<bucket>/lake`` on the S3 test server."""
    if request.param == "local":
        return request.getfixturevalue("lake")
    return Lake(f"s3://{request.getfixturevalue('s3_bucket')}/lake")


def saved_model(folder: Path, weights: bytes) -> Path:
    """What a detector's ``save`` leaves: two files, one of them in a subfolder."""
    (folder / "config").mkdir(parents=True)
    (folder / "model.skops").write_bytes(weights)
    (folder / "config" / "manifest.json").write_bytes(b'{"window": 30}')
    return folder


def register_version(lake: Lake, tmp_path: Path, weights: bytes, series: str = SERIES) -> ModelVersion:
    folder = saved_model(
        tmp_path / f"saved-{hashlib.sha256(weights + series.encode()).hexdigest()[:8]}", weights
    )
    return register(
        lake,
        series,
        DETECTOR,
        folder,
        params={"n_estimators": 100, "contamination": 0.01},
        features=["requests", "ttfb_p95"],
        scaler={"mean": np.array([1.5, 2.0]), "scale": np.float32(0.5)},
        threshold=0.97,
        train_start=dt.date(2026, 10, 1),
        train_end=pd.Timestamp("2026-10-31 23:59", tz="UTC"),
        fingerprint="f" * 64,
        metrics={"f1": 0.5},
    )


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_register_list_and_fetch(store: Lake, tmp_path: Path) -> None:
    v1 = register_version(store, tmp_path, b"weights one")
    v2 = register_version(store, tmp_path, b"weights two")

    assert (v1.version, v2.version, v2.ref) == ("v1", "v2", f"{SERIES}/{DETECTOR}@v2")
    assert v1.files == (
        ArtifactFile("config/manifest.json", digest(b'{"window": 30}'), 14),
        ArtifactFile("model.skops", digest(b"weights one"), 11),
    )
    assert v1.scaler == {"mean": [1.5, 2.0], "scale": 0.5}
    assert v1.features == ("requests", "ttfb_p95")
    assert (v1.train_start, v1.train_end) == (
        dt.date(2026, 10, 1),
        dt.datetime(2026, 10, 31, 23, 59, tzinfo=dt.UTC),
    )
    assert v1.library_versions["pandas"] == pd.__version__
    assert v1.library_versions["numpy"] == np.__version__
    assert list_models(store) == [v1, v2]
    assert list_models(store, SERIES) == [v1, v2]

    prefix = f"models/{STORED_SERIES}/{DETECTOR}/v1"
    assert [f for f in store.list_files("models") if f.startswith(prefix)] == [
        f"{prefix}/artifact/config/manifest.json",
        f"{prefix}/artifact/model.skops",
        f"{prefix}/manifest.json",
    ]

    files, model = fetch_files(store, SERIES, DETECTOR, "v2")
    assert model == v2
    assert files == {"config/manifest.json": b'{"window": 30}', "model.skops": b"weights two"}

    # An integer version means the same as its label.
    assert fetch_files(store, SERIES, DETECTOR, 1)[1] == v1


def test_tampered_artifact_is_refused(store: Lake, tmp_path: Path) -> None:
    register_version(store, tmp_path, b"weights one")
    register_version(store, tmp_path, b"weights two")
    stored = f"models/{STORED_SERIES}/{DETECTOR}/v1/artifact/model.skops"
    flipped = bytearray(store.read_bytes(stored))
    flipped[3] ^= 0x01
    store.write_bytes(stored, bytes(flipped))

    with pytest.raises(ArtifactIntegrityError) as refused:
        fetch_files(store, SERIES, DETECTOR, "v1")
    message = str(refused.value)
    assert f"{SERIES}/{DETECTOR}@v1" in message
    assert "'model.skops' has sha256 " + digest(bytes(flipped)) in message
    assert "Retrain" in message and "roll the series back" in message
    assert isinstance(refused.value, PassionError)

    # The other version is untouched and still loads.
    assert fetch_files(store, SERIES, DETECTOR, "v2")[0]["model.skops"] == b"weights two"


def test_extra_or_missing_files_are_refused(store: Lake, tmp_path: Path) -> None:
    register_version(store, tmp_path, b"weights one")
    version_folder = f"models/{STORED_SERIES}/{DETECTOR}/v1"

    store.write_bytes(f"{version_folder}/artifact/payload.pkl", b"cos\nsystem\n")
    with pytest.raises(ArtifactIntegrityError, match=r"does not list: artifact/payload\.pkl"):
        fetch_files(store, SERIES, DETECTOR, "v1")

    store.delete(f"{version_folder}/artifact/payload.pkl")
    store.delete(f"{version_folder}/artifact/model.skops")
    with pytest.raises(
        ArtifactIntegrityError, match=r"missing from .*: artifact/model\.skops\. Nothing was loaded"
    ):
        fetch_files(store, SERIES, DETECTOR, "v1")


def test_live_model_follows_the_day_and_rollback_appends(store: Lake, tmp_path: Path) -> None:
    register_version(store, tmp_path, b"weights one")
    register_version(store, tmp_path, b"weights two")
    assert live(store, SERIES, "2026-11-05") is None

    promote(store, SERIES, DETECTOR, "v1", effective_from=dt.date(2026, 11, 1), reason="first model")
    promote(store, SERIES, DETECTOR, "v2", effective_from=dt.date(2026, 11, 10))

    def live_version(day: str) -> str | None:
        model = live(store, SERIES, day)
        return model and model.version

    assert [live_version(d) for d in ("2026-10-31", "2026-11-05", "2026-11-10", "2026-11-20")] == [
        None,
        "v1",
        "v2",
        "v2",
    ]
    with pytest.raises(NoLiveModelError, match=r"on 2026-10-31: the first takes effect 2026-11-01"):
        require_live(store, SERIES, "2026-10-31")

    rolled = rollback(store, SERIES, effective_from=dt.date(2026, 11, 15), reason="v2 pages too often")
    assert (rolled.version, rolled.rolled_back_from) == ("v1", f"{SERIES}/{DETECTOR}@v2")
    assert [live_version(d) for d in ("2026-11-05", "2026-11-12", "2026-11-15", "2026-11-30")] == [
        "v1",
        "v2",
        "v1",
        "v1",
    ]
    assert [(p.version, p.effective_from.isoformat(), p.reason) for p in history(store, SERIES)] == [
        ("v1", "2026-11-01", "first model"),
        ("v2", "2026-11-10", ""),
        ("v1", "2026-11-15", "v2 pages too often"),
    ]
    # v1 is the only model left to go back to.
    with pytest.raises(RegistryError, match=r"@v1 is the only model live up to 2026-11-16"):
        rollback(store, SERIES, effective_from=dt.date(2026, 11, 16))
    assert len(history(store, SERIES)) == 3


def test_repeated_rollbacks_go_further_back(lake: Lake, tmp_path: Path) -> None:
    for n in (1, 2, 3):
        register_version(lake, tmp_path, f"weights {n}".encode())
        promote(lake, SERIES, DETECTOR, n, effective_from=dt.date(2026, 11, n))

    assert rollback(lake, SERIES, effective_from=dt.date(2026, 11, 5)).version == "v2"
    assert rollback(lake, SERIES, effective_from=dt.date(2026, 11, 6)).version == "v1"
    assert [p.version for p in history(lake, SERIES)] == ["v1", "v2", "v3", "v2", "v1"]
    # A same-day promotion made later wins the tie.
    promote(lake, SERIES, DETECTOR, 3, effective_from=dt.date(2026, 11, 6))
    assert live(lake, SERIES, "2026-11-06").version == "v3"


def test_fetch_without_version_takes_todays_live_model(lake: Lake, tmp_path: Path) -> None:
    register_version(lake, tmp_path, b"weights one")
    register_version(lake, tmp_path, b"weights two")
    with pytest.raises(NoLiveModelError, match=r"registered versions: .*@v1, .*@v2\. Promote one"):
        fetch_files(lake, SERIES, DETECTOR)

    promote(lake, SERIES, DETECTOR, "v1")
    files, model = fetch_files(lake, SERIES, DETECTOR)
    assert (model.version, files["model.skops"]) == ("v1", b"weights one")
    with pytest.raises(NoLiveModelError, match=r"no 'lstm' model is live .* the live model is .*@v1"):
        fetch_files(lake, SERIES, "lstm")


def test_names_with_braces_equals_and_slashes_round_trip(store: Lake, tmp_path: Path) -> None:
    register_version(store, tmp_path, b"braces", series=SERIES)
    register_version(store, tmp_path, b"slashes", series=NAB_SERIES)
    promote(store, NAB_SERIES, DETECTOR, "v1", effective_from="2026-11-01")

    assert [m.series for m in list_models(store)] == [SERIES, NAB_SERIES]
    assert {f.split("/")[1] for f in store.list_files("models")} == {
        STORED_SERIES,
        "nab%2FrealKnownCause%2Fnyc_taxi",
    }
    assert live(store, NAB_SERIES, "2026-11-02").series == NAB_SERIES
    assert live(store, SERIES, "2026-11-02") is None
    assert fetch_files(store, NAB_SERIES, DETECTOR, "v1")[0]["model.skops"] == b"slashes"


def test_unknown_names_list_what_exists(lake: Lake, tmp_path: Path) -> None:
    register_version(lake, tmp_path, b"weights one")
    register_version(lake, tmp_path, b"weights two")
    with pytest.raises(
        UnknownModelError, match=r"series 'cdn_ttfb_p95'.*registered series: cdn_ttfb_p95\{edge"
    ):
        fetch_files(lake, "cdn_ttfb_p95", DETECTOR, "v1")
    with pytest.raises(UnknownModelError, match=r"has no 'lstm' model; its detectors: isolation_forest$"):
        promote(lake, SERIES, "lstm", "v1")
    with pytest.raises(UnknownModelError, match=r"has no version 'v9'; its versions: v1, v2$"):
        fetch_files(lake, SERIES, DETECTOR, 9)
    with pytest.raises(UnknownModelError, match=r"has no version '\.\./v1'"):
        fetch_files(lake, SERIES, DETECTOR, "../v1")
    with pytest.raises(UnknownModelError, match="registered series: cdn_ttfb_p95"):
        history(lake, "nope")
    with pytest.raises(RegistryError, match=r"'promotions\.json' cannot name a series or detector"):
        register_version(lake, tmp_path, b"x", series="promotions.json")


def test_incomplete_version_is_not_listed_and_its_number_not_reused(lake: Lake, tmp_path: Path) -> None:
    register_version(lake, tmp_path, b"weights one")
    lake.write_bytes(f"models/{STORED_SERIES}/{DETECTOR}/v2/artifact/model.skops", b"half an upload")

    assert [m.version for m in list_models(lake)] == ["v1"]
    assert register_version(lake, tmp_path, b"weights three").version == "v3"


def test_values_that_are_not_json_are_refused_before_anything_is_written(lake: Lake, tmp_path: Path) -> None:
    with pytest.raises(
        RegistryError, match="cannot record the model's params: object is not JSON serialisable"
    ):
        register(
            lake,
            SERIES,
            DETECTOR,
            saved_model(tmp_path / "saved", b"w"),
            params={"estimator": object()},
            features=[],
            scaler=None,
            threshold=1.0,
            train_start=dt.date(2026, 10, 1),
            train_end=dt.date(2026, 10, 31),
            fingerprint="",
            metrics={},
        )
    assert lake.list_files("models") == []


def test_fingerprint_is_stable_and_sees_every_value() -> None:
    def frame(values: list[float], start: str = "2026-11-01") -> pd.DataFrame:
        index = pd.date_range(start, periods=3, freq="min", tz="UTC")
        return pd.DataFrame({"requests": values, "errors": [0.0, 1.0, 0.0]}, index=index)

    original = fingerprint(frame([1.0, 2.0, 3.0]))
    # A fixed value: stored fingerprints stay comparable across processes and releases.
    assert original == "b0bd5786066fee27ff49e4d59e3d12e4c8ed38be7c00adfec21b8268ecb29453"
    assert fingerprint(frame([1.0, 2.0, 3.0])) == original
    same_instants = frame([1.0, 2.0, 3.0])
    same_instants.index = same_instants.index.as_unit("ns").tz_convert("Europe/Berlin")
    assert fingerprint(same_instants) == original
    assert fingerprint(frame([1.0, 2.0, 3.5])) != original
    assert fingerprint(frame([1.0, 2.0, 3.0], start="2026-11-02")) != original
    assert fingerprint(frame([1.0, 2.0, 3.0]).rename(columns={"errors": "5xx"})) != original
    assert fingerprint(frame([1.0, 2.0, 3.0]).astype("float32")) != original


def test_a_backdated_promotion_covers_only_the_days_before_the_next(lake: Lake, tmp_path: Path) -> None:
    register_version(lake, tmp_path, b"weights one")
    register_version(lake, tmp_path, b"weights two")
    promote(lake, SERIES, DETECTOR, "v2", effective_from=dt.date(2026, 11, 10))
    promote(lake, SERIES, DETECTOR, "v1", effective_from=dt.date(2026, 11, 1), reason="backfill October")

    assert [live(lake, SERIES, day).version for day in ("2026-11-01", "2026-11-09", "2026-11-10")] == [
        "v1",
        "v1",
        "v2",
    ]
