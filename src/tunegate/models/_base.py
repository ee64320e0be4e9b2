"""The :class:`Classifier` protocol, shared helpers and the backend registry."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from tunegate.config import Workflow
from tunegate.errors import InputError, ModelError
from tunegate.metrics import softmax
from tunegate.records import ModelKind

__all__ = [
    "Classifier",
    "DuplicateBackendError",
    "backends",
    "build_classifier",
    "check_proba",
    "labels_to_index",
    "register_backend",
    "softmax",
]

Metadata = Sequence[Mapping[str, Any]] | None


@runtime_checkable
class Classifier(Protocol):
    """Anything that turns texts into probabilities over a workflow's labels.

    ``predict_proba(texts, metadata=None)`` returns a float64 array of shape (n, k) whose
    rows are distributions (non-negative, summing to 1) with columns in ``labels`` order.
    ``metadata`` (one mapping per text) is optional; backends that do not use it ignore it.
    """

    labels: list[str]

    @property
    def version(self) -> str:
        """Identity of the model (content hash of its config/weights where possible)."""
        ...

    @property
    def kind(self) -> ModelKind:
        """The kind of model (zero-shot, retrieval, rules, LoRA, router)."""
        ...

    def predict_proba(self, texts: Sequence[str], metadata: Metadata = None) -> np.ndarray: ...


class DuplicateBackendError(ModelError, ValueError):
    """A backend name was registered twice."""


Factory = Callable[..., Classifier]
F = TypeVar("F", bound=Factory)
_BACKENDS: dict[str, Factory] = {}


def register_backend(name: str) -> Callable[[F], F]:
    """Decorator registering a factory ``f(workflow, **kwargs) -> Classifier`` under ``name``.

    Names are unique: registering a taken name raises :class:`DuplicateBackendError`.
    """
    if not name or ":" in name:
        raise ValueError(f"backend names must be non-empty and contain no ':', got {name!r}")

    def decorate(factory: F) -> F:
        if name in _BACKENDS:
            raise DuplicateBackendError(
                f"a model backend named {name!r} is already registered "
                f"({_BACKENDS[name].__qualname__}); pick another name"
            )
        _BACKENDS[name] = factory
        return factory

    return decorate


def backends() -> list[str]:
    """Registered backend names, sorted."""
    _load_builtin()
    return sorted(_BACKENDS)


def _load_builtin() -> None:
    # Importing the backend modules registers them (none of them imports torch at import).
    import tunegate.llm._classifier
    import tunegate.llm._local
    import tunegate.lora.classifier
    import tunegate.models._knn
    import tunegate.models._rules
    import tunegate.models._zeroshot  # noqa: F401


def build_classifier(name: str, workflow: Workflow, **kwargs: Any) -> Classifier:
    """Build a registered backend: ``build_classifier("zero-shot", workflow)``.

    ``"lora:PATH"`` is shorthand for ``build_classifier("lora", workflow, artifact_dir=PATH)``.
    """
    _load_builtin()
    if ":" in name:
        name, _, arg = name.partition(":")
        if name != "lora" or not arg:
            raise InputError(
                f"unknown model spec {name + ':' + arg!r}; only 'lora:PATH' takes an argument"
            )
        kwargs.setdefault("artifact_dir", arg)
    factory = _BACKENDS.get(name)
    if factory is None:
        raise InputError(
            f"unknown model backend {name!r}; registered: {sorted(_BACKENDS)} (or lora:PATH)"
        )
    return factory(workflow, **kwargs)


def check_proba(proba: np.ndarray, n: int, labels: Sequence[str]) -> np.ndarray:
    """Validate a backend's output: shape (n, k), finite, rows summing to 1 (renormalized)."""
    arr = np.asarray(proba, dtype=np.float64)
    if arr.shape != (n, len(labels)):
        raise ModelError(f"classifier returned shape {arr.shape}, expected {(n, len(labels))}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ModelError("classifier returned probabilities that are negative or not finite")
    out: np.ndarray = arr / arr.sum(axis=1, keepdims=True)
    return out


def labels_to_index(labels: Sequence[str], known: Sequence[str]) -> np.ndarray:
    """Map label names to column indices of ``known``; unknown names raise InputError."""
    position = {name: i for i, name in enumerate(known)}
    unknown = sorted({y for y in labels if y not in position})
    if unknown:
        raise InputError(
            f"{len(unknown)} labels are not in the workflow: {unknown[:10]}; add "
            f"them to tunegate.yaml or fix the data (allowed: {list(known)})"
        )
    return np.fromiter((position[y] for y in labels), dtype=np.int64, count=len(labels))
