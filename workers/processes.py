"""`paygent worker --processes N`: N ordinary worker processes on the same task queue, supervised by one.

Why several: one Python process runs all of its workflow code and activity bookkeeping on one core (the GIL);
Temporal hands tasks to whichever poller asks first, so a second process uses a second core with no other
change. Each child is `python -m workers.main`, configured by the same environment. The parent forwards
SIGTERM/SIGINT, and when any child ends on its own it stops the others and exits with that child's code, so
whatever supervises the parent (`paygent stack`, a container runtime) sees the failure instead of a worker
silently running at a fraction of its size.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

POLL_SECONDS = 0.5


def run_processes(count: int, stop_timeout: float = 20.0) -> int:
    children = [subprocess.Popen([sys.executable, "-m", "workers.main"]) for _ in range(count)]
    stopping = False

    def forward(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = 0
    while any(child.poll() is None for child in children):
        ended = [child for child in children if child.poll() is not None]
        if ended and not stopping:  # one died by itself: take the rest down and report it
            code = ended[0].returncode or 1
            forward(signal.SIGTERM, None)
        time.sleep(POLL_SECONDS)
        if stopping:
            deadline = time.monotonic() + stop_timeout
            while any(c.poll() is None for c in children) and time.monotonic() < deadline:
                time.sleep(0.1)
            for child in children:
                if child.poll() is None:
                    child.kill()
    return code
