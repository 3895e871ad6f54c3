"""The offline planner as pure functions: each command, the answer after a tool result, and amounts as strings."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paygent.llm.offline_planner import HELP, plan
from paygent.llm.types import ChatMessage, LlmRequest, LlmResponse, ToolCall, ToolSpec

ADDRESS = "0x" + "Ab" * 20
TX = "0x" + "1f" * 32
ALL_TOOLS = [
    ToolSpec(name=n, description=f"the {n} tool")
    for n in (
        "wallet_balance",
        "pay",
        "x402_fetch",
        "call_paid_tool",
        "swap",
        "memory_set",
        "memory_get",
        "list_paid_services",
        "health",
    )
]


def step(words: str, tools: list[ToolSpec] = ALL_TOOLS) -> LlmResponse:
    return plan(LlmRequest(messages=[ChatMessage.user(words)], tools=tools))


def only_call(response: LlmResponse) -> ToolCall:
    assert response.provider == "offline" and response.text is None
    [call] = response.tool_calls
    return call


@pytest.mark.parametrize(
    "words,name,arguments",
    [
        ("balance", "wallet_balance", {}),
        ("What's my balance?", "wallet_balance", {}),
        (
            f"pay 5 USDC to {ADDRESS} for invoice 42",
            "pay",
            {"to": ADDRESS, "amount": "5", "asset": "USDC", "memo": "invoice 42"},
        ),
        (
            f"Please pay 0.25 usdc to {ADDRESS} for coffee.",
            "pay",
            {"to": ADDRESS, "amount": "0.25", "asset": "USDC", "memo": "coffee"},
        ),
        (f"pay 5 USDC to {ADDRESS}", "pay", {"to": ADDRESS, "amount": "5", "asset": "USDC", "memo": ""}),
        ("swap 10 USDC to EURC", "swap", {"from_asset": "USDC", "to_asset": "EURC", "amount": "10"}),
        ("Please swap 10 usdc for eurc.", "swap", {"from_asset": "USDC", "to_asset": "EURC", "amount": "10"}),
        ("swap 0.000001 EURC into USDC", "swap", {"from_asset": "EURC", "to_asset": "USDC", "amount": "0.000001"}),
        (
            "fetch https://data.example/report?q=1 paying up to 0.05 USDC",
            "x402_fetch",
            {"url": "https://data.example/report?q=1", "max_amount": "0.05"},
        ),
        (
            "call forecast city=Porto paying up to 0.05 USDC",
            "call_paid_tool",
            {"service": "forecast", "max_amount": "0.05", "arguments": {"city": "Porto"}},
        ),
        (
            "call premium_report paying up to 3",
            "call_paid_tool",
            {"service": "premium_report", "max_amount": "3", "arguments": {}},
        ),
        ("remember favourite_vendor = Acme Corp", "memory_set", {"key": "favourite_vendor", "value": "Acme Corp"}),
        ("remember note = pay 5 USDC later", "memory_set", {"key": "note", "value": "pay 5 USDC later"}),
        ("recall favourite_vendor", "memory_get", {"key": "favourite_vendor"}),
        ("list services", "list_paid_services", {}),
        ("list paid services", "list_paid_services", {}),
        ("health", "health", {}),
    ],
)
def test_commands_become_tool_calls(words: str, name: str, arguments: dict) -> None:
    call = only_call(step(words))
    assert call.name == name and call.arguments == arguments and call.id.startswith("offline_")


def test_list_tools_answers_from_the_request() -> None:
    response = step("list tools")
    assert response.tool_calls == [] and response.text is not None
    for tool in ALL_TOOLS:
        assert f"- {tool.name}: {tool.description}" in response.text
    assert step("list tools", tools=[]).text == "This agent has no tools."


@pytest.mark.parametrize("words", ["hello", "", "transfer everything", "what can you do"])
def test_unknown_input_lists_what_it_understands(words: str) -> None:
    response = step(words)
    assert response.tool_calls == [] and response.text == HELP
    for command in (
        "balance",
        "pay <amount>",
        "swap <amount>",
        "fetch <url>",
        "list services",
        "remember",
        "recall",
        "health",
    ):
        assert command in HELP


@pytest.mark.parametrize(
    "words,hint",
    [
        ("pay bob 5 dollars", "To pay, say"),
        ("pay 5 USDC to 0x1234 for lunch", "40 hex"),
        ("fetch https://x.example/data", "spending cap"),
        ("remember something", "remember <key> = <value>"),
        ("swap ten USDC to EURC", "swap <amount> <asset> to <asset>"),
    ],
)
def test_a_known_verb_with_unreadable_arguments_gets_usage_not_a_guess(words: str, hint: str) -> None:
    response = step(words)
    assert response.tool_calls == [] and hint in (response.text or "")


def test_a_tool_the_agent_lacks_is_never_called() -> None:
    response = step(f"pay 5 USDC to {ADDRESS} for x", tools=[ToolSpec(name="wallet_balance", description="b")])
    assert response.tool_calls == [] and "`pay`" in (response.text or "")


def after(call: ToolCall, result: object) -> LlmResponse:
    text = result if isinstance(result, str) else json.dumps(result)
    return plan(
        LlmRequest(
            tools=ALL_TOOLS,
            messages=[
                ChatMessage.user("..."),
                ChatMessage(role="assistant", tool_calls=[call]),
                ChatMessage.tool_result(call.id, text),
            ],
        )
    )


PAY = ToolCall(id="p1", name="pay", arguments={"to": ADDRESS, "amount": "5", "asset": "USDC", "memo": "m"})


@pytest.mark.parametrize(
    "call,result,expected",
    [
        (
            PAY,
            {"status": "settled", "amount": "5", "asset": "USDC", "to": ADDRESS, "tx_hash": TX},
            ["Payment of 5 USDC to " + ADDRESS, "settled", TX],
        ),
        (PAY, {"status": "rejected", "reason": "approver said no"}, ["pay request was rejected", "approver said no"]),
        (PAY, {"status": "expired"}, ["pay request expired"]),
        (PAY, f"payment broadcast as {TX}", [TX]),
        (
            ToolCall(id="b", name="wallet_balance"),
            {"balance": "12.500001", "asset": "USDC"},
            ["Your balance is 12.500001 USDC."],
        ),
        (ToolCall(id="b", name="wallet_balance"), '{"balance": 12.10, "asset": "USDC"}', ["12.10 USDC"]),
        (ToolCall(id="g", name="memory_get", arguments={"key": "k"}), {"key": "k", "value": "v"}, ["k = v"]),
        (
            ToolCall(id="g", name="memory_get", arguments={"key": "k"}),
            {"key": "k", "value": None},
            ["nothing stored for k"],
        ),
        (ToolCall(id="s", name="memory_set"), {"key": "k", "ok": True}, ["Remembered k."]),
        (
            ToolCall(id="f", name="x402_fetch"),
            {"url": "https://d.example", "amount": "0.01", "asset": "USDC", "body": "42 rows"},
            ["Fetched https://d.example, paid 0.01 USDC: 42 rows"],
        ),
        (
            ToolCall(id="l", name="list_paid_services"),
            [{"name": "weather"}, {"name": "news"}],
            ["Paid services: weather, news."],
        ),
        (
            ToolCall(id="w", name="swap"),
            {
                "status": "confirmed",
                "from_asset": "USDC",
                "to_asset": "EURC",
                "amount_in": "10",
                "amount_out": "9.17",
                "tx_hash": TX,
            },
            ["Swapped 10 USDC for 9.17 EURC: confirmed.", TX],
        ),
        (
            ToolCall(id="w", name="swap"),
            {"status": "refused", "reason": "velocity:daily: over", "error": "refused by the spending policy"},
            ["swap failed: refused by the spending policy"],
        ),
        (ToolCall(id="h", name="health"), {"status": "ok"}, ["Health: ok."]),
        (ToolCall(id="h", name="health"), {"error": "temporal down"}, ["health failed: temporal down"]),
    ],
)
def test_final_answer_summarises_the_tool_result(call: ToolCall, result: object, expected: list[str]) -> None:
    response = after(call, result)
    assert response.tool_calls == [] and response.provider == "offline"
    for fragment in expected:
        assert fragment in (response.text or "")


def test_parallel_results_are_each_summarised() -> None:
    calls = [ToolCall(id="a", name="wallet_balance"), PAY]
    response = plan(
        LlmRequest(
            tools=ALL_TOOLS,
            messages=[
                ChatMessage.user("both"),
                ChatMessage(role="assistant", tool_calls=calls),
                ChatMessage.tool_result("a", '{"balance": "3", "asset": "USDC"}'),
                ChatMessage.tool_result("p1", json.dumps({"status": "settled", "tx_hash": TX})),
            ],
        )
    )
    lines = (response.text or "").splitlines()
    assert lines[0] == "Your balance is 3 USDC." and TX in lines[1]


amounts = st.from_regex(r"\A(0|[1-9][0-9]{0,12})(\.[0-9]{1,6})?\Z")
memos = (
    st.text(alphabet=st.characters(codec="ascii", categories=["L", "N"]) | st.just(" "), min_size=1, max_size=30)
    .map(str.strip)
    .filter(bool)
)


@settings(max_examples=150, deadline=None)
@given(amount=amounts, memo=memos)
def test_pay_amount_is_the_exact_typed_string(amount: str, memo: str) -> None:
    call = only_call(step(f"pay {amount} USDC to {ADDRESS} for {memo}"))
    assert isinstance(call.arguments["amount"], str) and call.arguments["amount"] == amount
    assert call.arguments["memo"] == memo
    assert not any(isinstance(v, float) for v in call.arguments.values())


@settings(max_examples=100, deadline=None)
@given(amount=amounts)
def test_fetch_cap_is_the_exact_typed_string(amount: str) -> None:
    call = only_call(step(f"fetch https://api.example/x paying up to {amount} USDC"))
    assert call.arguments == {"url": "https://api.example/x", "max_amount": amount}


@settings(max_examples=100, deadline=None)
@given(words=st.text(max_size=80))
def test_any_input_gives_one_deterministic_well_formed_step(words: str) -> None:
    first, second = step(words), step(words)
    assert first == second
    assert (first.text is None) != (first.tool_calls == [])  # either a final answer or tool calls, never both
    for call in first.tool_calls:
        assert call.name in {t.name for t in ALL_TOOLS}
        assert not any(isinstance(v, float) for v in call.arguments.values())
