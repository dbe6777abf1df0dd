"""A sensor for the run day's features partition that names what is missing when it gives up."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowSensorTimeout

from passion_airflow.settings import lake_kwargs, run_day

if TYPE_CHECKING:
    from airflow.sdk import Context


class FeaturesSensor(BaseSensorOperator):
    """Waits until ``features/dt=D/`` of the run's day is committed (every source's leaf).

    Use ``mode="reschedule"`` so that no worker slot is held while waiting. On timeout the task fails
    with the day and the URIs of the leaves still missing.
    """

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.missing: list[str] = []

    def poke(self, context: Context) -> bool:
        from passion_tasks import pipeline

        day = run_day(context["params"], context["dag_run"])
        self.missing = pipeline.missing_features(day, **lake_kwargs())
        if self.missing:
            self.log.info("features of %s not ready; missing %s", day, ", ".join(self.missing))
        return not self.missing

    def execute(self, context: Context) -> Any:
        try:
            return super().execute(context)
        except AirflowSensorTimeout as timeout:
            day = run_day(context["params"], context["dag_run"])
            raise AirflowSensorTimeout(
                f"features partition of {day} still missing after {self.timeout:g} s: "
                f"{', '.join(self.missing)}. Run passion_ingest for {day} "
                f"(or `passion features --day {day}`)."
            ) from timeout
