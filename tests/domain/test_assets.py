"""The asset registry (paygent/assets.py), pure: built from settings, keyed by chain id and symbol (any case),
contradictions refused at startup."""

from __future__ import annotations

import pytest

from paygent.assets import AssetConfigError, AssetRegistry, make_asset, parse_asset_setting
from paygent.settings import Settings

USDC = "0x" + "11" * 20
EURC = "0x" + "22" * 20
BASE_USDC = "0x" + "33" * 20


def test_the_configured_token_comes_first_then_the_others_by_chain():
    settings = Settings(
        token_address=USDC,
        chain_id=31337,
        assets={"eurc": {"address": EURC, "decimals": 6}, "8453": {"USDC": {"address": BASE_USDC, "decimals": 6}}},
    )
    registry = settings.asset_registry()
    assert registry.symbols(31337) == ["USDC", "EURC"] and registry.symbols(8453) == ["USDC"]
    eurc = registry.get(31337, "Eurc")
    assert eurc is not None and (eurc.symbol, eurc.decimals, eurc.unit.text(2_500_000)) == ("EURC", 6, "2.5 EURC")
    assert registry.get(31337, "eurc ") is None and registry.get(31337, 7) is None and registry.get(1, "USDC") is None
    assert registry.by_address(31337, EURC.upper().replace("0X", "0x")) == eurc
    assert registry.get(8453, "usdc").address == BASE_USDC
    assert registry.chain(31337).router is None  # no swaps configured
    assert settings.unit_of("EURC").symbol == "EURC" and settings.unit_of(None).symbol == "USDC"


def test_the_configured_token_wins_over_a_stale_entry_of_its_symbol():
    settings = Settings(token_address=USDC, assets={"USDC": {"address": BASE_USDC, "decimals": 6}})
    assert [a.address for a in settings.asset_registry().on_chain(settings.chain_id)] == [USDC]


def test_no_token_configured_means_only_the_listed_assets():
    assert Settings(token_address=None, assets={}).asset_registry().on_chain(31337) == []


@pytest.mark.parametrize(
    "raw,reason",
    [
        ({"EURC": {"address": "0x12", "decimals": 6}}, "not an address"),
        ({"EURC": {"address": EURC, "decimals": -1}}, "decimals"),
        ({"EURC": {"address": EURC, "decimals": True}}, "decimals"),
        ({"EU RC": {"address": EURC, "decimals": 6}}, "letters and digits"),
        ({"EURC": "0x"}, "must map to an object"),
        ({"31337": {"EURC": 6}}, "must map to"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(raw, reason):
    with pytest.raises(AssetConfigError, match=reason):
        parse_asset_setting(raw, 31337)
    with pytest.raises(ValueError, match="PAYGENT_ASSETS"):
        Settings(assets=raw)


def test_one_symbol_one_token_and_one_token_one_symbol_per_chain():
    usdc = make_asset(1, "USDC", USDC, 6)
    with pytest.raises(AssetConfigError, match="configured twice"):
        AssetRegistry.build(usdc, [make_asset(1, "usdc", EURC, 6)])
    with pytest.raises(AssetConfigError, match="as USDC and EURC"):
        AssetRegistry.build(usdc, [make_asset(1, "EURC", USDC, 6)])
    # the same token listed again, or on another chain, is fine
    registry = AssetRegistry.build(usdc, [make_asset(1, "USDC", USDC, 6), make_asset(2, "EURC", USDC, 6)])
    assert registry.symbols(1) == ["USDC"] and registry.symbols(2) == ["EURC"]


def test_the_confirmation_depth_is_per_chain_with_the_global_one_as_default(monkeypatch):
    monkeypatch.setenv("PAYGENT_CONFIRMATIONS", "2")
    monkeypatch.setenv("PAYGENT_CONFIRMATIONS_BY_CHAIN", '{"8453": 5}')
    settings = Settings(
        token_address=USDC, chain_id=31337, assets={"8453": {"USDC": {"address": BASE_USDC, "decimals": 6}}}
    )
    assert (settings.confirmations_for(31337), settings.confirmations_for(8453), settings.confirmations_for(25)) == (
        2,
        5,
        2,
    )
    registry = settings.asset_registry()
    assert [registry.chain(c).confirmations for c in (31337, 8453, 25)] == [2, 5, 2]  # 25: a chain with no assets


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ('{"8453": 0}', "chain 8453: 0 is not a depth 1..1000"),
        ('{"8453": 100000}', "chain 8453: 100000 is not a depth 1..1000"),
        ('{"0": 3}', "0 is not a chain id"),
        ('{"base": 3}', "confirmations_by_chain"),
    ],
)
def test_a_bad_depth_per_chain_stops_startup_naming_the_setting(monkeypatch, raw, reason):
    monkeypatch.setenv("PAYGENT_CONFIRMATIONS_BY_CHAIN", raw)
    with pytest.raises(ValueError, match=reason):
        Settings()
