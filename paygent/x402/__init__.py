"""x402 pay-per-request: a local paid service and an exactly-once paying client.

- `paygent.x402.policy`: pure rules deciding whether a server's payment requirements may be paid
  (no SDK, no I/O; safe to import from workflows).
- `paygent.x402.client`: probe -> check -> sign (persist) -> send, with the official `x402` SDK client.
- `paygent.x402.paid_service`: a FastAPI service priced with the official x402 server middleware,
  settling on anvil through the SDK's facilitator logic run in-process (`python -m paygent.x402`).

This package imports nothing heavy at import time, so importing `paygent.x402.policy` stays cheap.
"""
