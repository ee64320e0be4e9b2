"""``tunegate runs``: the stored evaluation runs, with the ids ``tunegate compare`` needs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tunegate.cli._common import ConfigOpt, JsonOpt, emit, load, out, store_for

__all__ = ["register"]


def runs_cmd(
    config: ConfigOpt = Path("tunegate.yaml"),
    model: Annotated[
        str | None, typer.Option("--model", help="Only runs of this model version.")
    ] = None,
    suite: Annotated[
        str | None, typer.Option("--suite", help="Only runs on this suite (name or hash).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show at most this many.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List stored evaluation runs, newest first: id, model version, suite, accuracy.

    Compare two of them with `tunegate compare BASELINE_RUN CANDIDATE_RUN`.
    """
    from tunegate.evaluate import run_summaries

    workflow = load(config)
    store = store_for(workflow, config)
    rows = run_summaries(store, model_version=model, suite=suite)[:limit]

    def human() -> None:
        if not rows:
            out.print("no evaluation runs stored; make one with `tunegate eval`")
        for r in rows:
            acc = "-" if r.accuracy is None else f"{r.accuracy:.3f}"
            seed = "" if r.seed is None else f"  seed {r.seed}"
            out.print(
                f"[bold]{r.id}[/bold]  {r.model_version}  suite {r.suite} "
                f"({r.n_examples} examples)  accuracy {acc}{seed}  "
                f"{r.created_at:%Y-%m-%d %H:%M}",
                highlight=False,
            )

    emit([r.to_dict() for r in rows], as_json=as_json, human=human)


def register(app: typer.Typer) -> None:
    app.command("runs")(runs_cmd)
