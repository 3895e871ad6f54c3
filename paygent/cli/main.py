"""The `paygent` command. Each group of sub-commands is a module of this package, attached here."""

from __future__ import annotations

import asyncio
import os
import sys
from urllib.parse import unquote, urlsplit

import typer

from paygent.cli import (
    agents,
    approvals,
    memory,
    payments,
    reconcile,
    runs,
    services,
    swaps,
    wallets,
    x402,
)
from paygent.cli.keys import app as keys_app
from paygent.stack.cli import app as stack_app

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Paygent: a durable control plane for AI agents that spend money."
)
app.add_typer(stack_app, name="stack", help="Bring the local dev stack up or down, or show it.")
audit_app = typer.Typer(no_args_is_help=True, help="The hash-chained audit log.")
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")  # `paygent keys new-master-key|rotate-master|rotate-user-key`
wallets.attach(app)  # `paygent wallets create|balance|limits`
agents.attach(app)  # `paygent agents create|list|show|rotate-key|disable`
memory.attach(app)  # `paygent memory put|get|delete|search|partitions|clear-partition|memorize|recall|stats|grant`
payments.attach(app)  # `paygent pay`, `paygent payments list|show|cancel`
swaps.attach(app)  # `paygent swap 10 USDC EURC --slippage-bps 30`
app.add_typer(x402.app, name="x402")  # `paygent x402 fetch URL --max 0.05`, `paygent x402 session ...`
approvals.attach(app)  # `paygent approvals list|show`, `paygent approve|reject|revoke|cancel|delegate|edit`
app.add_typer(services.app, name="services")
app.add_typer(reconcile.app, name="reconcile")  # `paygent reconcile show|resolve`
app.command("run")(runs.run)  # `paygent run "pay 5 USDC to 0x..."`: start an agent run, stream it


def _exit(code: int) -> None:
    """Temporal's SDK can crash at interpreter exit (sdk-python#300): flush and leave without teardown."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@app.command()
def worker(
    processes: int = typer.Option(
        None, min=1, help="Worker processes on the task queue (default PAYGENT_WORKER_PROCESSES, 1)"
    ),
) -> None:
    """Run the Temporal worker (all workflows and activities); several processes use several cores."""
    from paygent.logs import configure
    from paygent.settings import get_settings
    from workers.main import run

    settings = get_settings()
    configure(settings.log_level)
    count = processes or settings.worker_processes
    if count > 1:
        from workers.processes import run_processes

        _exit(run_processes(count))
    asyncio.run(run(settings))
    _exit(0)


@app.command()
def api(
    host: str = typer.Option(None, help="Defaults to the host of PAYGENT_API_URL"),
    port: int = typer.Option(None, help="Defaults to the port of PAYGENT_API_URL"),
) -> None:
    """Serve the HTTP API with uvicorn."""
    from urllib.parse import urlparse

    import uvicorn

    from api.app import server_options
    from paygent.logs import configure
    from paygent.settings import get_settings

    settings = get_settings()
    configure(settings.log_level)
    url = urlparse(settings.api_url)
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        **server_options(settings),  # X-Forwarded-For only from PAYGENT_TRUSTED_PROXIES
        host=host or url.hostname or "127.0.0.1",
        port=port or url.port or 8000,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )  # event streams (SSE, WebSocket) reconnect elsewhere; don't wait hours


@app.command()
def mcp(
    api_url: str = typer.Option(
        None, envvar="PAYGENT_API_URL", help="The Paygent API (default: api_url in .paygent/dev.json)"
    ),
) -> None:
    """Serve Paygent's MCP tools over stdio (for desktop clients), as the key in PAYGENT_API_KEY."""
    from paygent.cli.http import dev_json
    from paygent.mcp_stdio import run

    key = os.environ.get("PAYGENT_API_KEY", "").strip()
    base = api_url or dev_json().get("api_url")
    if not key or not base:
        typer.echo(
            "paygent mcp: set PAYGENT_API_KEY (an agent's key) and PAYGENT_API_URL (or run `paygent stack up`)",
            err=True,
        )
        raise typer.Exit(2)
    _exit(run(base, key))


@app.command()
def migrate() -> None:
    """Apply database migrations (Alembic) up to the newest, as the owner (PAYGENT_MIGRATE_DATABASE_URL), then
    grant the application role (DATABASE_URL's user, when it differs) what it needs on the tables."""
    from paygent.db.migrate import upgrade
    from paygent.db.roles import grant_app_role
    from paygent.settings import get_settings

    settings = get_settings()
    upgrade(settings.owner_database_url())
    typer.echo("migrations applied")
    app_user = urlsplit(settings.database_url).username
    if settings.migrate_database_url and app_user and app_user != urlsplit(settings.migrate_database_url).username:
        password = urlsplit(settings.database_url).password
        asyncio.run(grant_app_role(settings.owner_database_url(), app_user, unquote(password) if password else None))
        typer.echo(f"role {app_user}: granted")


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the audit log's hash chain; name the first broken row. Exit 1 if broken."""
    from paygent.db.audit import sees_whole_audit_log, verify_chain
    from paygent.db.engine import get_engine
    from paygent.settings import get_settings

    async def check():  # as the owner: the application's role sees one tenant's rows, the chain spans all
        async with get_engine(get_settings().owner_database_url()).connect() as conn:
            if not await sees_whole_audit_log(conn):
                return None
            return await verify_chain(conn)

    result = asyncio.run(check())
    if result is None:
        typer.echo(
            "cannot verify: this database role does not see every audit row (row-level security); set "
            "PAYGENT_MIGRATE_DATABASE_URL to the tables' owner",
            err=True,
        )
        _exit(2)
    if result.ok:
        typer.echo(f"audit log intact: {result.rows_checked} rows verified")
        _exit(0)
    typer.echo(
        f"audit log BROKEN at row {result.first_broken_id}: {result.reason} "
        f"({result.rows_checked} rows before it verified)",
        err=True,
    )
    _exit(1)


@app.command()
def demo() -> None:
    """With the stack up: make payments through the API and show them settle on chain."""
    from paygent.cli.demo import run_demo

    _exit(asyncio.run(run_demo()))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
