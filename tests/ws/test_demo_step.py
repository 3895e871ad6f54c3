"""`paygent demo`'s WebSocket step, against the test API: the run is started and followed over the socket."""

from __future__ import annotations

from paygent.cli.demo_ws import stream_run_over_websocket


async def test_the_demo_streams_a_paying_run_over_the_websocket(api_url, dev, capsys):
    finished = await stream_run_over_websocket({"api_url": api_url, "users": dev["users"]})
    shown = capsys.readouterr().out
    assert finished["status"] == "completed"
    assert "<- run_started" in shown and "tool_executing: running pay" in shown
    assert "pay done" in shown and "confirmed. Transaction: 0x" in shown and "<- run_finished: completed" in shown
