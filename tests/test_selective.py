"""Selective prediction: risk-coverage metrics, fitted routing thresholds per model version,
and the verdict rules that fail a candidate buying accuracy with worse abstention."""

from __future__ import annotations

import numpy as np
import pytest

import _store_fixtures
from tunegate import metrics as M
from tunegate.config import Workflow
from tunegate.evaluate import compare_runs, freeze_suite, run_eval
from tunegate.records import (
    OUT_OF_SCOPE_LABEL,
    EvalRun,
    EvalSuite,
    ModelKind,
    ModelVersion,
    SuiteExample,
    SuiteSlice,
    VerdictOutcome,
)
from tunegate.store import Store

store = _store_fixtures.store
store_url = _store_fixtures.store_url


def _data(seed: int, n: int = 400, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(k, 0.6), n)
    y = np.where(rng.random(n) < 0.6, p.argmax(axis=1), rng.integers(0, k, n))
    return y, p


# -- metrics ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_aurc_matches_brute_force(seed: int) -> None:
    y, p = _data(seed)
    h = M.normalized_entropy(p)
    order = np.argsort(h, kind="stable")  # continuous draws: no ties
    errors = (p.argmax(axis=1) != y)[order]
    brute = np.mean(np.cumsum(errors) / np.arange(1, y.size + 1))
    assert M.aurc_rate(y, p) == pytest.approx(brute, abs=1e-12)
    curve = M.risk_coverage_curve(y, p)
    assert curve.coverage[-1] == pytest.approx(1.0)
    assert curve.risk[-1] == pytest.approx(1.0 - M.accuracy_score(y, p.argmax(axis=1)))
    cover = 0.3
    i = int(np.ceil(cover * y.size))
    assert M.selective_risk_at_coverage(y, p, i / y.size) == pytest.approx(errors[:i].mean())


def test_aurc_ties_average_over_orders() -> None:
    # two tied rows, one right one wrong: the two orders give 1/1,1/2 and 0,1/2 -> 0.5 mean
    p = np.array([[0.8, 0.2], [0.2, 0.8]])
    y = np.array([0, 0])
    assert M.aurc_rate(y, p) == pytest.approx(np.mean([(1 + 0.5) / 2, (0 + 0.5) / 2]))


def test_out_of_scope_rows_only_count_for_routing() -> None:
    y, p = _data(3)
    y_oos = y.copy()
    y_oos[:50] = M.OUT_OF_SCOPE
    keep = y_oos != M.OUT_OF_SCOPE
    assert M.aurc_rate(y_oos, p) == pytest.approx(M.aurc_rate(y[keep], p[keep]))
    assert M.selective_risk_rate(y_oos, p, clarify_threshold=0.6) == pytest.approx(
        M.selective_risk_rate(y[keep], p[keep], clarify_threshold=0.6)
    )
    auto = M.auto_route_mask(p, clarify_threshold=0.6)
    assert M.oos_auto_rate(y_oos, p, clarify_threshold=0.6) == pytest.approx(auto[:50].mean())
    assert np.isnan(M.oos_auto_rate(y, p))


@pytest.mark.parametrize("target", [0.1, 0.25, 0.5])
def test_fit_route_threshold_hits_a_clarify_rate(target: float) -> None:
    y, p = _data(4, n=1000)
    fit = M.fit_route_threshold(p, y, target_clarify_rate=target)
    clarified = float(np.mean(M.normalized_entropy(p) > fit.threshold))
    assert fit.clarify_rate == pytest.approx(clarified)
    assert target - 1e-3 <= clarified <= target + 1e-9  # continuous entropies: within 1/n


@pytest.mark.parametrize("target", [0.1, 0.2, 0.3])
def test_fit_route_threshold_largest_coverage_within_risk(target: float) -> None:
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.full(5, 0.3), 1000)
    y = np.array([rng.choice(5, p=row) for row in p])  # calibrated: confident rows are right
    fit = M.fit_route_threshold(p, y, target_risk=target)
    h = M.normalized_entropy(p)
    auto = h <= fit.threshold
    risk = float(np.mean(p[auto].argmax(axis=1) != y[auto]))
    assert risk <= target + 1e-12
    assert 0.05 < auto.mean() < 1.0  # a real trade-off, not a degenerate threshold
    assert fit.selective_risk == pytest.approx(risk)
    # every larger threshold on the curve breaks the target
    curve = M.risk_coverage_curve(y, p)
    larger = curve.threshold > fit.threshold
    assert np.all(curve.risk[larger] > target)


def test_bootstrap_selective_metrics_match_registered_functions() -> None:
    y, p = _data(6)
    _, q = _data(7)
    y = y.copy()
    y[::9] = M.OUT_OF_SCOPE
    sub = np.arange(y.size) % 3 == 0
    boot = M.paired_bootstrap(
        y,
        p,
        q,
        subsets={"s": sub},
        clarify_threshold=0.7,
        clarify_threshold_b=0.5,
        n_resamples=50,
    )
    assert boot.b is not None
    for table, proba, thr in ((boot.a, p, 0.7), (boot.b, q, 0.5)):
        for name, mask in (("overall", np.ones(y.size, bool)), ("s", sub)):
            yy, pp = y[mask], proba[mask]
            t = table[name]
            assert t["selective_risk"].estimate == pytest.approx(
                M.selective_risk_rate(yy, pp, clarify_threshold=thr)
            )
            assert t["aurc"].estimate == pytest.approx(M.aurc_rate(yy, pp))
            assert t["oos_auto_rate"].estimate == pytest.approx(
                M.oos_auto_rate(yy, pp, clarify_threshold=thr)
            )
            assert t["coverage"].estimate == pytest.approx(
                M.coverage_score(yy, pp, clarify_threshold=thr)
            )
            matched = boot.a[name]["coverage"].estimate
            assert t["selective_risk_matched"].estimate == pytest.approx(
                M.selective_risk_at_coverage(yy, pp, matched)
            )
            assert t["aurc"].low <= t["aurc"].high


# -- verdict ---------------------------------------------------------------------------------


def _oos_suite(workflow: Workflow) -> EvalSuite:
    labels = workflow.label_names
    ex = [
        SuiteExample(id=f"{s.value}{i}", text=f"{s.value} text {i}", label=labels[i % 8], slice=s)
        for s, n in ((SuiteSlice.CORE, 200), (SuiteSlice.EDGE, 60), (SuiteSlice.PRESERVATION, 100))
        for i in range(n)
    ]
    ex += [
        SuiteExample(
            id=f"oos{i}",
            text=f"what is the weather {i}",
            label=OUT_OF_SCOPE_LABEL,
            slice=SuiteSlice.OUT_OF_SCOPE,
        )
        for i in range(100)
    ]
    return EvalSuite(name="oos", examples=ex).frozen()


def _run(
    suite: EvalSuite,
    workflow: Workflow,
    wrong: set[str],
    *,
    oos_conf: float,
    wrong_conf: float | None = None,
    threshold: float | None = None,
) -> EvalRun:
    """Right rows at p=0.9; wrong rows at ``wrong_conf`` (default 0.9) on the next class;
    out-of-scope rows at ``oos_conf`` on class 0 (near-uniform for a low value)."""
    labels = workflow.label_names
    k = len(labels)
    y, proba = [], []
    for e in suite.examples:
        oos = e.label == OUT_OF_SCOPE_LABEL
        yi = M.OUT_OF_SCOPE if oos else labels.index(e.label)
        c = oos_conf if oos else (wrong_conf or 0.9) if e.id in wrong else 0.9
        target = 0 if oos else (yi + 1) % k if e.id in wrong else yi
        row = [(1 - c) / (k - 1)] * k
        row[target] = c
        y.append(yi)
        proba.append(row)
    metrics = {"routing": {"clarify_threshold": threshold}} if threshold is not None else {}
    return EvalRun(
        model_version="m",
        suite_hash=suite.hash,
        labels=labels,
        metrics=metrics,
        example_ids=[e.id for e in suite.examples],
        y_true=y,
        proba=proba,
        latency_ms=[1.0] * len(y),
    )


def test_more_accurate_candidate_routing_out_of_scope_auto_fails(workflow: Workflow) -> None:
    suite = _oos_suite(workflow)
    base = _run(
        suite,
        workflow,
        {f"core{i}" for i in range(40)},
        oos_conf=1 / len(workflow.label_names) + 0.01,
    )
    cand = _run(suite, workflow, {f"core{i}" for i in range(10)}, oos_conf=0.95)
    comp = compare_runs(base, cand, suite, workflow)
    rules = {r.rule: r for r in comp.verdict.rules}
    assert rules["core_improvement"].outcome is VerdictOutcome.PASS
    assert rules["oos_auto_rate"].outcome is VerdictOutcome.FAIL
    assert rules["oos_auto_rate"].candidate == pytest.approx(1.0)
    assert rules["oos_auto_rate"].baseline == pytest.approx(0.0)
    assert comp.verdict.outcome is VerdictOutcome.FAIL
    # accuracy ignores the out-of-scope rows
    assert comp.bootstrap.a["slice:core"]["accuracy"].estimate == pytest.approx(0.8)


def test_candidate_with_confident_errors_fails_selective_risk(workflow: Workflow) -> None:
    suite = _oos_suite(workflow)
    # baseline: more errors, but unsure about them; candidate: fewer, all confidently wrong
    base = _run(suite, workflow, {f"core{i}" for i in range(30)}, oos_conf=0.2, wrong_conf=0.3)
    cand = _run(suite, workflow, {f"core{i}" for i in range(15)}, oos_conf=0.2, wrong_conf=0.999)
    comp = compare_runs(base, cand, suite, workflow)
    rules = {r.rule: r for r in comp.verdict.rules}
    assert rules["selective_risk:aurc"].outcome is VerdictOutcome.FAIL
    assert "coverage" in rules["selective_risk:aurc"].message
    assert comp.verdict.outcome is VerdictOutcome.FAIL


def test_compare_routes_each_run_with_its_own_threshold(workflow: Workflow) -> None:
    suite = _oos_suite(workflow)
    wrong = {f"core{i}" for i in range(20)}
    base = _run(suite, workflow, wrong, oos_conf=0.5, threshold=0.9)
    cand = _run(suite, workflow, wrong, oos_conf=0.5, threshold=0.05)
    comp = compare_runs(base, cand, suite, workflow)
    # the baseline's wide threshold sends every row auto but the escalated ones
    assert comp.bootstrap.a["overall"]["coverage"].estimate > 0.8
    assert comp.bootstrap.b is not None
    assert comp.bootstrap.b["overall"]["coverage"].estimate == pytest.approx(0.0)


def test_freeze_suite_accepts_unlabelled_out_of_scope(workflow: Workflow) -> None:
    labels = workflow.label_names
    items = [
        {"id": f"c{i}", "text": f"ticket number {i}", "label": labels[i % 3]} for i in range(6)
    ]
    items += [{"id": "o1", "text": "what time is it on mars", "label": None}]
    items += [{"id": "o2", "text": "book me a table", "slice": "out_of_scope"}]
    with pytest.warns(Warning):
        suite = freeze_suite("s", items, workflow, near_duplicates=False)
    oos = suite.slice_examples(SuiteSlice.OUT_OF_SCOPE)
    assert {e.id for e in oos} == {"o1", "o2"}
    assert {e.label for e in oos} == {OUT_OF_SCOPE_LABEL}


class _Fixed:
    def __init__(self, labels: list[str], threshold: float | None) -> None:
        self.labels = labels
        self.version = "fixed"
        if threshold is not None:
            self.clarify_threshold = threshold

    def predict_proba(self, texts: list[str], metadata: object = None) -> np.ndarray:
        k = len(self.labels)
        row = np.full(k, 0.4 / (k - 1))
        row[0] = 0.6
        return np.tile(row, (len(texts), 1))


def test_run_eval_records_the_version_threshold(workflow: Workflow) -> None:
    suite = _oos_suite(workflow)
    run = run_eval(_Fixed(workflow.label_names, 0.123), suite, workflow)
    assert run.metrics["routing"]["clarify_threshold"] == pytest.approx(0.123)
    assert run.metrics["n_out_of_scope"] == 100
    assert run.y_true.count(M.OUT_OF_SCOPE) == 100
    assert run.metrics["overall"]["coverage"]["estimate"] == pytest.approx(0.0)
    fallback = run_eval(_Fixed(workflow.label_names, None), suite, workflow)
    assert fallback.metrics["routing"]["clarify_threshold"] == workflow.routing.clarify_threshold


# -- per-version thresholds ------------------------------------------------------------------


def test_version_threshold_survives_a_reload(store: Store, store_url: str) -> None:
    mv = ModelVersion(
        id="lora-1",
        kind=ModelKind.LORA,
        clarify_threshold=0.31,
        routing_fit={"target": "clarify_rate", "target_value": 0.1},
    )
    plain = ModelVersion(id="zs-1", kind=ModelKind.ZERO_SHOT)
    store.save_model_version(mv)
    store.save_model_version(plain)
    store.save_model_version(plain)  # idempotent: same content, same hash
    store.close()
    again = Store(store_url)
    try:
        got = again.get_model_version("lora-1")
        assert got.clarify_threshold == pytest.approx(0.31)
        assert got.routing_fit == {"target": "clarify_rate", "target_value": 0.1}
        assert got.routing_threshold(0.5) == pytest.approx(0.31)
        assert again.get_model_version("zs-1").routing_threshold(0.5) == 0.5
    finally:
        again.close()


def test_routing_policy_takes_one_target() -> None:
    from pydantic import ValidationError

    from tunegate.config import RoutingPolicy

    assert RoutingPolicy(target_clarify_rate=0.1).target_clarify_rate == 0.1
    with pytest.raises(ValidationError, match="at most one"):
        RoutingPolicy(target_clarify_rate=0.1, target_risk=0.05)


def test_ticket_classifier_routes_with_the_version_threshold(workflow: Workflow) -> None:
    from datetime import UTC, datetime

    from tunegate.records import Route, Ticket
    from tunegate.serving import TicketClassifier

    tickets = [
        Ticket(id=f"t{i}", text=f"hello {i}", created_at=datetime.now(UTC)) for i in range(3)
    ]
    fallback = TicketClassifier(workflow, _Fixed(workflow.label_names, None)).decide(tickets)
    wide = TicketClassifier(workflow, _Fixed(workflow.label_names, 0.999)).decide(tickets)
    assert {d.route for d in fallback} == {Route.CLARIFY}  # H_norm above the default 0.5
    assert {d.route for d in wide} != {Route.CLARIFY}


# -- the zero-shot champion's own threshold (ensure_champion) ------------------------------


class _ByNumber:
    """Probabilities whose confidence grows with the number in the text ("ticket 37" -> 0.37
    share of the way from uniform to one-hot on the first class); records what it scored."""

    def __init__(self, labels: list[str]) -> None:
        self.labels = labels
        self.version = "by-number"
        self.seen: list[str] = []

    def predict_proba(self, texts: list[str], metadata: object = None) -> np.ndarray:
        self.seen += list(texts)
        k = len(self.labels)
        rows = []
        for t in texts:
            c = int(t.split()[-1]) / 200
            row = np.full(k, (1 - c) / k)
            row[0] += c
            rows.append(row)
        return np.array(rows)


def _targeted(workflow: Workflow, **target: float) -> Workflow:
    return workflow.model_copy(update={"routing": workflow.routing.model_copy(update=target)})


def _with_examples(store: Store, workflow: Workflow, n: int, in_suite: int) -> None:
    from tunegate.records import Example, ReviewStatus

    labels = workflow.label_names
    store.add_examples(
        [
            Example(
                id=f"ex{i}",
                text=f"ticket {i}",
                label=labels[0],
                review_status=ReviewStatus.REVIEWED,
            )
            for i in range(n)
        ]
    )
    suite = EvalSuite(
        name="frozen",
        examples=[
            SuiteExample(id=f"s{i}", text=f"Ticket  {i}", label=labels[0], slice=SuiteSlice.CORE)
            for i in range(in_suite)
        ],
    ).frozen()
    store.save_suite(suite)


def test_zero_shot_champion_gets_a_threshold_fitted_outside_the_suite(
    store: Store, workflow: Workflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tunegate.models
    from tunegate.train import ensure_champion

    model = _ByNumber(workflow.label_names)
    monkeypatch.setattr(tunegate.models, "load_model_version", lambda mv, wf, store: model)
    _with_examples(store, workflow, 200, in_suite=50)
    wf = _targeted(workflow, target_clarify_rate=0.25)
    champ = store.get_model_version(ensure_champion(store, wf))
    assert champ.kind is ModelKind.ZERO_SHOT
    fit = champ.routing_fit
    assert champ.clarify_threshold is not None and fit is not None
    # the 50 suite texts never reached the fit: 150 rows, the numbers 50..199
    assert fit["n"] == 150 and fit["excluded_in_suites"] == 50
    assert "outside every stored evaluation suite" in fit["rows"]
    assert not {f"ticket {i}" for i in range(50)} & set(model.seen)
    assert fit["target"] == "clarify_rate" and fit["clarify_rate"] <= 0.25
    assert fit["clarify_rate"] == pytest.approx(0.25, abs=1 / 150)
    # the fitted threshold is the champion's: loading it gives the classifier that threshold
    from tunegate.models._versions import load_model_version

    monkeypatch.setattr(
        "tunegate.models._versions._build", lambda mv, wf, store: _Fixed(wf.label_names, None)
    )
    loaded = load_model_version(champ, wf, store=store)
    assert getattr(loaded, "clarify_threshold", None) == champ.clarify_threshold


def test_zero_shot_champion_without_a_target_keeps_the_global_threshold(
    store: Store, workflow: Workflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tunegate.models
    from tunegate.train import ensure_champion

    model = _ByNumber(workflow.label_names)
    monkeypatch.setattr(tunegate.models, "load_model_version", lambda mv, wf, store: model)
    _with_examples(store, workflow, 200, in_suite=0)
    champ = store.get_model_version(ensure_champion(store, workflow))
    assert champ.clarify_threshold is None and champ.routing_fit is None
    assert model.seen == []
    assert champ.routing_threshold(workflow.routing.clarify_threshold) == 0.6


def test_zero_shot_champion_with_too_few_examples_says_why(
    store: Store, workflow: Workflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tunegate.models
    from tunegate.train import ensure_champion

    model = _ByNumber(workflow.label_names)
    monkeypatch.setattr(tunegate.models, "load_model_version", lambda mv, wf, store: model)
    _with_examples(store, workflow, 60, in_suite=30)
    champ = store.get_model_version(ensure_champion(store, _targeted(workflow, target_risk=0.1)))
    assert champ.clarify_threshold is None
    assert champ.routing_fit is not None and champ.routing_fit["n"] == 30
    assert "fewer than 50" in champ.routing_fit["skipped"]


def test_router_routes_each_model_with_its_own_threshold(workflow: Workflow) -> None:
    from datetime import UTC, datetime

    from tunegate.models import Router
    from tunegate.records import Route, Ticket

    tickets = [Ticket(id=f"t{i}", text=f"hi {i}", created_at=datetime.now(UTC)) for i in range(3)]
    labels = workflow.label_names
    # the first model is unsure by the workflow's 0.6 but sure by its own 0.999: it decides
    wide = Router(workflow, chain=[_Fixed(labels, 0.999), _Fixed(labels, None)]).decide(tickets)
    assert {d.route for d in wide} == {Route.AUTO}
    plain = Router(workflow, chain=[_Fixed(labels, None)]).decide(tickets)
    assert {d.route for d in plain} == {Route.CLARIFY}


# -- one failure condition for every regression rule -----------------------------------------

# (estimate, low, high) of a harm, against a tolerance of 0.01 for every rule
HARMS = [
    (0.005, 0.001, 0.009),  # within tolerance, shown: pass everywhere
    (0.005, -0.01, 0.02),  # within tolerance by the point only
    (0.010, -0.01, 0.02),  # at the tolerance
    (0.020, 0.001, 0.04),  # beyond tolerance and real: fail everywhere
    (0.020, 0.015, 0.03),  # beyond tolerance, interval above it: fail everywhere
    (0.020, 0.0, 0.04),  # beyond tolerance, interval touching 0: not shown real
    (0.020, -0.001, 0.04),  # beyond tolerance, within noise
    (-0.02, -0.04, -0.001),  # an improvement
    (float("nan"), float("nan"), float("nan")),  # not measurable
]

# rule -> (the metric key of the diff table, the subset, the sign of the harm in that table,
# the pass criterion: "interval" = hi <= tol (harm_rule), "point" = d <= tol (rise_rule))
SHAPES = {
    "preservation": ("accuracy", "slice:preservation", -1.0, "interval"),
    "protected_fnr:security_incident": ("fnr:3", "overall", 1.0, "interval"),
    "ece": ("expected_calibration_error", "overall", 1.0, "point"),
    "selective_risk:aurc": ("aurc", "overall", 1.0, "point"),
    "selective_risk:at_coverage": ("selective_risk_matched", "overall", 1.0, "point"),
    "oos_auto_rate": ("oos_auto_rate", "overall", 1.0, "point"),
}


class _Every(dict[str, M.Interval]):
    """A table row that gives ``value`` for every metric not set."""

    def __init__(self, value: M.Interval, **set_: M.Interval) -> None:
        super().__init__(set_)
        self.value = value

    def __missing__(self, key: str) -> M.Interval:
        return self.value


def _evidence(workflow: Workflow, harm: tuple[float, float, float]) -> object:
    from collections import defaultdict

    from tunegate.evaluate import VerdictEvidence

    d, lo, hi = harm
    neutral = M.Interval(0.5, 0.4, 0.6)
    diff: dict[str, dict[str, M.Interval]] = defaultdict(lambda: _Every(neutral))
    for key, subset, sign, _ in SHAPES.values():
        row = diff[subset]
        row[key] = M.Interval(sign * d, min(sign * lo, sign * hi), max(sign * lo, sign * hi))
    side = defaultdict(lambda: _Every(neutral))
    boot = M.BootstrapResult(n_resamples=1000, confidence=0.95, seed=0, a=side, b=side, diff=diff)
    policy = workflow.regression.model_copy(
        update={
            "preservation_tolerance": 0.01,
            "protected_fnr_tolerance": 0.01,
            "max_ece_increase": 0.01,
            "max_selective_risk_increase": 0.01,
            "max_oos_auto_increase": 0.01,
        }
    )
    return VerdictEvidence(
        bootstrap=boot,
        mcnemar={},  # McNemar is read only by core_improvement's message
        subset_sizes=defaultdict(lambda: 100, {"slice:out_of_scope": 100}),
        labels=workflow.label_names,
        protected_labels=["security_incident"],
        policy=policy,
        with_latency=False,
    )


@pytest.mark.parametrize("harm", HARMS)
def test_every_regression_rule_fails_on_the_same_condition(
    workflow: Workflow, harm: tuple[float, float, float]
) -> None:
    from tunegate.evaluate import verdict_rules

    assert workflow.label_names.index("security_incident") == 3
    ev = _evidence(workflow, harm)
    found = {r.rule: r for rule in verdict_rules() for r in rule.fn(ev)}  # type: ignore[arg-type]
    d, lo, hi = harm
    for name, (_, _, _, passes) in SHAPES.items():
        r = found[name]
        fail = d > 0.01 and lo > 0  # nan compares false
        ok = (hi <= 0.01) if passes == "interval" else (d <= 0.01)
        want = (
            VerdictOutcome.FAIL
            if fail
            else VerdictOutcome.PASS
            if ok
            else VerdictOutcome.INCONCLUSIVE
        )
        assert r.outcome is want, (name, harm, r.message)
        if r.difference is not None:
            assert r.difference == pytest.approx(d)
        # the message says the change by its sign
        if d == d and name != "preservation":
            assert (" rose " if d > 0 else " fell ") in f" {r.message}", r.message
