"""Weekly override analytics and recurring missed-signal patterns over constructed records."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from tunegate.config import Workflow
from tunegate.diagnose import (
    log_odds_dirichlet,
    missed_signal_patterns,
    override_trend,
    weekly_override_counts,
    weekly_series,
)
from tunegate.records import Decision, Override, ReasonCode, Route, Ticket
from tunegate.text import ngrams, week_start

MONDAY = datetime(2025, 1, 6, 9, tzinfo=UTC)


def _dec(tid: str, at: datetime, label: str = "account_unlock") -> Decision:
    return Decision(
        id=f"d-{tid}",
        ticket_id=tid,
        model_version="m",
        label=label,
        probabilities={label: 1.0},
        h_norm=0.0,
        route=Route.AUTO,
        created_at=at,
    )


def _ovr(
    tid: str,
    at: datetime,
    code: str = "R2",
    model: str | None = "account_unlock",
    final: str = "security_incident",
) -> Override:
    return Override(
        id=f"o-{tid}",
        ticket_id=tid,
        model_label=model,
        final_label=final,
        reason_code=ReasonCode(code),
        created_at=at,
    )


def _weeks(
    counts: list[int], *, per_week: int = 50, code: str = "R2", full_last: bool = True
) -> tuple[list[Decision], list[Override]]:
    decisions, overrides = [], []
    for w, c in enumerate(counts):
        for i in range(per_week):
            day = i % (7 if full_last or w < len(counts) - 1 else 3)
            at = MONDAY + timedelta(weeks=w, days=day)
            tid = f"t{w}_{i}"
            decisions.append(_dec(tid, at))
            if i < c:
                overrides.append(_ovr(tid, at, code))
    return decisions, overrides


def test_week_start_is_monday_utc() -> None:
    assert week_start(datetime(2025, 1, 12, 23, 59, tzinfo=UTC)) == date(2025, 1, 6)
    assert week_start(datetime(2025, 1, 13, 0, 0, tzinfo=UTC)) == date(2025, 1, 13)


def test_weekly_counts_and_rates_fill_quiet_weeks() -> None:
    decisions, overrides = _weeks([3, 0, 5])
    overrides.append(_ovr("x", MONDAY + timedelta(days=1), code="R1"))
    rows = weekly_override_counts(overrides, decisions, by="reason_code")
    r2 = [r for r in rows if r.key == "R2"]
    assert [r.overrides for r in r2] == [3, 0, 5]
    assert [r.decisions for r in r2] == [50, 50, 50]
    assert r2[2].rate == pytest.approx(0.1)
    assert [r.overrides for r in rows if r.key == "R1"] == [1, 0, 0]


def test_confirmations_are_not_overrides() -> None:
    at = MONDAY
    rows = weekly_override_counts([_ovr("a", at, final="account_unlock")], [_dec("a", at)])
    assert all(r.overrides == 0 for r in rows)


def test_by_class_and_by_slice(workflow: Workflow) -> None:
    at = MONDAY
    tickets = [
        Ticket(id="a", text="authenticator push prompts I did not ask for", created_at=at),
        Ticket(id="b", text="printer jammed", created_at=at),
    ]
    overrides = [_ovr("a", at), _ovr("b", at, final="hardware", model="software_install")]
    by_class = {r.key: r.overrides for r in weekly_override_counts(overrides, by="class")}
    assert by_class == {"hardware": 1, "security_incident": 1}
    by_slice = {
        r.key: r.overrides
        for r in weekly_override_counts(overrides, by="slice", tickets=tickets, workflow=workflow)
    }
    assert by_slice == {"mfa_related": 1, "(none)": 1}
    with pytest.raises(ValueError, match="tickets= and workflow="):
        weekly_override_counts(overrides, by="slice")


def test_partial_last_week_is_dropped() -> None:
    decisions, overrides = _weeks([10, 10, 10, 10, 10], full_last=False)
    weeks, counts, _, dropped = weekly_series(overrides, decisions, reason_code="R2")
    assert len(weeks) == 4 and dropped == date(2025, 2, 3)
    # as_of past the week's end keeps it (and the new, empty week of as_of is the partial one)
    later = datetime(2025, 2, 10, tzinfo=UTC)
    weeks, counts, _, dropped = weekly_series(overrides, decisions, reason_code="R2", as_of=later)
    assert len(weeks) == 5 and dropped == date(2025, 2, 10) and counts[-1] == 10


def test_override_trend_uses_gate_policy(workflow: Workflow) -> None:
    rising = override_trend(*reversed(_weeks([1, 2, 2, 8, 12, 15, 20])), workflow)
    assert rising.decision.passed and rising.counts[-4:] == [8, 12, 15, 20]
    falling = override_trend(*reversed(_weeks([40, 30, 20, 12])), workflow)
    assert not falling.decision.passed
    quiet = override_trend(*reversed(_weeks([2, 1, 3, 2, 2, 1])), workflow)
    assert not quiet.decision.passed
    short = override_trend(*reversed(_weeks([20, 25])), workflow)
    assert not short.decision.passed and short.decision.weeks == 2
    other = override_trend(*reversed(_weeks([20, 25, 30, 30])), workflow, reason_code="R1")
    assert other.counts == [0, 0, 0, 0]


def test_ngrams_skip_stopwords_at_edges() -> None:
    grams = ngrams("I keep getting the push prompts")
    assert {"push", "push prompts", "getting the push"} <= grams
    assert "the" not in grams and "the push" not in grams


def test_log_odds_ranks_the_over_represented_term() -> None:
    from collections import Counter

    a = Counter({"push": 30, "locked": 30})
    b = Counter({"locked": 30, "printer": 30})
    scores = log_odds_dirichlet(a, b)
    assert scores["push"][1] > 3 > abs(scores["locked"][1])


def test_missed_signal_patterns_find_the_planted_phrase() -> None:
    overrides = [
        (
            f"got authenticator push prompts at night {i}, now locked out",
            "account_unlock",
            "security_incident",
        )
        for i in range(20)
    ]
    overrides += [("printer is broken again", "hardware", "software_install")] * 2
    reference = [f"my account is locked out after wrong password {i}" for i in range(60)]
    reference += [f"printer broken on floor {i}" for i in range(20)]
    found = missed_signal_patterns(overrides, reference)
    names = [p.ngram for p in found]
    assert "authenticator push" in names and "push prompts" in names
    assert "locked" not in names  # as common among correct tickets
    top = next(p for p in found if p.ngram == "authenticator push")
    assert top.label_pairs[0] == ("account_unlock", "security_incident", 20)
    assert top.overrides_with == 20 and top.reference_with == 0


def test_diagnose_all_is_sorted_and_complete() -> None:
    import tunegate.diagnose as diag

    def isort_style(name: str) -> tuple[int, str]:  # ruff's RUF022 order
        kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
        return kind, name

    assert diag.__all__ == sorted(diag.__all__, key=isort_style)
    for name in diag.__all__:
        assert hasattr(diag, name), name
    public = {n for n in dir(diag) if not n.startswith("_") and n not in {"annotations"}}
    modules = {n for n in public if type(getattr(diag, n)).__name__ == "module"}
    assert public - modules <= set(diag.__all__), sorted(public - modules - set(diag.__all__))
