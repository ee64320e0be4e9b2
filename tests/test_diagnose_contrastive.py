"""Contrastive attribution on hand-made tickets: the statistic, minimum support, significance,
pairs that say more than their parts, and what the gate's condition 2 shows (issue 17, item 2).
The simulation check (several seeds) is in test_diagnose_sim.py."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import stats

from tunegate.config import SliceSpec, Workflow
from tunegate.diagnose import (
    GateEvidence,
    contrast_terms,
    decide_gate,
    finding_phrases,
    override_trend,
    readable_term,
    slice_term,
)
from tunegate.documents import Finding, FindingTerm
from tunegate.errors import InputError
from tunegate.metrics import benjamini_hochberg, fisher_rate_increase_p, log_odds_ratio

# -- the statistics in tunegate.metrics -------------------------------------------------------


@pytest.mark.parametrize(("x0", "n0", "x1", "n1"), [(2, 40, 9, 12), (0, 30, 5, 5), (7, 20, 3, 20)])
def test_fisher_rate_increase_matches_scipy(x0: int, n0: int, x1: int, n1: int) -> None:
    table = [[x1, n1 - x1], [x0, n0 - x0]]
    want = stats.fisher_exact(table, alternative="greater")[1]
    assert fisher_rate_increase_p(x0, n0, x1, n1) == pytest.approx(want, rel=1e-9)
    assert fisher_rate_increase_p(0, 0, x1, n1) == 1.0
    with pytest.raises(InputError):
        fisher_rate_increase_p(5, 4, 1, 2)


def test_log_odds_ratio_is_smoothed_and_has_the_woolf_standard_error() -> None:
    lor, se = log_odds_ratio(2, 40, 9, 12)
    assert lor == pytest.approx(math.log(9.5 / 3.5) - math.log(2.5 / 38.5))
    assert se == pytest.approx(math.sqrt(1 / 9.5 + 1 / 3.5 + 1 / 2.5 + 1 / 38.5))
    assert math.isfinite(log_odds_ratio(0, 30, 5, 5)[0])
    assert log_odds_ratio(3, 10, 3, 10)[0] == pytest.approx(0.0)
    with pytest.raises(InputError):
        log_odds_ratio(0, 30, 5, 5, smoothing=0.0)


def test_benjamini_hochberg_q_values() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005, 0.01, 0.03, 0.04 -> 0.02, 0.02, 0.04, 0.04 (monotone from the top)
    assert benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert benjamini_hochberg([0.9, 0.8]) == pytest.approx([0.9, 0.9])
    assert benjamini_hochberg([]).size == 0
    q = benjamini_hochberg(np.random.default_rng(0).uniform(size=50))
    assert np.all(q <= 1.0)
    with pytest.raises(InputError):
        benjamini_hochberg([0.5, 1.5])


# -- contrast_terms ---------------------------------------------------------------------------


def _tickets(prefix: str, rows: list[tuple[str, int]]) -> list[tuple[str, str]]:
    out = []
    for text, n in rows:
        for i in range(n):
            out.append((f"{prefix}{len(out)}", f"{text} (ref {i})"))
    return out


# Overridden: the authenticator failure together with a lockout. Correctly handled tickets
# of the same predicted class have each part alone (enrolment problems, plain lockouts), never
# both: only the pair separates the overrides.
OVERRIDDEN = _tickets("o", [("the authenticator and now locked out", 12)])
CONTRAST = _tickets(
    "c",
    [
        ("the authenticator and the new phone", 15),
        ("locked out of my account after the weekend", 30),
    ],
)


def test_the_pair_is_the_top_finding_with_its_counts() -> None:
    terms = contrast_terms(OVERRIDDEN, CONTRAST, label="security_incident")
    pairs = [t for t in terms if t.kind == "pair"]
    assert pairs, [t.term for t in terms]
    top = pairs[0]
    assert top.term == "authenticator + locked out"
    assert top.parts == ["authenticator", "locked out"]
    assert (top.overrides_with, top.reference_with) == (12, 0)
    assert top.examples == ["o0", "o1", "o2"]
    assert top.label == "security_incident"
    assert top.p_value is not None and top.q_value is not None
    assert top.q_value >= top.p_value
    assert top.log_odds == pytest.approx(log_odds_ratio(0, 45, 12, 12)[0])
    # a pair is reported only when it is more specific than its parts
    by_term = {t.term: t for t in terms}
    assert top.log_odds > max(by_term["authenticator"].log_odds or 0, 0)
    # "locked" is in exactly the tickets "locked out" is in: the phrase stands for it
    assert "locked" not in by_term and "locked out" in by_term
    # the same inputs give the same findings
    assert contrast_terms(OVERRIDDEN, CONTRAST, label="security_incident") == terms


def test_minimum_support_and_significance() -> None:
    assert contrast_terms(OVERRIDDEN, CONTRAST, label="x", min_support=13) == []
    few = OVERRIDDEN[:3]
    assert all(
        t.overrides_with >= 3 for t in contrast_terms(few, CONTRAST, label="x", min_support=3)
    )
    # the same mix on both sides: nothing is significant
    mix = [("the authenticator and now locked out", 10), ("locked out after the weekend", 10)]
    assert contrast_terms(_tickets("o", mix), _tickets("c", mix * 3), label="x") == []
    # the pair as common in the contrast as in the overrides is not reported as a pair
    both = _tickets("c", [("the authenticator and now locked out", 30), ("printer jam", 30)])
    assert not [t for t in contrast_terms(OVERRIDDEN, both, label="x") if t.kind == "pair"]
    with pytest.raises(InputError):
        contrast_terms(OVERRIDDEN, CONTRAST, label="x", min_support=0)
    with pytest.raises(InputError):
        contrast_terms(OVERRIDDEN, CONTRAST, label="x", alpha=0.0)


# -- slices as term families, and the ranking by overrides explained ----------------------


def _family() -> dict[str, SliceSpec]:
    return {"mfa_related": SliceSpec(text_regex=r"\b(mfa|authenticator|push prompts?)\b")}


# The overrides say the MFA family in three different words; the contrast says it rarely. One
# rare template word ("vietnam") separates perfectly but explains only a few overrides.
FAMILY_OVERRIDDEN = _tickets(
    "o",
    [
        ("the mfa app and now locked out", 10),
        ("the authenticator and now locked out", 10),
        ("push prompts all night and locked out", 10),
        ("sign in from vietnam and locked out", 6),
    ],
)
FAMILY_CONTRAST = _tickets(
    "c",
    [
        ("locked out of my account after the weekend", 80),
        ("locked out since the mfa app moved to my new phone", 10),
    ],
)


def test_a_slice_is_scored_as_a_term_and_ranks_by_overrides_explained() -> None:
    terms = contrast_terms(
        FAMILY_OVERRIDDEN, FAMILY_CONTRAST, label="security_incident", slices=_family()
    )
    top = terms[0]
    assert (top.term, top.kind) == ("[mfa_related]", "slice")
    assert (top.overrides_with, top.reference_with) == (30, 10)
    assert top.excess == pytest.approx(30 - 36 * 10 / 90)
    assert top.q_value is not None and top.q_value <= 0.05
    assert top.log_odds == pytest.approx(log_odds_ratio(10, 90, 30, 36)[0])
    # "vietnam" separates perfectly (higher log odds) but explains 6 overrides, not 30
    by_term = {t.term: t for t in terms}
    assert (by_term["vietnam"].log_odds or 0) > (top.log_odds or 0)
    assert terms.index(by_term["vietnam"]) > 0
    excess = [t.excess or 0.0 for t in terms]
    assert excess == sorted(excess, reverse=True)
    # without the slice, no single word of the family stands for it
    plain = contrast_terms(FAMILY_OVERRIDDEN, FAMILY_CONTRAST, label="security_incident")
    assert all(t.kind != "slice" for t in plain)
    assert max(t.overrides_with for t in plain if t.term != "locked out") < 30
    assert finding_phrases(
        {
            "kind": "contrast",
            "n_overrides": 36,
            "n_reference": 90,
            "tokens": [top.model_dump(mode="json")],
        }
    ) == ["mfa_related (slice) (30 of 36 vs 10 of 90)"]


def test_a_slice_pairs_with_a_term_and_reads_as_a_name() -> None:
    # the family alone is as common in the contrast (enrolment problems); with a lockout it is not
    over = _tickets("o", [("the authenticator and now locked out", 12)])
    ref = _tickets(
        "c",
        [("the mfa app and the new phone", 20), ("locked out of my account after the weekend", 30)],
    )
    terms = contrast_terms(over, ref, label="security_incident", slices=_family())
    pairs = [t for t in terms if t.kind == "pair" and "[mfa_related]" in t.parts]
    assert pairs, [t.term for t in terms]
    assert pairs[0].term == "[mfa_related] + locked out"
    assert readable_term(pairs[0].term) == "mfa_related (slice) + locked out"
    assert slice_term("mfa_related") == "[mfa_related]"


def test_a_metadata_slice_reads_ticket_metadata() -> None:
    night = {"night_shift": SliceSpec(metadata={"shift": {"eq": "night"}})}
    over = [(f"o{i}", "printer jam again") for i in range(8)]
    ref = [(f"c{i}", "printer jam again") for i in range(20)]
    meta = {f"o{i}": {"shift": "night"} for i in range(8)}
    terms = contrast_terms(over, ref, label="x", slices=night, metadata=meta)
    assert [t.term for t in terms] == ["[night_shift]"]
    assert contrast_terms(over, ref, label="x", slices=night) == []


def test_old_finding_documents_still_load() -> None:
    old = {
        "id": "fnd_old",
        "reason_code": "R2",
        "label": "security_incident",
        "tokens": [
            {
                "term": "authenticator",
                "label": "security_incident",
                "z": 3.0,
                "overrides_with": 5,
                "reference_with": 0,
                "attr_analyst": 0.01,
                "attr_predicted": 0.02,
                "margin": -0.01,
                "cue": "misleading",
            }
        ],
    }
    f = Finding.model_validate(old)
    assert f.kind == "attribution" and f.tokens[0].kind == "word" and f.tokens[0].parts == []
    assert finding_phrases(f) == ["authenticator"]


# -- the gate's condition 2 shows the words ---------------------------------------------------


def _contrast_finding() -> dict[str, Any]:
    terms = contrast_terms(OVERRIDDEN, CONTRAST, label="security_incident")
    return Finding(
        id="fnd_c",
        kind="contrast",
        reason_code="R2",
        label="security_incident",
        predicted_label="account_unlock",
        tokens=terms,
        method="contrast",
        n_overrides=len(OVERRIDDEN),
        n_reference=len(CONTRAST),
        confirmed=True,
    ).model_dump(mode="json")


def test_gate_condition_2_names_the_finding_words(workflow: Workflow) -> None:
    f = _contrast_finding()
    ev = GateEvidence(trend=override_trend([], [], workflow), findings=[("fnd_c", f)])
    cond = decide_gate(ev, workflow).conditions[1]
    assert cond.passed
    assert cond.summary.startswith(
        "confirmed finding fnd_c: authenticator + locked out (12 of 12 vs 0 of 45), "
    ), cond.summary
    assert "account_unlock -> security_incident" in cond.summary
    assert "of the 12 R2 overrides vs of the 45 correctly handled" in cond.summary
    # an occlusion finding reads as words too, not a Python list
    old = {
        "confirmed": True,
        "label": "security_incident",
        "tokens": [{"term": "authenticator"}, {"term": "push"}],
    }
    ev = GateEvidence(trend=override_trend([], [], workflow), findings=[("fnd_o", old)])
    summary = decide_gate(ev, workflow).conditions[1].summary
    assert "under-weighted authenticator, push for 'security_incident'" in summary


def test_finding_phrases_follow_the_ranking() -> None:
    f = _contrast_finding()
    phrases = finding_phrases(f, 3)
    assert phrases[0] == "authenticator + locked out (12 of 12 vs 0 of 45)"
    assert len(phrases) == 3
    # a contrastive finding stored before the excess ranking shows its pairs first, as it did
    old = dict(f, tokens=[dict(t, excess=None) for t in reversed(f["tokens"])])
    assert finding_phrases(old, 1) == ["authenticator + locked out (12 of 12 vs 0 of 45)"]
    assert all(isinstance(t, FindingTerm) for t in Finding.model_validate(f).tokens)


def test_the_next_gap_counts_phrases_and_pairs_of_a_finding() -> None:
    from datetime import UTC, datetime

    from tunegate.monitor import aggregate_attribution
    from tunegate.records import Override, ReasonCode, Ticket

    f = Finding.model_validate(_contrast_finding())
    at = datetime(2025, 3, 3, tzinfo=UTC)
    tickets = {
        "a": Ticket(id="a", text="the authenticator and now locked out", created_at=at),
        "b": Ticket(id="b", text="locked out again", created_at=at),
    }
    r2 = [
        Override(ticket_id=t, final_label="security_incident", reason_code=ReasonCode.R2)
        for t in tickets
    ]
    counts = aggregate_attribution([f], r2, tickets)
    assert counts["authenticator + locked out"] == 1.0  # only ticket a has both
    assert counts["locked out"] == 2.0


def test_the_next_gap_counts_slice_terms_by_the_slice() -> None:
    """A finding's slice term (``[mfa_related]``, alone or in a pair) counts the remaining R2
    tickets in that slice; without the workflow's slices it matches nothing."""
    from datetime import UTC, datetime

    from tunegate.config import SliceSpec
    from tunegate.monitor import aggregate_attribution
    from tunegate.records import Override, ReasonCode, Ticket

    f = Finding.model_validate(_contrast_finding())
    base = f.tokens[0]
    f = f.model_copy(
        update={
            "tokens": [
                base.model_copy(update={"term": "[MFA_related]"}),
                base.model_copy(update={"term": "[MFA_related] + locked"}),
            ]
        }
    )
    at = datetime(2025, 3, 3, tzinfo=UTC)
    tickets = {
        "a": Ticket(id="a", text="MFA push prompts, now locked out", created_at=at),
        "b": Ticket(id="b", text="2FA codes I never asked for", created_at=at),
        "c": Ticket(id="c", text="locked out again", created_at=at),
    }
    r2 = [
        Override(ticket_id=t, final_label="security_incident", reason_code=ReasonCode.R2)
        for t in tickets
    ]
    slices = {"MFA_related": SliceSpec(text_regex=r"\b(mfa|2fa)\b")}
    counts = aggregate_attribution([f], r2, tickets, slices)
    assert counts["[mfa_related]"] == 2.0 and counts["[mfa_related] + locked"] == 1.0
    assert aggregate_attribution([f], r2, tickets) == {}
