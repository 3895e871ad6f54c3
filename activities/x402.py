"""x402 pay-per-request activities: probe, sign exactly once, send the same signed payment every time.

State lives on the payment row (`payments`, kind "x402") in `details` (JSONB):
`url`, `requirements` (the 402's PaymentRequired JSON), `requirement` (the option chosen), `signed`
(the stored payment: a signed EIP-3009 authorization and its header, never a key),
`payment_identifier`, `attempts` / `send_attempts`, `response` (status, headers, body excerpt),
`receipt` (decoded PAYMENT-RESPONSE), `outcome`, `chain_confirmed` and `refusal`; for a paid MCP tool, `mcp`
(tool and arguments): the same steps then go through paygent/x402/mcp_transport.py instead of HTTP GET.
The invariant: `x402.sign` writes `signed` once, under the row lock, in the transaction that loads
the key; `x402.send` only ever re-sends it. Every refusal, signature and send is audited.
The row's `status` is left to the workflow (`payments.mark_status`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError
from x402.schemas import NoMatchingRequirementsError

from paygent.chain.rpc import async_web3
from paygent.db.accounts import load_signer
from paygent.db.audit import append_audit
from paygent.db.schema import payments
from paygent.domain.audit_names import AuditSubject
from paygent.domain.channels import Channel
from paygent.domain.errors import ErrorType
from paygent.egress import EgressPolicy, EgressRefused
from paygent.settings import Settings
from paygent.x402 import client as x402c
from paygent.x402 import mcp_transport
from paygent.x402.policy import X402Policy, choose, requirement_amount
from workflows import x402_types as x

MAX_ATTEMPTS_KEPT = 20


def _now() -> str:
    return datetime.now(UTC).isoformat()


async def _probe(
    url: str, details: dict[str, Any], egress: EgressPolicy, timeout: float
) -> x402c.Requirements | x402c.Response:
    """An x402 URL, or (details `mcp`: tool and arguments) a paid tool on the MCP server at that URL."""
    call = details.get("mcp")
    if call:
        return await mcp_transport.probe(url, call["tool"], call.get("arguments") or {}, egress=egress, timeout=timeout)
    return await x402c.probe(url, egress=egress, timeout=timeout)


async def _send(
    details: dict[str, Any], stored: x402c.StoredPayment, egress: EgressPolicy, timeout: float
) -> x402c.Response:
    call = details.get("mcp")
    if call:
        return await mcp_transport.send(
            details["url"], call["tool"], call.get("arguments") or {}, stored, egress=egress, timeout=timeout
        )
    return await x402c.send(details["url"], stored, egress=egress, timeout=timeout)


def _state_error(message: str) -> ApplicationError:
    return ApplicationError(message, type=ErrorType.x402_state, non_retryable=True)


class X402Activities:
    """The three x402 activities; register `X402Activities(engine, settings).activities()` on a worker."""

    def __init__(self, engine: AsyncEngine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._master_key = settings.master_key_bytes()
        self.w3 = async_web3(settings.rpc_url)

    def activities(self) -> list:
        return [self.probe, self.sign, self.send]

    def _readable(self, policy: X402Policy) -> X402Policy:
        """The policy whose refusals say amounts in the configured token's units ("0.06 USDC"), its only asset."""
        unit = self.settings.unit
        return policy.model_copy(update={"decimals": unit.decimals, "symbol": unit.symbol})

    async def _row(self, conn: AsyncConnection, payment_id: str, tenant_id: str, *, lock: bool):
        query = sa.select(payments.c.kind, payments.c.tenant_id, payments.c.wallet_id, payments.c.details).where(
            payments.c.id == uuid.UUID(payment_id)
        )
        row = (await conn.execute(query.with_for_update() if lock else query)).first()
        if row is None:
            raise _state_error(f"payment {payment_id} is not recorded")
        if row.kind != x.KIND_X402:
            raise _state_error(f"payment {payment_id} is a {row.kind!r} payment, not x402")
        if str(row.tenant_id) != tenant_id:
            raise _state_error(f"payment {payment_id} belongs to another tenant")
        return row

    async def _save(self, conn: AsyncConnection, payment_id: str, details: dict[str, Any]) -> None:
        await conn.execute(
            payments.update()
            .where(payments.c.id == uuid.UUID(payment_id))
            .values(details=details, updated_at=sa.func.now())
        )

    @staticmethod
    async def _audit(conn: AsyncConnection, tenant_id: str, payment_id: str, action: str, data: dict) -> None:
        await append_audit(
            conn,
            tenant_id=tenant_id,
            actor="system",
            channel=Channel.temporal,
            action=action,
            subject_type=AuditSubject.payment,
            subject_id=payment_id,
            data=data,
        )

    @staticmethod
    def _probe_result(payment_id: str, details: dict[str, Any]) -> x.X402ProbeResult:
        req = details["requirement"]
        return x.X402ProbeResult(
            payment_id=payment_id,
            payment_required=True,
            amount_atomic=requirement_amount(req),
            asset=req["asset"],
            pay_to=req["payTo"],
            network=req["network"],
        )

    @activity.defn(name=x.ACT_X402_PROBE)
    async def probe(self, req: x.X402ProbeRequest) -> x.X402ProbeResult:
        """GET the URL unpaid; record and check a 402's requirements (refusal: X402Refused, nothing signed)."""
        async with self.engine.connect() as conn:
            details = dict((await self._row(conn, req.payment_id, req.tenant_id, lock=False)).details or {})
        if details.get("signed"):
            return self._probe_result(req.payment_id, details)  # the signed requirements are the ones that count
        if details.get("url") not in (None, req.url):
            raise _state_error("the payment was recorded for another URL")
        try:
            answer = await _probe(req.url, details, EgressPolicy.from_settings(self.settings), req.timeout_seconds)
            reason = x402c.check(answer, self._readable(req.policy)) if isinstance(answer, x402c.Requirements) else None
        except x402c.AmbiguousResult as exc:
            raise ApplicationError(str(exc), type=ErrorType.x402_ambiguous) from None
        except x402c.PaymentRefused as exc:
            answer, reason = None, exc.reason
        except EgressRefused as exc:  # e.g. the name resolves elsewhere now than when the API checked it
            answer, reason = None, f"url: {exc.reason}"
        if isinstance(answer, x402c.Response) and answer.status >= 500:
            raise ApplicationError(f"probe answered {answer.status}", type=ErrorType.x402_ambiguous)
        async with self.engine.begin() as conn:
            details = dict((await self._row(conn, req.payment_id, req.tenant_id, lock=True)).details or {})
            if details.get("signed"):
                return self._probe_result(req.payment_id, details)
            details.update(url=req.url, probed_at=_now())
            if isinstance(answer, x402c.Response):
                details.update(response=answer.model_dump(), outcome=x.NO_PAYMENT_REQUIRED)
            elif answer is not None:
                details["requirements"] = answer.model_dump()
                index = choose(answer.accepts, self._readable(req.policy))[0]
                details["requirement"] = answer.accepts[index] if index is not None else None
            if reason:
                details["refusal"] = reason
                await self._audit(
                    conn,
                    req.tenant_id,
                    req.payment_id,
                    "x402.refused",
                    {"url": req.url, "reason": reason, "stage": "probe"},
                )
            await self._save(conn, req.payment_id, details)
        if reason:
            raise ApplicationError(reason, type=ErrorType.x402_refused, non_retryable=True)
        if isinstance(answer, x402c.Response):
            return x.X402ProbeResult(payment_id=req.payment_id, payment_required=False, status_code=answer.status)
        return self._probe_result(req.payment_id, details)

    @staticmethod
    def _sign_result(payment_id: str, stored: x402c.StoredPayment, reused: bool) -> x.X402SignResult:
        return x.X402SignResult(
            payment_id=payment_id,
            payment_identifier=stored.payment_identifier,
            payer=stored.payer,
            authorization_nonce=stored.authorization_nonce,
            amount_atomic=requirement_amount(stored.requirement),
            pay_to=stored.requirement["payTo"],
            asset=stored.requirement["asset"],
            valid_before=stored.valid_before,
            reused=reused,
        )

    @activity.defn(name=x.ACT_X402_SIGN)
    async def sign(self, req: x.X402SignRequest) -> x.X402SignResult:
        """Sign once: under the row lock, load the key, sign, and persist in the same transaction."""
        stored: x402c.StoredPayment | None = None
        reason: str | None = None
        async with self.engine.begin() as conn:
            row = await self._row(conn, req.payment_id, req.tenant_id, lock=True)
            details = dict(row.details or {})
            if details.get("signed"):
                return self._sign_result(req.payment_id, x402c.StoredPayment(**details["signed"]), reused=True)
            if str(row.wallet_id) != req.wallet_id:
                raise _state_error("the payment belongs to another wallet")
            if not details.get("requirements"):
                raise _state_error("the payment has not been probed (no requirements recorded)")
            requirements = x402c.Requirements(**details["requirements"])
            reason = x402c.check(requirements, self._readable(req.policy))
            if reason is None:
                signer = await load_signer(conn, row.wallet_id, self._master_key)
                try:
                    stored = await x402c.sign(
                        requirements, signer, req.policy, payment_identifier=f"paygent_{uuid.UUID(req.payment_id).hex}"
                    )
                except x402c.PaymentRefused as exc:
                    reason = exc.reason
                except NoMatchingRequirementsError as exc:  # the SDK's own spend controls said no
                    reason = f"x402 client refused: {exc}"
                finally:
                    del signer
            if reason:
                details["refusal"] = reason
                await self._audit(
                    conn,
                    req.tenant_id,
                    req.payment_id,
                    "x402.refused",
                    {"url": details.get("url"), "reason": reason, "stage": "sign"},
                )
            else:
                assert stored is not None  # no refusal: x402c.sign answered
                details.update(
                    signed=stored.model_dump(), payment_identifier=stored.payment_identifier, signed_at=_now()
                )
                await self._audit(
                    conn,
                    req.tenant_id,
                    req.payment_id,
                    "x402.signed",
                    {
                        "url": details.get("url"),
                        "payment_identifier": stored.payment_identifier,
                        "payer": stored.payer,
                        "pay_to": stored.requirement["payTo"],
                        "asset": stored.requirement["asset"],
                        "amount_atomic": str(requirement_amount(stored.requirement)),
                        "authorization_nonce": stored.authorization_nonce,
                        "valid_before": stored.valid_before,
                    },
                )
            await self._save(conn, req.payment_id, details)
        if reason:
            raise ApplicationError(reason, type=ErrorType.x402_refused, non_retryable=True)
        assert stored is not None  # no refusal: signed above
        activity.logger.info("x402 payment %s signed (identifier %s)", req.payment_id, stored.payment_identifier)
        return self._sign_result(req.payment_id, stored, reused=False)

    async def _classify(self, resp: x402c.Response, stored: x402c.StoredPayment) -> tuple[str | None, bool, str | None]:
        """(outcome or error type, chain_confirmed, reason): what a paid request's answer means."""
        used = await x402c.authorization_used(self.w3, stored)
        if resp.settled:
            return (x.PAID if resp.status < 400 else x.PAID_SERVER_ERROR), used, None
        if used:  # no successful receipt, but the chain shows this very authorization consumed
            if resp.status == 402:
                return x.PAID_RESPONSE_LOST, True, None
            return (x.PAID if resp.status < 400 else x.PAID_SERVER_ERROR), True, None
        if resp.status < 400:
            return x.SERVED_UNSETTLED, False, None
        if resp.settle_failed_on_server:
            return (
                ErrorType.x402_ambiguous,
                False,
                f"settlement failed on the server side: {(resp.receipt or {}).get('errorReason')}",
            )
        if resp.status == 402:
            verdict = (
                (resp.receipt or {}).get("errorReason")
                or (resp.payment_required or {}).get("error")
                or "payment required again"
            )
            return ErrorType.x402_refused, False, f"the server refused the payment: {verdict}"
        if resp.status >= 500:
            return ErrorType.x402_ambiguous, False, f"the server answered {resp.status} without settling"
        return ErrorType.x402_rejected, False, f"the server answered {resp.status}"

    def _send_result(self, payment_id: str, details: dict[str, Any]) -> x.X402SendResult:
        stored = x402c.StoredPayment(**details["signed"])
        response, receipt = details.get("response") or {}, details.get("receipt") or {}
        return x.X402SendResult(
            payment_id=payment_id,
            outcome=details["outcome"],
            settled=details["outcome"] in x.SETTLED_OUTCOMES,
            status_code=response.get("status", 0),
            transaction=receipt.get("transaction") or None,
            amount_atomic=requirement_amount(stored.requirement),
            pay_to=stored.requirement["payTo"],
            payer=stored.payer,
            replayed=response.get("headers", {}).get("idempotent-replayed") == "true",
            attempts=details.get("send_attempts", 0),
            body_excerpt=response.get("body_excerpt", ""),
        )

    @activity.defn(name=x.ACT_X402_SEND)
    async def send(self, req: x.X402SendRequest) -> x.X402SendResult:
        """Send the stored payment (never a new one); record the answer and the settlement receipt."""
        async with self.engine.connect() as conn:
            details = dict((await self._row(conn, req.payment_id, req.tenant_id, lock=False)).details or {})
        if not details.get("signed"):
            raise _state_error("nothing signed to send")
        if details.get("outcome") in x.SETTLED_OUTCOMES:
            return self._send_result(req.payment_id, details)  # settled and recorded: nothing to re-send
        stored = x402c.StoredPayment(**details["signed"])
        resp = error = None
        try:
            resp = await _send(details, stored, EgressPolicy.from_settings(self.settings), req.timeout_seconds)
            outcome, confirmed, reason = await self._classify(resp, stored)
        except x402c.AmbiguousResult as exc:
            outcome, confirmed, reason, error = ErrorType.x402_ambiguous, False, str(exc), str(exc)
        except EgressRefused as exc:  # nothing was sent: the signed authorization never left Paygent
            outcome, confirmed, reason, error = ErrorType.x402_refused, False, f"url: {exc.reason}", exc.reason
        if resp is not None and outcome not in x.SETTLED_OUTCOMES:
            resp = resp.model_copy(update={"body_excerpt": ""})  # an excerpt is kept only for what was paid for
        async with self.engine.begin() as conn:
            details = dict((await self._row(conn, req.payment_id, req.tenant_id, lock=True)).details or {})
            attempt = {
                "at": _now(),
                "status": resp.status if resp else None,
                "error": error,
                "replayed": bool(resp and resp.headers.get("idempotent-replayed") == "true"),
            }
            details["attempts"] = (details.get("attempts") or [])[-(MAX_ATTEMPTS_KEPT - 1) :] + [attempt]
            details["send_attempts"] = details.get("send_attempts", 0) + 1
            if resp is not None:
                details.update(
                    response=resp.model_dump(exclude={"receipt", "payment_required"}),
                    receipt=resp.receipt,
                    chain_confirmed=confirmed,
                )
            if outcome in (ErrorType.x402_refused, ErrorType.x402_rejected):
                details["refusal"] = reason
            elif outcome != ErrorType.x402_ambiguous:
                details["outcome"] = outcome
            await self._audit(
                conn,
                req.tenant_id,
                req.payment_id,
                "x402.sent",
                {
                    "url": details.get("url"),
                    "payment_identifier": stored.payment_identifier,
                    "attempt": details["send_attempts"],
                    "status": attempt["status"],
                    "error": error,
                    "outcome": outcome,
                    "transaction": (resp.receipt or {}).get("transaction") if resp else None,
                    "reason": reason,
                },
            )
            await self._save(conn, req.payment_id, details)
        if outcome in (ErrorType.x402_refused, ErrorType.x402_rejected):
            raise ApplicationError(reason or f"x402 {outcome}", type=outcome, non_retryable=True)
        if outcome == ErrorType.x402_ambiguous:
            raise ApplicationError(
                reason or f"x402 {outcome}", type=ErrorType.x402_ambiguous
            )  # retryable: the same payment is re-sent
        return self._send_result(req.payment_id, details)
