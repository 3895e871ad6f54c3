"""EVM addresses: accepted in any case, stored and compared checksummed."""

from __future__ import annotations

from eth_utils import is_address, to_checksum_address

from paygent.domain.errors import InvalidInput


def parse_address(text: object, *, field: str = "to") -> str:
    if not isinstance(text, str) or not text.startswith("0x") or len(text) != 42:
        raise InvalidInput(field, "must be a 0x-prefixed 20-byte hex address")
    if not is_address(text):
        # is_address refuses a mixed-case address whose checksum is wrong
        raise InvalidInput(field, "is not a valid address (bad hex or checksum)")
    checksummed = to_checksum_address(text)
    if int(checksummed, 16) == 0:
        raise InvalidInput(field, "must not be the zero address")
    return checksummed
