"""One-line, human answers from tool results, for the offline planner's final turn.

Tool results arrive as text (usually JSON written by our own tools). The summary must never hide an outcome that
matters to someone spending money: a rejection or an expiry is stated first, and a transaction hash is always
repeated so the user can look it up. Numbers are decoded as the strings they were written as (`parse_float=str`),
so an amount is never turned into a float on the way to the user.
"""

from __future__ import annotations

import json
import re
from typing import Any

_TX_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
_TX_KEYS = ("tx_hash", "txHash", "transaction_hash", "transactionHash", "tx")
_BAD_OUTCOMES = {
    "rejected": "was rejected",
    "expired": "expired",
    "denied": "was denied",
    "cancelled": "was cancelled",
    "canceled": "was cancelled",
    "failed": "failed",
}
_MAX_TEXT = 400


def decode(text: str) -> Any:
    """The result as JSON (floats and ints kept as their exact text), or the raw text if it is not JSON."""
    try:
        return json.loads(text, parse_float=str, parse_int=str)
    except (json.JSONDecodeError, TypeError):
        return text


def find_tx_hash(data: Any, text: str) -> str | None:
    if isinstance(data, dict):
        for key in _TX_KEYS:
            value = data.get(key)
            if isinstance(value, str) and _TX_HASH.fullmatch(value):
                return value
    m = _TX_HASH.search(text)
    return m.group(0) if m else None


def bad_outcome(data: Any, text: str) -> str | None:
    """'rejected', 'expired', ... if the result reports one, in its `status` or anywhere in its text."""
    status = str(data.get("status", "")).lower() if isinstance(data, dict) else ""
    for word in _BAD_OUTCOMES:
        if word in status:
            return word
    lowered = text.lower()
    for word in ("rejected", "expired", "denied"):
        if word in lowered:
            return word
    return None


def _field(data: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = data.get(key)
        if value is not None and value != "":
            return value if isinstance(value, str) else json.dumps(value)
    return None


def _short(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 3] + "..."


def _describe(tool: str, data: dict[str, Any], text: str) -> str:
    """The successful outcome of one of the product's tools, from the fields it usually returns."""
    amount = _field(data, "amount", "paid", "amount_paid")
    asset = _field(data, "asset", "symbol", "token") or ""
    if tool == "pay":
        to = _field(data, "to", "recipient")
        status = _field(data, "status")
        line = "Payment"
        if amount:
            line += f" of {amount} {asset}".rstrip()
        if to:
            line += f" to {to}"
        return line + (f": {status}." if status else " done.")
    if tool == "swap":
        line = f"Swapped {_field(data, 'amount_in') or '?'} {_field(data, 'from_asset') or ''}".rstrip()
        line += f" for {_field(data, 'amount_out') or '?'} {_field(data, 'to_asset') or ''}".rstrip()
        status = _field(data, "status")
        return line + (f": {status}." if status else ".")
    if tool == "wallet_balance":
        balance = _field(data, "balance", "amount")
        if balance is not None:
            return f"Your balance is {balance} {asset}".rstrip() + "."
    if tool == "memory_set":
        return f"Remembered {_field(data, 'key') or 'that'}."
    if tool == "memory_get":
        key = _field(data, "key") or "that"
        value = _field(data, "value")
        return f"{key} = {value}" if value is not None else f"I have nothing stored for {key}."
    if tool in ("x402_fetch", "call_paid_tool"):
        line = f"Fetched {_field(data, 'url') or 'the resource'}"
        if amount:
            line += f", paid {amount} {asset}".rstrip()
        body = _field(data, "body", "content", "text")
        return line + (f": {_short(body)}" if body else ".")
    if tool == "list_paid_services":
        services = data.get("services")
        if isinstance(services, list):
            names = [s.get("name") or s.get("url") if isinstance(s, dict) else str(s) for s in services]
            return "Paid services: " + (", ".join(str(n) for n in names) if names else "none") + "."
    if tool == "health":
        return f"Health: {_field(data, 'status') or _short(text)}."
    return f"{tool} returned: {_short(text)}"


def summarise_result(tool: str, text: str) -> str:
    """One line for one tool result; bad outcomes first, tx hash always included when the result has one."""
    data = decode(text)
    tx_hash = find_tx_hash(data, text)
    outcome = bad_outcome(data, text)
    if outcome is not None:
        reason = _field(data, "reason", "error", "message", "detail") if isinstance(data, dict) else None
        line = f"The {tool} request {_BAD_OUTCOMES[outcome]}" + (f": {reason}" if reason else ".")
    elif isinstance(data, dict) and data.get("error"):
        line = f"{tool} failed: {_field(data, 'error')}"
    elif isinstance(data, dict):
        line = _describe(tool, data, text)
    elif isinstance(data, list) and tool == "list_paid_services":
        line = _describe(tool, {"services": data}, text)
    else:
        line = f"{tool} returned: {_short(text)}"
    if tx_hash and tx_hash not in line:
        line += f" Transaction: {tx_hash}"
    return line
