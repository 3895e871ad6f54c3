"""Run the local paid service as a process: `python -m paygent.x402 [--host 127.0.0.1] [--port 8402]`.

Configuration comes from `paygent.settings` (environment `PAYGENT_RPC_URL`, `PAYGENT_TOKEN_ADDRESS`,
else `.paygent/dev.json` written by `paygent stack up`). Payments go to anvil dev account 8 (or
`PAYGENT_X402_PAY_TO`); anvil dev account 9 is the facilitator that submits settlements and pays
their gas. Both are anvil's public test accounts: dev use only. No key is ever printed.
"""

from __future__ import annotations

import argparse
import logging
import os

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8402
PAY_TO_ACCOUNT_INDEX = 8
FACILITATOR_ACCOUNT_INDEX = 9

log = logging.getLogger("paygent.x402")


def build_app(settings=None):
    """The paid service configured from settings and the anvil dev accounts 8 (pay to) and 9 (facilitator)."""
    from paygent.chain.anvil import dev_account
    from paygent.settings import Settings
    from paygent.x402.paid_service import create_paid_service

    settings = settings or Settings()
    if not settings.token_address:
        raise SystemExit("no token address: set PAYGENT_TOKEN_ADDRESS or run `paygent stack up` first")
    pay_to = os.environ.get("PAYGENT_X402_PAY_TO") or dev_account(PAY_TO_ACCOUNT_INDEX).address
    facilitator = dev_account(FACILITATOR_ACCOUNT_INDEX)
    log.info(
        "x402 paid service: rpc %s, token %s, pay to %s, facilitator %s",
        settings.rpc_url,
        settings.token_address,
        pay_to,
        facilitator.address,
    )
    return create_paid_service(
        settings.rpc_url, settings.token_address, pay_to, facilitator.key.hex(), redis_url=settings.redis_url
    )


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, settings=None) -> None:
    """Serve the paid service with uvicorn until interrupted (readiness: GET /healthz answers 200)."""
    import uvicorn

    uvicorn.run(build_app(settings), host=host, port=port, log_level="warning")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m paygent.x402", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("PAYGENT_X402_HOST", DEFAULT_HOST))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PAYGENT_X402_PORT", DEFAULT_PORT)))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
