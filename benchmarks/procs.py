"""The running stack's processes, read from /proc: memory and CPU time of the pieces `paygent stack up` started.

Pids come from `$PAYGENT_HOME/run/<piece>.pid`; each figure covers the process and its descendants (uvicorn or
Temporal may fork). A piece that is not ours (not in the run directory, or gone) reads as None.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from paygent.paths import state_dir

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def stack_pid(piece: str) -> int | None:
    try:
        pid = int(json.loads((state_dir() / "run" / f"{piece}.pid").read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def family(pid: int) -> list[int]:
    """`pid` and every descendant (through each thread's children list)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return out


def rss_mb(piece: str) -> float | None:
    """Resident memory of the piece and its children, in MB."""
    pid = stack_pid(piece)
    if pid is None:
        return None
    total = 0
    for p in family(pid):
        try:
            lines = Path(f"/proc/{p}/status").read_text().splitlines()
        except OSError:
            continue
        total += sum(int(line.split()[1]) for line in lines if line.startswith("VmRSS:"))
    return round(total / 1024, 1)


def cpu_seconds(piece: str) -> float | None:
    """User + system CPU time the piece (and its living children) has used so far."""
    pid = stack_pid(piece)
    if pid is None:
        return None
    ticks = 0
    for p in family(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return ticks / CLOCK_TICKS


def cpu_snapshot(pieces: tuple[str, ...] = ("worker", "temporal", "api")) -> dict[str, float | None]:
    return {piece: cpu_seconds(piece) for piece in pieces}


def cpu_used(before: dict[str, float | None], after: dict[str, float | None]) -> dict[str, float] | None:
    """CPU-seconds each piece used between two snapshots; None unless every piece is ours and still running."""
    if any(v is None for v in (*before.values(), *after.values())):
        return None
    return {k: after[k] - before[k] for k in before}  # type: ignore[operator]
