"""Where the project's files and bundled tools live. Pure path arithmetic, no I/O at import."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CONTRACTS_DIR = REPO_ROOT / "contracts"


def state_dir() -> Path:
    """The per-checkout directory for generated state (`.paygent/`), overridable for tests."""
    return Path(os.environ.get("PAYGENT_HOME", REPO_ROOT / ".paygent"))


def dev_json_path() -> Path:
    return state_dir() / "dev.json"


def venv_bin(name: str) -> Path:
    """A console script installed beside the running interpreter (temporal, temporal-test-server...)."""
    return Path(sys.executable).parent / name


def temporal_cli() -> Path:
    return venv_bin("temporal")


def temporal_test_server() -> Path:
    return venv_bin("temporal-test-server")


def anvil_binary() -> Path:
    """anvil ships inside the npm optional dependency for this platform (npm 11 skips its postinstall)."""
    machine = os.uname().machine
    arch = "arm64" if machine in ("aarch64", "arm64") else "amd64"
    return REPO_ROOT / "node_modules" / "@foundry-rs" / f"anvil-linux-{arch}" / "bin" / "anvil"
