"""How refusals and failures are named: `InvalidInput` at the edges, `ErrorType` for Temporal's ApplicationErrors.

Every `ApplicationError(type=...)` an activity or workflow raises, and every `non_retryable_error_types` entry a
retry policy names, is a member of `ErrorType`: a retry policy can only name what something raises. (x402's own
types are here too; their meaning is documented in workflows/x402_types.py.)
"""

from __future__ import annotations

from enum import StrEnum


class InvalidInput(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ErrorType(StrEnum):
    # an activity whose failure is the data itself (the database refused a value): the same input fails the same
    # way on every attempt, so it is never retried and every workflow turns it into a clean end
    data_refused = "DataRefused"
    # approval refusals (paygent.domain.approval_rules raises them as `Refusal`; api/approval_http.py maps them)
    approval_closed = "ApprovalClosed"
    stale_operation = "StaleOperation"
    self_approval = "SelfApproval"
    not_an_approver = "NotAnApprover"
    delegation_ended = "DelegationEnded"
    threshold_met = "ThresholdMet"
    not_initiator = "NotInitiator"
    nothing_to_revoke = "NothingToRevoke"
    not_allowed = "NotAllowed"
    invalid_request = "InvalidRequest"
    no_change = "NoChange"
    unsatisfiable = "Unsatisfiable"
    # another tenant's approval (the Update validator compares the caller's tenant with the state's): the API
    # answers exactly as for an approval that does not exist
    approval_not_found = "ApprovalNotFound"
    signal_decisions_off = "SignalDecisionsOff"  # PAYGENT_SIGNAL_DECISIONS=off: decisions by the API or CLI only
    # payments
    step_failed = "StepFailed"  # a payment step's activity failed (workflows/failures.StepFailed); cause attached
    payment_not_cancellable = "PaymentNotCancellable"  # the `cancel` Update's validator, once signing began
    payment_missing = "PaymentMissing"  # signing or broadcasting a payment that has no row
    payment_not_recorded = "PaymentNotRecorded"  # a status change for a payment that has no row
    payment_closed = "PaymentClosed"  # asked to sign a payment that already ended
    not_signed = "NotSigned"  # asked to broadcast before anything was signed
    nonce_conflict = "NonceConflict"  # another transaction holds the nonce (retryable: re-read the chain)
    wallet_missing = "WalletMissing"  # the paying wallet was deleted (paygent.db.accounts.WalletMissing)
    # swaps (activities/swaps.py)
    swap_refused = "SwapRefused"  # a guard refused (the re-quote moved past the minimum): nothing was signed
    # the chain follower (activities/chain_follower.py)
    receipt_wait_lost = "ReceiptWaitLost"  # a wait's registration died with its worker: retried, it registers again
    worker_stopping = "WorkerStopping"  # the follower's worker is shutting down: retried, on another worker
    chain_mismatch = "ChainMismatch"  # the node answers another chain id than the follower was started for
    # x402 (workflows/x402_types.py)
    x402_refused = "X402Refused"
    x402_rejected = "X402Rejected"
    x402_ambiguous = "X402Ambiguous"
    x402_state = "X402State"
    # agent runs
    agent_run_missing = "AgentRunMissing"
    agent_run_failed = "AgentRunFailed"
    llm_permanent = "LlmPermanentError"
    llm_retryable = "LlmRetryable"
    # webhooks
    webhook_refused = "WebhookRefused"  # the egress policy refuses its URL
    webhook_unreachable = "WebhookUnreachable"
    webhook_unavailable = "WebhookUnavailable"  # 5xx or 429: retried
    webhook_rejected = "WebhookRejected"  # another 4xx: not retried
    webhook_gone = "WebhookGone"
