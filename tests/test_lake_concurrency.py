"""Two runs of the same day: readers see a snapshot, commits are ordered, leases make runs take turns.

Every test runs on a local lake and on a lake on the S3-protocol test server (moto, over HTTP).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import pyarrow as pa
import pytest

from passion_tasks.lake import MANIFEST, VACUUM_GRACE, Lake, PartitionWriter, leases
from passion_tasks.lake.leases import LeaseHeld
from passion_tasks.lake.vacuum import vacuum

DAY = dt.date(2026, 12, 2)
KEY = {"series": "cdn_ttfb_p99{edge=SYD1-C1}"}
SCHEMA = pa.schema([("run", pa.string()), ("row", pa.int64())])


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path) -> Lake:
    if request.param == "local":
        return Lake((tmp_path / "lake").as_uri())
    return Lake(f"s3://{request.getfixturevalue('s3_bucket')}/lake")


def run_rows(run: str, rows: int) -> pa.Table:
    return pa.table({"run": [run] * rows, "row": list(range(rows))}, schema=SCHEMA)


def writer(lake: Lake, run: str, rows: int) -> PartitionWriter:
    """A run that has started writing the leaf: it has read the manifest and written its rows."""
    leaf = lake.leaf("scores", DAY, KEY)
    lake._ensure_parent(f"{leaf}/{MANIFEST}")
    started = PartitionWriter(lake, leaf, SCHEMA, {"run": run})
    started.write(run_rows(run, rows))
    return started


def manifest(lake: Lake) -> dict:
    return json.loads(lake.read_bytes(f"{lake.leaf('scores', DAY, KEY)}/{MANIFEST}"))


def runs_read(lake: Lake) -> list[str]:
    return lake.read_partition("scores", DAY, key=KEY).column("run").to_pylist()


def test_a_later_run_committing_second_replaces_the_earlier_runs_rows(lake: Lake) -> None:
    first, second = writer(lake, "manual", 3), writer(lake, "scheduled", 4)
    first.commit()
    first_commit = manifest(lake)["commit"]
    # A reader that has the first run's manifest...
    snapshot = lake.partition("scores", DAY, key=KEY)
    second.commit()

    assert runs_read(lake) == ["scheduled"] * 4
    # The second run read no manifest when it started; it replaced the first run's commit, and says so.
    assert manifest(lake)["replaces"] == first_commit
    # ...still reads all of it after the second commit: superseded files are not deleted at commit.
    assert lake._read_files(list(snapshot.files), None, None).column("run").to_pylist() == ["manual"] * 3


def test_an_earlier_run_committing_second_steps_aside(lake: Lake, caplog: pytest.LogCaptureFixture) -> None:
    first, second = writer(lake, "manual", 3), writer(lake, "scheduled", 4)
    second.commit()
    before = manifest(lake)
    first.commit()

    assert runs_read(lake) == ["scheduled"] * 4
    assert manifest(lake) == before
    assert "a run that started after this one" in caplog.text


def test_the_chain_of_commits_names_what_each_replaced(lake: Lake) -> None:
    writer(lake, "one", 1).commit()
    one = manifest(lake)
    writer(lake, "two", 2).commit()
    two = manifest(lake)
    assert one["replaces"] is None
    assert two["replaces"] == one["commit"]
    assert dt.datetime.fromisoformat(two["started_at"]) > dt.datetime.fromisoformat(one["started_at"])


def test_two_writers_and_a_reader_racing_see_one_whole_run_at_a_time(lake: Lake) -> None:
    lake.write_partition("scores", DAY, run_rows("initial", 2), key=KEY)
    sizes = {"initial": 2, "a": 3, "b": 5}
    errors: list[BaseException] = []
    seen: list[tuple[str, ...]] = []
    stop = threading.Event()

    def write(run: str) -> None:
        try:
            for _ in range(15):
                # Each write waits for a read after the last one, so the race is run however the
                # threads are scheduled (counting reads after the fact failed on a busy machine).
                reads_before = len(seen)
                while len(seen) == reads_before and not errors:
                    time.sleep(0.0005)
                lake.write_partition("scores", DAY, run_rows(run, sizes[run]), key=KEY)
        except BaseException as error:
            errors.append(error)

    def read() -> None:
        while not stop.is_set():
            try:
                seen.append(tuple(runs_read(lake)))
            except BaseException as error:
                errors.append(error)
                return

    reader = threading.Thread(target=read)
    writers = [threading.Thread(target=write, args=(run,)) for run in ("a", "b")]
    reader.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    reader.join()

    assert errors == []
    # Every read is one run's complete rows: never a mix, never a half.
    for rows in seen:
        assert len(set(rows)) == 1 and len(rows) == sizes[rows[0]], rows
    final = runs_read(lake)
    assert set(final) <= {"a", "b"} and len(final) == sizes[final[0]]

    # The vacuum keeps every superseded file for the grace period, then removes exactly those.
    named = set(lake.partition("scores", DAY, key=KEY).files)
    leaf = lake.leaf("scores", DAY, KEY)
    data = {path for path in lake.list_files(leaf) if path.endswith(".parquet")}
    assert len(data) == 31 and named < data
    assert (
        vacuum(
            lake,
        ).removed
        == ()
    )
    later = dt.datetime.now(dt.UTC) + VACUUM_GRACE + dt.timedelta(minutes=1)
    assert set(vacuum(lake, now=later).removed) == data - named
    assert {path for path in lake.list_files(leaf) if path.endswith(".parquet")} == named
    assert runs_read(lake) == final


def test_a_commit_younger_than_the_grace_period_keeps_what_it_superseded(lake: Lake) -> None:
    lake.write_partition("scores", DAY, run_rows("old", 1), key=KEY)
    old = lake.partition("scores", DAY, key=KEY).files
    lake.write_partition("scores", DAY, run_rows("new", 2), key=KEY)
    # The old file is long past the grace period, but the commit that superseded it is not.
    just_after_commit = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    assert vacuum(lake, now=just_after_commit, grace=dt.timedelta(0)).removed == old
    lake.write_partition("scores", DAY, run_rows("newer", 2), key=KEY)
    assert vacuum(lake, grace=dt.timedelta(hours=1)).removed == ()


# -- leases -----------------------------------------------------------------------------------------

NAME = "passion_score/dt=2026-12-02"


def test_one_run_holds_a_day_and_the_other_waits_until_it_is_given_back(lake: Lake) -> None:
    held = leases.acquire(lake, NAME, "scheduled__2026-12-03T01:00")
    assert leases.current(lake, NAME) == held
    with pytest.raises(LeaseHeld, match=r"held by 'scheduled__2026-12-03T01:00'.*passion lake lease"):
        leases.acquire(lake, NAME, "manual__2026-12-03T08:15")
    # The holder asking again (a retried task) renews it.
    renewed = leases.acquire(lake, NAME, "scheduled__2026-12-03T01:00")
    assert renewed.acquired_at == held.acquired_at and renewed.expires_at >= held.expires_at

    assert not leases.release(lake, NAME, "manual__2026-12-03T08:15")
    assert leases.release(lake, NAME, "scheduled__2026-12-03T01:00")
    assert leases.current(lake, NAME) is None
    assert leases.acquire(lake, NAME, "manual__2026-12-03T08:15").holder == "manual__2026-12-03T08:15"


def test_a_lease_its_holder_never_gave_back_expires(lake: Lake) -> None:
    start = dt.datetime(2026, 12, 3, 1, 0, tzinfo=dt.UTC)
    leases.acquire(lake, NAME, "died", ttl=dt.timedelta(hours=1), now=start)
    with pytest.raises(LeaseHeld):
        leases.acquire(lake, NAME, "next", now=start + dt.timedelta(minutes=59))
    taken = leases.acquire(lake, NAME, "next", now=start + dt.timedelta(minutes=61))
    assert taken.holder == "next" and taken.acquired_at == start + dt.timedelta(minutes=61)


def test_of_runs_asking_at_once_exactly_one_gets_the_lease(lake: Lake) -> None:
    barrier = threading.Barrier(6)
    winners: list[str] = []
    losers: list[str] = []

    def ask(holder: str) -> None:
        barrier.wait()
        try:
            leases.acquire(lake, NAME, holder)
            winners.append(holder)
        except LeaseHeld:
            losers.append(holder)

    threads = [threading.Thread(target=ask, args=(f"run-{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1 and len(losers) == 5
    assert leases.current(lake, NAME).holder == winners[0]


def test_an_operator_can_release_a_dead_runs_lease(lake: Lake) -> None:
    leases.acquire(lake, NAME, "died")
    assert leases.release(lake, NAME)
    assert leases.acquire(lake, NAME, "next").holder == "next"


def test_the_lease_command_shows_and_releases_a_lease(lake: Lake, capsys: pytest.CaptureFixture) -> None:
    from passion_tasks import cli

    leases.acquire(lake, NAME, "died")
    assert cli.main(["lake", "lease", NAME, "--lake", lake.url]) == 0
    assert capsys.readouterr().out.startswith(f"{NAME}: held by died since ")
    assert cli.main(["lake", "lease", NAME, "--release", "--lake", lake.url]) == 0
    assert capsys.readouterr().out == f"released {NAME}, which died held\n"
    assert cli.main(["lake", "lease", NAME, "--lake", lake.url]) == 0
    assert capsys.readouterr().out == f"{NAME}: free\n"
