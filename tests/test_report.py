"""The day's HTML report, rendered from scores and events in the lake."""

from __future__ import annotations

import base64
import datetime as dt
import re

import numpy as np
import pandas as pd
import pyarrow as pa

from passion_tasks import schemas
from passion_tasks.lake import Lake
from passion_tasks.reporting.report import day_report_html, render_day_report
from passion_tasks.scoring import group_events

DAY = dt.date(2026, 11, 21)
SERIES = "cdn_ttfb_p95{edge=FRA2}"
IMAGE = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def day_scores(series: str, anomalous_minutes: list[int], *, threshold: float = 4.0) -> pd.DataFrame:
    """One day of scores for ``series``: a smooth cycle, spiking at ``anomalous_minutes``."""
    minutes = np.arange(1440)
    expected = 0.2 + 0.05 * np.sin(2 * np.pi * minutes / 1440)
    score = np.full(1440, 1.0)
    score[anomalous_minutes] = 10.0 + np.arange(len(anomalous_minutes))
    return pd.DataFrame(
        {
            "ts": pd.date_range(pd.Timestamp(DAY, tz="UTC"), periods=1440, freq="min"),
            "series": series,
            "detector": "rolling_mad",
            "model_version": "fit:2026-11-08..2026-11-20",
            "value": expected + 0.01 * score,
            "expected": expected,
            "score": score,
            "threshold": threshold,
            "is_anomaly": score >= threshold,
        }
    )


def write_day(lake: Lake, scores: pd.DataFrame) -> pd.DataFrame:
    events = group_events(scores)
    lake.write_partition("scores", DAY, pa.Table.from_pandas(scores, preserve_index=False))
    lake.write_partition(
        "events", DAY, pa.Table.from_pandas(events, schema=schemas.EVENTS, preserve_index=False)
    )
    return events


def test_report_of_a_day_with_an_incident(lake: Lake) -> None:
    # Minutes 845-849 (14:05-14:09) are one incident, 1200 (20:00) another one.
    write_day(lake, day_scores(SERIES, [845, 846, 847, 848, 849, 1200]))
    ingest_meta = {"rows": 12345, "quarantined": {"bad_status": 3, "truncated_line": 1}}
    lake.write_partition("cdn_logs", DAY, schemas.CDN_LOGS.empty_table(), meta=ingest_meta)

    uri = render_day_report(lake, DAY)

    assert uri == lake.uri("reports/dt=2026-11-21/index.html")
    html = lake.read_bytes("reports/dt=2026-11-21/index.html").decode("utf-8")
    assert SERIES in html
    assert "2026-11-21 14:05 UTC" in html
    assert "2026-11-21 14:09 UTC" in html
    assert "5 min" in html
    # The 5-minute incident comes before the 1-minute one, although the latter peaks higher.
    assert html.index("2026-11-21 14:05 UTC") < html.index("2026-11-21 20:00 UTC")
    assert "12,345" in html
    assert "truncated_line" in html
    images = IMAGE.findall(html)
    assert len(images) == 2
    assert base64.b64decode(images[0]).startswith(b"\x89PNG\r\n\x1a\n")
    summary = html[html.index("<h2>Summary") : html.index("<h2>Series")]
    assert re.findall(r'class="num">([\d,]+)<', summary) == ["1", "6", "2", "12,345", "4", "3", "1"]


def test_report_of_a_quiet_day(lake: Lake) -> None:
    write_day(lake, day_scores(SERIES, []))

    render_day_report(lake, DAY)

    html = lake.read_bytes("reports/dt=2026-11-21/index.html").decode("utf-8")
    assert "No incidents on 2026-11-21." in html
    assert "no CDN log ingest recorded" in html
    assert IMAGE.findall(html) == []


def test_report_escapes_names_and_caps_the_incidents_shown() -> None:
    scores = pd.concat(
        [day_scores("<script>alert(1)</script>", [100, 300, 500]), day_scores(SERIES, [700])],
        ignore_index=True,
    )
    html = day_report_html(DAY, scores, group_events(scores), max_events=2)

    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert len(IMAGE.findall(html)) == 2
    assert "2 more are in the events table" in html


def test_report_without_recorded_thresholds() -> None:
    scores = day_scores(SERIES, [845]).drop(columns="threshold")
    html = day_report_html(DAY, scores, group_events(scores))
    assert "not recorded" in html
    assert len(IMAGE.findall(html)) == 1
