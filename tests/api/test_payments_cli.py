"""The payments CLI as a person runs it (a subprocess with its own PAYGENT_HOME/dev.json, `--as NAME`): `pay` on
a payment that needs approval says who must approve and how many, shows approvals as they land, and exits 3
while still awaiting approval; `payments list|show|cancel`; `x402 fetch`; each hinted command works."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path

import pytest

from api.mcp.outcomes import approval_hint
from paygent.paths import REPO_ROOT
from tests.api.helpers import auth, new_recipient
from tests.api.temporal_ops import audit
from tests.approvals.helpers import approval, decide, until
from tests.x402.conftest import paid_service  # noqa: F401  (pytest fixture: the real x402 paid service)


@pytest.fixture
def home(tmp_path, dev, api_url) -> Path:
    """A PAYGENT_HOME whose dev.json points at the test API (the CLI reads keys and wallets from it)."""
    (tmp_path / "dev.json").write_text(json.dumps({"api_url": api_url, **dev}))
    return tmp_path


async def paygent(home: Path, *args: str, timeout: float = 90) -> tuple[int, str]:
    env = {**os.environ, "PAYGENT_HOME": str(home)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "paygent.cli", *args, cwd=REPO_ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode()


async def test_pay_waiting_for_approval_says_who_and_exits_3(home, http, dev):
    code, out = await paygent(home, "pay", "--as", "alice", "--to", new_recipient(), "--amount", "150", "--wait", "3")
    assert code == 3, out
    pid = out.split()[1].rstrip(":")
    assert f"payment {pid}: awaiting_approval" in out
    assert "needs 1 approval(s) from bob, carol, dave; 0 so far" in out
    assert f"an approver runs: paygent approve {pid} --as <approver>" in out
    assert "still awaiting approval after 3s" in out and f"paygent payments show {pid}" in out

    # the hinted commands work as printed
    code, shown = await paygent(home, "payments", "show", pid, "--as", "alice")
    assert code == 0 and f"payment {pid}: awaiting_approval" in shown and "needs 1 approval(s)" in shown, shown
    code, approved = await paygent(home, "approve", pid, "--as", "bob")
    assert code == 0, approved
    [line] = [x for x in approved.splitlines() if x.startswith("approved:")]
    assert line.endswith("approved, 1 of 1 approvals (bob)"), line  # said once, with who
    code, listed = await paygent(home, "payments", "list", "--as", "alice", "--limit", "5")
    assert code == 0 and pid in listed, listed


async def test_pay_shows_approvals_as_they_land_then_confirms(home, http, dev):
    key = uuid.uuid4().hex
    args = ("pay", "--as", "alice", "--to", new_recipient(), "--amount", "150", "--idempotency-key", key)
    waiting = asyncio.create_task(paygent(home, *args, "--wait", "60"))

    async def find() -> str | None:
        r = await http.get("/v1/payments?status=awaiting_approval&limit=50", headers=auth(dev))
        mine = [p for p in r.json()["items"] if p["to"] == args[4]]
        return mine[0]["id"] if mine else None

    pid = await until(find, bool)
    state = await until(lambda: approval(http, dev, pid, "bob"), lambda a: a is not None)
    await asyncio.sleep(1)  # the CLI has shown who must approve
    assert (await decide(http, dev, "bob", pid, "approve", {"operation_hash": state["operation_hash"]})).is_success
    code, out = await waiting
    assert code == 0, out
    assert "needs 1 approval(s) from bob, carol, dave" in out
    assert "approvals: 1 of 1 (bob)" in out
    assert out.count(": confirmed") == 1 and out.rstrip().splitlines()[-1].startswith(f"payment {pid}: confirmed 0x")

    # the same request again: answered from the first, its final state printed once
    code, again = await paygent(home, *args, "--wait", "10")
    assert code == 0 and again.count("confirmed") == 1, again


async def test_empty_list_says_so_and_a_cli_cancel_is_audited_cli(home, http, dev, db_engine):
    code, out = await paygent(home, "payments", "list", "--as", "bob")
    assert code == 0 and out.strip() == "no payments", out

    code, out = await paygent(home, "pay", "--as", "alice", "--to", new_recipient(), "--amount", "150", "--wait", "2")
    assert code == 3, out
    pid = out.split()[1].rstrip(":")
    code, out = await paygent(home, "payments", "cancel", pid, "--as", "alice", "--reason", "wrong invoice")
    assert code == 0 and f"payment {pid}: cancelled cancelled by alice via cli: wrong invoice" in out, out
    [(actor, _, data)] = await audit(db_engine, pid, "payment.cancelled")
    assert actor == "alice" and "via cli" in data["reason"]
    code, out = await paygent(home, "payments", "cancel", pid, "--as", "alice")
    assert code == 1 and "already cancelled" in out, out


def test_the_mcp_approval_hint_names_commands_that_exist():
    hint = approval_hint("PID", 1, ["bob"])
    assert "`paygent approve PID --as <approver>`" in hint and "`paygent approvals show PID --as <approver>`" in hint
    assert "paygent approvals approve" not in hint


async def test_every_command_the_mcp_hint_names_runs(home, http, dev):
    code, out = await paygent(home, "pay", "--as", "alice", "--to", new_recipient(), "--amount", "150", "--wait", "2")
    pid = out.split()[1].rstrip(":")
    hint = approval_hint(pid, 1, ["bob", "carol", "dave"])
    commands = [part for i, part in enumerate(hint.split("`")) if i % 2 == 1]
    assert len(commands) == 2, hint
    for command in commands:
        words = command.replace("<approver>", "carol").split()
        assert words[0] == "paygent"
        code, out = await paygent(home, *words[1:])
        assert code == 0, (command, out)


async def test_x402_fetch_pays_and_shows_the_answer(home, dev, paid_service):  # noqa: F811
    code, out = await paygent(home, "x402", "fetch", f"{paid_service.url}/weather", "--max", "0.05", "--as", "alice")
    assert code == 0, out
    assert "paid:     0.01 USDC to" in out and "answer:   HTTP 200" in out and "sunny" in out, out
    code, out = await paygent(home, "x402", "fetch", f"{paid_service.url}/overcharge", "--max", "0.05", "--as", "alice")
    assert code == 1 and "not paid:" in out and "refused" in out, out
