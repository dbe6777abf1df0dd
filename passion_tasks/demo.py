"""``passion demo``: generate labelled sources, land and featurise every day, train the baseline on
all days but the last, score the last one and report it, through the same steps as the DAGs."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from passion_tasks import steps
from passion_tasks.lake import Lake, datasets


def run_demo(
    lake: Lake,
    workdir: Path,
    *,
    days: int = 14,
    start: dt.date | None = None,
    seed: int = 0,
    rate: float = 200.0,
    echo: Callable[[str], None] = print,
) -> str:
    """Run the demo into ``lake`` with its sources in ``workdir``; returns the report's URI."""
    from passion_tasks.corpora.labels import store_label_windows
    from passion_tasks.synthetic import LABEL_WINDOWS, generate

    start = start or dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days)
    last = start + dt.timedelta(days=days - 1)
    sources = Path(workdir) / "sources"

    def timed(label: str, action: Callable[[], Any]) -> Any:
        began = time.perf_counter()
        result = action()
        echo(f"{label} ({time.perf_counter() - began:.1f} s)")
        return result

    timed(
        f"generated {days} days of CloudFront logs and server metrics from {start} into {sources}",
        lambda: generate(sources, start, days, seed=seed, rate=rate),
    )
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        landed = {
            source: timed(
                f"  {day}: ingested {source}",
                lambda d=day, s=source: steps.ingest_day(lake, s, d, str(sources)),
            )
            for source in datasets.SOURCES
        }
        timed(f"  {day}: built features", lambda d=day: steps.build_features(lake, d))
        echo(f"    {landed[datasets.CDN].summary()}")
    store_label_windows(lake, "generated", sources / LABEL_WINDOWS)
    trained = timed(
        f"trained the nightly models of every watched series on {start}..{last - dt.timedelta(days=1)}",
        lambda: steps.train(lake, train_from=start, train_to=last - dt.timedelta(days=1), promote=True),
    )
    echo(f"  {trained.summary()}")
    scored = timed(f"scored {last} with the live models", lambda: steps.score_day(lake, last))
    echo(f"  {scored.summary()}")
    return timed("rendered the report", lambda: steps.report_day(lake, last))
