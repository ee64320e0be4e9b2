"""Monitor figures and rollback triggers: pure functions over constructed records."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from tunegate.config import RollbackPolicy, Workflow
from tunegate.errors import InputError
from tunegate.monitor import (
    Figures,
    PeriodFigures,
    check_triggers,
    compute_figures,
    evaluate_windows,
    figures_by_period,
    match_overrides,
    one_sided_rate_increase_p,
    period_bounds,
    period_key,
)
from tunegate.records import Decision, Override, Route, Ticket

T0 = datetime(2025, 3, 3, 9, tzinfo=UTC)  # a Monday


def decision(
    ticket: str,
    label: str,
    *,
    labels: list[str],
    conf: float = 0.8,
    route: Route = Route.AUTO,
    at: datetime = T0,
    latency: float = 10.0,
    version: str = "v1",
) -> Decision:
    rest = (1.0 - conf) / (len(labels) - 1)
    probs = {lab: (conf if lab == label else rest) for lab in labels}
    return Decision(
        id=f"d-{ticket}-{version}",
        ticket_id=ticket,
        model_version=version,
        probabilities=probs,
        label=label,
        h_norm=0.3,
        route=route,
        latency_ms=latency,
        created_at=at,
    )


def override(
    ticket: str, model_label: str, final: str, reason: str = "R2", at: datetime = T0
) -> Override:
    return Override(
        ticket_id=ticket,
        model_label=model_label,
        final_label=final,
        reason_code=reason,
        created_at=at,
    )


# -- figures -------------------------------------------------------------------------------


def test_period_keys_and_bounds() -> None:
    assert period_key(T0, "week") == "2025-W10"
    assert period_key(T0, "month") == "2025-03"
    start, end = period_bounds("2025-W10")
    assert start <= T0 < end and end - start == timedelta(days=7)
    start, end = period_bounds("2025-12")
    assert (start.month, end.year, end.month) == (12, 2026, 1)
    with pytest.raises(InputError, match="period"):
        period_key(T0, "day")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="period key"):
        period_bounds("March")


def test_figures_count_overrides_routes_and_protected_fnr(workflow: Workflow) -> None:
    labels = workflow.label_names
    ds = [
        decision("t1", "account_unlock", labels=labels, conf=0.9),
        decision("t2", "account_unlock", labels=labels, conf=0.7),
        decision("t3", "security_incident", labels=labels, route=Route.ESCALATE, latency=30.0),
        decision("t4", "vpn_issue", labels=labels, route=Route.CLARIFY, conf=0.4, latency=20.0),
    ]
    ovs = [
        override("t1", "account_unlock", "security_incident", "R2"),  # a protected miss
        override("t2", "account_unlock", "account_unlock", "R1"),  # confirmation: not counted
        override("t4", "vpn_issue", "password_reset", "R1"),
    ]
    f = compute_figures(ds, ovs, workflow)
    assert f.n_decisions == 4 and f.n_overridden == 2
    assert f.override_rate == pytest.approx(0.5)
    assert f.override_rate_by_reason == {"R1": 0.25, "R2": 0.25}
    assert f.escalation_rate == pytest.approx(0.25) and f.clarify_rate == pytest.approx(0.25)
    # auto: t1 (wrong), t2 (right)
    assert (f.n_auto, f.n_auto_correct) == (2, 1)
    # true security incidents: t1 (missed) and t3 (hit)
    assert f.protected_support == {"security_incident": 2}
    assert f.protected_fnr == {"security_incident": pytest.approx(0.5)}
    assert f.accuracy == pytest.approx(0.5)
    conf = np.mean([0.9, 0.7, 0.8, 0.4])
    assert f.calibration_gap == pytest.approx(conf - 0.5)
    assert f.latency_p50 == pytest.approx(15.0)
    assert set(f.breakdown) == {"version", "class", "route"}
    assert f.breakdown["route"]["escalate"].n_decisions == 1
    assert f.breakdown["class"]["account_unlock"].override_rate == pytest.approx(0.5)


def test_slice_breakdown_needs_tickets(workflow: Workflow) -> None:
    labels = workflow.label_names
    ds = [
        decision("a", "account_unlock", labels=labels),
        decision("b", "account_unlock", labels=labels),
    ]
    tickets = {
        "a": Ticket(id="a", text="locked out, MFA push prompts keep coming", created_at=T0),
        "b": Ticket(id="b", text="locked out after a holiday", created_at=T0),
    }
    f = compute_figures(
        ds, [override("a", "account_unlock", "security_incident")], workflow, tickets=tickets
    )
    assert f.breakdown["slice"]["mfa_related"].n_decisions == 1
    assert f.breakdown["slice"]["mfa_related"].override_rate == 1.0


def test_override_matches_by_decision_id_first_then_latest_by_ticket(workflow: Workflow) -> None:
    labels = workflow.label_names
    d = decision("t", "hardware", labels=labels)
    old = override("t", "hardware", "email_issue", at=T0)
    new = override("t", "hardware", "software_install", at=T0 + timedelta(hours=1))
    assert match_overrides([d], [new, old])[d.id] is new
    exact = Override(
        ticket_id="t", decision_id=d.id, final_label="hardware", reason_code="R1", created_at=T0
    )
    assert match_overrides([d], [new, exact])[d.id] is exact


def test_figures_by_period_fills_empty_weeks(workflow: Workflow) -> None:
    labels = workflow.label_names
    ds = [
        decision("a", "hardware", labels=labels, at=T0),
        decision("b", "hardware", labels=labels, at=T0 + timedelta(days=15)),
    ]
    periods = figures_by_period(ds, [], workflow)
    assert [p.period for p in periods] == ["2025-W10", "2025-W11", "2025-W12"]
    assert [p.figures.n_decisions for p in periods] == [1, 0, 1]
    assert periods[1].figures.override_rate is None
    assert [p.period for p in figures_by_period(ds, [], workflow, period="month")] == ["2025-03"]


# -- triggers ------------------------------------------------------------------------------


def figs(
    n: int = 5000,
    *,
    overridden: int = 0,
    escalated: int = 0,
    auto: int | None = None,
    auto_correct: int | None = None,
    support: int = 0,
    misses: int = 0,
    latencies: np.ndarray | None = None,
) -> Figures:
    """Figures built from counts (the triggers read only counts and latency samples)."""
    lat = tuple(float(x) for x in (latencies if latencies is not None else np.full(n, 10.0)))
    auto = n if auto is None else auto
    auto_correct = auto if auto_correct is None else auto_correct
    return Figures(
        n_decisions=n,
        n_overridden=overridden,
        override_rate=overridden / n,
        override_rate_by_reason={},
        n_escalated=escalated,
        escalation_rate=escalated / n,
        n_clarify=0,
        clarify_rate=0.0,
        n_auto=auto,
        n_auto_correct=auto_correct,
        selective_accuracy=auto_correct / auto if auto else None,
        accuracy=None,
        mean_confidence=None,
        calibration_gap=None,
        ece=None,
        latency_p50=float(np.median(lat)),
        latency_p95=float(np.percentile(lat, 95)),
        protected_support={"security_incident": support},
        protected_misses={"security_incident": misses},
        protected_fnr={"security_incident": misses / support if support else None},
        latencies_ms=lat,
    )


def fired(results: list, name: str) -> bool:
    (r,) = [x for x in results if x.trigger == name]
    assert r.judged, r.message
    return bool(r.fired)


POLICY = RollbackPolicy()


@pytest.mark.parametrize(("delta", "expect"), [(-10, False), (+10, True)])
def test_override_rate_trigger_boundary(delta: int, expect: bool) -> None:
    base = figs(overridden=500)  # 10.0%
    limit = 500 + int(POLICY.override_rate_increase * 5000)  # exactly +3 points
    cur = figs(overridden=limit + delta)  # 12.8% / 13.2%
    assert fired(check_triggers(cur, base, POLICY), "override_rate") is expect


def test_override_rate_exactly_at_threshold_does_not_fire() -> None:
    base = figs(overridden=500)
    cur = figs(overridden=500 + int(POLICY.override_rate_increase * 5000))
    assert not fired(check_triggers(cur, base, POLICY), "override_rate")


@pytest.mark.parametrize(("delta", "expect"), [(-10, False), (+10, True)])
def test_protected_fnr_trigger_boundary(delta: int, expect: bool) -> None:
    base = figs(support=5000, misses=500)
    cur = figs(support=5000, misses=500 + int(POLICY.protected_fnr_increase * 5000) + delta)
    assert fired(check_triggers(cur, base, POLICY), "protected_fnr:security_incident") is expect


@pytest.mark.parametrize(("delta", "expect"), [(+10, False), (-10, True)])
def test_abstention_quality_trigger_boundary(delta: int, expect: bool) -> None:
    policy = RollbackPolicy(abstention_quality_drop=0.02)
    base = figs(auto_correct=4500)  # 90.0%
    cur = figs(auto_correct=4500 - 100 + delta)  # 88.2% / 87.8% (drop 1.8 / 2.2 points)
    assert fired(check_triggers(cur, base, policy), "abstention_quality") is expect


def test_abstention_quality_default_needs_a_significant_drop() -> None:
    base = figs(auto_correct=4500)
    assert not fired(check_triggers(figs(auto_correct=4495), base, POLICY), "abstention_quality")
    assert fired(check_triggers(figs(auto_correct=4300), base, POLICY), "abstention_quality")


@pytest.mark.parametrize(("factor", "expect"), [(1.13, False), (1.17, True)])
def test_latency_trigger_boundary(factor: float, expect: bool) -> None:
    rng = np.random.default_rng(0)
    lat = rng.lognormal(np.log(20.0), 0.3, size=2000)
    base, cur = figs(2000, latencies=lat), figs(2000, latencies=lat * factor)
    assert fired(check_triggers(cur, base, POLICY), "latency") is expect


def test_latency_copies_of_a_batch_mean_count_once() -> None:
    # batch scoring: 10 batches of 200 tickets, each ticket carrying its batch's mean latency
    rng = np.random.default_rng(1)
    base_batches = rng.lognormal(np.log(20.0), 0.2, size=10)
    cur_batches = base_batches * 1.25  # a 25% rise, but only 10 measurements a side
    cur_batches[:4] = base_batches[:4]  # ... and not in every batch
    base, cur = (figs(2000, latencies=np.repeat(x, 200)) for x in (base_batches, cur_batches))
    result = next(r for r in check_triggers(cur, base, POLICY) if r.trigger == "latency")
    assert result.judged and result.change > 0.15
    assert result.p_value is not None and result.p_value > 0.001 and not result.fired
    # the same values as 2,000 independent per-request measurements would have "fired"
    from scipy import stats

    naive = stats.mannwhitneyu(
        np.repeat(cur_batches, 200), np.repeat(base_batches, 200), alternative="greater"
    ).pvalue
    assert naive < 0.001


def test_latency_from_one_batch_per_side_is_never_significant() -> None:
    # one batch mean per side is one measurement each: a tripled median cannot be significant
    base, cur = figs(500, latencies=np.full(500, 10.0)), figs(500, latencies=np.full(500, 30.0))
    result = next(r for r in check_triggers(cur, base, POLICY) if r.trigger == "latency")
    assert result.judged and result.change == pytest.approx(2.0)
    assert result.p_value == pytest.approx(0.5) and not result.fired


def _series(rates: list[float], n: int = 4000) -> list[Figures]:
    return [figs(n, escalated=round(r * n)) for r in rates]


@pytest.mark.parametrize(
    ("rates", "expect"),
    [
        ([0.05, 0.07, 0.09], True),  # two consecutive significant rises
        ([0.05, 0.09, 0.08], False),  # the last week fell
        ([0.05, 0.05, 0.09], False),  # flat, then one rise
        ([0.05, 0.0505, 0.051], False),  # rising, but within noise
        ([0.09, 0.05, 0.07, 0.09], True),  # only the last two steps count
    ],
)
def test_escalation_rising_consecutive_weeks(rates: list[float], expect: bool) -> None:
    series = _series(rates)
    results = check_triggers(series[-1], series[0], POLICY, escalation_series=series)
    assert fired(results, "escalation_rising") is expect


def test_escalation_rising_needs_enough_weeks() -> None:
    series = _series([0.05, 0.09])
    (r,) = [
        x
        for x in check_triggers(series[-1], series[0], POLICY, escalation_series=series)
        if x.trigger == "escalation_rising"
    ]
    assert not r.judged and not r.fired
    three = RollbackPolicy(escalation_rising_weeks=3)
    series = _series([0.05, 0.07, 0.09])
    results = check_triggers(series[-1], series[0], three, escalation_series=series)
    assert not next(x for x in results if x.trigger == "escalation_rising").judged
    series = _series([0.04, 0.05, 0.07, 0.09])
    assert fired(
        check_triggers(series[-1], series[0], three, escalation_series=series), "escalation_rising"
    )


@pytest.mark.parametrize(("n", "judged"), [(49, False), (50, True)])
def test_min_decisions(n: int, judged: bool) -> None:
    base = figs(overridden=500, support=5000, misses=250)
    cur = figs(n, overridden=n // 2, support=n, misses=n)  # awful, but maybe too small to judge
    results = check_triggers(cur, base, POLICY)
    assert all(r.judged is judged for r in results if r.trigger != "escalation_rising")
    assert any(r.fired for r in results) is judged
    small_base = figs(49)
    assert not any(r.judged for r in check_triggers(figs(overridden=2500), small_base, POLICY))


def test_a_large_change_in_a_small_window_needs_significance() -> None:
    base = figs(60, overridden=6)  # 10%
    cur = figs(60, overridden=10)  # 16.7%: above +3 points, but 4 more overrides is noise
    assert not fired(check_triggers(cur, base, POLICY), "override_rate")


def test_one_sided_p_value_direction() -> None:
    assert one_sided_rate_increase_p(100, 1000, 200, 1000) < 1e-6
    assert one_sided_rate_increase_p(200, 1000, 100, 1000) > 0.99
    assert one_sided_rate_increase_p(0, 100, 0, 100) == 1.0


def test_evaluate_windows_judges_escalation_over_post_promotion_weeks() -> None:
    base = figs(4000, escalated=200)  # 5%: the previous champion
    # A new champion that escalates more, but steadily: a level, not a rising trend.
    level = [
        PeriodFigures(f"2025-W{10 + i}", T0, T0, f)
        for i, f in enumerate(_series([0.09, 0.091, 0.092]))
    ]
    assert not any(w.fired for w in evaluate_windows(level, base, POLICY))
    rising = [
        PeriodFigures(f"2025-W{10 + i}", T0, T0, f)
        for i, f in enumerate(_series([0.05, 0.07, 0.09]))
    ]
    out = evaluate_windows(rising, base, POLICY)
    assert [bool(w.fired) for w in out] == [False, False, True]
    assert [r.trigger for r in out[2].fired] == ["escalation_rising"]


def test_figures_roundtrip_to_dict(workflow: Workflow) -> None:
    labels = workflow.label_names
    f = compute_figures([decision("a", "hardware", labels=labels)], [], workflow)
    d = f.to_dict()
    assert "latencies_ms" not in d and d["breakdown"]["class"]["hardware"]["n_decisions"] == 1
    assert replace(f, n_decisions=2).n_decisions == 2


def test_next_gap_finds_the_remaining_r2_signal(workflow: Workflow) -> None:
    from tunegate.monitor import next_gap

    labels = workflow.label_names
    tickets, ds, ovs = {}, [], []
    for i in range(40):
        mfa = i % 4 == 0  # 10 tickets mention push prompts; the model calls them lockouts
        text = ("locked out, push prompts I did not send" if mfa else "locked out again") + f" {i}"
        tickets[f"t{i}"] = Ticket(id=f"t{i}", text=text, created_at=T0)
        ds.append(decision(f"t{i}", "account_unlock", labels=labels))
        if mfa:
            ovs.append(override(f"t{i}", "account_unlock", "security_incident", "R2"))
    ovs.append(override("t1", "account_unlock", "password_reset", "R1"))
    gap = next_gap(ds, ovs, workflow, tickets=tickets)
    assert gap.n_overridden == 11 and gap.by_reason == {"R2": 10, "R1": 1}
    assert gap.top_pairs[0] == ("account_unlock", "security_incident", 10)
    assert gap.by_slice == {"mfa_related": 10}
    assert any("push prompts" in g.ngram for g in gap.r2_ngrams)
    assert all(g.overrides_with == 10 and g.reference_with == 0 for g in gap.r2_ngrams)
    assert all("locked" not in g.ngram or "push" in g.ngram for g in gap.r2_ngrams)


def test_public_api_is_explicit_and_complete() -> None:
    import tunegate.monitor as monitor

    assert sorted(monitor.__all__) == sorted(set(monitor.__all__))
    public = {n for n in dir(monitor) if not n.startswith("_") and n != "annotations"}
    assert public - set(monitor.__all__) <= {"_drift", "_figures"}  # submodules are private
    for name in monitor.__all__:
        assert getattr(monitor, name) is not None


def test_monitoring_figures_equal_the_offline_metrics(workflow: Workflow) -> None:
    """Production figures and the offline verdict share one implementation: ECE (with
    confidences on bin edges: 0.3 and 0.5 open their bins), protected FNR, selective accuracy."""
    from tunegate import metrics

    labels = workflow.label_names
    spec = [  # (ticket, label, conf, route, analyst's label or None)
        ("t1", "account_unlock", 0.3, Route.AUTO, "vpn_issue"),
        ("t2", "account_unlock", 0.35, Route.AUTO, None),
        ("t3", "vpn_issue", 0.5, Route.CLARIFY, "security_incident"),
        ("t4", "vpn_issue", 0.55, Route.AUTO, None),
        ("t5", "security_incident", 0.7, Route.ESCALATE, None),
        ("t6", "hardware", 0.75, Route.AUTO, "security_incident"),
        ("t7", "hardware", 0.9, Route.AUTO, None),
        ("t8", "email_issue", 0.95, Route.AUTO, "email_issue"),
    ]
    ds = [decision(t, lab, labels=labels, conf=c, route=r) for t, lab, c, r, _ in spec]
    ovs = [override(t, lab, final) for t, lab, _, _, final in spec if final is not None]
    f = compute_figures(ds, ovs, workflow)

    y = np.array([labels.index(final or lab) for _, lab, _, _, final in spec])
    proba = np.array([d.proba_vector(labels) for d in ds])
    pred = proba.argmax(axis=1)
    auto = np.array([r is Route.AUTO for *_, r, _ in spec])
    assert f.ece == metrics.expected_calibration_error(y, proba, n_bins=10)
    # bins [0.3, 0.4), [0.5, 0.6), [0.7, 0.8), [0.9, 1] hold two decisions each; the old
    # right-closed rule on np.linspace edges put 0.3, 0.5, 0.7 and 0.9 one bin low (0.3875)
    assert f.ece == pytest.approx((0.175 + 0.025 + 0.225 + 0.075) / 4)
    sec = labels.index("security_incident")
    assert f.protected_fnr["security_incident"] == metrics.false_negative_rate(y, pred, sec)
    assert f.selective_accuracy == metrics.accuracy_score(y, pred, mask=auto)
    assert f.accuracy == metrics.accuracy_score(y, pred)


def test_a_window_without_analyst_feedback_has_no_accuracy(workflow: Workflow) -> None:
    """No override and no confirmation: "not overridden" says nothing about being right, so
    the accuracy figures are unknown, not a perfect 100% with a negative calibration gap."""
    labels = workflow.label_names
    ds = [decision(f"t{i}", "account_unlock", labels=labels, conf=0.6) for i in range(5)]
    f = compute_figures(ds, [], workflow)
    assert f.n_decisions == 5 and f.override_rate == 0.0
    assert f.selective_accuracy is None and f.accuracy is None
    assert f.calibration_gap is None and f.ece is None
    assert set(f.protected_fnr.values()) == {None}
    assert f.breakdown["class"]["account_unlock"].accuracy is None
    confirmed = compute_figures(ds, [override("t0", "account_unlock", "account_unlock")], workflow)
    assert confirmed.accuracy == 1.0 and confirmed.calibration_gap == pytest.approx(0.6 - 1.0)
