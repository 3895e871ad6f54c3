"""The worker and API processes (`paygent worker`, `paygent api`), pointed explicitly at this stack.

They get the stack's addresses in their environment (which outranks dev.json and any stale shell variable),
so a second stack in another PAYGENT_HOME drives its own services. Readiness is real: the worker counts once
it polls the task queue, the API once GET /healthz answers.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

from paygent.netutil import port_open
from paygent.paths import REPO_ROOT
from paygent.stack import processes
from paygent.stack.config import StackConfig
from paygent.stack.processes import Piece, StackError
from paygent.stack.servers import utcnow, worker_polling


def app_env(
    cfg: StackConfig,
    *,
    database_url: str,
    redis_url: str,
    token_address: str | None,
    migrate_database_url: str | None = None,
) -> dict[str, str]:
    """The API's and the worker's environment: DATABASE_URL is the application's role, never the owner."""
    env = dict(os.environ)
    env.update(
        {
            "PAYGENT_HOME": str(cfg.home),
            "PAYGENT_DATABASE_URL": database_url,
            "DATABASE_URL": database_url,
            "PAYGENT_MIGRATE_DATABASE_URL": migrate_database_url or database_url,
            "PAYGENT_REDIS_URL": redis_url,
            "REDIS_URL": redis_url,
            "PAYGENT_TEMPORAL_ADDRESS": cfg.temporal_address,
            "PAYGENT_TEMPORAL_UI_URL": cfg.temporal_ui_url,
            "PAYGENT_RPC_URL": cfg.rpc_url,
            "PAYGENT_CHAIN_ID": str(cfg.chain_id),
            "PAYGENT_API_URL": cfg.api_url,
            "PAYGENT_EGRESS_ALLOW": own_paid_service_exempt(cfg, os.environ.get("PAYGENT_EGRESS_ALLOW", "")),
            "PAYGENT_WORKER_METRICS_ADDRESS": cfg.worker_metrics_address,
            "PYTHONUNBUFFERED": "1",
        }
    )
    if token_address:
        env["PAYGENT_TOKEN_ADDRESS"] = token_address
    return env


def own_paid_service_exempt(cfg: StackConfig, allow: str) -> str:
    """The egress policy refuses loopback; the stack's own paid service is the one local destination it allows."""
    parts = urlsplit(cfg.x402_service_url)
    own = f"{parts.hostname}:{parts.port or 80}"
    entries = [e.strip() for e in allow.split(",") if e.strip()]
    return ",".join(entries + ([own] if own not in entries else []))


def task_queue() -> str:
    from paygent.settings import Settings

    return Settings().task_queue


def launch_worker(cfg: StackConfig, env: dict[str, str]) -> Callable[[], Piece]:
    """Start our worker unless it runs; returns a function that waits until it polls the task queue.

    Only our own pidfile counts as "running": Temporal lists a dead worker's poller for minutes, and a second
    worker beside someone else's is harmless. Launch and wait are split so the API can start meanwhile.
    """
    queue = env.get("PAYGENT_TASK_QUEUE") or task_queue()
    own = processes.running(cfg, "worker")
    if own is not None:
        return lambda: Piece.ours(own)
    since = utcnow()
    proc, rec = processes.start(
        cfg,
        "worker",
        [sys.executable, "-m", "paygent.cli", "worker"],
        address=f"task queue {queue}",
        env=env,
        cwd=REPO_ROOT,
    )

    def ready() -> Piece:
        processes.wait_until(
            lambda: worker_polling(cfg.temporal_address, queue, proc.pid, since),
            piece="worker",
            log=rec.log,
            timeout=90,
            proc=proc,
            interval=0.5,
        )
        return Piece.ours(rec)

    return ready


def api_answers(api_url: str) -> bool:
    """The API answers /healthz (liveness; whether its dependencies answer is /readyz's question)."""
    try:
        httpx.get(f"{api_url}/healthz", timeout=5)
        return True
    except httpx.HTTPError:
        return False


def launch_api(cfg: StackConfig, env: dict[str, str]) -> Callable[[], Piece]:
    """Start our API unless it (or another) answers on the port; returns a function that waits for /healthz."""
    own = processes.running(cfg, "api")
    note = f"docs {cfg.api_url}/docs"
    if own is not None:

        def already() -> Piece:
            processes.wait_until(lambda: api_answers(cfg.api_url), piece="API", log=own.log, timeout=60)
            return Piece.ours(own, note=note)

        return already
    if api_answers(cfg.api_url):
        return lambda: Piece("api", True, "external", cfg.api_url, note=note)
    if port_open("127.0.0.1", cfg.api_port):
        raise StackError(
            f"API: port {cfg.api_port} is taken by something that does not answer /healthz; "
            "free it or set PAYGENT_API_PORT"
        )
    cmd = [sys.executable, "-m", "paygent.cli", "api", "--host", "127.0.0.1", "--port", str(cfg.api_port)]
    proc, rec = processes.start(cfg, "api", cmd, address=cfg.api_url, env=env, cwd=REPO_ROOT)

    def ready() -> Piece:
        processes.wait_until(
            lambda: api_answers(cfg.api_url), piece="API", log=rec.log, timeout=90, proc=proc, interval=0.25
        )
        return Piece.ours(rec, note=note)

    return ready


def paid_service_answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def launch_paid_service(cfg: StackConfig, env: dict[str, str]) -> Callable[[], Piece]:
    """The local x402 paid service (`python -m paygent.x402`): paid endpoints settling on our anvil."""
    url = cfg.x402_service_url
    own = processes.running(cfg, "x402")
    if own is not None:
        return lambda: Piece.ours(own, note=f"try {url}/weather")
    if port_open("127.0.0.1", cfg.x402_port):
        raise StackError(f"x402 service: port {cfg.x402_port} is taken; free it or set PAYGENT_X402_PORT")
    cmd = [sys.executable, "-m", "paygent.x402", "--host", "127.0.0.1", "--port", str(cfg.x402_port)]
    proc, rec = processes.start(cfg, "x402", cmd, address=url, env=env, cwd=REPO_ROOT)

    def ready() -> Piece:
        processes.wait_until(
            lambda: paid_service_answers(url), piece="x402 service", log=rec.log, timeout=60, proc=proc, interval=0.25
        )
        return Piece.ours(rec, note=f"try {url}/weather")

    return ready
