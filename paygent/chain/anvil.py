"""Start a local anvil chain (from the npm package @foundry-rs/anvil)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from paygent.netutil import wait_port
from paygent.paths import anvil_binary

# anvil's well-known development mnemonic: its accounts are public test keys, funded with 10,000 ETH each.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_CHAIN_ID = 31337


def anvil_command(
    port: int, *, chain_id: int = DEV_CHAIN_ID, state_file: Path | None = None, block_time: int | None = None
) -> list[str]:
    binary = anvil_binary()
    if not binary.exists():
        raise FileNotFoundError(f"anvil not found at {binary}: run `npm ci` in the repository root")
    cmd = [str(binary), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(chain_id), "--silent"]
    if state_file is not None:
        cmd += ["--state", str(state_file)]
    if block_time is not None:
        cmd += ["--block-time", str(block_time)]
    return cmd


def start_anvil(port: int, *, log_file: Path | None = None, **kwargs) -> subprocess.Popen:
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    proc = subprocess.Popen(anvil_command(port, **kwargs), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_port("127.0.0.1", port, timeout=20, what="anvil")
    except TimeoutError:
        proc.kill()
        raise
    return proc


def dev_account(index: int):
    """The anvil dev account at `index` (eth_account LocalAccount). Dev/test use only."""
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
