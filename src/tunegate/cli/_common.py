"""Shared CLI plumbing: common options, output in human or JSON form, workflow loading."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console

from tunegate.config import Workflow, load_workflow
from tunegate.errors import ConfigError

if TYPE_CHECKING:
    from tunegate.execute import Executor
    from tunegate.store import Store

__all__ = [
    "CLASSIFY_ONLY",
    "ConfigOpt",
    "ExecutorOpt",
    "JsonOpt",
    "buildable",
    "emit",
    "executor_for",
    "load",
    "note_command",
    "out",
    "store_for",
]

out = Console()
err = Console(stderr=True)

_PIPE_WIDTH = 160
"""Columns for output that is not a terminal (a file, a pipe, CI): Rich's default of 80 cut
table headers short ("decisi..."); ``COLUMNS`` in the environment still wins."""


def widen_when_not_a_terminal() -> None:
    """Give both consoles a wide width when they do not write to a terminal."""
    for console in (out, err):
        console.width = _PIPE_WIDTH  # reset first: a terminal's width is measured below
        if console.is_terminal or os.environ.get("COLUMNS"):
            console.width = None  # type: ignore[assignment]


ConfigOpt = Annotated[
    Path,
    typer.Option("--config", "-c", help="Path to tunegate.yaml.", envvar="TUNEGATE_CONFIG"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
ExecutorOpt = Annotated[
    str | None,
    typer.Option(
        "--executor",
        help="Where batch work runs: local | ray (default: executor: in tunegate.yaml, else "
        "local). ray needs the ray extra; see docs/scaling.md.",
    ),
]


def executor_for(workflow: Workflow, config: Path, name: str | None) -> Executor:
    """The executor of ``--executor`` (else the workflow's ``executor:``); a local Ray
    cluster keeps its temp folder next to tunegate.yaml. Close it when done."""
    from tunegate.execute import get_executor

    return get_executor(workflow, name=name, base_dir=config.resolve().parent)


def buildable(spec: str, workflow: Workflow) -> Any:
    """``build_classifier(spec, workflow)`` with its recipe attached, so Ray workers can
    build the same model (:func:`tunegate.execute.attach_recipe`)."""
    from tunegate.execute import ModelRecipe, attach_recipe
    from tunegate.models import build_classifier

    recipe = ModelRecipe(build_classifier, (spec, workflow), describe=spec)
    return attach_recipe(build_classifier(spec, workflow), recipe)


CLASSIFY_ONLY = frozenset(
    {
        "attribute",
        "classify",
        "compare",
        "dataset",
        "demo",
        "eval",
        "finetune",
        "gate",
        "label-issues",
        "overrides",
        "probe",
        "review",
        "serve",
        "shadow",
        "simulate",
        "triage",
        "try",
    }
)
"""Top-level commands that work on labels and probabilities: on an ``answer`` or
``tool_call`` workflow they refuse with one line naming the command and the kind."""


_INVOKED: list[str] = []


def note_command(name: str | None) -> None:
    """Remember the top-level command being run (the root callback calls this) for
    :func:`load`."""
    _INVOKED[:] = [name] if name else []


def load(config: Path) -> Workflow:
    """Load the workflow (errors become one clear line via the CLI's error handler).

    A classification-only command (:data:`CLASSIFY_ONLY`) on an ``answer`` or ``tool_call``
    workflow is refused here: "tunegate eval works on classify workflows; this workflow's
    kind is answer"."""
    workflow = load_workflow(config)
    if not workflow.is_classify and _INVOKED and _INVOKED[0] in CLASSIFY_ONLY:
        try:
            workflow.require_kind(" ".join(["tunegate", *_INVOKED]))
        except ConfigError as exc:
            if _INVOKED[0] in GEN_EQUIVALENT:
                raise ConfigError(
                    f"{exc}; use `tunegate gen {_INVOKED[0]}` on answer and tool_call workflows"
                ) from None
            raise
    return workflow


GEN_EQUIVALENT = frozenset({"eval", "compare", "triage", "try", "gate", "finetune"})
"""Classification commands whose answer/tool_call counterpart is ``tunegate gen <name>``."""


def store_for(workflow: Workflow, config: Path) -> Store:
    """Open the store named by the workflow (relative SQLite paths are relative to config)."""
    from tunegate.store import Store

    return Store(workflow.resolved_store_url(config.resolve().parent))


def existing_store(workflow: Workflow, config: Path) -> Store | None:
    """The workflow's store when it exists (a server URL, or a SQLite file on disk); None for
    a SQLite file not yet created - reading the registry must not create a database."""
    url = workflow.resolved_store_url(config.resolve().parent)
    prefix = "sqlite:///"
    sqlite_file = url.startswith(prefix) and url != prefix + ":memory:"
    if sqlite_file and not Path(url[len(prefix) :]).exists():
        return None
    return store_for(workflow, config)


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


def emit(payload: Any, *, as_json: bool, human: Callable[[], None] | None = None) -> None:
    """Print ``payload`` as JSON (``--json``) or call ``human`` to print it for people."""
    if as_json or human is None:
        sys.stdout.write(json.dumps(_jsonable(payload), indent=2, default=str) + "\n")
        sys.stdout.flush()
    else:
        human()
