"""Custom search attributes: what operators filter on in the Temporal Web UI and `temporal workflow list`.

`paygent stack up` registers them on the dev server; tests register them on theirs.
Example saved query for pending approvals: `PaygentApprovalState = "pending"`.
"""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from paygent.domain.money import format_money
from paygent.domain.payment import PaymentRequest, PaymentStatus

STATUS = SearchAttributeKey.for_keyword("PaygentStatus")
TENANT = SearchAttributeKey.for_keyword("PaygentTenant")
KIND = SearchAttributeKey.for_keyword("PaygentKind")
ASSET = SearchAttributeKey.for_keyword("PaygentAsset")
# Atomic units; an Int search attribute holds int64, ample for display and range queries: a larger amount shows
# as INT64_MAX.
AMOUNT = SearchAttributeKey.for_int("PaygentAmount")
INT64_MAX = 2**63 - 1
# The same amount as a person reads it ("102 USDC", exact at any size), beside PaygentAmount in the Web UI.
AMOUNT_TEXT = SearchAttributeKey.for_keyword("PaygentAmountText")
APPROVAL_STATE = SearchAttributeKey.for_keyword("PaygentApprovalState")
APPROVALS_HAD = SearchAttributeKey.for_int("PaygentApprovalsHad")
APPROVALS_NEEDED = SearchAttributeKey.for_int("PaygentApprovalsNeeded")
# Set on a reconcile run: "mismatch" once it finds a chain movement no payment explains, else "clean"
# (`PaygentReconcile = "mismatch"` lists those runs). A Keyword: the dev server allows only three Int attributes.
RECONCILE = SearchAttributeKey.for_keyword("PaygentReconcile")
RECONCILE_MISMATCH, RECONCILE_CLEAN = "mismatch", "clean"

ALL = (STATUS, TENANT, KIND, ASSET, AMOUNT, AMOUNT_TEXT, APPROVAL_STATE, APPROVALS_HAD, APPROVALS_NEEDED, RECONCILE)
INTS = (AMOUNT, APPROVALS_HAD, APPROVALS_NEEDED)


def payment_attributes(req: PaymentRequest, *, amount_text: bool = True) -> TypedSearchAttributes:
    """A PaymentWorkflow's attributes at its start: the API's starts (paygent/payment_start.py) and an agent run's
    child payments (workflows/agent_pay.py, where `amount_text` is behind a patch) set the same ones."""
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(STATUS, PaymentStatus.pending),
        SearchAttributePair(TENANT, req.tenant_id),
        SearchAttributePair(KIND, req.kind),
        SearchAttributePair(ASSET, req.asset),
        SearchAttributePair(AMOUNT, min(req.amount_atomic, INT64_MAX)),
    ]
    if amount_text:
        pairs.append(SearchAttributePair(AMOUNT_TEXT, format_money(req.amount_atomic, req.decimals, req.asset)))
    return TypedSearchAttributes(pairs)


def cli_flags() -> list[str]:
    """`--search-attribute Name=Type` flags for `temporal server start-dev`."""
    flags: list[str] = []
    for key in ALL:
        kind = "Int" if key in INTS else "Keyword"
        flags += ["--search-attribute", f"{key.name}={kind}"]
    return flags
