"""EVM addresses: accepted in any case, stored and compared checksummed."""

from __future__ import annotations

from eth_utils import is_checksum_address, is_hex_address, to_checksum_address

from paygent.domain.errors import InvalidInput


def parse_address(text: object, *, field: str = "to") -> str:
    if not isinstance(text, str) or not text.startswith("0x") or len(text) != 42:
        raise InvalidInput(field, "must be a 0x-prefixed 20-byte hex address")
    if not is_hex_address(text):
        raise InvalidInput(field, "is not a valid address (not hex)")
    body = text[2:]
    mixed_case = body != body.lower() and body != body.upper()
    if mixed_case and not is_checksum_address(text):
        # a mixed-case address carries an EIP-55 checksum: a wrong one means a typo, so refuse it
        raise InvalidInput(field, "has an invalid EIP-55 checksum")
    checksummed = to_checksum_address(text)
    if int(checksummed, 16) == 0:
        raise InvalidInput(field, "must not be the zero address")
    return checksummed
