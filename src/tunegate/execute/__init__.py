"""Where batch work runs: in this process (``local``, the default) or on Ray (``ray``).

:func:`get_executor` picks the executor from ``executor:`` in tunegate.yaml or
``--executor``; :func:`predict_proba` scores texts in batches on it, with the same batches
(and so the same probabilities) on both. See docs/scaling.md.
"""

from __future__ import annotations

from tunegate.execute._base import (
    Executor,
    ExecutorError,
    ModelRecipe,
    Scored,
    attach_recipe,
    chunk,
    predict_proba,
    recipe_for,
    register_recipe,
)
from tunegate.execute._local import LocalExecutor
from tunegate.execute._ray import RayExecutor
from tunegate.execute._select import EXECUTORS, ExecutorName, get_executor

__all__ = [
    "EXECUTORS",
    "Executor",
    "ExecutorError",
    "ExecutorName",
    "LocalExecutor",
    "ModelRecipe",
    "RayExecutor",
    "Scored",
    "attach_recipe",
    "chunk",
    "get_executor",
    "predict_proba",
    "recipe_for",
    "register_recipe",
]
