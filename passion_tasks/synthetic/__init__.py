"""Realistic, labelled synthetic sources: CDN logs in vendors' formats, server metrics, ground truth.

``generate`` writes, under one folder::

    cdn/cloudfront/<DIST_ID>/<DIST_ID>.YYYY-MM-DD-HH.<8 hex>.gz   CloudFront standard logs, hourly
    cdn/datastream2/YYYY/MM/DD/ds2-YYYY-MM-DD-HH.jsonl.gz         Akamai DataStream 2 (optional)
    metrics/YYYY-MM-DD/<service>.json                             {"YYYY-MM-DD HH:MM:SS": value}
    labels/combined_windows.json                                  NAB windows per feature series
    labels/anomalies.json                                         what was injected, where, how strong

The same arguments give byte-identical files.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from passion_tasks.synthetic import catalog as cat
from passion_tasks.synthetic.anomalies import (
    ALL_KINDS,
    CDN_KINDS,
    Anomaly,
    apply_cdn_anomaly,
    apply_metric_anomaly,
    plan_anomalies,
)
from passion_tasks.synthetic.cloudfront_logs import cloudfront_chunks, log_file_name, write_cloudfront_log
from passion_tasks.synthetic.datastream2_logs import datastream2_chunks, datastream2_file_name
from passion_tasks.synthetic.label_files import combined_windows, moved_series
from passion_tasks.synthetic.metric_files import SERVICES, day_document, minute_starts, service_values
from passion_tasks.synthetic.output import GzipWriter, write_json
from passion_tasks.synthetic.requests import Requests, sample_requests
from passion_tasks.synthetic.traffic import HOUR_MS, arrivals

#: The ground truth under the output folder: NAB windows per feature series, and what was injected.
LABEL_WINDOWS = Path("labels") / "combined_windows.json"
INJECTED = Path("labels") / "anomalies.json"

__all__ = ["ALL_KINDS", "CDN_KINDS", "Anomaly", "GenerationSummary", "generate", "write_cloudfront_log"]


@dataclass(frozen=True)
class GenerationSummary:
    """What `generate` wrote."""

    out: Path
    start: dt.date
    days: int
    files: int
    cdn_lines_per_day: dict[str, int]  # CloudFront log lines (all distributions), by day
    ds2_lines_per_day: dict[str, int]  # DataStream 2 lines, by day; empty without ``ds2``
    metric_points: int
    anomalies: tuple[Anomaly, ...]

    def __str__(self) -> str:
        cdn = sum(self.cdn_lines_per_day.values())
        lines = [
            f"wrote {self.files} files under {self.out}: {self.days} days from {self.start}",
            f"  CloudFront log lines: {cdn:,} ({cdn // max(self.days, 1):,} a day)",
        ]
        if self.ds2_lines_per_day:
            lines.append(f"  DataStream 2 lines: {sum(self.ds2_lines_per_day.values()):,}")
        lines.append(f"  metric points: {self.metric_points:,}")
        lines.append(f"  anomalies: {len(self.anomalies)}")
        lines += [
            f"    {a.id} {a.kind} {a.dim}={a.value} {a.start:%Y-%m-%d %H:%M}+{a.minutes}min {a.magnitude}"
            for a in self.anomalies
        ]
        return "\n".join(lines)


def generate(
    out: str | os.PathLike[str],
    start: dt.date,
    days: int,
    seed: int = 0,
    *,
    rate: float = 200.0,
    ds2: bool = False,
    anomalies: bool = True,
    server_errors: bool = True,
    kinds: dict[str, float] = CDN_KINDS,
) -> GenerationSummary:
    """Write `days` days of CDN logs and server metrics from `start`, with labelled anomalies.

    `rate` is the mean number of CloudFront requests a minute over all distributions (the daily
    and weekly cycles move around it); `ds2` adds an Akamai DataStream 2 stream carrying another
    quarter of that. The anomalies are placed from `seed`: none in the first two days (fewer when
    `days` is shorter), at least one CDN and one metric anomaly on the last day; their CDN `kinds`
    (kind -> weight) are the classic five unless told (``ALL_KINDS`` adds outages and thin slices).
    Without `server_errors` healthy traffic never fails with 5xx: an error rate that is 0 until it is
    not.
    """
    if days < 1 or rate <= 0 or seed < 0:
        raise ValueError(f"need days >= 1, rate > 0 and seed >= 0 (got {days}, {rate}, {seed})")
    if isinstance(start, dt.datetime):
        start = start.date()
    out = Path(out)
    planned = plan_anomalies(start, days, seed, kinds) if anomalies else []
    streams = (*cat.CLOUDFRONT_STREAMS, cat.DS2) if ds2 else cat.CLOUDFRONT_STREAMS
    with GzipWriter() as writer:
        cdn_lines, ds2_lines, files, labelled = _write_cdn(
            writer,
            out,
            start,
            days,
            seed,
            rate,
            streams,
            [a for a in planned if a.source == "cdn"],
            server_errors,
        )
    metric_anomalies = [a for a in planned if a.source == "metrics"]
    points = _write_metrics(out, start, days, seed, metric_anomalies)
    labelled += [dataclasses.replace(a, series=(a.primary_series,)) for a in metric_anomalies]
    labelled.sort(key=lambda a: a.id)
    write_json(out / LABEL_WINDOWS, combined_windows(labelled), indent=2)
    write_json(
        out / INJECTED,
        {
            "generated": {"start": start.isoformat(), "days": days, "seed": seed, "rate": rate, "ds2": ds2},
            "anomalies": [a.to_json() for a in labelled],
        },
        indent=2,
    )
    return GenerationSummary(
        out=out,
        start=start,
        days=days,
        files=files + days * len(SERVICES) + 2,
        cdn_lines_per_day=cdn_lines,
        ds2_lines_per_day=ds2_lines,
        metric_points=points,
        anomalies=tuple(labelled),
    )


def _write_cdn(
    writer: GzipWriter,
    out: Path,
    start: dt.date,
    days: int,
    seed: int,
    rate: float,
    streams: tuple[cat.Stream, ...],
    anomalies: list[Anomaly],
    server_errors: bool = True,
) -> tuple[dict[str, int], dict[str, int], int, list[Anomaly]]:
    """Hour by hour: sample each stream, let the hour's anomalies act, write one file per stream.

    Returns CloudFront and DataStream 2 lines per day, the number of files, and the anomalies with
    the series they moved.
    """
    first_hour = int(dt.datetime.combine(start, dt.time(), dt.UTC).timestamp() * 1000) // HOUR_MS
    lines: dict[str, dict[str, int]] = {"cloudfront": defaultdict(int), "datastream2": defaultdict(int)}
    evidence: dict[str, list[tuple[Requests, Requests]]] = defaultdict(list)
    labelled: list[Anomaly] = []
    files = 0
    for hour in range(first_hour, first_hour + 24 * days):
        hour_start_ms = hour * HOUR_MS
        day = dt.datetime.fromtimestamp(hour_start_ms / 1000, dt.UTC).date().isoformat()
        active = [(number, a) for number, a in enumerate(anomalies) if hour in a.hours]
        healthy, affected = [], []
        for stream in streams:
            # One generator per stream and hour: a stream's files do not depend on the others.
            rng = np.random.default_rng([seed, stream.code, hour])
            requests = sample_requests(
                rng, stream, *arrivals(rng, stream, hour_start_ms, rate, seed), server_errors=server_errors
            )
            healthy.append(requests)
            for number, anomaly in active:
                acting = np.random.default_rng([seed, 65_537, number, stream.code, hour])
                requests = apply_cdn_anomaly(requests, anomaly, acting)
            affected.append(requests)
            if len(requests):
                writer.write(*_log_file(out, stream, hour_start_ms, seed, requests, rng))
                lines[stream.vendor][day] += len(requests)
                files += 1
        for _, anomaly in active:
            evidence[anomaly.id].append((Requests.concat(healthy), Requests.concat(affected)))
            if hour == anomaly.hours[-1]:
                moved = moved_series(anomaly, evidence.pop(anomaly.id))
                labelled.append(dataclasses.replace(anomaly, series=moved))
    return dict(lines["cloudfront"]), dict(lines["datastream2"]), files, labelled


def _log_file(
    out: Path, stream: cat.Stream, hour_start_ms: int, seed: int, requests: Requests, rng: np.random.Generator
) -> tuple[Path, Iterator[bytes | pa.Buffer]]:
    """Where one hour of a stream goes, and its content."""
    if stream.vendor == "cloudfront":
        name = log_file_name(stream.name, hour_start_ms, seed)
        return out / "cdn" / "cloudfront" / stream.name / name, cloudfront_chunks([(requests, rng)])
    return out / "cdn" / "datastream2" / datastream2_file_name(hour_start_ms), datastream2_chunks(
        requests, rng
    )


def _write_metrics(out: Path, start: dt.date, days: int, seed: int, anomalies: list[Anomaly]) -> int:
    """One JSON file per service and day, with the day's metric anomalies applied; returns the points."""
    points = 0
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        day_start_ms = int(minute_starts(day)[0])
        for index, service in enumerate(SERVICES):
            values = service_values(index, day, seed)
            for anomaly in anomalies:
                if anomaly.value == service.name and anomaly.start.date() == day:
                    values = apply_metric_anomaly(values, day_start_ms, anomaly)
            write_json(out / "metrics" / day.isoformat() / f"{service.name}.json", day_document(values, day))
            points += len(values)
    return points
