"""The generative metrics (tunegate.metrics._generative) and Cohen's kappa: hand-computed
cases, edge cases, and one property table over every ``per_example`` metric of the registry
(rates in [0, 1], row-order invariance, a model paired with itself differs by exactly 0)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tunegate import metrics as M
from tunegate.errors import InputError
from tunegate.metrics import metric_registry, metric_terms, paired_ratio_bootstrap

GENERATIVE = {n: s for n, s in metric_registry().items() if s.input == "per_example"}

# -- hand-computed cases --------------------------------------------------------------------


def test_unsupported_claim_rate_pools_claims() -> None:
    # answers with 3, 0 (abstained), 2 and 5 claims; 1, 0, 2, 0 unsupported
    # pooled: (1 + 0 + 2 + 0) / (3 + 0 + 2 + 5) = 3 / 10 (per-answer mean would be 0.44)
    assert M.unsupported_claim_rate([3, 0, 2, 5], [1, 0, 2, 0]) == pytest.approx(0.3)


def test_stale_claim_rate() -> None:
    # 4 + 4 claims, 1 + 0 stale -> 1 / 8
    assert M.stale_claim_rate([4, 4], [1, 0]) == pytest.approx(0.125)


def test_claim_rates_without_claims_are_nan() -> None:
    assert math.isnan(M.unsupported_claim_rate([0, 0], [0, 0]))
    assert math.isnan(M.stale_claim_rate([0], [0]))


def test_a_part_larger_than_its_whole_is_refused() -> None:
    with pytest.raises(InputError, match=r"n_unsupported\[1\] = 3 exceeds n_claims\[1\] = 2"):
        M.unsupported_claim_rate([2, 2], [0, 3])
    with pytest.raises(InputError, match="non-negative integer counts"):
        M.stale_claim_rate([2, -1], [0, 0])
    with pytest.raises(InputError, match="non-negative integer counts"):
        M.stale_claim_rate([2.5], [0])
    with pytest.raises(InputError, match="aligned one-to-one"):
        M.unsupported_claim_rate([2, 2], [0])
    with pytest.raises(InputError, match="empty"):
        M.unsupported_claim_rate([], [])


def test_citation_score_leaves_abstentions_out() -> None:
    # citations 2, 0, 1, 0; the last abstained -> answers 0..2, of which 2 cite: 2 / 3
    assert M.citation_score([2, 0, 1, 0], [False, False, False, True]) == pytest.approx(2 / 3)
    # without the abstention flags the abstention counts as an uncited answer: 2 / 4
    assert M.citation_score([2, 0, 1, 0]) == pytest.approx(0.5)
    assert math.isnan(M.citation_score([0, 0], [True, True]))


def test_citation_counts_precision_and_recall() -> None:
    cited = [["a", "b", "b"], [], ["c"], ["x"]]
    gold = [["a"], ["d"], ["c", "e"], []]
    counts = M.citation_counts(cited, gold)
    # distinct cited: {a,b}=2, 0, 1, 1; gold: 1, 1, 2, 0; overlap: 1, 0, 1, 0
    assert counts.n_cited.tolist() == [2, 0, 1, 1]
    assert counts.n_gold.tolist() == [1, 1, 2, 0]
    assert counts.n_correct.tolist() == [1, 0, 1, 0]
    # precision 2 / 4 (the citation on the question without gold documents is wrong)
    assert M.citation_precision_score(counts.n_cited, counts.n_correct) == pytest.approx(0.5)
    # recall 2 / 4
    assert M.citation_recall_score(counts.n_gold, counts.n_correct) == pytest.approx(0.5)
    assert math.isnan(M.citation_precision_score([0, 0], [0, 0]))
    assert math.isnan(M.citation_recall_score([0], [0]))


def test_citation_counts_refuses_a_bare_string() -> None:
    with pytest.raises(InputError, match=r"cited_ids\[0\] is a string"):
        M.citation_counts(["doc-1"], [["doc-1"]])
    with pytest.raises(InputError, match="aligned"):
        M.citation_counts([["a"]], [])


def test_abstention_precision_and_recall() -> None:
    answerable = [True, True, False, False, False, True]
    abstained = [False, True, True, True, False, False]
    # abstained on 1, 2, 3; unanswerable among them: 2, 3 -> precision 2 / 3
    assert M.abstention_precision_score(answerable, abstained) == pytest.approx(2 / 3)
    # unanswerable: 2, 3, 4; abstained on 2, 3 -> recall 2 / 3
    assert M.abstention_recall_score(answerable, abstained) == pytest.approx(2 / 3)
    # never abstains: precision undefined; recall 0
    assert math.isnan(M.abstention_precision_score([True, False], [False, False]))
    assert M.abstention_recall_score([True, False], [False, False]) == 0.0
    # no unanswerable question: recall undefined
    assert math.isnan(M.abstention_recall_score([True, True], [True, False]))


def test_answer_correctness_score() -> None:
    assert M.answer_correctness_score([1, 0, 1, 1]) == pytest.approx(0.75)
    # restricted to the answerable questions 0 and 1: 1 / 2
    assert M.answer_correctness_score([True, False, True], [True, True, False]) == pytest.approx(
        0.5
    )
    assert math.isnan(M.answer_correctness_score([True], [False]))
    with pytest.raises(InputError, match="boolean"):
        M.answer_correctness_score([0.5, 1.0])


def test_tool_metrics() -> None:
    expected = ["reset_password", "unlock", None, "unlock", None]
    called = ["reset_password", "unlock", None, "reset_password", "unlock"]
    match = [True, False, False, True, False]
    # selection: right on 0, 1, 2 -> 3 / 5
    assert M.tool_selection_accuracy_score(expected, called) == pytest.approx(0.6)
    # call: 0 (tool and args), 2 (no tool expected, none called; args ignored) -> 2 / 5
    assert M.tool_call_accuracy_score(expected, called, match) == pytest.approx(0.4)
    # validity: tool calls at 0, 1, 3, 4; valid at 0 and 4 -> 2 / 4 (row 2 is no call)
    valid = [True, False, True, False, True]
    assert M.argument_validity_score(called, valid) == pytest.approx(0.5)
    assert math.isnan(M.argument_validity_score([None, None], [True, True]))
    with pytest.raises(InputError, match="tool names"):
        M.tool_selection_accuracy_score([1], ["a"])


def test_format_validity_score() -> None:
    assert M.format_validity_score([True, True, False, True]) == pytest.approx(0.75)


def test_cohen_kappa_by_hand() -> None:
    # 10 items; a: 1 x6, 0 x4; b agrees on 8: observed 0.8
    a = [1, 1, 1, 1, 1, 1, 0, 0, 0, 0]
    b = [1, 1, 1, 1, 1, 0, 0, 0, 0, 1]
    # b: 1 x6, 0 x4; chance = 0.6*0.6 + 0.4*0.4 = 0.52; kappa = (0.8-0.52)/(1-0.52) = 0.58333
    assert M.cohen_kappa_score(a, b) == pytest.approx(0.28 / 0.48)
    assert M.cohen_kappa_score(np.array(a, bool), np.array(b, bool)) == pytest.approx(0.28 / 0.48)
    assert M.cohen_kappa_score(a, a) == 1.0
    # perfect disagreement on a balanced pair: observed 0, chance 0.5 -> -1
    assert M.cohen_kappa_score([0, 1], [1, 0]) == -1.0
    # one label everywhere for both raters: chance agreement is certain -> undefined
    assert math.isnan(M.cohen_kappa_score([1, 1, 1], [1, 1, 1]))


def test_cohen_kappa_matches_scikit_learn() -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    a = rng.integers(0, 3, 200)
    b = np.where(rng.random(200) < 0.7, a, rng.integers(0, 3, 200))
    assert M.cohen_kappa_score(a, b) == pytest.approx(sklearn_metrics.cohen_kappa_score(a, b))


# -- intervals ------------------------------------------------------------------------------


def test_paired_ratio_bootstrap_equals_a_plain_loop() -> None:
    # the vectorized resampling gives, resample by resample, the plain ratio of sums
    n_claims = np.array([3, 1, 4, 1, 5, 9, 2, 6])
    bad_a = np.array([1, 0, 2, 0, 1, 3, 0, 2])
    bad_b = np.array([0, 0, 1, 1, 0, 2, 0, 1])
    # claims 31 in all; unsupported 9 for A, 5 for B
    ta = metric_terms("unsupported_claim_rate", n_claims, bad_a)
    tb = metric_terms("unsupported_claim_rate", n_claims, bad_b)
    res = paired_ratio_bootstrap(ta, tb, n_resamples=300, seed=7)
    rng = np.random.Generator(np.random.SFC64(7))
    idx = rng.integers(0, 8, size=(300, 8))
    loop_a = np.array([bad_a[i].sum() / n_claims[i].sum() for i in idx])
    loop_b = np.array([bad_b[i].sum() / n_claims[i].sum() for i in idx])
    want = M.bias_corrected_interval(loop_b - loop_a, 5 / 31 - 9 / 31, 0.95)
    assert res.diff is not None
    np.testing.assert_allclose(
        [res.diff.estimate, res.diff.low, res.diff.high], [want.estimate, want.low, want.high]
    )
    want = M.bias_corrected_interval(loop_a, 9 / 31, 0.95)
    np.testing.assert_allclose(
        [res.a.estimate, res.a.low, res.a.high], [want.estimate, want.low, want.high]
    )
    assert res.a.estimate == pytest.approx(M.unsupported_claim_rate(n_claims, bad_a))


def test_paired_ratio_bootstrap_refuses_mismatches() -> None:
    ta = metric_terms("format_validity_score", [True, False])
    with pytest.raises(InputError, match="same examples"):
        paired_ratio_bootstrap(ta, metric_terms("format_validity_score", [True]))
    with pytest.raises(InputError, match="one metric at a time"):
        paired_ratio_bootstrap(ta, metric_terms("answer_correctness_score", [True, False]))
    with pytest.raises(InputError, match="not a per-example ratio metric"):
        metric_terms("accuracy_score", [1], [1])


def test_resamples_without_a_denominator_are_ignored() -> None:
    # one answer with claims among 30 abstentions: many resamples draw no claim at all
    n_claims = np.zeros(30, dtype=int)
    n_claims[0] = 2
    res = paired_ratio_bootstrap(
        metric_terms("unsupported_claim_rate", n_claims, n_claims), n_resamples=200
    )
    assert res.a == M.Interval(1.0, 1.0, 1.0)


# -- one property table for every per-example metric --------------------------------------

Case = tuple[tuple[Any, ...], Callable[[np.ndarray], tuple[Any, ...]]]


def _case(name: str, rng: np.random.Generator, n: int) -> Case:
    """Random valid arguments of metric ``name`` for n examples, and how to reorder them."""
    tools = np.array(["a", "b", None], dtype=object)

    def counts() -> tuple[np.ndarray, np.ndarray]:
        whole = rng.integers(0, 6, n)
        return whole, rng.integers(0, whole + 1)

    def flags() -> np.ndarray:
        return rng.random(n) < 0.5

    args: tuple[Any, ...]
    if name.endswith("claim_rate") or (name.startswith("citation_") and name != "citation_score"):
        args = counts()
    elif name == "citation_score":
        args = (rng.integers(0, 3, n), flags())
    elif name.startswith("abstention_") or name == "answer_correctness_score":
        args = (flags(), flags())
    elif name == "tool_selection_accuracy_score":
        args = (list(rng.choice(tools, n)), list(rng.choice(tools, n)))
    elif name == "tool_call_accuracy_score":
        args = (list(rng.choice(tools, n)), list(rng.choice(tools, n)), flags())
    elif name == "argument_validity_score":
        args = (list(rng.choice(tools, n)), flags())
    elif name in ("format_validity_score", "escalation_rate"):
        args = (flags(),)
    elif name in ("flip_rate", "robust_accuracy_score"):
        args = (rng.integers(0, 3, n), rng.integers(0, 3, n))
    elif name == "attack_success_rate":
        args = (rng.integers(0, 3, n), rng.integers(0, 3, n), rng.integers(0, 3, n))
    else:  # pragma: no cover - a new metric must be added here
        raise AssertionError(f"add {name} to the property table")

    def reorder(perm: np.ndarray) -> tuple[Any, ...]:
        return tuple(
            [a[i] for i in perm] if isinstance(a, list) else np.asarray(a)[perm] for a in args
        )

    return args, reorder


def test_the_table_covers_every_generative_metric() -> None:
    expected = {
        "unsupported_claim_rate",
        "stale_claim_rate",
        "citation_score",
        "citation_precision_score",
        "citation_recall_score",
        "abstention_precision_score",
        "abstention_recall_score",
        "answer_correctness_score",
        "tool_call_accuracy_score",
        "tool_selection_accuracy_score",
        "argument_validity_score",
        "format_validity_score",
        "escalation_rate",
        # the robustness metrics (tunegate.metrics._robustness) are per-example ratios too
        "robust_accuracy_score",
        "flip_rate",
        "attack_success_rate",
    }
    assert set(GENERATIVE) == expected
    for spec in GENERATIVE.values():
        assert spec.terms is not None
        assert spec.greater_is_better == (not spec.name.endswith("_rate"))


@pytest.mark.parametrize("name", sorted(GENERATIVE))
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 30))
@example(seed=0, n=1)
@settings(max_examples=30, deadline=None)
def test_generative_metric_properties(name: str, seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    spec = GENERATIVE[name]
    args, reorder = _case(name, rng, n)
    value = spec.func(*args)
    terms = metric_terms(name, *args)
    # a rate in [0, 1], or nan exactly when the denominator is 0
    if terms.denominator.sum() == 0:
        assert math.isnan(value)
    else:
        assert 0.0 <= value <= 1.0
    assert terms.value() == value or (math.isnan(value) and math.isnan(terms.value()))
    assert terms.numerator.shape == terms.denominator.shape == (n,)
    assert np.all(terms.numerator <= terms.denominator)
    # invariant to the order of the examples
    perm = rng.permutation(n)
    again = spec.func(*reorder(perm))
    assert again == pytest.approx(value, nan_ok=True)
    # a model paired with itself: the difference is 0 with a degenerate interval
    res = paired_ratio_bootstrap(terms, terms, n_resamples=50, seed=seed)
    assert res.diff is not None and res.b is not None
    assert res.b.to_dict() == res.a.to_dict()
    if not math.isnan(value):
        assert res.diff == M.Interval(0.0, 0.0, 0.0)
        assert res.a.low <= value <= res.a.high
