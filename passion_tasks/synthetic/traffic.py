"""How many requests arrive when: daily and weekly cycles in viewers' local time, slow drift.

Everything here is a pure function of time and seed, so any hour can be generated on its own
and still join its neighbours without a seam.
"""

from __future__ import annotations

import numpy as np

from passion_tasks.synthetic.catalog import EDGES, LIVE_DAILY, VOD_DAILY, WEEKLY, Stream

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000

# Drift periods (minutes): fast wobble, hours, half a day, several days.
_DRIFT_PERIODS_MIN = (37.0, 139.0, 581.0, 4463.0)


def cycle(profile: tuple[float, ...], hours: np.ndarray) -> np.ndarray:
    """A 24-point hourly profile, interpolated at fractional hours and scaled to mean 1."""
    values = np.asarray(profile, dtype=float)
    values = values / values.mean()
    points = np.arange(25, dtype=float)
    return np.interp(np.mod(hours, 24.0), points, np.append(values, values[0]))


def weekly(profile: tuple[float, ...], days: np.ndarray) -> np.ndarray:
    """A 7-point day-of-week profile (Monday first) interpolated between mid-days, scaled to mean 1.

    Interpolating keeps midnight free of a step that a detector would flag.
    """
    values = np.asarray(profile, dtype=float)
    values = values / values.mean()
    centres = np.arange(-0.5, 8.0)
    return np.interp(np.mod(days, 7.0), centres, np.concatenate((values[-1:], values, values[:1])))


def drift(minutes: np.ndarray, seed: int, key: int, amplitude: float) -> np.ndarray:
    """Smooth multiplicative noise around 1: a sum of slow sinusoids with seeded phases."""
    phases = np.random.default_rng([seed, 7919, key]).uniform(0, 2 * np.pi, len(_DRIFT_PERIODS_MIN))
    waves = sum(
        np.sin(2 * np.pi * minutes / period + phase)
        for period, phase in zip(_DRIFT_PERIODS_MIN, phases, strict=True)
    )
    return np.exp(amplitude * waves / np.sqrt(len(_DRIFT_PERIODS_MIN)))


def local_hours_days(epoch_ms: np.ndarray, utc_offset_hours: float) -> tuple[np.ndarray, np.ndarray]:
    """Fractional local hour of day and fractional days since a Monday, at each timestamp."""
    local_days = (epoch_ms / DAY_MS) + utc_offset_hours / 24.0
    # 1970-01-01 was a Thursday: shift so that 0 is a Monday.
    return np.mod(local_days, 1.0) * 24.0, local_days + 3.0


def intensity(stream: Stream, minute_starts_ms: np.ndarray, rate: float, seed: int) -> np.ndarray:
    """Expected requests per minute, shape (minutes, edges): the stream's viewers at each edge.

    A stream mixes live and VOD viewing, each with its own daily curve; the mean over a week is
    ``rate * stream.share``.
    """
    mid = minute_starts_ms.astype(float) + MINUTE_MS / 2
    columns = []
    for region, edge in enumerate(EDGES):
        hours, days = local_hours_days(mid, edge.utc_offset_hours)
        daily = stream.live_share * cycle(LIVE_DAILY, hours) + (1 - stream.live_share) * cycle(
            VOD_DAILY, hours
        )
        noise = drift(mid / MINUTE_MS, seed, stream.code * 100 + region, amplitude=0.08)
        columns.append(edge.weight * daily * weekly(WEEKLY, days) * noise)
    return rate * stream.share * np.column_stack(columns)


def arrivals(
    rng: np.random.Generator, stream: Stream, hour_start_ms: int, rate: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson arrivals of one hour: sorted epoch-ms timestamps and the edge index of each."""
    minute_starts = hour_start_ms + MINUTE_MS * np.arange(60, dtype=np.int64)
    counts = rng.poisson(intensity(stream, minute_starts, rate, seed)).ravel()
    minute_of_cell = np.repeat(np.arange(60), len(EDGES))
    region_of_cell = np.tile(np.arange(len(EDGES), dtype=np.int8), 60)
    ts = np.repeat(minute_starts[minute_of_cell], counts) + rng.integers(0, MINUTE_MS, counts.sum())
    region = np.repeat(region_of_cell, counts)
    order = np.argsort(ts, kind="stable")
    return ts[order], region[order]
