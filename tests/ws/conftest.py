"""Fixtures for the WebSocket tests: a second requester of the dev tenant, and a wallet gated by 2-of-3
approvals with a short time-lock (its own wallet, so no other test meets its policy)."""

from __future__ import annotations

import pytest_asyncio

from paygent.db.policies import save_policy
from paygent.domain.approval_policy import ApprovalPolicy, Tier
from tests.agents.helpers import new_requester
from tests.api.helpers import funded_wallet

TIMELOCK_SECONDS = 3
APPROVERS = ["bob", "carol", "dave"]
TWO_OF_THREE_THEN_TIMELOCK = ApprovalPolicy(
    tiers=[
        Tier(max_amount_atomic=100 * 10**6, approvals_required=0),
        Tier(
            max_amount_atomic=None,
            approvals_required=2,
            approvers=APPROVERS,
            approval_timeout_seconds=3_600,
            timelock_seconds=TIMELOCK_SECONDS,
        ),
    ]
)


@pytest_asyncio.fixture(scope="session")
async def other_requester(app_settings, dev) -> str:
    """The API key of another person of the same tenant, with the requester role."""
    return await new_requester(app_settings, dev["tenant"]["id"])


@pytest_asyncio.fixture(scope="module")
async def gated_wallet(http, dev, app_settings, db_engine) -> dict:
    wallet = await funded_wallet(http, dev, app_settings, 1_000)
    async with db_engine.begin() as conn:
        await save_policy(
            conn, dev["tenant"]["id"], TWO_OF_THREE_THEN_TIMELOCK, actor="test", channel="api", wallet_id=wallet["id"]
        )
    return wallet
