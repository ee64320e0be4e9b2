"""``get_executor``: the executor a workflow (or a name) asks for."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from tunegate.config import Workflow
from tunegate.errors import InputError
from tunegate.execute._base import Executor
from tunegate.execute._local import LocalExecutor
from tunegate.execute._ray import RayExecutor

__all__ = ["EXECUTORS", "ExecutorName", "get_executor"]

ExecutorName = Literal["local", "ray"]
EXECUTORS: tuple[ExecutorName, ...] = ("local", "ray")


def get_executor(
    settings: Workflow | str | None = None,
    *,
    name: str | None = None,
    base_dir: Path | None = None,
) -> Executor:
    """The executor of ``settings``: a workflow (its ``executor``, ``ray_address`` and
    ``ray_workers``), or a name (``local`` | ``ray``). ``name`` (the ``--executor``
    option) overrides the workflow's choice. ``base_dir`` (the folder of tunegate.yaml)
    holds a local Ray cluster's temp folder (``.tunegate-ray``).

    Building a :class:`RayExecutor` starts nothing: the cluster starts on first use, and a
    missing ``ray`` extra is reported then, with its install command.
    """
    workflow = settings if isinstance(settings, Workflow) else None
    chosen = name or (settings if isinstance(settings, str) else None)
    if chosen is None:
        chosen = workflow.executor if workflow is not None else "local"
    if chosen not in EXECUTORS:
        raise InputError(f"unknown executor {chosen!r}; choose one of {list(EXECUTORS)}")
    if chosen == "local":
        return LocalExecutor()
    return RayExecutor(
        address=workflow.ray_address if workflow is not None else None,
        workers=workflow.ray_workers if workflow is not None else None,
        temp_dir=None if base_dir is None else base_dir / ".tunegate-ray",
    )
