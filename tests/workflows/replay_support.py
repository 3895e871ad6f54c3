"""What replaying a recorded history needs: the worker's workflows, sandbox, data converter and interceptors (as
workers/main.py `build_worker` sets them), and the fixture files under tests/workflows/histories/.

A fixture directory is named after the code that recorded it (a commit or a change); each file in it is one
workflow execution's history, `<WorkflowType>-<scenario>.json.gz` (or `.json`), as `WorkflowHistory.to_json` wrote it.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workers.main import WORKFLOWS, interceptors, workflow_runner

HISTORIES_ROOT = Path(__file__).parent / "histories"

WORKER_WORKFLOWS = WORKFLOWS  # every workflow the worker runs must be replayable here


def replayer() -> Replayer:
    return Replayer(
        workflows=WORKER_WORKFLOWS,
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
        interceptors=interceptors(),
    )


def fixture_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.endswith((".json", ".json.gz")))


def workflow_type(path: Path) -> str:
    return path.name.split("-", 1)[0]


def load_history(path: Path) -> WorkflowHistory:
    """The history in `path`; its workflow id is the file's name, so a failure names the file."""
    raw = path.read_bytes()
    text = gzip.decompress(raw).decode() if path.name.endswith(".gz") else raw.decode()
    return WorkflowHistory.from_json(path.name.removesuffix(".gz").removesuffix(".json"), text)


def write_history(path: Path, history: WorkflowHistory) -> None:
    """Gzipped with no timestamp in the header, so recording the same history twice gives the same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(history.to_json().encode(), compresslevel=9, mtime=0))


async def replay_all(histories: list[WorkflowHistory]) -> dict[str, str]:
    """Replay each history on today's code; the failures by workflow id (the file name when loaded from one)."""
    by_run = {h.run_id: h.workflow_id for h in histories}

    async def each():
        for history in histories:
            yield history

    results = await replayer().replay_workflows(each(), raise_on_replay_failure=False)
    return {
        by_run.get(run_id, run_id): f"{type(err).__name__}: {err}" for run_id, err in results.replay_failures.items()
    }
