"""``tunegate init``: write a commented starter tunegate.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tunegate.cli._common import JsonOpt, emit, out
from tunegate.config import parse_workflow, starter_yaml
from tunegate.errors import InputError


def init(
    path: Annotated[Path, typer.Argument(help="Where to write the file.")] = Path("tunegate.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write a commented starter tunegate.yaml for the IT service-desk example."""
    if path.exists() and not force:
        raise InputError(f"{path} already exists; pass --force to overwrite it")
    text = starter_yaml()
    parse_workflow(text, source=str(path))  # the starter must always be valid
    path.write_text(text, encoding="utf-8")
    emit({"written": str(path)}, as_json=as_json,
         human=lambda: out.print(f"wrote {path}; edit it, then run `tunegate ingest ...`"))


def register(app: typer.Typer) -> None:
    app.command("init")(init)
