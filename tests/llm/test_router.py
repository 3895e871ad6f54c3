"""Provider choice and fallback, through the real SDKs against the fake server."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from paygent.llm import router
from paygent.llm.errors import MalformedToolCall, PermanentLlmError, RetryableLlmError
from paygent.llm.types import ChatMessage, LlmRequest, ToolSpec
from tests.fakes.llm_server import ANTHROPIC_TEST_KEY, FakeLlmServer, fail, malformed, text, tool

ADDRESS = "0x" + "cd" * 20


def ask(tools: list[ToolSpec], words: str = "pay 5 USDC to bob") -> LlmRequest:
    return LlmRequest(messages=[ChatMessage.user(words)], tools=tools)


async def test_anthropic_answers_when_healthy(fake_llm: FakeLlmServer, product_tools) -> None:
    fake_llm.script("anthropic", tool("wallet_balance"))
    response = await router.complete(ask(product_tools, "balance"), fake_llm.settings())
    assert response.provider == "anthropic" and response.fallback_from is None
    assert [c.name for c in response.tool_calls] == ["wallet_balance"]
    assert len(fake_llm.requests("anthropic")) == 1 and fake_llm.requests("openai") == []


async def test_overloaded_anthropic_falls_back_to_openai(fake_llm: FakeLlmServer, product_tools) -> None:
    fake_llm.script("anthropic", fail(529, message="Overloaded"))
    fake_llm.script("openai", tool("pay", to=ADDRESS, amount="5", asset="USDC", memo="bob"))

    response = await router.complete(ask(product_tools), fake_llm.settings())

    assert response.provider == "openai" and response.fallback_from == "anthropic"
    assert response.fallback_reason is not None
    assert "529" in response.fallback_reason and "overloaded" in response.fallback_reason.lower()
    assert response.tool_calls[0].arguments == {"to": ADDRESS, "amount": "5", "asset": "USDC", "memo": "bob"}
    assert len(fake_llm.requests("anthropic")) == 1 and len(fake_llm.requests("openai")) == 1


async def test_malformed_tool_call_falls_back(fake_llm: FakeLlmServer, product_tools) -> None:
    fake_llm.script("anthropic", malformed("pay", "to=bob amount=5"))
    fake_llm.script("openai", tool("pay", to=ADDRESS, amount="5", asset="USDC", memo="bob"))
    response = await router.complete(ask(product_tools), fake_llm.settings())
    assert response.provider == "openai" and response.fallback_from == "anthropic"
    assert response.fallback_reason is not None and "malformed tool call" in response.fallback_reason


async def test_unauthorised_anthropic_is_permanent_without_fallback(fake_llm: FakeLlmServer, product_tools) -> None:
    fake_llm.script("anthropic", fail(401, message="invalid x-api-key"))
    fake_llm.script("openai", text("should never be asked"))
    with pytest.raises(PermanentLlmError) as caught:
        await router.complete(ask(product_tools), fake_llm.settings())
    assert "anthropic answered HTTP 401" in str(caught.value)
    assert ANTHROPIC_TEST_KEY not in str(caught.value)
    assert fake_llm.requests("openai") == [] and fake_llm.remaining("openai") == 1


async def test_both_failing_is_retryable_with_longest_delay(fake_llm: FakeLlmServer, product_tools) -> None:
    fake_llm.script("anthropic", fail(529, retry_after="2"))
    fake_llm.script("openai", fail(429, retry_after="5"))
    with pytest.raises(RetryableLlmError) as caught:
        await router.complete(ask(product_tools), fake_llm.settings())
    message = str(caught.value)
    assert "anthropic answered HTTP 529" in message and "openai answered HTTP 429" in message
    assert caught.value.retry_after == 5.0


async def test_fallback_refused_permanently_keeps_the_step_retryable(fake_llm: FakeLlmServer, product_tools) -> None:
    fake_llm.script("anthropic", fail(500))
    fake_llm.script("openai", fail(401, message="Incorrect API key provided"))
    with pytest.raises(RetryableLlmError, match="fallback failed permanently: openai answered HTTP 401"):
        await router.complete(ask(product_tools), fake_llm.settings())


async def test_only_anthropic_key_raises_its_retryable_error(fake_llm: FakeLlmServer, product_tools) -> None:
    fake_llm.script("anthropic", malformed("pay", [1]))
    with pytest.raises(MalformedToolCall):
        await router.complete(ask(product_tools), fake_llm.settings(openai=False))
    assert fake_llm.requests("openai") == []


async def test_only_openai_key_uses_openai(fake_llm: FakeLlmServer, product_tools) -> None:
    fake_llm.script("openai", text("hello"))
    response = await router.complete(ask(product_tools, "hi"), fake_llm.settings(anthropic=False))
    assert response.provider == "openai" and response.text == "hello" and response.fallback_from is None
    assert fake_llm.requests("anthropic") == []


async def test_no_keys_uses_offline_planner(fake_llm: FakeLlmServer, product_tools) -> None:
    settings = fake_llm.settings(anthropic=False, openai=False)
    response = await router.complete(ask(product_tools, f"pay 5 USDC to {ADDRESS} for rent"), settings)
    assert response.provider == "offline"
    assert response.tool_calls[0].arguments == {"to": ADDRESS, "amount": "5", "asset": "USDC", "memo": "rent"}
    assert fake_llm.requests() == []


async def test_blank_key_counts_as_no_key(fake_llm: FakeLlmServer, product_tools) -> None:
    settings = fake_llm.settings(anthropic_api_key=SecretStr("  "), openai=False)
    response = await router.complete(ask(product_tools, "balance"), settings)
    assert response.provider == "offline" and fake_llm.requests() == []
