"""The `paygent` command (typer): `main` is the console script; each group of verbs is a module here, and the
demos (`paygent demo`) too. The composition root: it may import any layer (docs/ARCHITECTURE.md)."""

from paygent.cli.main import app, main

__all__ = ["app", "main"]
