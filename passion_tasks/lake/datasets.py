"""Every dataset of the lake and the keys that split its days: the one place their names are written.

A partitioned dataset is ``<dataset>/dt=YYYY-MM-DD[/<key>=<value>]/`` (see ``Lake``); the others hold
named files. This module imports nothing, so DAG files and the Airflow plugin may use it.

=====================  =================================================  ==========================
dataset                layout                                             written by
=====================  =================================================  ==========================
``CDN_LOGS``           ``cdn_logs/dt=D/``                                 ingest
``METRICS``            ``metrics/dt=D/source=S/``                         ingest, corpus import
``QUARANTINE``         ``quarantine/<dataset>/dt=D/``                     ingest
``FEATURES``           ``features/dt=D/source=cdn|metrics/``              features
``LABELS``             ``labels/<set>/combined_windows.json``             corpus import, demo
``MODELS``             ``models/<series>/<detector>/vN/``                 models.registry
``SCORES``             ``scores/dt=D/`` (a file per batch, ``batches``)   scoring
``EVENTS``             ``events/dt=D/`` (a file per batch, ``batches``)   scoring
``LIVE_SCORES``        ``live_scores/dt=D/`` (a file per micro-batch)     models.live
``LIVE``               ``live/dt=D/state.json``                           live
``REPORTS``            ``reports/dt=D/index.html``                        reporting
``ALERTS``             ``alerts/dt=D/sent.jsonl``, ``alerts/snoozes.json``  alerting
``EXPLORE``            ``explore/<from>_<to>/index.html``                 reporting.explore
``LEADERBOARDS``       ``leaderboards/<corpus>/``                         evaluation
``LEASES``             ``leases/<name>.json``                             lake.leases
=====================  =================================================  ==========================
"""

from __future__ import annotations

CDN_LOGS = "cdn_logs"
METRICS = "metrics"
QUARANTINE = "quarantine"
FEATURES = "features"
LABELS = "labels"
MODELS = "models"
SCORES = "scores"
EVENTS = "events"
LIVE_SCORES = "live_scores"
LIVE = "live"
REPORTS = "reports"
ALERTS = "alerts"
EXPLORE = "explore"
LEADERBOARDS = "leaderboards"
LEASES = "leases"

#: The two sources a day lands from (``passion ingest --source``); ``features/dt=D/`` has a leaf for each.
CDN = "cdn"
SERVER_METRICS = "metrics"
SOURCES = (CDN, SERVER_METRICS)
#: The leaves of a day's ``metrics`` (``source=``): its metric files, and its pull from Prometheus.
METRIC_FILES = "server"
PROMETHEUS = "prometheus"
#: The dataset each source lands in.
LANDS_IN = {CDN: CDN_LOGS, SERVER_METRICS: METRICS}

#: Partition keys below ``dt=``: a feature leaf's source; a scored series, in lakes scored before
#: scores were written by batches (scoring retires those leaves as it re-scores their series).
SOURCE_KEY = "source"
SERIES_KEY = "series"


def quarantine_of(dataset: str) -> str:
    """Where the lines rejected on the way into ``dataset`` are kept: ``quarantine/<dataset>``."""
    return f"{QUARANTINE}/{dataset}"


#: A day's report page, under ``reports/dt=D/``.
REPORT_PAGE = "index.html"
#: What a day's alerts sent, under ``alerts/dt=D/``.
ALERT_LEDGER = "sent.jsonl"
