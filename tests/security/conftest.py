"""The security tests use the real x402 paid service (exempted from the egress policy per test)."""

from tests.x402.conftest import new_payer, paid_service, policy, w3  # noqa: F401  (pytest fixtures)
