"""The order of `up`, and `down` / `status`.

`up` goes piece by piece and reports each as it comes up; the first piece that cannot start stops the run with
an error naming it (what already runs is left running, so fixing the cause and re-running `up` continues).
`down` stops exactly the processes recorded in `.paygent/run/`, newest first; a server it did not start is
never touched. `status` probes every address, ours or not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from paygent.memory.pgvector import ensure_pgvector
from paygent.netutil import port_open
from paygent.stack import apps, processes, provision, servers, services
from paygent.stack.chain_workflow import ensure_chain_workflow
from paygent.stack.config import StackConfig
from paygent.stack.memory_schedule import ensure_memory_cleanup_schedule
from paygent.stack.processes import Piece
from paygent.stack.swap_pieces import provision_swap

Echo = Callable[[str], None]
STOP_ORDER = ("api", "worker", "x402", "anvil", "temporal", "redis", "postgres")


def piece_line(p: Piece) -> str:
    state = "up" if p.up else "down"
    return f"  {p.name:<12} {state:<5} {p.owner:<20} {p.address}" + (f"   ({p.note})" if p.note else "")


def up(cfg: StackConfig, echo: Echo) -> dict[str, Any]:
    """Bring every piece up (only what is missing) and write dev.json; returns the dev.json document."""
    cfg.ensure_dirs()
    pg, database_url = services.ensure_postgres(cfg)
    echo(piece_line(pg))
    rd, redis_url = services.ensure_redis(cfg)
    echo(piece_line(rd))
    echo(piece_line(servers.ensure_temporal(cfg)))
    echo(piece_line(servers.ensure_anvil(cfg)))

    dev = prepare(cfg, database_url, redis_url, echo)
    env = apps.app_env(
        cfg,
        database_url=dev["database_url"],
        migrate_database_url=database_url,
        redis_url=redis_url,
        token_address=dev["token"]["address"],
    )
    launches = (apps.launch_worker(cfg, env), apps.launch_api(cfg, env), apps.launch_paid_service(cfg, env))
    for ready in launches:  # all start, then each is waited for
        echo(piece_line(ready()))
    queue = env.get("PAYGENT_TASK_QUEUE") or apps.task_queue()
    for line in ensure_chain_workflow(cfg.temporal_address, queue, cfg.chain_id, reconcile_interval()):
        echo(f"  {'chain':<12} {line}")
    done = ensure_memory_cleanup_schedule(cfg.temporal_address, queue, MEMORY_CLEANUP_SECONDS)
    echo(f"  {'memory':<12} cleanup schedule {done}: every {MEMORY_CLEANUP_SECONDS // 60} min; {pgvector_line(dev)}")
    return dev


MEMORY_CLEANUP_SECONDS = 600


def pgvector_line(dev: dict[str, Any]) -> str:
    """Whether semantic recall has its HNSW index, said once at start-up."""
    if dev.get("pgvector"):
        return "pgvector installed (recall uses the HNSW index)"
    return (
        "pgvector NOT installed in this Postgres: recall scans exactly (fine for small scopes); "
        "install postgresql-<version>-pgvector and run the migrations again for the HNSW index"
    )


def reconcile_interval() -> int:
    from paygent.settings import Settings

    return Settings().reconcile_interval_seconds


def prepare(
    cfg: StackConfig, database_url: str, redis_url: str, echo: Echo, app_database_url: str | None = None
) -> dict[str, Any]:
    """With the servers answering: migrations, tokens, dev tenant, funding, dev.json. Returns dev.json."""
    provision.migrate(database_url)
    echo(f"  {'migrations':<12} at head")
    pgvector = ensure_pgvector(database_url)
    app_database_url = provision.app_role(cfg, database_url, app_database_url)
    echo(f"  {'db role':<12} {urlsplit(app_database_url).username} (the API and worker; row-level security)")
    existing = provision.read_dev_json(cfg)
    tokens, seeded, funded = provision.provision_chain_and_tenant(cfg, database_url, existing)
    for token in tokens.values():
        echo(f"  {'token':<12} {token['symbol']} ({token['decimals']} decimals) at {token['address']}")
    swap, swap_done = provision_swap(cfg.rpc_url, database_url, existing, tokens)
    for line in swap_done:
        echo(f"  {'swap':<12} {line}")
    users = ", ".join(f"{name} ({'+'.join(u['roles'])})" for name, u in seeded["users"].items())
    echo(f"  {'tenant':<12} {(seeded.get('tenant') or {}).get('name', '?')}: {users}")
    for name, wallet in seeded["wallets"].items():
        echo(f"  {'wallet':<12} {name} {wallet['address']}")
    for line in funded:
        echo(f"  {'funded':<12} {line}")
    for name, agent in seeded.get("agents", {}).items():
        echo(f"  {'agent':<12} {name} (owner {agent['owner']}; wallets {', '.join(agent['wallets'])})")
    dev = provision.dev_document(
        cfg,
        database_url=app_database_url,
        migrate_database_url=database_url,
        redis_url=redis_url,
        tokens=tokens,
        seeded=seeded,
    )
    dev["pgvector"] = pgvector
    dev["swap"] = swap  # Uniswap V2: router, factory, WETH9, the USDC/EURC pair and the tokens a swap may name
    provision.write_dev_json(cfg, dev)
    return dev


def down(cfg: StackConfig, echo: Echo) -> list[str]:
    """Stop what `up` started (pidfiles), newest first. Returns the names stopped."""
    stopped: list[str] = []
    for name in STOP_ORDER:
        rec = processes.running(cfg, name)
        if rec is None:
            continue
        ok = services.stop_postgres(cfg) if name == "postgres" else processes.stop(cfg, name)
        if ok:
            stopped.append(name)
            echo(f"  stopped {name} (pid {rec.pid})")
    if not stopped:
        echo("  nothing to stop: no process started by this stack is running")
    return stopped


def _addresses(cfg: StackConfig) -> dict[str, str]:
    """Where each piece should answer: dev.json (what the last `up` wrote), else the configuration."""
    dev = provision.read_dev_json(cfg) or {}
    pg = processes.running(cfg, "postgres")
    rd = processes.running(cfg, "redis")
    return {
        "postgres": dev.get("database_url") or (pg.extra["url"] if pg else services.plain_pg_url(cfg.database_url)),
        "redis": dev.get("redis_url") or (rd.extra["url"] if rd else cfg.redis_url),
        "temporal": dev.get("temporal_address") or cfg.temporal_address,
        "temporal-ui": dev.get("temporal_ui_url") or cfg.temporal_ui_url,
        "anvil": dev.get("rpc_url") or cfg.rpc_url,
        "api": dev.get("api_url") or cfg.api_url,
        "x402": dev.get("x402_service_url") or cfg.x402_service_url,
    }


def _answers(name: str, address: str) -> bool | str:
    """True/False; for Postgres, a note when the server answers but the database is not there yet."""
    if name == "postgres":
        import asyncio

        state = asyncio.run(services.pg_state(address))
        return True if state == "ok" else ("database not created yet" if state == "missing-db" else False)
    if name == "redis":
        return services.redis_answers(address)
    if name == "temporal":
        return servers.temporal_healthy(address)
    if name == "anvil":
        return servers.chain_id_at(address) is not None
    if name == "api":
        return apps.api_answers(address)
    if name == "x402":
        return apps.paid_service_answers(address)
    parts = urlsplit(address)
    return port_open(parts.hostname or "127.0.0.1", parts.port or 80)


def status(cfg: StackConfig) -> list[Piece]:
    """Each piece: up or down, started by this stack (pid) or not, and its address (no passwords)."""
    pieces: list[Piece] = []
    addresses = _addresses(cfg)
    for name in ("postgres", "redis", "temporal", "temporal-ui", "anvil", "worker", "api", "x402"):
        own = processes.running(cfg, "temporal" if name == "temporal-ui" else name)
        if name == "worker":
            pieces.append(Piece.ours(own) if own else Piece("worker", False, "-", "not started by this stack"))
            continue
        address = addresses[name]
        answer = _answers(name, address)
        is_up = bool(answer)
        note = answer if isinstance(answer, str) else ("process alive but not answering" if own and not is_up else "")
        owner = f"stack (pid {own.pid})" if own else ("external" if is_up else "-")
        pieces.append(Piece(name, is_up, owner, services.redact(address), note=note))
    return pieces
