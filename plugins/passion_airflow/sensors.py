"""Sensors of the daily DAGs: the run day's lease, and its features partition. Each names what it
waited for when it gives up."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowSensorTimeout

from passion_airflow.settings import lake, run_day

if TYPE_CHECKING:
    from airflow.sdk import Context


class DaySensor(BaseSensorOperator):
    """A sensor about the run's day whose timeout says what it waited for (``timeout_message``)."""

    def timeout_message(self, day: dt.date) -> str:
        raise NotImplementedError

    def execute(self, context: Context) -> Any:
        try:
            return super().execute(context)
        except AirflowSensorTimeout as timeout:
            day = run_day(context["params"], context["dag_run"])
            raise AirflowSensorTimeout(self.timeout_message(day)) from timeout


class FeaturesSensor(DaySensor):
    """Waits until ``features/dt=D/`` of the run's day is committed (every source's leaf).

    Use ``mode="reschedule"`` so that no worker slot is held while waiting. On timeout the task fails
    with the day and the URIs of the leaves still missing.
    """

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.missing: list[str] = []

    def poke(self, context: Context) -> bool:
        from passion_tasks import steps

        day = run_day(context["params"], context["dag_run"])
        self.missing = steps.missing_features(lake(), day)
        if self.missing:
            self.log.info("features of %s not ready; missing %s", day, ", ".join(self.missing))
        return not self.missing

    def timeout_message(self, day: dt.date) -> str:
        return (
            f"features partition of {day} still missing after {self.timeout:g} s: "
            f"{', '.join(self.missing)}. Run passion_ingest for {day} (or `passion features --day {day}`)."
        )


class DayLeaseSensor(DaySensor):
    """Waits until this run holds the lease of its day for its DAG.

    The DAG's first task, as a setup task whose teardown gives the lease back (``day_lease``): runs
    that write the same day take turns, whatever started them (the schedule, a trigger with a ``day``,
    a backfill), while runs of different days go on side by side. Use ``mode="reschedule"``.
    """

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.held_by = ""

    def poke(self, context: Context) -> bool:
        from passion_tasks import steps
        from passion_tasks.lake.leases import LeaseHeld

        day = run_day(context["params"], context["dag_run"])
        scope = context["dag"].dag_id
        try:
            lease = steps.claim_day(lake(), scope, day, context["dag_run"].run_id)
        except LeaseHeld as held:
            self.held_by = str(held)
            self.log.info("waiting for %s of %s: %s", scope, day, held)
            return False
        self.log.info("this run holds %s until %s", lease.name, lease.expires_at)
        return True

    def timeout_message(self, day: dt.date) -> str:
        return f"another run still writes {day} after {self.timeout:g} s: {self.held_by}"
