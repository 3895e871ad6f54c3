"""The `paygent` command. Sub-commands live beside the code they drive and are attached here."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Paygent: a durable control plane for "
                  "AI agents that spend money.")


def _attach() -> None:
    """Attach sub-command groups; each module owns its commands."""
    import importlib

    for module, name in (
        ("paygent.stack.cli", "stack"),
    ):
        try:
            sub = importlib.import_module(module)
        except ModuleNotFoundError as exc:  # a group whose module is not written yet
            if exc.name != module:
                raise
            continue
        app.add_typer(sub.app, name=name)


def main() -> None:
    _attach()
    app()


if __name__ == "__main__":
    main()
