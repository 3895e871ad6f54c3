"""Shared by the scale-out tests: which worker process runs the chain follower; `until` polls with a deadline."""

from __future__ import annotations

from temporalio.client import Client

from tests.follower.test_follower import _until as until
from workflows import chain_types as ct

__all__ = ["follower_pid", "identity_pid", "until"]

PENDING_ACTIVITY_STATE_STARTED = 2


def identity_pid(identity: str) -> int:
    """A worker's default Temporal identity is `<pid>@<host>`."""
    return int(identity.split("@", 1)[0])


async def follower_pid(client: Client, chain_workflow_id: str) -> int | None:
    """The pid of the worker process whose attempt of `chain.follow` is running now, if one is."""
    pending = (await client.get_workflow_handle(chain_workflow_id).describe()).raw_description.pending_activities
    for p in pending:
        if (
            p.activity_type.name == ct.ACT_FOLLOW
            and p.last_worker_identity
            and p.state == PENDING_ACTIVITY_STATE_STARTED
        ):
            return identity_pid(p.last_worker_identity)
    return None
