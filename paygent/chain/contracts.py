"""Compile the project's Vyper contracts (contracts/<name>.vy) with the vyper in this venv.

Compiling takes a few hundred milliseconds, so outputs are cached on disk under
`state_dir()/build`, keyed by a hash of the source text and the compiler version: a repeated call
(in this process or a later one) is a file read, and any change to the source or to vyper
produces a fresh build.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from paygent.paths import CONTRACTS_DIR, state_dir


@dataclass(frozen=True)
class CompiledContract:
    """A compiled contract: its ABI (list of JSON entries) and creation bytecode (0x-hex)."""

    abi: list
    bytecode: str


class CompileError(RuntimeError):
    """vyper rejected a contract (the message carries the compiler's own output)."""


def vyper_binary() -> Path:
    """The `vyper` console script installed beside the running interpreter."""
    return Path(sys.executable).parent / "vyper"


@functools.lru_cache(maxsize=1)
def vyper_version() -> str:
    """The compiler's version (for example `0.4.3`): package metadata, else `vyper --version`."""
    try:
        return importlib.metadata.version("vyper")
    except importlib.metadata.PackageNotFoundError:
        out = subprocess.run([str(vyper_binary()), "--version"], capture_output=True, text=True, check=True)
        return out.stdout.strip()


def _source_path(name: str) -> Path:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"invalid contract name: {name!r}")
    path = CONTRACTS_DIR / f"{name}.vy"
    if not path.is_file():
        raise FileNotFoundError(f"no contract source at {path}")
    return path


def _cache_path(name: str, source: bytes) -> Path:
    key = hashlib.sha256(source + b"\0" + vyper_version().encode()).hexdigest()[:24]
    return state_dir() / "build" / f"{name}-{key}.json"


def _run_vyper(path: Path) -> CompiledContract:
    proc = subprocess.run(
        [str(vyper_binary()), "-f", "abi,bytecode", str(path)], capture_output=True, text=True, cwd=path.parent
    )
    if proc.returncode != 0:
        raise CompileError(f"vyper failed on {path.name}:\n{proc.stderr.strip() or proc.stdout.strip()}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if len(lines) != 2:
        raise CompileError(f"unexpected vyper output for {path.name}: {len(lines)} lines")
    abi = json.loads(lines[0])
    bytecode = lines[1].strip()
    if not bytecode.startswith("0x"):
        bytecode = "0x" + bytecode
    return CompiledContract(abi=abi, bytecode=bytecode)


def compile_contract(name: str) -> CompiledContract:
    """Compile `contracts/<name>.vy` (or load the cached build for the same source and vyper).

    Raises FileNotFoundError for an unknown contract and CompileError if vyper rejects it.
    """
    path = _source_path(name)
    source = path.read_bytes()
    cache = _cache_path(name, source)
    if cache.is_file():
        try:
            data = json.loads(cache.read_text())
            return CompiledContract(abi=data["abi"], bytecode=data["bytecode"])
        except (ValueError, KeyError):
            pass  # a damaged cache entry is rebuilt below
    compiled = _run_vyper(path)
    cache.parent.mkdir(parents=True, exist_ok=True)
    # Write atomically: concurrent test processes may build the same contract at once.
    fd, tmp = tempfile.mkstemp(dir=cache.parent, prefix=f".{name}-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump({"abi": compiled.abi, "bytecode": compiled.bytecode, "vyper": vyper_version()}, fh)
    os.replace(tmp, cache)
    return compiled
