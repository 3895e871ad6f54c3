"""`paygent stack up | down | status | infra` (attached to the `paygent` command by paygent/cli.py).

Every failure is one readable line naming the piece and its log, exit code 1; no traceback for expected
problems, and never a secret (API keys live only in dev.json, mode 0600).
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import asdict

import typer

from paygent.stack import processes, services, stack
from paygent.stack.config import StackConfig
from paygent.stack.processes import StackError
from paygent.stack.provision import confirmations

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="The local dev stack: Postgres, Redis, Temporal (+ Web UI), anvil, worker, API.",
)

PortOpt = int | None


def _fail(command: str, exc: Exception) -> None:
    typer.secho(f"\npaygent stack {command} FAILED: {exc}", err=True, fg=typer.colors.RED)
    raise typer.Exit(1)


@app.command()
def up(
    temporal_port: PortOpt = typer.Option(None, help="Temporal gRPC port [env PAYGENT_TEMPORAL_PORT, 7233]"),
    temporal_ui_port: PortOpt = typer.Option(None, help="Temporal Web UI port [env PAYGENT_TEMPORAL_UI_PORT, 8233]"),
    anvil_port: PortOpt = typer.Option(None, help="anvil JSON-RPC port [env PAYGENT_ANVIL_PORT, 8545]"),
    api_port: PortOpt = typer.Option(None, help="API port [env PAYGENT_API_PORT, 8000]"),
    x402_port: PortOpt = typer.Option(None, help="x402 paid service port [env PAYGENT_X402_PORT, 8402]"),
    postgres_port: PortOpt = typer.Option(None, help="private Postgres port [env PAYGENT_POSTGRES_PORT, 54329]"),
    redis_port: PortOpt = typer.Option(None, help="private Redis port [env PAYGENT_REDIS_PORT, 63799]"),
) -> None:
    """Start whatever is not already running, set everything up, and write .paygent/dev.json. Idempotent."""
    cfg = StackConfig.load(
        temporal_port=temporal_port,
        temporal_ui_port=temporal_ui_port,
        anvil_port=anvil_port,
        api_port=api_port,
        x402_port=x402_port,
        postgres_port=postgres_port,
        redis_port=redis_port,
    )
    typer.echo(f"==> paygent stack up (state in {cfg.home})")
    try:
        dev = stack.up(cfg, typer.echo)
    except (StackError, OSError) as exc:
        _fail("up", exc)
    typer.echo("\nThe stack is up.")
    typer.echo(f"  Temporal UI   {dev['temporal_ui_url']}")
    typer.echo(f"  API docs      {dev['api_url']}/docs")
    typer.echo(f"  metrics       {cfg.metrics_urls['api']}  (worker: {cfg.metrics_urls['worker']})")
    keys = [*dev["users"], *(f"agent {a}" for a in dev.get("agents", {}))]
    typer.echo(f"  dev.json      {cfg.dev_json}  (API keys for {', '.join(keys)}; mode 0600)")
    typer.echo(f"  logs          {cfg.log_dir}/")
    typer.echo("Next: `paygent demo`, `paygent stack status`, `paygent stack down`.")


@app.command()
def down() -> None:
    """Stop what `paygent stack up` started (never the machine's own Postgres or Redis). Data is kept."""
    cfg = StackConfig.load()
    typer.echo(f"==> paygent stack down (state in {cfg.home})")
    try:
        stack.down(cfg, typer.echo)
    except (StackError, OSError) as exc:
        _fail("down", exc)


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Each piece: up or down, who started it (this stack, with its pid, or something external), its address."""
    cfg = StackConfig.load()
    pieces = stack.status(cfg)
    if as_json:
        typer.echo(json.dumps([asdict(p) for p in pieces], indent=2))
        return
    typer.echo(f"==> paygent stack status (state in {cfg.home})")
    typer.echo(f"  {'piece':<12} {'state':<5} {'started by':<20} address")
    for piece in pieces:
        typer.echo(stack.piece_line(piece))
    typer.echo(f"  metrics: API {cfg.metrics_urls['api']}  worker {cfg.metrics_urls['worker']}")
    typer.echo(f"  confirmations: {confirmations()} (chain {cfg.chain_id}; PAYGENT_CONFIRMATIONS, dev.json)")
    if cfg.dev_json.exists():
        typer.echo(f"  dev.json: {cfg.dev_json}")


@app.command()
def provision() -> None:
    """Only the setup steps, against servers that run elsewhere (docker compose): search attributes,
    migrations, token, dev tenant, funding, dev.json. Addresses come from the settings (env, dev.json)."""
    from dataclasses import replace

    from paygent.settings import Settings
    from paygent.stack import servers

    settings = Settings()
    keys = ("temporal_address", "temporal_ui_url", "rpc_url", "api_url")
    addresses = {key: getattr(settings, key) for key in keys}
    cfg = replace(StackConfig.load(), elsewhere=addresses, chain_id=settings.chain_id)
    typer.echo(f"==> paygent stack provision (state in {cfg.home})")
    try:
        database_url = services.plain_pg_url(settings.owner_database_url())  # migrations and seed: the owner
        services.ensure_database(database_url)
        processes.wait_until(
            lambda: servers.temporal_healthy(cfg.temporal_address),
            piece="Temporal",
            log="the Temporal server's own logs",
            timeout=120,
            interval=1,
        )
        servers.ensure_search_attributes(cfg.temporal_address)
        typer.echo(f"  {'temporal':<12} search attributes registered at {cfg.temporal_address}")
        stack.prepare(
            cfg,
            database_url,
            settings.redis_url,
            typer.echo,
            app_database_url=services.plain_pg_url(settings.database_url),
        )
    except (StackError, OSError) as exc:
        _fail("provision", exc)
    typer.echo(f"dev.json written to {cfg.dev_json} (mode 0600)")


@app.command()
def infra(
    shell: bool = typer.Option(False, "--shell", help="Print `export DATABASE_URL=... REDIS_URL=...` for eval."),
    postgres_port: PortOpt = typer.Option(None, help="private Postgres port [env PAYGENT_POSTGRES_PORT, 54329]"),
    redis_port: PortOpt = typer.Option(None, help="private Redis port [env PAYGENT_REDIS_PORT, 63799]"),
) -> None:
    """Only Postgres and Redis (what the tests need): the machine's if they answer, else private ones."""
    cfg = StackConfig.load(postgres_port=postgres_port, redis_port=redis_port)
    say = (lambda line: typer.echo(line, err=True)) if shell else typer.echo
    try:
        pg, database_url = services.ensure_postgres(cfg)
        say(stack.piece_line(pg))
        rd, redis_url = services.ensure_redis(cfg)
        say(stack.piece_line(rd))
    except (StackError, OSError) as exc:
        _fail("infra", exc)
    if shell:
        sys.stdout.write(
            f"export DATABASE_URL={shlex.quote(database_url)}\nexport REDIS_URL={shlex.quote(redis_url)}\n"
        )
