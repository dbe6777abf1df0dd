"""Settings read from the environment, in one place.

Every command and task resolves its lake and reference-data locations here, so a value given on
the command line, in an Airflow task or in the environment means the same thing everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]

#: Default lake: a folder under the project, so a fresh clone works with no configuration.
DEFAULT_LAKE_URL = (PROJECT_ROOT / ".passion" / "lake").as_uri()


def lake_url(explicit: str | None = None) -> str:
    """The lake root URL: `explicit`, else ``PASSION_LAKE``, else the project's default folder."""
    return explicit or os.environ.get("PASSION_LAKE") or DEFAULT_LAKE_URL


def reference_data(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Folder of the labelled reference data (NAB, ASD, SMD, KPI, NASA HTTP, CDN samples).

    ``PASSION_REFERENCE_DATA`` lets users point at their own NAB checkout; the default is the
    team's shared copy beside the project.
    """
    path = explicit or os.environ.get("PASSION_REFERENCE_DATA") or PROJECT_ROOT.parent / "shared" / "data"
    return Path(path).expanduser().resolve()


#: The key that signs model manifests (see ``registry``). Under Airflow the ``passion_model_key``
#: connection's password takes its place.
MODEL_KEY_ENV = "PASSION_MODEL_KEY"
#: The key models were signed with before a rotation; ``passion models sign`` re-signs them.
PREVIOUS_MODEL_KEY_ENV = "PASSION_MODEL_PREVIOUS_KEY"
#: An HMAC key shorter than this can be guessed; 32 random bytes (64 hex digits) is what to use.
MIN_MODEL_KEY_BYTES = 16


def model_key(variable: str = MODEL_KEY_ENV) -> bytes | None:
    """The model-signing key in the environment variable ``variable``; None when it is unset or empty."""
    from passion_tasks.errors import UsageError

    value = os.environ.get(variable, "")
    if not value:
        return None
    key = value.encode("utf-8")
    if len(key) < MIN_MODEL_KEY_BYTES:
        raise UsageError(
            f"{variable} is {len(key)} bytes long; use at least {MIN_MODEL_KEY_BYTES} random bytes, e.g. "
            "python3 -c 'import secrets; print(secrets.token_hex(32))'"
        )
    return key


#: The Prometheus queries file of ``passion ingest --source prometheus`` when ``--queries`` is not given.
PROMETHEUS_QUERIES_ENV = "PASSION_PROMETHEUS_QUERIES"


def prometheus_queries() -> str | None:
    """The Prometheus queries file named by ``PASSION_PROMETHEUS_QUERIES``, or None."""
    return os.environ.get(PROMETHEUS_QUERIES_ENV) or None


#: A folder on the worker where verified model files of a remote lake are kept (content-addressed by
#: sha256); unset: every model's files are read from the lake each time.
MODEL_CACHE_ENV = "PASSION_MODEL_CACHE"


def model_cache() -> Path | None:
    """The worker's cache of verified model files (``PASSION_MODEL_CACHE``), or None."""
    value = os.environ.get(MODEL_CACHE_ENV, "")
    return Path(value).expanduser() if value else None
