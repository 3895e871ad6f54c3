"""The tenant travels with the work: a workflow stamps its tenant on every activity and child it starts.

Activities open database transactions under row-level security, so they must know the tenant even when their
input is only a payment id. The workflow knows it (every workflow input has `tenant_id`; a child also gets it
in its start header), and puts it in the `paygent-tenant` header of each activity and child workflow it
schedules. workers/tenant_context.py reads the header on the activity side. Headers are not part of a
workflow's commands, so adding them keeps histories replayable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.worker import (
    ExecuteWorkflowInput,
    StartActivityInput,
    StartChildWorkflowInput,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowOutboundInterceptor,
)

HEADER = "paygent-tenant"


def header_tenant(headers: Mapping[str, Payload]) -> str | None:
    payload = headers.get(HEADER)
    return payload.data.decode() if payload is not None else None


def arg_tenant(args: Sequence[Any]) -> str | None:
    tenant = getattr(args[0], "tenant_id", None) if args else None
    return str(tenant) if tenant else None


def with_tenant(headers: Mapping[str, Payload], tenant: str | None) -> Mapping[str, Payload]:
    if tenant is None or HEADER in headers:
        return headers
    return {**headers, HEADER: Payload(metadata={"encoding": b"binary/plain"}, data=tenant.encode())}


class _Outbound(WorkflowOutboundInterceptor):
    tenant: str | None = None

    def start_activity(self, input: StartActivityInput):
        input.headers = with_tenant(input.headers, self.tenant or arg_tenant(input.args))
        return super().start_activity(input)

    def start_local_activity(self, input: StartLocalActivityInput):
        input.headers = with_tenant(input.headers, self.tenant or arg_tenant(input.args))
        return super().start_local_activity(input)

    async def start_child_workflow(self, input: StartChildWorkflowInput):
        input.headers = with_tenant(input.headers, self.tenant or arg_tenant(input.args))
        return await super().start_child_workflow(input)


class TenantWorkflowInterceptor(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        self._outbound = _Outbound(outbound)
        super().init(self._outbound)

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        self._outbound.tenant = header_tenant(input.headers) or arg_tenant(input.args)
        return await super().execute_workflow(input)
