"""`paygent keys new-master-key|rotate-master|rotate-user-key`: operator commands, run against the database.

They connect as the tables' owner (PAYGENT_MIGRATE_DATABASE_URL, else DATABASE_URL), as migrations do: an
operator's work spans tenants. For the master key they need both keys; they never print a wallet key, and
print an API key only once, when it is made. The procedure around them (drain the worker first, restart with
the new key): docs/RUNBOOK.md.
"""

from __future__ import annotations

import asyncio
import getpass
import os
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="Rotate the master key (wallet keys at rest) and API keys.")
Actor = Annotated[str, typer.Option(help="Who rotates, for the audit log")]


def _actor_default() -> str:
    return f"operator:{getpass.getuser()}"


def _read_key(path: Path) -> bytes:
    from paygent.crypto import decode_master_key

    return decode_master_key(path.read_text().strip())


@app.command("new-master-key")
def new_master_key(out: Annotated[Path, typer.Option(help="File to create (mode 0600); never printed")]) -> None:
    """Make a new master key in a file of its own, for `rotate-master`."""
    from paygent.crypto import new_master_key as make

    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(make() + "\n")
    typer.echo(f"new master key written to {out} (mode 0600)")


@app.command("rotate-master")
def rotate_master(
    new_key_file: Annotated[Path, typer.Option(help="The new key (from `new-master-key`)")],
    old_key_file: Annotated[
        Path | None, typer.Option(help="The current key; default: PAYGENT_MASTER_KEY, else .paygent/master.key")
    ] = None,
    actor: Actor = "",
) -> None:
    """Re-seal every wallet key under the new master key (resumable; audited per tenant)."""
    from paygent.db.engine import get_engine
    from paygent.db.key_rotation import KeyRotationError, reseal_wallets
    from paygent.settings import get_settings

    settings = get_settings()
    old = _read_key(old_key_file) if old_key_file else settings.master_key_bytes()
    try:
        report = asyncio.run(
            reseal_wallets(
                get_engine(settings.owner_database_url()), old, _read_key(new_key_file), actor=actor or _actor_default()
            )
        )
    except KeyRotationError as exc:
        typer.secho(f"rotate-master FAILED: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from exc
    typer.echo(f"wallet keys re-sealed: {report.resealed}; already under the new key: {report.already}")
    typer.echo(
        "Next: give the worker and the API the new key (PAYGENT_MASTER_KEY or .paygent/master.key), "
        "restart them, keep the old key until a payment has confirmed."
    )


@app.command("rotate-user-key")
def rotate_user_key(
    user: str, tenant: Annotated[str, typer.Option(help="Tenant name")] = "dev", actor: Actor = ""
) -> None:
    """A new API key for a user, printed once; the old one answers 401 from the next request on."""
    from paygent import key_generation
    from paygent.db.engine import get_engine
    from paygent.db.key_rotation import KeyRotationError
    from paygent.db.key_rotation import rotate_user_key as rotate
    from paygent.settings import get_settings

    try:
        key = asyncio.run(
            rotate(get_engine(get_settings().owner_database_url()), tenant, user, actor=actor or _actor_default())
        )
    except KeyRotationError as exc:
        typer.secho(f"rotate-user-key FAILED: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(1) from exc
    try:  # API processes that remember the old key forget it on their next request
        asyncio.run(key_generation.bump(get_settings().redis_url))
    except Exception as exc:
        typer.secho(
            f"warning: Redis not reached ({type(exc).__name__}); API processes may accept the old key "
            "for a few more seconds",
            err=True,
            fg=typer.colors.YELLOW,
        )
    typer.echo(key)
    typer.echo(f"(the new API key of {user} in {tenant}; shown once, store it now)", err=True)
