"""The paying tools' activities (`pay`, `x402_fetch`, `call_paid_tool`): record a payment, read its status,
cancel it.

A payment an agent makes is recorded exactly as one made through the API (`paygent.db.payments.record_payment`,
which the API uses too: same row, same audit entry, same request hash; `x402_fetch` is a payment of kind "x402"),
with id uuid5(run id, tool call id) and idempotency key `agent-run:<run>:<call>`, so a retried or replayed run
finds the same payment instead of making another.

Cancelling goes through PaymentWorkflow's own `cancel` Update, not Temporal cancellation: the payment decides
(cancellable before signing; after that it settles on its own) and releases its reservation itself.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.agent_recording import (
    ToolRefused,
    invalid_arguments,
    or_refusal,
    record_tool_call,
    run_wallet,
    tool_arguments,
)
from paygent.db.audit import append_audit
from paygent.db.paid_services import find_service
from paygent.db.payments import payment_request
from paygent.db.schema import payments
from paygent.domain.audit_names import AuditAction, AuditSubject
from paygent.domain.channels import Channel
from paygent.domain.errors import InvalidInput
from paygent.domain.money import format_amount
from paygent.domain.payment import PaymentKind, PaymentStatus, payment_workflow_id
from paygent.domain.text import SafeText
from paygent.payment_input import DecimalText, PaymentFields, check_payment_input
from paygent.settings import Settings
from workflows import agent_types as at
from workflows import payment_types as pt
from workflows.payment_client import CancelRefused, request_cancel


class PayArgs(BaseModel):
    """Strict strings: an amount the model sent as a JSON number is refused, never rounded through a float."""

    model_config = ConfigDict(extra="forbid", strict=True)
    to: SafeText
    amount: DecimalText
    asset: SafeText
    memo: SafeText | None = Field(None, max_length=500)


class FetchArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    url: SafeText = Field(max_length=2000)
    max_amount: DecimalText


class PaidToolArgs(BaseModel):
    """`call_paid_tool`: a paid MCP tool from the tenant's registry, its arguments, and a price cap."""

    model_config = ConfigDict(extra="forbid", strict=True)
    service: str = Field(max_length=200)
    max_amount: DecimalText
    arguments: dict = Field(default_factory=dict)


NOT_RECORDED = "not_recorded"  # an x402 recipient is known only once the server's 402 answer is probed


class AgentPaymentActivities:
    def __init__(self, engine: AsyncEngine, client: Client, settings: Settings) -> None:
        self.engine, self.client, self.settings = engine, client, settings

    @staticmethod
    def _fields(p: at.PreparePayment) -> tuple[PaymentFields, str | None]:
        """The model's arguments as the payment fields every door checks (paygent/payment_input.py), and the
        memo; arguments of the wrong shape raise ValidationError."""
        if p.call.name == "call_paid_tool":  # the URL comes from the registry (see prepare_payment)
            paid = PaidToolArgs.model_validate(p.call.arguments)
            return PaymentFields(kind=PaymentKind.x402, asset="", max_amount=paid.max_amount), None
        if p.call.name == "x402_fetch":
            fetch = FetchArgs.model_validate(p.call.arguments)
            return PaymentFields(kind=PaymentKind.x402, asset="", url=fetch.url, max_amount=fetch.max_amount), None
        args = PayArgs.model_validate(p.call.arguments)
        return PaymentFields(kind=PaymentKind.transfer, asset=args.asset, to=args.to, amount=args.amount), args.memo

    @activity.defn(name=at.ACT_PREPARE_PAYMENT)
    async def prepare_payment(self, p: at.PreparePayment) -> at.PreparedPayment:
        return await or_refusal(self._prepare(p), at.PreparedPayment)

    async def _prepare(self, p: at.PreparePayment) -> at.PreparedPayment:
        fields, memo = tool_arguments(p, lambda: self._fields(p))
        if fields.kind == PaymentKind.x402:  # the tools pay in the configured token
            fields = replace(fields, asset=self.settings.token_symbol)
        async with self.engine.begin() as conn:
            wallet = await run_wallet(conn, p, "pay")
            mcp_call = None
            if p.call.name == "call_paid_tool":
                paid = PaidToolArgs.model_validate(p.call.arguments)
                service = await find_service(conn, p.tenant_id, paid.service)
                if service is None or service["transport"] != "mcp" or not service["tool"]:
                    raise ToolRefused(f"no paid MCP tool named {paid.service!r} is registered")
                fields = replace(fields, url=service["url"])
                mcp_call = {"tool": service["tool"], "arguments": paid.arguments}
            try:  # the same checks as POST /v1/payments; nothing is recorded for a refusal
                checked = await check_payment_input(self.settings, fields, payer=wallet.address)
            except InvalidInput as exc:
                raise invalid_arguments(p, exc) from None
            row = await record_tool_call(
                conn,
                p,
                wallet_id=wallet.id,
                chain_id=self.settings.chain_id,
                asset=checked.asset,
                token_address=checked.token_address,
                to=checked.to,
                amount_atomic=checked.amount_atomic,
                memo=memo,
                kind=checked.kind,
                url=checked.url,
                mcp_call=mcp_call,
            )
        label = format_amount(checked.amount_atomic, checked.decimals)
        return at.PreparedPayment(
            request=payment_request(row, wallet.address, requested_by=p.user_name, decimals=checked.decimals),
            status=row["status"],
            wallet_name=wallet.name,
            amount_label=f"{'up to ' if checked.url else ''}{label} {checked.asset}",
        )

    async def _status(self, payment_id: str) -> at.PaymentSnapshot:
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(sa.select(payments).where(payments.c.id == uuid.UUID(payment_id))))
                .mappings()
                .first()
            )
        if row is None:  # a run cancelled before its payment was recorded: nothing to cancel, nothing paid
            return at.PaymentSnapshot(payment_id=payment_id, status=NOT_RECORDED)
        x402 = None
        if row["kind"] == PaymentKind.x402:
            details = row["details"] or {}
            response = details.get("response") or {}
            x402 = {
                "url": details.get("url"),
                "outcome": details.get("outcome"),
                "response_status": response.get("status"),
                "body_excerpt": response.get("body_excerpt"),
                "transaction": (details.get("receipt") or {}).get("transaction"),
            }
        return at.PaymentSnapshot(
            payment_id=payment_id,
            status=row["status"],
            tx_hash=row["tx_hash"],
            block_number=row["block_number"],
            failure_reason=row["failure_reason"],
            amount_atomic=int(row["amount_atomic"]),
            to=row["to_address"],
            x402=x402,
        )

    @activity.defn(name=at.ACT_PAYMENT_STATUS)
    async def payment_status(self, payment_id: str) -> at.PaymentSnapshot:
        return await self._status(payment_id)

    @activity.defn(name=at.ACT_CANCEL_PAYMENT)
    async def cancel_payment(self, c: at.CancelPayment) -> at.PaymentSnapshot:
        """Ask the payment to cancel; returns its status afterwards (still moving if it was already signed)."""
        try:
            state = await request_cancel(
                self.client,
                payment_workflow_id(c.payment_id),
                pt.PaymentCancelRequest(actor=c.actor, channel=Channel.temporal, reason=c.reason),
                update_id=f"agent-cancel-{c.payment_id}",
            )
            return at.PaymentSnapshot(
                payment_id=c.payment_id, status=state.status, tx_hash=state.tx_hash, failure_reason=state.failure_reason
            )
        except CancelRefused:
            pass  # signing began: the payment goes on, its status says where it stands
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                await self._cancel_unstarted(c)
        return await self._status(c.payment_id)

    async def _cancel_unstarted(self, c: at.CancelPayment) -> None:
        """No workflow ever started for this row (the run was cancelled in between): close the row itself."""
        try:
            await self.client.get_workflow_handle(payment_workflow_id(c.payment_id)).describe()
            return  # it exists after all (it finished): its own status stands
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
        async with self.engine.begin() as conn:
            updated = await conn.scalar(
                payments.update()
                .where(
                    payments.c.id == uuid.UUID(c.payment_id),
                    payments.c.status == PaymentStatus.pending,
                )
                .values(status=PaymentStatus.cancelled, failure_reason=c.reason, updated_at=sa.func.now())
                .returning(payments.c.tenant_id)
            )
            if updated is not None:
                await append_audit(
                    conn,
                    tenant_id=updated,
                    actor=c.actor,
                    channel=Channel.temporal,
                    action=AuditAction.payment_cancelled,
                    subject_type=AuditSubject.payment,
                    subject_id=c.payment_id,
                    data={"reason": c.reason, "before_start": True},
                )
