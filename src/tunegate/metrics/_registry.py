"""A registry of metrics: a decorator, a name, a duplicate check.

The registry lets one table-driven test check shared invariances (row order, label
permutation) for every metric at once, and lets reports list metrics with their direction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, TypeVar

__all__ = ["MetricSpec", "metric_registry", "register_metric"]

MetricInput = Literal["labels", "proba", "confidence", "latency", "per_example"]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric.

    ``input`` says what the second argument is: ``labels`` -> ``f(y_true, y_pred)``,
    ``proba`` -> ``f(y_true, proba)`` with ``proba`` of shape (n, k), ``confidence`` ->
    ``f(correct, confidence)`` with per-decision correctness and the decided class's
    probability, both of shape (n,), ``latency`` -> ``f(latency_ms)``, ``per_example`` ->
    ``f(*arrays)`` over the metric's own per-example arrays (claim counts, flags, tool names:
    the generative metrics), each a ratio of per-example sums whose ``terms`` function gives
    them (:class:`~tunegate.metrics.RatioTerms`, for
    :func:`~tunegate.metrics.paired_ratio_bootstrap`).
    ``per_class`` metrics return a (k,) array indexed by class id.
    """

    name: str
    func: Callable[..., Any]
    input: MetricInput
    greater_is_better: bool
    per_class: bool = False
    terms: Callable[..., Any] | None = None
    """``per_example`` metrics: the same arguments -> their per-example
    :class:`~tunegate.metrics.RatioTerms`."""


_REGISTRY: dict[str, MetricSpec] = {}


def register_metric(
    *,
    input: MetricInput,
    greater_is_better: bool,
    per_class: bool = False,
    terms: Callable[..., Any] | None = None,
) -> Callable[[F], F]:
    """Register a metric function under its ``__name__``.

    Names carry the direction: ``*_score`` must be higher-is-better, ``*_error``, ``*_loss``,
    ``*_rate`` and ``*_ms`` lower-is-better. A second registration of a name is refused, and
    so is a ``per_example`` metric without its ``terms`` function.
    """

    def decorate(func: F) -> F:
        name = func.__name__
        if name in _REGISTRY:
            raise ValueError(f"metric {name!r} is already registered")
        if name.endswith("_score") and not greater_is_better:
            raise ValueError(f"metric {name!r} ends in _score, so it must be higher-is-better")
        if name.endswith(("_error", "_loss", "_rate", "_ms")) and greater_is_better:
            raise ValueError(
                f"metric {name!r} is named lower-is-better but registered as higher-is-better"
            )
        if (input == "per_example") != (terms is not None):
            raise ValueError(f"metric {name!r}: terms are given for per_example metrics only")
        _REGISTRY[name] = MetricSpec(name, func, input, greater_is_better, per_class, terms)
        return func

    return decorate


def metric_registry() -> Mapping[str, MetricSpec]:
    """A read-only view of every registered metric, by name."""
    return MappingProxyType(_REGISTRY)
