"""Which ports, URLs and files one dev stack uses.

Every port can be moved by an environment variable (or a `paygent stack up` option), so a test or a second
checkout can run its own stack beside the default one: give it its own `PAYGENT_HOME` and free ports.
Precedence: option, then `PAYGENT_<PIECE>_PORT`, then the port in the matching settings URL
(`PAYGENT_TEMPORAL_ADDRESS`, `PAYGENT_RPC_URL`, `PAYGENT_API_URL`), then the default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from paygent.paths import state_dir

HOST = "127.0.0.1"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/paygent"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

# piece -> (env variable, settings URL variable whose port counts too, default port)
PORTS: dict[str, tuple[str, str | None, int]] = {
    "temporal": ("PAYGENT_TEMPORAL_PORT", "PAYGENT_TEMPORAL_ADDRESS", 7233),
    "temporal_ui": ("PAYGENT_TEMPORAL_UI_PORT", "PAYGENT_TEMPORAL_UI_URL", 8233),
    "anvil": ("PAYGENT_ANVIL_PORT", "PAYGENT_RPC_URL", 8545),
    "api": ("PAYGENT_API_PORT", "PAYGENT_API_URL", 8000),
    # the local x402 paid service (pay-per-request demo and tests)
    "x402": ("PAYGENT_X402_PORT", "PAYGENT_X402_SERVICE_URL", 8402),
    # the worker's Temporal SDK metrics (Prometheus); the API's are at <api>/metrics
    "worker_metrics": ("PAYGENT_WORKER_METRICS_PORT", "PAYGENT_WORKER_METRICS_ADDRESS", 9464),
    # private servers, started only when DATABASE_URL / REDIS_URL do not answer
    "postgres": ("PAYGENT_POSTGRES_PORT", None, 54329),
    "redis": ("PAYGENT_REDIS_PORT", None, 63799),
}


def _port_from(value: str) -> int | None:
    """The port in `host:port` or `scheme://host:port/...`, if any."""
    try:
        return urlsplit(value if "://" in value else f"//{value}").port
    except ValueError:
        return None


def _port(piece: str, override: int | None) -> int:
    if override:
        return override
    env_name, url_env, default = PORTS[piece]
    if os.environ.get(env_name):
        return int(os.environ[env_name])
    if url_env and os.environ.get(url_env):
        return _port_from(os.environ[url_env]) or default
    return default


def _env_url(*names: str) -> str | None:
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return None


@dataclass(frozen=True)
class StackConfig:
    home: Path
    database_url: str
    redis_url: str
    temporal_port: int
    temporal_ui_port: int
    anvil_port: int
    api_port: int
    x402_port: int
    worker_metrics_port: int
    postgres_port: int
    redis_port: int
    chain_id: int = 31337
    # Fixed addresses for pieces that run elsewhere (docker compose: `temporal:7233`); keys as in dev.json.
    elsewhere: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, **overrides: int | None) -> StackConfig:
        """From the environment; keyword overrides (`temporal_port=...`) win when not None."""
        db = _env_url("PAYGENT_DATABASE_URL", "DATABASE_URL")
        redis = _env_url("PAYGENT_REDIS_URL", "REDIS_URL")

        def port(piece: str) -> int:
            return _port(piece, overrides.get(f"{piece}_port"))

        return cls(
            home=state_dir(),
            database_url=db or DEFAULT_DATABASE_URL,
            redis_url=redis or DEFAULT_REDIS_URL,
            temporal_port=port("temporal"),
            temporal_ui_port=port("temporal_ui"),
            anvil_port=port("anvil"),
            api_port=port("api"),
            x402_port=port("x402"),
            worker_metrics_port=port("worker_metrics"),
            postgres_port=port("postgres"),
            redis_port=port("redis"),
        )

    @property
    def temporal_address(self) -> str:
        return self.elsewhere.get("temporal_address") or f"{HOST}:{self.temporal_port}"

    @property
    def temporal_ui_url(self) -> str:
        return self.elsewhere.get("temporal_ui_url") or f"http://{HOST}:{self.temporal_ui_port}"

    @property
    def rpc_url(self) -> str:
        return self.elsewhere.get("rpc_url") or f"http://{HOST}:{self.anvil_port}"

    @property
    def api_url(self) -> str:
        return self.elsewhere.get("api_url") or f"http://{HOST}:{self.api_port}"

    @property
    def x402_service_url(self) -> str:
        return self.elsewhere.get("x402_service_url") or f"http://{HOST}:{self.x402_port}"

    @property
    def worker_metrics_address(self) -> str:
        return f"{HOST}:{self.worker_metrics_port}"

    @property
    def metrics_urls(self) -> dict[str, str]:
        """Prometheus scrape URLs: the API's (requests, payments, approvals) and the worker's (Temporal SDK)."""
        return {"api": f"{self.api_url}/metrics", "worker": f"http://{self.worker_metrics_address}/metrics"}

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def dev_json(self) -> Path:
        return self.home / "dev.json"

    @property
    def master_key_path(self) -> Path:
        return self.home / "master.key"

    @property
    def temporal_db(self) -> Path:
        return self.home / "temporal.db"

    @property
    def anvil_state(self) -> Path:
        return self.home / "anvil-state.json"

    @property
    def postgres_dir(self) -> Path:
        return self.home / "postgres"

    @property
    def redis_dir(self) -> Path:
        return self.home / "redis"

    def ensure_dirs(self) -> None:
        for path in (self.home, self.run_dir, self.log_dir):
            path.mkdir(parents=True, exist_ok=True)
