"""Reading a decision Signal's body when the workflow's payload converter cannot (ApprovalWorkflow's Signal
handlers take raw payloads so that no Signal is dropped before a handler sees it).

Pure and deterministic: no I/O, usable inside the workflow sandbox.
"""

from __future__ import annotations

import json
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue

NO_BODY = RawValue(Payload())  # a Signal sent with no input at all
SHOWN_BYTES = 4000


def decode_signal_body(payload: Payload, error: Exception) -> tuple[Any, str | None]:
    """(body, problem): the body read leniently, with `problem` None when it could be read after all.

    JSON is read with the standard library, which keeps what stricter parsers reject (an unpaired surrogate
    escape, say): the decision's own validation then refuses the offending field by name. Anything else (no
    body, another encoding, not JSON) is shown as text and refused with the converter's error."""
    encoding = payload.metadata.get("encoding", b"").decode("utf-8", "replace")
    text = payload.data[:SHOWN_BYTES].decode("utf-8", "replace")
    if not payload.data and not encoding:
        return None, "the Signal carried no body: send the decision as JSON (--input '{...}')"
    if encoding == "json/plain":
        try:
            return json.loads(payload.data), None
        except ValueError:
            pass
    return text, f"the Signal's body could not be decoded ({encoding or 'no encoding'}): {str(error)[:500]}"
