"""The ``passion_live`` DAG's watcher: a trigger, run by the triggerer, that polls the CDN source for the
log files a micro-batch would land (``passion_tasks.live.pending_files``) and updates the
``passion_cdn_log_files`` asset when one appears, so that a batch starts seconds after a file lands
instead of at the next cron tick.

Each file is announced once per version: a file still pending after its batch (the batch failed, or a
batch run by hand held the day) waits for the DAG's cron, which the watcher does not replace. A poll
that fails (the source or the lake unreachable) is logged and tried again at the next interval; the
watcher never stops for it. The lake and the source are read from the DAGs' settings at each poll, so
a rotated credential or a changed Variable is picked up without restarting the triggerer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

#: The most file names an event names (its payload is stored with the asset event); ``count`` has all.
NAMED = 20


class NewLogFilesTrigger(BaseEventTrigger):
    """Fires when the CDN source holds a log file of yesterday or today (UTC) that no micro-batch has
    landed as it is now; polls every ``poll_interval`` seconds."""

    def __init__(self, poll_interval: float = 30.0) -> None:
        super().__init__()
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {"poll_interval": self.poll_interval}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        announced: dict[str, str] = {}
        while True:
            try:
                pending = await asyncio.to_thread(_pending_versions)
            except Exception as error:  # the watcher outlives an unreachable source or lake
                self.log.warning("polling the CDN source for new log files failed: %s", error)
            else:
                new = sorted(name for name, version in pending.items() if announced.get(name) != version)
                # Only what is still pending is remembered: a landed file leaves, a file delivered again
                # with another version is announced again.
                announced = pending
                if new:
                    self.log.info("%d new CDN log files: %s", len(new), ", ".join(new[:NAMED]))
                    yield TriggerEvent({"files": new[:NAMED], "count": len(new)})
            await asyncio.sleep(self.poll_interval)


def _pending_versions() -> dict[str, str]:
    """The pending files' names and versions, with the settings a ``passion_live`` task would use."""
    from passion_airflow.settings import lake, source_inputs
    from passion_tasks.live import pending_files

    now = dt.datetime.now(dt.UTC)
    return {file.name: file.version for file in pending_files(lake(), source_inputs()["cdn"], now)}
