"""A deterministic stand-in for an LLM, used when no API key is set.

It lets the whole agent loop (workflow -> llm step -> tool -> llm step -> answer) run offline, in demos and tests,
with the same `LlmResponse` shape a real model produces. It understands the product's commands word for word,
calls a tool only if the request offers it, keeps amounts exactly as typed (strings, never floats), and after a
tool result writes a short answer from that result. Same conversation in, same response out: no clock, no I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from paygent.llm.result_summary import summarise_result
from paygent.llm.types import ChatMessage, LlmRequest, LlmResponse, ProviderName, ToolCall

PROVIDER: ProviderName = "offline"
MODEL = "paygent-offline-planner"

_AMOUNT = r"[0-9]+(?:\.[0-9]+)?"  # ASCII digits only: `\d` would also take e.g. Arabic-Indic digits
_PREFIX = r"^\s*(?:please\s+|can\s+you\s+|could\s+you\s+)?"
_END = r"\s*[.!?]?\s*$"
_PAY = re.compile(
    _PREFIX + rf"pay\s+(?P<amount>{_AMOUNT})\s+(?P<asset>[A-Za-z][A-Za-z0-9]{{0,11}})\s+to\s+"
    rf"(?P<to>0x[0-9a-fA-F]{{40}})(?:\s+for\s+(?P<memo>.+?))?{_END}",
    re.I | re.S,
)
_FETCH = re.compile(
    _PREFIX + rf"fetch\s+(?P<url>https?://\S+?)\s+paying\s+up\s+to\s+(?P<max>{_AMOUNT})"
    rf"(?:\s+USDC)?{_END}",
    re.I,
)
_CALL_TOOL = re.compile(
    _PREFIX + rf"call\s+(?P<service>[\w.\-]+)(?P<args>(?:\s+[\w.\-]+=\S+)*)\s+paying\s+up\s+to\s+"
    rf"(?P<max>{_AMOUNT})(?:\s+USDC)?{_END}",
    re.I,
)
_SWAP = re.compile(
    _PREFIX + rf"swap\s+(?P<amount>{_AMOUNT})\s+(?P<from>[A-Za-z][A-Za-z0-9]{{0,11}})\s+(?:to|for|into)\s+"
    rf"(?P<to>[A-Za-z][A-Za-z0-9]{{0,11}}){_END}",
    re.I,
)
_REMEMBER = re.compile(_PREFIX + r"remember\s+(?P<key>[\w.\-]+)\s*=\s*(?P<value>.+?)\s*$", re.I | re.S)
_RECALL = re.compile(_PREFIX + rf"recall\s+(?P<key>[\w.\-]+){_END}", re.I)
_LIST_TOOLS = re.compile(r"\blist\s+(?:the\s+|my\s+)?tools\b", re.I)
_LIST_SERVICES = re.compile(r"\blist\s+(?:the\s+)?(?:paid\s+)?services\b", re.I)
_BALANCE = re.compile(r"\bbalance\b", re.I)
_HEALTH = re.compile(r"\bhealth\b", re.I)

HELP = (
    "I'm the offline planner (no LLM API key is configured), so I understand these commands:\n"
    "- balance\n"
    "- pay <amount> <asset> to <0x address> for <memo>   e.g. pay 5 USDC to 0xAbC... for invoice 42\n"
    "- swap <amount> <asset> to <asset>   e.g. swap 10 USDC to EURC\n"
    "- fetch <url> paying up to <amount> USDC\n"
    "- call <paid tool> [name=value ...] paying up to <amount> USDC   e.g. call forecast city=Porto paying up to 0.05\n"
    "- list services\n"
    "- remember <key> = <value>   /   recall <key>\n"
    "- list tools\n"
    "- health"
)
_USAGE = {
    "pay": "To pay, say: pay <amount> <asset> to <0x + 40 hex address> for <memo>, e.g. pay 5 USDC to 0x... for lunch",
    "fetch": "To fetch a paid resource, give a spending cap: fetch <url> paying up to 0.05 USDC",
    "call": "To call a paid tool, give a spending cap: call <tool> [name=value ...] paying up to 0.05 USDC",
    "swap": "To swap, say: swap <amount> <asset> to <asset>, e.g. swap 10 USDC to EURC",
    "remember": "To store something, say: remember <key> = <value>",
    "recall": "To read something back, say: recall <key>",
}


@dataclass(frozen=True)
class Intent:
    """What a command asks for: a `tool` call with `arguments`, an `answer`, or the list of tools."""

    tool: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    answer: str | None = None
    list_tools: bool = False


def parse_command(text: str) -> Intent:
    """Read one user message. Commands with arguments must match from the start; keywords match anywhere."""
    if m := _PAY.match(text):
        memo = (m["memo"] or "").strip()
        return Intent("pay", {"to": m["to"], "amount": m["amount"], "asset": m["asset"].upper(), "memo": memo})
    if m := _FETCH.match(text):
        return Intent("x402_fetch", {"url": m["url"], "max_amount": m["max"]})
    if m := _CALL_TOOL.match(text):
        arguments = dict(pair.split("=", 1) for pair in m["args"].split())
        return Intent("call_paid_tool", {"service": m["service"], "max_amount": m["max"], "arguments": arguments})
    if m := _SWAP.match(text):
        return Intent("swap", {"from_asset": m["from"].upper(), "to_asset": m["to"].upper(), "amount": m["amount"]})
    if m := _REMEMBER.match(text):
        return Intent("memory_set", {"key": m["key"], "value": m["value"]})
    if m := _RECALL.match(text):
        return Intent("memory_get", {"key": m["key"]})
    first_word = (re.sub(_PREFIX, "", text, flags=re.I).split() or [""])[0].lower()
    if first_word in _USAGE:  # the right verb with arguments we cannot read: say how, never guess a payment
        return Intent(answer=_USAGE[first_word])
    if _LIST_TOOLS.search(text):
        return Intent(list_tools=True)
    if _LIST_SERVICES.search(text):
        return Intent("list_paid_services")
    if _BALANCE.search(text):
        return Intent("wallet_balance")
    if _HEALTH.search(text):
        return Intent("health")
    return Intent(answer=HELP)


def _call_id(request: LlmRequest, name: str, arguments: dict[str, Any]) -> str:
    # Deterministic, and distinct for the same command repeated later in one conversation.
    seed = json.dumps([len(request.messages), name, arguments], sort_keys=True)
    return "offline_" + hashlib.sha256(seed.encode()).hexdigest()[:16]


def _answer(text: str, *, understood: bool = True) -> LlmResponse:
    return LlmResponse(text=text, provider=PROVIDER, model=MODEL, understood=understood)


def _list_tools(request: LlmRequest) -> str:
    if not request.tools:
        return "This agent has no tools."
    lines = [f"- {tool.name}: {tool.description}" for tool in request.tools]
    return "Tools available to this agent:\n" + "\n".join(lines)


def _summarise_results(messages: list[ChatMessage]) -> str:
    """A final answer from the trailing tool results, naming each tool from the call it answers."""
    results: list[ChatMessage] = []
    for message in reversed(messages):
        if message.role != "tool":
            break
        results.insert(0, message)
    names: dict[str, str] = {}
    for message in messages:
        for call in message.tool_calls:
            names[call.id] = call.name
    lines = [summarise_result(names.get(r.tool_call_id or "", "tool"), r.text or "") for r in results]
    return "\n".join(lines)


def plan(request: LlmRequest) -> LlmResponse:
    """The next step for this conversation: a tool call for a command, or a final answer."""
    if not request.messages:
        return _answer(HELP, understood=False)
    last = request.messages[-1]
    if last.role == "tool":
        return _answer(_summarise_results(request.messages))
    if last.role == "assistant":
        return _answer(last.text or "Done.")
    intent = parse_command(last.text or "")
    if intent.list_tools:
        return _answer(_list_tools(request))
    if intent.tool is None:  # help or a usage hint: the request was not understood as a command
        return _answer(intent.answer or HELP, understood=False)
    if intent.tool not in request.tool_names():
        return _answer(
            f"I understood that as the `{intent.tool}` tool, but this agent does not have it. "
            "Say `list tools` to see what it can do."
        )
    call = ToolCall(
        id=_call_id(request, intent.tool, intent.arguments), name=intent.tool, arguments=dict(intent.arguments)
    )
    return LlmResponse(text=None, tool_calls=[call], provider=PROVIDER, model=MODEL)
