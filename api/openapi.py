"""The OpenAPI document, told truthfully: what every route can answer, how callers authenticate, and formats.

FastAPI derives a document from the routes' signatures, which says too little: only 2xx and a 422 shaped
unlike ours, no security, `Idempotency-Key` optional, ids as plain strings, the event stream as JSON. This
module completes it in one place, after FastAPI built it, so route modules stay about behaviour:

- every error answer with the one error body (`api.errors.error_body`): 401/403/429 on every authenticated route,
  404 where the path names a resource, 413 where a body is read, 422 where anything is parsed, plus the
  route-specific answers in `EXTRA_ANSWERS`;
- the bearer (API key) security scheme on every route not in `api.authz.PUBLIC_PATHS` (optional on /readyz);
- `Idempotency-Key` required on `POST /v1/payments`;
- formats: ids are uuids, amounts decimal strings with a pattern, addresses 0x-hex, cursors base64url;
- the answers' shapes where the route returns plain dicts (`DOCUMENTED_ANSWERS`), the SSE media type, and
  the WebSocket (`x-websockets`: its client messages' schemas, server messages, close codes).

tests/api/test_api_fuzz.py runs schemathesis against the served app with this document: an answer that the
document does not describe fails the build, so this table cannot silently drift from the routes.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, Field, TypeAdapter
from pydantic.json_schema import JsonDict

from api import ws_messages
from api.authz import PUBLIC_PATHS
from api.routes import ws
from api.routes.approval_policies import PolicyIn
from paygent.domain.payment import PaymentStatus
from workflows.approval_types import Decision

DECIMAL_PATTERN = r"^[0-9]+(\.[0-9]+)?$"
ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
CURSOR_PATTERN = r"^[A-Za-z0-9_=-]*$"  # empty: the first page
APPROVAL_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,200}$"

UUID = {"type": "string", "format": "uuid"}
DECIMAL: JsonDict = {"type": "string", "pattern": DECIMAL_PATTERN, "description": "decimal string in token units"}
ADDRESS: JsonDict = {"type": "string", "pattern": ADDRESS_PATTERN}

# Path and query parameters by name.
PARAMETER_SCHEMAS: dict[str, dict[str, Any]] = {
    "payment_id": UUID,
    "wallet_id": UUID,
    "run_id": UUID,
    "thread_id": UUID,
    "webhook_id": UUID,
    "approval_id": {"type": "string", "pattern": APPROVAL_ID_PATTERN},
    "cursor": {
        "type": "string",
        "pattern": CURSOR_PATTERN,
        "maxLength": 500,
        "description": "`next_cursor` of the previous page, as given",
    },
}
# String properties of request bodies by name.
PROPERTY_SCHEMAS: dict[str, dict[str, Any]] = {
    "wallet_id": {"format": "uuid"},
    "thread_id": {"format": "uuid"},
    "amount": {"pattern": DECIMAL_PATTERN},
    "max_amount": {"pattern": DECIMAL_PATTERN},
    "per_payment_cap": {"pattern": DECIMAL_PATTERN},
    "max": {"pattern": DECIMAL_PATTERN},
    "to": {"pattern": ADDRESS_PATTERN},
    "url": {"format": "uri"},
}


# The statuses inline in each schema (a Literal), not as an enum component of their own.
PaymentStatusField = Literal[
    PaymentStatus.pending,
    PaymentStatus.awaiting_approval,
    PaymentStatus.time_locked,
    PaymentStatus.signing,
    PaymentStatus.submitted,
    PaymentStatus.confirmed,
    PaymentStatus.failed,
    PaymentStatus.cancelled,
    PaymentStatus.refused,
    PaymentStatus.reorged_out,
]


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable, e.g. invalid_input, not_found, forbidden")
    field: str | None = Field(description="the request field at fault, when one is")
    message: str = Field(description="for a person: names the field and the reason")
    type: str | None = Field(None, description="the workflow's refusal type (approval decisions)")


class ErrorBody(BaseModel):
    error: ErrorDetail


class PaymentAccepted(BaseModel):
    id: str = Field(json_schema_extra={"format": "uuid"})
    status: PaymentStatusField
    workflow_id: str


class X402Outcome(BaseModel):
    url: str | None
    outcome: str | None
    refusal: str | None
    response_status: int | None
    response_body_excerpt: str | None
    receipt: dict[str, Any] | None


class Payment(BaseModel):
    id: str = Field(json_schema_extra={"format": "uuid"})
    status: PaymentStatusField
    kind: Literal["transfer", "x402"]
    amount: str = Field(json_schema_extra=DECIMAL)
    amount_atomic: str = Field(pattern=r"^[0-9]+$", description="integer string in the token's atomic units")
    asset: str
    to: str = Field(json_schema_extra=ADDRESS)
    wallet_id: str = Field(json_schema_extra={"format": "uuid"})
    memo: str | None
    tx_hash: str | None
    block_number: int | None
    failure_reason: str | None
    workflow_id: str
    temporal_ui_url: str
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    updated_at: str = Field(json_schema_extra={"format": "date-time"})
    x402: X402Outcome | None = Field(None, description="only for kind x402")
    confirmations: int | None = Field(
        None,
        ge=0,
        description="only while `submitted` (GET of one payment): blocks its transaction is deep, the head counting "
        "as 1 (0: not mined yet; null: the node did not answer)",
    )
    confirmations_required: int | None = Field(
        None, ge=1, description="only while `submitted`: the depth it confirms at (PAYGENT_CONFIRMATIONS)"
    )


class PaymentCancelled(BaseModel):
    id: str = Field(json_schema_extra={"format": "uuid"})
    status: PaymentStatusField
    failure_reason: str | None


# (method, path) -> {status: the answer's model}, for routes that return plain dicts
DOCUMENTED_ANSWERS: dict[tuple[str, str], dict[int, type[BaseModel]]] = {
    ("POST", "/v1/payments"): {202: PaymentAccepted},
    ("GET", "/v1/payments/{payment_id}"): {200: Payment},
    ("POST", "/v1/payments/{payment_id}/cancel"): {200: PaymentCancelled},
}

# (method, path) -> the body's model, for routes that validate a raw body themselves (to name fields their way)
DOCUMENTED_BODIES: dict[tuple[str, str], type[BaseModel]] = {
    ("PUT", "/v1/approval-policy"): PolicyIn,
    ("PUT", "/v1/wallets/{wallet_id}/approval-policy"): PolicyIn,
}

DECISION_REFUSED = "the approval is not in a state that allows this decision (closed, stale hash, ...)"
EXTRA_ANSWERS: dict[tuple[str, str], dict[int, str]] = {
    ("POST", "/v1/payments"): {
        400: "Idempotency-Key missing or longer than 200 characters",
        409: "Idempotency-Key already used for a different request",
        503: "no token is configured on this server",
    },
    ("POST", "/v1/swaps"): {
        400: "Idempotency-Key missing or longer than 200 characters",
        409: "Idempotency-Key already used for a different request",
        503: "no swap router is configured on this server",
    },
    ("GET", "/v1/swaps/quote"): {503: "no swap router is configured on this server"},
    ("POST", "/v1/payments/{payment_id}/cancel"): {409: "already signed or finished: not cancellable"},
    ("POST", "/v1/payments/{payment_id}/edit"): {409: "the payment is not awaiting approval"},
    ("POST", "/v1/wallets"): {409: "a wallet with this name exists"},
    ("POST", "/v1/wallets/{wallet_id}/reconciliation/mismatches/{mismatch_id}/resolve"): {
        409: "the mismatch is resolved already (by an admin, or by the reconciler when the difference went)"
    },
    ("POST", "/v1/agents"): {409: "a user or agent with this name exists"},
    ("POST", "/v1/agent-runs"): {
        404: "thread_id names no thread of the caller",
        409: "the thread is archived or has a run still active",
        503: "Temporal could not start the run; try again",
    },
    ("POST", "/v1/agent-runs/{run_id}/cancel"): {409: "the run already ended"},
    ("DELETE", "/v1/threads/{thread_id}"): {409: "a run is still active in the thread"},
    ("GET", "/v1/memory/items"): {404: "nothing stored under the key in this scope, or it expired"},
    ("PUT", "/v1/memory/items"): {
        409: "if_version does not match the current version",
        503: "the memory cache could not be updated; try again",
    },
    ("DELETE", "/v1/memory/items"): {503: "the memory cache could not be updated; try again"},
    ("DELETE", "/v1/memory/partitions/{partition}"): {503: "the memory cache could not be updated; try again"},
    **{
        ("POST", f"/v1/approvals/{{approval_id}}/{d}"): {
            409: DECISION_REFUSED,
            503: "the approval kept turning decisions away for 10 s (`approval_busy`: too many at once); "
            "nothing was decided, send the same request again",
        }
        for d in (Decision.approve, Decision.reject, Decision.revoke, Decision.cancel, Decision.delegate)
    },
}
NOT_AN_ID = {"partition"}  # path parameters that name a group, not a resource: an empty one is no 404
STANDARD_ANSWERS = {
    401: "no API key, or not a valid one",
    403: "the caller's roles do not allow this",
    404: "nothing with this id in the caller's tenant (another tenant's looks the same)",
    413: "the body is larger than the server's limit (chunked or not)",
    422: "a field is invalid: `error.field` names it, `error.message` says why",
    429: "rate limited (per API key, per address, or after failed authentications): retry after `Retry-After`",
    503: "the database is not accepting connections now (`database_busy`): nothing was done, retry after `Retry-After`",
}
SSE_PATHS = {"/v1/agent-runs/{run_id}/events"}
# OpenAPI describes HTTP only; the WebSocket is described beside the paths, where HTTP clients and fuzzers
# do not mistake it for an HTTP operation.
WEBSOCKET = {
    "summary": "Agent runs over one WebSocket: start, continue, chat, cancel, and follow several runs at once",
    "auth": "`Authorization: Bearer <key>` on the upgrade, or a first `auth` message; the HTTP API's roles and "
    "rate limits apply",
    "server_messages": "`ready`, `pong`, `run_started`, `resuming`, `cancelling`, the run's events (as the SSE "
    "stream sends them), `run_finished`, `resume_needed`, `memory_subscribed`, `memory_changed` {scope, key, op, "
    "version}, and `error` {code, field, message, ref}; answers echo the client message's `ref`",
    "close_codes": {
        str(ws.CLOSE_UNAUTHENTICATED): "not authenticated",
        str(ws.CLOSE_RATE_LIMITED): "rate limited",
        str(ws.CLOSE_SLOW_READER): "the client read nothing for too long: resume on a new socket",
    },
}
# Public, but a key may be sent for more (an admin's key adds /readyz's details); any other key is ignored.
OPTIONAL_AUTH_PATHS = {
    "/readyz": "send no key for the summary; an admin's key adds the details (any other key gets the summary)"
}


def install(app: FastAPI) -> None:
    """Replace `app.openapi` with the completed document (built once, then cached like FastAPI's)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def build(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
        servers=app.servers,
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 shape; ours is ErrorBody
        schemas.pop(name, None)
    _add_models(schemas, [ErrorBody, PaymentAccepted, Payment, PaymentCancelled, PolicyIn])
    schemas["TierIn"]["properties"]["max_amount"] = {  # Any in the model, so a number is refused with a reason
        "anyOf": [DECIMAL, {"type": "null"}],
        "description": "null for the last, unbounded tier",
    }
    doc["components"]["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "An API key: `Authorization: Bearer <key>`"}
    }
    client = TypeAdapter(ws_messages.ClientMessage).json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(client.pop("$defs", {}))
    doc["x-websockets"] = {ws.PATH: {**WEBSOCKET, "client_messages": client}}
    for schema in schemas.values():
        _format_properties(schema)
    for route in iter_route_contexts(app.routes):
        path = route.path_format
        if isinstance(route.original_route, APIRoute) and route.include_in_schema and path is not None:
            for method in route.methods or ():
                _complete(doc["paths"][path][method.lower()], path, method)
    return doc


def _add_models(schemas: dict[str, Any], models: list[type[BaseModel]]) -> None:
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _complete(op: dict[str, Any], path: str, method: str) -> None:
    key = (method, path)
    _complete_parameters(op, key)
    if key in DOCUMENTED_BODIES:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(DOCUMENTED_BODIES[key])}},
        }
    errors = {**_auth_errors(op, path), **_input_errors(op)}
    for status, description in EXTRA_ANSWERS.get(key, {}).items():  # a route's own 503 adds to the standard one
        errors[status] = f"{description}; or {errors[status]}" if status in errors else description
    answers = op.setdefault("responses", {})
    answers.pop("422", None)  # FastAPI's, in its own shape
    for status, description in errors.items():
        answers[str(status)] = {
            "description": description,
            "content": {"application/json": {"schema": _ref(ErrorBody)}},
        }
    for retryable in ("429", "503"):
        if retryable not in answers:
            continue
        answers[retryable]["headers"] = {
            "Retry-After": {
                "description": "seconds until a retry can succeed",
                "schema": {"type": "integer", "minimum": 1},
            }
        }
    for status, model in DOCUMENTED_ANSWERS.get(key, {}).items():
        answers[str(status)]["content"] = {"application/json": {"schema": _ref(model)}}
    if path in SSE_PATHS:
        answers["200"] = {
            "description": "Server-Sent Events: `id:` sequence number, `event:` type, `data:` "
            "the event as JSON; resume with `Last-Event-ID`",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    op["responses"] = dict(sorted(answers.items()))


def _complete_parameters(op: dict[str, Any], key: tuple[str, str]) -> None:
    for param in op.get("parameters", []):
        if param["name"] in PARAMETER_SCHEMAS:
            title = param["schema"].get("title")
            param["schema"] = {**PARAMETER_SCHEMAS[param["name"]], **({"title": title} if title else {})}
        if param["in"] == "header" and param["name"] == "Idempotency-Key":
            param["schema"] = {"type": "string", "minLength": 1, "maxLength": 200}
            if key in (("POST", "/v1/payments"), ("POST", "/v1/swaps")):
                param["required"] = True
                param["description"] = "required: the same key returns the same payment, never a second one"


def _auth_errors(op: dict[str, Any], path: str) -> dict[int, str]:
    """401/403/429 and the bearer scheme where a key is checked (api/ratelimit.py limits the same requests):
    every route but the public ones, and /readyz when a key is sent."""
    public = path in PUBLIC_PATHS
    if public and path not in OPTIONAL_AUTH_PATHS:
        return {}
    op["security"] = [{}, {"bearer": []}] if public else [{"bearer": []}]
    if public:
        op["description"] = f"{op.get('description', '')}\n\nNo key needed: {OPTIONAL_AUTH_PATHS[path]}."
        return {}  # a key only adds to the answer: never a 401, 403 or 429 here
    return {status: STANDARD_ANSWERS[status] for status in (401, 403, 429, 503)}


def _input_errors(op: dict[str, Any]) -> dict[int, str]:
    """404 where the path names a resource, 413 where a body is read, 422 where a body, query or header is
    parsed (a malformed id in the path names nothing: 404)."""
    params = op.get("parameters", [])
    errors: dict[int, str] = {}
    if any(p["in"] == "path" and p["name"] not in NOT_AN_ID for p in params):
        errors[404] = STANDARD_ANSWERS[404]
    if "requestBody" in op:
        errors[413] = STANDARD_ANSWERS[413]
    if "requestBody" in op or any(p["in"] != "path" for p in params):
        errors[422] = STANDARD_ANSWERS[422]
    return errors


def _format_properties(schema: dict[str, Any]) -> None:
    """Add formats and patterns to string properties named in PROPERTY_SCHEMAS (also inside anyOf/items)."""
    for name, prop in (schema.get("properties") or {}).items():
        extra = PROPERTY_SCHEMAS.get(name)
        if extra:
            for variant in [prop, *prop.get("anyOf", [])]:
                if variant.get("type") == "string" and "format" not in variant and "pattern" not in variant:
                    variant.update(extra)
    for name in ("allowlist", "denylist"):
        prop = (schema.get("properties") or {}).get(name)
        for variant in [prop, *(prop or {}).get("anyOf", [])] if prop else []:
            if variant.get("type") == "array" and variant.get("items", {}).get("type") == "string":
                variant["items"] = dict(ADDRESS)
