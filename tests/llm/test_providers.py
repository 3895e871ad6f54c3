"""Both adapters through the real SDKs against the fake server: wire shapes out, parsed answers and errors back."""

from __future__ import annotations

from types import ModuleType

import pytest

from paygent.llm import anthropic_provider, openai_provider
from paygent.llm.errors import MalformedToolCall, PermanentLlmError, RetryableLlmError
from paygent.llm.types import ChatMessage, LlmRequest, ToolCall, ToolSpec
from paygent.netutil import free_port
from tests.fakes.llm_server import (
    ANTHROPIC_TEST_KEY,
    OPENAI_TEST_KEY,
    FakeLlmServer,
    Reply,
    fail,
    malformed,
    text,
    tool,
)

PROVIDERS = [pytest.param(anthropic_provider, id="anthropic"), pytest.param(openai_provider, id="openai")]
ADDRESS = "0x" + "ab" * 20


def conversation(tools: list[ToolSpec]) -> LlmRequest:
    """User asks, assistant called two tools in parallel, both results came back."""
    return LlmRequest(
        system="You are a careful payments agent.",
        tools=tools,
        max_tokens=321,
        messages=[
            ChatMessage.user("check my balance and pay"),
            ChatMessage(
                role="assistant",
                text="Checking.",
                tool_calls=[
                    ToolCall(id="c1", name="wallet_balance", arguments={}),
                    ToolCall(
                        id="c2", name="pay", arguments={"to": ADDRESS, "amount": "5", "asset": "USDC", "memo": "x"}
                    ),
                ],
            ),
            ChatMessage.tool_result("c1", '{"balance": "12.5", "asset": "USDC"}'),
            ChatMessage.tool_result("c2", '{"status": "settled"}'),
        ],
    )


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_tool_call_is_parsed(fake_llm: FakeLlmServer, product_tools, provider: ModuleType) -> None:
    name = provider.PROVIDER
    fake_llm.script(name, tool("pay", call_id="call-1", to=ADDRESS, amount="5", asset="USDC", memo="lunch"))
    request = LlmRequest(messages=[ChatMessage.user("pay 5 USDC")], tools=product_tools)

    response = await provider.complete(request, fake_llm.settings())

    assert response.provider == name and response.text is None
    assert response.tool_calls == [
        ToolCall(id="call-1", name="pay", arguments={"to": ADDRESS, "amount": "5", "asset": "USDC", "memo": "lunch"})
    ]
    assert response.model.endswith("fake-1")
    assert response.usage["input_tokens"] > 0 and response.usage["output_tokens"] > 0
    [seen] = fake_llm.requests(name)
    assert seen.headers.get("x-stainless-retry-count", "0") == "0"


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_final_text_is_parsed(fake_llm: FakeLlmServer, product_tools, provider: ModuleType) -> None:
    fake_llm.script(provider.PROVIDER, text("Paid 5 USDC."))
    response = await provider.complete(conversation(product_tools), fake_llm.settings())
    assert response.text == "Paid 5 USDC." and response.tool_calls == []


async def test_anthropic_wire_shape(fake_llm: FakeLlmServer, product_tools) -> None:
    fake_llm.script("anthropic", text("ok"))
    await anthropic_provider.complete(conversation(product_tools), fake_llm.settings())
    [seen] = fake_llm.requests("anthropic")
    body = seen.body
    # SDK 2.x sends the key as a bearer token; 0.x sent x-api-key
    assert ANTHROPIC_TEST_KEY in (seen.headers.get("x-api-key"), seen.headers.get("authorization", "")[7:])
    assert body["system"] == "You are a careful payments agent." and body["max_tokens"] == 321
    assert [t["name"] for t in body["tools"]] == [t.name for t in product_tools]
    assert body["tools"][1]["input_schema"]["required"] == ["to", "amount", "asset", "memo"]
    user, assistant, results = body["messages"]
    assert user == {"role": "user", "content": [{"type": "text", "text": "check my balance and pay"}]}
    assert assistant["role"] == "assistant"
    assert [b["type"] for b in assistant["content"]] == ["text", "tool_use", "tool_use"]
    assert assistant["content"][2]["input"]["amount"] == "5"
    # both parallel results in the one user turn that follows, as the Messages API requires
    assert results["role"] == "user"
    assert [(b["type"], b["tool_use_id"]) for b in results["content"]] == [("tool_result", "c1"), ("tool_result", "c2")]


async def test_openai_wire_shape(fake_llm: FakeLlmServer, product_tools) -> None:
    fake_llm.script("openai", text("ok"))
    await openai_provider.complete(conversation(product_tools), fake_llm.settings())
    [seen] = fake_llm.requests("openai")
    body = seen.body
    assert seen.headers["authorization"] == f"Bearer {OPENAI_TEST_KEY}"
    assert body["max_completion_tokens"] == 321
    assert body["tools"][1]["function"]["parameters"]["required"] == ["to", "amount", "asset", "memo"]
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "tool"]
    calls = body["messages"][2]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["wallet_balance", "pay"]
    assert '"amount":"5"' in calls[1]["function"]["arguments"]
    assert body["messages"][3] == {
        "role": "tool",
        "tool_call_id": "c1",
        "content": '{"balance": "12.5", "asset": "USDC"}',
    }


@pytest.mark.parametrize(
    "provider,raw,why",
    [
        # OpenAI sends arguments as a JSON string the model wrote: it can be broken JSON or the wrong JSON type
        (openai_provider, '{"to": "0xab", "amount": ', "not valid JSON"),
        (openai_provider, "[1, 2]", "not a JSON object"),
        (openai_provider, '"5 USDC"', "not a JSON object"),
        # Anthropic sends `input` as parsed JSON: anything but an object is the broken case
        (anthropic_provider, '{"to": "0xab", "amount": ', "not a JSON object"),
        (anthropic_provider, [1, 2], "not a JSON object"),
    ],
    ids=["openai-bad-json", "openai-array", "openai-string", "anthropic-string", "anthropic-array"],
)
async def test_malformed_arguments(
    fake_llm: FakeLlmServer, product_tools, provider: ModuleType, raw: object, why: str
) -> None:
    fake_llm.script(provider.PROVIDER, malformed("pay", raw))
    with pytest.raises(MalformedToolCall, match=why) as caught:
        await provider.complete(
            LlmRequest(messages=[ChatMessage.user("pay")], tools=product_tools), fake_llm.settings()
        )
    assert isinstance(caught.value, RetryableLlmError)  # worth another sample, never worth guessing at


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_unknown_tool_is_malformed(fake_llm: FakeLlmServer, product_tools, provider: ModuleType) -> None:
    fake_llm.script(provider.PROVIDER, tool("drain_wallet", to=ADDRESS))
    with pytest.raises(MalformedToolCall, match="unknown tool 'drain_wallet'"):
        await provider.complete(LlmRequest(messages=[ChatMessage.user("hi")], tools=product_tools), fake_llm.settings())


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    "status,retry_after,expected_delay",
    [
        (529, None, None),
        (500, None, None),
        (503, "7", 7.0),
        (429, "1.5", 1.5),
        (408, None, None),
        (409, None, None),
    ],
)
async def test_retryable_statuses(
    fake_llm: FakeLlmServer, provider: ModuleType, status: int, retry_after: str | None, expected_delay: float | None
) -> None:
    fake_llm.script(provider.PROVIDER, fail(status, retry_after=retry_after))
    with pytest.raises(RetryableLlmError) as caught:
        await provider.complete(LlmRequest(messages=[ChatMessage.user("hi")]), fake_llm.settings())
    assert caught.value.status_code == status and caught.value.retry_after == expected_delay
    assert f"HTTP {status}" in str(caught.value)
    assert len(fake_llm.requests(provider.PROVIDER)) == 1  # the SDK did not retry on its own


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_permanent_statuses_never_leak_the_key(
    fake_llm: FakeLlmServer, provider: ModuleType, status: int
) -> None:
    key = ANTHROPIC_TEST_KEY if provider is anthropic_provider else OPENAI_TEST_KEY
    fake_llm.script(provider.PROVIDER, fail(status, message=f"invalid x-api-key {key}"))  # a server echoing it
    with pytest.raises(PermanentLlmError) as caught:
        await provider.complete(LlmRequest(messages=[ChatMessage.user("hi")]), fake_llm.settings())
    err = caught.value
    assert err.status_code == status and not isinstance(err, RetryableLlmError)
    assert f"{provider.PROVIDER} answered HTTP {status}" in str(err)
    assert key not in str(err) and key not in repr(err) and "[redacted]" in str(err)
    assert key not in repr(fake_llm.settings())


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_timeout_is_retryable(fake_llm: FakeLlmServer, provider: ModuleType) -> None:
    fake_llm.script(provider.PROVIDER, Reply(text="too late", delay=1.0))
    with pytest.raises(RetryableLlmError, match=r"did not answer within 0.2s"):
        await provider.complete(LlmRequest(messages=[ChatMessage.user("hi")]), fake_llm.settings(), timeout=0.2)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_connection_refused_is_retryable(fake_llm: FakeLlmServer, provider: ModuleType) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    settings = fake_llm.settings(anthropic_base_url=closed, openai_base_url=closed + "/v1")
    with pytest.raises(RetryableLlmError, match="could not be reached"):
        await provider.complete(LlmRequest(messages=[ChatMessage.user("hi")]), settings, timeout=5)
