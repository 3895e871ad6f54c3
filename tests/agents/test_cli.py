"""`paygent run`: a real subprocess that streams a run's events through the SSE endpoint, using dev.json."""

from __future__ import annotations

from tests.agents.helpers import paygent_run
from tests.api.helpers import new_recipient
from tests.fakes.llm_server import fail


async def test_paygent_run_streams_progress_and_ends_with_the_tx_hash(tmp_path, dev, api_url):
    to = new_recipient()
    code, out, err = await paygent_run(tmp_path, dev, api_url, f"pay 1.5 USDC to {to} for coffee")
    assert code == 0, (out, err)
    lines = out.splitlines()
    assert lines[0].startswith("run ") and "started" in lines[0]
    assert any(line.startswith("  running pay") and to in line for line in lines)
    assert any(line.startswith("  pay done") for line in lines)
    assert f"Payment of 1.5 USDC to {to}: confirmed. Transaction: 0x" in out


async def test_paygent_run_exits_non_zero_when_the_run_fails(tmp_path, dev, llm_stack, fake_llm):
    fake_llm.script("anthropic", fail(401, message="bad key"))
    code, out, err = await paygent_run(tmp_path, dev, str(llm_stack.http.base_url), "balance")
    assert code == 1, (out, err)
    assert "run failed: LLM step 1 failed" in err and "HTTP 401" in err
    code, _, err = await paygent_run(tmp_path, dev, str(llm_stack.http.base_url), "balance", "--as", "mallory")
    assert code == 2 and "no user 'mallory'" in err
