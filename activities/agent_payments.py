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

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.agent_tools import validation_message
from paygent.db.accounts import get_wallet
from paygent.db.audit import append_audit
from paygent.db.grants import has_grant
from paygent.db.paid_services import find_service
from paygent.db.payments import NewPayment, payment_request, record_payment
from paygent.db.schema import payments
from paygent.domain.addresses import parse_address
from paygent.domain.channels import Channel
from paygent.domain.errors import ErrorType, InvalidInput
from paygent.domain.money import format_amount, parse_amount
from paygent.domain.payment import ZERO_ADDRESS, PaymentKind, PaymentStatus, payment_workflow_id
from paygent.domain.text import SafeText
from paygent.egress import require_allowed
from paygent.settings import Settings
from workflows import agent_types as t
from workflows import payment_types as pt


class PayArgs(BaseModel):
    """Strict strings: an amount the model sent as a JSON number is refused, never rounded through a float."""

    model_config = ConfigDict(extra="forbid", strict=True)
    to: SafeText
    amount: SafeText
    asset: SafeText
    memo: SafeText | None = Field(None, max_length=500)


class FetchArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    url: SafeText = Field(max_length=2000)
    max_amount: SafeText


class PaidToolArgs(BaseModel):
    """`call_paid_tool`: a paid MCP tool from the tenant's registry, its arguments, and a price cap."""

    model_config = ConfigDict(extra="forbid", strict=True)
    service: str = Field(max_length=200)
    max_amount: str
    arguments: dict = Field(default_factory=dict)


NOT_RECORDED = "not_recorded"  # an x402 recipient is known only once the server's 402 answer is probed


class AgentPaymentActivities:
    def __init__(self, engine: AsyncEngine, client: Client, settings: Settings) -> None:
        self.engine, self.client, self.settings = engine, client, settings

    def _parse(self, p: t.PreparePayment) -> tuple[PaymentKind, int, str, str | None, str | None]:
        """(kind, amount_atomic, to, memo, url) from the model's arguments; refusals name the argument."""
        if not self.settings.token_address:
            raise InvalidInput("asset", "no token is configured on this server")
        decimals = self.settings.token_decimals
        if p.call.name == "call_paid_tool":  # the URL and tool come from the registry (see prepare_payment)
            paid = PaidToolArgs.model_validate(p.call.arguments)
            return (
                PaymentKind.x402,
                parse_amount(paid.max_amount, decimals, field="max_amount"),
                ZERO_ADDRESS,
                None,
                None,
            )
        if p.call.name == "x402_fetch":
            fetch = FetchArgs.model_validate(p.call.arguments)
            cap = parse_amount(fetch.max_amount, decimals, field="max_amount")
            return PaymentKind.x402, cap, ZERO_ADDRESS, None, fetch.url
        args = PayArgs.model_validate(p.call.arguments)
        if args.asset.upper() != self.settings.token_symbol:
            raise InvalidInput("asset", f"unknown asset {args.asset!r}; known: {self.settings.token_symbol}")
        return (
            PaymentKind.transfer,
            parse_amount(args.amount, decimals),
            parse_address(args.to, field="to"),
            args.memo,
            None,
        )

    @activity.defn(name=t.ACT_PREPARE_PAYMENT)
    async def prepare_payment(self, p: t.PreparePayment) -> t.PreparedPayment:
        try:
            kind, amount_atomic, to, memo, url = self._parse(p)
            if url:  # the same egress policy as POST /v1/payments: nothing is recorded for a refused URL
                await require_allowed(self.settings, url, field="url")
        except ValidationError as exc:
            return t.PreparedPayment(error=f"invalid arguments for {p.call.name}: {validation_message(exc)}")
        except InvalidInput as exc:
            return t.PreparedPayment(error=f"invalid arguments for {p.call.name}: {exc}")
        if not p.wallet_id:
            return t.PreparedPayment(error="this run has no wallet to pay from")
        token_address = self.settings.token_address
        assert token_address is not None  # _parse refused the call when no token is configured
        payment_id = uuid.UUID(t.agent_payment_id(p.run_id, p.call.id))
        symbol, decimals = self.settings.token_symbol, self.settings.token_decimals
        async with self.engine.begin() as conn:
            wallet = await get_wallet(conn, uuid.UUID(p.tenant_id), uuid.UUID(p.wallet_id))
            if wallet is None:
                return t.PreparedPayment(error="the run's wallet no longer exists")
            if not await has_grant(conn, uuid.UUID(p.user_id), wallet.id):  # grants can be withdrawn mid-run
                return t.PreparedPayment(error=f"{p.user_name} holds no spend grant on wallet {wallet.name}")
            mcp_call = None
            if p.call.name == "call_paid_tool":
                paid = PaidToolArgs.model_validate(p.call.arguments)
                service = await find_service(conn, p.tenant_id, paid.service)
                if service is None or service["transport"] != "mcp" or not service["tool"]:
                    return t.PreparedPayment(error=f"no paid MCP tool named {paid.service!r} is registered")
                url, mcp_call = service["url"], {"tool": service["tool"], "arguments": paid.arguments}
            recorded = await record_payment(
                conn,
                NewPayment(
                    payment_id=payment_id,
                    tenant_id=uuid.UUID(p.tenant_id),
                    requested_by_id=uuid.UUID(p.user_id),
                    actor=p.user_name,
                    channel=Channel.temporal,
                    wallet_id=wallet.id,
                    idempotency_key=f"agent-run:{p.run_id}:{p.call.id}",
                    chain_id=self.settings.chain_id,
                    asset=symbol,
                    token_address=token_address,
                    to=to,
                    amount_atomic=amount_atomic,
                    memo=memo,
                    kind=kind,
                    url=url,
                    mcp_call=mcp_call,
                    audit_extra={"agent_run_id": p.run_id, "tool_call_id": p.call.id},
                ),
            )
        if not recorded.matches:
            return t.PreparedPayment(error="a different payment is already recorded for this tool call")
        row = recorded.row
        return t.PreparedPayment(
            request=payment_request(row, wallet.address, requested_by=p.user_name, decimals=decimals),
            status=row["status"],
            wallet_name=wallet.name,
            amount_label=f"{'up to ' if url else ''}{format_amount(amount_atomic, decimals)} {symbol}",
        )

    async def _status(self, payment_id: str) -> t.PaymentSnapshot:
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(sa.select(payments).where(payments.c.id == uuid.UUID(payment_id))))
                .mappings()
                .first()
            )
        if row is None:  # a run cancelled before its payment was recorded: nothing to cancel, nothing paid
            return t.PaymentSnapshot(payment_id=payment_id, status=NOT_RECORDED)
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
        return t.PaymentSnapshot(
            payment_id=payment_id,
            status=row["status"],
            tx_hash=row["tx_hash"],
            block_number=row["block_number"],
            failure_reason=row["failure_reason"],
            amount_atomic=int(row["amount_atomic"]),
            to=row["to_address"],
            x402=x402,
        )

    @activity.defn(name=t.ACT_PAYMENT_STATUS)
    async def payment_status(self, payment_id: str) -> t.PaymentSnapshot:
        return await self._status(payment_id)

    @activity.defn(name=t.ACT_CANCEL_PAYMENT)
    async def cancel_payment(self, c: t.CancelPayment) -> t.PaymentSnapshot:
        """Ask the payment to cancel; returns its status afterwards (still moving if it was already signed)."""
        handle = self.client.get_workflow_handle(payment_workflow_id(c.payment_id))
        try:
            state = await handle.execute_update(
                pt.UPDATE_CANCEL,
                pt.PaymentCancelRequest(actor=c.actor, channel=Channel.temporal, reason=c.reason),
                id=f"agent-cancel-{c.payment_id}",
                result_type=pt.PaymentState,
            )
            return t.PaymentSnapshot(
                payment_id=c.payment_id, status=state.status, tx_hash=state.tx_hash, failure_reason=state.failure_reason
            )
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            if not (isinstance(cause, ApplicationError) and cause.type == ErrorType.payment_not_cancellable):
                raise
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                await self._cancel_unstarted(c)
        return await self._status(c.payment_id)

    async def _cancel_unstarted(self, c: t.CancelPayment) -> None:
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
                    action="payment.cancelled",
                    subject_type="payment",
                    subject_id=c.payment_id,
                    data={"reason": c.reason, "before_start": True},
                )
