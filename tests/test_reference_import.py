"""`passion import`: the labelled reference corpora as metric series in the lake, with their labels."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from passion_tasks.corpora.reference import CORPORA, import_corpus, load_labels, load_splits
from passion_tasks.errors import UsageError
from passion_tasks.lake import VACUUM_GRACE, Lake, schemas
from passion_tasks.lake.vacuum import vacuum

UTC = "UTC"


def lake_rows(lake: Lake, corpus: str) -> pd.DataFrame:
    """Every metrics row of ``corpus`` in the lake, read back through the Lake API."""
    days = lake.partitions("metrics")
    table = lake.read_range("metrics", days[0], days[-1], filter=pc.field("source") == corpus)
    return table.to_pandas()


def runs_of_ones(labels: list[int]) -> list[tuple[int, int]]:
    """Inclusive (first, last) index of each run of 1s, the slow obvious way."""
    runs, start = [], None
    for i, label in enumerate([*labels, 0]):
        if label and start is None:
            start = i
        elif not label and start is not None:
            runs.append((start, i - 1))
            start = None
    return runs


def write_kpi_file(folder: Path, name: str, start: str, periods: int, anomalous: range) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    ts = pd.date_range(start, periods=periods, freq="5min", tz=UTC)
    labels = [int(i in anomalous) for i in range(periods)]
    pd.DataFrame(
        {"timestamp": ts.as_unit("s").asi8, "value": np.arange(periods) / 10, "label": labels}
    ).to_csv(folder / f"{name}.csv", index=False)


def test_corpora_are_the_five_reference_sets() -> None:
    assert CORPORA == ("nab", "asd", "smd", "kpi", "nasa-http")


def test_nab_imports_every_row_with_its_windows_and_probation(lake: Lake, reference_data: Path) -> None:
    report = import_corpus(lake, "nab", reference_data)

    assert (report.corpus, report.series, report.rows, report.windows) == ("nab", 58, 365_558, 116)
    rows = lake_rows(lake, "nab")
    assert len(rows) == 365_558
    assert rows["series"].nunique() == 58
    taxi = rows[rows["series"] == "nab/realKnownCause/nyc_taxi"]
    shipped_taxi = pd.read_csv(reference_data / "nab/data/realKnownCause/nyc_taxi.csv")
    assert len(taxi) == 10_320
    assert taxi["value"].tolist() == shipped_taxi["value"].astype(float).tolist()
    assert taxi["ts"].iloc[0] == pd.Timestamp("2014-07-01 00:00", tz=UTC)

    labels = load_labels(lake, "nab")
    assert len(labels) == 58
    assert sum(1 for windows in labels.values() if windows) == 52
    assert sum(len(windows) for windows in labels.values()) == 116
    shipped = json.loads((reference_data / "nab/labels/combined_windows.json").read_text())
    first_start, first_end = shipped["realKnownCause/nyc_taxi.csv"][0]
    assert first_start == "2014-10-30 15:30:00.000000"
    assert labels["nab/realKnownCause/nyc_taxi"][0] == (
        pd.Timestamp(first_start, tz=UTC),
        pd.Timestamp(first_end, tz=UTC),
    )
    written = json.loads(lake.read_bytes("labels/nab/combined_windows.json"))
    assert written["nab/realKnownCause/nyc_taxi"] == shipped["realKnownCause/nyc_taxi.csv"]

    splits = load_splits(lake, "nab")
    # nyc_taxi has 10,320 rows: 15% is 1,548, so the 750-row cap applies.
    assert splits["train_rows"]["nab/realKnownCause/nyc_taxi"] == 750
    assert splits["train_end"]["nab/realKnownCause/nyc_taxi"] == pd.Timestamp(
        shipped_taxi["timestamp"][750], tz=UTC
    )
    # art_daily_no_noise has 4,032 rows: floor(0.15 * 4032) = 604.
    assert splits["train_rows"]["nab/artificialNoAnomaly/art_daily_no_noise"] == 604
    assert "entities" not in splits


def test_asd_server_is_19_metrics_on_a_5_minute_grid_labelled_by_test_label(
    lake: Lake, reference_data: Path
) -> None:
    report = import_corpus(lake, "asd", reference_data, entities=["omi-1"])

    assert (report.series, report.rows) == (19, 19 * (8_640 + 4_320))
    rows = lake_rows(lake, "asd")
    assert rows.groupby("series").size().to_dict() == {f"asd/omi-1/m{i:02d}": 12_960 for i in range(1, 20)}
    m07 = rows[rows["series"] == "asd/omi-1/m07"]
    train = np.loadtxt(reference_data / "asd/train/omi-1.txt.gz", delimiter=",")
    test = np.loadtxt(reference_data / "asd/test/omi-1.txt.gz", delimiter=",")
    assert m07["value"].tolist() == [*train[:, 6], *test[:, 6]]
    assert m07["ts"].iloc[0] == pd.Timestamp("2020-01-01 00:00", tz=UTC)
    assert m07["ts"].iloc[-1] == pd.Timestamp("2020-01-01", tz=UTC) + 12_959 * pd.Timedelta("5min")

    test_start = pd.Timestamp("2020-01-31 00:00", tz=UTC)  # 8,640 rows x 5 min = 30 days
    point_labels = [int(line) for line in (reference_data / "asd/test_label/omi-1.txt").read_text().split()]
    expected = [
        (test_start + first * pd.Timedelta("5min"), test_start + last * pd.Timedelta("5min"))
        for first, last in runs_of_ones(point_labels)
    ]
    labels = load_labels(lake, "asd")
    assert len(expected) == 7
    assert labels["asd/omi-1/m07"] == expected
    assert labels["asd/omi-1/m01"] == expected

    splits = load_splits(lake, "asd")
    assert splits["train_end"]["asd/omi-1/m07"] == test_start
    assert splits["train_rows"]["asd/omi-1/m07"] == 8_640
    assert splits["entities"] == {"omi-1": [f"asd/omi-1/m{i:02d}" for i in range(1, 20)]}


def test_smd_machine_is_38_metrics_on_a_1_minute_grid(lake: Lake, reference_data: Path) -> None:
    report = import_corpus(lake, "smd", reference_data, entities=["machine-1-6"])

    assert (report.series, report.rows) == (38, 38 * (23_688 + 23_689))
    labels = load_labels(lake, "smd")
    assert len(labels["smd/machine-1-6/m12"]) == 30
    test_start = pd.Timestamp("2020-01-01", tz=UTC) + 23_688 * pd.Timedelta("1min")
    # The first run of 1s in test_label/machine-1-6.txt covers test rows 246 to 251.
    assert labels["smd/machine-1-6/m12"][0] == (
        test_start + pd.Timedelta(minutes=246),
        test_start + pd.Timedelta(minutes=251),
    )
    splits = load_splits(lake, "smd")
    assert splits["train_end"]["smd/machine-1-6/m12"] == test_start
    assert len(splits["entities"]["machine-1-6"]) == 38


def test_kpi_rows_windows_and_split(lake: Lake, reference_data: Path) -> None:
    report = import_corpus(lake, "kpi", reference_data)

    assert (report.series, report.rows) == (3, 3 * 17_568)
    assert len(lake_rows(lake, "kpi")) == 3 * 17_568
    shipped = pd.read_csv(reference_data / "kpi/cpu4.csv")
    ts = pd.to_datetime(shipped["timestamp"], unit="s", utc=True)
    expected = [(ts[first], ts[last]) for first, last in runs_of_ones(shipped["label"].tolist())]
    labels = load_labels(lake, "kpi")
    assert len(expected) == 17
    assert labels["kpi/cpu4"] == expected
    assert [
        len(labels[f"kpi/{name}"]) for name in ("server_res_eth1out_curve_6", "server_res_eth1out_curve_61")
    ] == [
        7,
        58,
    ]
    splits = load_splits(lake, "kpi")
    assert splits["train_rows"]["kpi/cpu4"] == 8_784
    assert splits["train_end"]["kpi/cpu4"] == ts[8_784]


def test_nasa_http_leaves_out_unobserved_minutes_and_labels_the_outage(
    lake: Lake, reference_data: Path
) -> None:
    report = import_corpus(lake, "nasa-http", reference_data)

    shipped = pd.read_csv(reference_data / "nasa_http/requests_per_minute.csv")
    assert len(shipped) == 89_280
    assert (shipped["in_trace"] == 1).sum() == 84_333
    assert report.rows == 84_333
    rows = lake_rows(lake, "nasa-http").set_index("ts")
    assert len(rows) == 84_333
    assert rows["value"].notna().all()
    # 1995-07-28 13:33 EDT was outside the trace: no data, so no row (not a zero).
    assert pd.Timestamp("1995-07-28 17:33", tz=UTC) not in rows.index
    assert rows.loc[pd.Timestamp("1995-07-01 04:00", tz=UTC), "value"] == 42.0

    outage = pd.to_datetime(shipped.loc[shipped["outage"] == 1, "timestamp"], utc=True)
    expected = (pd.Timestamp("1995-08-01 18:52", tz=UTC), pd.Timestamp("1995-08-03 08:36", tz=UTC))
    assert (outage.min(), outage.max()) == expected  # 14:52 and 04:36 EDT, as the README says
    assert load_labels(lake, "nasa-http") == {"nasa-http/requests": [expected]}
    assert load_splits(lake, "nasa-http")["train_end"]["nasa-http/requests"] == pd.Timestamp(
        "1995-08-01 04:00", tz=UTC
    )


def test_reimport_replaces_rows_instead_of_adding_them(lake: Lake, reference_data: Path) -> None:
    import_corpus(lake, "kpi", reference_data)
    files = lake.list_files("metrics")
    report = import_corpus(lake, "kpi", reference_data)

    assert report.rows == 3 * 17_568
    assert len(lake_rows(lake, "kpi")) == 3 * 17_568
    # The replaced files stay for readers of the old manifests until a vacuum past the grace period.
    later = dt.datetime.now(dt.UTC) + VACUUM_GRACE + dt.timedelta(minutes=1)
    assert len(vacuum(lake, now=later).removed) == len(files) // 2
    assert len(lake.list_files("metrics")) == len(files)


def test_reimport_drops_days_it_no_longer_covers_and_keeps_other_sources(lake: Lake, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    write_kpi_file(first / "kpi", "web", "2024-03-01", periods=2 * 288, anomalous=range(10, 13))
    write_kpi_file(second / "kpi", "web", "2024-03-05", periods=288, anomalous=range(0))
    import_corpus(lake, "kpi", first)
    server = pd.DataFrame(
        {
            "ts": pd.date_range("2024-03-01", periods=5, freq="min", tz=UTC),
            "source": "server",
            "series": "cpu",
        }
    ).assign(value=1.0)
    lake.write_partition(
        "metrics",
        "2024-03-01",
        pa.Table.from_pandas(server, schema=schemas.METRICS, preserve_index=False),
        key={"source": "server"},
    )

    assert load_labels(lake, "kpi") == {
        "kpi/web": [(pd.Timestamp("2024-03-01 00:50", tz=UTC), pd.Timestamp("2024-03-01 01:00", tz=UTC))]
    }
    report = import_corpus(lake, "kpi", second)

    assert (report.rows, report.days, report.windows) == (288, 1, 0)
    assert lake.partitions("metrics") == [
        pd.Timestamp("2024-03-01").date(),
        pd.Timestamp("2024-03-05").date(),
    ]
    assert not lake.has_partition("metrics", "2024-03-01", key={"source": "kpi"})
    assert lake.read_partition("metrics", "2024-03-01").column("source").to_pylist() == ["server"] * 5
    assert load_labels(lake, "kpi") == {"kpi/web": []}


def test_root_may_be_a_nab_checkout_itself(lake: Lake, tmp_path: Path) -> None:
    (tmp_path / "data/realTest").mkdir(parents=True)
    (tmp_path / "labels").mkdir()
    ts = pd.date_range("2024-01-01", periods=100, freq="5min")
    pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "value": range(100)}).to_csv(
        tmp_path / "data/realTest/flat.csv", index=False
    )
    window = ["2024-01-01 05:00:00.000000", "2024-01-01 05:30:00.000000"]
    (tmp_path / "labels/combined_windows.json").write_text(json.dumps({"realTest/flat.csv": [window]}))

    report = import_corpus(lake, "nab", tmp_path)

    assert (report.series, report.rows, report.windows) == (1, 100, 1)
    assert json.loads(lake.read_bytes("labels/nab/combined_windows.json")) == {"nab/realTest/flat": [window]}
    splits = load_splits(lake, "nab")
    assert splits["train_rows"] == {"nab/realTest/flat": 15}
    assert splits["train_end"] == {"nab/realTest/flat": pd.Timestamp("2024-01-01 01:15", tz=UTC)}


def test_root_may_be_a_machine_checkout_with_uncompressed_files_of_other_machines(
    lake: Lake, tmp_path: Path
) -> None:
    """OmniAnomaly's ``ServerMachineDataset`` ships ``<machine>.txt`` uncompressed; a machine we do not
    have (``machine-3-1``) reads as ours do."""
    rng = np.random.default_rng(0)
    train, test = rng.random((20, 3)), rng.random((10, 3))
    for part, values, fmt in (("train", train, "%.6f"), ("test", test, "%.6f"), ("test_label", None, "%d")):
        (tmp_path / part).mkdir()
        rows = values if values is not None else np.array([0, 0, 0, 1, 1, 0, 0, 0, 0, 1])
        np.savetxt(tmp_path / part / "machine-3-1.txt", rows, fmt=fmt, delimiter=",")

    report = import_corpus(lake, "smd", tmp_path)

    assert (report.series, report.rows, report.windows) == (3, 90, 6)
    rows = lake_rows(lake, "smd")
    m02 = rows[rows["series"] == "smd/machine-3-1/m02"].sort_values("ts")["value"].to_numpy()
    np.testing.assert_allclose(m02, np.concatenate([train[:, 1], test[:, 1]]), atol=1e-6)
    start = pd.Timestamp("2020-01-01", tz=UTC)
    assert load_labels(lake, "smd")["smd/machine-3-1/m01"] == [
        (start + pd.Timedelta(minutes=23), start + pd.Timedelta(minutes=24)),
        (start + pd.Timedelta(minutes=29), start + pd.Timedelta(minutes=29)),
    ]


def test_root_may_be_a_folder_of_other_kpis(lake: Lake, tmp_path: Path) -> None:
    write_kpi_file(tmp_path, "05f10d3a", "2024-03-01", periods=288, anomalous=range(200, 203))

    report = import_corpus(lake, "kpi", tmp_path)

    assert (report.series, report.rows, report.windows) == (1, 288, 1)
    assert load_splits(lake, "kpi")["train_rows"] == {"kpi/05f10d3a": 144}


def test_unknown_corpus_is_a_usage_error(lake: Lake) -> None:
    with pytest.raises(
        UsageError, match=r"unknown corpus 'yahoo'; choose one of nab, asd, smd, kpi, nasa-http"
    ):
        import_corpus(lake, "yahoo")


def test_missing_folder_names_the_path(lake: Lake, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=f"no asd data at {tmp_path / 'asd'}"):
        import_corpus(lake, "asd", tmp_path)
    assert lake.list_files("") == []


def test_nab_checkout_without_labels_names_the_missing_file(lake: Lake, tmp_path: Path) -> None:
    (tmp_path / "nab/data/realTest").mkdir(parents=True)
    (tmp_path / "nab/data/realTest/flat.csv").write_text("timestamp,value\n2024-01-01 00:00:00,1\n")

    with pytest.raises(UsageError, match=f"missing file {tmp_path / 'nab/labels/combined_windows.json'}"):
        import_corpus(lake, "nab", tmp_path)
    assert lake.list_files("") == []


def test_unknown_entity_and_labels_before_import_are_usage_errors(lake: Lake, reference_data: Path) -> None:
    with pytest.raises(UsageError, match=r"unknown smd entities \['machine-9-9'\]"):
        import_corpus(lake, "smd", reference_data, entities=["machine-9-9"])
    with pytest.raises(UsageError, match="entities can only be chosen for asd and smd, not kpi"):
        import_corpus(lake, "kpi", reference_data, entities=["cpu4"])
    with pytest.raises(UsageError, match=r"run `passion import --corpus asd`"):
        load_labels(lake, "asd")


def test_import_into_an_s3_lake(s3_bucket: str, tmp_path: Path) -> None:
    lake = Lake(f"s3://{s3_bucket}/passion")
    write_kpi_file(tmp_path / "kpi", "web", "2024-03-01", periods=2 * 288, anomalous=range(10, 13))
    write_kpi_file(tmp_path / "again" / "kpi", "web", "2024-03-02", periods=288, anomalous=range(0))

    assert import_corpus(lake, "kpi", tmp_path).days == 2
    import_corpus(lake, "kpi", tmp_path / "again")

    assert lake.partitions("metrics") == [pd.Timestamp("2024-03-02").date()]
    assert len(lake_rows(lake, "kpi")) == 288
    assert load_splits(lake, "kpi")["train_rows"] == {"kpi/web": 144}
