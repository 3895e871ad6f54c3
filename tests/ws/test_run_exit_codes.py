"""`paygent run` exit codes a script can trust: 0 only when the run completed and every payment or swap it made
succeeded; 1 when a payment or swap was refused or the planner did not understand; 2 for usage and connection
problems. `--json` prints the final state."""

from __future__ import annotations

import json

from tests.agents.helpers import paygent_run
from tests.api.helpers import new_recipient


async def test_a_completed_run_whose_payment_succeeded_exits_0(tmp_path, dev, api_url):
    code, out, err = await paygent_run(tmp_path, dev, api_url, f"pay 0.5 USDC to {new_recipient()}", "--json")
    assert code == 0, (out, err)
    final = json.loads(out)
    assert final["exit_code"] == 0 and final["run"]["status"] == "completed"
    assert [(p["tool"], p["ok"], p["status"]) for p in final["payments"]] == [("pay", True, "confirmed")]


async def test_a_refused_payment_exits_1_although_the_run_completed(tmp_path, dev, api_url):
    # the shopper agent may pay at most 5 USDC a payment: the run completes, its payment is refused
    code, out, err = await paygent_run(tmp_path, dev, api_url, f"pay 6 USDC to {new_recipient()}", "--as", "shopper")
    assert code == 1, (out, err)
    assert "exit 1: pay did not succeed" in err and "refused" in err
    code, out, _ = await paygent_run(
        tmp_path, dev, api_url, f"pay 6 USDC to {new_recipient()}", "--as", "shopper", "--json"
    )
    final = json.loads(out)
    assert code == 1 and final["run"]["status"] == "completed" and final["payments"][0]["status"] == "refused"


async def test_a_request_the_planner_did_not_understand_exits_1(tmp_path, dev, api_url):
    code, out, err = await paygent_run(tmp_path, dev, api_url, "make me a sandwich")
    assert code == 1, (out, err)
    assert "offline planner" in out and "did not understand" in err


async def test_usage_and_connection_problems_exit_2(tmp_path, dev, api_url):
    code, _, err = await paygent_run(tmp_path, dev, api_url)
    assert code == 2 and "say what to do" in err
    code, _, err = await paygent_run(tmp_path, dev, "http://127.0.0.1:9", "balance")
    assert code == 2 and "cannot reach the API" in err


async def test_a_run_whose_swap_settled_exits_0_and_lists_it(tmp_path, dev, api_url):
    code, out, err = await paygent_run(tmp_path, dev, api_url, "swap 1 USDC to EURC", "--json")
    assert code == 0, (out, err)
    final = json.loads(out)
    assert final["exit_code"] == 0 and final["run"]["status"] == "completed"
    [swap] = final["payments"]
    assert (swap["tool"], swap["ok"], swap["status"]) == ("swap", True, "confirmed") and swap["payment_id"], swap


async def test_a_refused_swap_exits_1_although_the_run_completed(tmp_path, dev, api_url):
    # the shopper agent may spend at most 5 USDC a payment, a swap's input amount included
    code, out, err = await paygent_run(tmp_path, dev, api_url, "swap 6 USDC to EURC", "--as", "shopper")
    assert code == 1, (out, err)
    assert "exit 1: swap did not succeed: swap " in err and "refused" in err, err
    code, out, _ = await paygent_run(tmp_path, dev, api_url, "swap 6 USDC to EURC", "--as", "shopper", "--json")
    final = json.loads(out)
    assert code == 1 and final["run"]["status"] == "completed", final
    assert [(p["tool"], p["ok"], p["status"]) for p in final["payments"]] == [("swap", False, "refused")], final
