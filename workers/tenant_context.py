"""Worker interceptor: each activity runs scoped to the tenant of the workflow that scheduled it.

The workflow side (workflows/tenant_header.py) puts the tenant in a header; here it becomes the task's current
tenant (paygent/db/tenancy.py), which every database transaction the activity opens then carries. An activity
scheduled without one (by an older workflow run) falls back to its input's `tenant_id`, else runs with no tenant
and row-level security shows it nothing.
"""

from __future__ import annotations

from typing import Any

from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from paygent.db.tenancy import tenant_scope
from workflows.tenant_header import TenantWorkflowInterceptor, arg_tenant, header_tenant


class _TenantActivity(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        with tenant_scope(header_tenant(input.headers) or arg_tenant(input.args)):
            return await super().execute_activity(input)


class TenantInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _TenantActivity(next)

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        return TenantWorkflowInterceptor
