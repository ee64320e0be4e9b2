"""Entropy routing: H_norm and every threshold boundary."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import entropy

from tunegate.config import RoutingPolicy
from tunegate.errors import InputError
from tunegate.records import Route
from tunegate.routing import explain_route, normalized_entropy, route, route_many

LABELS = ["a", "b", "sec"]


def test_entropy_extremes() -> None:
    h = normalized_entropy(np.array([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.0]]))
    assert h[0] == pytest.approx(0.0, abs=1e-12)
    assert h[1] == pytest.approx(1.0, abs=1e-12)
    assert h[2] == pytest.approx(math.log(2) / math.log(3), abs=1e-12)


@settings(deadline=None)
@given(st.lists(st.floats(0.01, 10.0), min_size=2, max_size=12))
def test_entropy_matches_scipy(weights: list[float]) -> None:

    p = np.array(weights) / sum(weights)
    assert normalized_entropy(p)[0] == pytest.approx(entropy(p) / math.log(len(p)), abs=1e-9)


def test_entropy_rejects_non_distributions() -> None:
    with pytest.raises(InputError, match="sum to 1"):
        normalized_entropy(np.array([[0.5, 0.6]]))
    with pytest.raises(InputError, match="k >= 2"):
        normalized_entropy(np.array([[1.0]]))
    with pytest.raises(InputError, match="non-negative"):
        normalized_entropy(np.array([[1.2, -0.2]]))


def test_clarify_boundary_is_strict() -> None:
    row = np.array([0.6, 0.3, 0.1])
    h = float(normalized_entropy(row)[0])
    at = RoutingPolicy(clarify_threshold=h)
    assert route(row, LABELS, at) == ("a", pytest.approx(h), Route.AUTO)
    below = RoutingPolicy(clarify_threshold=np.nextafter(h, 0.0))
    assert route(row, LABELS, below)[2] is Route.CLARIFY


def test_escalate_boundary_is_inclusive() -> None:
    row = np.array([0.2, 0.2, 0.6])
    assert route(row, LABELS, RoutingPolicy(escalate_classes={"sec": 0.6}))[2] is Route.ESCALATE
    just_above = float(np.nextafter(0.6, 1.0))
    policy = RoutingPolicy(escalate_classes={"sec": just_above}, clarify_threshold=1.0)
    assert route(row, LABELS, policy)[2] is Route.AUTO


def test_escalate_needs_top_class_and_beats_clarify() -> None:
    # sec has p >= threshold but is not the top class: no escalation.
    row = np.array([0.45, 0.15, 0.40])
    policy = RoutingPolicy(escalate_classes={"sec": 0.3}, clarify_threshold=0.99)
    assert route(row, LABELS, policy)[2] is Route.AUTO
    # Top escalate-class with very high entropy: escalate wins over clarify.
    row = np.array([0.33, 0.33, 0.34])
    policy = RoutingPolicy(escalate_classes={"sec": 0.3}, clarify_threshold=0.1)
    assert route(row, LABELS, policy)[2] is Route.ESCALATE


def test_route_many_and_shape_errors() -> None:
    rows = np.array([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]])
    routes = [r[2] for r in route_many(rows, LABELS, RoutingPolicy(clarify_threshold=0.5))]
    assert routes == [Route.AUTO, Route.CLARIFY]
    with pytest.raises(InputError, match="3 columns but 2 labels"):
        route(rows[0], ["a", "b"], RoutingPolicy())
    with pytest.raises(InputError, match="one row"):
        route(rows, LABELS, RoutingPolicy())


def test_explain_names_the_reason() -> None:
    policy = RoutingPolicy(clarify_threshold=0.5, escalate_classes={"sec": 0.5})
    assert explain_route([0.1, 0.1, 0.8], LABELS, policy).startswith("escalate: ")
    assert "> clarify_threshold" in explain_route([0.34, 0.33, 0.33], LABELS, policy)
    text = explain_route(
        [0.55, 0.0, 0.45], LABELS, RoutingPolicy(clarify_threshold=0.9, escalate_classes={"a": 0.6})
    )
    assert text.startswith("auto: ") and "< its threshold" in text
