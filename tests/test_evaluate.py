"""Suites, run_eval, the verdict table, seed variance and the BANKING77 probe (fast parts)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tunegate.config import Workflow
from tunegate.errors import InputError, LeakageError
from tunegate.evaluate import (
    LeakageCheckWarning,
    SuiteSizeWarning,
    compare,
    compare_probes,
    compare_runs,
    freeze_suite,
    preservation_probe,
    read_suite_examples,
    run_eval,
    seed_variance,
    suite_from_examples,
)
from tunegate.records import EvalRun, EvalSuite, Example, SuiteExample, SuiteSlice, VerdictOutcome


def _bow(texts: Sequence[str], dim: int = 64) -> np.ndarray:
    """A deterministic bag-of-words embedding (hashing trick) for tests."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in t.lower().split():
            out[i, sum(map(ord, w)) % dim] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


class KeywordClassifier:
    """Puts probability ``conf`` on the label whose name appears in the text (else uniform);
    its labels are in reverse workflow order to exercise column alignment."""

    def __init__(self, workflow: Workflow, conf: float = 0.9) -> None:
        self.labels = list(reversed(workflow.label_names))
        self.conf = conf
        self.version = f"keyword-{conf}"

    def predict_proba(self, texts: Sequence[str], metadata: Any = None) -> np.ndarray:
        k = len(self.labels)
        out = np.full((len(texts), k), 1.0 / k)
        for i, t in enumerate(texts):
            hits = [j for j, name in enumerate(self.labels) if name in t]
            if hits:
                out[i] = (1 - self.conf) / (k - 1)
                out[i, hits[0]] = self.conf
        return out


# -- suites ----------------------------------------------------------------------------------


def test_slice_rule(workflow: Workflow) -> None:
    rows = [
        {"id": "a", "text": "my MFA push prompts keep coming", "label": "security_incident"},
        {"id": "b", "text": "printer broken", "label": "hardware", "metadata": {"ambiguous": True}},
        {"id": "c", "text": "monitor flickers", "label": "hardware"},  # not a data target
        {"id": "d", "text": "locked out again", "label": "account_unlock"},  # a data target
        {"id": "e", "text": "printer jam", "label": "hardware", "slice": "core"},  # explicit
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SuiteSizeWarning)
        suite = freeze_suite("s", rows, workflow)
    got = {e.id: (e.slice.value, e.tags) for e in suite.examples}
    assert got == {
        "a": ("edge", ["mfa_related"]),
        "b": ("edge", []),
        "c": ("preservation", []),
        "d": ("core", []),
        "e": ("core", []),
    }
    assert suite.hash == suite.compute_hash() and len(suite.hash) == 64


def test_suite_hash_independent_of_order_and_size_warnings(workflow: Workflow) -> None:
    rows = [{"id": f"x{i}", "text": f"vpn issue {i}", "label": "vpn_issue"} for i in range(5)]
    with pytest.warns(SuiteSizeWarning, match="'core' has 5 examples; recommended 100-300"):
        a = freeze_suite("s", rows, workflow)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SuiteSizeWarning)
        b = freeze_suite("s", list(reversed(rows)), workflow)
    assert a.hash == b.hash


def test_suite_rejects_unknown_labels_and_slices(workflow: Workflow) -> None:
    with pytest.raises(InputError, match=r"labels \['nope'\] are not in the workflow"):
        freeze_suite("s", [{"text": "x", "label": "nope"}], workflow)
    with pytest.raises(InputError, match="slice 'middle'"):
        freeze_suite("s", [{"text": "x", "label": "hardware", "slice": "middle"}], workflow)


def test_leakage_exact_and_near(workflow: Workflow) -> None:
    rows = [
        {"id": "dup", "text": "  The VPN   keeps DROPPING ", "label": "vpn_issue"},
        {"id": "near", "text": "send cannot outlook mailbox full", "label": "email_issue"},
        {"id": "ok", "text": "need access to finance share", "label": "access_request"},
    ]
    training = ["the vpn keeps dropping", "outlook mailbox full cannot send"]
    with pytest.raises(LeakageError) as info:
        freeze_suite("s", rows, workflow, training_texts=training, encoder=_bow)
    msg = str(info.value)
    assert "['dup']" in msg and "near (cos 1.000)" in msg and "ok" not in msg
    # exact-only mode still refuses the exact duplicate, and says near-duplicates were skipped
    with pytest.raises(LeakageError, match=r"1 exact duplicates \['dup'\]; 0 near"):
        freeze_suite("s", rows, workflow, training_texts=training, near_duplicates=False)
    with pytest.warns(LeakageCheckWarning, match="only exact"):
        freeze_suite("s", rows[1:], workflow, training_texts=training[:1], near_duplicates=False)


def test_suite_from_examples_and_file_reading(workflow: Workflow, tmp_path: Path) -> None:
    pool = [
        Example(id="e1", text="laptop screen cracked", label="hardware"),
        Example(id="e2", text="locked account", label="account_unlock", metadata={"slice": "edge"}),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SuiteSizeWarning)
        suite = suite_from_examples("p", pool, workflow)
    assert {e.id: e.slice for e in suite.examples} == {
        "e1": SuiteSlice.PRESERVATION,
        "e2": SuiteSlice.EDGE,
    }
    csv_path = tmp_path / "s.csv"
    csv_path.write_text(
        'id,text,label,slice,tags,shift\n1,hello,hardware,edge,"a,b",night\n', encoding="utf-8"
    )
    assert read_suite_examples(csv_path) == [
        {
            "id": "1",
            "text": "hello",
            "label": "hardware",
            "slice": "edge",
            "tags": "a,b",
            "metadata": {"shift": "night"},
        }
    ]
    jl = tmp_path / "s.jsonl"
    jl.write_text('{"text": "a", "label": "hardware"}\n{"bad json\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"s.jsonl:2: not valid JSON"):
        read_suite_examples(jl)


# -- run_eval --------------------------------------------------------------------------------


def test_run_eval_keyword_classifier(workflow: Workflow) -> None:
    labels = workflow.label_names
    rows = [
        {
            "id": f"r{i}",
            "text": f"ticket about {labels[i % 8]}" if i % 4 else "something",
            "label": labels[i % 8],
            "metadata": {"shift": "night" if i % 2 else "day"},
        }
        for i in range(80)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SuiteSizeWarning)
        suite = freeze_suite("kw", rows, workflow)
    wf = workflow.model_copy(
        update={"regression": workflow.regression.model_copy(update={"n_bootstrap": 200})}
    )
    run = run_eval(KeywordClassifier(wf), suite, wf, seed=3, batch_size=16)
    assert run.labels == labels and run.seed == 3 and run.suite_hash == suite.hash
    proba = np.array(run.proba)
    # columns are in workflow order: the keyword's label carries the mass
    assert proba[1].argmax() == labels.index("password_reset")
    assert len(run.latency_ms) == 80 and all(v > 0 for v in run.latency_ms)
    m = run.metrics
    assert m["overall"]["accuracy"]["estimate"] == pytest.approx(
        np.mean(proba.argmax(1) == np.array(run.y_true))
    )
    assert m["named_slices"]["night_shift"]["n"] == 40
    assert sum(m["slices"][s]["n"] for s in ("core", "edge", "preservation")) == 80
    assert set(m["overall"]["per_class"]) == set(labels)
    assert m["bootstrap"]["n_resamples"] == 200
    json.dumps(run.model_dump(mode="json"))  # JSON-clean (no NaN objects)


# -- the verdict table -----------------------------------------------------------------------

SEC = 3  # index of security_incident (protected) in the starter workflow


def _suite(workflow: Workflow) -> EvalSuite:
    labels = workflow.label_names
    ex = [
        SuiteExample(id=f"{s.value}{i}", text=f"{s.value} text {i}", label=labels[i % 8], slice=s)
        for s, n in ((SuiteSlice.CORE, 200), (SuiteSlice.EDGE, 60), (SuiteSlice.PRESERVATION, 100))
        for i in range(n)
    ]
    return EvalSuite(name="table", examples=ex).frozen()


def _run(
    suite: EvalSuite,
    workflow: Workflow,
    wrong: set[str],
    *,
    conf: float | None = None,
    latency: float = 1.0,
) -> EvalRun:
    labels = workflow.label_names
    k = len(labels)
    y = [labels.index(e.label) for e in suite.examples]
    correct = [e.id not in wrong for e in suite.examples]
    c = conf if conf is not None else float(np.mean(correct))  # calibrated by default
    proba = []
    for yi, ok in zip(y, correct, strict=True):
        row = [(1 - c) / (k - 1)] * k
        row[yi if ok else (yi + 1) % k] = c
        proba.append(row)
    return EvalRun(
        model_version="m",
        suite_hash=suite.hash,
        labels=labels,
        metrics={},
        example_ids=[e.id for e in suite.examples],
        y_true=y,
        proba=proba,
        latency_ms=[latency] * len(y),
    )


BASE_WRONG = (
    {f"core{i}" for i in range(40)}
    | {f"preservation{i}" for i in range(10)}
    | {f"edge{i}" for i in range(6)}
)
NON_SEC_WRONG = [f"core{i}" for i in range(40) if i % 8 != SEC]
SEC_RIGHT = [f"core{i}" for i in range(40, 200) if i % 8 == SEC]
CORE_RIGHT = [f"core{i}" for i in range(40, 200) if i % 8 != SEC]

CASES: list[tuple[str, set[str], Mapping[str, Any], str, dict[str, str]]] = [
    (
        "core +5% with preservation -15% fails",
        (BASE_WRONG - set(NON_SEC_WRONG[:10])) | {f"preservation{i}" for i in range(25)},
        {},
        "fail",
        {"core_improvement": "pass", "preservation": "fail"},
    ),
    (
        "a clear core gain with nothing lost passes",
        BASE_WRONG - set(NON_SEC_WRONG[:20]),
        {},
        "pass",
        {"core_improvement": "pass"},
    ),
    (
        "a core difference inside the bootstrap interval is inconclusive",
        (BASE_WRONG - set(NON_SEC_WRONG[:3])) | set(CORE_RIGHT[:2]),
        {},
        "inconclusive",
        {"core_improvement": "inconclusive", "preservation": "pass"},
    ),
    (
        "a rise in the protected class's FNR fails",
        (BASE_WRONG - set(NON_SEC_WRONG[:8])) | set(SEC_RIGHT[:8]),
        {},
        "fail",
        {"protected_fnr:security_incident": "fail"},
    ),
    (
        "an ECE rise above 0.01 fails",
        BASE_WRONG - set(NON_SEC_WRONG[:20]),
        {"conf": 0.99},
        "fail",
        {"ece": "fail", "core_improvement": "pass"},
    ),
    (
        "an ECE rise just above 0.01 that the interval cannot tell from noise is inconclusive",
        BASE_WRONG - set(NON_SEC_WRONG[:20]),
        {"conf": 0.915},
        "inconclusive",
        {"ece": "inconclusive", "core_improvement": "pass"},
    ),
    (
        "an ECE rise within 0.01 passes",
        BASE_WRONG - set(NON_SEC_WRONG[:20]),
        {"conf": 0.905},
        "pass",
        {"ece": "pass"},
    ),
    (
        "a 30% rise of recorded latency is not judged (runs recorded at different times)",
        BASE_WRONG - set(NON_SEC_WRONG[:20]),
        {"latency": 1.3},
        "pass",
        {"core_improvement": "pass"},
    ),
    (
        "a significant core regression fails",
        BASE_WRONG | set(CORE_RIGHT[:25]),
        {},
        "fail",
        {"core_improvement": "fail"},
    ),
    (
        "a small preservation change that cannot be told from noise is inconclusive",
        (BASE_WRONG - set(NON_SEC_WRONG[:20]) - {"preservation0"})
        | {"preservation50", "preservation51"},
        {},
        "inconclusive",
        {"preservation": "inconclusive", "core_improvement": "pass"},
    ),
]


@pytest.mark.parametrize(
    ("title", "cand_wrong", "kw", "outcome", "rules"), CASES, ids=[c[0] for c in CASES]
)
def test_verdict_table(
    workflow: Workflow,
    title: str,
    cand_wrong: set[str],
    kw: Mapping[str, Any],
    outcome: str,
    rules: dict[str, str],
) -> None:
    suite = _suite(workflow)
    base = _run(suite, workflow, BASE_WRONG)
    cand = _run(suite, workflow, cand_wrong, **kw)
    verdict = compare(base, cand, suite, workflow)
    got = {r.rule: r.outcome.value for r in verdict.rules}
    assert verdict.outcome.value == outcome, (title, got)
    for rule, expected in rules.items():
        assert got[rule] == expected, (rule, [r.message for r in verdict.rules])
    assert verdict.exit_code == {"pass": 0, "fail": 1, "inconclusive": 2}[outcome]


def test_identical_models_are_inconclusive_not_a_win(workflow: Workflow) -> None:
    suite = _suite(workflow)
    run = _run(suite, workflow, BASE_WRONG)
    cmp = compare_runs(run, run, suite, workflow)
    assert cmp.verdict.outcome is VerdictOutcome.INCONCLUSIVE
    assert "within noise" in cmp.verdict.rules[0].message
    assert cmp.mcnemar["overall"].p_value == 1.0


def test_compare_refuses_other_suite(workflow: Workflow) -> None:
    suite = _suite(workflow)
    run = _run(suite, workflow, BASE_WRONG)
    other = run.model_copy(update={"suite_hash": "f" * 64})
    with pytest.raises(InputError, match="compare runs on one suite"):
        compare(run, other, suite, workflow)


def test_seed_variance(workflow: Workflow) -> None:
    runs = [
        EvalRun(
            model_version="m",
            suite_hash="h",
            labels=["a", "b"],
            example_ids=[],
            y_true=[],
            proba=[],
            metrics={"overall": {"accuracy": {"estimate": v}}, "slices": {}, "named_slices": {}},
        )
        for v in (0.7, 0.8, 0.9)
    ]
    s = seed_variance(runs)
    assert s.mean == pytest.approx(0.8) and s.std == pytest.approx(0.1) and s.k == 3


# -- BANKING77 probe on a tiny synthetic copy ------------------------------------------------


def test_probe_before_after(tmp_path: Path) -> None:
    cats = {
        "card_arrival": "card arrive post delivery",
        "top_up": "top up balance money add",
        "pin_blocked": "pin blocked locked code",
    }
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 8)):
        lines = ["text,category"]
        for cat, words in cats.items():
            for _ in range(n):
                w = words.split()
                lines.append(" ".join(rng.choice(w, size=4)) + f",{cat}")
        (tmp_path / f"{split}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    good = preservation_probe(_bow, tmp_path, train_per_class=10, test_per_class=8, k=3)
    assert good.accuracy == 1.0 and good.n_test == 24 and good.n_train == 30

    def damaged(texts: Sequence[str]) -> np.ndarray:
        return np.random.default_rng(len(texts)).normal(size=(len(texts), 16))

    bad = preservation_probe(damaged, tmp_path, train_per_class=10, test_per_class=8, k=3)
    cmp = compare_probes(good, bad)
    assert cmp.drop.estimate == pytest.approx(1.0 - bad.accuracy)
    assert cmp.drop.low > 0 and not cmp.within_noise
