"""A day's leaf written by batches: each batch replaces exactly its members' rows, in one commit.

Every test runs on a local lake and on a lake on the S3-protocol test server (moto, over HTTP).
"""

from __future__ import annotations

import datetime as dt
import json
import threading

import pyarrow as pa
import pytest

from passion_tasks.lake import MANIFEST, Lake, LakeError, batches, schemas

DAY = dt.date(2026, 12, 3)
SCHEMA = pa.schema([("series", pa.string()), ("minute", pa.int64()), ("score", pa.float64())])


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path) -> Lake:
    if request.param == "local":
        return Lake((tmp_path / "lake").as_uri())
    return Lake(f"s3://{request.getfixturevalue('s3_bucket')}/lake")


def batch(scores: dict[str, float], minutes: int = 3) -> pa.Table:
    """``minutes`` rows for each series, every one with the series' score."""
    rows = [(name, minute, score) for name, score in scores.items() for minute in range(minutes)]
    return pa.table(dict(zip(SCHEMA.names, zip(*rows, strict=True), strict=True)), schema=SCHEMA)


def write(lake: Lake, scores: dict[str, float], members: list[str] | None = None, minutes: int = 3) -> None:
    table = batch(scores, minutes) if scores else SCHEMA.empty_table()
    batches.replace_members(
        lake, "scores", DAY, table, column="series", members=members or list(scores), schema=SCHEMA
    )


def day_scores(lake: Lake) -> dict[str, list[float]]:
    """Each series' scores as the day's leaf holds them, in minute order."""
    rows = lake.read_partition("scores", DAY).sort_by([("series", "ascending"), ("minute", "ascending")])
    found: dict[str, list[float]] = {}
    for row in rows.to_pylist():
        found.setdefault(row["series"], []).append(row["score"])
    return found


def test_batches_of_one_day_share_its_leaf_a_file_each(lake: Lake) -> None:
    write(lake, {"cpu": 1.0, "mem": 2.0})
    write(lake, {"disk": 3.0})

    assert day_scores(lake) == {"cpu": [1.0] * 3, "disk": [3.0] * 3, "mem": [2.0] * 3}
    [leaf] = lake.leaves("scores", DAY)
    assert (len(leaf.files), leaf.rows) == (2, 9)
    assert batches.members(lake, "scores", DAY) == {"cpu": 3, "disk": 3, "mem": 3}


def test_a_series_scored_again_replaces_its_rows_alone(lake: Lake) -> None:
    write(lake, {"cpu": 1.0, "mem": 2.0, "disk": 3.0})
    [first] = lake.partition("scores", DAY).files
    write(lake, {"mem": 20.0}, minutes=2)

    assert day_scores(lake) == {"cpu": [1.0] * 3, "disk": [3.0] * 3, "mem": [20.0] * 2}
    leaf = lake.partition("scores", DAY)
    # The first batch's file held mem too: it is rewritten without it, so every file named holds
    # exactly its members' rows and a reader outside Passion may read the files as they are.
    assert first not in leaf.files and leaf.rows == 8
    rows = {path: lake._read_files([path], None, None).num_rows for path in leaf.files}
    assert sorted(rows.values()) == [2, 6]


def test_a_batch_scored_again_drops_its_old_file_unread(lake: Lake) -> None:
    write(lake, {"cpu": 1.0, "mem": 2.0})
    [first] = lake.partition("scores", DAY).files
    write(lake, {"cpu": 5.0, "mem": 6.0})

    [second] = lake.partition("scores", DAY).files
    assert second != first
    assert day_scores(lake) == {"cpu": [5.0] * 3, "mem": [6.0] * 3}


def test_a_member_with_no_rows_in_its_batch_loses_its_old_ones(lake: Lake) -> None:
    write(lake, {"cpu": 1.0, "mem": 2.0})
    write(lake, {}, members=["mem"])

    assert day_scores(lake) == {"cpu": [1.0] * 3}
    write(lake, {}, members=["cpu"])
    assert (lake.partition("scores", DAY).rows, batches.members(lake, "scores", DAY)) == (0, {})
    # The day's columns are still there to read: the last batch's file is empty, and the only one.
    assert lake.read_partition("scores", DAY).schema == SCHEMA
    assert len(lake.partition("scores", DAY).files) == 1


def test_rows_of_a_series_outside_the_batch_are_refused_and_nothing_changes(lake: Lake) -> None:
    write(lake, {"cpu": 1.0})
    with pytest.raises(LakeError, match=r"rows of \['mem'\] are not among the members"):
        write(lake, {"cpu": 2.0, "mem": 2.0}, members=["cpu"])
    assert day_scores(lake) == {"cpu": [1.0] * 3}


def test_a_leaf_written_whole_is_not_merged_into(lake: Lake) -> None:
    lake.write_partition("scores", DAY, batch({"cpu": 1.0}))
    with pytest.raises(LakeError, match="was written whole, not by batches"):
        write(lake, {"mem": 2.0})
    assert day_scores(lake) == {"cpu": [1.0] * 3}


def test_minutes_are_members_too_and_a_batch_replaces_exactly_its_minutes(lake: Lake) -> None:
    # A micro-batch's rows are members by minute (``models.live``): a later one re-scores from a minute.
    minutes = pa.array(
        [dt.datetime(2026, 12, 3, 0, minute, tzinfo=dt.UTC) for minute in range(6)], schemas.TS
    )

    def micro_batch(first: int, score: float) -> None:
        table = pa.table({"ts": minutes[first:], "score": pa.array([score] * (6 - first))})
        members = batches.member_names(minutes[first:])
        batches.replace_members(
            lake, "live_scores", DAY, table, column="ts", members=members, schema=table.schema
        )

    micro_batch(0, 1.0)
    micro_batch(4, 2.0)
    rows = lake.read_partition("live_scores", DAY).sort_by("ts")
    assert rows["score"].to_pylist() == [1.0, 1.0, 1.0, 1.0, 2.0, 2.0]
    members = batches.members(lake, "live_scores", DAY)
    assert members == {f"2026-12-03 00:0{minute}:00.000Z": 1 for minute in range(6)}
    assert [len(leaf.files) for leaf in lake.leaves("live_scores", DAY)] == [2]


def test_batches_committing_at_once_all_land(lake: Lake) -> None:
    names = [f"edge{number}" for number in range(8)]
    start = threading.Barrier(len(names))

    def one(number: int) -> None:
        start.wait()
        write(lake, {names[number]: float(number)})

    threads = [threading.Thread(target=one, args=(number,)) for number in range(len(names))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert day_scores(lake) == {name: [float(number)] * 3 for number, name in enumerate(names)}
    manifest = json.loads(lake.read_bytes(f"scores/dt={DAY}/{MANIFEST}"))
    assert len(manifest["files"]) == len(names) and manifest["rows"] == 3 * len(names)
