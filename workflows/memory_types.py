"""The memory cleanup workflow's public contract: names, input, output.

`MemoryCleanupWorkflow` runs once per tick of the Temporal Schedule `SCHEDULE_ID` (created by `paygent stack
up`, beside the reconciler's) and prunes expired memory items in bounded batches. Reads never show an expired
item whatever cleanup has done: it only reclaims the space.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

WORKFLOW_NAME = "MemoryCleanupWorkflow"
SCHEDULE_ID = "paygent-memory-cleanup"
WORKFLOW_ID = "paygent-memory-cleanup"
ACT_PRUNE = "memory.prune_expired"


class CleanupInput(BaseModel):
    batch_size: int = Field(5000, ge=1, le=100_000)  # rows per tenant and batch (one transaction)
    max_batches: int = Field(20, ge=1, le=1000)  # batches a run does at most; the next tick goes on


class PruneResult(BaseModel):
    removed: int
    more: bool  # some tenant had a full batch: more may be left


class CleanupResult(BaseModel):
    removed: int = 0
    batches: int = 0
    more: bool = False
