"""The assets Paygent knows, per chain: symbol -> (token address, decimals). Pure: no I/O.

Built from the settings (`Settings.asset_registry()`): the configured token (`PAYGENT_TOKEN_ADDRESS`, its symbol
and decimals; the stack's USDC) plus the other tokens of `PAYGENT_ASSETS` or dev.json's `tokens` (the stack's
EURC). Every door that names an asset looks it up here: payments (paygent/payment_input.py), spending limits,
wallet balances, the reconciler (one comparison per wallet and asset).

Symbols are compared upper-case everywhere (`norm_symbol`): `eurc` names EURC, and rows, limits and ledger
entries record the registry's spelling. One symbol names one token per chain, and one token has one symbol.

Per chain there is also the place for what swaps need (issue 21): the Uniswap V2 router and factory addresses,
from the settings like the tokens (`ChainAssets.router`, `ChainAssets.factory`; None: no swaps on that chain),
and the chain's confirmation depth (`ChainAssets.confirmations`: PAYGENT_CONFIRMATIONS_BY_CHAIN, else
PAYGENT_CONFIRMATIONS).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eth_utils import is_address, to_checksum_address

from paygent.domain.money import Unit, norm_symbol

__all__ = ["Asset", "AssetConfigError", "AssetRegistry", "ChainAssets", "make_asset", "norm_symbol"]

MAX_DECIMALS = 36


@dataclass(frozen=True)
class Asset:
    """One token on one chain."""

    chain_id: int
    symbol: str  # norm_symbol'd
    address: str  # checksummed
    decimals: int

    @property
    def unit(self) -> Unit:
        """How its amounts read in messages ("7 EURC")."""
        return Unit(self.decimals, self.symbol)


@dataclass(frozen=True)
class ChainAssets:
    """What one chain offers: its tokens by symbol (the configured token first) and, for swaps, its router."""

    chain_id: int
    assets: Mapping[str, Asset] = field(default_factory=dict)
    router: str | None = None  # Uniswap V2 router02 (swaps, issue 21); None: no swaps on this chain
    factory: str | None = None  # Uniswap V2 factory
    confirmations: int = 1  # the depth a receipt must reach before it settles (Settings.confirmations_for)


class AssetConfigError(ValueError):
    """The asset settings contradict themselves (a symbol twice with two addresses, a bad address...)."""


def make_asset(chain_id: int, symbol: object, address: object, decimals: object) -> Asset:
    """A checked Asset, or AssetConfigError naming what is wrong."""
    if not isinstance(symbol, str) or not (symbol.isascii() and symbol.isalnum()):
        raise AssetConfigError(f"asset symbol {symbol!r}: letters and digits only")
    sym = norm_symbol(symbol)
    if not isinstance(address, str) or not is_address(address):
        raise AssetConfigError(f"asset {sym}: {address!r} is not an address")
    if isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= MAX_DECIMALS:
        raise AssetConfigError(f"asset {sym}: decimals must be an integer 0..{MAX_DECIMALS}")
    return Asset(chain_id=chain_id, symbol=sym, address=to_checksum_address(address), decimals=decimals)


class AssetRegistry:
    """Assets keyed by (chain id, symbol); lookups by symbol in any case, and by token address."""

    def __init__(self, chains: Iterable[ChainAssets] = (), depth: Callable[[int], int] = lambda chain_id: 1) -> None:
        self._chains = {c.chain_id: c for c in chains}
        self._depth = depth  # a chain with no assets still has its confirmation depth

    @classmethod
    def build(
        cls,
        configured: Asset | None,
        others: Iterable[Asset],
        swaps: Mapping[int, tuple[str | None, str | None]] | None = None,
        depth: Callable[[int], int] = lambda chain_id: 1,
    ) -> AssetRegistry:
        """The configured token first, then `others` (the same token listed again is fine; a symbol or an address
        that means two different things on one chain is AssetConfigError)."""
        by_chain: dict[int, dict[str, Asset]] = {}
        for asset in ([configured] if configured else []) + list(others):
            assets = by_chain.setdefault(asset.chain_id, {})
            same = assets.get(asset.symbol)
            if same is not None:
                if same.address != asset.address or same.decimals != asset.decimals:
                    raise AssetConfigError(
                        f"asset {asset.symbol} on chain {asset.chain_id} is configured twice: {same.address} and "
                        f"{asset.address}"
                    )
                continue
            clash = next((a for a in assets.values() if a.address == asset.address), None)
            if clash is not None:
                raise AssetConfigError(
                    f"token {asset.address} on chain {asset.chain_id} is configured as {clash.symbol} and "
                    f"{asset.symbol}"
                )
            assets[asset.symbol] = asset
        swaps = swaps or {}
        chains = [
            ChainAssets(chain_id, assets, *swaps.get(chain_id, (None, None)), confirmations=depth(chain_id))
            for chain_id, assets in by_chain.items()
        ]
        return cls(chains, depth)

    def chain(self, chain_id: int) -> ChainAssets:
        return self._chains.get(chain_id) or ChainAssets(chain_id, confirmations=self._depth(chain_id))

    def on_chain(self, chain_id: int) -> list[Asset]:
        """Every asset of the chain, the configured token first."""
        return list(self.chain(chain_id).assets.values())

    def symbols(self, chain_id: int) -> list[str]:
        return list(self.chain(chain_id).assets)

    def get(self, chain_id: int, symbol: object) -> Asset | None:
        """The asset named `symbol` (any case) on the chain, else None."""
        if not isinstance(symbol, str):
            return None
        return self.chain(chain_id).assets.get(norm_symbol(symbol))

    def by_address(self, chain_id: int, address: str) -> Asset | None:
        return next((a for a in self.on_chain(chain_id) if a.address.lower() == address.lower()), None)


def parse_asset_setting(raw: Mapping[str, Any], default_chain_id: int) -> list[Asset]:
    """`PAYGENT_ASSETS` (JSON) or dev.json's `tokens`: either {symbol: {address, decimals}} for the configured
    chain, or {chain id: {symbol: {address, decimals}}} for any chain (keys of digits are chain ids)."""
    out: list[Asset] = []
    for key, value in raw.items():
        if not isinstance(value, Mapping):
            raise AssetConfigError(f"assets: {key!r} must map to an object")
        if str(key).isdigit():
            for symbol, token in value.items():
                if not isinstance(token, Mapping):
                    raise AssetConfigError(f"assets: chain {key}: {symbol!r} must map to {{address, decimals}}")
                out.append(make_asset(int(key), symbol, token.get("address"), token.get("decimals")))
        else:
            out.append(make_asset(default_chain_id, key, value.get("address"), value.get("decimals")))
    return out
