"""Training into the registry, scoring a day with the model live on it, and applying a model elsewhere."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from passion_tasks import cli, steps
from passion_tasks.defaults import DETECTOR_DEFAULTS
from passion_tasks.errors import ExitCode, NoInputError, UsageError
from passion_tasks.lake import Lake, schemas
from passion_tasks.models import registry
from passion_tasks.models.scoring import SeriesNotScored
from passion_tasks.models.training import apply_model, parse_model_ref

START = dt.date(2026, 11, 1)
DAYS = 6
SPIKE = pd.Timestamp("2026-11-06 12:00", tz="UTC")


def write_features(lake: Lake, names: tuple[str, ...] = ("cif",)) -> None:
    """Six days of a noisy daily cycle for ``cif`` (and each other series named), with a 10-minute surge
    on the last day."""
    index = pd.date_range(pd.Timestamp(START, tz="UTC"), periods=DAYS * 1440, freq="min")
    minutes = np.arange(len(index))
    values = (
        1000 + 300 * np.sin(2 * np.pi * minutes / 1440) + np.random.default_rng(3).normal(0, 10, len(index))
    )
    values[(index >= SPIKE) & (index < SPIKE + pd.Timedelta(minutes=10))] += 400
    frame = pd.concat(
        pd.DataFrame(
            {"ts": index, "series": name, "metric": name, "dim": "", "dim_value": "", "value": values}
        )
        for name in names
    )
    for day, rows in frame.groupby(frame["ts"].dt.date):
        table = pa.Table.from_pandas(rows, schema=schemas.FEATURES, preserve_index=False)
        lake.write_partition("features", day, table, schema=schemas.FEATURES, key={"source": "metrics"})


@pytest.fixture
def featured(lake: Lake) -> Lake:
    write_features(lake)
    return lake


def test_backfill_scores_each_day_with_the_model_live_that_day(featured: Lake) -> None:
    lake = featured
    first = steps.train(
        lake, "rolling_mad", series=["cif"], train_from=START, train_to="2026-11-03", promote=True
    )
    assert first.trained == {"cif": "cif/rolling_mad@v1"}
    assert first.promoted_from == dt.date(2026, 11, 4)
    second = steps.train(
        lake,
        "rolling_mad",
        series=["cif"],
        train_from=START,
        train_to="2026-11-04",
        params={"window": 30},
        promote=True,
    )
    assert second.trained == {"cif": "cif/rolling_mad@v2"}

    for day in ("2026-11-04", "2026-11-05", "2026-11-06"):
        steps.score_day(lake, day, series=["cif"])
    versions = {
        day: set(lake.read_partition("scores", day).column("model_version").to_pylist())
        for day in ("2026-11-04", "2026-11-05", "2026-11-06")
    }
    assert versions == {
        "2026-11-04": {"cif/rolling_mad@v1"},
        "2026-11-05": {"cif/rolling_mad@v2"},
        "2026-11-06": {"cif/rolling_mad@v2"},
    }
    # Nothing was live before the first model's training ended.
    with pytest.raises(
        NoInputError,
        match=re.escape("""1 of 1 series not scored: {'cif': "no model was live on 2026-11-03"""),
    ):
        steps.score_day(lake, "2026-11-03", series=["cif"])

    events = lake.read_partition("events", "2026-11-06").to_pandas()
    assert ((events["start"] <= SPIKE + pd.Timedelta(minutes=9)) & (events["end"] >= SPIKE)).any()
    scores = lake.read_partition("scores", "2026-11-06").to_pandas()
    assert len(scores) == 1440 and scores["ts"].is_monotonic_increasing

    # Rolling back makes v1 live again from its effective day on; a re-run of the day replaces its rows.
    registry.rollback(lake, "cif", effective_from="2026-11-06", reason="v2 too noisy")
    steps.score_day(lake, "2026-11-06", series=["cif"])
    again = lake.read_partition("scores", "2026-11-06").to_pandas()
    assert len(again) == 1440
    assert set(again["model_version"]) == {"cif/rolling_mad@v1"}


def test_a_series_scored_again_replaces_its_rows_in_its_days_batch_and_no_others(lake: Lake) -> None:
    write_features(lake, names=("cif", "cof"))
    day = "2026-11-06"
    five_days = {"train_from": START, "train_to": "2026-11-05", "promote": True}
    steps.train(lake, "rolling_mad", series=["cif", "cof"], **five_days)
    # A day scored before scores were written by batches: a leaf per series, retired by the next batch.
    stale = pd.DataFrame(
        {
            "ts": pd.date_range(day, periods=5, freq="min", tz="UTC"),
            "series": "cof",
            "detector": "rolling_mad",
        }
    ).assign(
        model_version="cof/rolling_mad@v0",
        value=1.0,
        expected=1.0,
        score=0.0,
        threshold=1.0,
        is_anomaly=False,
    )
    table = pa.Table.from_pandas(stale, schema=schemas.SCORES, preserve_index=False)
    lake.write_partition("scores", day, table, schema=schemas.SCORES, key={"series": "cof"})

    assert steps.score_day(lake, day).series_scored == 2
    [leaf] = lake.leaves("scores", day)
    assert (len(leaf.files), leaf.rows) == (1, 2 * 1440)
    assert steps.scored_series(lake, day) == ["cif", "cof"]

    steps.train(lake, "rolling_mad", series=["cof"], params={"window": 30}, **five_days)
    steps.score_day(lake, day, series=["cof"])
    scores = lake.read_partition("scores", day, columns=["series", "model_version"]).to_pandas()
    assert scores.value_counts().to_dict() == {
        ("cif", "cif/rolling_mad@v1"): 1440,
        ("cof", "cof/rolling_mad@v2"): 1440,
    }
    assert len(lake.partition("scores", day).files) == 2


def test_a_tampered_artifact_is_refused_at_scoring(featured: Lake) -> None:
    lake = featured
    steps.train(lake, "rolling_mad", series=["cif"], train_from=START, train_to="2026-11-05", promote=True)
    artifact = next(f for f in lake.list_files("models") if f.endswith("arrays.npz"))
    data = bytearray(lake.read_bytes(artifact))
    data[len(data) // 2] ^= 0xFF
    lake.write_bytes(artifact, bytes(data))
    with pytest.raises(SeriesNotScored, match="1 of 1 series not scored") as refused:
        steps.score_day(lake, "2026-11-06", series=["cif"])
    assert "failed its integrity check: artifact file 'arrays.npz' has sha256" in str(refused.value)
    assert refused.value.exit_code == ExitCode.MODEL_REFUSED


def test_apply_a_saved_model_to_another_dataset(featured: Lake, tmp_path: Path) -> None:
    lake = featured
    steps.train(lake, "rolling_mad", series=["cif"], train_from=START, train_to="2026-11-05")
    other = pd.DataFrame(
        {
            "timestamp": pd.date_range("2027-01-01", periods=300, freq="min").strftime("%Y-%m-%d %H:%M:%S"),
            "requests": np.r_[np.full(150, 900.0), np.full(150, 2500.0)] + np.tile([0.0, 5.0, -5.0], 100),
        }
    ).drop(index=[10, 11])  # a gap the model must see as missing minutes
    source = tmp_path / "other.csv"
    other.to_csv(source, index=False)

    result = apply_model(lake, "cif/rolling_mad", source)
    assert len(result) == 300  # the two missing minutes are back on the grid
    # The baseline's defaults score a row by the median deviation of its last 3 minutes: the level
    # shift at row 150 is flagged once most of them are shifted.
    assert DETECTOR_DEFAULTS["rolling_mad"]["persistence"] == 3
    assert result["is_anomaly"].iloc[151]
    assert not result["is_anomaly"].iloc[100:151].any()

    out = tmp_path / "scored.parquet"
    assert (
        cli.main(
            [
                "apply",
                "--model",
                "cif/rolling_mad@v1",
                "--input",
                str(source),
                "--out",
                str(out),
                "--lake",
                lake.url,
            ]
        )
        == 0
    )
    pd.testing.assert_frame_equal(pd.read_parquet(out), result, check_dtype=False)

    two_columns = tmp_path / "two.csv"
    other.assign(extra=1.0).to_csv(two_columns, index=False)
    with pytest.raises(UsageError, match="trained on 1 feature"):
        apply_model(lake, "cif/rolling_mad", two_columns)


def test_model_references_and_cli(featured: Lake, capsys) -> None:
    assert parse_model_ref("cdn_requests{edge=FRA56-P1}/gru@v3") == (
        "cdn_requests{edge=FRA56-P1}",
        "gru",
        "v3",
    )
    assert parse_model_ref("nab/realKnownCause/nyc_taxi/pca") == ("nab/realKnownCause/nyc_taxi", "pca", None)
    with pytest.raises(UsageError):
        parse_model_ref("just-a-name")
    lake = featured
    assert (
        cli.main(
            [
                "train",
                "--detector",
                "rolling_mad",
                "--series",
                "cif",
                "--train-from",
                "2026-11-01",
                "--train-to",
                "2026-11-04",
                "--param",
                "window=30",
                "--promote",
                "--lake",
                lake.url,
            ]
        )
        == 0
    )
    assert (
        "trained 1 rolling_mad models on 2026-11-01..2026-11-04, live from 2026-11-05"
        in capsys.readouterr().out
    )
    assert cli.main(["models", "list", "--lake", lake.url]) == 0
    listing = capsys.readouterr().out
    assert "* cif/rolling_mad@v1" in listing
    assert cli.main(["score", "--day", "2026-11-05", "--lake", lake.url]) == 0
    assert "scored 1 series" in capsys.readouterr().out
    assert cli.main(["train", "--detector", "no_such_model", "--series", "cif", "--lake", lake.url]) == 1


@pytest.mark.parametrize(
    ("name", "window", "features", "parameters"),
    [
        ("lstm_autoencoder", 30, 1, 198_273),
        ("cnn1d", 1440, 1, 4_608_009),
        ("gru_dense", 1440, 1, 13_151),
        ("mlstm_fcn", 1440, 5, 1_750_089),
        # Networks built by their detectors, described as they score: USAD's encoder (30·40+40, then
        # 2 × (40·40+40)) and two decoders (2 × (40·40+40) + 40·30+30 each); OmniAnomaly's two GRUs
        # (3 × (3·32 + 32·32 + 64), 3 × (32·32 + 32·32 + 64)), dense layers with one PReLU slope each, and
        # the latent's mean and log-variance, then the decoder (8·32+32+1, 32·32+32+1, 32·3+3).
        ("usad", 10, 3, 13_540),
        ("omni_anomaly", 10, 3, 13_975),
    ],
)
def test_detectors_describe_prints_the_networks_parameter_counts(
    name, window, features, parameters, capsys
) -> None:
    args = ["detectors", "describe", name, "--window", str(window), "--features", str(features)]
    assert cli.main(args) == 0
    assert capsys.readouterr().out.rstrip().splitlines()[-1] == f"parameters: {parameters}"


def test_detectors_describe_a_detector_without_a_network(capsys) -> None:
    # --window sizes a network; a detector without one is described as it is.
    assert cli.main(["detectors", "describe", "isolation_forest", "--window", "10"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("isolation_forest: IsolationForestDetector") and "parameters: 0" in out


def test_detectors_list_names_the_whole_zoo(capsys) -> None:
    assert cli.main(["detectors", "list"]) == 0
    names = capsys.readouterr().out.split()
    assert {
        "lstm",
        "gru",
        "gru_dense",
        "cnn1d",
        "lstm_ohlc",
        "mlstm_fcn",
        "lstm_autoencoder",
        "isolation_forest",
        "one_class_svm",
        "elliptic_envelope",
        "kmeans",
        "pca",
        "knn",
        "xgboost",
        "fusion",
        "windowed_gaussian",
        "rolling_mad",
        "seasonal_naive",
        "likelihood",
        "rate",
        "percentile",
        "geometric_mean",
        "size",
        "count",
        "profile",
        "constant",
        "sub_pca",
        "kmeans_ad",
        "poly",
        "usad",
        "omni_anomaly",
        "windowed_cnn",
    } == set(names)


def test_score_batches_cut_the_series_with_a_live_model_in_order(lake: Lake) -> None:
    from cluster import fleet_names, train_fleet, write_fleet

    days = [START, START + dt.timedelta(days=1), START + dt.timedelta(days=2)]
    names = fleet_names(6)
    write_fleet(lake, names, days)
    # The last series has features but no model: it is not scored, so it is in no batch.
    train_fleet(lake, names[:5], days[:2], live_from=days[2])
    assert steps.score_batches(lake, days[2], 2) == [names[0:2], names[2:4], names[4:5]]
    assert steps.score_batches(lake, days[2], 25) == [names[:5]]
    # Before the models are live, nothing is to be scored.
    with pytest.raises(NoInputError, match=f"no series with features on {days[1]} has a live model"):
        steps.score_batches(lake, days[1], 2)
    with pytest.raises(UsageError, match="at least 1, not 0"):
        steps.score_batches(lake, days[2], 0)


def test_the_nightly_run_takes_a_budget_and_a_tighter_one_sets_a_higher_threshold(featured: Lake) -> None:
    def nightly(budget: float | None) -> float:
        summary = steps.train(
            featured, series=["cif"], train_from=START, train_to="2026-11-04", budget=budget
        )
        series, detector, version = parse_model_ref(summary.trained["cif"])
        (model,) = [
            m
            for m in registry.list_models(featured, series)
            if (m.detector, m.version) == (detector, version)
        ]
        assert model.params["threshold"] == "false_alarm_budget"
        assert (model.params.get("threshold_params") or {}).get("incidents_per_30_days") == budget
        return model.threshold

    assert nightly(0.01) > nightly(1.0)
    for budget in (0, -1.0, True):
        with pytest.raises(UsageError, match="false-alarm budget must be a positive number"):
            steps.train(featured, series=["cif"], train_to="2026-11-04", budget=budget)


def test_the_nightly_budget_shrinks_with_the_series_a_deployment_watches(lake: Lake) -> None:
    def watching(edges: int, day: dt.date) -> float:
        # Each edge's 5xx rate is watched; its median latency only explains incidents.
        names = [
            f"cdn_{metric}{{edge=E{edge}}}" for edge in range(edges) for metric in ("5xx_rate", "ttfb_p50")
        ]
        rows = {
            "ts": [dt.datetime.combine(day, dt.time(), dt.UTC)] * len(names),
            "series": names,
            "metric": [name.partition("{")[0] for name in names],
            "dim": ["edge"] * len(names),
            "dim_value": [name.partition("=")[2].rstrip("}") for name in names],
            "value": [0.0] * len(names),
        }
        lake.write_partition("features", day, pa.table(rows, schema=schemas.FEATURES), key={"source": "cdn"})
        return steps.nightly_budget(lake, day)

    # 300 series at 0.1 false incidents per 30 days make one a day; 1,200 at 0.025 too.
    assert watching(100, dt.date(2026, 11, 1)) == 0.1
    assert watching(1200, dt.date(2026, 11, 2)) == pytest.approx(0.025, rel=1e-12)
    assert steps.nightly_budget(lake, dt.date(2026, 11, 3)) == 0.1


def test_a_server_metric_with_one_training_day_falls_back_to_a_detector_that_can_learn_from_it(
    featured: Lake,
) -> None:
    summary = steps.train(featured, series=["cif"], train_from="2026-11-04", train_to="2026-11-04")
    # One day: no daily profile to learn and no days to hold out; the next candidate is trained.
    assert summary.failed == {}
    assert parse_model_ref(summary.trained["cif"])[1] == "rolling_mad"
