"""The OpenAPI document tells the truth a generated client needs: auth, required headers, formats, error
answers with the error body, the event stream's media type. (The fuzz test checks the answers against it.)"""

from __future__ import annotations

import re

import jsonschema_rs  # schemathesis' own validator
import pytest

from api.authz import PUBLIC_PATHS
from tests.api.helpers import auth, create, new_recipient, payment_body, wait_final


@pytest.fixture(scope="module")
async def doc(http) -> dict:
    r = await http.get("/openapi.json")
    assert r.status_code == 200
    return r.json()


def operations(doc):
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            yield method.upper(), path, op


async def test_bearer_scheme_on_every_route_but_the_public_ones(doc):
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer <key>`",
    }
    for method, path, op in operations(doc):
        if path == "/readyz":  # public; an admin's key adds details, any other key is ignored (never 401/403)
            assert op["security"] == [{}, {"bearer": []}] and not {"401", "403", "429"} & set(op["responses"])
        elif path in PUBLIC_PATHS:
            assert "security" not in op and "401" not in op["responses"], (method, path)
        else:
            assert op["security"] == [{"bearer": []}], (method, path)
            assert {"401", "403", "429"} <= set(op["responses"]), (method, path)
            assert "Retry-After" in op["responses"]["429"]["headers"]


async def test_every_error_answer_uses_the_error_body(doc):
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    error = doc["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["error"]
    for method, path, op in operations(doc):
        for status, answer in op["responses"].items():
            if status.startswith("4"):
                assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
            if re.search(r"\{\w+_id\}", path) and path not in PUBLIC_PATHS:  # a path naming a resource
                assert "404" in op["responses"], (method, path)
        if "requestBody" in op:
            assert {"413", "422"} <= set(op["responses"]), (method, path)


async def test_idempotency_key_is_required_to_create_a_payment(doc):
    params = {p["name"]: p for p in doc["paths"]["/v1/payments"]["post"]["parameters"]}
    assert params["Idempotency-Key"]["required"] is True
    assert params["Idempotency-Key"]["schema"] == {"type": "string", "minLength": 1, "maxLength": 200}
    assert set(doc["paths"]["/v1/payments"]["post"]["responses"]) == {
        "202",
        "400",
        "401",
        "403",
        "409",
        "413",
        "422",
        "429",
        "503",
    }


async def test_formats_ids_amounts_addresses_and_enums(doc):
    schemas = doc["components"]["schemas"]
    path_id = doc["paths"]["/v1/payments/{payment_id}"]["get"]["parameters"][0]
    assert path_id["schema"]["format"] == "uuid"
    create = schemas["PaymentCreate"]["properties"]
    assert create["wallet_id"]["format"] == "uuid"
    assert re.match(create["amount"]["pattern"], "12.50") and not re.match(create["amount"]["pattern"], "1e3")
    assert re.match(create["to"]["pattern"], "0x" + "ab" * 20)
    payment = schemas["Payment"]["properties"]
    assert payment["created_at"]["format"] == "date-time" and payment["id"]["format"] == "uuid"
    assert {"pending", "awaiting_approval", "confirmed", "failed", "cancelled", "refused"} <= set(
        payment["status"]["enum"]
    )
    assert set(payment["kind"]["enum"]) == {"transfer", "x402"}
    accepted = doc["paths"]["/v1/payments"]["post"]["responses"]["202"]["content"]["application/json"]
    assert accepted["schema"] == {"$ref": "#/components/schemas/PaymentAccepted"}


async def test_event_stream_is_documented_as_server_sent_events(doc):
    answer = doc["paths"]["/v1/agent-runs/{run_id}/events"]["get"]["responses"]["200"]
    assert list(answer["content"]) == ["text/event-stream"]


def answer_schema(doc: dict, method: str, path: str, status: int):
    """A validator for the documented answer, formats checked, references resolved in the document."""
    schema = doc["paths"][path][method.lower()]["responses"][str(status)]["content"]["application/json"]["schema"]
    return jsonschema_rs.Draft202012Validator({**schema, "components": doc["components"]}, validate_formats=True)


async def test_real_answers_match_the_documented_shapes(doc, http, dev):
    """What the fuzzer cannot reach (a payment that exists) is checked here against the same document."""
    r = await create(http, dev, payment_body(dev, new_recipient(), amount="1.25"))
    assert r.status_code == 202, r.text
    answer_schema(doc, "POST", "/v1/payments", 202).validate(r.json())
    final = await wait_final(http, dev, r.json()["id"])
    assert final["status"] == "confirmed"
    r = await http.get(f"/v1/payments/{final['id']}", headers=auth(dev))
    answer_schema(doc, "GET", "/v1/payments/{payment_id}", 200).validate(r.json())
    r = await http.post(f"/v1/payments/{final['id']}/cancel", headers=auth(dev))
    assert r.status_code == 409, r.text
    answer_schema(doc, "POST", "/v1/payments/{payment_id}/cancel", 409).validate(r.json())
    r = await http.get("/readyz", headers=auth(dev, "alice"))
    answer_schema(doc, "GET", "/readyz", 200).validate(r.json())
    bad = dict(r.json(), status="fine")  # the validator does refuse what the document rules out
    assert not answer_schema(doc, "GET", "/readyz", 200).is_valid(bad)


async def test_the_websocket_is_described_beside_the_paths(doc):
    described = doc["x-websockets"]["/v1/ws"]
    assert "/v1/ws" not in doc["paths"]  # not an HTTP operation
    assert set(described["client_messages"]["discriminator"]["mapping"]) == {
        "auth",
        "start_agent",
        "user_message",
        "chat",
        "cancel",
        "resume",
        "ping",
        "subscribe_memory",
    }
    assert set(described["close_codes"]) == {"4401", "4429", "4408"}
    validator = jsonschema_rs.Draft202012Validator({**described["client_messages"], "components": doc["components"]})
    assert validator.is_valid({"type": "resume", "run_id": "6f1c2a52-8f0e-4d7e-9a55-0c1b5e1d2a10", "last_seq": 3})
    assert not validator.is_valid({"type": "resume", "run_id": "x", "last_seq": -1})
    assert not validator.is_valid({"type": "transfer_all_funds"})
