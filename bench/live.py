"""Micro-batches through a day, against the nightly scoring of the same day measured in the same run.

    python bench/live.py [--rate 300] [--minutes 5] [--from-hour 10 --to-hour 12]

``passion generate`` writes five days of CloudFront logs (two distributions, an hour file each per hour)
at ``--rate`` requests a minute, with an outage and a latency spike on the last day; the nightly models
(``passion train``, no detector) learn from the first four. The last day's hour files are cut into
files of ``--minutes`` minutes (a distribution delivers several an hour) and delivered in order: the
hours before ``--from-hour`` at once, then each cut, each followed by one micro-batch
(``steps.live_batches``) as ``passion_live`` runs it, in this process. Printed per timed batch: the
minutes scored, the series, the seconds from the delivery to its alerts being decided; then the nightly
run's scoring of the whole day (``steps.score_day`` after ``passion ingest`` and ``passion features``)
as the baseline. A file's alert reaches the on-call engineer within the cadence (5 minutes: the batch
after it lands) plus the batch's seconds; the last line says it for the day's outage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from passion_tasks import steps
from passion_tasks.alerting import AlertConfig
from passion_tasks.lake import Lake, datasets
from passion_tasks.synthetic import INJECTED, generate

START, DAYS = dt.date(2026, 10, 1), 5
SEED, KINDS = 19, {"outage": 0.5, "latency_spike": 0.5}


def cut(hour_file: Path, minutes: int, into: Path) -> list[Path]:
    """The hour file as files of ``minutes`` minutes each, the header repeated, named as CloudFront names
    its files (``<distribution>.<YYYY-MM-DD-HH>.<id>.gz``)."""
    lines = gzip.decompress(hour_file.read_bytes()).splitlines(keepends=True)
    header = [line for line in lines if line.startswith(b"#")]
    pieces: dict[int, list[bytes]] = {}
    for line in lines:
        if not line.startswith(b"#"):
            minute = int(line.split(b"\t")[1][3:5])
            pieces.setdefault(minute // minutes, []).append(line)
    distribution, hour = hour_file.name.split(".")[:2]
    written = []
    for piece, rows in sorted(pieces.items()):
        target = into / hour_file.parent.name / f"{distribution}.{hour}.m{piece * minutes:02d}.gz"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(gzip.compress(b"".join(header + rows)))
        written.append(target)
    return written


def trained_lake(root: Path, sources: Path, start: dt.date, rate: float) -> Lake:
    """``DAYS`` days of sources from ``start`` into ``sources``; a lake under ``root`` with all but the
    last landed and the nightly models (``passion train``) trained on them, live from the last."""
    lake = Lake((root / "lake").as_uri())
    generate(sources, start, DAYS, SEED, rate=rate, server_errors=False, kinds=KINDS)
    for offset in range(DAYS - 1):
        for source in datasets.SOURCES:
            steps.ingest_day(lake, source, start + dt.timedelta(days=offset), str(sources))
        steps.build_features(lake, start + dt.timedelta(days=offset))
    steps.train(lake, train_from=start, train_to=start + dt.timedelta(days=DAYS - 2), promote=True)
    return lake


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--minutes", type=int, default=5)
    parser.add_argument("--from-hour", type=int, default=10)
    parser.add_argument("--to-hour", type=int, default=12)
    args = parser.parse_args()
    day = START + dt.timedelta(days=DAYS - 1)
    with tempfile.TemporaryDirectory(prefix="passion-bench-live-") as tmp:
        root = Path(tmp)
        sources, staged, delivered = root / "sources", root / "staged", root / "delivered" / "cdn"
        lake = trained_lake(root, sources, START, args.rate)
        config = AlertConfig()
        hours = sorted(sources.glob(f"cdn/*/*/*{day}-*.gz"), key=lambda path: path.name.split(".")[1])
        cuts = [piece for hour in hours for piece in cut(hour, args.minutes, staged)]

        def hour_minute(piece: Path) -> tuple[int, int]:
            return int(piece.name.split(".")[1][-2:]), int(piece.name.split(".")[2][1:])

        def deliver(pieces: list[Path]) -> None:
            for piece in pieces:
                target = delivered / piece.parent.name / piece.name
                target.parent.mkdir(parents=True, exist_ok=True)
                piece.replace(target)

        def batch_at(now: dt.datetime) -> tuple[float, list]:
            began = time.perf_counter()
            ran = steps.live_batches(lake, str(delivered.parent), now=now, config=config)
            return time.perf_counter() - began, [batch for batch in ran if batch.day == day]

        midnight = dt.datetime.combine(day, dt.time(), dt.UTC)
        deliver([piece for piece in cuts if hour_minute(piece)[0] < args.from_hour])
        seconds, _ = batch_at(midnight + dt.timedelta(hours=args.from_hour, minutes=1))
        print(f"catch-up batch to {args.from_hour:02d}:00: {seconds:.1f} s")
        timed, first_alert = [], {}
        for slot in range(args.from_hour * 60, args.to_hour * 60, args.minutes):
            due = [p for p in cuts if hour_minute(p)[0] * 60 + hour_minute(p)[1] == slot]
            deliver(due)
            now = midnight + dt.timedelta(minutes=slot + args.minutes + 1)
            seconds, (batch,) = batch_at(now)
            timed.append(seconds)
            sent = [alert for alert in (batch.alerts.alerts if batch.alerts else []) if alert.incident]
            for alert in sent:
                first_alert.setdefault(alert.incident.start, (now, seconds, alert.title))
            span = f"{batch.start:%H:%M}-{batch.end:%H:%M}" if batch.start is not None else "-"
            series = batch.scores.series_scored if batch.scores else 0
            print(f"{now:%H:%M} {len(due)} files, scored {span} of {series} series in {seconds:.2f} s")
        deliver(sorted(staged.rglob("*.gz")))
        for source in datasets.SOURCES:
            steps.ingest_day(lake, source, day, str(sources))
        steps.build_features(lake, day)
        began = time.perf_counter()
        nightly = steps.score_day(lake, day)
        baseline = time.perf_counter() - began
        print(f"nightly scoring of the day (baseline): {nightly.series_scored} series in {baseline:.1f} s")
        labels = json.loads((sources / INJECTED).read_text())["anomalies"]
        outage = next(label for label in labels if label["kind"] == "outage" and label["start"] >= str(day))
        print(
            f"micro-batches of {args.minutes} min: median {statistics.median(timed):.2f} s, "
            f"max {max(timed):.2f} s over {len(timed)} batches ({statistics.median(timed) / baseline:.2f} of "
            "the nightly scoring)"
        )
        start = dt.datetime.fromisoformat(outage["start"]).replace(tzinfo=dt.UTC)
        found = sorted((at, now, seconds, title) for at, (now, seconds, title) in first_alert.items())
        near = [entry for entry in found if abs(entry[0] - start) <= dt.timedelta(minutes=10)]
        hit = near[0] if near else None
        if hit is None:
            print(f"outage at {start:%H:%M}: no alert decided by the micro-batches")
            return 1
        at, now, seconds, title = hit
        print(
            f"outage at {start:%H:%M}: alert (incident from {at:%H:%M}) decided by the batch at {now:%H:%M} "
            f"in {seconds:.2f} s "
            f"({(now - start).total_seconds() / 60:.0f} min after its first minute; its file landed "
            f"{args.minutes} min before the batch at most): {title}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
