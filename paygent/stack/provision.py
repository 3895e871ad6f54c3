"""What `up` does once the servers answer: schema, master key, tokens, dev tenant, funding, dev.json.

Each step is idempotent, so `up` can run any number of times: migrations go to head, an existing key is kept,
the recorded tokens (USDC, EURC) are kept unless the chain proves them gone (paygent/stack/chain_pieces.py), the
seed keeps API keys recorded in dev.json, and wallets are topped up only when below their floor.

dev.json names the tokens twice: `token` is the configured token (USDC, as before), and `tokens` maps every
token the stack deployed by symbol: {"USDC": {address, symbol, decimals, name}, "EURC": {...}}.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from pathlib import Path
from typing import Any

from paygent.chain.rpc import async_web3
from paygent.stack.chain_pieces import ContractPiece, ensure_contract
from paygent.stack.config import StackConfig
from paygent.stack.processes import StackError

GAS_FLOOR_WEI = 10**18  # 1 ETH
GAS_TOP_UP_WEI = 10 * 10**18
# tokens each dev wallet is topped up to: `ops` carries the demo's approval-gated payments
TOKEN_FLOORS = {"treasury": 1_000_000, "ops": 100_000}


def migrate(database_url: str) -> None:
    """Alembic to head. Synchronous (Alembic runs its own event loop): call outside any running loop."""
    from paygent.db.migrate import upgrade

    try:
        upgrade(database_url)
    except Exception as exc:
        raise StackError(f"migrations failed on the database: {type(exc).__name__}: {exc}") from exc


def app_role(cfg: StackConfig, owner_url: str, app_url: str | None = None) -> str:
    """The application's own database role (not superuser, not owner: row-level security holds for it), granted
    after the migrations; returns the URL the API and the worker connect with.

    `app_url` names a role chosen by the operator (docker-compose's DATABASE_URL): its user and password are used.
    Otherwise the role is `paygent_app`, with a password kept in `.paygent/app-db.password` (0600), made once."""
    from urllib.parse import unquote, urlsplit

    from paygent.db.roles import APP_ROLE, grant_app_role

    chosen = urlsplit(app_url) if app_url else None
    role: str
    password: str | None
    if chosen is not None and chosen.username and chosen.username != urlsplit(owner_url).username:
        role, password = chosen.username, unquote(chosen.password or "") or None
    else:
        path = cfg.home / "app-db.password"
        if not path.exists():
            write_secret(path, secrets.token_urlsafe(24) + "\n")
        role, password = APP_ROLE, path.read_text().strip()
    try:
        return asyncio.run(grant_app_role(owner_url, role, password))
    except Exception as exc:
        raise StackError(f"the application's database role could not be set up: {type(exc).__name__}: {exc}") from exc


def write_secret(path: Path, text: str) -> None:
    """Write atomically with mode 0600 from the first byte: these files hold keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def master_key(cfg: StackConfig) -> bytes:
    """PAYGENT_MASTER_KEY when set (as the app reads it), else `.paygent/master.key`, created if missing."""
    from paygent.crypto import decode_master_key, new_master_key

    if os.environ.get("PAYGENT_MASTER_KEY"):
        return decode_master_key(os.environ["PAYGENT_MASTER_KEY"])
    if not cfg.master_key_path.exists():
        write_secret(cfg.master_key_path, new_master_key() + "\n")
    return decode_master_key(cfg.master_key_path.read_text().strip())


def read_dev_json(cfg: StackConfig) -> dict[str, Any] | None:
    try:
        return json.loads(cfg.dev_json.read_text())
    except (OSError, ValueError):
        return None


def write_dev_json(cfg: StackConfig, dev: dict[str, Any]) -> None:
    """dev.json holds API keys: mode 0600, never printed."""
    write_secret(cfg.dev_json, json.dumps(dev, indent=2) + "\n")


def dev_tokens() -> dict[str, str]:
    """The tokens `up` deploys, symbol -> name, in deployment order: the configured token (USDC) first."""
    from paygent.chain.token import EURC_NAME, EURC_SYMBOL, TOKEN_NAME, TOKEN_SYMBOL

    return {TOKEN_SYMBOL: TOKEN_NAME, EURC_SYMBOL: EURC_NAME}


def token_piece(symbol: str | None = None) -> ContractPiece:
    """The contract piece of one dev token (default: USDC)."""
    from paygent.chain.anvil import dev_account
    from paygent.chain.token import TOKEN_DECIMALS, TOKEN_SYMBOL, deploy_token, token_abi

    symbol = symbol or TOKEN_SYMBOL
    name = dev_tokens()[symbol]

    async def deploy(w3) -> str:
        return await deploy_token(w3, dev_account(0), name, symbol)

    # code at the address is not enough on a reused chain (a fresh anvil gives account 0's first deployment
    # the same address): the contract must say what it is (EURC at USDC's old address is "other")
    piece_name = "token" if symbol == TOKEN_SYMBOL else f"token {symbol}"
    return ContractPiece(piece_name, token_abi(), {"symbol": symbol, "decimals": TOKEN_DECIMALS}, deploy)


def recorded_token(existing: dict[str, Any] | None, symbol: str) -> str | None:
    """The address dev.json records for `symbol`: `tokens`, else (USDC, dev.json before EURC) `token`."""
    from paygent.chain.token import TOKEN_SYMBOL

    entry = ((existing or {}).get("tokens") or {}).get(symbol) or {}
    if not entry and symbol == TOKEN_SYMBOL:
        entry = (existing or {}).get("token") or {}
    return entry.get("address")


async def ensure_token(
    w3, existing: dict[str, Any] | None, database_url: str, symbol: str | None = None
) -> tuple[dict[str, Any], str]:
    """The token `symbol` (default USDC) from dev.json while the chain shows it there (paygent/stack/chain_pieces.py
    has the rule), else a fresh deployment by dev account 0: (token, `reused` or `deployed`)."""
    from paygent.chain.token import TOKEN_DECIMALS, TOKEN_SYMBOL

    symbol = symbol or TOKEN_SYMBOL
    address, done = await ensure_contract(
        w3, token_piece(symbol), recorded_token(existing, symbol), in_flight=lambda: payments_in_flight(database_url)
    )
    return {"address": address, "symbol": symbol, "decimals": TOKEN_DECIMALS, "name": dev_tokens()[symbol]}, done


async def ensure_tokens(w3, existing: dict[str, Any] | None, database_url: str) -> dict[str, dict[str, Any]]:
    """Every dev token, symbol -> token (each kept or deployed by `ensure_token`'s rule), USDC first."""
    return {symbol: (await ensure_token(w3, existing, database_url, symbol))[0] for symbol in dev_tokens()}


async def payments_in_flight(database_url: str) -> int:
    """Payments of every tenant not yet final (the SECURITY DEFINER totals of migration 0007)."""
    import sqlalchemy as sa
    from sqlalchemy.dialects.postgresql import JSONB

    from paygent.db.engine import get_engine
    from paygent.domain.payment import PAYMENT_TERMINAL

    try:
        async with get_engine(database_url).connect() as conn:
            state = await conn.scalar(sa.select(sa.func.paygent_operational_state(type_=JSONB)))
    except Exception as exc:
        raise StackError(
            f"could not count the payments in flight before a deployment: {type(exc).__name__}: {exc}"
        ) from exc
    return sum(p["count"] for p in (state or {}).get("payments", []) if p["status"] not in PAYMENT_TERMINAL)


def key_source(cfg: StackConfig) -> str:
    return "PAYGENT_MASTER_KEY" if os.environ.get("PAYGENT_MASTER_KEY") else str(cfg.master_key_path)


async def seed(database_url: str, key: bytes, existing: dict[str, Any] | None, *, key_from: str) -> dict[str, Any]:
    """The dev tenant, users and wallets; then proves the master key opens the wallets it finds."""
    import uuid

    from paygent.db.accounts import load_signer
    from paygent.db.engine import dispose_all, get_engine
    from paygent.db.seed import seed_dev

    try:
        seeded = await seed_dev(database_url, key, existing)
        async with get_engine(database_url).connect() as conn:
            for name, wallet in seeded["wallets"].items():
                try:
                    await load_signer(conn, uuid.UUID(wallet["id"]), key)
                except Exception:
                    raise StackError(
                        f"wallet {name!r} in the database was sealed under another master key than this stack's "
                        f"({key_from}). Restore that key, or point DATABASE_URL at a fresh database."
                    ) from None
        return seeded
    finally:
        await dispose_all()


async def fund(w3, tokens: list[dict[str, Any]], wallets: dict[str, Any]) -> list[str]:
    """Gas for every wallet below 1 ETH; each token minted up to TOKEN_FLOORS. Returns what it did."""
    from paygent.chain.anvil import dev_account
    from paygent.chain.token import balance_of, mint, send_eth
    from paygent.domain.money import format_amount

    funder = dev_account(0)
    done: list[str] = []
    for name, wallet in wallets.items():
        if await w3.eth.get_balance(wallet["address"]) < GAS_FLOOR_WEI:
            await send_eth(w3, funder, wallet["address"], GAS_TOP_UP_WEI)
            done.append(f"{name}: +{GAS_TOP_UP_WEI // 10**18} ETH for gas")
    for token in tokens:
        for name, whole in TOKEN_FLOORS.items():
            wallet = wallets.get(name)
            if wallet is None:
                continue
            floor = whole * 10 ** token["decimals"]
            have = await balance_of(w3, token["address"], wallet["address"])
            if have < floor:
                await mint(w3, token["address"], funder, wallet["address"], floor - have)
                done.append(f"{name}: minted {format_amount(floor - have, token['decimals'])} {token['symbol']}")
    return done


def provision_chain_and_tenant(
    cfg: StackConfig, database_url: str, existing: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Tokens, seed and funding in one event loop: (tokens by symbol, seeded, what was funded)."""
    key = master_key(cfg)

    async def run():

        from paygent.db.engine import dispose_all

        w3 = async_web3(cfg.rpc_url)
        try:
            tokens = await ensure_tokens(w3, existing, database_url)
            seeded = await seed(database_url, key, existing, key_from=key_source(cfg))
            try:
                funded = await fund(w3, list(tokens.values()), seeded["wallets"])
            except Exception as exc:
                raise StackError(
                    f"funding the dev wallets failed on {cfg.rpc_url}: {type(exc).__name__}: {exc}"
                ) from exc
            return tokens, seeded, funded
        finally:
            await w3.provider.disconnect()
            await dispose_all()  # the in-flight count's engine, when a deployment was considered

    return asyncio.run(run())


def dev_document(
    cfg: StackConfig,
    *,
    database_url: str,
    migrate_database_url: str,
    redis_url: str,
    tokens: dict[str, dict[str, Any]],
    seeded: dict[str, Any],
) -> dict[str, Any]:
    """dev.json: `token` stays the configured token (USDC, first in `tokens`); `tokens` names every token."""
    token = next(iter(tokens.values()))
    return {
        "api_url": cfg.api_url,
        "x402_service_url": cfg.x402_service_url,
        "temporal_address": cfg.temporal_address,
        "temporal_ui_url": cfg.temporal_ui_url,
        "rpc_url": cfg.rpc_url,
        "chain_id": cfg.chain_id,
        "database_url": database_url,  # the application's role (row-level security holds for it)
        "migrate_database_url": migrate_database_url,  # the owner: migrations, seeding, `paygent audit verify`
        "redis_url": redis_url,
        "token": {k: token[k] for k in ("address", "symbol", "decimals")},
        "tokens": tokens,
        "tenant": seeded.get("tenant"),
        "users": seeded["users"],
        "wallets": seeded["wallets"],
        "agents": seeded.get("agents", {}),
        "confirmations": confirmations(),  # the dev chain's depth (PAYGENT_CONFIRMATIONS[_BY_CHAIN])
    }


def confirmations() -> int:
    """The depth the worker and API hold the dev chain's payments to: PAYGENT_CONFIRMATIONS_BY_CHAIN's entry, else
    PAYGENT_CONFIRMATIONS, else dev.json, else 1."""
    from paygent.settings import Settings

    settings = Settings()
    return settings.confirmations_for(settings.chain_id)
