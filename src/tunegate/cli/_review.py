"""``tunegate review``: list imported examples waiting for review, and mark them."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from tunegate.cli._common import ConfigOpt, JsonOpt, emit, load, out, store_for
from tunegate.errors import InputError

__all__ = ["register"]

review_app = typer.Typer(
    help="Review imported examples: fine-tuning trains only on reviewed data.",
    no_args_is_help=True,
)


class StatusArg(StrEnum):
    reviewed = "reviewed"
    rejected = "rejected"
    pending = "pending"


@review_app.command("list")
def review_list(
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many.")] = 50,
    config: ConfigOpt = Path("tunegate.yaml"),
    as_json: JsonOpt = False,
) -> None:
    """List pending examples (oldest first): id, label, text."""
    from tunegate.train import pending_examples

    workflow = load(config)
    store = store_for(workflow, config)
    try:
        total = len(pending_examples(store))
        rows = pending_examples(store, limit=limit)
    finally:
        store.close()
    payload = {
        "pending": total,
        "examples": [
            {"id": e.id, "label": e.label, "source": e.source.value, "text": e.text} for e in rows
        ],
    }

    def human() -> None:
        if not total:
            out.print("no examples are waiting for review")
            return
        out.print(
            f"{total} examples are waiting for review"
            + (f" (showing {len(rows)})" if len(rows) < total else "")
        )
        for e in rows:
            text = e.text if len(e.text) <= 80 else e.text[:77] + "..."
            out.print(f"{e.id}  {e.label}  {text}", markup=False, highlight=False)

    emit(payload, as_json=as_json, human=human)


def _read_ids(path: Path) -> list[str]:
    if not path.is_file():
        raise InputError(f"{path}: no such file; give a file with one example id per line")
    return [
        line.strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


@review_app.command("mark")
def review_mark(
    ids: Annotated[list[str] | None, typer.Argument(help="Example ids to mark.")] = None,
    ids_file: Annotated[
        Path | None, typer.Option("--ids-file", help="A file of example ids, one per line.")
    ] = None,
    all_pending: Annotated[
        bool, typer.Option("--all", help="Mark every pending example (needs --yes).")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm --all: you reviewed every pending example.")
    ] = False,
    status: Annotated[
        StatusArg, typer.Option("--status", help="The review outcome.")
    ] = StatusArg.reviewed,
    reviewer: Annotated[
        str, typer.Option("--reviewer", help="Who reviewed them (recorded per example).")
    ] = "",
    config: ConfigOpt = Path("tunegate.yaml"),
    as_json: JsonOpt = False,
) -> None:
    """Mark examples reviewed (or rejected, or back to pending) by id, from a file of ids, or
    all pending examples at once (--all --yes)."""
    from tunegate.train import mark_examples

    given = [*(ids or []), *(_read_ids(ids_file) if ids_file is not None else [])]
    if all_pending and given:
        raise InputError("give example ids or --all, not both")
    if not all_pending and not given:
        raise InputError("give example ids, --ids-file FILE, or --all --yes")
    if all_pending and not yes:
        raise InputError(
            "--all marks every pending example; add --yes to confirm that they were reviewed"
        )
    if not reviewer.strip():
        raise InputError("--reviewer NAME is required: who reviewed these examples")
    workflow = load(config)
    store = store_for(workflow, config)
    try:
        changed = mark_examples(
            store,
            status.value,
            reviewer=reviewer,
            ids=None if all_pending else given,
            all_pending=all_pending,
        )
    finally:
        store.close()
    emit(
        {"marked": changed, "status": status.value, "reviewer": reviewer.strip()},
        as_json=as_json,
        human=lambda: out.print(
            f"marked {changed} examples {status.value} (reviewer {reviewer.strip()})",
            highlight=False,
        ),
    )


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")
