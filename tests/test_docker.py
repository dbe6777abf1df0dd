"""The production deployment in docker/, checked without a Docker engine.

The compose file is read as YAML and its ``${VAR}`` filled in from ``.env.example`` (with secrets made up
here), then held against the installed Airflow (its CLI parser, its configuration options), the code (the
settings and connection ids it reads) and itself (hosts, ports, volumes, the bucket). The Dockerfile is held
against requirements.txt. ``airflow_init.py`` runs on SQLite and the plugins read its connections back.
"""

from __future__ import annotations

import copy
import functools
import importlib
import importlib.util
import json
import os
import re
import shlex
import stat
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from airflow.cli.cli_parser import get_parser
from airflow.configuration import retrieve_configuration_description
from sqlalchemy.engine import make_url

from passion_tasks.alerting import AlertConfig
from passion_tasks.lake import S3Options

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
BIN = Path(sys.executable).parent
# Airflow puts the plugins folder on sys.path; airflow_init.py imports the connection ids from there.
sys.path.insert(0, str(ROOT / "plugins"))

from passion_airflow.notifiers import ALERTS_CONN_ID, SLACK_CONN_ID, SMTP_CONN_ID, alert_config  # noqa: E402
from passion_airflow.settings import LAKE_CONN_ID, lake_s3_options, source_inputs  # noqa: E402

COMPOSE = yaml.safe_load((DOCKER / "docker-compose.yaml").read_text())
ENV_EXAMPLE = (DOCKER / ".env.example").read_text()
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-api-server",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
#: The Airflow command each long-running service runs (the image's entrypoint prefixes ``airflow``).
AIRFLOW_COMMANDS = {
    "airflow-api-server": ["api-server"],
    "airflow-scheduler": ["scheduler"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-triggerer": ["triggerer"],
    "airflow-worker": ["celery", "worker"],
}
SECRETS = {
    "AIRFLOW_ADMIN_PASSWORD": "admin-password-5f1c",
    "AIRFLOW_FERNET_KEY": "ZLKWNF4iOTnNWPy1DDjc2Ignl20h83E6f4NFoM6GnAs=",
    "AIRFLOW_JWT_SECRET": "jwt-secret-77d0",
    "AIRFLOW_API_SECRET_KEY": "api-secret-key-0b3e",
    "POSTGRES_PASSWORD": "postgres-password-91aa",
    "MINIO_ROOT_PASSWORD": "minio-root-password-e4c2",
    "LAKE_SECRET_KEY": "lake-secret-key-3d9f",
}
ALERT_CHANNELS = {
    "PASSION_ALERT_WEBHOOK_URL": "https://hooks.example.com/passion?token=webhook-token-8c1d",
    "PASSION_ALERT_WEBHOOK_SECRET": "webhook-signing-secret-2a7b",
    "PASSION_SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/slack-token-6e5f",
    "PASSION_SMTP_HOST": "smtp.example.com",
    "PASSION_SMTP_PORT": "2525",
    "PASSION_SMTP_USER": "passion",
    "PASSION_SMTP_PASSWORD": "smtp-password-4b8e",
    "PASSION_SMTP_STARTTLS": "false",
    "PASSION_ALERT_EMAIL_FROM": "passion@example.com",
    "PASSION_ALERT_EMAIL_TO": "sre@example.com, oncall@example.com",
}


# -- the compose file's ${VAR} and .env ------------------------------------------------------------------

VARIABLE = re.compile(r"\$(?:\{(?P<braced>\w+)(?P<operator>:?[-?])?(?P<argument>[^}]*)\}|(?P<bare>\w+))")


def strings(node: Any) -> Iterator[str]:
    """Every string value of a YAML document."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def variables_used(compose: Any) -> set[str]:
    """The names of the ``${VAR}`` (and ``$VAR``) that compose fills in; ``$$`` is a literal ``$``."""
    return {
        match["braced"] or match["bare"]
        for text in strings(compose)
        for match in VARIABLE.finditer(text.replace("$$", ""))
    }


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """``text`` as compose fills it in: ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``, ``$$``."""

    def value(match: re.Match[str]) -> str:
        name = match["braced"] or match["bare"]
        given, operator = env.get(name), match["operator"]
        missing = given is None or (given == "" and operator is not None and operator.startswith(":"))
        if missing and operator and operator.endswith("?"):
            raise ValueError(f"{name}: {match['argument']}")
        return match["argument"] if missing and operator else given or ""

    return "$".join(VARIABLE.sub(value, part) for part in text.split("$$"))


def resolve(node: Any, env: Mapping[str, str]) -> Any:
    """A copy of a YAML document with every string interpolated."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, Mapping):
        return {key: resolve(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(value, env) for value in node]
    return node


def read_dotenv(text: str) -> dict[str, str]:
    """``NAME=value`` lines of an env file, a single-quoted value taken literally; comments skipped."""
    pairs = (line.split("=", 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return {name.strip(): value.strip().removeprefix("'").removesuffix("'") for name, value in pairs}


def undocumented(text: str) -> list[str]:
    """Names of an env file with no comment above them (a group of names may share one)."""
    names, commented = [], False
    for line in text.splitlines():
        if line.startswith("#"):
            commented = True
        elif not line.strip():
            commented = False
        elif not commented:
            names.append(line.split("=", 1)[0])
    return names


def sample_env(**values: str) -> dict[str, str]:
    """``.env.example`` with its secrets filled in, as an operator's docker/.env."""
    return {**read_dotenv(ENV_EXAMPLE), **SECRETS, **values}


@pytest.fixture(scope="module")
def deployed() -> dict[str, Any]:
    """The compose file as Docker runs it with the sample docker/.env."""
    return resolve(COMPOSE, sample_env())


def service_env(services: Mapping[str, Any], name: str) -> dict[str, str]:
    return {key: str(value) for key, value in services[name].get("environment", {}).items()}


def test_env_example_defines_exactly_the_variables_the_compose_file_uses() -> None:
    assert variables_used(COMPOSE) == set(read_dotenv(ENV_EXAMPLE))
    assert undocumented(ENV_EXAMPLE) == []


def test_the_variable_checks_catch_a_stray_or_undocumented_name() -> None:
    broken = copy.deepcopy(COMPOSE)
    broken["services"]["airflow-worker"]["environment"]["PASSION_LAKE"] = "${PASSION_LAKE_TYPO}"
    broken["services"]["minio"]["command"].append("$$NOT_A_COMPOSE_VARIABLE")
    assert variables_used(broken) - set(read_dotenv(ENV_EXAMPLE)) == {"PASSION_LAKE_TYPO"}
    assert undocumented(ENV_EXAMPLE + "\nSTRAY=1\n") == ["STRAY"]
    assert interpolate("a$${B}-${C:-d}-${E}", {"E": "e"}) == "a${B}-d-e"


def test_secrets_have_no_default_and_the_infrastructure_refuses_to_start_without_them() -> None:
    example = read_dotenv(ENV_EXAMPLE)
    secret_names = {
        name for name in example if name.endswith(("PASSWORD", "SECRET", "SECRET_KEY", "FERNET_KEY"))
    }
    assert secret_names == set(SECRETS) | {"PASSION_ALERT_WEBHOOK_SECRET", "PASSION_SMTP_PASSWORD"}
    assert {name: example[name] for name in secret_names} == dict.fromkeys(secret_names, "")
    for name in SECRETS:
        with pytest.raises(ValueError, match=f"^{name}: set {name} in docker/.env$"):
            resolve(COMPOSE, sample_env(**{name: ""}))
    assert ".env" in (DOCKER / ".gitignore").read_text().splitlines()


# -- services, commands, Airflow options ------------------------------------------------------------------


def test_the_services() -> None:
    services = COMPOSE["services"]
    assert set(services) == AIRFLOW_SERVICES | {"postgres", "redis", "minio", "minio-init"}
    assert {name for name, service in services.items() if "build" in service} == AIRFLOW_SERVICES
    assert {json.dumps(services[name]["build"]) for name in AIRFLOW_SERVICES} == {
        json.dumps({"context": "..", "dockerfile": "docker/Dockerfile"})
    }
    assert services["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert services["minio"]["healthcheck"]["test"] == ["CMD", "mc", "ready", "local"]


def parse_airflow(argv: list[str]) -> Any:
    """``airflow ARGV`` parsed as the installed Airflow parses it; a failure names the command."""
    try:
        return get_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"airflow {shlex.join(argv)}: not a command of the installed Airflow")


@functools.cache
def airflow_init() -> Any:
    """docker/airflow_init.py, imported."""
    spec = importlib.util.spec_from_file_location("airflow_init", DOCKER / "airflow_init.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_airflow_command_parses_with_the_installed_airflow() -> None:
    services = COMPOSE["services"]
    assert {name: services[name]["command"] for name in AIRFLOW_COMMANDS} == AIRFLOW_COMMANDS
    for argv in AIRFLOW_COMMANDS.values():
        assert callable(parse_airflow(argv).func)
    init = airflow_init()
    assert init.MIGRATE[0] == "airflow"
    assert callable(parse_airflow(list(init.MIGRATE[1:])).func)
    health_checks = [
        shlex.split(service["healthcheck"]["test"][1].replace("$$", "$"))
        for service in services.values()
        if "healthcheck" in service and service["healthcheck"]["test"][0] == "CMD-SHELL"
    ]
    airflow_checks = [argv[1:] for argv in health_checks if argv[0] == "airflow"]
    assert [argv[:4] for argv in airflow_checks] == [
        ["jobs", "check", "--job-type", "DagProcessorJob"],
        ["jobs", "check", "--job-type", "TriggererJob"],
    ]
    for argv in airflow_checks:
        parse_airflow(argv)
    [celery_check] = [argv for argv in health_checks if argv[0] == "celery"]
    module, _, attribute = celery_check[celery_check.index("--app") + 1].rpartition(".")
    assert type(getattr(importlib.import_module(module), attribute)).__name__ == "Celery"


def test_the_command_check_fails_on_a_command_airflow_does_not_have() -> None:
    with pytest.raises(pytest.fail.Exception, match="airflow celery wroker: not a command"):
        parse_airflow(["celery", "wroker"])


def unknown_airflow_options(environment: Mapping[str, str]) -> list[str]:
    """``AIRFLOW__SECTION__KEY`` names that are not options of the installed Airflow and its providers."""
    options = retrieve_configuration_description(include_providers=True)
    unknown = []
    for name in environment:
        if not name.startswith("AIRFLOW__"):
            continue
        section, _, key = name.removeprefix("AIRFLOW__").lower().partition("__")
        if key not in options.get(section, {}).get("options", {}):
            unknown.append(name)
    return unknown


def test_every_airflow_option_set_is_an_option_of_the_installed_airflow() -> None:
    common = COMPOSE["x-airflow-common"]["environment"]
    assert len([name for name in common if name.startswith("AIRFLOW__")]) == 17
    for name in AIRFLOW_SERVICES:
        assert unknown_airflow_options(COMPOSE["services"][name]["environment"]) == []


def test_the_option_check_catches_a_misspelt_or_moved_option() -> None:
    broken = {
        **COMPOSE["x-airflow-common"]["environment"],
        "AIRFLOW__CORE__EXECUTER": "CeleryExecutor",
        "AIRFLOW__WEBSERVER__SECRET_KEY": "moved to [api] in Airflow 3",
    }
    assert unknown_airflow_options(broken) == ["AIRFLOW__CORE__EXECUTER", "AIRFLOW__WEBSERVER__SECRET_KEY"]


def passion_names_unread(environment: Mapping[str, str]) -> list[str]:
    """``PASSION_*`` names that no module of passion_tasks/, plugins/ or dags/ reads."""
    sources = "".join(
        path.read_text()
        for folder in ("passion_tasks", "plugins", "dags")
        for path in (ROOT / folder).rglob("*.py")
    )
    return [
        name
        for name in environment
        if name.startswith("PASSION_") and f'"{name}"' not in sources and f"'{name}'" not in sources
    ]


def test_every_passion_setting_is_one_the_code_reads() -> None:
    names = dict.fromkeys(
        name for service in COMPOSE["services"].values() for name in service.get("environment", {})
    )
    assert len([name for name in names if name.startswith("PASSION_")]) == 19
    assert passion_names_unread(names) == []
    assert passion_names_unread({**names, "PASSION_LAKE_URL": "s3://passion/lake"}) == ["PASSION_LAKE_URL"]


def test_the_alert_channels_reach_airflow_init_only() -> None:
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        assert set(ALERT_CHANNELS).isdisjoint(COMPOSE["services"][name]["environment"])
    assert set(ALERT_CHANNELS) <= set(COMPOSE["services"]["airflow-init"]["environment"])


# -- hosts, ports, volumes: the pieces fit -----------------------------------------------------------------


def test_the_metadata_database_broker_and_execution_api_are_the_services_of_this_file(
    deployed: dict[str, Any],
) -> None:
    services = deployed["services"]
    env = service_env(services, "airflow-scheduler")
    postgres = services["postgres"]["environment"]
    database = make_url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert (database.drivername, database.host, database.port) == ("postgresql+psycopg2", "postgres", 5432)
    assert (database.username, database.password, database.database) == (
        postgres["POSTGRES_USER"],
        SECRETS["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + database.set(
        drivername="postgresql"
    ).render_as_string(hide_password=False)
    broker = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
    assert (broker.scheme, broker.hostname, broker.port) == ("redis", "redis", 6379)
    assert services["redis"]["expose"] == [broker.port]
    execution_api = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert (execution_api.hostname, execution_api.path) == ("airflow-api-server", "/execution/")
    assert services["airflow-api-server"]["ports"] == [f"8080:{execution_api.port}"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_every_airflow_container_shares_the_settings_and_secrets(deployed: dict[str, Any]) -> None:
    envs = {name: service_env(deployed["services"], name) for name in AIRFLOW_SERVICES}
    common = service_env(deployed, "x-airflow-common")
    for env in envs.values():
        assert {name: env[name] for name in common} == common
    assert common["AIRFLOW__API_AUTH__JWT_SECRET"] == SECRETS["AIRFLOW_JWT_SECRET"]
    assert common["AIRFLOW__API__SECRET_KEY"] == SECRETS["AIRFLOW_API_SECRET_KEY"]
    assert common["AIRFLOW__CORE__FERNET_KEY"] == SECRETS["AIRFLOW_FERNET_KEY"]


def test_the_lake_is_the_bucket_minio_init_creates(deployed: dict[str, Any]) -> None:
    services = deployed["services"]
    env = service_env(services, "airflow-worker")
    [script] = services["minio-init"]["command"]
    [alias_url] = re.findall(r"mc alias set lake (\S+) ", script)
    [bucket] = re.findall(r"mc mb --ignore-existing lake/(\S+)", script)
    assert env["PASSION_LAKE"] == f"s3://{bucket}/lake" == "s3://passion/lake"
    assert env["PASSION_S3_ENDPOINT_URL"] == alias_url == "http://minio:9000"
    assert services["minio"]["command"][:2] == ["server", "/data"]  # the S3 API on its default port, 9000
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (
        "passion-lake",
        SECRETS["LAKE_SECRET_KEY"],
    )
    assert 'mc admin user add lake "$LAKE_ACCESS_KEY" "$LAKE_SECRET_KEY"' in script
    assert service_env(services, "minio-init")["LAKE_ACCESS_KEY"] == env["AWS_ACCESS_KEY_ID"]


def test_the_sources_are_in_the_lakes_bucket(
    deployed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "PASSION_SOURCES", service_env(deployed["services"], "airflow-worker")["PASSION_SOURCES"]
    )
    assert source_inputs() == {"cdn": "s3://passion/sources/cdn", "metrics": "s3://passion/sources/metrics"}


def volumes_of(service: Mapping[str, Any]) -> dict[str, str]:
    """Container path -> source of a service's volumes (``source:target[:mode]``)."""
    return {volume.split(":")[1]: volume.split(":")[0] for volume in service["volumes"]}


def test_volumes_mount_the_repository_folders_airflow_reads(deployed: dict[str, Any]) -> None:
    common = deployed["x-airflow-common"]
    env = common["environment"]
    volumes = volumes_of(common)
    assert volumes == {
        env["AIRFLOW__CORE__DAGS_FOLDER"]: "../dags",
        env["AIRFLOW__CORE__PLUGINS_FOLDER"]: "../plugins",
        "/opt/airflow/logs": "airflow-logs",
        str(PurePosixPath(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).parent): "airflow-auth",
    }
    with_volumes = [service for service in deployed["services"].values() if "volumes" in service]
    for source in (source for service in with_volumes for source in volumes_of(service).values()):
        if source.startswith("."):
            assert (DOCKER / source).resolve().is_dir(), source
        else:
            assert source in deployed["volumes"], source
    assert {path.name for path in (DOCKER / "../dags").glob("passion_*.py")} == {
        "passion_ingest.py",
        "passion_score.py",
        "passion_train.py",
        "passion_benchmark.py",
        "passion_live.py",
        "passion_maintenance.py",
    }
    assert (DOCKER / "../plugins/passion_airflow/settings.py").is_file()


def scaling_blockers(service: Mapping[str, Any]) -> list[str]:
    """What stops ``docker compose up --scale`` from running several replicas of a service."""
    return [key for key in ("container_name", "hostname", "ports") if key in service]


def test_the_worker_scales() -> None:
    worker = COMPOSE["services"]["airflow-worker"]
    assert scaling_blockers(worker) == []
    assert scaling_blockers({**worker, "container_name": "worker", "ports": ["8793:8793"]}) == [
        "container_name",
        "ports",
    ]
    assert worker["environment"]["DUMB_INIT_SETSID"] == "0"
    assert worker["depends_on"]["minio-init"] == {"condition": "service_completed_successfully"}


def test_the_admin_logs_in_with_the_password_airflow_init_writes(deployed: dict[str, Any]) -> None:
    env = service_env(deployed["services"], "airflow-init")
    init = airflow_init()
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == f"{init.ADMIN_USER}:admin"
    assert env[init.ADMIN_PASSWORD_ENV] == SECRETS["AIRFLOW_ADMIN_PASSWORD"]
    auth_manager = env["AIRFLOW__CORE__AUTH_MANAGER"]
    module, _, name = auth_manager.rpartition(".")
    assert getattr(importlib.import_module(module), name).__name__ == "SimpleAuthManager"


# -- the image ---------------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of docker/Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (DOCKER / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def copies() -> dict[str, str]:
    """Source in the build context -> path in the image, of every COPY."""
    pairs = {}
    for instruction, arguments in dockerfile_instructions():
        if instruction == "COPY":
            *sources, target = [word for word in arguments.split() if not word.startswith("--")]
            for source in sources:
                pairs[source] = f"{target}{source}" if target.endswith("/") else target
    return pairs


def test_the_image_is_the_pinned_airflow_with_exactly_requirements_txt() -> None:
    [airflow_pin] = re.findall(
        r"^apache-airflow==(\S+)$", (ROOT / "requirements.txt").read_text(), re.MULTILINE
    )
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", f"apache/airflow:{airflow_pin}-python3.11")
    runs = [arguments for instruction, arguments in instructions if instruction == "RUN"]
    pip_installs = [shlex.split(run) for run in runs if run.startswith("pip install")]
    packages_dir = str(PurePosixPath(copies()["pyproject.toml"]).parent)
    assert pip_installs == [
        ["pip", "install", "--no-cache-dir", "-r", copies()["requirements.txt"]],
        ["pip", "install", "--no-cache-dir", "--no-deps", packages_dir],
    ]
    assert copies()["passion_tasks"] == f"{packages_dir}/passion_tasks"
    first_pip = next(
        i for i, (_, arguments) in enumerate(instructions) if arguments.startswith("pip install")
    )
    users = [arguments for instruction, arguments in instructions[:first_pip] if instruction == "USER"]
    assert users[-1] == "airflow"  # the image's pip refuses root
    assert not any("==" in run for run in runs)


def test_the_image_holds_what_the_compose_file_runs(deployed: dict[str, Any]) -> None:
    env = deployed["x-airflow-common"]["environment"]
    in_image = copies()
    assert set(in_image) == {
        "requirements.txt",
        "pyproject.toml",
        "README.md",
        "passion_tasks",
        "dags",
        "plugins",
        "docker/airflow_init.py",
    }
    assert all((ROOT / source).exists() for source in in_image)
    assert deployed["services"]["airflow-init"]["command"] == ["python", in_image["docker/airflow_init.py"]]
    assert (in_image["dags"], in_image["plugins"]) == (
        env["AIRFLOW__CORE__DAGS_FOLDER"],
        env["AIRFLOW__CORE__PLUGINS_FOLDER"],
    )
    auth_dir = str(PurePosixPath(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).parent)
    assert ("RUN", f"mkdir -m 0770 {auth_dir}") in dockerfile_instructions()
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {".git", ".venv", ".passion", "docker/.env"} <= set(ignored)
    assert set(in_image).isdisjoint(ignored)


# -- airflow-init's connections -----------------------------------------------------------------------------


def test_airflow_init_makes_only_the_lake_connection_when_no_alert_channel_is_set(
    deployed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith(("PASSION_", "AWS_")):
            monkeypatch.delenv(name)
    for name, value in service_env(deployed["services"], "airflow-init").items():
        if name.startswith(("PASSION_", "AWS_")):
            monkeypatch.setenv(name, value)
    connections = airflow_init().passion_connections()
    assert connections == {
        LAKE_CONN_ID: {
            "conn_type": "aws",
            "login": "passion-lake",
            "password": SECRETS["LAKE_SECRET_KEY"],
            "extra": json.dumps({"endpoint_url": "http://minio:9000", "region_name": "us-east-1"}),
        }
    }


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """airflow_init.py run twice on a SQLite database with airflow-init's environment: first with every
    alert channel, then without Slack, with a new lake key and a new admin password."""
    home = tmp_path_factory.mktemp("airflow_home")
    local = {
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", str(home)),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "auth" / "passwords.json"),
    }
    first = sample_env(**ALERT_CHANNELS)
    second = {
        **first,
        "PASSION_SLACK_WEBHOOK_URL": "",
        "LAKE_SECRET_KEY": "rotated-lake-secret-key-7c2d",
        "AIRFLOW_ADMIN_PASSWORD": "rotated-admin-password-19ef",
    }
    outputs = []
    for dotenv in (first, second):
        init_env = {**service_env(resolve(COMPOSE, dotenv)["services"], "airflow-init"), **local}
        result = subprocess.run(
            [sys.executable, str(DOCKER / "airflow_init.py")],
            env=init_env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        outputs.append(result.stdout + result.stderr)
    exported = home / "connections.json"
    subprocess.run(
        [str(BIN / "airflow"), "connections", "export", str(exported)],
        env=init_env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return {
        "first": first,
        "second": second,
        "outputs": outputs,
        "connections": json.loads(exported.read_text()),
        "passwords_file": home / "auth" / "passwords.json",
    }


def test_airflow_init_writes_the_admin_password_for_the_api_server_only(initialised: dict[str, Any]) -> None:
    passwords_file = initialised["passwords_file"]
    assert json.loads(passwords_file.read_text()) == {"admin": "rotated-admin-password-19ef"}
    assert stat.S_IMODE(passwords_file.stat().st_mode) == 0o600
    assert [path.name for path in passwords_file.parent.iterdir()] == ["passwords.json"]


def test_airflow_init_makes_the_connections_match_the_env_file(initialised: dict[str, Any]) -> None:
    connections = initialised["connections"]
    assert set(connections) == {LAKE_CONN_ID, ALERTS_CONN_ID, SMTP_CONN_ID}  # Slack's was deleted
    assert connections[LAKE_CONN_ID]["password"] == "rotated-lake-secret-key-7c2d"
    assert initialised["outputs"][1].splitlines()[-4:] == [
        f"airflow-init: connection {LAKE_CONN_ID}: set",
        f"airflow-init: connection {ALERTS_CONN_ID}: set",
        f"airflow-init: connection {SLACK_CONN_ID}: not configured",
        f"airflow-init: connection {SMTP_CONN_ID}: set",
    ]


def test_airflow_init_logs_no_secret(initialised: dict[str, Any]) -> None:
    secrets = {
        value
        for dotenv in (initialised["first"], initialised["second"])
        for name, value in dotenv.items()
        if value and (name in SECRETS or (name in ALERT_CHANNELS and re.search("URL|SECRET|PASSWORD", name)))
    }
    assert len(secrets) == 13
    leaked = [secret for secret in secrets for output in initialised["outputs"] if secret in output]
    assert leaked == []


def test_the_dags_read_airflow_inits_connections_as_the_cli_reads_the_env_file(
    initialised: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for conn_id, fields in initialised["connections"].items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))
    for name in list(os.environ):
        if name.startswith(("PASSION_", "AWS_")):
            monkeypatch.delenv(name)
    assert lake_s3_options() == S3Options(
        endpoint_url="http://minio:9000",
        region="us-east-1",
        access_key="passion-lake",
        secret_key="rotated-lake-secret-key-7c2d",
    )
    from_airflow, from_env_file = alert_config(), AlertConfig.from_env(initialised["second"])
    assert from_airflow.webhook == from_env_file.webhook
    assert from_airflow.email == from_env_file.email
    assert from_airflow.slack is from_env_file.slack is None
    assert from_airflow.email.recipients == ("sre@example.com", "oncall@example.com")
    assert (from_airflow.email.port, from_airflow.email.starttls) == (2525, False)
