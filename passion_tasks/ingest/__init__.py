"""Ingestion: CDN access logs and server metrics, parsed, validated and landed in the lake by day.

Rejected lines are never dropped: they go to ``quarantine/<dataset>/dt=D/`` with their source
file, line number and reason, and the report's exit code tells the operator what happened.
"""

from passion_tasks.ingest.cdn import ingest_cdn_day
from passion_tasks.ingest.metrics import ingest_metrics_day
from passion_tasks.ingest.report import IngestReport

__all__ = ["IngestReport", "ingest_cdn_day", "ingest_metrics_day"]
