"""x402 session activities: reserve the budget, record status changes, and one paid request end to end.

`fetch` is the whole paid request in one activity (one round trip for the session's Update): ask the price,
check it against the session, the wallet's (and agent's) spending policy and the x402 policy, then in ONE
transaction record the payment row, move its price out of the session's reservation and sign (the signed
authorization stored with the row, keyed by its payment-identifier), then send and settle. A retry (a crash, a
lost answer) finds the stored authorization and re-sends exactly it: never a second signature. A refusal before
signing raises `REFUSED` with the reason and writes only an audit row; nothing is signed.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError
from x402.schemas import NoMatchingRequirementsError

from paygent.chain.rpc import async_web3
from paygent.db import reservations
from paygent.db import x402_sessions as db
from paygent.db.accounts import load_signer
from paygent.db.agents import load_agent_policy
from paygent.db.audit import append_audit
from paygent.db.ledger import write_payment_entries
from paygent.db.payments import NewPayment, record_payment
from paygent.db.schema import payments
from paygent.domain.audit_names import AuditAction, AuditSubject
from paygent.domain.channels import Channel
from paygent.domain.errors import ErrorType
from paygent.domain.payment import PaymentKind, PaymentStatus
from paygent.domain.spending import check_static
from paygent.domain.x402_session import (
    SESSION_FINAL,
    RefusalReason,
    SessionRefusal,
    price_refusal,
    session_workflow_id,
    size_refusal,
)
from paygent.egress import EgressRefused
from paygent.settings import Settings
from paygent.x402 import client as x402c
from paygent.x402 import session_http
from paygent.x402.policy import X402Policy, choose, requirement_amount
from workflows import x402_session_types as xs

TEXT_TYPES = ("text/", "application/json", "application/xml", "application/javascript", "+json", "+xml")
AMBIGUOUS_ATTEMPTS = 3  # a lost answer is re-sent (the same authorization) this many times, then left held
ANY_PRICE = 10**78 - 1


def _refused(refusal: SessionRefusal) -> ApplicationError:
    return ApplicationError(
        refusal.message,
        xs.FetchRefusal(reason=refusal.reason, message=refusal.message, field=refusal.field),
        type=xs.REFUSED,
        non_retryable=True,
    )


def _body(answer: session_http.Answer) -> tuple[str, Literal["text", "base64"]]:
    """(body, encoding): text when the content type is textual and the bytes are UTF-8, else base64."""
    kind = (answer.all_headers.get("content-type") or "").lower()
    if any(marker in kind for marker in TEXT_TYPES) or not kind:
        try:
            return answer.body.decode("utf-8"), "text"
        except UnicodeDecodeError:
            pass
    return base64.b64encode(answer.body).decode(), "base64"


class X402SessionActivities:
    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._master_key = settings.master_key_bytes()
        self.w3 = async_web3(settings.rpc_url)
        self.clients = session_http.OriginClients()

    def activities(self) -> list:
        return [self.reserve, self.mark, self.fetch]

    # ---------------------------------------------------------------- the budget
    @activity.defn(name=xs.ACT_RESERVE)
    async def reserve(self, req: xs.SessionReserve) -> xs.ReserveOutcome:
        """Reserve the whole budget once against the wallet's (and an agent's) asset and velocity limits."""
        sid = uuid.UUID(req.session_id)
        async with self.engine.begin() as conn:
            refusal = None
            policy = await reservations.load_policy(conn, uuid.UUID(req.wallet_id))
            cap = policy.per_payment_cap_atomic
            if cap is not None and req.max_price_atomic is not None and req.max_price_atomic > cap:
                refusal = ("per_payment_cap", f"max_price {req.max_price_atomic} exceeds the per-payment cap {cap}")
            else:
                result = await reservations.reserve(
                    conn,
                    payment_id=sid,
                    wallet_id=uuid.UUID(req.wallet_id),
                    to="",
                    asset=req.asset,
                    amount_atomic=req.budget_atomic,
                    principal_id=uuid.UUID(req.requested_by_id),
                    budget=True,
                )
                if result.refusal is not None:
                    refusal = (result.refusal.limit, result.refusal.message)
            await append_audit(
                conn,
                tenant_id=req.tenant_id,
                actor="system",
                channel=Channel.system,
                action=AuditAction.x402_session_reserved if refusal is None else AuditAction.x402_session_limit_refused,
                subject_type=AuditSubject.x402_session,
                subject_id=req.session_id,
                data={"budget_atomic": str(req.budget_atomic)}
                | ({"limit": refusal[0], "message": refusal[1]} if refusal else {}),
            )
        if refusal is not None:
            return xs.ReserveOutcome(reserved=False, limit=refusal[0], message=refusal[1])
        return xs.ReserveOutcome(reserved=True)

    @activity.defn(name=xs.ACT_MARK)
    async def mark(self, change: xs.SessionMark) -> None:
        """Record a status change; a final one releases what is left of the budget. Idempotent."""
        sid = uuid.UUID(change.session_id)
        async with self.engine.begin() as conn:
            current = await conn.scalar(
                sa.select(db.x402_sessions.c.status).where(db.x402_sessions.c.id == sid).with_for_update()
            )
            if current is None:
                raise ApplicationError(
                    f"x402 session {sid} is not recorded", type=ErrorType.x402_state, non_retryable=True
                )
            if current == change.status or current in SESSION_FINAL:
                return
            values: dict[str, Any] = {"status": str(change.status), "updated_at": sa.func.now()}
            if change.reason:
                values["details"] = db.x402_sessions.c.details.op("||")(sa.cast({"reason": change.reason}, JSONB))
            await conn.execute(db.x402_sessions.update().where(db.x402_sessions.c.id == sid).values(**values))
            if change.status in SESSION_FINAL:
                await reservations.settle_reservation(conn, sid, reservations.RELEASED)
            await append_audit(
                conn,
                tenant_id=change.tenant_id,
                actor=change.actor,
                channel=Channel.system,
                action=f"x402_session.{change.status}",
                subject_type=AuditSubject.x402_session,
                subject_id=change.session_id,
                data={
                    "reason": change.reason,
                    "spent_atomic": str(change.spent_atomic),
                    "held_atomic": str(change.held_atomic),
                },
            )

    # ---------------------------------------------------------------- one paid request
    @activity.defn(name=xs.ACT_FETCH)
    async def fetch(self, call: xs.FetchCall) -> xs.FetchResult:
        req = call.request
        pid = uuid.UUID(req.payment_id)
        http = self.clients.get(req.url, self.settings.egress_allow or "")
        content = base64.b64decode(req.body_base64) if req.body_base64 else None
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(sa.select(payments.c.details, payments.c.status).where(payments.c.id == pid)))
                .mappings()
                .first()
            )
        if row is not None and (row["details"] or {}).get("url") != req.url:
            raise _refused(
                SessionRefusal(RefusalReason.payment_refused, "this request id was used for another URL", "url")
            )
        if row is None:  # nothing signed yet: ask the price, check it, then sign once
            answer = await self._probe(call, content, http)
            if isinstance(answer, session_http.Answer):
                return self._unpaid(answer)
            stored = await self._sign(call, answer)
        else:
            stored = x402c.StoredPayment(**row["details"]["signed"])
        return await self._send(call, stored, content, http)

    async def _probe(
        self, call: xs.FetchCall, content: bytes | None, http: httpx.AsyncClient
    ) -> x402c.Requirements | session_http.Answer:
        req = call.request
        try:
            answer = await session_http.exchange(
                req.method, req.url, headers=req.headers, content=content, http=http, timeout=20.0
            )
        except EgressRefused as exc:
            await self._refuse(call, SessionRefusal(RefusalReason.payment_refused, f"url: {exc.reason}", "url"))
        except x402c.PaymentRefused as exc:
            await self._refuse(call, SessionRefusal(RefusalReason.payment_refused, exc.reason))
        except x402c.AmbiguousResult as exc:  # nothing signed: asking again is safe
            raise ApplicationError(str(exc), type=ErrorType.x402_ambiguous) from None
        if isinstance(answer, session_http.Answer) and answer.too_large:
            await self._refuse(
                call,
                SessionRefusal(
                    RefusalReason.body_too_large, "the answer is over the 1 MiB limit (it asked no payment)", "url"
                ),
            )
        return answer

    async def _refuse(self, call: xs.FetchCall, refusal: SessionRefusal, stage: str = "probe") -> None:
        async with self.engine.begin() as conn:
            await db.set_last_error(conn, uuid.UUID(call.session_id), f"{refusal.reason}: {refusal.message}")
            await append_audit(
                conn,
                tenant_id=call.tenant_id,
                actor=call.request.actor,
                channel=Channel(call.request.channel),
                action=AuditAction.x402_session_refused,
                subject_type=AuditSubject.x402_session,
                subject_id=call.session_id,
                data={
                    "url": call.request.url,
                    "reason": str(refusal.reason),
                    "message": refusal.message,
                    "stage": stage,
                    "request_id": call.request.payment_id,
                },
            )
        raise _refused(refusal)

    @staticmethod
    def _unpaid(answer: session_http.Answer) -> xs.FetchResult:
        body, encoding = _body(answer)
        return xs.FetchResult(status_code=answer.status, headers=answer.all_headers, body=body, body_encoding=encoding)

    async def _sign(self, call: xs.FetchCall, requirements: x402c.Requirements) -> x402c.StoredPayment:
        """Check the price, then record the payment, move its price out of the budget and sign, in one
        transaction: the signed authorization exists only together with its row and its reservation."""
        req = call.request
        network = f"eip155:{call.chain_id}"
        any_price = X402Policy(max_amount_atomic=ANY_PRICE, allowed_assets=[call.token_address], network=network)
        index, reason = choose(requirements.accepts, any_price)
        if index is None:
            await self._refuse(call, SessionRefusal(RefusalReason.payment_refused, reason or "nothing payable"))
        assert index is not None  # _refuse raised otherwise
        chosen = requirements.accepts[index]
        price = requirement_amount(chosen)
        refusal = price_refusal(
            price,
            remaining=call.remaining_atomic,
            max_price=call.max_price_atomic,
            max_amount=req.max_amount_atomic,
        ) or size_refusal(session_http.declared_size(chosen))
        if refusal is not None:
            await self._refuse(call, refusal)
        pid, sid = uuid.UUID(req.payment_id), uuid.UUID(call.session_id)
        policy = X402Policy(max_amount_atomic=price, allowed_assets=[call.token_address], network=network)
        payable = x402c.Requirements(
            version=requirements.version, payment_required={**requirements.payment_required, "accepts": [chosen]}
        )
        limit: str | None = None
        async with self.engine.begin() as conn:
            limit = await self._spending_refusal(call, conn, pay_to=chosen["payTo"], price=price)
            stored = None
            if limit is None:
                if not await db.take_from_session(conn, sid, pid, price):
                    limit = "over_budget: the session's reservation has less left than the price"
            if limit is None:
                stored = await self._record_and_sign(call, conn, payable, chosen, policy, price)
        if limit is not None or stored is None:
            reason_code = RefusalReason.over_budget if (limit or "").startswith("over_budget") else None
            await self._refuse(
                call,
                SessionRefusal(reason_code or RefusalReason.payment_refused, limit or "the x402 client refused"),
                stage="sign",
            )
        assert stored is not None
        return stored

    async def _spending_refusal(
        self, call: xs.FetchCall, conn: AsyncConnection, *, pay_to: str, price: int
    ) -> str | None:
        """The wallet's (and agent's) per-payment rules for this recipient and price: cap, allow/deny lists."""
        refusal = check_static(
            await reservations.load_policy(conn, uuid.UUID(call.wallet_id)),
            to=pay_to,
            asset=call.asset,
            amount_atomic=price,
        )
        if refusal is not None:
            return f"{refusal.limit}: {refusal.message}"
        agent = await load_agent_policy(conn, uuid.UUID(call.requested_by_id))
        if agent is not None:
            if agent[1]:
                return "agent:disabled: the agent is disabled"
            refusal = check_static(agent[0], to=pay_to, asset=call.asset, amount_atomic=price)
            if refusal is not None:
                return f"agent:{refusal.limit}: agent limit: {refusal.message}"
        return None

    async def _record_and_sign(
        self,
        call: xs.FetchCall,
        conn: AsyncConnection,
        payable: x402c.Requirements,
        chosen: dict,
        policy: X402Policy,
        price: int,
    ) -> x402c.StoredPayment | None:
        req = call.request
        pid = uuid.UUID(req.payment_id)
        identifier = f"paygent_{pid.hex}"
        recorded = await record_payment(
            conn,
            NewPayment(
                payment_id=pid,
                tenant_id=uuid.UUID(call.tenant_id),
                requested_by_id=uuid.UUID(call.requested_by_id),
                actor=req.actor,
                channel=Channel(req.channel),
                wallet_id=uuid.UUID(call.wallet_id),
                idempotency_key=f"x402-session:{call.session_id}:{req.payment_id}",
                chain_id=call.chain_id,
                asset=call.asset,
                token_address=call.token_address,
                to=chosen["payTo"],
                amount_atomic=price,
                kind=PaymentKind.x402,
                url=req.url,
                audit_extra={"session_id": call.session_id, "payment_identifier": identifier},
            ),
        )
        signer = await load_signer(conn, uuid.UUID(call.wallet_id), self._master_key)
        try:
            stored = await x402c.sign(payable, signer, policy, payment_identifier=identifier)
        except (x402c.PaymentRefused, NoMatchingRequirementsError):
            return None  # the transaction rolls back: no row, no reservation moved
        finally:
            del signer
        details = {
            **(recorded.row["details"] or {}),
            "url": req.url,
            "method": req.method,
            "requirements": payable.payment_required,
            "requirement": chosen,
            "signed": stored.model_dump(),
            "payment_identifier": identifier,
            "signed_at": datetime.now(UTC).isoformat(),
            "session_id": call.session_id,
        }
        await conn.execute(
            payments.update()
            .where(payments.c.id == pid)
            .values(
                details=details,
                session_id=uuid.UUID(call.session_id),
                workflow_id=f"{session_workflow_id(call.session_id)}/{pid}",
                status=PaymentStatus.submitted,
                updated_at=sa.func.now(),
            )
        )
        await self._audit(
            conn,
            call,
            "x402.signed",
            {
                "url": req.url,
                "payment_identifier": identifier,
                "amount_atomic": str(price),
                "pay_to": chosen["payTo"],
                "valid_before": stored.valid_before,
                "session_id": call.session_id,
            },
        )
        return stored

    @staticmethod
    async def _audit(conn: AsyncConnection, call: xs.FetchCall, action: str, data: dict) -> None:
        await append_audit(
            conn,
            tenant_id=call.tenant_id,
            actor=call.request.actor,
            channel=Channel(call.request.channel),
            action=action,
            subject_type=AuditSubject.payment,
            subject_id=call.request.payment_id,
            data=data,
        )

    async def _send(
        self, call: xs.FetchCall, stored: x402c.StoredPayment, content: bytes | None, http: httpx.AsyncClient
    ) -> xs.FetchResult:
        req = call.request
        price = requirement_amount(stored.requirement)
        try:
            answer = await session_http.exchange(
                req.method, req.url, headers=req.headers, content=content, http=http, timeout=30.0, payment=stored
            )
        except (x402c.AmbiguousResult, EgressRefused) as exc:
            reason = str(exc)
            if activity.info().attempt < AMBIGUOUS_ATTEMPTS and isinstance(exc, x402c.AmbiguousResult):
                raise ApplicationError(reason, type=ErrorType.x402_ambiguous) from None  # re-sends the same
            answer = None
        assert not isinstance(answer, x402c.Requirements)  # a paid request's 402 is an Answer
        settled = answer is not None and answer.settled
        if answer is not None and not settled and answer.status != 402:
            settled = await x402c.authorization_used(self.w3, stored)
        tx_hash = ((answer.receipt or {}).get("transaction") or None) if answer is not None else None
        await self._record_outcome(call, stored, answer, settled=settled, price=price, tx_hash=tx_hash)
        if not settled:
            held = xs.FetchResult(
                status_code=answer.status if answer else 0,
                headers=answer.all_headers if answer else {},
                body="",
                held_atomic=price,
            )
            why = (
                f"the server answered {answer.status} without settling"
                if answer is not None
                else "no answer from the server"
            )
            raise ApplicationError(
                f"{why}: nothing was paid so far; the signed authorization stays valid until {stored.valid_before}, "
                "its amount stays reserved until then and a late settlement is reconciled",
                held,
                type=xs.UNSETTLED,
                non_retryable=True,
            )
        assert answer is not None
        body, encoding = _body(answer) if not answer.too_large else ("", "text")
        return xs.FetchResult(
            status_code=answer.status,
            headers=answer.all_headers,
            body=body,
            body_encoding=encoding,
            paid=xs.Paid(amount_atomic=price, payment_id=req.payment_id, tx_hash=tx_hash),
            body_too_large=answer.too_large,
        )

    async def _record_outcome(
        self,
        call: xs.FetchCall,
        stored: x402c.StoredPayment,
        answer: session_http.Answer | None,
        *,
        settled: bool,
        price: int,
        tx_hash: str | None,
    ) -> None:
        req = call.request
        pid, sid = uuid.UUID(req.payment_id), uuid.UUID(call.session_id)
        async with self.engine.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(payments.c.status, payments.c.details, payments.c.to_address)
                    .where(payments.c.id == pid)
                    .with_for_update()
                )
            ).first()
            assert row is not None  # signed together with its row
            if row.status != PaymentStatus.submitted:
                return  # recorded by an earlier attempt
            details = dict(row.details or {})
            if answer is not None:
                details["response"] = {"status": answer.status, "headers": answer.headers}
                details["receipt"] = answer.receipt
            details["outcome"] = "paid" if settled else "unsettled"
            status = PaymentStatus.confirmed if settled else PaymentStatus.cancelled
            reason = None if settled else "the server did not settle: the authorization is held until it expires"
            await conn.execute(
                payments.update()
                .where(payments.c.id == pid)
                .values(
                    status=status, details=details, tx_hash=tx_hash, failure_reason=reason, updated_at=sa.func.now()
                )
            )
            if settled:
                await reservations.settle_reservation(conn, pid, reservations.COMMITTED)
                await write_payment_entries(
                    conn,
                    tenant_id=call.tenant_id,
                    payment_id=pid,
                    wallet_id=call.wallet_id,
                    to=row.to_address,
                    asset=call.asset,
                    amount_atomic=price,
                    tx_hash=tx_hash,
                )
                await db.add_outcome(conn, sid, spent=price)
            else:
                await db.add_outcome(conn, sid, held=price)
                await db.set_last_error(conn, sid, f"unsettled: {req.url} answered {answer.status if answer else None}")
            await self._audit(
                conn,
                call,
                "x402_session.paid" if settled else "x402_session.unsettled",
                {
                    "session_id": call.session_id,
                    "url": req.url,
                    "amount_atomic": str(price),
                    "payment_identifier": stored.payment_identifier,
                    "status": answer.status if answer else None,
                    "transaction": tx_hash,
                },
            )
