"""The robustness slice: generators (deterministic, seeded, documented), the frozen slice and
its hash, the three metrics by hand, and the verdict rule: a classifier keying on one word
fails the keyword-stuffing rule; an invariant one passes."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tunegate import metrics as M
from tunegate.config import Workflow
from tunegate.documents import Finding, FindingTerm, RobustnessSlice
from tunegate.errors import InputError
from tunegate.evaluate import (
    DEFAULT_PERTURBATIONS,
    INJECTION_PATTERNS,
    PerturbationContext,
    RobustnessWarning,
    attach_robustness,
    compare_robustness,
    compare_runs,
    freeze_robustness_slice,
    get_robustness_slice,
    inject_into_passages,
    match_attack_patterns,
    perturb,
    perturbations,
    run_eval,
    save_robustness_slice,
    stuffing_terms_from_findings,
)
from tunegate.records import EvalSuite, SuiteExample, SuiteSlice, VerdictOutcome

# -- toy classifiers -------------------------------------------------------------------------

KEYWORDS = {
    "account_unlock": "locked",
    "password_reset": "password",
    "vpn_issue": "vpn",
    "security_incident": "phishing",
    "hardware": "laptop",
    "software_install": "install",
    "access_request": "permission",
    "email_issue": "inbox",
}


class KeywordClassifier:
    """Picks the class whose keyword appears first; ``shortcut`` words win outright (the
    shortcut a narrow fine-tune learns: "authenticator" -> security_incident)."""

    def __init__(self, labels: Sequence[str], shortcut: Mapping[str, str] | None = None):
        self.labels = list(labels)
        self.shortcut = dict(shortcut or {})
        self.version = "keyword+shortcut" if shortcut else "keyword"

    def _label(self, text: str) -> int:
        low = text.lower()
        for word, label in self.shortcut.items():
            if word in low:
                return self.labels.index(label)
        hits = [(low.find(kw), lab) for lab, kw in KEYWORDS.items() if kw in low]
        return self.labels.index(min(hits)[1]) if hits else 0

    def predict_proba(self, texts: Sequence[str], metadata: Any = None) -> np.ndarray:
        k = len(self.labels)
        out = np.full((len(texts), k), 0.02 / (k - 1))
        for i, t in enumerate(texts):
            out[i, self._label(t)] = 0.98
        return out


def _suite(workflow: Workflow, n: int = 80) -> EvalSuite:
    labels = workflow.label_names
    examples = [
        SuiteExample(
            id=f"c{i:03d}",
            text=f"Ticket {i}: the {KEYWORDS[labels[i % 8]]} problem is back. "
            f"It started this morning after the update.",
            label=labels[i % 8],
            slice=SuiteSlice.CORE,
        )
        for i in range(n)
    ] + [
        SuiteExample(
            id=f"p{i:03d}",
            text=f"the {KEYWORDS[labels[i % 8]]} again",
            label=labels[i % 8],
            slice=SuiteSlice.PRESERVATION,
        )
        for i in range(16)
    ]
    return EvalSuite(name="robust", examples=examples).frozen()


def _finding(label: str, terms: list[str], *, confirmed: bool, fid: str) -> Finding:
    return Finding(
        id=fid,
        kind="contrast",
        reason_code="R2",
        label=label,
        tokens=[
            FindingTerm(term=t, label=label, z=4.0, overrides_with=9, reference_with=1)
            for t in terms
        ],
        confirmed=confirmed,
    )


FINDINGS = [
    _finding("security_incident", ["authenticator", "mfa prompt"], confirmed=True, fid="f1"),
    _finding("hardware", ["printer"], confirmed=False, fid="f2"),
]


@pytest.fixture
def wf(workflow: Workflow) -> Workflow:
    policy = workflow.regression.model_copy(update={"n_bootstrap": 300})
    return workflow.model_copy(update={"regression": policy})


# -- generators ------------------------------------------------------------------------------


def test_every_generator_is_documented_and_typed() -> None:
    found = perturbations()
    assert set(DEFAULT_PERTURBATIONS) <= set(found)
    assert "injection" in found and "injection" not in DEFAULT_PERTURBATIONS
    for p in found.values():
        assert p.description, p.name
        assert p.kind == ("attack" if p.name in ("keyword_stuffing", "injection") else "invariance")


@pytest.mark.parametrize("name", sorted(perturbations()))
def test_generators_are_deterministic_and_seeded(name: str, workflow: Workflow) -> None:
    text = "I cannot log in to the VPN since this morning. It is urgent, the laptop is new."
    ctx = PerturbationContext("vpn_issue", workflow.label_names, {"hardware": ["printer"]})
    first = perturb(name, text, ctx, seed=3, key="ex1")
    assert first is not None and first.text != text
    assert perturb(name, text, ctx, seed=3, key="ex1") == first
    # another seed or example id draws differently for the random generators
    others = {perturb(name, text, ctx, seed=s, key="ex1") for s in range(12)}
    if name not in ("length_long", "length_short"):
        assert len(others) > 1, f"{name} ignores its seed"
    if perturbations()[name].kind == "attack":
        assert first.target is not None and first.target != "vpn_issue"


def test_invariance_generators_keep_the_content(workflow: Workflow) -> None:
    text = "I cannot reach the shared drive. It is blocked for my team since Monday."
    ctx = PerturbationContext("access_request", workflow.label_names)

    def squash(s: str) -> str:
        return " ".join(s.split()).lower()

    cw = perturb("case_whitespace", text, ctx, seed=1, key="a")
    assert cw is not None and squash(cw.text) == squash(text) and cw.text != text
    typo = perturb("typos", text, ctx, seed=1, key="a")
    assert typo is not None
    changed = [
        (a, b) for a, b in zip(text.split(), typo.text.split(), strict=True) if a != b
    ]  # same word count: edits stay inside words
    assert 1 <= len(changed) <= 3
    para = perturb("paraphrase", text, ctx, seed=1, key="a")
    assert para is not None and "can't" in para.text and "it's" in para.text.lower()
    long = perturb("length_long", text, ctx, seed=1, key="a")
    assert long is not None and long.text.startswith(text) and len(long.text.split()) > 60
    short = perturb("length_short", text, ctx, seed=1, key="a")
    assert short is not None and short.text == "I cannot reach the shared drive."
    assert perturb("length_short", "vpn down", ctx, seed=1, key="a") is None
    mixed = perturb("mixed_language", text, ctx, seed=1, key="a")
    assert mixed is not None and text.strip() in mixed.text


def test_keyword_stuffing_inserts_another_class_terms(workflow: Workflow) -> None:
    terms = {"security_incident": ["authenticator"], "vpn_issue": ["tunnel"]}
    ctx = PerturbationContext("vpn_issue", workflow.label_names, terms)
    got = perturb("keyword_stuffing", "The vpn drops. Please help.", ctx, seed=0, key="x")
    assert got is not None and got.target == "security_incident"
    assert "authenticator" in got.text and got.detail == "authenticator"
    # no other class has terms: not applicable
    alone = PerturbationContext("vpn_issue", workflow.label_names, {"vpn_issue": ["tunnel"]})
    assert perturb("keyword_stuffing", "The vpn drops.", alone, seed=0, key="x") is None


def test_stuffing_terms_come_from_confirmed_findings_only() -> None:
    pair = Finding(
        id="f3",
        kind="contrast",
        reason_code="R2",
        label="account_unlock",
        tokens=[
            FindingTerm(
                term="locked + badge",
                label="account_unlock",
                z=3.0,
                overrides_with=5,
                reference_with=0,
                kind="pair",
                parts=["locked", "badge"],
            ),
            FindingTerm(
                term="[mfa_related]",
                label="account_unlock",
                z=3,
                overrides_with=5,
                reference_with=0,
                kind="slice",
            ),
        ],
        confirmed=True,
    )
    got = stuffing_terms_from_findings([*FINDINGS, pair])
    assert got == {
        "account_unlock": ["locked", "badge"],
        "security_incident": ["authenticator", "mfa prompt"],
    }
    assert "hardware" in stuffing_terms_from_findings(FINDINGS, confirmed_only=False)


def test_a_slice_term_stuffs_the_words_of_its_pattern(workflow: Workflow) -> None:
    from tunegate.evaluate import slice_literals

    regex = workflow.slices["mfa_related"].text_regex
    assert regex is not None
    assert slice_literals(regex, n=3) == ["mfa", "2fa", "authenticator"]
    assert slice_literals(r"\bvpn\b") == ["vpn"]
    assert slice_literals(r"(?:token|pass(word|phrase))", n=5) == ["token"]
    finding = _finding("security_incident", ["[mfa_related]", "push"], confirmed=True, fid="f4")
    assert stuffing_terms_from_findings([finding], workflow=workflow) == {
        "security_incident": ["mfa", "2fa", "push"]
    }
    # without the workflow the slice cannot be read: only the plain term is left
    assert stuffing_terms_from_findings([finding]) == {"security_incident": ["push"]}


def test_injection_patterns_catch_every_template(workflow: Workflow) -> None:
    ctx = PerturbationContext("vpn_issue", workflow.label_names)
    injected = [
        perturb("injection", "The vpn drops every hour.", ctx, seed=s, key="k") for s in range(40)
    ]
    texts = [p.text for p in injected if p is not None]
    assert len({p.detail.split()[0] for p in injected if p}) == 4  # every template drawn
    assert all(match_attack_patterns(texts))
    clean = [
        "The vpn drops every hour.",
        "Please reset my password, the previous one expired.",
        "The system is slow above 10 users.",
    ]
    assert match_attack_patterns(clean) == [[], [], []]
    assert len(INJECTION_PATTERNS) >= 4


def test_inject_into_passages_is_deterministic() -> None:
    passages = ["Reset a password from the portal.", "VPN needs the client 5.2.", "Printers."]
    a = inject_into_passages(passages, "hardware", seed=1, key="q1")
    assert a == inject_into_passages(passages, "hardware", seed=1, key="q1")
    out, at = a
    assert [p for i, p in enumerate(out) if i != at] == [
        p for i, p in enumerate(passages) if i != at
    ]
    assert "hardware" in out[at] and match_attack_patterns([out[at]]) != [[]]
    with pytest.raises(InputError, match="at least one passage"):
        inject_into_passages([], "hardware")


# -- the frozen slice ------------------------------------------------------------------------


def test_freeze_is_deterministic_and_hashed(wf: Workflow) -> None:
    suite = _suite(wf)
    s1 = freeze_robustness_slice(suite, wf, findings=FINDINGS, seed=0)
    s2 = freeze_robustness_slice(suite, wf, findings=FINDINGS, seed=0)
    s3 = freeze_robustness_slice(suite, wf, findings=FINDINGS, seed=1)
    assert s1.hash == s2.hash and s1.hash != s3.hash
    assert s1.suite_hash == suite.hash
    assert s1.stuffing_terms == {"security_incident": ["authenticator", "mfa prompt"]}
    # only core examples are perturbed, every one by every invariance generator but length_short
    assert {e.source_id[0] for e in s1.examples} == {"c"}
    per = {name: sum(e.perturbation == name for e in s1.examples) for name in s1.perturbations}
    assert per["typos"] == per["paraphrase"] == 80
    # keyword stuffing skips the 10 security_incident tickets (no other class has terms)
    assert per["keyword_stuffing"] == 70
    assert all(e.target == "security_incident" for e in s1.examples if e.kind == "attack")
    # the hash covers the examples: a changed text is refused on load
    data = s1.model_dump()
    data["examples"][0]["text"] += " tampered"
    with pytest.raises(ValueError, match="modified after it was frozen"):
        RobustnessSlice.model_validate(data)


def test_freeze_refusals_and_the_stuffing_warning(wf: Workflow) -> None:
    suite = _suite(wf)
    with pytest.raises(InputError, match="unknown perturbations"):
        freeze_robustness_slice(suite, wf, names=["typos", "homoglyphs"])
    with pytest.warns(RobustnessWarning, match="keyword stuffing skipped"):
        got = freeze_robustness_slice(suite, wf)  # no confirmed findings
    assert "keyword_stuffing" not in got.perturbations
    no_core = EvalSuite(
        name="x",
        examples=[e for e in suite.examples if e.slice is not SuiteSlice.CORE],
    ).frozen()
    with pytest.raises(InputError, match="no core examples"):
        freeze_robustness_slice(no_core, wf, findings=FINDINGS)


def test_slice_round_trips_through_the_store(wf: Workflow, tmp_path: Path) -> None:
    from tunegate.store import Store

    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    suite = _suite(wf)
    rslice = freeze_robustness_slice(suite, wf, findings=FINDINGS)
    assert get_robustness_slice(store, suite.hash) is None
    save_robustness_slice(store, rslice)
    save_robustness_slice(store, rslice)  # a no-op
    got = get_robustness_slice(store, suite.hash)
    assert got == rslice and len(store.documents(RobustnessSlice).items()) == 1


# -- metrics by hand -------------------------------------------------------------------------


def test_robustness_metrics_by_hand() -> None:
    clean = [0, 1, 2, 2, 3]
    pert = [0, 2, 2, 1, 3]
    assert M.flip_rate(clean, pert) == pytest.approx(2 / 5)
    assert M.robust_accuracy_score([0, 1, 2, 1, 0], pert) == pytest.approx(3 / 5)
    # target 2: rows 2 and 3 already predicted 2 cleanly (not counted); of 0, 1, 4 only 1
    # moved to 2 -> 1 / 3
    assert M.attack_success_rate(clean, pert, [2, 2, 2, 2, 2]) == pytest.approx(1 / 3)
    assert math.isnan(M.attack_success_rate([2, 2], [2, 2], [2, 2]))
    with pytest.raises(InputError, match="aligned one-to-one"):
        M.flip_rate([0, 1], [0])
    with pytest.raises(InputError, match="integer class ids"):
        M.flip_rate([0.5], [1.0])


def test_grouped_terms_keep_the_value_and_resample_sources() -> None:
    terms = M.metric_terms("flip_rate", [0, 0, 1, 1, 2], [1, 0, 1, 1, 0])
    grouped = M.grouped_terms(terms, ["a", "a", "b", "b", "c"])
    assert grouped.value() == terms.value() == pytest.approx(2 / 5)
    assert grouped.numerator.tolist() == [1.0, 0.0, 1.0]
    assert grouped.denominator.tolist() == [2.0, 2.0, 1.0]
    with pytest.raises(InputError, match="one group per"):
        M.grouped_terms(terms, ["a"])


# -- the rule: the must-have -----------------------------------------------------------------


def _runs(wf: Workflow, suite: EvalSuite, rslice: RobustnessSlice, clf: Any) -> Any:
    run = run_eval(clf, suite, wf)
    return attach_robustness(run, clf, rslice, wf)


def test_a_classifier_keying_on_one_word_fails_keyword_stuffing(wf: Workflow) -> None:
    suite = _suite(wf)
    rslice = freeze_robustness_slice(suite, wf, findings=FINDINGS)
    labels = wf.label_names
    invariant = KeywordClassifier(labels)
    shortcut = KeywordClassifier(labels, {"authenticator": "security_incident"})
    base = _runs(wf, suite, rslice, invariant)
    # the run records the slice's figures
    summary = base.metrics["robustness"]["summary"]
    assert summary["attack_success:keyword_stuffing"]["estimate"] == 0.0
    assert base.metrics["robustness"]["slice_hash"] == rslice.hash

    bad = compare_runs(base, _runs(wf, suite, rslice, shortcut), suite, wf)
    rules = {r.rule: r for r in bad.verdict.rules}
    stuffing = rules["robustness:attack_success:keyword_stuffing"]
    assert stuffing.outcome is VerdictOutcome.FAIL, stuffing.message
    # "authenticator" is in about half of the stuffed tickets (one or two of two terms)
    assert stuffing.candidate is not None and stuffing.candidate > 0.3
    assert stuffing.baseline == 0.0 and stuffing.ci_low is not None and stuffing.ci_low > 0
    assert "keyword stuffing attack success rate rose" in stuffing.message
    assert bad.verdict.outcome is VerdictOutcome.FAIL
    assert bad.robustness is not None

    good = compare_runs(base, _runs(wf, suite, rslice, KeywordClassifier(labels)), suite, wf)
    rules = {r.rule: r for r in good.verdict.rules}
    assert rules["robustness:attack_success:keyword_stuffing"].outcome is VerdictOutcome.PASS
    assert rules["robustness:flip_rate"].outcome is VerdictOutcome.PASS
    assert rules["robustness:flip_rate"].difference == 0.0


def test_flip_rate_rule_fails_a_model_broken_by_noise(wf: Workflow) -> None:
    """A model that reads only exact lowercase keywords flips under case and typos."""

    class CaseSensitive(KeywordClassifier):
        def _label(self, text: str) -> int:
            hits = [(text.find(kw), lab) for lab, kw in KEYWORDS.items() if kw in text]
            return self.labels.index(min(hits)[1]) if hits else 0

    suite = _suite(wf)
    rslice = freeze_robustness_slice(
        suite, wf, names=["typos", "case_whitespace"], findings=FINDINGS
    )
    base = _runs(wf, suite, rslice, KeywordClassifier(wf.label_names))
    cand = _runs(wf, suite, rslice, CaseSensitive(wf.label_names))
    cmp = compare_runs(base, cand, suite, wf)
    flip = {r.rule: r for r in cmp.verdict.rules}["robustness:flip_rate"]
    assert flip.outcome is VerdictOutcome.FAIL, flip.message
    assert "robustness:attack_success:keyword_stuffing" not in {r.rule for r in cmp.verdict.rules}


def test_no_slice_no_finding_and_mismatched_slices_refused(wf: Workflow) -> None:
    suite = _suite(wf)
    clf = KeywordClassifier(wf.label_names)
    plain = run_eval(clf, suite, wf)
    cmp = compare_runs(plain, plain, suite, wf)
    assert not [r for r in cmp.verdict.rules if r.rule.startswith("robustness")]
    assert cmp.robustness is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RobustnessWarning)
        a = attach_robustness(plain, clf, freeze_robustness_slice(suite, wf, seed=0), wf)
        b = attach_robustness(plain, clf, freeze_robustness_slice(suite, wf, seed=1), wf)
    with pytest.raises(InputError, match="different robustness slices"):
        compare_robustness(a, b, wf)
    other = _suite(wf, n=40)
    with pytest.raises(InputError, match="belongs to suite"):
        attach_robustness(plain, clf, freeze_robustness_slice(other, wf, findings=FINDINGS), wf)


def test_messages_name_the_slice_size(wf: Workflow) -> None:
    suite = _suite(wf)
    rslice = freeze_robustness_slice(suite, wf, findings=FINDINGS)
    run = _runs(wf, suite, rslice, KeywordClassifier(wf.label_names))
    cmp = compare_runs(run, run, suite, wf)
    flip = {r.rule: r for r in cmp.verdict.rules}["robustness:flip_rate"]
    assert re.search(r"\(80 suite examples perturbed\)$", flip.message)


def test_reports_and_the_demo_table_show_the_slice(wf: Workflow) -> None:
    from tunegate.demo._table import key_table, robustness_key_rows
    from tunegate.report import comparison_html, run_html, verdict_markdown

    suite = _suite(wf)
    rslice = freeze_robustness_slice(suite, wf, findings=FINDINGS)
    base = _runs(wf, suite, rslice, KeywordClassifier(wf.label_names))
    cand = _runs(
        wf, suite, rslice, KeywordClassifier(wf.label_names, {"authenticator": "security_incident"})
    )
    cmp = compare_runs(base, cand, suite, wf)
    assert cmp.robustness is not None
    rows = {r.metric: r for r in robustness_key_rows(cmp.robustness)}
    assert list(rows) == [
        "flip rate under label-preserving perturbations",
        "robust accuracy (perturbed core tickets)",
        "keyword-stuffing attack success rate",
    ]
    stuffing = rows["keyword-stuffing attack success rate"]
    figure = cmp.robustness.figures["attack_success:keyword_stuffing"]
    assert figure.b is not None
    assert stuffing.before == 0.0 and stuffing.after == figure.b.estimate
    assert stuffing.ci_low is not None and stuffing.ci_low > 0 and not stuffing.within_noise
    # the demo's table takes them from the comparison when none are passed
    assert [r.metric for r in key_table(cmp, wf)][6:9] == list(rows)
    html = comparison_html(cmp, base, cand, suite)
    assert "Robustness slice: baseline, candidate, difference" in html
    assert "keyword stuffing" in html
    assert "Robustness slice (perturbed core examples" in run_html(base, suite)
    assert "<summary>robustness slice</summary>" in verdict_markdown(cmp.verdict, cmp)


def test_perturbed_examples_keep_the_source_metadata(wf: Workflow) -> None:
    """A classifier that reads metadata sees the source example's on its perturbed copies."""

    class ByShift(KeywordClassifier):
        def predict_proba(self, texts: Sequence[str], metadata: Any = None) -> np.ndarray:
            out = super().predict_proba(texts, metadata)
            for i, meta in enumerate(metadata or []):
                if meta.get("shift") == "night":
                    out[i] = np.roll(out[i], 1)
            return out

    base = _suite(wf)
    examples = [
        e.model_copy(update={"metadata": {"shift": "night"}}) if e.id == "c000" else e
        for e in base.examples
    ]
    suite = EvalSuite(name="robust", examples=examples).frozen()
    rslice = freeze_robustness_slice(suite, wf, names=["typos"])
    assert next(e for e in rslice.examples if e.source_id == "c000").metadata == {"shift": "night"}
    clf = ByShift(wf.label_names)
    run = _runs(wf, suite, rslice, clf)
    plain = _runs(wf, suite, rslice, KeywordClassifier(wf.label_names))
    # the clean and the perturbed night ticket are shifted alike: the same flips as without
    # the shift (without the metadata the perturbed copy would not be shifted and would flip)
    rob, ref = run.metrics["robustness"], plain.metrics["robustness"]
    assert rob["summary"]["flip_rate:typos"] == ref["summary"]["flip_rate:typos"]
    at = rob["examples"]["source_id"].index("c000")
    assert rob["examples"]["pred"][at] != ref["examples"]["pred"][at]


# the grid of tests/test_selective.py: the robustness rules take the rise_rule shape
HARMS = [
    (0.005, 0.001, 0.009),
    (0.005, -0.01, 0.02),
    (0.010, -0.01, 0.02),
    (0.020, 0.001, 0.04),
    (0.020, 0.015, 0.03),
    (0.020, 0.0, 0.04),
    (0.020, -0.001, 0.04),
    (-0.02, -0.04, -0.001),
    (float("nan"), float("nan"), float("nan")),
]


@pytest.mark.parametrize("harm", HARMS)
def test_robustness_rules_fail_on_the_common_condition(
    wf: Workflow, harm: tuple[float, float, float]
) -> None:
    from tunegate.evaluate import RobustnessComparison, VerdictEvidence, verdict_rules

    d, lo, hi = harm
    base = M.Interval(0.1, 0.05, 0.15)
    keys = ("flip_rate:invariance", "robust_accuracy:invariance", "attack_success:injection")
    figures = {
        k: M.RatioBootstrap(k, 1000, 0.95, 0, base, base, M.Interval(d, lo, hi)) for k in keys
    }
    rob = RobustnessComparison("h" * 64, figures, {k: 50 for k in keys}, 0.95)
    policy = wf.regression.model_copy(
        update={"max_flip_rate_increase": 0.01, "max_attack_success_increase": 0.01}
    )
    rule = next(r for r in verdict_rules() if r.name == "robustness")
    ev = VerdictEvidence(
        bootstrap=M.BootstrapResult(n_resamples=1000, confidence=0.95, seed=0, a={}),
        mcnemar={},
        subset_sizes={},
        labels=wf.label_names,
        protected_labels=[],
        policy=policy,
        with_latency=False,
        robustness=rob,
    )
    found = {r.rule: r for r in rule.fn(ev)}
    # robust accuracy is reported, not judged
    assert set(found) == {"robustness:flip_rate", "robustness:attack_success:injection"}
    fail = d > 0.01 and lo > 0
    want = (
        VerdictOutcome.FAIL
        if fail
        else VerdictOutcome.PASS
        if d <= 0.01
        else VerdictOutcome.INCONCLUSIVE
    )
    for r in found.values():
        assert r.outcome is want, (r.rule, harm, r.message)
        if d == d:
            assert (" rose " if d > 0 else " fell ") in f" {r.message}", r.message
