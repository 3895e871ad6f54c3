"""What the audit log calls things: `audit_log.subject_type` (`AuditSubject`) and `audit_log.action` (`AuditAction`).

One spelling rule: an action is `<subject type>.<what happened>`, both snake_case, the subject type singular and
the one the row names (`wallet.created` on a `wallet`, `payment.limit_refused` on a `payment`). Actions that follow
a status are spelled from that status where they are written (`payment.<PaymentStatus>`,
`x402_session.<SessionStatus>`, `agent_run.<RunStatus>`, `approval.<Decision>`), and the reconciler's from
paygent/domain/reconcile.py; they follow the same rule.

Stored strings never change: each row's hash covers them (paygent/domain/audit_chain.py) and readers filter on
them (`GET /v1/audit?action=`). Three actions written before the rule keep their spelling (`LEGACY_SPELLINGS`);
their members are named by the rule.
"""

from __future__ import annotations

from enum import StrEnum


class AuditSubject(StrEnum):
    agent = "agent"
    agent_run = "agent_run"
    approval = "approval"
    approval_policy = "approval_policy"
    memory_scope = "memory_scope"
    paid_service = "paid_service"
    payment = "payment"
    rate_limit = "rate_limit"
    tenant = "tenant"
    thread = "thread"
    user = "user"
    wallet = "wallet"
    webhook = "webhook"
    x402_session = "x402_session"


class AuditAction(StrEnum):
    agent_created = "agent.created"
    agent_disabled = "agent.disabled"
    agent_key_rotated = "agent.key_rotated"
    agent_spending_policy_set = "agent.spending_policy_set"
    agent_run_requested = "agent_run.requested"
    agent_run_cancel_requested = "agent_run.cancel_requested"
    agent_run_cancelled = "agent_run.cancelled"
    approval_decided = "approval.decided"
    approval_policy_saved = "approval_policy.saved"
    approval_policy_deleted = "approval_policy.deleted"
    memory_scope_grant_set = "memory.grant_set"
    paid_service_discovered = "paid_services.discovered"
    payment_requested = "payment.requested"
    payment_reserved = "payment.reserved"
    payment_limit_refused = "payment.limit_refused"
    payment_cancelled = "payment.cancelled"
    payment_receipt_wait_gave_up = "payment.receipt_wait_gave_up"
    payment_swap_approve_signed = "payment.swap_approve_signed"  # a swap's transactions, each signed once
    payment_swap_swap_signed = "payment.swap_swap_signed"
    payment_swap_reset_signed = "payment.swap_reset_signed"
    rate_limit_refused = "ratelimit.refused"
    tenant_master_key_rotated = "wallets.master_key_rotated"
    thread_created = "thread.created"
    thread_archived = "thread.archived"
    thread_deleted = "thread.deleted"
    user_api_key_rotated = "user.api_key_rotated"
    wallet_created = "wallet.created"
    wallet_grants_set = "wallet.grants_set"
    wallet_nonce_filled = "wallet.nonce_filled"  # a lost nonce taken by a no-op so the wallet's queue moves
    wallet_spending_policy_set = "wallet.spending_policy_set"
    webhook_created = "webhook.created"
    webhook_deactivated = "webhook.deactivated"
    x402_session_requested = "x402_session.requested"
    x402_session_reserved = "x402_session.reserved"
    x402_session_limit_refused = "x402_session.limit_refused"
    x402_session_refused = "x402_session.refused"


# Written before the rule, kept as stored (member names follow the rule): the subject's plural, another
# subject's name, a word run together.
LEGACY_SPELLINGS = frozenset(
    {
        AuditAction.memory_scope_grant_set,
        AuditAction.paid_service_discovered,
        AuditAction.rate_limit_refused,
        AuditAction.tenant_master_key_rotated,
    }
)
