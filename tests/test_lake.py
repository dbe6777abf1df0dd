"""The lake: atomic partition replace, listing and reading, on a local folder and over S3."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from passion_tasks.lake import Lake, LakeError, PartitionNotFound, as_day

DAY = dt.date(2026, 11, 21)


def rows(values: list[int]) -> pa.Table:
    return pa.table(
        {"ts": pa.array(values, pa.int64()), "value": pa.array([v * 1.5 for v in values], pa.float64())}
    )


def exercise(lake: Lake) -> None:
    lake.write_partition("metrics", DAY, rows([1, 2, 3]))
    assert lake.read_partition("metrics", DAY).column("ts").to_pylist() == [1, 2, 3]

    # Re-running a day replaces it: no doubled rows, and the old files are gone.
    lake.write_partition("metrics", DAY, rows([4, 5]))
    assert lake.read_partition("metrics", DAY).column("ts").to_pylist() == [4, 5]
    data_files = [f for f in lake.list_files("metrics") if f.endswith(".parquet")]
    assert len(data_files) == 1

    lake.write_partition("metrics", DAY + dt.timedelta(days=2), rows([7]))
    assert lake.partitions("metrics") == [DAY, DAY + dt.timedelta(days=2)]
    got = lake.read_range("metrics", DAY, DAY + dt.timedelta(days=2)).column("ts").to_pylist()
    assert sorted(got) == [4, 5, 7]

    # Leaves under one day are independent: re-writing one keeps the other.
    lake.write_partition("metrics", DAY, rows([10]), key={"source": "nab"})
    lake.write_partition("metrics", DAY, rows([20, 21]), key={"source": "asd/omi-1"})
    lake.write_partition("metrics", DAY, rows([22]), key={"source": "asd/omi-1"})
    assert sorted(lake.read_partition("metrics", DAY).column("ts").to_pylist()) == [4, 5, 10, 22]
    assert lake.read_partition("metrics", DAY, key={"source": "asd/omi-1"}).num_rows == 1

    lake.write_text("reports/dt=2026-11-21/index.html", "<h1>hi</h1>")
    assert lake.read_bytes("reports/dt=2026-11-21/index.html") == b"<h1>hi</h1>"
    assert lake.exists("reports/dt=2026-11-21/index.html")

    with pytest.raises(PartitionNotFound, match="dt=2026-11-22"):
        lake.read_partition("metrics", "2026-11-22")


def test_local_lake_partitions(lake: Lake) -> None:
    exercise(lake)


def test_failure_mid_write_keeps_previous_partition(lake: Lake) -> None:
    lake.write_partition("cdn_logs", DAY, rows([1, 2, 3]), meta={"run": 1})

    schema = rows([]).schema
    with (
        pytest.raises(RuntimeError, match="disk on fire"),
        lake.partition_writer("cdn_logs", DAY, schema, meta={"run": 2}) as writer,
    ):
        writer.write(rows([9, 9, 9, 9]))
        raise RuntimeError("disk on fire")

    partition = lake.partition("cdn_logs", DAY)
    assert partition.meta == {"run": 1}
    assert lake.read_partition("cdn_logs", DAY).column("ts").to_pylist() == [1, 2, 3]
    # The failed writer left nothing behind, not even a temporary file.
    assert [f.rsplit("/", 1)[1] for f in lake.list_files("cdn_logs")] == [
        "_manifest.json",
        partition.files[0].rsplit("/", 1)[1],
    ]


def test_bad_days_and_urls_are_refused() -> None:
    with pytest.raises(LakeError, match="not a day"):
        as_day("21/11/2026")
    with pytest.raises(LakeError, match="unsupported lake URL"):
        Lake("ftp://example/lake")
    with pytest.raises(LakeError, match="needs a bucket"):
        Lake("s3:///prefix")


def test_lake_url_falls_back_to_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PASSION_LAKE", (tmp_path / "env-lake").as_uri())
    assert Lake().url == (tmp_path / "env-lake").as_uri()
    assert Lake((tmp_path / "explicit").as_uri()).url == (tmp_path / "explicit").as_uri()


def test_s3_lake_over_http(s3_bucket: str) -> None:
    lake = Lake(f"s3://{s3_bucket}/passion")
    exercise(lake)
    assert lake.uri("metrics") == f"s3://{s3_bucket}/passion/metrics"
