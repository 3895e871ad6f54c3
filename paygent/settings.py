"""Settings from the environment, then `.paygent/dev.json` (written by `paygent stack up`), then defaults.

Secrets (`master_key`, LLM keys) are `SecretStr`: they never appear in a repr, a log line or an error.
"""

from __future__ import annotations

import ipaddress
import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from paygent.domain.money import Unit

if TYPE_CHECKING:
    from paygent.assets import AssetRegistry
from paygent.paths import dev_json_path, state_dir


class DevJsonSource(PydanticBaseSettingsSource):
    """Reads what `paygent stack up` wrote for clients; lower priority than the environment."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = dev_json_path()
        if not path.exists():
            return {}
        dev = json.loads(path.read_text())
        out: dict[str, Any] = {}
        for key in (
            "api_url",
            "temporal_address",
            "temporal_ui_url",
            "rpc_url",
            "chain_id",
            "database_url",
            "migrate_database_url",
            "redis_url",
            "confirmations",
        ):
            if key in dev:
                out[key] = dev[key]
        token = dev.get("token") or {}
        if "address" in token:
            out["token_address"] = token["address"]
            out["token_symbol"] = token.get("symbol", "USDC")
            out["token_decimals"] = token.get("decimals", 6)
        tokens = dev.get("tokens") or {}  # every token `stack up` deployed, by symbol (paygent/assets.py)
        if tokens:
            out["assets"] = {sym: {"address": t["address"], "decimals": t["decimals"]} for sym, t in tokens.items()}
        swap = dev.get("swap") or {}
        if "router" in swap:
            out["swap_router_address"] = swap["router"]
            out["swap_factory_address"] = swap.get("factory")
            out["swap_tokens"] = swap.get("tokens") or {}
        return out


MAX_CONFIRMATIONS = 1_000  # deeper than any chain's finality; a typo of a few zeros fails at startup


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYGENT_", extra="ignore")

    database_url: str = Field(
        "postgresql+asyncpg://postgres@127.0.0.1:5432/paygent",
        validation_alias=AliasChoices("PAYGENT_DATABASE_URL", "DATABASE_URL", "database_url"),
    )
    # Migrations run as the tables' owner; the API and the worker connect as DATABASE_URL's role, which is
    # neither superuser nor owner, so row-level security holds for it (paygent/db/roles.py). Unset: the same URL.
    migrate_database_url: str | None = Field(
        None,
        validation_alias=AliasChoices("PAYGENT_MIGRATE_DATABASE_URL", "migrate_database_url"),
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("PAYGENT_REDIS_URL", "REDIS_URL", "redis_url"),
    )
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui_url: str = "http://127.0.0.1:8233"
    task_queue: str = "paygent"
    api_url: str = "http://127.0.0.1:8000"

    rpc_url: str = "http://127.0.0.1:8545"
    chain_id: int = 31337
    token_address: str | None = None
    token_symbol: str = "USDC"
    token_decimals: int = 6
    # The other tokens on top of the configured one (paygent/assets.py): JSON {"EURC": {"address": "0x..",
    # "decimals": 6}} for this chain, or {"8453": {"EURC": {...}}} keyed by chain id; from dev.json's `tokens`
    # when unset. Validated at startup.
    assets: dict[str, Any] = Field(default_factory=dict)
    # Swaps (issue 21): the Uniswap V2 router and factory (below) go to `asset_registry` for this chain.
    # The depth a payment's receipt must reach before it settles (the follower, the reconciler's safe head), on
    # every chain; `confirmations_by_chain` overrides it per chain: JSON {"8453": 3, "25": 12}. The depth a
    # chain's worker waits for is `confirmations_for(its chain)`, kept in the asset registry's ChainAssets.
    confirmations: int = Field(1, ge=1, le=MAX_CONFIRMATIONS)
    confirmations_by_chain: dict[int, int] = Field(default_factory=dict)
    transfer_gas_limit: int = 100_000
    # Swaps (issue 21): a Uniswap V2 router and its factory on this chain (dev.json's `swap` on the dev stack; a
    # real fork's addresses otherwise), the tokens a swap may name beside the configured token (symbol ->
    # {address, decimals}), and the guards' policy: the most slippage a caller may ask for, the price-impact cap,
    # the deadline (at most 300 s), and the gas limits of the approve and swap transactions.
    swap_router_address: str | None = None
    swap_factory_address: str | None = None
    swap_tokens: dict[str, dict[str, Any]] = Field(default_factory=dict)
    swap_max_slippage_bps: int = 100
    swap_max_price_impact_bps: int = 100
    swap_deadline_seconds: int = 120
    swap_gas_limit: int = 250_000
    # a transaction not mined this long after its latest attempt is replaced (same nonce, fees +12.5%)
    replace_after_seconds: int = 60
    # the receipt wait gives up after this long; the payment stays `submitted` and the reconciler settles it
    receipt_wait_seconds: int = 3 * 3600
    # the reconcile schedule's interval, and the widest block range one eth_getLogs call asks for
    reconcile_interval_seconds: int = 15
    reconcile_batch_blocks: int = 2_000
    # where a wallet's first scan starts: on a chain with a long history, the block Paygent was deployed at
    reconcile_start_block: int = 0
    # the reconcile tick ends rows whose workflow closed (terminated) at least this long ago (activities/orphans.py)
    orphan_grace_seconds: int = 60

    master_key: SecretStr | None = None

    anthropic_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("PAYGENT_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY")
    )
    anthropic_base_url: str | None = None
    anthropic_model: str = "claude-sonnet-5-5"
    openai_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("PAYGENT_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    openai_base_url: str | None = None
    openai_model: str = "gpt-4.1-mini"

    # Rate limits (api/ratelimit.py), in the `limits` notation; the prefix keeps deployments sharing a Redis apart
    # payments run their short steps as local activities (workflows/payment.py): 3 server round trips, not 9.
    # One bounded attempt each (workflows/activity_options.py LOCAL_ATTEMPT), then a regular activity.
    local_steps: bool = True
    # Admission control (api/admission.py): past this many payments in flight (pending, signing or submitted; not
    # those waiting for approvals), POST /v1/payments and MCP pay answer 429 with Retry-After. 0: no limit.
    max_payments_in_flight: int = Field(400, ge=0)
    admission_retry_after_seconds: float = Field(2.0, gt=0)
    # Workflows in the SDK's sandbox (re-executes the workflow modules for every new run) or not (determinism
    # then kept by the replay tests and tests/workflows/test_determinism_lint.py); workers/main.py
    workflow_sandbox: bool = False
    worker_processes: int = Field(1, ge=1)  # `paygent worker` runs this many processes (issue 11 figures)
    # failed authentications per client address, and per presented key: past either, further failures get 429
    # (valid keys are still served) until the window passes
    rate_limit_auth_failures: str = "5/minute"
    rate_limit_key_failures: str = "5/minute"
    rate_limit_per_key: str = "6000/minute"
    rate_limit_per_address: str = "12000/minute"
    rate_limit_prefix: str = "paygent-rl"

    # Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto the API believes (comma-separated IPs or CIDRs).
    # Empty: none, and the client address is the socket's peer. Rate limits, lockouts and audit rows all use the
    # address this yields, so a proxy not named here cannot be impersonated by a forged header.
    trusted_proxies: str = ""

    # Destinations exempt from the egress policy (paygent/egress.py): comma-separated host:port or CIDR.
    egress_allow: str = ""
    # Approval decisions sent as raw Temporal Signals: accepted (audited with channel `temporal`) or refused.
    signal_decisions: bool = True

    max_body_bytes: int = 16_384
    # the worker's Temporal SDK metrics (Prometheus, GET /metrics) listen here; empty: off
    worker_metrics_address: str = "127.0.0.1:9464"
    # on SIGTERM the worker stops polling at once and gives running activities this long to finish
    worker_drain_seconds: int = 15
    # What one worker process takes on at once (workers/main.py). Workflow tasks run on one core: more than a
    # handful in a process only queue inside it, where they can outlive the workflow task timeout; left in the
    # server's queue they cost nothing. The cache holds every payment in flight, so none is replayed from its
    # history on each task. `worker_runs` splits workflow tasks (with their local activities) from regular
    # activities, e.g. one process of each, so receipt waits and signing never delay a workflow task.
    worker_workflow_task_slots: int = Field(10, ge=1)
    worker_activity_slots: int = Field(200, ge=1)
    worker_local_activity_slots: int = Field(30, ge=1)  # at most the database pool (paygent/db/engine.py)
    # Postgres connections per process (API or worker): kept `db_pool_size`, plus up to `db_pool_overflow` in a
    # burst. Every API replica and worker process has its own pool, so a fleet needs processes x (size +
    # overflow) below Postgres's max_connections (100 by default), or a pooler in between (docs/scaling.md).
    db_pool_size: int = Field(20, ge=1)
    db_pool_overflow: int = Field(10, ge=0)
    worker_workflow_cache: int = Field(4000, ge=0)
    worker_runs: Literal["all", "workflows", "activities"] = "all"
    log_level: str = "INFO"

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, value: str) -> str:
        for entry in (e.strip() for e in value.split(",")):
            if entry:
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    raise ValueError(f"PAYGENT_TRUSTED_PROXIES: {entry!r} is not an IP address or CIDR") from None
        return value

    def trusted_proxy_list(self) -> list[str]:
        return [e.strip() for e in self.trusted_proxies.split(",") if e.strip()]

    @field_validator("egress_allow")
    @classmethod
    def _egress_allow(cls, value: str) -> str:
        from paygent.egress import parse_exemptions

        parse_exemptions(value)  # a typo fails at startup, not at the first webhook
        return value

    @field_validator("confirmations_by_chain")
    @classmethod
    def _confirmations_by_chain(cls, value: dict[int, int]) -> dict[int, int]:
        for chain_id, depth in value.items():
            if chain_id <= 0:
                raise ValueError(f"PAYGENT_CONFIRMATIONS_BY_CHAIN: {chain_id} is not a chain id")
            if not 1 <= depth <= MAX_CONFIRMATIONS:
                raise ValueError(
                    f"PAYGENT_CONFIRMATIONS_BY_CHAIN: chain {chain_id}: {depth} is not a depth 1..{MAX_CONFIRMATIONS}"
                )
        return value

    def confirmations_for(self, chain_id: int) -> int:
        """The confirmation depth on `chain_id`: its entry in `confirmations_by_chain`, else `confirmations`."""
        return self.confirmations_by_chain.get(chain_id, self.confirmations)

    @field_validator("assets")
    @classmethod
    def _assets(cls, value: dict[str, Any]) -> dict[str, Any]:
        from paygent.assets import AssetConfigError, parse_asset_setting

        try:
            parse_asset_setting(value, 0)  # a typo fails at startup, not at the first payment
        except AssetConfigError as exc:
            raise ValueError(f"PAYGENT_ASSETS: {exc}") from None
        return value

    def asset_registry(self) -> AssetRegistry:
        """Every asset this server knows, per chain (paygent/assets.py): the configured token first, then
        `assets`. A token of `assets` under the configured token's symbol gives way to the configured token (a
        dev.json written for another deployment never overrides PAYGENT_TOKEN_ADDRESS)."""
        from paygent.assets import AssetRegistry, make_asset, norm_symbol, parse_asset_setting

        configured = (
            make_asset(self.chain_id, self.token_symbol, self.token_address, self.token_decimals)
            if self.token_address
            else None
        )
        others = [
            a
            for a in parse_asset_setting(self.assets, self.chain_id)
            if configured is None
            or not (a.chain_id == configured.chain_id and a.symbol == norm_symbol(configured.symbol))
        ]
        swaps = {self.chain_id: (self.swap_router_address, self.swap_factory_address)}
        return AssetRegistry.build(configured, others, swaps, depth=self.confirmations_for)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ):
        return (init_settings, env_settings, DevJsonSource(settings_cls), file_secret_settings)

    @property
    def unit(self) -> Unit:
        """How the configured token's amounts read in messages ("7 USDC")."""
        return Unit(self.token_decimals, self.token_symbol)

    def unit_of(self, symbol: str | None) -> Unit:
        """How an asset's amounts read ("7 EURC"): a registered asset on this chain by its symbol; None (a rule
        for every asset) or a symbol the registry does not know (a row from another configuration) reads in the
        configured token's decimals."""
        asset = self.asset_registry().get(self.chain_id, symbol) if symbol is not None else None
        if asset is not None:
            return asset.unit
        return self.unit if symbol is None else Unit(self.token_decimals, symbol)

    @property
    def token(self) -> tuple[str | None, str]:
        """(address, symbol) of the configured token."""
        return self.token_address, self.token_symbol

    def owner_database_url(self) -> str:
        """Where migrations, seeding and `paygent audit verify` connect: the tables' owner."""
        return self.migrate_database_url or self.database_url

    def master_key_bytes(self) -> bytes:
        """The 32-byte key that encrypts wallet keys at rest: from settings, else `.paygent/master.key`."""
        from paygent.crypto import decode_master_key

        if self.master_key is not None:
            return decode_master_key(self.master_key.get_secret_value())
        path = state_dir() / "master.key"
        if path.exists():
            return decode_master_key(path.read_text().strip())
        raise RuntimeError("no master key: set PAYGENT_MASTER_KEY or run `paygent stack up`")


@lru_cache
def get_settings() -> Settings:
    return Settings()
