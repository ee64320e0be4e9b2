"""Every record round-trips through JSON; validators reject what they should."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from tunegate.records import (
    Attempt,
    AttemptKind,
    Decision,
    EvalRun,
    EvalSuite,
    Example,
    ModelKind,
    ModelVersion,
    Override,
    ReasonCode,
    Route,
    RuleHit,
    RuleResult,
    SuiteExample,
    SuiteSlice,
    Ticket,
    Verdict,
    VerdictOutcome,
    content_hash,
    normalize_text,
)

T0 = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

_verdict = Verdict(
    outcome=VerdictOutcome.FAIL,
    baseline_run="r1",
    candidate_run="r2",
    rules=[
        RuleResult(
            rule="preservation",
            outcome=VerdictOutcome.FAIL,
            baseline=0.9,
            candidate=0.85,
            difference=-0.05,
            ci_low=-0.08,
            ci_high=-0.02,
            threshold=0.01,
            message="dropped",
        )
    ],
)

SAMPLES: list[BaseModel] = [
    Ticket(id="t1", text="VPN down ✈", created_at=T0, metadata={"shift": "night", "n": [1, 2.5]}),
    Decision(
        ticket_id="t1",
        model_version="m",
        probabilities={"a": 0.25, "b": 0.75},
        label="b",
        h_norm=0.81,
        route=Route.CLARIFY,
        latency_ms=1.5,
        created_at=T0,
        rule_hits=[RuleHit(rule="r", label="b", matched=["x"])],
        shadow=True,
    ),
    Override(
        ticket_id="t1",
        decision_id="d",
        model_label="a",
        final_label="b",
        reason_code=ReasonCode.R4,
        note="taxonomy",
        analyst="ana",
        created_at=T0,
    ),
    Example(
        text="mfa push spam",
        label="security_incident",
        slice_tags=["mfa_related"],
        metadata={"k": {"nested": True}},
        reviewer="kim",
        created_at=T0,
    ),
    EvalSuite(
        name="s",
        examples=[
            SuiteExample(id="x", text="t", label="a", slice=SuiteSlice.EDGE, tags=["mfa_related"])
        ],
    ).frozen(),
    ModelVersion(
        id="m1",
        kind=ModelKind.LORA,
        base_model="minilm",
        artifact_path="/a",
        artifact_hash="h",
        training_data_hash="d",
        config={"r": 8},
        parent="m0",
    ),
    _verdict,
    Attempt(
        kind=AttemptKind.RULES,
        baseline_version="a",
        candidate_version="b",
        verdict=_verdict,
        details={"missed_before": 10, "missed_after": 3},
    ),
    EvalRun(
        model_version="m",
        suite_hash="h",
        labels=["a", "b"],
        metrics={"acc": 0.5},
        example_ids=["x", "y"],
        y_true=[0, 1],
        proba=[[0.1, 0.9], [1 / 3, 2 / 3]],
        latency_ms=[1.0, 2.0],
        seed=1,
    ),
]


@pytest.mark.parametrize("record", SAMPLES, ids=lambda r: type(r).__name__)
def test_every_record_round_trips(record: BaseModel) -> None:
    again = type(record).model_validate_json(record.model_dump_json())
    assert again == record
    assert type(record).model_validate(record.model_dump(mode="json")) == record


def test_timestamps_become_aware() -> None:
    naive = Ticket(id="t", text="x", created_at=datetime(2024, 1, 1, 12))
    assert naive.created_at.tzinfo is UTC
    plus = Ticket(id="t", text="x", created_at="2024-01-01T12:00:00+02:00")
    assert plus.created_at == datetime(2024, 1, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("model", "data", "match"),
    [
        (Ticket, {"id": "t", "text": "  ", "created_at": T0}, "empty"),
        (Ticket, {"id": "", "text": "x", "created_at": T0}, "at least 1"),
        (Ticket, {"id": "t", "text": "x", "created_at": T0, "colour": 1}, "Extra inputs"),
        (
            Decision,
            {
                "ticket_id": "t",
                "model_version": "m",
                "probabilities": {"a": 0.5},
                "label": "a",
                "h_norm": 0.1,
                "route": "auto",
            },
            "distribution",
        ),
        (
            Decision,
            {
                "ticket_id": "t",
                "model_version": "m",
                "probabilities": {"a": 1.0},
                "label": "b",
                "h_norm": 0.1,
                "route": "auto",
            },
            "not among",
        ),
        (
            Decision,
            {
                "ticket_id": "t",
                "model_version": "m",
                "probabilities": {"a": 1.0},
                "label": "a",
                "h_norm": 1.5,
                "route": "auto",
            },
            "less than or equal",
        ),
        (Override, {"ticket_id": "t", "final_label": "a", "reason_code": "R7"}, "R1"),
        (
            EvalRun,
            {
                "model_version": "m",
                "suite_hash": "h",
                "labels": ["a"],
                "metrics": {},
                "example_ids": ["x"],
                "y_true": [],
                "proba": [[1.0]],
            },
            "same length",
        ),
    ],
)
def test_validators_reject(model: type[BaseModel], data: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        model.model_validate(data)


def test_frozen_suite_detects_tampering() -> None:
    suite = SAMPLES[4]
    assert isinstance(suite, EvalSuite)
    data = suite.model_dump(mode="json")
    data["examples"][0]["label"] = "b"
    with pytest.raises(ValidationError, match="does not match its hash"):
        EvalSuite.model_validate(data)


def test_hashes_ignore_case_and_spacing() -> None:
    a = Example(text="VPN  Down", label="vpn_issue")
    b = Example(text="vpn down", label="vpn_issue")
    assert a.content_hash == b.content_hash and a.text_hash == b.text_hash
    assert normalize_text("Ｆｕｌｌ  width") == "full width"
    assert content_hash(1, "a") != content_hash("1", "a")


_text = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() != "")
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_times = st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    ),
)


@given(_text, _text, _times, st.dictionaries(st.text(max_size=8), _json, max_size=4))
def test_ticket_round_trip_property(
    rid: str, text: str, at: datetime, meta: dict[str, Any]
) -> None:
    t = Ticket(id=rid, text=text, created_at=at, metadata=meta)
    assert Ticket.model_validate_json(t.model_dump_json()) == t


@given(st.lists(st.floats(min_value=0.001, max_value=1.0), min_size=2, max_size=6), _times)
def test_decision_round_trip_property(weights: list[float], at: datetime) -> None:
    total = sum(weights)
    probs = {f"l{i}": w / total for i, w in enumerate(weights)}
    label = max(probs, key=lambda k: probs[k])
    d = Decision(
        ticket_id="t",
        model_version="m",
        probabilities=probs,
        label=label,
        h_norm=0.5,
        route=Route.AUTO,
        created_at=at,
    )
    again = Decision.model_validate_json(d.model_dump_json())
    assert again == d and again.probabilities == probs


@given(_text, _text, st.sampled_from(list(ReasonCode)), _times)
def test_override_and_example_round_trip_property(
    text: str, label: str, code: ReasonCode, at: datetime
) -> None:
    o = Override(ticket_id="t", final_label=label, reason_code=code, note=text, created_at=at)
    assert Override.model_validate_json(o.model_dump_json()) == o
    e = Example(text=text, label=label, created_at=at, slice_tags=[label])
    assert Example.model_validate_json(e.model_dump_json()) == e
