"""Per-minute features: CDN aggregates by dimension, metric previous-hour OHLC, the wide reader."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from urllib.parse import quote

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from passion_tasks.features import build_features, previous_hour_ohlc, read_series
from passion_tasks.features.cdn import OTHER, log_of_latency, path_group
from passion_tasks.features.policy import watched_series
from passion_tasks.lake import Lake, PartitionNotFound, schemas
from passion_tasks.lake.schemas import MAX_NAME_PART, bounded_name

DAY = dt.date(2026, 11, 21)
UTC = dt.UTC

# One request per line, "-" for null.
REQUESTS = """
time     edge_location device_family sc_status time_to_first_byte time_taken sc_bytes edge_result_type
10:00:05 FRA2          iPhone        200       0.10               0.5        1000     Hit
10:00:20 FRA2          Samsung       503       0.30               0.9        2000     Error
10:00:40 LHR1          iPhone        404       0.20               0.1        3000     RefreshHit
10:01:10 LHR1          iPhone        200       0.40               0.2        500      Miss
10:01:50 LHR1          Samsung       500       0.60               0.4        700      OriginShieldHit
10:03:00 FRA2          Samsung       200       0.05               0.3        100      Hit
"""
REQUESTS_CONTINUED = """
time     cs_protocol_version cs_method cs_uri_stem               live_channel
10:00:05 HTTP/2.0            GET       /vod/big_buck_bunny/s1.ts -
10:00:20 HTTP/1.1            GET       /live/ch7/index.m3u8      ch7
10:00:40 HTTP/2.0            HEAD      /vod/big_buck_bunny/s2.ts -
10:01:10 HTTP/2.0            GET       /live/ch7/s9.ts           ch7
10:01:50 HTTP/2.0            GET       /live/ch7/s10.ts          ch7
10:03:00 HTTP/3.0            GET       /vod/sintel/s1.ts         -
"""


def at(day: dt.date, clock: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(clock), UTC)


def cdn_logs(requests: list[tuple[dt.datetime, dict]]) -> pa.Table:
    """A cdn_logs table of (timestamp, fields) requests; unnamed fields are null."""
    columns = {name: [fields.get(name) for _, fields in requests] for name in schemas.CDN_LOGS.names}
    columns["ts"] = [ts for ts, _ in requests]
    columns["source_format"] = ["cloudfront"] * len(requests)
    columns["source_file"] = ["test.log"] * len(requests)
    return pa.table(columns).cast(schemas.CDN_LOGS)


def parse(text: str) -> dict[str, dict[str, str | None]]:
    """Fields by time of a whitespace table, as text: ``cdn_logs`` casts them to their types."""
    header, *lines = text.strip().splitlines()
    names = header.split()[1:]
    rows = {}
    for line in lines:
        clock, *cells = line.split()
        rows[clock] = {name: None if cell == "-" else cell for name, cell in zip(names, cells, strict=True)}
    return rows


def sample_logs() -> pa.Table:
    rest = parse(REQUESTS_CONTINUED)
    requests = [(at(DAY, clock), fields | rest[clock]) for clock, fields in parse(REQUESTS).items()]
    late = at(DAY - dt.timedelta(days=1), "23:59:59")
    return cdn_logs([*requests, (late, {"sc_status": "200", "edge_location": "FRA2"})])


def metrics(rows: list[tuple[dt.datetime, str, str, float]]) -> pa.Table:
    ts, source, series, value = zip(*rows, strict=True)
    return pa.table({"ts": ts, "source": source, "series": series, "value": value}, schema=schemas.METRICS)


def test_cdn_features_per_minute_and_dimension(lake: Lake) -> None:
    lake.write_partition("cdn_logs", DAY, sample_logs())

    report = build_features(lake, DAY)

    # 13 metrics x (overall, 2 edges, 1 channel, 2 devices, 3 paths) + 3 protocols + 2 methods.
    assert report.series == {"cdn": 122, "metrics": 0}
    assert report.rows == {"cdn": 122 * 1440, "metrics": 0}
    assert report.skipped == [
        "cdn_logs: ignored 1 row(s) outside 2026-11-21",
        "metrics: no partition for 2026-11-21",
    ]
    assert report.summary() == (
        "2026-11-21: features cdn: 122 series, 175680 rows, metrics: 0 series, 0 rows\n"
        "  skipped cdn_logs: ignored 1 row(s) outside 2026-11-21\n"
        "  skipped metrics: no partition for 2026-11-21"
    )
    stored = lake.read_partition("features", DAY, key={"source": "cdn"})
    per_series = stored.group_by("series").aggregate([("ts", "count_distinct")])
    assert per_series.num_rows == 122
    assert set(per_series["ts_count_distinct"].to_pylist()) == {1440}
    ttfb_edge = stored.filter(pc.field("series") == "cdn_ttfb_p50{edge=FRA2}").slice(0, 1).to_pylist()[0]
    assert (ttfb_edge["metric"], ttfb_edge["dim"], ttfb_edge["dim_value"]) == ("cdn_ttfb_p50", "edge", "FRA2")

    frame = read_series(lake, DAY, DAY)

    def value(series: str, clock: str) -> float:
        return frame.at[pd.Timestamp(at(DAY, clock)), series]

    clocks = ("00:00", "10:00", "10:01", "10:02", "10:03")
    assert [value("cdn_requests", clock) for clock in clocks] == [0, 3, 2, 0, 1]
    assert [value("cdn_bytes", c) for c in ("10:00", "10:01", "10:02", "10:03")] == [6000, 1200, 0, 100]
    assert value("cdn_5xx_rate", "10:00") == pytest.approx(1 / 3, abs=1e-12)
    assert value("cdn_5xx_rate", "10:01") == 0.5
    assert value("cdn_5xx_rate", "10:03") == 0.0
    assert value("cdn_4xx_rate", "10:00") == pytest.approx(1 / 3, abs=1e-12)
    assert value("cdn_ttfb_p50", "10:00") == pytest.approx(0.2, abs=1e-9)
    assert value("cdn_ttfb_p50", "10:01") == pytest.approx(0.5, abs=1e-9)
    assert value("cdn_ttfb_p95", "10:00") == pytest.approx(0.29, abs=1e-9)  # linear between 0.2 and 0.3
    assert value("cdn_time_taken_p99", "10:03") == pytest.approx(0.3, abs=1e-9)
    assert value("cdn_ttfb_gmean", "10:00") == pytest.approx((0.1 * 0.3 * 0.2) ** (1 / 3), abs=1e-9)
    assert value("cdn_ttfb_gmean{edge=FRA2}", "10:00") == pytest.approx((0.1 * 0.3) ** (1 / 2), abs=1e-9)
    assert value("cdn_cache_hit_ratio", "10:00") == pytest.approx(2 / 3, abs=1e-12)
    assert value("cdn_cache_hit_ratio", "10:01") == 0.5  # OriginShieldHit counts, Miss does not
    for rate in ("cdn_5xx_rate", "cdn_ttfb_p50", "cdn_time_taken_p95", "cdn_cache_hit_ratio"):
        assert math.isnan(value(rate, "10:02")) and math.isnan(value(rate, "00:00"))

    assert value("cdn_requests{edge=FRA2}", "10:00") == 2
    assert value("cdn_requests{edge=LHR1}", "10:03") == 0
    assert value("cdn_5xx_rate{edge=FRA2}", "10:00") == 0.5
    assert math.isnan(value("cdn_5xx_rate{edge=LHR1}", "10:03"))
    assert value("cdn_ttfb_p50{edge=FRA2}", "10:00") == pytest.approx(0.2, abs=1e-9)
    assert value("cdn_ttfb_p50{edge=LHR1}", "10:01") == pytest.approx(0.5, abs=1e-9)
    assert value("cdn_requests{device=iPhone}", "10:00") == 2
    assert value("cdn_requests{device=Samsung}", "10:01") == 1
    assert value("cdn_requests{channel=ch7}", "10:01") == 2
    assert value("cdn_requests{path=/vod/big_buck_bunny}", "10:00") == 2
    assert value("cdn_bytes{path=/live/ch7}", "10:01") == 1200
    assert value("cdn_requests{protocol=HTTP/2.0}", "10:00") == 2
    assert value("cdn_requests{protocol=HTTP/1.1}", "10:00") == 1
    assert value("cdn_requests{protocol=HTTP/3.0}", "10:03") == 1
    assert value("cdn_requests{method=GET}", "10:00") == 2
    assert value("cdn_requests{method=HEAD}", "10:00") == 1
    assert not any(
        name.startswith("cdn_requests{channel=") and name != "cdn_requests{channel=ch7}" for name in frame
    )
    assert "cdn_5xx_rate{method=GET}" not in frame  # one-hot fields are counts only


def test_top_devices_and_paths(lake: Lake) -> None:
    # Family D01 has 13 requests, D02 12, ..., D13 one; each family requests its own path group.
    requests = [
        (
            at(DAY, "08:00"),
            {"sc_status": 200, "device_family": f"D{i:02d}", "cs_uri_stem": f"/vod/g{i:02d}/x.ts"},
        )
        for i in range(1, 14)
        for _ in range(14 - i)
    ]
    requests.append((at(DAY, "08:00"), {"sc_status": 200, "cs_uri_stem": "/vod/g01/y.ts"}))
    lake.write_partition("cdn_logs", DAY, cdn_logs(requests))
    build_features(lake, DAY)

    frame = read_series(lake, DAY, DAY).loc[pd.Timestamp(at(DAY, "08:00"))]
    prefix = "cdn_requests{device="
    devices = {name[len(prefix) : -1]: n for name, n in frame.items() if name.startswith(prefix)}
    assert devices == {**{f"D{i:02d}": 14 - i for i in range(1, 13)}, OTHER: 2}  # D13 and the unknown one
    paths = {name for name in frame.index if name.startswith("cdn_requests{path=")}
    assert paths == {f"cdn_requests{{path=/vod/g{i:02d}}}" for i in range(1, 11)} | {
        f"cdn_requests{{path={OTHER}}}"
    }
    assert frame["cdn_requests{path=/vod/g01}"] == 14
    assert frame[f"cdn_requests{{path={OTHER}}}"] == 3 + 2 + 1  # g11, g12 and g13


def test_clients_cannot_choose_how_many_series_or_how_long_their_names(lake: Lake) -> None:
    # 300 odd live channels, one of them with a 300-character name, beside 3 real channels.
    def live(minute: str, channel: str, times: int = 1) -> list[tuple[dt.datetime, dict]]:
        fields = {"sc_status": 200, "cs_uri_stem": f"/live/{channel}/x.ts", "live_channel": channel}
        return [(at(DAY, minute), fields)] * times

    long_channel = "é" + "x" * 299
    requests = [
        *(request for c in range(3) for request in live("08:00", f"ch{c}", times=50)),
        *(request for i in range(299) for request in live("08:01", f"odd{i:03d}")),
        *live("08:02", long_channel, times=2),
    ]
    lake.write_partition("cdn_logs", DAY, cdn_logs(requests))
    build_features(lake, DAY)

    frame = read_series(lake, DAY, DAY)
    prefix = "cdn_requests{channel="
    channels = {name[len(prefix) : -1] for name in frame.columns if name.startswith(prefix)}
    # The top 32 values get series of their own: the 3 real channels, the long one (2 requests) and the
    # first 28 of the odd ones (ties go to the smaller value); the other 271 share one series.
    assert channels == {"ch0", "ch1", "ch2", bounded_name(long_channel), OTHER} | {
        f"odd{i:03d}" for i in range(28)
    }
    assert frame[f"cdn_requests{{channel={OTHER}}}"].sum() == 299 - 28
    assert max(len(quote(name, safe="")) for name in frame.columns) <= 120


def test_a_long_name_part_keeps_its_start_and_a_hash_of_all_of_it() -> None:
    long_channel = "é" + "x" * 299
    bounded = bounded_name(long_channel)
    assert bounded == "é" + "x" * 34 + "~" + hashlib.sha256(long_channel.encode()).hexdigest()[:12]
    assert len(quote(bounded, safe="")) <= MAX_NAME_PART
    assert bounded_name(long_channel + "y") != bounded  # distinct parts stay distinct
    assert bounded_name("ch7") == "ch7"


@pytest.mark.parametrize("previous_day", [True, False])
def test_metric_features_previous_hour_across_hour_and_day(lake: Lake, previous_day: bool) -> None:
    before = DAY - dt.timedelta(days=1)
    if previous_day:
        rows = [(at(before, "22:30"), 100.0), (at(before, "23:15"), 7.0), (at(before, "23:45"), 3.0)]
        lake.write_partition("metrics", before, metrics([(ts, "host-a", "cpu", v) for ts, v in rows]))
    cpu = [
        ("00:10", 5.0),
        ("00:20", 9.0),
        ("00:30", 1.0),
        ("00:50:10", 4.0),
        ("00:50:40", 6.0),
        ("01:05", 2.0),
    ]
    lake.write_partition(
        "metrics", DAY, metrics([(at(DAY, c), "host-a", "cpu", v) for c, v in cpu]), key={"source": "host-a"}
    )
    kpi = [(at(DAY, c), "kpi", "kpi_1", v) for c, v in [("00:00", 10.0), ("00:05", 20.0)]]
    lake.write_partition("metrics", DAY, metrics(kpi), key={"source": "kpi"})

    report = build_features(lake, DAY)

    assert report.series == {"cdn": 0, "metrics": 10}
    assert report.rows["metrics"] == 10 * 1440
    previous_missing = "metrics: no partition for 2026-11-20; hour 0 open/close/max/min are NaN"
    assert (previous_missing in report.skipped) is not previous_day
    frame = read_series(lake, DAY, DAY)
    stats = ["cpu_open", "cpu_close", "cpu_max", "cpu_min"]
    assert list(frame.columns) == sorted(
        ["cpu", *stats, "kpi_1", *[s.replace("cpu", "kpi_1") for s in stats]]
    )

    def row(clock: str, columns: list[str]) -> list[float]:
        return frame.loc[pd.Timestamp(at(DAY, clock)), columns].tolist()

    assert row("00:50", ["cpu"]) == [5.0]  # mean of the minute's two values
    assert math.isnan(row("00:51", ["cpu"])[0])
    assert row("01:00", stats) == row("01:59", stats) == [5.0, 5.0, 9.0, 1.0]
    assert row("02:30", stats) == [2.0, 2.0, 2.0, 2.0]
    assert all(math.isnan(v) for v in row("03:00", stats))  # hour 2 holds no value
    hour_zero = row("00:00", stats) + row("00:59", stats)
    if previous_day:
        assert hour_zero == [7.0, 3.0, 7.0, 3.0] * 2
    else:
        assert all(math.isnan(v) for v in hour_zero)
    # The 5-minute series keeps its gaps: nothing is invented between points.
    assert row("00:00", ["kpi_1"]) + row("00:05", ["kpi_1"]) == [10.0, 20.0]
    assert all(math.isnan(v) for v in frame["kpi_1"].iloc[1:5])
    assert row("01:00", ["kpi_1_open", "kpi_1_close", "kpi_1_max", "kpi_1_min"]) == [10.0, 20.0, 20.0, 10.0]


def test_previous_hour_ohlc_of_a_series() -> None:
    index = pd.date_range("2026-11-21 05:00", periods=4 * 60, freq="min", tz="UTC")
    values = pd.Series(float("nan"), index=index)
    values.iloc[[0, 10, 59]] = [4.0, 8.0, 6.0]  # hour 5
    values.iloc[[130, 131]] = [1.0, 3.0]  # hour 7; hour 6 is empty

    ohlc = previous_hour_ohlc(values)

    assert list(ohlc.columns) == ["open", "close", "max", "min"]
    assert ohlc.index.equals(index)
    assert ohlc.iloc[:60].isna().all().all()
    assert ohlc.iloc[60].tolist() == ohlc.iloc[119].tolist() == [4.0, 6.0, 8.0, 4.0]
    assert ohlc.iloc[120:180].isna().all().all()
    assert ohlc.iloc[180].tolist() == [1.0, 3.0, 3.0, 1.0]


def test_read_series_grid_columns_and_missing_days(lake: Lake) -> None:
    later = DAY + dt.timedelta(days=2)
    lake.write_partition("cdn_logs", DAY, sample_logs())
    lake.write_partition("metrics", later, metrics([(at(later, "12:00"), "host-a", "cpu", 1.5)]))
    build_features(lake, DAY)
    build_features(lake, later)

    frame = read_series(lake, DAY, later)
    assert len(frame) == 3 * 1440
    assert frame.index[0] == pd.Timestamp(at(DAY, "00:00"))
    assert frame.index[-1] == pd.Timestamp(at(later, "23:59"))
    assert (frame.index[1:] - frame.index[:-1] == pd.Timedelta(minutes=1)).all()
    assert list(frame.columns) == sorted(frame.columns) and len(frame.columns) == 122 + 5
    assert frame.loc[pd.Timestamp(at(DAY + dt.timedelta(days=1), "10:00"))].isna().all()
    assert frame.at[pd.Timestamp(at(later, "12:00")), "cpu"] == 1.5

    subset = read_series(lake, DAY, later, series=["cpu", "cdn_requests", "unknown"])
    assert list(subset.columns) == ["cdn_requests", "cpu", "unknown"]
    assert subset["cdn_requests"].sum() == 6 and subset["unknown"].isna().all()


def test_rebuilding_a_day_replaces_it(lake: Lake) -> None:
    with pytest.raises(PartitionNotFound, match="no cdn_logs and no metrics partition for 2026-11-21"):
        build_features(lake, DAY)

    lake.write_partition("cdn_logs", DAY, sample_logs())
    first = build_features(lake, DAY)
    second = build_features(lake, DAY)
    assert first == second
    assert lake.read_partition("features", DAY).num_rows == 122 * 1440

    # Logs withdrawn and metrics landed: the cdn leaf is replaced by an empty one, not left stale.
    lake.delete("cdn_logs")
    lake.write_partition("metrics", DAY, metrics([(at(DAY, "06:00"), "host-a", "cpu", 1.0)]))
    build_features(lake, DAY)
    assert lake.read_partition("features", DAY, key={"source": "cdn"}).num_rows == 0
    assert lake.read_partition("features", DAY).num_rows == 5 * 1440


def test_series_name_shared_by_two_sources_is_refused(lake: Lake) -> None:
    rows = [(at(DAY, "06:00"), "host-a", "cpu", 1.0), (at(DAY, "06:00"), "host-b", "cpu", 2.0)]
    lake.write_partition("metrics", DAY, metrics(rows))
    with pytest.raises(ValueError, match=r"unique across sources.*'cpu'"):
        build_features(lake, DAY)


def test_paths_group_by_their_folders_not_their_files() -> None:
    stems = pa.chunked_array(
        [
            [
                "/img/poster12.jpg",
                "/img/poster13.jpg",
                "/vod/sintel/s1.ts",
                "/live/ch7/a/b.ts",
                "/favicon.ico",
                None,
            ]
        ]
    )
    assert path_group(stems).to_pylist() == ["/img", "/img", "/vod/sintel", "/live/ch7", "/", None]


def test_a_latency_under_a_millisecond_counts_as_one_in_the_logs() -> None:
    logs = log_of_latency([0.0, 0.01, math.nan])
    assert logs[:2] == pytest.approx([math.log(0.001), math.log(0.01)], abs=1e-12)
    assert math.isnan(logs[2])


def test_watched_series_are_totals_edges_channels_and_the_health_of_devices() -> None:
    names = [
        "cdn_ttfb_p50",
        "cdn_ttfb_p50{edge=FRA2}",
        "cdn_ttfb_p95{edge=FRA2}",
        "cdn_time_taken_p50{channel=ch7}",
        "cdn_5xx_rate{channel=ch7}",
        "cdn_requests{device=Roku}",
        "cdn_4xx_rate{device=Roku}",
        "cdn_ttfb_p99{device=Roku}",
        "cdn_ttfb_p50{device=Roku}",
        "cdn_ttfb_gmean{device=Roku}",
        "cdn_ttfb_p99",
        "cdn_ttfb_p99{edge=FRA2}",
        "cdn_ttfb_gmean{edge=FRA2}",
        "cdn_requests{path=/vod}",
        "cif",
        "cif_open",
    ]
    assert watched_series(names) == [
        "cdn_ttfb_p50",
        "cdn_ttfb_p95{edge=FRA2}",
        "cdn_5xx_rate{channel=ch7}",
        "cdn_4xx_rate{device=Roku}",
        "cdn_ttfb_gmean{device=Roku}",
        "cdn_ttfb_p99",
        "cdn_ttfb_gmean{edge=FRA2}",
        "cif",
    ]
