"""Fixtures for the LLM tests: the fake provider server (shared with later agent-run tests) and tool specs."""

from __future__ import annotations

import pytest

from paygent.llm.types import ToolSpec
from tests.fakes.llm_server import fake_llm, fake_llm_server  # noqa: F401  (re-exported pytest fixtures)

_OBJECT = {"type": "object"}


@pytest.fixture
def product_tools() -> list[ToolSpec]:
    """The product's agent tools, as a workflow would offer them."""

    def spec(name: str, description: str, **props: dict) -> ToolSpec:
        return ToolSpec(
            name=name,
            description=description,
            input_schema={"type": "object", "properties": props, "required": list(props)},
        )

    string = {"type": "string"}
    return [
        spec("wallet_balance", "The agent wallet's token balance."),
        spec("pay", "Pay a token amount to an address.", to=string, amount=string, asset=string, memo=string),
        spec("x402_fetch", "Fetch a URL, paying via x402 up to a cap.", url=string, max_amount=string),
        spec("memory_set", "Remember a value under a key.", key=string, value=string),
        spec("memory_get", "Recall the value stored under a key.", key=string),
        spec("list_paid_services", "List the paid services the agent may use."),
        spec("health", "Check that the control plane is healthy."),
    ]
