"""End to end through the public entry points: generate → ingest → features → score → report."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from passion_tasks import cli, steps
from passion_tasks.demo import run_demo
from passion_tasks.errors import ExitCode
from passion_tasks.features.policy import watched_series
from passion_tasks.lake import Lake
from passion_tasks.synthetic import generate

START = dt.date(2026, 11, 19)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("sources")
    return out, generate(out, START, 3, seed=5, rate=20, ds2=True)


def test_generate_ingest_read_round_trip_counts_every_line(sources, lake: Lake) -> None:
    out, summary = sources
    for offset in range(3):
        day = (START + dt.timedelta(days=offset)).isoformat()
        cdn = steps.ingest_day(lake, "cdn", day, str(out))
        metrics = steps.ingest_day(lake, "metrics", day, str(out))
        expected = summary.cdn_lines_per_day[day] + summary.ds2_lines_per_day[day]
        assert cdn.rows == expected
        assert cdn.exit_code == ExitCode.OK
        assert lake.read_partition("cdn_logs", day).num_rows == expected
        assert lake.read_partition("metrics", day).num_rows == metrics.rows == 5 * 1440
    # Re-ingesting a day replaces it.
    day = START.isoformat()
    steps.ingest_day(lake, "cdn", day, str(out))
    assert lake.read_partition("cdn_logs", day).num_rows == (
        summary.cdn_lines_per_day[day] + summary.ds2_lines_per_day[day]
    )
    assert lake.partitions("cdn_logs") == [START + dt.timedelta(days=i) for i in range(3)]


def test_cli_exit_codes_say_what_happened(sources, lake: Lake, tmp_path: Path, capsys) -> None:
    out, _ = sources
    assert (
        cli.main(
            ["ingest", "--source", "cdn", "--day", "2026-11-19", "--input", str(out), "--lake", lake.url]
        )
        == 0
    )
    missing = ["ingest", "--source", "cdn", "--day", "2026-10-01", "--input", str(out), "--lake", lake.url]
    assert cli.main(missing) == ExitCode.NO_INPUT
    assert "2026-10-01" in capsys.readouterr().err
    (tmp_path / "2026-11-19.log").write_text("this is not a log line\n")
    unknown = [
        "ingest",
        "--source",
        "cdn",
        "--day",
        "2026-11-19",
        "--input",
        str(tmp_path),
        "--lake",
        lake.url,
    ]
    assert cli.main(unknown) == ExitCode.UNKNOWN_FORMAT
    assert cli.main(["features", "--day", "2026-10-01", "--lake", lake.url]) == ExitCode.NO_INPUT
    assert cli.main(["partitions", "cdn_logs", "--json", "--lake", lake.url]) == 0
    assert capsys.readouterr().out.strip().endswith('["2026-11-19"]')
    with pytest.raises(SystemExit) as usage:
        cli.main(["ingest", "--source", "cdn", "--day", "19/11/2026", "--input", str(out)])
    assert usage.value.code == ExitCode.USAGE


def test_demo_runs_end_to_end_and_reports_the_last_day(tmp_path: Path, lake: Lake) -> None:
    lines: list[str] = []
    uri = run_demo(lake, tmp_path / "demo", days=3, start=START, rate=20, echo=lines.append)

    last = START + dt.timedelta(days=2)
    assert uri == lake.uri(f"reports/dt={last}/index.html")
    html = lake.read_bytes(f"reports/dt={last}/index.html").decode()
    assert f"Passion report {last}" in html
    scores = lake.read_partition("scores", last).to_pandas()
    watched = watched_series(sorted(scores["series"].unique()))
    assert sorted(scores["series"].unique()) == watched
    assert {"cif", "paycore", "cdn_requests", "cdn_5xx_rate"} <= set(watched)
    assert len(scores) == 1440 * len(watched)
    assert (scores["ts"].dt.date == last).all()
    assert lake.partitions("events") == [last]
    assert any(line.startswith("scored ") for line in lines)
