"""Leases: one run at a time holds a named part of the lake (a DAG's day); the others wait for it.

Two runs writing the same day (a manual run and the scheduled one, a backfill with
``--reprocess-behavior completed`` beside the nightly run) are each correct alone, and the lake keeps
each leaf consistent (``versioned``), but a report read while another run rewrites the day's scores
would mix the two runs' series. A lease keeps them apart: a run takes the lease of its day before its
first write and gives it back after its last.

A lease is a small JSON object, ``leases/<name>.json``, naming its holder and when it expires; it is
taken and given back with conditional writes, so of two runs asking at once exactly one gets it. A
holder that dies without giving it back blocks the name until the lease expires (or an operator
releases it: ``passion lake lease --release``); asking again as the same holder renews it.
"""

from __future__ import annotations

import datetime as dt
import json
import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from passion_tasks.errors import PassionError
from passion_tasks.lake.datasets import LEASES

if TYPE_CHECKING:
    from passion_tasks.lake import Lake

#: How long a lease lasts unless given back: longer than any run holds one, so only a run that died
#: holding it makes others wait that long.
LEASE_TTL = dt.timedelta(hours=24)
ATTEMPTS = 10


class LeaseHeld(PassionError):
    """The lease is held by another holder."""

    def __init__(self, lease: Lease):
        super().__init__(
            f"lease {lease.name!r} is held by {lease.holder!r} since {lease.acquired_at:%Y-%m-%d %H:%M:%S} "
            f"UTC, until {lease.expires_at:%Y-%m-%d %H:%M:%S} UTC unless it is given back; if that run is "
            f"dead, release it: passion lake lease {lease.name} --release"
        )
        self.lease = lease


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    acquired_at: dt.datetime
    expires_at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "holder": self.holder,
            "acquired_at": self.acquired_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
        }


def lease_path(name: str) -> str:
    return posixpath.join(LEASES, f"{name}.json")


def current(lake: Lake, name: str, *, now: dt.datetime | None = None) -> Lease | None:
    """The lease on ``name`` in force now, or None if it is free (never taken, given back or expired)."""
    return _in_force(name, lake.versions.data(lease_path(name)), now or dt.datetime.now(dt.UTC))


def acquire(
    lake: Lake, name: str, holder: str, *, ttl: dt.timedelta = LEASE_TTL, now: dt.datetime | None = None
) -> Lease:
    """Take the lease on ``name`` for ``holder``, or renew it if ``holder`` has it.

    Raises ``LeaseHeld`` while another holder has it.
    """
    now = now or dt.datetime.now(dt.UTC)
    path = lease_path(name)
    # A failed conditional write means another writer got there between our read and our write: read
    # again and see who holds it now.
    for _ in range(ATTEMPTS):
        stored = lake.versions.read(path)
        held = _in_force(name, stored.data, now)
        if held is not None and held.holder != holder:
            raise LeaseHeld(held)
        lease = Lease(name, holder, held.acquired_at if held is not None else now, now + ttl)
        if lake.versions.write_if(path, json.dumps(lease.to_json()).encode(), stored.version):
            return lease
    raise PassionError(f"lease {name!r}: {ATTEMPTS} attempts to take it conflicted with other writers")


def release(lake: Lake, name: str, holder: str | None = None) -> bool:
    """Give the lease back (``holder=None``: whoever holds it); False if ``holder`` does not hold it."""
    path = lease_path(name)
    stored = lake.versions.read(path)
    held = _in_force(name, stored.data, dt.datetime.now(dt.UTC))
    if held is None or (holder is not None and held.holder != holder):
        return False
    released = json.dumps({"holder": None, "released_by": holder or "an operator"}).encode()
    return lake.versions.write_if(path, released, stored.version)


def _in_force(name: str, data: bytes | None, now: dt.datetime) -> Lease | None:
    if data is None:
        return None
    entry = json.loads(data)
    if not entry.get("holder"):
        return None
    lease = Lease(
        name,
        entry["holder"],
        dt.datetime.fromisoformat(entry["acquired_at"]),
        dt.datetime.fromisoformat(entry["expires_at"]),
    )
    return lease if lease.expires_at > now else None
