"""Chain tests: Paygent USD, EIP-3009 and x402 settlement on a private anvil."""
