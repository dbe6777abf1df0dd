"""Synthetic sources: CloudFront and DataStream 2 logs in the vendors' formats, server metrics, labels."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import re
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest
import ua_parser

from passion_tasks.lake.schemas import series_name
from passion_tasks.synthetic import catalog as cat
from passion_tasks.synthetic import generate, write_cloudfront_log
from passion_tasks.synthetic.anomalies import (
    WARMUP_DAYS,
    Anomaly,
    apply_cdn_anomaly,
    plan_anomalies,
    target_mask,
)
from passion_tasks.synthetic.label_files import CDN_METRICS, _group_quantiles, moved_series
from passion_tasks.synthetic.metric_files import SERVICES
from passion_tasks.synthetic.requests import Requests, sample_requests
from passion_tasks.synthetic.traffic import arrivals

START = dt.date(2026, 11, 8)
DAYS = 3
SEED = 7
RATE = 30.0
LAST_DAY = START + dt.timedelta(days=DAYS - 1)
NAB_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.000000$")
CLOUDFRONT_NAME = re.compile(r"^(?P<dist>E[A-Z0-9]{13})\.(?P<hour>\d{4}-\d\d-\d\d-\d\d)\.[0-9a-f]{8}\.gz$")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("sources")
    return out, generate(out, START, DAYS, seed=SEED, rate=RATE, ds2=True)


@pytest.fixture(scope="module")
def out(generated: tuple[Path, object]) -> Path:
    return generated[0]


def cloudfront_files(root: Path) -> list[Path]:
    return sorted((root / "cdn" / "cloudfront").glob("*/*.gz"))


def read_lines(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8", newline="\n") as lines:
        return lines.read().splitlines()


def cloudfront_frame(files: list[Path]) -> pd.DataFrame:
    frames = [
        pd.read_csv(path, sep="\t", skiprows=2, header=None, names=list(cat.CLOUDFRONT_FIELDS), dtype=str)
        for path in files
    ]
    return pd.concat(frames, ignore_index=True)


def device_family(encoded_agent: str) -> str:
    """What ingestion derives: ua-parser's device family, ``Other`` where it finds none."""
    return (ua_parser.parse_device(unquote(encoded_agent)) or ua_parser.Device()).family


def digests(root: Path, pattern: str = "**/*") -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.glob(pattern))
        if path.is_file()
    }


# --- CloudFront ---------------------------------------------------------------------------------


def test_cloudfront_files_start_with_exactly_the_vendor_header(out: Path, reference_data: Path):
    formats = json.loads((reference_data / "cdn/formats/cloudfront_standard_log_fields.json").read_text())
    expected = ["#Version: 1.0", "#Fields: " + " ".join(formats["fields_in_order"])]
    files = cloudfront_files(out)
    assert files
    for path in files:
        assert read_lines(path)[:2] == expected, path
        assert not any(line.startswith("#") for line in read_lines(path)[2:])


def test_one_file_per_hour_per_distribution_named_like_cloudfront(out: Path):
    names = [CLOUDFRONT_NAME.match(path.name) for path in cloudfront_files(out)]
    assert all(names)
    assert {match["dist"] for match in names} == {cat.LIVE.name, cat.VOD.name}
    for path, match in zip(cloudfront_files(out), names, strict=True):
        assert path.parent.name == match["dist"]
    hours = [match["hour"] for match in names]
    assert len(hours) == len(set(zip(hours, [m["dist"] for m in names], strict=True))) == 2 * 24 * DAYS
    assert min(hours) == f"{START:%Y-%m-%d}-00" and max(hours) == f"{LAST_DAY:%Y-%m-%d}-23"


def test_every_line_has_33_fields_and_no_raw_whitespace(out: Path):
    for path in cloudfront_files(out)[::7]:
        for line in read_lines(path)[2:]:
            fields = line.split("\t")
            assert len(fields) == 33, line
            assert all(field and " " not in field for field in fields), line


def test_rows_fall_inside_their_files_hour_in_time_order(out: Path):
    for path in cloudfront_files(out)[::5]:
        hour = dt.datetime.strptime(CLOUDFRONT_NAME.match(path.name)["hour"], "%Y-%m-%d-%H")
        rows = cloudfront_frame([path])
        stamps = pd.to_datetime(rows["date"] + " " + rows["time"])
        assert (stamps >= hour).all() and (stamps < hour + dt.timedelta(hours=1)).all()
        assert stamps.is_monotonic_increasing


def test_field_values_follow_the_format(out: Path):
    rows = cloudfront_frame(cloudfront_files(out)[:48])
    assert set(rows["x-edge-location"]) <= {edge.code for edge in cat.EDGES}
    assert rows["time-taken"].str.fullmatch(r"\d+\.\d{3}").all()
    assert rows["time-to-first-byte"].str.fullmatch(r"\d+\.\d{3}").all()
    assert (rows["time-taken"].astype(float) >= rows["time-to-first-byte"].astype(float)).all()
    assert rows["x-edge-request-id"].str.fullmatch(r"[A-Za-z0-9_-]{54}==").all()
    assert rows["c-ip"].str.fullmatch(r"\d{1,3}(\.\d{1,3}){3}").all()
    assert set(rows["cs-protocol-version"]) == {"HTTP/1.1", "HTTP/2.0", "HTTP/3.0"}
    # The user agent is URL-encoded: spaces as %20, and decoding gives back a catalog agent.
    assert rows["cs(User-Agent)"].str.contains("%20").all()
    assert {unquote(agent) for agent in rows["cs(User-Agent)"]} <= {c.user_agent for c in cat.CLIENTS}
    plain = rows["cs-protocol"] == "http"
    assert (rows.loc[plain, "ssl-protocol"] == "-").all() and (rows.loc[~plain, "ssl-protocol"] != "-").all()
    ranged = rows["sc-status"] == "206"
    assert (rows.loc[~ranged, "sc-range-start"] == "-").all()
    length = rows.loc[ranged, "sc-range-end"].astype(int) - rows.loc[ranged, "sc-range-start"].astype(int) + 1
    assert (length == rows.loc[ranged, "sc-content-len"].astype(int)).all()
    errors = rows["sc-status"].str.match(r"[45]")
    assert (rows.loc[errors, "x-edge-result-type"] == "Error").all()
    assert rows.loc[~errors & (rows["sc-status"] != "000"), "x-edge-result-type"].isin(cat.RESULTS[:3]).all()


def test_traffic_peaks_in_the_evening_and_edges_have_uneven_shares(out: Path):
    rows = cloudfront_frame(cloudfront_files(out))
    per_hour = rows.groupby(rows["time"].str[:2]).size()
    assert per_hour.idxmax() in {"18", "19", "20", "21"}
    assert per_hour.max() > 2 * per_hour.min()
    shares = rows["x-edge-location"].value_counts(normalize=True)
    assert shares.index[0] == "FRA56-P1" and shares.iloc[0] > 3 * shares.iloc[-1]


def test_write_cloudfront_log_writes_exactly_the_requested_lines_in_chunks(tmp_path: Path):
    start = dt.datetime(2026, 11, 21, 20, tzinfo=dt.UTC)
    path = tmp_path / "big.gz"
    assert write_cloudfront_log(path, start, 2_500, seed=3, chunk_rows=1_000) == 2_500
    lines = read_lines(path)
    assert len(lines) == 2 + 2_500
    rows = cloudfront_frame([path])
    stamps = pd.to_datetime(rows["date"] + " " + rows["time"], utc=True)
    assert stamps.is_monotonic_increasing
    assert stamps.min() >= start and stamps.max() < start + dt.timedelta(hours=1)
    again = tmp_path / "again.gz"
    write_cloudfront_log(again, start, 2_500, seed=3, chunk_rows=1_000)
    assert again.read_bytes() == path.read_bytes()


# --- DataStream 2 -------------------------------------------------------------------------------


def test_datastream2_lines_have_the_sample_keys_and_string_values(out: Path, reference_data: Path):
    sample = json.loads(
        (reference_data / "cdn/akamai_datastream2/ds2_sample.jsonl").read_text().splitlines()[0]
    )
    files = sorted((out / "cdn" / "datastream2").rglob("*.jsonl.gz"))
    assert len(files) == 24 * DAYS
    for path in files[::6]:
        hour = dt.datetime.strptime(path.name, "ds2-%Y-%m-%d-%H.jsonl.gz").replace(tzinfo=dt.UTC)
        assert path.parent.relative_to(out / "cdn" / "datastream2") == Path(f"{hour:%Y/%m/%d}")
        for line in read_lines(path):
            record = json.loads(line)
            assert list(record) == list(sample)
            assert all(isinstance(value, str) for value in record.values())
            assert re.fullmatch(r"\d{10}\.\d{3}", record["reqTimeSec"])
            assert hour.timestamp() <= float(record["reqTimeSec"]) < hour.timestamp() + 3600
            assert " " not in record["UA"] and not record["reqPath"].startswith("/")


# --- determinism --------------------------------------------------------------------------------


def test_gzip_headers_carry_no_name_and_no_time(out: Path):
    for path in [*cloudfront_files(out)[:3], *sorted((out / "cdn" / "datastream2").rglob("*.gz"))[:3]]:
        header = path.read_bytes()[:10]
        assert header[:3] == b"\x1f\x8b\x08"  # gzip, deflate
        assert header[3] == 0 and header[4:8] == bytes(4)  # no file name or other extras; mtime 0


def test_same_seed_gives_identical_files_and_another_seed_different_ones(out: Path, tmp_path: Path):
    generate(tmp_path / "again", START, DAYS, seed=SEED, rate=RATE, ds2=True)
    assert digests(tmp_path / "again") == digests(out)
    generate(tmp_path / "other", START, DAYS, seed=SEED + 1, rate=RATE, ds2=True)
    other = digests(tmp_path / "other", "cdn/cloudfront/**/*.gz")
    mine = digests(out, "cdn/cloudfront/**/*.gz")
    assert other.keys().isdisjoint(mine.keys())  # the file ids change with the seed...
    assert set(other.values()).isdisjoint(mine.values())  # ...and so does every file's content


def test_cloudfront_logs_do_not_depend_on_the_datastream2_flag(out: Path, tmp_path: Path):
    generate(tmp_path / "plain", START, DAYS, seed=SEED, rate=RATE, ds2=False, anomalies=True)
    assert digests(tmp_path / "plain", "cdn/cloudfront/**/*.gz") == digests(out, "cdn/cloudfront/**/*.gz")
    assert not (tmp_path / "plain" / "cdn" / "datastream2").exists()


# --- metrics ------------------------------------------------------------------------------------


def test_metrics_are_one_json_object_per_service_and_day_with_1440_minutes(out: Path):
    levels = {"cif": 5e6, "paycore": 1e6, "paydecision": 7e5, "paydecision2": 7e5, "paydecision3": 2e5}
    for offset in range(DAYS):
        day = START + dt.timedelta(days=offset)
        folder = out / "metrics" / day.isoformat()
        assert sorted(p.name for p in folder.iterdir()) == sorted(f"{s.name}.json" for s in SERVICES)
        for service, level in levels.items():
            document = json.loads((folder / f"{service}.json").read_text())
            expected = pd.date_range(day, periods=1440, freq="min").strftime("%Y-%m-%d %H:%M:%S").tolist()
            assert list(document) == expected
            values = np.array(list(document.values()))
            assert all(isinstance(v, int) for v in document.values())
            assert 0.6 * level < np.median(values) < 1.6 * level
            assert values.max() > 1.3 * values.min()  # a daily cycle
            # The seed's reader gets one column indexed by timestamp.
            frame = pd.read_json(folder / f"{service}.json", orient="index")
            assert frame.shape == (1440, 1)


# --- labels -------------------------------------------------------------------------------------


def test_labels_are_nab_windows_on_feature_series_inside_the_generated_days(out: Path):
    windows = json.loads((out / "labels" / "combined_windows.json").read_text())
    expected_keys = {series_name(s.name) for s in SERVICES} | {
        series_name(metric, "edge", edge.code) for metric in CDN_METRICS for edge in cat.EDGES
    }
    assert expected_keys <= windows.keys()
    assert "cdn_5xx_rate{channel=ch7}" in windows and "cdn_ttfb_p95{device=iPhone}" in windows
    first = f"{START:%Y-%m-%d} 00:00:00.000000"
    last = f"{LAST_DAY:%Y-%m-%d} 23:59:00.000000"
    labelled = [window for spans in windows.values() for window in spans]
    assert labelled
    for begin, end in labelled:
        assert NAB_TIME.match(begin) and NAB_TIME.match(end)
        assert first <= begin <= end <= last


def test_the_last_day_has_a_cdn_and_a_metric_anomaly_and_the_warmup_none(out: Path, generated):
    details = json.loads((out / "labels" / "anomalies.json").read_text())["anomalies"]
    assert details == [a.to_json() for a in generated[1].anomalies]
    days = {(a["source"], a["start"][:10]) for a in details}
    assert ("cdn", LAST_DAY.isoformat()) in days and ("metrics", LAST_DAY.isoformat()) in days
    assert all(a["start"][:10] >= (START + dt.timedelta(days=WARMUP_DAYS)).isoformat() for a in details)
    windows = json.loads((out / "labels" / "combined_windows.json").read_text())
    for anomaly in details:
        span = [f"{anomaly['start']}.000000", f"{anomaly['end']}.000000"]
        assert anomaly["series"] and all(span in windows[name] for name in anomaly["series"])


def test_device_labels_use_the_family_ua_parser_reports(out: Path):
    agents = set(cloudfront_frame(cloudfront_files(out)[:24])["cs(User-Agent)"])
    families = {device_family(agent) for agent in agents}
    windows = json.loads((out / "labels" / "combined_windows.json").read_text())
    labelled = {name.split("device=")[1].rstrip("}") for name in windows if "{device=" in name}
    assert labelled == families == set(cat.device_index()[0])


def test_labelled_cdn_anomalies_show_in_the_written_logs(out: Path, generated):
    anomalies = [a for a in generated[1].anomalies if a.source == "cdn"]
    assert anomalies
    for anomaly in anomalies:
        hours = {f"{dt.datetime.fromtimestamp(h * 3600, dt.UTC):%Y-%m-%d-%H}" for h in anomaly.hours}
        files = [p for p in cloudfront_files(out) if CLOUDFRONT_NAME.match(p.name)["hour"] in hours]
        assert_visible(anomaly, cloudfront_frame(files))


def assert_visible(anomaly: Anomaly, rows: pd.DataFrame) -> None:
    """The anomaly's target, inside its window, differs from the same target around it."""
    stamps = pd.to_datetime(rows["date"] + " " + rows["time"], utc=True)
    inside = (stamps >= anomaly.start) & (stamps < anomaly.start + dt.timedelta(minutes=anomaly.minutes))
    if anomaly.dim == "channel":
        on_target = rows["cs-uri-stem"].str.startswith(f"/live/{anomaly.value}/")
    elif anomaly.dim == "edge":
        on_target = rows["x-edge-location"] == anomaly.value
    else:
        on_target = rows["cs(User-Agent)"].map(device_family) == anomaly.value
    during, around = rows[on_target & inside], rows[on_target & ~inside]
    assert len(during) and len(around)
    magnitude = anomaly.magnitude
    if "latency_factor" in magnitude:
        ttfb = "time-to-first-byte"
        assert during[ttfb].astype(float).median() > 2 * around[ttfb].astype(float).median()
    elif "error_share" in magnitude:
        assert (
            during["sc-status"].str.startswith("5").mean()
            > 0.1
            > around["sc-status"].str.startswith("5").mean()
        )
    elif "client_error_share" in magnitude:
        assert (
            during["sc-status"].str.startswith("4").mean()
            > 0.1
            > around["sc-status"].str.startswith("4").mean()
        )
    elif "kept_share" in magnitude:
        minutes_around = 60 * len(anomaly.hours) - anomaly.minutes
        assert len(during) / anomaly.minutes < 0.6 * len(around) / minutes_around
    else:
        segment_bytes = [
            f.loc[f["cs-uri-stem"].str.endswith(".ts"), "sc-bytes"].astype(float) for f in (during, around)
        ]
        assert segment_bytes[0].mean() > 2 * segment_bytes[1].mean()


def test_summary_counts_what_was_written(out: Path, generated):
    summary = generated[1]
    written = sum(len(read_lines(path)) - 2 for path in cloudfront_files(out))
    assert sum(summary.cdn_lines_per_day.values()) == written
    assert sorted(summary.cdn_lines_per_day) == [
        (START + dt.timedelta(days=d)).isoformat() for d in range(DAYS)
    ]
    assert 0.6 * RATE * 1440 < summary.cdn_lines_per_day[START.isoformat()] < 1.4 * RATE * 1440
    assert summary.metric_points == DAYS * len(SERVICES) * 1440
    assert summary.files == sum(1 for path in out.rglob("*") if path.is_file())
    assert not list(out.rglob("*.partial"))


def test_generate_rejects_meaningless_arguments(tmp_path: Path):
    with pytest.raises(ValueError, match="days >= 1"):
        generate(tmp_path, START, 0)
    with pytest.raises(ValueError, match="rate > 0"):
        generate(tmp_path, START, 1, rate=0)
    with pytest.raises(ValueError, match=r"unknown anomaly kinds \['meteor'\]"):
        generate(tmp_path, START, 3, kinds={"meteor": 1.0})
    with pytest.raises(ValueError, match="add up to more than 0"):
        generate(tmp_path, START, 3, kinds={"outage": 0.0})


# --- placement, effects and labelling, without files ---------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_placement_keeps_the_warmup_clean_and_always_fills_the_last_day(seed: int):
    days = 14
    planned = plan_anomalies(START, days, seed)
    last = START + dt.timedelta(days=days - 1)
    assert all(a.start.date() >= START + dt.timedelta(days=WARMUP_DAYS) for a in planned)
    assert {"cdn", "metrics"} <= {a.source for a in planned if a.start.date() == last}
    assert all(a.end.date() == a.start.date() for a in planned)
    cdn_hours = [hour for a in planned if a.source == "cdn" for hour in a.hours]
    assert len(cdn_hours) == len(set(cdn_hours))
    assert plan_anomalies(START, days, seed) == planned
    # A one-day run still has its last day labelled.
    assert {a.source for a in plan_anomalies(START, 1, seed)} == {"cdn", "metrics"}


def hour_of_requests(hour_start: dt.datetime, rate: float = 400.0) -> Requests:
    start_ms = int(hour_start.timestamp() * 1000)
    parts = []
    for stream in cat.CLOUDFRONT_STREAMS:
        rng = np.random.default_rng([1, stream.code])
        parts.append(sample_requests(rng, stream, *arrivals(rng, stream, start_ms, rate, 1)))
    return Requests.concat(parts)


HOUR = dt.datetime(2026, 11, 20, 19, tzinfo=dt.UTC)
WINDOW = HOUR + dt.timedelta(minutes=20)


@pytest.mark.parametrize(
    ("kind", "dim", "value", "magnitude"),
    [
        ("latency_spike", "edge", "FRA56-P1", {"latency_factor": 5.0}),
        ("error_burst_5xx", "channel", "ch7", {"error_share": 0.4}),
        ("traffic_drop", "edge", "LHR61-P4", {"kept_share": 0.2}),
        ("bytes_surge", "channel", "ch1", {"bytes_factor": 3.0}),
        ("device_regression", "device", "Roku", {"client_error_share": 0.3}),
    ],
)
def test_an_anomaly_acts_on_its_target_in_its_window_only(kind, dim, value, magnitude):
    before = hour_of_requests(HOUR)
    anomaly = Anomaly("cdn-001", kind, "cdn", dim, value, WINDOW, 15, magnitude)
    after = apply_cdn_anomaly(before, anomaly, np.random.default_rng(0))
    target = target_mask(before, anomaly)
    assert target.sum() > 50
    if kind == "traffic_drop":
        kept = target_mask(after, anomaly).sum() / target.sum()
        assert 0.1 < kept < 0.3
        assert len(after) == len(before) - (target.sum() - target_mask(after, anomaly).sum())
        return
    untouched = ~target
    for column in ("status", "ttfb_s", "transfer_s", "body_bytes"):
        np.testing.assert_array_equal(getattr(after, column)[untouched], getattr(before, column)[untouched])
    if kind == "latency_spike":
        np.testing.assert_allclose(after.ttfb_s[target], 5.0 * before.ttfb_s[target])
    elif kind == "error_burst_5xx":
        failed = np.isin(after.status[target], (502, 503, 504)).mean()
        assert 0.3 < failed < 0.5
        assert (after.result[after.status >= 500] == cat.ERROR).all()
    elif kind == "bytes_surge":
        segments = target & before.is_segment
        np.testing.assert_allclose(after.body_bytes[segments], 3.0 * before.body_bytes[segments], atol=1)
        np.testing.assert_array_equal(
            after.body_bytes[target & ~segments], before.body_bytes[target & ~segments]
        )
    else:
        assert 0.2 < np.isin(after.status[target], (400, 403, 404)).mean() < 0.4


def test_labels_name_the_series_an_anomaly_moves_and_no_others():
    before = hour_of_requests(HOUR)
    anomaly = Anomaly(
        "cdn-001", "latency_spike", "cdn", "edge", "FRA56-P1", WINDOW, 15, {"latency_factor": 5.0}
    )
    after = apply_cdn_anomaly(before, anomaly, np.random.default_rng(0))
    moved = moved_series(anomaly, [(before, after)])
    for quantile in ("p50", "p95", "p99"):
        assert f"cdn_ttfb_{quantile}{{edge=FRA56-P1}}" in moved
    # Slower answers change no count, rate or other edge: those series cannot be labelled.
    assert not [name for name in moved if not name.startswith(("cdn_ttfb", "cdn_time_taken"))]
    assert not [name for name in moved if "edge=" in name and "FRA56-P1" not in name]


def test_group_quantiles_interpolate_like_numpy():
    rng = np.random.default_rng(0)
    group, values = rng.integers(0, 40, 4_000), rng.lognormal(0, 1, 4_000)
    quantiles = _group_quantiles(group, values, 45)
    for g in (0, 17, 39):
        np.testing.assert_allclose(quantiles[:, g], np.quantile(values[group == g], [0.5, 0.95, 0.99]))
    assert np.isnan(quantiles[:, 40:]).all()
