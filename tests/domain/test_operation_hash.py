"""The operation hash binds approvals to exactly one operation: any change changes it, spelling does not."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from paygent.domain.operation_hash import Operation, canonical_operation, operation_hash

TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
TO = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
WALLET = "8f14e45f-ceea-467f-a8a8-1a2b3c4d5e6f"


def op(**over) -> Operation:
    fields = dict(
        chain_id=31337,
        wallet_id=WALLET,
        asset="USDC",
        token_address=TOKEN,
        to=TO,
        amount_atomic=5_000_000_000,
        payment_id="pay-1",
        memo="invoice 7",
    )
    return Operation(**{**fields, **over})


def test_hash_shape_and_pinned_value():
    h = operation_hash(op())
    assert re.fullmatch(r"0x[0-9a-f]{64}", h)
    # Pinned: a change to the canonical form silently invalidates every pending approval, so it must be deliberate.
    assert h == "0x3f74f6126be4825cc854faa7f07f69d32ac6b955fc87604f492c8216d17a3183"
    assert canonical_operation(op()) == (
        b'{"amount_atomic":"5000000000","asset":"USDC","chain_id":31337,"memo":"invoice 7",'
        b'"payment_id":"pay-1","to":"0x70997970C51812dc3A010C7d01b50e0d17dc79C8",'
        b'"token_address":"0x5FbDB2315678afecb367f032d93F642f64180aa3",'
        b'"wallet_id":"8f14e45f-ceea-467f-a8a8-1a2b3c4d5e6f"}'
    )


@pytest.mark.parametrize(
    "change",
    [
        {"chain_id": 1},
        {"wallet_id": "other-wallet"},
        {"asset": "USDT"},
        {"token_address": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"},
        {"to": "0x90F79bf6EB2c4f870365E785982E1f101E93b906"},
        {"amount_atomic": 5_000_000_001},
        {"payment_id": "pay-2"},
        {"memo": None},
        {"memo": "invoice 8"},
        {"memo": ""},
    ],
)
def test_any_field_change_changes_the_hash(change):
    assert operation_hash(op(**change)) != operation_hash(op())


def test_address_and_uuid_spelling_do_not_change_the_hash():
    same = op(to=TO.lower(), token_address=TOKEN.upper().replace("0X", "0x"), wallet_id=WALLET.upper())
    assert same.to == TO and same.token_address == TOKEN
    assert operation_hash(same) == operation_hash(op())


@pytest.mark.parametrize(
    "bad",
    [
        {"to": "0x0000000000000000000000000000000000000000"},
        {"to": "0x1234"},
        {"to": "0x70997970c51812dc3a010c7d01b50e0d17dc79C8"},  # mixed case with a wrong checksum
        {"amount_atomic": 0},
        {"amount_atomic": 2**256},
        {"chain_id": 0},
        {"payment_id": ""},
        {"extra": 1},
    ],
)
def test_invalid_operations_are_refused(bad):
    with pytest.raises(ValidationError):
        op(**bad)


@given(st.integers(min_value=1, max_value=2**256 - 1), st.integers(min_value=1, max_value=2**256 - 1))
def test_amounts_hash_apart_at_any_size(a, b):
    assert (operation_hash(op(amount_atomic=a)) == operation_hash(op(amount_atomic=b))) == (a == b)


@given(st.text(max_size=50), st.text(max_size=50))
def test_memos_hash_apart(a, b):
    assert (operation_hash(op(memo=a)) == operation_hash(op(memo=b))) == (a == b)


def test_round_trip_through_json_keeps_the_hash():
    assert operation_hash(Operation.model_validate_json(op().model_dump_json())) == operation_hash(op())
