"""Apply Alembic migrations programmatically (used by `paygent stack up`, `paygent migrate` and tests)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from paygent.paths import REPO_ROOT


def alembic_config(database_url: str) -> Config:
    cfg = Config(str(REPO_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    cfg.attributes["url"] = database_url
    return cfg


def upgrade(database_url: str, revision: str = "heads") -> None:
    """Synchronous: Alembic's env runs its own event loop, so call this outside a running loop.

    `heads`: feature branches of the migration graph (approvals, agents) apply independently.
    """
    command.upgrade(alembic_config(database_url), revision)
