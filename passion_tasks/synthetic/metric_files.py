"""Server metrics of the seed notebook's services, one value a minute, in its JSON layout.

The seed read ``cif.json`` ... ``paydecision3.json`` with ``pd.read_json(path, orient="index")``:
one object per service mapping ``"YYYY-MM-DD HH:MM:SS"`` to a count. Levels follow the seed's
(cif about 5e6 a minute, paycore 1e6, paydecision and paydecision2 7e5, paydecision3 2e5); they
share a daily cycle of a payments business in UTC+8, a weekly cycle and a common drift, each
with its own noise.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from passion_tasks.synthetic.traffic import MINUTE_MS, cycle, drift, local_hours_days, weekly


@dataclass(frozen=True)
class Service:
    name: str
    level: float  # mean value per minute
    noise: float  # relative minute-to-minute noise


SERVICES = (
    Service("cif", 5.5e6, 0.010),
    Service("paycore", 1.0e6, 0.015),
    Service("paydecision", 7.0e5, 0.015),
    Service("paydecision2", 6.8e5, 0.018),
    Service("paydecision3", 2.0e5, 0.025),
)
UTC_OFFSET_HOURS = 8
# Payments in local time: quiet at night, busy from late morning, highest in the evening.
DAILY = (0.45, 0.35, 0.28, 0.25, 0.25, 0.30, 0.45, 0.70, 0.95, 1.10, 1.20, 1.25)
DAILY += (1.30, 1.20, 1.15, 1.15, 1.15, 1.20, 1.30, 1.40, 1.45, 1.35, 1.05, 0.70)
#: Monday first: a little quieter at the weekend.
WEEKLY = (1.02, 1.02, 1.01, 1.0, 1.03, 0.97, 0.95)
#: How much of the daily swing shows (the seed's cif moves between about 4.5e6 and 8.5e6).
DAILY_DEPTH = 0.45
MINUTES_PER_DAY = 1440


def minute_starts(day: dt.date) -> np.ndarray:
    """Epoch milliseconds of the day's 1440 minutes (UTC)."""
    midnight = dt.datetime.combine(day, dt.time(), dt.UTC)
    return int(midnight.timestamp() * 1000) + MINUTE_MS * np.arange(MINUTES_PER_DAY, dtype=np.int64)


def service_values(service_index: int, day: dt.date, seed: int) -> np.ndarray:
    """The 1440 healthy values of one service on one day (floats; rounded when written)."""
    service = SERVICES[service_index]
    epoch_ms = minute_starts(day)
    hours, days = local_hours_days(epoch_ms.astype(float), UTC_OFFSET_HOURS)
    daily = 1 + DAILY_DEPTH * (cycle(DAILY, hours) - 1)
    minutes = epoch_ms / MINUTE_MS
    shared = drift(minutes, seed, 10_000, amplitude=0.04)
    own = drift(minutes, seed, 10_001 + service_index, amplitude=0.02)
    rng = np.random.default_rng([seed, 31_337, service_index, day.toordinal()])
    noise = 1 + service.noise * rng.standard_normal(MINUTES_PER_DAY)
    return service.level * daily * weekly(WEEKLY, days) * shared * own * noise


def day_document(values: np.ndarray, day: dt.date) -> dict[str, int]:
    """The seed's JSON object for one day: ``{"YYYY-MM-DD HH:MM:SS": count}``."""
    stamps = np.datetime64(day.isoformat(), "m") + np.arange(len(values))
    names = np.datetime_as_string(stamps, unit="s")
    return {name.replace("T", " "): int(value) for name, value in zip(names, np.rint(values), strict=True)}
