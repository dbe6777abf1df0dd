"""Scoring a day's minutes as they arrive: the micro-batches' scores, the same as the nightly run's.

Every Passion detector is causal: a row's score depends on the row and the rows before it. A
micro-batch scores the minutes from ``start`` to ``end`` with the frame the nightly run builds (the
same days of history before the day, then the day), cut at ``end``; so each minute gets the score
the nightly run gives it once the day is whole. A detector's state from the previous batch is its
history, read again, not a snapshot that could drift from the book of record.

The scores go to ``live_scores/dt=D/``, one file per micro-batch whose members are its minutes
(``lake.batches``): re-scoring minutes (a late file changed them, a model was promoted) replaces
exactly their rows, so no minute is scored twice into the lake.
"""

from __future__ import annotations

import contextlib
import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from passion_tasks.detectors import Detector
from passion_tasks.features import minute_grid, read_series
from passion_tasks.features.series import wide_frame
from passion_tasks.lake import Lake, PartitionNotFound, batches, datasets, schemas
from passion_tasks.models.registry import ModelVersion


def live_frame(
    lake: Lake,
    day: dt.date,
    today: pa.Table,
    end: pd.Timestamp,
    loaded: dict[str, tuple[Detector, ModelVersion]],
    history_days: int,
) -> pd.DataFrame:
    """The frame a micro-batch scores: the loaded models' features over the history they need
    (``scoring.history_needed`` whole days before ``day``) from the lake, then ``today``'s FEATURES
    rows up to ``end``."""
    from passion_tasks.models.scoring import history_needed

    features = sorted({feature for _, version in loaded.values() for feature in version.features})
    days = history_needed([model for model, _ in loaded.values()], history_days)
    first, last = day - dt.timedelta(days=days), day - dt.timedelta(days=1)
    columns = pd.Index(features, dtype=str, name="series")
    before = pd.DataFrame(np.nan, index=minute_grid(first, last), columns=columns)
    # No history: the models score the day from its first minute, as the nightly run would.
    with contextlib.suppress(PartitionNotFound):
        before = read_series(lake, first, last, features) if days else before
    grid = pd.date_range(pd.Timestamp(day, tz="UTC"), end, freq="min", inclusive="left", unit="ms", name="ts")
    wanted = pc.and_(
        pc.is_in(today["series"], pa.array(features, pa.string())),
        pc.less(today["ts"], pa.scalar(end.to_pydatetime(), schemas.TS)),
    )
    return pd.concat([before, wide_frame(today.filter(wanted), grid, features)])


def minutes(start: pd.Timestamp, end: pd.Timestamp) -> list[str]:
    """The members of ``live_scores`` that the minutes ``[start, end)`` are (``batches.member_names``)."""
    grid = pd.date_range(start, end, freq="min", inclusive="left", unit="ms")
    return batches.member_names(pa.array(grid, schemas.TS)) if len(grid) else []


def write_live_scores(
    lake: Lake, day: dt.date, scores: pa.Table, start: pd.Timestamp, end: pd.Timestamp
) -> None:
    """Replace the day's live scores of the minutes ``[start, end)`` by ``scores`` (rows of those
    minutes only), atomically."""
    batches.replace_members(
        lake,
        datasets.LIVE_SCORES,
        day,
        scores,
        column="ts",
        members=minutes(start, end),
        schema=schemas.SCORES,
    )
