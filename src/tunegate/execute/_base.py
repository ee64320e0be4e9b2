"""The :class:`Executor` protocol, model recipes, and the batch helpers both executors share.

An executor runs batch work: ``map_batches(model, fn, batches)`` applies ``fn(classifier,
batch)`` to every batch in order, with the classifier loaded once per worker; ``map(fn,
items)`` runs independent tasks (seed sweeps, bootstrap shards). The local executor runs them
in this process with the classifier it was given; the Ray executor rebuilds the classifier
in each worker from its :class:`ModelRecipe`, so a model never crosses the wire, only its
recipe (a few hundred bytes) and the batches.

Results never depend on the executor: batches are cut here, in the caller's process, with
the same boundaries for both (an int8 model's output depends on its batch, see
``model.precision``), and outputs come back in input order.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt

from tunegate.errors import TunegateError

__all__ = [
    "Executor",
    "ExecutorError",
    "ModelRecipe",
    "Scored",
    "attach_recipe",
    "chunk",
    "predict_proba",
    "recipe_for",
    "register_recipe",
]

B = TypeVar("B")
R = TypeVar("R")
T = TypeVar("T")


class ExecutorError(TunegateError):
    """Batch work could not be run on the chosen executor (a model without a recipe, a task
    that cannot be sent to Ray workers, a cluster that cannot be reached)."""


@dataclass(frozen=True)
class ModelRecipe:
    """How to build a classifier again in another process: ``build(*args, **kwargs)``.

    ``build`` must be importable by name (a module-level function or class) and the
    arguments picklable (workflows, model versions, paths, strings): a Ray worker unpickles
    the recipe and calls it once. ``describe`` names the model in error messages.
    """

    build: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    describe: str = ""

    def __call__(self) -> Any:
        return self.build(*self.args, **dict(self.kwargs))


_RECIPE_ATTR = "_tunegate_recipe"
_RECIPES: dict[type, Callable[[Any], ModelRecipe | None]] = {}


def register_recipe(
    cls: type,
) -> Callable[[Callable[[Any], ModelRecipe | None]], Callable[[Any], ModelRecipe | None]]:
    """Decorator: ``f(classifier) -> ModelRecipe | None`` gives the recipe of instances of
    ``cls`` (``None``: this instance cannot be rebuilt). A class registered twice is refused."""

    def decorate(
        fn: Callable[[Any], ModelRecipe | None],
    ) -> Callable[[Any], ModelRecipe | None]:
        if cls in _RECIPES:
            raise ValueError(f"a recipe for {cls.__qualname__} is already registered")
        _RECIPES[cls] = fn
        return fn

    return decorate


def attach_recipe(classifier: T, recipe: ModelRecipe) -> T:
    """Remember how ``classifier`` was built (e.g. ``load_model_version(mv, workflow)``), so
    that :func:`recipe_for` returns ``recipe``. Returns ``classifier``."""
    setattr(classifier, _RECIPE_ATTR, recipe)
    return classifier


def recipe_for(classifier: Any) -> ModelRecipe:
    """The recipe that rebuilds ``classifier`` in a Ray worker.

    In order: a recipe attached with :func:`attach_recipe`; a recipe registered for its
    class (zero-shot, rules, rules-first); the classifier itself when it pickles (a plain
    object without sessions or locks). Anything else raises :class:`ExecutorError`.
    """
    attached = getattr(classifier, _RECIPE_ATTR, None)
    if isinstance(attached, ModelRecipe):
        return attached
    _load_builtin()
    for cls in type(classifier).__mro__:
        make = _RECIPES.get(cls)
        if make is not None:
            recipe = make(classifier)
            if recipe is not None:
                return recipe
            break
    try:
        payload = pickle.dumps(classifier)  # what Ray will do with it
    except Exception as exc:
        raise ExecutorError(
            f"the model {type(classifier).__qualname__} "
            f"({getattr(classifier, 'version', '?')}) has no recipe and does not pickle "
            f"({type(exc).__name__}: {exc}), so Ray workers cannot rebuild it; run with "
            f"--executor local, or attach one with tunegate.execute.attach_recipe(model, "
            f"ModelRecipe(build, args))"
        ) from exc
    del payload
    return ModelRecipe(_same, (classifier,), describe=type(classifier).__qualname__)


def _same(classifier: Any) -> Any:
    return classifier


def _load_builtin() -> None:
    import tunegate.execute._recipes  # noqa: F401  (registers the built-in recipes)


@runtime_checkable
class Executor(Protocol):
    """Where batch work runs: ``local`` (this process) or ``ray`` (a Ray cluster)."""

    @property
    def name(self) -> str:
        """``local`` or ``ray``."""
        ...

    @property
    def workers(self) -> int:
        """Processes that score batches at once (1 for the local executor)."""
        ...

    def map_batches(
        self, model: Any, fn: Callable[[Any, B], R], batches: Sequence[B]
    ) -> Iterator[R]:
        """``fn(classifier, batch)`` for every batch, yielded in input order; the classifier
        is ``model`` here, or ``recipe_for(model)()`` built once per Ray worker. ``fn`` must
        be picklable for Ray (a module-level function or a ``functools.partial`` of one)."""
        ...

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``[fn(item) for item in items]``, as independent tasks (in input order)."""
        ...

    def close(self) -> None:
        """Release what the executor started (the local Ray cluster it started)."""
        ...


def chunk(items: Sequence[T], size: int) -> list[list[T]]:
    """``items`` cut into consecutive batches of ``size`` (the last one may be shorter)."""
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


@dataclass(frozen=True)
class Scored:
    """Probabilities of a batch job, and the model time of each batch."""

    proba: npt.NDArray[np.float64]
    """(n, k) float64 rows in the classifier's ``labels`` order, in input order."""
    batch_ms: list[float]
    """Wall time of ``predict_proba`` per batch, in milliseconds (measured in the worker)."""
    batch_sizes: list[int]
    """Texts per batch."""

    def latency_per_example(self) -> list[float]:
        """Each example's share of its batch's time (ms): ``batch_ms / batch size``."""
        return [
            ms / n for ms, n in zip(self.batch_ms, self.batch_sizes, strict=True) for _ in range(n)
        ]


def _proba_batch(
    classifier: Any, batch: tuple[list[str], list[dict[str, Any]] | None]
) -> tuple[npt.NDArray[np.float64], float]:
    texts, metadata = batch
    start = time.perf_counter()
    proba = np.asarray(classifier.predict_proba(texts, metadata), dtype=np.float64)
    return proba, (time.perf_counter() - start) * 1000.0


def predict_proba(
    executor: Executor,
    model: Any,
    texts: Sequence[str],
    metadata: Sequence[Mapping[str, Any]] | None = None,
    *,
    batch_size: int,
) -> Scored:
    """``model.predict_proba`` over ``texts`` in batches of ``batch_size`` on ``executor``.

    The batches are the same on every executor, so the probabilities are identical to a
    local run batch for batch."""
    meta = None if metadata is None else [dict(m) for m in metadata]
    if meta is not None and len(meta) != len(texts):
        raise ValueError(f"got {len(texts)} texts but {len(meta)} metadata rows")
    idx = chunk(range(len(texts)), batch_size)
    batches = [
        ([texts[i] for i in rows], None if meta is None else [meta[i] for i in rows])
        for rows in idx
    ]
    k = len(model.labels)
    parts: list[npt.NDArray[np.float64]] = []
    times: list[float] = []
    for proba, ms in executor.map_batches(model, _proba_batch, batches):
        parts.append(proba)
        times.append(ms)
    out = np.concatenate(parts, axis=0) if parts else np.zeros((0, k), dtype=np.float64)
    return Scored(proba=out, batch_ms=times, batch_sizes=[len(rows) for rows in idx])
