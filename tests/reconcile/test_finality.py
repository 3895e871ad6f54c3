"""A reorg deeper than the confirmation depth after settlement, when the payment can no longer land: its nonce
went to another transaction. The payment is reversed (compensating ledger entries), moves to `reorged_out` with
an audit row, a webhook event and a metric, and an open mismatch names it until an admin resolves it (API and
`paygent reconcile resolve`)."""

from __future__ import annotations

import asyncio
import uuid

import sqlalchemy as sa
from eth_utils import to_checksum_address
from typer.testing import CliRunner

from paygent.chain.token import fee_fields
from paygent.cli import app as cli_app
from paygent.db.accounts import load_signer
from paygent.db.schema import audit_log
from tests.api.helpers import auth, funded_wallet, new_recipient, token_balance, transfers_to
from tests.follower.reorg_helpers import confirm, in_pool, mine, pay_and_mine, reorg_stack, row, settle, until
from tests.reconcile.conftest import reconcile_once
from tests.reconcile.helpers import audit_actions, ledger_rows, reconciliation

DEPTH = 2


async def _take_nonce(db_engine, app_settings, w3, wallet: dict, nonce: int) -> str:
    """Another transaction of the wallet with the same nonce and higher fees: a no-op to itself."""
    fees = await fee_fields(w3)
    async with db_engine.connect() as conn:
        signer = await load_signer(conn, uuid.UUID(wallet["id"]), app_settings.master_key_bytes())
    signed = signer.sign_transaction(
        {
            "type": 2,
            "chainId": await w3.eth.chain_id,
            "nonce": nonce,
            "to": to_checksum_address(wallet["address"]),
            "value": 0,
            "gas": 21_000,
            "maxFeePerGas": fees["maxFeePerGas"] * 4,
            "maxPriorityFeePerGas": fees["maxPriorityFeePerGas"] * 4,
        }
    )
    return "0x" + bytes(await w3.eth.send_raw_transaction(signed.raw_transaction)).hex().removeprefix("0x")


async def test_a_settled_payment_reorged_out_is_reversed_and_an_admin_resolves_it(
    http, dev, db_engine, temporal_env, app_settings, webhook
):
    wallet = await funded_wallet(http, dev, app_settings, 20)
    to = new_recipient()
    async with reorg_stack(app_settings, temporal_env, DEPTH) as (settings, api, w3):
        pid, tx_hash, block = await pay_and_mine(api, dev, db_engine, w3, wallet["id"], to)
        await confirm(api, dev, w3, pid, DEPTH)
        await settle(http, dev, temporal_env, settings.task_queue, wallet["id"], block)
        nonce = (await row(db_engine, pid))["nonce"]
        rolled = int(await w3.eth.block_number) - block + 1  # the payment's block and all after it: deeper than N
        assert rolled >= DEPTH
        await w3.provider.make_request("anvil_rollback", [rolled])
        other = await _take_nonce(db_engine, app_settings, w3, wallet, nonce)
        await until(lambda: in_pool(w3, other), 10, "the other transaction in the pool")
        await mine(w3, DEPTH + 1)
        assert (await w3.eth.get_transaction_receipt(other))["status"] == 1  # the nonce is gone for good

        async def reversed_() -> bool:
            await reconcile_once(temporal_env.client, settings.task_queue)
            return (await row(db_engine, pid))["status"] == "reorged_out"

        await until(reversed_, 60, "the payment reversed", pause=0.2)
        view = await reconciliation(http, dev, wallet["id"])
    assert await transfers_to(app_settings.rpc_url, app_settings.token_address, to) == 0
    assert await token_balance(app_settings.rpc_url, app_settings.token_address, to) == 0
    entries = await ledger_rows(db_engine, pid)
    assert sorted((e["entry"], int(e["amount_atomic"])) for e in entries) == [
        ("payment", -1_250_000),
        ("payment", 1_250_000),
        ("reversal", -1_250_000),
        ("reversal", 1_250_000),
    ]
    assert "payment.reorged_out" in await audit_actions(db_engine, "payment", pid)
    shown = (await http.get(f"/v1/payments/{pid}", headers=auth(dev))).json()
    assert shown["status"] == "reorged_out" and shown["failure_reason"].startswith("ReorgedOut")
    assert [h["status"] for h in shown["status_history"] if h["status"]][-2:] == ["confirmed", "reorged_out"]
    usdc = [a for a in view["assets"] if a["asset"] == "USDC"][0]
    assert usdc["difference_atomic"] == "0"  # ledger == chain: the reversal made them agree
    (mismatch,) = [m for m in view["mismatches"] if m["payment_id"] == pid]
    assert mismatch["cause"] == "reorged_out" and mismatch["tx_hash"] == tx_hash
    # opened and audited as the reconciler opens any mismatch (paygent/db/reconcile_mismatches.py open_mismatch):
    # one `reconciliation.mismatch` row on the wallet, by the reconciler, naming the row it opened
    (opened,) = [a for a in await _wallet_audits(db_engine, wallet["id"]) if a.data.get("payment_id") == pid]
    assert (opened.action, opened.actor, opened.channel) == ("reconciliation.mismatch", "reconciler", "system")
    assert opened.data["mismatch_id"] == mismatch["id"] and opened.data["cause"] == "reorged_out"
    assert opened.data["tx_hash"] == tx_hash and opened.data["amount_atomic"] == "1250000"
    await until(lambda: _has_event(webhook, "payment.reorged_out", pid), 30, "the webhook event")
    await until(lambda: _has_event(webhook, "reconciliation.mismatch", pid), 30, "the mismatch's webhook event")
    events = [e for e in webhook.of_type("reconciliation.mismatch") if e["data"].get("payment_id") == pid]
    assert {e["data"]["mismatch_id"] for e in events} == {mismatch["id"]}  # a redelivery carries the same id

    # Resolving: admins only, a reason required, audited; a second time is 409; the list shows it resolved.
    url = f"/v1/wallets/{wallet['id']}/reconciliation/mismatches/{mismatch['id']}/resolve"
    assert (await http.post(url, json={"reason": "x"}, headers=auth(dev, "erin"))).status_code == 403
    missing = await http.post(url, json={}, headers=auth(dev))
    assert missing.status_code == 422 and missing.json()["error"]["field"] == "reason", missing.text
    gone = f"/v1/wallets/{wallet['id']}/reconciliation/mismatches/999999999/resolve"
    assert (await http.post(gone, json={"reason": "x"}, headers=auth(dev))).status_code == 404
    done = await http.post(url, json={"reason": "refunded by the recipient off-chain"}, headers=auth(dev))
    assert done.status_code == 200, done.text
    assert (await http.post(url, json={"reason": "again"}, headers=auth(dev))).status_code == 409
    view = await reconciliation(http, dev, wallet["id"])
    assert not [m for m in view["mismatches"] if m["payment_id"] == pid]
    (closed,) = [m for m in view["resolved_mismatches"] if m["id"] == mismatch["id"]]
    assert closed["resolution"] == "refunded by the recipient off-chain" and closed["resolved_by"]
    assert "reconciliation.mismatch_resolved" in await audit_actions(db_engine, "wallet", wallet["id"])


async def _wallet_audits(db_engine, wallet_id: str) -> list:
    async with db_engine.connect() as conn:
        rows = await conn.execute(
            sa.select(audit_log.c.action, audit_log.c.actor, audit_log.c.channel, audit_log.c.data)
            .where(audit_log.c.subject_type == "wallet", audit_log.c.subject_id == wallet_id)
            .order_by(audit_log.c.id)
        )
        return list(rows)


def _has_event(webhook, kind: str, pid: str):
    async def check() -> bool:
        return any(e["data"].get("payment_id") == pid for e in webhook.of_type(kind))

    return check()


async def test_paygent_reconcile_resolve_closes_a_mismatch(http, dev, api_url, db_engine, app_settings):
    """The CLI does what the route does (against the session's API), and names the route's refusals."""
    from paygent.db import finality

    wallet = await funded_wallet(http, dev, app_settings, 0)
    async with db_engine.begin() as conn:  # an open reorged_out mismatch, as the reconciler writes it
        import sqlalchemy as sa

        from paygent.db.reconcile_schema import reconcile_mismatches

        mid = await conn.scalar(
            sa.insert(reconcile_mismatches)
            .values(
                tenant_id=uuid.UUID(dev["tenant"]["id"]),
                wallet_id=uuid.UUID(wallet["id"]),
                asset="USDC",
                cause="reorged_out",
                cause_key=finality.reorg_key(uuid.uuid4()),
                amount_atomic=1,
                block_number=1,
                ledger_balance=0,
                chain_balance=0,
            )
            .returning(reconcile_mismatches.c.id)
        )
    key = dev["users"]["alice"]["api_key"]
    args = ["reconcile", "resolve", wallet["id"], str(mid), "--api-key", key, "--api-url", api_url]
    ok = await asyncio.to_thread(CliRunner().invoke, cli_app, [*args, "--reason", "checked by hand"])
    assert ok.exit_code == 0, ok.output
    assert f"mismatch {mid} (reorged_out) resolved" in ok.output
    again = await asyncio.to_thread(CliRunner().invoke, cli_app, [*args, "--reason", "again"])
    assert again.exit_code != 0 and "resolved already" in again.output
    view = await reconciliation(http, dev, wallet["id"])
    assert [m["id"] for m in view["resolved_mismatches"]] == [mid]
