"""Incident-level evaluation of the nightly path: what an on-call engineer gets, day by day.

For each seed and rate: 14 generated days with every incident kind (outages on a 5xx rate that was 0
all week, thin-slice bursts, edge traffic drops, latency spikes, device regressions, metric spikes,
shifts and stalls) and no 5xx in healthy traffic, landed and featurised; the nightly models
(``passion train`` without a detector) trained on the first 7 days; the last 7 scored one by one, as
the score DAG does, and judged against the labels (``evaluation.incidents``): found by the report,
alerted (severity at least warning, the default route), the cause naming the labelled slice, the
delay, and the report incidents and alerts with no label behind them (the report's routine entries,
crawlers, downloads and habits, are counted apart). Then a week with no incident at all, which must
send nothing.

    python bench/incidents.py [--seeds 0,1,2] [--rates 30,300] [--days 14] [--train-days 7]
    python bench/incidents.py --judge-kept DIR

Prints one row per seed and rate, the totals, and the labelled incidents that were missed.
``--keep DIR`` keeps each week's sources, lake and labels; ``--judge-kept DIR`` judges those scored
days again with the code as it is now (the report's incidents, causes and alerts are made again from
the kept lake; models, scores and events are not), which is how a change to the incident rules is
compared with the code before it on the same weeks.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from passion_tasks import steps
from passion_tasks.alerting.rules import Rules, decide
from passion_tasks.evaluation.incidents import DayOutcome, Found, Label, judge_day, summarise
from passion_tasks.incidents.day import EXPLAINED_INCIDENTS, day_incidents
from passion_tasks.incidents.model import family
from passion_tasks.lake import Lake, datasets
from passion_tasks.models.training import TrainSummary
from passion_tasks.synthetic import INJECTED

START = dt.date(2026, 10, 1)
#: The default route's minimum severity (``alerting.config``): what reaches a channel.
ROUTED = "warning"
#: A kept week's labels, beside its ``sources`` and ``lake``.
LABELS = "labels.json"


#: Where a bench's days come from: given a folder, seed, rate, days, training days and whether to put
#: incidents in, it writes the sources there and says their first day, labels and kinds.
Sources = Callable[[Path, int, float, int, int, bool], tuple[dt.date, list[Label], tuple[str, ...]]]


def generated(
    out: Path, seed: int, rate: float, days: int, train_days: int, anomalies: bool
) -> tuple[dt.date, list[Label], tuple[str, ...]]:
    """``passion generate --all-kinds --no-server-errors``'s days, its labels, CDN logs and metrics."""
    steps.generate(
        out, START, days, seed=seed, rate=rate, server_errors=False, all_kinds=True, anomalies=anomalies
    )
    injected = json.loads((out / INJECTED).read_text())["anomalies"] if anomalies else []
    return START, [Label.from_json(entry) for entry in injected], datasets.SOURCES


def week(
    seed: int,
    rate: float,
    days: int,
    train_days: int,
    *,
    anomalies: bool,
    sources: Sources,
    echo,
    verbose: bool = False,
    keep: Path | None = None,
) -> list[DayOutcome]:
    """One seed and rate of ``sources`` through the nightly path, judged; prints its line and misses."""
    with tempfile.TemporaryDirectory(prefix="passion-incidents-") as tmp:
        where = keep / f"seed{seed}-rate{rate:g}{'' if anomalies else '-quiet'}" if keep else Path(tmp)
        began = time.perf_counter()
        start, labels, kinds = sources(where / "sources", seed, rate, days, train_days, anomalies)
        (where / LABELS).write_text(json.dumps([label.to_json() for label in labels], indent=1))
        outcomes, trained = nightly(
            where, start, days, train_days, labels, echo=echo, verbose=verbose, sources=kinds
        )
        quiet = "" if anomalies else ", no incident"
        echo(
            f"  seed {seed}, {rate:g}/min{quiet}: {len(trained.trained)} models, "
            f"{len(trained.failed)} failed; {time.perf_counter() - began:.0f} s"
        )
        echo_misses(outcomes, echo)
        return outcomes


def nightly(
    where: Path,
    start: dt.date,
    days: int,
    train_days: int,
    labels: list[Label],
    *,
    echo,
    verbose: bool = False,
    sources: tuple[str, ...] = datasets.SOURCES,
) -> tuple[list[DayOutcome], TrainSummary]:
    """The nightly path over ``where/sources`` into a lake at ``where/lake``: ``days`` days from ``start``
    of each of ``sources`` landed and featurised, the nightly models trained on the first
    ``train_days``, the others scored one by one as the score DAG does and judged against ``labels``."""
    lake = Lake((where / "lake").as_uri())
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        for source in sources:
            steps.ingest_day(lake, source, day, str(where / "sources"))
        steps.build_features(lake, day)
    last_train = start + dt.timedelta(days=train_days - 1)
    trained = steps.train(lake, train_from=start, train_to=last_train, promote=True)
    scored = [start + dt.timedelta(days=offset) for offset in range(train_days, days)]
    for day in scored:
        steps.score_day(lake, day)
    return judged(lake, scored, labels, echo=echo, verbose=verbose), trained


def judged(
    lake: Lake, scored: list[dt.date], labels: list[Label], *, echo, verbose: bool = False
) -> list[DayOutcome]:
    """Each scored day's report incidents and routed alerts, in order (an alert holds back the same
    series' next ones as the score DAG's do), judged against ``labels``."""
    rules = Rules()
    earlier: list = []
    outcomes = []
    for day in scored:
        scores = lake.read_partition(datasets.SCORES, day).to_pandas()
        events = lake.read_partition(datasets.EVENTS, day).to_pandas()
        explained = day_incidents(lake, day, scores, events)
        decisions = decide(day, explained[:EXPLAINED_INCIDENTS], scores, rules, (), earlier)
        routed = [a for a in decisions.alerts if rules.rank(a.severity) >= rules.rank(ROUTED)]
        earlier += [(alert.series, alert.incident.end) for alert in routed]
        # The report lists routine entries (crawlers, downloads, habits) apart from its incidents.
        incidents: list[Found] = []
        routine: list[Found] = []
        for e in explained:
            incident = e.incident
            (routine if e.cause.routine else incidents).append(
                Found(incident.start, incident.stop, incident.family, e.cause.slice, incident.lead["series"])
            )
        alerts = [
            Found(
                a.incident.start,
                a.incident.end + pd.Timedelta(minutes=1),
                family(a.incident.peak.series),
                (a.incident.cause.slice if a.incident.cause else {}),
                a.incident.peak.series,
            )
            for a in routed
        ]
        on_day = [label for label in labels if label.start.date() == day]
        outcomes.append(judge_day(day, on_day, incidents, alerts, routine))
        if verbose:
            echo_day(day, on_day, explained, decisions.alerts, echo)
    return outcomes


def judge_kept(keep: Path, echo, verbose: bool = False) -> tuple[list[dict], list[DayOutcome]]:
    """Every week kept under ``keep`` (``--keep``) judged again with the code as it is now: a row each,
    and every day's outcome."""
    rows, everything = [], []
    for labels_file in sorted(keep.glob(f"*/{LABELS}")):
        lake = Lake((labels_file.parent / "lake").as_uri())
        labels = [Label.from_json(entry) for entry in json.loads(labels_file.read_text())]
        outcomes = judged(lake, lake.partitions(datasets.SCORES), labels, echo=echo, verbose=verbose)
        echo(f"  {labels_file.parent.name}")
        echo_misses(outcomes, echo)
        rows.append({"week": labels_file.parent.name, **summarise(outcomes).row()})
        everything += outcomes
    return rows, everything


def echo_misses(outcomes: list[DayOutcome], echo) -> None:
    """The labelled incidents missed, found but not alerted, or alerted without their cause."""
    for outcome in outcomes:
        for label in outcome.labels:
            if label.id not in outcome.delays or label.id not in outcome.alerted:
                status = "missed" if label.id not in outcome.delays else "not alerted"
                echo(f"    {status}: {describe(label)}")
            elif label.id not in outcome.causes_right:
                echo(f"    cause not named: {describe(label)}")


def describe(label: Label) -> str:
    minutes = (label.stop - label.start) / pd.Timedelta(minutes=1)
    return (
        f"{label.id} {label.kind} {label.dim}={label.value} {label.channel} "
        f"{label.start:%m-%d %H:%M}+{minutes:.0f}m"
    )


def echo_day(day: dt.date, labels: list[Label], explained: list, alerts: list, echo) -> None:
    """Every label of the day, then every report incident: matched or not, its alert and its cause."""
    for label in labels:
        echo(f"    {day} label {describe(label)}")
    for entry in explained:
        incident = entry.incident
        sent = [alert.severity for alert in alerts if alert.incident.start == incident.start]
        found = Found(incident.start, incident.stop, incident.family, {}, "")
        verdict = "OK " if any(found.finds(label) for label in labels) else "FP "
        echo(
            f"      {verdict}{incident.start:%H:%M} {incident.minutes}m sev {incident.severity:.1f} "
            f"{incident.lead['series']} ({len(incident.events)} ev) "
            f"alert={sent[0] if sent else '-'} cause={entry.cause.text[:90]}"
        )


def main(sources: Sources | dict[str, Sources] = generated, description: str = __doc__) -> None:
    """The bench's command line over ``sources``, or over the one of several that ``--shape`` names
    (the first by default)."""
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    if isinstance(sources, dict):
        parser.add_argument("--shape", choices=list(sources), default=next(iter(sources)))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--rates", default="30,300")
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--train-days", type=int, default=7)
    parser.add_argument("--verbose", action="store_true", help="print every label, incident and alert")
    parser.add_argument("--no-quiet-week", dest="quiet_week", action="store_false")
    parser.add_argument("--keep", type=Path, help="write the sources and lakes here, and keep them")
    parser.add_argument("--judge-kept", type=Path, help="judge the weeks kept here again, and stop")
    args = parser.parse_args()
    if args.judge_kept:
        rows, everything = judge_kept(args.judge_kept, print, args.verbose)
        print(pd.DataFrame(rows).to_string(index=False))
        print("\nall:", summarise(everything).row())
        return
    if isinstance(sources, dict):
        sources = sources[args.shape]
    # Production signs its models; so does the benchmark, with a key of its own.
    os.environ.setdefault("PASSION_MODEL_KEY", secrets.token_hex(32))
    rows, everything = [], []
    output = {"sources": sources, "echo": print, "verbose": args.verbose, "keep": args.keep}
    for rate in [float(r) for r in args.rates.split(",")]:
        for seed in [int(s) for s in args.seeds.split(",")]:
            outcomes = week(seed, rate, args.days, args.train_days, anomalies=True, **output)
            everything += outcomes
            rows.append({"seed": seed, "rate/min": rate, **summarise(outcomes).row()})
        if args.quiet_week:
            quiet = week(0, rate, args.days, args.train_days, anomalies=False, **output)
            everything += quiet
            rows.append({"seed": "quiet week", "rate/min": rate, **summarise(quiet).row()})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    print("\nall:", summarise(everything).row())


if __name__ == "__main__":
    main()
