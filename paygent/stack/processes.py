"""Processes the stack starts: detached, logged, and remembered by pidfile so `down` stops only its own.

A pidfile (`.paygent/run/<name>.pid`, JSON) records the pid together with the process start time read
from /proc: a pid the kernel has since handed to an unrelated process does not match, so `down` never
signals a stranger. Logs go to `.paygent/logs/<name>.log`; an error about a piece names that file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from paygent.stack.config import StackConfig


class StackError(RuntimeError):
    """A piece of the stack could not start or be used; the message names it and where to look."""


@dataclass
class Record:
    name: str
    pid: int
    start_time: str | None
    address: str
    log: str
    extra: dict = field(default_factory=dict)


def _start_time(pid: int) -> str | None:
    """The process start time in clock ticks since boot (/proc/<pid>/stat field 22), None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = stat.rsplit(")", 1)[1].split()
    return None if rest[0] == "Z" else rest[19]


def pid_alive(pid: int, start_time: str | None = None) -> bool:
    if Path("/proc").is_dir():
        now = _start_time(pid)
        return now is not None and (start_time is None or now == start_time)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def pidfile(cfg: StackConfig, name: str) -> Path:
    return cfg.run_dir / f"{name}.pid"


def log_path(cfg: StackConfig, name: str) -> Path:
    return cfg.log_dir / f"{name}.log"


def remember(cfg: StackConfig, name: str, pid: int, *, address: str, log: Path, **extra) -> Record:
    """Record a process we started (directly, or through a launcher such as pg_ctl)."""
    cfg.ensure_dirs()
    rec = Record(name=name, pid=pid, start_time=_start_time(pid), address=address, log=str(log), extra=extra)
    path = pidfile(cfg, name)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(rec)))
    tmp.replace(path)
    return rec


def running(cfg: StackConfig, name: str) -> Record | None:
    """Our live process called `name`, or None (a stale pidfile is removed)."""
    path = pidfile(cfg, name)
    try:
        rec = Record(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if pid_alive(rec.pid, rec.start_time):
        return rec
    path.unlink(missing_ok=True)
    return None


def start(
    cfg: StackConfig,
    name: str,
    cmd: list[str],
    *,
    address: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[subprocess.Popen, Record]:
    """Start `cmd` in its own session (it outlives `paygent stack up`), output appended to its log."""
    cfg.ensure_dirs()
    log = log_path(cfg, name)
    with open(log, "ab") as out:
        out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} paygent stack: starting {name}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    return proc, remember(cfg, name, proc.pid, address=address, log=log)


def log_tail(log: Path | str, lines: int = 8) -> str:
    try:
        text = Path(log).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line for line in text[-lines:])


def failure(piece: str, reason: str, log: Path | str) -> StackError:
    tail = log_tail(log)
    return StackError(f"{piece} could not start: {reason}\n  see its log: {log}" + (f"\n{tail}" if tail else ""))


def wait_until(
    check: Callable[[], bool],
    *,
    piece: str,
    log: Path | str,
    timeout: float,
    proc: subprocess.Popen | None = None,
    interval: float = 0.1,
) -> None:
    """Poll `check` until it holds; fail early (with the log) if the process we started has exited."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            raise failure(piece, f"the process exited with code {proc.returncode}", log)
        if time.monotonic() > deadline:
            raise failure(piece, f"not ready after {timeout:.0f}s", log)
        time.sleep(interval)


def stop(cfg: StackConfig, name: str, timeout: float = 20.0) -> bool:
    """SIGTERM our process `name` (its whole session), SIGKILL after `timeout`. False if it was not ours/running."""
    rec = running(cfg, name)
    if rec is None:
        return False
    _signal(rec.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(rec.pid, rec.start_time) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(rec.pid, rec.start_time):
        _signal(rec.pid, signal.SIGKILL)
        while pid_alive(rec.pid, rec.start_time) and time.monotonic() < deadline + 5:
            time.sleep(0.05)
    pidfile(cfg, name).unlink(missing_ok=True)
    return True


def _signal(pid: int, sig: int) -> None:
    """Signal the process group when the process leads one (we start with start_new_session), else the pid."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


@dataclass
class Piece:
    """One line of `paygent stack status` / `up`: is it up, who started it, where it answers."""

    name: str
    up: bool
    owner: str  # "stack (pid N)" when we started it, "external" when something else did, "-" when down
    address: str
    note: str = ""

    @classmethod
    def ours(cls, rec: Record, note: str = "") -> Piece:
        return cls(rec.name, True, f"stack (pid {rec.pid})", rec.address, note)
