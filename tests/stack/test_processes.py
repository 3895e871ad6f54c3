"""Pidfiles: `down` signals only a process the stack started, never one that merely reuses its pid."""

from __future__ import annotations

import json
import subprocess

from paygent.stack import processes
from paygent.stack.config import StackConfig


def _cfg(tmp_path, monkeypatch) -> StackConfig:
    monkeypatch.setenv("PAYGENT_HOME", str(tmp_path))
    return StackConfig.load()


def test_start_records_and_stop_ends_the_whole_session(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path, monkeypatch)
    # a shell with a child: stop() must end both (the process group), not orphan the child
    proc, rec = processes.start(cfg, "sleeper", ["sh", "-c", "sleep 60 & echo started; wait"], address="-")
    assert processes.running(cfg, "sleeper").pid == proc.pid
    assert processes.stop(cfg, "sleeper", timeout=5)
    assert proc.wait(timeout=5) is not None
    assert processes.running(cfg, "sleeper") is None
    assert not processes.pidfile(cfg, "sleeper").exists()
    assert "starting sleeper" in processes.log_path(cfg, "sleeper").read_text()


def test_a_reused_pid_is_not_ours(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path, monkeypatch)
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        rec = processes.remember(cfg, "temporal", stranger.pid, address="-", log=tmp_path / "x.log")
        path = processes.pidfile(cfg, "temporal")
        path.write_text(json.dumps({**json.loads(path.read_text()), "start_time": "1"}))  # recorded earlier
        assert processes.running(cfg, "temporal") is None
        assert not processes.stop(cfg, "temporal")
        assert stranger.poll() is None, "a process the stack did not start was signalled"
        assert rec.pid == stranger.pid
    finally:
        stranger.kill()
        stranger.wait()


def test_wait_until_names_the_piece_and_its_log(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path, monkeypatch)
    proc, rec = processes.start(cfg, "broken", ["sh", "-c", "echo boom: port in use; exit 3"], address="-")
    try:
        processes.wait_until(lambda: False, piece="broken thing", log=rec.log, timeout=10, proc=proc)
    except processes.StackError as exc:
        text = str(exc)
    assert "broken thing could not start" in text and "exited with code 3" in text
    assert rec.log in text and "boom: port in use" in text
