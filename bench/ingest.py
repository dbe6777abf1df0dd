"""Benchmark: Passion's CloudFront ingestion against a plain pyarrow CSV-to-Parquet conversion.

    python bench/ingest.py [--lines N] [--workdir DIR]

Writes two synthetic CloudFront gzip logs (N/2 and N lines) with the project's generator, then
times, each in a fresh subprocess so its peak RSS is its own:

- passion:  ``ingest_cdn_day`` into a temporary lake (streaming parse, typing, validation,
  URL-decoding, user-agent parsing, quarantine, atomic partition write);
- baseline: ``pyarrow.csv.read_csv`` of the same file (tab, the two header lines skipped, the
  33 field names of its ``#Fields`` line) and ``pyarrow.parquet.write_table``, all in memory,
  no checks.

It prints rows/s, wall time and peak RSS of each, the Passion/baseline time ratio, and the peak
RSS at N/2 and N, which shows whether memory grows with the file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DAY = dt.date(2026, 11, 21)


def run_passion(log: Path, workdir: Path) -> int:
    from passion_tasks.ingest import ingest_cdn_day
    from passion_tasks.lake import Lake

    lake = Lake(tempfile.mkdtemp(prefix="lake-", dir=workdir))
    return ingest_cdn_day(lake, DAY, str(log)).rows


def run_baseline(log: Path, workdir: Path) -> int:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    with gzip.open(log, "rt") as lines:
        next(lines)  # "#Version: 1.0"
        names = next(lines).split()[1:]  # "#Fields: date time ..."
    table = pacsv.read_csv(
        log,
        read_options=pacsv.ReadOptions(skip_rows=2, column_names=names),
        parse_options=pacsv.ParseOptions(delimiter="\t"),
    )
    pq.write_table(table, workdir / f"baseline-{log.stem}.parquet")
    return table.num_rows


PHASES = {"passion": run_passion, "baseline": run_baseline}


def measure_phase(phase: str, log: Path, workdir: Path) -> None:
    """Run one phase in this process and print its figures as JSON (the child's side)."""
    started = time.perf_counter()
    rows = PHASES[phase](log, workdir)
    seconds = time.perf_counter() - started
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_rss_mib": peak_rss_mib()}))


def peak_rss_mib() -> float:
    """This process's peak resident memory.

    Linux keeps ``ru_maxrss`` across ``exec``, so a child's figure would start at its parent's
    size when it forked; ``VmHWM`` belongs to the new program alone.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(phase: str, log: Path, workdir: Path) -> dict[str, float]:
    command = [sys.executable, __file__, "--phase", phase, "--log", str(log), "--workdir", str(workdir)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{phase} on {log.name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_log(path: Path, lines: int) -> None:
    from passion_tasks.synthetic.cloudfront_logs import write_cloudfront_log

    write_cloudfront_log(path, dt.datetime.combine(DAY, dt.time(10), dt.UTC), lines, seed=7)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--workdir", type=Path, help="where the logs and lakes go (default: a temp folder)")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        measure_phase(args.phase, args.log, args.workdir)
        return

    with tempfile.TemporaryDirectory(prefix="passion-bench-", dir=args.workdir) as folder:
        workdir = Path(folder)
        sizes = {"N/2": args.lines // 2, "N": args.lines}
        logs = {label: workdir / f"E2BENCH.{DAY}-10.{lines}.gz" for label, lines in sizes.items()}
        for label, log in logs.items():
            started = time.perf_counter()
            write_log(log, sizes[label])
            print(
                f"wrote {sizes[label]:,} CloudFront lines ({log.stat().st_size / 2**20:,.0f} MiB gzip) "
                f"in {time.perf_counter() - started:.1f} s"
            )
        results = {
            (phase, label): measure(phase, log, workdir) for label, log in logs.items() for phase in PHASES
        }
        print(f"\n{'phase':<10}{'size':>6}{'lines':>12}{'wall s':>9}{'rows/s':>12}{'peak RSS MiB':>15}")
        for (phase, label), figures in results.items():
            print(
                f"{phase:<10}{label:>6}{figures['rows']:>12,}{figures['seconds']:>9.2f}"
                f"{figures['rows'] / figures['seconds']:>12,.0f}{figures['peak_rss_mib']:>15,.0f}"
            )
        ratio = results["passion", "N"]["seconds"] / results["baseline", "N"]["seconds"]
        print(f"\nPassion / baseline time at N: {ratio:.2f}x")
        for phase in PHASES:
            half, full = (results[phase, label]["peak_rss_mib"] for label in sizes)
            print(f"{phase} peak RSS: {half:,.0f} MiB at N/2, {full:,.0f} MiB at N ({full / half:.2f}x)")


if __name__ == "__main__":
    main()
