"""The lake: atomic partition replace, listing and reading, on a local folder and over S3."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pytest

from passion_tasks.lake import VACUUM_GRACE, Lake, LakeError, PartitionNotFound, as_day
from passion_tasks.lake.vacuum import vacuum

DAY = dt.date(2026, 11, 21)


def rows(values: list[int]) -> pa.Table:
    return pa.table(
        {"ts": pa.array(values, pa.int64()), "value": pa.array([v * 1.5 for v in values], pa.float64())}
    )


def exercise(lake: Lake) -> None:
    lake.write_partition("metrics", DAY, rows([1, 2, 3]))
    assert lake.read_partition("metrics", DAY).column("ts").to_pylist() == [1, 2, 3]

    # Re-running a day replaces it: no doubled rows. The old file stays for readers of the old manifest
    # until a vacuum past the grace period removes it.
    first = lake.partition("metrics", DAY)
    lake.write_partition("metrics", DAY, rows([4, 5]))
    assert lake.read_partition("metrics", DAY).column("ts").to_pylist() == [4, 5]
    second = lake.partition("metrics", DAY)
    data_files = [f for f in lake.list_files("metrics") if f.endswith(".parquet")]
    assert sorted(data_files) == sorted([*first.files, *second.files])
    assert (
        vacuum(
            lake,
        ).removed
        == ()
    )
    later = dt.datetime.now(dt.UTC) + VACUUM_GRACE + dt.timedelta(minutes=1)
    assert vacuum(lake, now=later).removed == first.files
    assert [f for f in lake.list_files("metrics") if f.endswith(".parquet")] == list(second.files)

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


# -- crash leftovers and reading the lake with other tools ------------------------------------------

KILLED_WRITER = """
import os, sys
import pyarrow as pa
from passion_tasks.lake import Lake

lake, when = Lake(sys.argv[1]), sys.argv[2]
if when == "after-publish":
    # Killed between making its data file visible and committing the manifest that names it.
    Lake._commit_manifest = lambda *args: os._exit(9)
schema = pa.schema([("ts", pa.int64()), ("value", pa.float64())])
with lake.partition_writer("cdn_logs", "2026-11-21", schema) as writer:
    writer.write(pa.table({"ts": [8] * 5, "value": [0.5] * 5}))
    if when == "mid-write":
        os._exit(9)
"""


def kill_a_writer(lake: Lake, when: str) -> None:
    done = subprocess.run([sys.executable, "-c", KILLED_WRITER, lake.url, when], check=False)
    assert done.returncode == 9


def read_as_documented(lake: Lake, dataset: str, day: dt.date) -> pa.Table:
    """The README's recipe for reading a leaf with plain pyarrow: the files its manifest names."""
    leaf = f"{lake.root}/{dataset}/dt={day.isoformat()}"
    with lake.fs.open_input_stream(f"{leaf}/_manifest.json") as stream:
        manifest = json.loads(stream.read())
    return pads.dataset([f"{leaf}/{name}" for name in manifest["files"]], filesystem=lake.fs).to_table()


@pytest.mark.parametrize("store", ["local", "s3"])
def test_killed_writers_leave_nothing_a_reader_sees_and_vacuum_removes_it(
    request: pytest.FixtureRequest, store: str
) -> None:
    lake = (
        request.getfixturevalue("lake")
        if store == "local"
        else Lake(f"s3://{request.getfixturevalue('s3_bucket')}/lake")
    )
    lake.write_partition("cdn_logs", DAY, rows([1, 2, 3]))
    kill_a_writer(lake, "mid-write")
    kill_a_writer(lake, "after-publish")
    leaf = f"{lake.root}/cdn_logs/dt={DAY.isoformat()}"
    left = lake.fs.get_file_info(pafs.FileSelector(leaf))
    # Locally the killed write's temporary file is hidden; on S3 an unfinished upload is no object.
    temporary = [info for info in left if info.base_name.endswith(".tmp")]
    assert len(temporary) == (1 if store == "local" else 0) and all(
        info.base_name.startswith(".") for info in temporary
    )

    assert lake.read_partition("cdn_logs", DAY).column("ts").to_pylist() == [1, 2, 3]
    assert read_as_documented(lake, "cdn_logs", DAY).column("ts").to_pylist() == [1, 2, 3]
    # A plain folder read skips hidden files and the manifest, but sees the uncommitted data file.
    assert pads.dataset(leaf, filesystem=lake.fs).count_rows() == 3 + 5

    recent = vacuum(
        lake,
    )
    assert recent.removed == () and recent.kept_recent == (2 if store == "local" else 1)
    later = dt.datetime.now(dt.UTC) + VACUUM_GRACE + dt.timedelta(minutes=1)
    assert len(vacuum(lake, now=later, dry_run=True).removed) == recent.kept_recent
    vacuumed = vacuum(lake, now=later)
    assert len(vacuumed.removed) == recent.kept_recent and vacuumed.freed_bytes > 0
    assert pads.dataset(leaf, filesystem=lake.fs).count_rows() == 3
    assert sorted(lake.list_files(f"cdn_logs/dt={DAY.isoformat()}")) == sorted(
        [f"cdn_logs/dt={DAY.isoformat()}/_manifest.json", *lake.partition("cdn_logs", DAY).files]
    )
    assert lake.read_partition("cdn_logs", DAY).column("ts").to_pylist() == [1, 2, 3]


def test_vacuum_keeps_what_a_manifest_names_and_what_is_not_the_lakes(lake: Lake) -> None:
    lake.write_partition("scores", DAY, rows([1]), key={"series": "a"})
    lake.write_text("reports/dt=2026-11-21/index.html", "<h1>report</h1>")
    lake.write_bytes("models/a/rolling_mad/v1/artifact/part-0.parquet", b"a model's own file")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    assert vacuum(lake, now=later).removed == ()
    assert lake.read_partition("scores", DAY).num_rows == 1
    assert lake.exists("models/a/rolling_mad/v1/artifact/part-0.parquet")


def test_a_name_no_store_can_hold_is_a_lake_error_naming_it(lake: Lake) -> None:
    with pytest.raises(LakeError, match="a lake path segment may have 200 bytes, this one has 307"):
        lake.write_partition("scores", DAY, rows([1]), key={"series": "x" * 300})
    with pytest.raises(LakeError, match="a lake path segment may have 200 bytes"):
        lake.read_bytes("models/" + "y" * 300 + "/promotions.json")
