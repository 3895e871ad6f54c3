"""One set of payment input rules for every door: the HTTP API and an agent run's payment preparation (the real
activity, against the real database) refuse and accept the same inputs, naming the same field; amounts at the
extremes end cleanly."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import pytest
from temporalio.testing import ActivityEnvironment

from activities.agent_payments import AgentPaymentActivities
from paygent.db.engine import get_engine
from paygent.db.tenancy import tenant_scope
from paygent.llm.types import ToolCall
from tests.api.helpers import auth, create, new_recipient, payment_body, wait_final
from tests.approvals.helpers import approval, decide, payment, tiers, until, wallet_with_policy
from workflows import agent_types as at

SOMEONE = "0x52908400098527886E0F7030069857D2E4169EE7"
TREASURY, TOKEN = "treasury's own address", "the token contract"

# (to, amount, asset) -> the field refused, or None when the payment is accepted
CASES = [
    (SOMEONE, "1.5", "USDC", None),
    (SOMEONE.lower(), "0.000001", "usdc", None),  # any case of the address and the symbol
    (SOMEONE, "\uff11", "USDC", "amount"),  # fullwidth 1
    (SOMEONE, "\u0661", "USDC", "amount"),  # Arabic-Indic 1
    (SOMEONE, "1.\u0665", "USDC", "amount"),
    (SOMEONE, 0.3, "USDC", "amount"),  # a JSON number
    (SOMEONE, 5, "USDC", "amount"),
    (SOMEONE, "-1", "USDC", "amount"),
    (SOMEONE, "1e3", "USDC", "amount"),
    (SOMEONE, "0", "USDC", "amount"),
    (SOMEONE, "0.0000001", "USDC", "amount"),
    (SOMEONE, str(2**256 // 10**6 + 1), "USDC", "amount"),  # over uint256 in atomic units
    (SOMEONE, "1" * 5000, "USDC", "amount"),
    (SOMEONE, "1", "DAI", "asset"),
    ("0x123", "1", "USDC", "to"),
    ("0x" + "0" * 40, "1", "USDC", "to"),
    (TREASURY, "1", "USDC", "to"),
    (TOKEN, "1", "USDC", "to"),
]


def _to(to: str, dev, app_settings) -> str:
    return {TREASURY: dev["wallets"]["treasury"]["address"], TOKEN: app_settings.token_address}.get(to, to)


async def _agent_prepares(app_settings, temporal_env, dev, args: dict) -> at.PreparedPayment:
    activities = AgentPaymentActivities(get_engine(app_settings.database_url), temporal_env.client, app_settings)
    alice = dev["users"]["alice"]
    with tenant_scope(
        dev["tenant"]["id"]
    ):  # as the worker's interceptor scopes every activity (workers/tenant_context)
        return await ActivityEnvironment().run(
            activities.prepare_payment,
            at.PreparePayment(
                run_id=str(uuid.uuid4()),
                tenant_id=dev["tenant"]["id"],
                user_id=alice["id"],
                user_name="alice",
                wallet_id=dev["wallets"]["treasury"]["id"],
                call=ToolCall(id="call-1", name="pay", arguments=args),
            ),
        )


@pytest.mark.parametrize("to,amount,asset,refused", CASES, ids=[str(i) for i in range(len(CASES))])
async def test_http_and_agent_runs_refuse_and_accept_the_same_inputs(
    http, dev, app_settings, temporal_env, worker, to, amount, asset, refused
):
    args = {"to": _to(to, dev, app_settings), "amount": amount, "asset": asset}
    r = await create(http, dev, payment_body(dev, **args, memo="agreement"))
    prepared = await _agent_prepares(app_settings, temporal_env, dev, args)
    if refused is None:
        assert r.status_code == 202, r.text
        row = (await http.get(f"/v1/payments/{r.json()['id']}", headers=auth(dev))).json()
        assert prepared.error is None and prepared.request is not None, prepared.error
        assert (prepared.request.to, prepared.request.amount_atomic) == (row["to"], int(row["amount_atomic"]))
        assert prepared.request.asset == row["asset"] == "USDC"
        await wait_final(http, dev, row["id"])
    else:
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["field"] == refused, error
        assert prepared.request is None and prepared.error is not None
        assert prepared.error.startswith(f"invalid arguments for pay: {refused}: "), prepared.error
        # the same reason, word for word, except pydantic's wording for a value of the wrong type
        if not isinstance(amount, int | float):
            assert prepared.error.endswith(error["message"]), (prepared.error, error["message"])


async def test_a_json_number_is_refused_with_its_string_form(http, dev):
    r = await create(http, dev, payment_body(dev, new_recipient(), amount=0.3))
    assert r.status_code == 422
    assert r.json()["error"] == {
        "code": "invalid_input",
        "field": "amount",
        "message": 'amount: send the amount as a decimal string, "0.3", not as the number 0.3 (numbers may be rounded)',
    }


@pytest.mark.parametrize("atomic", [2**63, 2**256 - 1])
async def test_amounts_past_int64_are_carried_to_a_clean_end(http, dev, app_settings, atomic):
    """The edge takes any uint256 amount, and every step carries it: the payment awaits approval with the exact
    amount, is approved, then fails cleanly on chain for want of funds (never a failing workflow task)."""
    whole, frac = divmod(atomic, 10**app_settings.token_decimals)
    amount = f"{whole}.{frac:06d}".rstrip("0").rstrip(".")
    wallet = await wallet_with_policy(http, dev, app_settings, tiers(timelock=0), usdc=1)  # 2 of 3 above 100
    r = await create(http, dev, payment_body(dev, new_recipient(), amount=amount, wallet_id=wallet["id"]))
    assert r.status_code == 202, r.text
    pid = r.json()["id"]
    await until(lambda: payment(http, dev, pid), lambda p: p["status"] == "awaiting_approval")
    state = await until(lambda: approval(http, dev, pid, "bob"), lambda a: a is not None)
    assert state["operation"]["amount_atomic"] == str(atomic), state["operation"]
    for user in state["awaiting"]:
        answer = await decide(http, dev, user, pid, "approve", {"operation_hash": state["operation_hash"]})
        if answer.json().get("status") != "pending":
            break
    final = await wait_final(http, dev, pid, timeout=60)
    assert final["amount_atomic"] == str(atomic) and final["amount"] == amount
    assert final["status"] == "failed", final
    assert "exceeds balance" in final["failure_reason"], final  # the chain's answer, not a data error


@pytest.mark.parametrize(
    "amount,to,says",
    [("\uff11", None, "amount"), ("\u0661", None, "amount"), ("1", "treasury", "to: is the paying wallet's own")],
)
async def test_the_cli_door_refuses_the_same(api_url, dev, amount, to, says):
    """`paygent pay` as an operator runs it: exit 1 with the API's reason; nothing is paid."""
    recipient = dev["wallets"]["treasury"]["address"] if to else new_recipient()
    cmd = [sys.executable, "-m", "paygent.cli", "pay", "--to", recipient, "--amount", amount, "--wait", "0"]
    cmd += ["--wallet", dev["wallets"]["treasury"]["id"]]
    key = dev["users"]["alice"]["api_key"]
    done = await asyncio.to_thread(
        subprocess.run, [*cmd, "--api-url", api_url, "--api-key", key], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0 and says in done.stderr + done.stdout, (done.stdout, done.stderr)
    assert "payment " not in done.stdout  # nothing was started
