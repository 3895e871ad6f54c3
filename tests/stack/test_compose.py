"""docker-compose.yml cannot run here (no Docker engine), so this keeps it honest statically: every service the
code needs is there, the app containers get the settings the code reads (real setting names, addresses that
point at real services and ports), the commands exist in the `paygent` CLI, and the image has the code."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
import typer.main
import yaml

from paygent.paths import REPO_ROOT
from paygent.settings import Settings

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = ("migrate", "provision", "worker", "worker-2", "api", "api-2")
WORKERS, APIS = ("worker", "worker-2"), ("api", "api-2")
NEEDED_ENV = (
    "DATABASE_URL",
    "PAYGENT_MIGRATE_DATABASE_URL",
    "REDIS_URL",
    "PAYGENT_TEMPORAL_ADDRESS",
    "PAYGENT_RPC_URL",
    "PAYGENT_CHAIN_ID",
    "PAYGENT_MASTER_KEY",
    "PAYGENT_API_URL",
    "PAYGENT_HOME",
)
# where each address must point: (service, port inside the compose network)
TARGETS = {
    "DATABASE_URL": ("postgres", 5432),
    "PAYGENT_MIGRATE_DATABASE_URL": ("postgres", 5432),
    "REDIS_URL": ("redis", 6379),
    "PAYGENT_TEMPORAL_ADDRESS": ("temporal", 7233),
    "PAYGENT_RPC_URL": ("anvil", 8545),
    "PAYGENT_API_URL": ("api", 8000),
}


def _setting_names() -> set[str]:
    """Every environment name paygent/settings.py reads (prefix PAYGENT_ plus the declared aliases)."""
    names: set[str] = set()
    for field_name, field in Settings.model_fields.items():
        names.add(f"PAYGENT_{field_name}".upper())
        alias = field.validation_alias
        for choice in getattr(alias, "choices", []):
            if isinstance(choice, str):
                names.add(choice.upper())
    return names


def test_every_service_the_code_needs_is_there():
    for name in ("postgres", "redis", "temporal", "temporal-ui", "anvil", *APP_SERVICES):
        assert name in SERVICES, f"docker-compose.yml lacks service {name!r}"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_services_get_the_settings_the_code_reads(service):
    env = SERVICES[service]["environment"]
    for name in NEEDED_ENV:
        assert name in env, f"{service}: {name} missing"
    known = _setting_names() | {"PAYGENT_HOME"}  # PAYGENT_HOME is read by paygent.paths
    unknown = [name for name in env if name not in known]
    assert not unknown, f"{service}: settings.py reads no variable named {unknown}"
    for name, (target, port) in TARGETS.items():
        value = env[name]
        parts = urlsplit(value if "://" in value else f"//{value}")
        assert (parts.hostname, parts.port) == (target, port), f"{service}: {name}={value}"
        assert target in SERVICES
    assert str(env["PAYGENT_CHAIN_ID"]) == "31337" and "--chain-id" in SERVICES["anvil"]["command"]
    assert SERVICES["anvil"]["command"][SERVICES["anvil"]["command"].index("--chain-id") + 1] == "31337"
    assert env["PAYGENT_MASTER_KEY"].startswith("${PAYGENT_MASTER_KEY:?"), "the master key must come from outside"
    assert any(v.endswith(f":{env['PAYGENT_HOME']}") for v in SERVICES[service]["volumes"])
    assert SERVICES[service]["build"] == "."


def test_commands_exist_in_the_cli_and_run_in_order():
    from paygent.cli import app

    cli = typer.main.get_command(app)
    for service in APP_SERVICES:
        cmd = SERVICES[service]["command"]
        assert cmd[0] == "paygent"
        group = cli.commands[cmd[1]]
        if cmd[1] == "stack":
            assert cmd[2] in group.commands
    assert SERVICES["migrate"]["command"] == ["paygent", "migrate"]
    deps = {s: SERVICES[s]["depends_on"] for s in APP_SERVICES}
    assert deps["provision"]["migrate"]["condition"] == "service_completed_successfully"
    for s in (*WORKERS, *APIS):
        assert deps[s]["provision"]["condition"] == "service_completed_successfully"
    assert {"temporal", "anvil", "redis"} <= set(deps["provision"])


def test_temporal_runs_on_postgres_with_a_ui():
    temporal = SERVICES["temporal"]
    assert "auto-setup" in temporal["image"]
    assert temporal["environment"]["DB"].startswith("postgres")
    assert temporal["environment"]["POSTGRES_SEEDS"] == "postgres"
    assert SERVICES["temporal-ui"]["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert any(str(p).endswith(":8233:8080") for p in SERVICES["temporal-ui"]["ports"])


def test_the_image_has_all_the_code():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+)", dockerfile, re.M))
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    packages = re.search(r"include = \[(.*?)\]", pyproject).group(1)
    for pattern in re.findall(r'"(\w+)\*"', packages):
        assert pattern in copied, f"Dockerfile does not COPY the {pattern} package"
    for needed in ("alembic.ini", "migrations", "contracts", "pyproject.toml"):
        assert needed in copied, f"Dockerfile does not COPY {needed}"


def test_the_app_connects_as_its_own_role_and_migrations_as_the_owner():
    env = COMPOSE["x-app-env"]
    app_user = urlsplit(env["DATABASE_URL"]).username
    owner = urlsplit(env["PAYGENT_MIGRATE_DATABASE_URL"]).username
    assert app_user == "paygent_app" and owner == SERVICES["postgres"]["environment"]["POSTGRES_USER"] != app_user


def test_two_workers_poll_one_task_queue():
    """Scale-out (issue 23): a second worker, identical but for its name, on the same task queue."""
    first, second = (SERVICES[w] for w in WORKERS)
    assert first["command"] == second["command"] == ["paygent", "worker"]
    assert first["environment"] == second["environment"]
    assert first["environment"]["PAYGENT_TASK_QUEUE"] == "paygent"
    assert "ports" not in first and "ports" not in second  # nothing on the host to collide
    assert first["stop_grace_period"] == second["stop_grace_period"]
    assert first["restart"] == second["restart"] == "unless-stopped"


def test_two_api_replicas_share_everything_but_their_host_port():
    """Two API replicas with no sticky routing: the same settings (one Redis for rate limits and the key cache,
    one database for idempotency), one network name `api` for both, each on its own host port."""
    first, second = (SERVICES[a] for a in APIS)
    assert first["command"] == second["command"] and "--port" in first["command"]
    container_port = int(first["command"][first["command"].index("--port") + 1])
    assert first["environment"] == second["environment"]
    assert "PAYGENT_RATE_LIMIT_PREFIX" not in first["environment"]  # the default: one namespace for both
    host_ports = set()
    for replica in (first, second):
        assert replica["networks"]["default"]["aliases"] == ["api"]
        (mapping,) = replica["ports"]
        host, host_port, port = str(mapping).rsplit(":", 2)
        assert host == "127.0.0.1" and int(port) == container_port
        host_ports.add(int(host_port))
        assert replica["healthcheck"]["test"] == first["healthcheck"]["test"]
    assert host_ports == {8000, 8001}
    assert urlsplit(first["environment"]["PAYGENT_API_URL"]).hostname == "api"  # either replica answers


def test_postgres_takes_every_pool_at_once():
    """Each worker and API process has its own pool (paygent/db/engine.py): their sum at full size, plus Temporal's
    stores (auto-setup: up to 20 connections each for the default and visibility stores) and a few for
    migrations and operators, fit under max_connections."""
    command = SERVICES["postgres"]["command"]
    max_connections = int(next(c.split("=", 1)[1] for c in command if c.startswith("max_connections=")))
    defaults = Settings.model_fields
    per_process = defaults["db_pool_size"].default + defaults["db_pool_overflow"].default
    pools = 0
    for name in (*WORKERS, *APIS):
        env = SERVICES[name]["environment"]
        size = int(env.get("PAYGENT_DB_POOL_SIZE", defaults["db_pool_size"].default))
        overflow = int(env.get("PAYGENT_DB_POOL_OVERFLOW", defaults["db_pool_overflow"].default))
        pools += size + overflow
    assert per_process == 30 and pools + 2 * 20 + 10 <= max_connections, (pools, max_connections)
