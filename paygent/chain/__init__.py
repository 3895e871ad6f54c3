"""EVM adapter: our contracts (compiled from source with vyper), anvil, and web3 helpers."""
