"""Ingestion of CDN logs and server metrics: formats, validation, quarantine, damage, exit codes, S3."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import zlib
from pathlib import Path

import pytest

from passion_tasks.errors import EmptyDayError, ExitCode, NoInputError, UnknownFormatError
from passion_tasks.ingest import IngestReport, cloudfront, ingest_cdn_day, ingest_metrics_day
from passion_tasks.lake import Lake, PartitionNotFound
from passion_tasks.lake.schemas import CDN_LOGS, METRICS

DAY = dt.date(2019, 12, 4)
UTC = dt.UTC
CHROME = (
    "Mozilla/5.0%20(Windows%20NT%2010.0;%20Win64;%20x64)%20AppleWebKit/537.36%20(KHTML,%20like%20Gecko)"
    "%20Chrome/78.0.3904.108%20Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0%20(iPhone;%20CPU%20iPhone%20OS%2017_1%20like%20Mac%20OS%20X)%20AppleWebKit/605.1.15"
    "%20(KHTML,%20like%20Gecko)%20Version/17.1%20Mobile/15E148%20Safari/604.1"
)
# A line of the AWS documentation's example log, field by field.
EXAMPLE = {
    "date": "2019-12-04",
    "time": "21:02:31",
    "x-edge-location": "LAX1",
    "sc-bytes": "392",
    "c-ip": "192.0.2.100",
    "cs-method": "GET",
    "cs(Host)": "d111111abcdef8.cloudfront.net",
    "cs-uri-stem": "/index.html",
    "sc-status": "200",
    "cs(Referer)": "-",
    "cs(User-Agent)": CHROME,
    "cs-uri-query": "-",
    "cs(Cookie)": "-",
    "x-edge-result-type": "Hit",
    "x-edge-request-id": "SOX4xwn4XV6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBNrjGdRLiNIQ==",
    "x-host-header": "d111111abcdef8.cloudfront.net",
    "cs-protocol": "https",
    "cs-bytes": "23",
    "time-taken": "0.001",
    "x-forwarded-for": "-",
    "ssl-protocol": "TLSv1.2",
    "ssl-cipher": "ECDHE-RSA-AES128-GCM-SHA256",
    "x-edge-response-result-type": "Hit",
    "cs-protocol-version": "HTTP/2.0",
    "fle-status": "-",
    "fle-encrypted-fields": "-",
    "c-port": "11040",
    "time-to-first-byte": "0.001",
    "x-edge-detailed-result-type": "Hit",
    "sc-content-type": "text/html",
    "sc-content-len": "78",
    "sc-range-start": "-",
    "sc-range-end": "-",
}
FIELDS = list(EXAMPLE)


def cloudfront_line(changes: dict[str, str] | None = None, fields: list[str] = FIELDS) -> str:
    values = EXAMPLE | (changes or {})
    return "\t".join(values[name] for name in fields)


def cloudfront_text(lines: list[str], fields: list[str] = FIELDS) -> str:
    return "#Version: 1.0\n#Fields: " + " ".join(fields) + "\n" + "".join(line + "\n" for line in lines)


def write_gzip(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode()))
    return path


def quarantine(lake: Lake, day: dt.date = DAY, dataset: str = "cdn_logs") -> list[tuple]:
    rows = lake.read_partition(f"quarantine/{dataset}", day).to_pylist()
    return sorted((row["line_number"], row["reason"], row["raw"]) for row in rows)


def test_example_has_cloudfronts_documented_fields(reference_data: Path) -> None:
    spec = json.loads((reference_data / "cdn/formats/cloudfront_standard_log_fields.json").read_text())
    assert spec["fields_in_order"] == FIELDS


# -- CloudFront ---------------------------------------------------------------------------------


def test_cloudfront_bad_lines_are_quarantined_with_reason_and_line(lake: Lake, tmp_path: Path) -> None:
    planted = [
        cloudfront_line(),  # line 3
        cloudfront_line({"x-edge-request-id": "second"}),  # 4
        "2019-12-04\t21:02:31\tLAX1",  # 5: too few fields
        cloudfront_line({"sc-status": "abc"}),  # 6
        cloudfront_line({"date": "2019-13-45"}),  # 7
        cloudfront_line({"date": "2019-12-13"}),  # 8: another day
        cloudfront_line({"x-edge-request-id": "third"}),  # 9
        cloudfront_line({"time": "25:99:00"}),  # 10
        cloudfront_line({"sc-bytes": "12x"}),  # 11
        cloudfront_line() + "\textra",  # 12: too many fields
        "",  # 13: blank
        cloudfront_line({"sc-status": "-"}),  # 14: the status every row needs is missing
        cloudfront_line({"x-edge-request-id": "fourth"}),  # 15
    ]
    path = write_gzip(tmp_path / "in" / "E2EXAMPLE.2019-12-04-21.a1b2c3d4.gz", cloudfront_text(planted))

    report = ingest_cdn_day(lake, DAY, str(tmp_path / "in"))

    assert report.rows == 4
    assert report.files == [str(path)]
    assert report.exit_code == ExitCode.LINES_QUARANTINED
    assert quarantine(lake) == [
        (5, "wrong_field_count", planted[2]),
        (6, "bad_sc_status", planted[3]),
        (7, "bad_date", planted[4]),
        (8, "other_day", planted[5]),
        (10, "bad_time", planted[7]),
        (11, "bad_sc_bytes", planted[8]),
        (12, "wrong_field_count", planted[9]),
        (13, "blank_line", ""),
        (14, "bad_sc_status", planted[11]),
    ]
    assert dict(report.quarantined) == {
        "wrong_field_count": 2,
        "bad_sc_status": 2,
        "bad_date": 1,
        "other_day": 1,
        "bad_time": 1,
        "bad_sc_bytes": 1,
        "blank_line": 1,
    }
    landed = lake.read_partition("cdn_logs", DAY).column("edge_request_id").to_pylist()
    assert landed == [EXAMPLE["x-edge-request-id"], "second", "third", "fourth"]
    meta = lake.partition("cdn_logs", DAY).meta
    assert meta["rows"] == 4 and meta["quarantined"]["wrong_field_count"] == 2 and meta["damaged_files"] == []
    assert "9 lines quarantined" in report.summary()


def test_line_numbers_across_batches() -> None:
    # Data lines 1..10 after 2 header lines; the CSV reader rejected data lines 2, 3 and 7.
    lines = cloudfront.LineNumbers(header_lines=2)
    for rejected in (2, 3, 7):
        lines.reject(rejected)
    assert lines.next_rows(2).to_pylist() == [3, 6]  # data lines 1 and 4
    assert lines.next_rows(3).to_pylist() == [7, 8, 10]  # 5, 6 and 8
    lines.reject(11)
    assert lines.next_rows(2).to_pylist() == [11, 12]  # 9, 10
    assert lines.next_rows(1).to_pylist() == [14]  # 12


def test_line_numbers_stay_exact_over_many_blocks(
    lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cloudfront, "BLOCK_SIZE", 4096)  # about ten lines a block
    lines, expected = [], []
    for i in range(600):
        physical = i + 3
        if i % 7 == 3:
            lines.append(f"2019-12-04\t{i}")
            expected.append((physical, "wrong_field_count"))
        elif i % 11 == 5:
            lines.append(cloudfront_line({"sc-status": "OK"}))
            expected.append((physical, "bad_sc_status"))
        else:
            lines.append(cloudfront_line({"sc-bytes": str(physical)}))
    path = write_gzip(tmp_path / "E1.2019-12-04-21.gz", cloudfront_text(lines))

    report = ingest_cdn_day(lake, DAY, str(path))

    assert [(line, reason) for line, reason, _ in quarantine(lake)] == expected
    # Each good row carries its own physical line number in sc-bytes.
    good = lake.read_partition("cdn_logs", DAY).column("sc_bytes").to_pylist()
    assert report.rows == len(good) == 600 - len(expected)
    assert sorted(set(range(3, 603)) - {line for line, _ in expected}) == good


def test_a_line_longer_than_a_block_ends_the_file_as_damaged(
    lake: Lake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cloudfront, "BLOCK_SIZE", 4096)
    lines = [cloudfront_line()] * 30 + ["x" * 10_000] + [cloudfront_line()] * 5
    path = write_gzip(tmp_path / "E1.2019-12-04-21.gz", cloudfront_text(lines))

    report = ingest_cdn_day(lake, DAY, str(path))

    assert report.exit_code == ExitCode.FILES_DAMAGED
    assert 0 < report.rows <= 30
    [(line, reason, raw)] = quarantine(lake)
    assert (line, reason) == (report.rows + 3, "unreadable_rest")
    assert "straddles two block boundaries" in raw


def test_cloudfront_row_is_typed_decoded_and_enriched(lake: Lake, tmp_path: Path) -> None:
    live = cloudfront_line(
        {
            "cs-uri-stem": "/live/news%20hd/seg-42.ts",
            "cs(User-Agent)": IPHONE,
            "cs-uri-query": "token=a%2Fb",
            "cs(Referer)": "https://www.example.com/watch%3Fv=1",
            "sc-range-start": "0",
            "sc-range-end": "77",
        }
    )
    path = write_gzip(tmp_path / "2019-12-04" / "log.gz", cloudfront_text([cloudfront_line(), live]))

    ingest_cdn_day(lake, DAY, str(path))

    table = lake.read_partition("cdn_logs", DAY)
    assert table.schema == CDN_LOGS
    first, second = table.to_pylist()
    assert first["ts"] == dt.datetime(2019, 12, 4, 21, 2, 31, tzinfo=UTC)
    assert (first["sc_bytes"], first["sc_status"], first["cs_bytes"]) == (392, 200, 23)
    assert first["c_port"] == 11040
    assert (first["time_taken"], first["time_to_first_byte"], first["sc_content_len"]) == (0.001, 0.001, 78)
    assert (first["cs_referer"], first["cs_uri_query"], first["sc_range_start"]) == (None, None, None)
    assert first["cs_user_agent"].startswith("Mozilla/5.0 (Windows NT 10.0; Win64; x64)")
    ua = [first[name] for name in ("os_family", "ua_family", "ua_major", "device_family", "device_brand")]
    assert ua == ["Windows", "Chrome", "78", "Other", None]
    assert first["live_channel"] is None
    assert (first["source_format"], first["source_file"]) == ("cloudfront", str(path))
    assert second["cs_uri_stem"] == "/live/news hd/seg-42.ts"
    assert second["live_channel"] == "news hd"
    assert second["cs_uri_query"] == "token=a/b"
    assert second["cs_referer"] == "https://www.example.com/watch?v=1"
    ua = [second[name] for name in ("os_family", "ua_family", "ua_major", "device_family", "device_brand")]
    assert ua == ["iOS", "Mobile Safari", "17", "iPhone", "Apple"]
    assert (second["sc_range_start"], second["sc_range_end"]) == (0, 77)


def test_cloudfront_columns_follow_the_fields_header(lake: Lake, tmp_path: Path) -> None:
    # An older log: fewer fields, in another order. What it lacks lands as null.
    fields = ["time", "date", "sc-status", "cs-uri-stem", "sc-bytes", "c-ip"]
    text = cloudfront_text([cloudfront_line(fields=fields)], fields=fields)
    path = tmp_path / "old.2019-12-04.log"
    path.write_text(text)  # not compressed: gzip is told by magic bytes, not by name

    assert ingest_cdn_day(lake, DAY, str(path)).exit_code == ExitCode.OK

    row = lake.read_partition("cdn_logs", DAY).to_pylist()[0]
    assert (row["ts"], row["sc_status"], row["cs_uri_stem"], row["sc_bytes"], row["c_ip"]) == (
        dt.datetime(2019, 12, 4, 21, 2, 31, tzinfo=UTC),
        200,
        "/index.html",
        392,
        "192.0.2.100",
    )
    assert (row["edge_location"], row["time_taken"], row["cs_user_agent"], row["ua_family"]) == (None,) * 4


def test_wrong_header_quarantines_the_whole_file_as_damaged(lake: Lake, tmp_path: Path) -> None:
    good = write_gzip(tmp_path / "E1.2019-12-04-21.good.gz", cloudfront_text([cloudfront_line()]))
    no_status = [name for name in FIELDS if name != "sc-status"]
    lacking = write_gzip(
        tmp_path / "E1.2019-12-04-22.lacking.gz",
        cloudfront_text([cloudfront_line(fields=no_status)], fields=no_status),
    )
    headless = write_gzip(tmp_path / "E1.2019-12-04-23.headless.gz", cloudfront_line() + "\n")

    report = ingest_cdn_day(lake, DAY, str(tmp_path))

    assert report.rows == 1
    assert report.exit_code == ExitCode.FILES_DAMAGED
    assert report.damaged_files == [str(lacking), str(headless)]
    rows = lake.read_partition("quarantine/cdn_logs", DAY).to_pylist()
    assert [(r["source_file"], r["line_number"], r["reason"]) for r in rows] == [
        (str(lacking), 1, "wrong_header"),
        (str(lacking), 2, "wrong_header"),
        (str(lacking), 3, "wrong_header"),
        (str(headless), 1, "wrong_header"),
    ]
    assert str(good) in report.files


def many_lines(count: int) -> list[str]:
    # Distinct request ids keep the gzip from compressing to nothing, so a cut lands mid-file.
    return [
        cloudfront_line({"x-edge-request-id": f"{i:08d}-{zlib.crc32(str(i).encode()):x}", "sc-bytes": str(i)})
        for i in range(count)
    ]


def test_truncated_gzip_keeps_the_rows_before_the_damage(lake: Lake, tmp_path: Path) -> None:
    whole = gzip.compress(cloudfront_text(many_lines(3000)).encode())
    path = tmp_path / "E1.2019-12-04-21.cut.gz"
    path.write_bytes(whole[: len(whole) // 2])
    # What a reader can possibly get back: the complete lines of the decompressible prefix.
    readable = zlib.decompressobj(wbits=31).decompress(path.read_bytes())
    complete_lines = readable.count(b"\n")

    report = ingest_cdn_day(lake, DAY, str(path))

    assert report.rows == complete_lines - 2 > 1000
    assert report.exit_code == ExitCode.FILES_DAMAGED
    assert report.damaged_files == [str(path)]
    tail = readable[readable.rfind(b"\n") + 1 :].decode()
    assert quarantine(lake) == [(complete_lines + 1, "truncated_gzip", tail)]
    assert lake.read_partition("cdn_logs", DAY).column("sc_bytes").to_pylist() == list(range(report.rows))


def test_corrupt_gzip_keeps_a_prefix_of_the_rows(lake: Lake, tmp_path: Path) -> None:
    whole = bytearray(gzip.compress(cloudfront_text(many_lines(3000)).encode()))
    middle = len(whole) // 2
    whole[middle : middle + 64] = bytes(64)
    path = tmp_path / "E1.2019-12-04-21.corrupt.gz"
    path.write_bytes(bytes(whole))

    report = ingest_cdn_day(lake, DAY, str(path))

    assert report.exit_code == ExitCode.FILES_DAMAGED
    assert report.quarantined["corrupt_gzip"] == 1
    landed = lake.read_partition("cdn_logs", DAY).column("sc_bytes").to_pylist()
    assert 1000 < len(landed) < 3000
    assert landed == list(range(len(landed)))


def test_concatenated_gzip_logs_read_as_one(lake: Lake, tmp_path: Path) -> None:
    first, second = cloudfront_line({"sc-bytes": "1"}), cloudfront_line({"sc-bytes": "2", "sc-status": "?"})
    path = tmp_path / "E1.2019-12-04-21.both.gz"
    # `cat a.gz b.gz`: two gzip members, the second file's header lines in the middle.
    path.write_bytes(
        gzip.compress(cloudfront_text([first]).encode()) + gzip.compress(cloudfront_text([second]).encode())
    )

    report = ingest_cdn_day(lake, DAY, str(path))

    assert report.rows == 1
    assert quarantine(lake) == [(6, "bad_sc_status", second)]


def test_unknown_format_writes_nothing(lake: Lake, tmp_path: Path) -> None:
    (tmp_path / "notes.2019-12-04.txt").write_text("this is not a log\nat all\n")
    with pytest.raises(UnknownFormatError, match=r"notes\.2019-12-04\.txt"):
        ingest_cdn_day(lake, DAY, str(tmp_path))
    assert lake.list_files("") == []


def test_unknown_file_beside_good_ones_is_quarantined(lake: Lake, tmp_path: Path) -> None:
    write_gzip(tmp_path / "E1.2019-12-04-21.gz", cloudfront_text([cloudfront_line()]))
    (tmp_path / "notes.2019-12-04.txt").write_text("this is not a log\nat all\n")

    report = ingest_cdn_day(lake, DAY, str(tmp_path))

    assert (report.rows, report.exit_code) == (1, ExitCode.LINES_QUARANTINED)
    assert quarantine(lake) == [(1, "unknown_format", "this is not a log"), (2, "unknown_format", "at all")]


def test_a_day_without_good_rows_raises_after_writing_the_quarantine(lake: Lake, tmp_path: Path) -> None:
    bad = [cloudfront_line({"sc-status": "x"}), cloudfront_line({"date": "2019-12-05"})]
    write_gzip(tmp_path / "E1.2019-12-04-21.gz", cloudfront_text(bad))

    with pytest.raises(EmptyDayError, match="2 lines are in"):
        ingest_cdn_day(lake, DAY, str(tmp_path))

    assert quarantine(lake) == [(3, "bad_sc_status", bad[0]), (4, "other_day", bad[1])]
    with pytest.raises(PartitionNotFound):
        lake.read_partition("cdn_logs", DAY)


def test_no_input_for_the_day(lake: Lake, tmp_path: Path) -> None:
    write_gzip(tmp_path / "E1.2019-12-05-21.gz", cloudfront_text([cloudfront_line()]))
    with pytest.raises(NoInputError, match=rf"2019-12-04 under {tmp_path}"):
        ingest_cdn_day(lake, DAY, str(tmp_path))
    with pytest.raises(NoInputError, match="does not exist"):
        ingest_cdn_day(lake, DAY, str(tmp_path / "nowhere"))
    # A folder named for the day does not make the other days' files in it the day's.
    exported = tmp_path / "export-2019-12-04"
    write_gzip(exported / "E1.2019-12-05-01.gz", cloudfront_text([cloudfront_line()]))
    with pytest.raises(NoInputError):
        ingest_cdn_day(lake, DAY, str(exported))
    assert lake.list_files("") == []


def test_folder_search_finds_the_day_in_names_and_folders(lake: Lake, tmp_path: Path) -> None:
    write_gzip(tmp_path / "a" / "E1.2019-12-04-21.x.gz", cloudfront_text([cloudfront_line()]))
    write_gzip(tmp_path / "b" / "2019" / "12" / "04" / "part.log", cloudfront_text([cloudfront_line()]))
    write_gzip(tmp_path / "b" / "2019" / "12" / "05" / "part.log", cloudfront_text([cloudfront_line()]))
    (tmp_path / "a" / ".E1.2019-12-04-22.partial").write_text("ignored")

    report = ingest_cdn_day(lake, DAY, (tmp_path).as_uri())

    assert report.rows == 2
    assert [Path(name).name for name in report.files] == ["E1.2019-12-04-21.x.gz", "part.log"]
    assert all(name.startswith("file://") for name in report.files)


def test_reingesting_a_day_replaces_rows_and_quarantine(lake: Lake, tmp_path: Path) -> None:
    path = tmp_path / "E1.2019-12-04-21.gz"
    write_gzip(path, cloudfront_text([cloudfront_line(), cloudfront_line({"sc-status": "x"})]))
    first = ingest_cdn_day(lake, DAY, str(path))
    again = ingest_cdn_day(lake, DAY, str(path))
    assert (first.rows, again.rows) == (1, 1)
    assert lake.read_partition("cdn_logs", DAY).num_rows == 1
    assert len(quarantine(lake)) == 1

    write_gzip(path, cloudfront_text([cloudfront_line(), cloudfront_line()]))
    fixed = ingest_cdn_day(lake, DAY, str(path))
    assert (fixed.rows, fixed.exit_code) == (2, ExitCode.OK)
    assert lake.read_partition("cdn_logs", DAY).num_rows == 2
    assert quarantine(lake) == []


# -- the real samples ----------------------------------------------------------------------------


def test_datastream2_sample_lands_every_line(lake: Lake, reference_data: Path) -> None:
    path = reference_data / "cdn/akamai_datastream2/ds2_sample.jsonl"
    report = ingest_cdn_day(lake, "2024-06-21", str(path))

    assert (report.rows, report.quarantined_lines, report.exit_code) == (1000, 0, ExitCode.OK)
    first = lake.read_partition("cdn_logs", "2024-06-21").slice(0, 1).to_pylist()[0]
    assert first["ts"] == dt.datetime(2024, 6, 21, 3, 18, 19, 742000, tzinfo=UTC)
    assert (first["sc_status"], first["sc_bytes"], first["sc_content_len"]) == (206, 1059938, 42190034)
    assert (first["time_to_first_byte"], first["time_taken"]) == (0.142, 1.403)
    assert (first["edge_result_type"], first["cs_protocol_version"]) == ("Hit", "HTTP/1.1")
    assert first["c_ip"] == "114.5.147.45"
    assert first["cs_uri_stem"] == "/iupxcodeboss/pj/hn/m210909a23h30ojqbk0iny3seyjnhnpj-1-211220110000.m4s"
    assert first["cs_user_agent"] == "Bilibili Freedoooooom/MarkII"
    assert "hdnts=exp=1640631032~hmac=" in first["cs_uri_query"]
    assert (first["cs_referer"], first["cs_cookie"], first["source_format"]) == (None, None, "datastream2")
    hits = lake.read_partition("cdn_logs", "2024-06-21").column("edge_result_type").to_pylist()
    assert (hits.count("Hit"), hits.count("Miss")) == (609, 391)


def test_datastream2_bad_lines(lake: Lake, reference_data: Path, tmp_path: Path) -> None:
    sample = (reference_data / "cdn/akamai_datastream2/ds2_sample.jsonl").read_text().splitlines()
    no_status = json.loads(sample[1])
    del no_status["statusCode"]
    bad_time = json.loads(sample[2]) | {"reqTimeSec": "soon"}
    lines = [sample[0], '{"UA": "cut', json.dumps(no_status), json.dumps(bad_time), "[1, 2]", sample[3]]
    path = tmp_path / "ds2-2024-06-21-03.jsonl.gz"
    write_gzip(path, "\n".join(lines) + "\n")

    report = ingest_cdn_day(lake, "2024-06-21", str(tmp_path))

    assert report.rows == 2
    assert quarantine(lake, dt.date(2024, 6, 21)) == [
        (2, "malformed_json", lines[1]),
        (3, "missing_statusCode", lines[2]),
        (4, "bad_ts", lines[3]),
        (5, "malformed_json", "[1, 2]"),
    ]


def test_apache_combined_sample(lake: Lake, reference_data: Path) -> None:
    path = reference_data / "cdn/apache_combined/apache_logs"
    report = ingest_cdn_day(lake, "2015-05-19", str(path))

    # 2,896 of the 10,000 lines are of 19 May; line 8899 has its user agent cut off mid-quote.
    assert report.rows == 2896
    assert dict(report.quarantined) == {"other_day": 7103, "malformed_line": 1}
    rows = lake.read_partition("quarantine/cdn_logs", "2015-05-19").to_pylist()
    assert [r["line_number"] for r in rows if r["reason"] == "malformed_line"] == [8899]
    table = lake.read_partition("cdn_logs", "2015-05-19")
    first = table.slice(0, 1).to_pylist()[0]
    assert first["ts"] == dt.datetime(2015, 5, 19, 0, 5, 11, tzinfo=UTC)
    assert (first["c_ip"], first["cs_method"], first["cs_uri_stem"]) == (
        "183.179.22.186",
        "GET",
        "/style2.css",
    )
    assert (first["sc_status"], first["sc_bytes"]) == (200, 4877)
    assert (first["cs_protocol_version"], first["ua_family"], first["ua_major"], first["os_family"]) == (
        "HTTP/1.1",
        "Firefox",
        "26",
        "Linux",
    )
    assert first["cs_referer"] == "http://www.semicomplete.com/projects/xdotool/"
    statuses = table.column("sc_status").to_pylist()
    assert statuses.count(200) + statuses.count(304) + statuses.count(404) > 2800


# -- metrics -------------------------------------------------------------------------------------


def test_metrics_land_in_long_form_with_bad_entries_quarantined(lake: Lake, tmp_path: Path) -> None:
    folder = tmp_path / "sources" / "metrics" / "2019-12-04"
    folder.mkdir(parents=True)
    (folder / "cif.json").write_text(
        json.dumps(
            {
                "2019-12-04 00:00:00": 5230362,
                "2019-12-04 00:01:00": 5430718.5,
                "2019-12-04 00:02:00": "n/a",
                "yesterday": 1,
                "2019-12-05 00:00:00": 7,
            }
        )
    )
    (folder / "paycore.json").write_text(json.dumps({"2019-12-04 00:00:00": [1742333]}))
    write_gzip(tmp_path / "sources" / "cdn" / "E1.2019-12-04-21.gz", cloudfront_text([cloudfront_line()]))

    report = ingest_metrics_day(lake, DAY, str(tmp_path / "sources"), source="ant")

    table = lake.read_partition("metrics", DAY, key={"source": "ant"})
    assert table.schema == METRICS
    midnight = dt.datetime(2019, 12, 4, tzinfo=UTC)
    assert sorted(tuple(row.values()) for row in table.to_pylist()) == [
        (midnight, "ant", "cif", 5230362.0),
        (midnight, "ant", "paycore", 1742333.0),
        (midnight + dt.timedelta(minutes=1), "ant", "cif", 5430718.5),
    ]
    assert dict(report.quarantined) == {"bad_value": 1, "bad_ts": 1, "other_day": 1}
    assert report.exit_code == ExitCode.LINES_QUARANTINED
    assert [Path(name).name for name in report.skipped_files] == ["E1.2019-12-04-21.gz"]
    raws = {row["reason"]: row["raw"] for row in lake.read_partition("quarantine/metrics", DAY).to_pylist()}
    assert raws["bad_value"] == '{"2019-12-04 00:02:00": "n/a"}'

    # The CDN run over the same root reads the log and skips the metrics.
    cdn = ingest_cdn_day(lake, DAY, str(tmp_path / "sources"))
    assert (cdn.rows, len(cdn.skipped_files)) == (1, 2)


def test_metrics_file_covering_many_days_gives_only_the_day(lake: Lake, tmp_path: Path) -> None:
    values = {f"2019-12-0{d} 12:00:00": d for d in (3, 4, 5)} | {"2019-12-04T23:30:00+02:00": 9}
    path = tmp_path / "Ant_202007" / "cif.json"
    path.parent.mkdir()
    path.write_text(json.dumps(values))

    report = ingest_metrics_day(lake, DAY, str(path.parent))

    assert (report.rows, report.exit_code) == (2, ExitCode.OK)
    rows = lake.read_partition("metrics", DAY).to_pylist()
    assert [(r["ts"], r["value"]) for r in rows] == [
        (dt.datetime(2019, 12, 4, 12, tzinfo=UTC), 4.0),
        (dt.datetime(2019, 12, 4, 21, 30, tzinfo=UTC), 9.0),
    ]


def test_metrics_no_input_and_damaged_json(lake: Lake, tmp_path: Path) -> None:
    with pytest.raises(NoInputError):
        ingest_metrics_day(lake, DAY, str(tmp_path))
    folder = tmp_path / "metrics" / "2019-12-04"
    folder.mkdir(parents=True)
    (folder / "cif.json").write_text('{"2019-12-04 00:00:00": 1}')
    (folder / "paycore.json").write_text('{"2019-12-04 00:00:00": 1, "2019-12-')

    report = ingest_metrics_day(lake, DAY, str(tmp_path))

    assert (report.rows, report.exit_code) == (1, ExitCode.FILES_DAMAGED)
    cut = '{"2019-12-04 00:00:00": 1, "2019-12-'
    assert quarantine(lake, dataset="metrics") == [(1, "malformed_json", cut)]


# -- S3 ------------------------------------------------------------------------------------------


def test_ingest_from_s3_into_a_lake_on_s3(s3_bucket: str, s3_env) -> None:
    import boto3

    body = gzip.compress(cloudfront_text([cloudfront_line(), cloudfront_line({"sc-status": "x"})]).encode())
    key = "logs/E2EXAMPLE.2019-12-04-21.a1b2c3d4.gz"
    boto3.client("s3", endpoint_url=s3_env.endpoint_url, region_name="us-east-1").put_object(
        Bucket=s3_bucket, Key=key, Body=body
    )
    lake = Lake(f"s3://{s3_bucket}/lake")

    report = ingest_cdn_day(lake, DAY, f"s3://{s3_bucket}/logs")

    assert isinstance(report, IngestReport)
    assert (report.rows, report.exit_code) == (1, ExitCode.LINES_QUARANTINED)
    assert report.files == [f"s3://{s3_bucket}/{key}"]
    table = lake.read_partition("cdn_logs", DAY)
    assert table.column("source_file").to_pylist() == [f"s3://{s3_bucket}/{key}"]
    assert table.column("ts").to_pylist() == [dt.datetime(2019, 12, 4, 21, 2, 31, tzinfo=UTC)]
    assert quarantine(lake) == [(4, "bad_sc_status", cloudfront_line({"sc-status": "x"}))]
    assert report.location == f"s3://{s3_bucket}/lake/cdn_logs/dt=2019-12-04"


def test_summary_names_counts_and_places() -> None:
    report = IngestReport(DAY, "cdn_logs", files=["a.gz", "b.gz"], rows=1234, location="file:///lake/x")
    report.formats.update({"cloudfront": 2})
    report.quarantined.update({"bad_date": 2, "other_day": 5})
    report.quarantine_location = "file:///lake/q"
    report.damaged_files.append("b.gz")
    assert report.summary() == (
        "2019-12-04: landed 1,234 cdn_logs rows from 2 files (2 cloudfront) in file:///lake/x. "
        "7 lines quarantined (other_day 5, bad_date 2) in file:///lake/q. "
        "Damaged files, read up to the damage: b.gz."
    )
    assert report.exit_code == ExitCode.FILES_DAMAGED
