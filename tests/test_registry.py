"""Registry: lineage, promotion gated on a Verdict, forced promotion, rollback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunegate.errors import InputError, RegistryError
from tunegate.records import (
    Attempt,
    AttemptKind,
    ModelKind,
    ModelStatus,
    ModelVersion,
    RuleResult,
    Verdict,
    VerdictOutcome,
)
from tunegate.registry import ROLLBACK_PREFIX, Registry
from tunegate.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'reg.db'}")


def _mv(vid: str, parent: str | None = None) -> ModelVersion:
    return ModelVersion(
        id=vid,
        kind=ModelKind.ZERO_SHOT,
        parent=parent,
        training_data_hash=f"data-{vid}",
        config={"v": vid},
    )


def _verdict(store: Store, candidate: str, baseline: str, outcome: VerdictOutcome) -> Attempt:
    rule = RuleResult(rule="preservation_accuracy", outcome=outcome, message="dropped 3 pp")
    attempt = Attempt(
        kind=AttemptKind.FINETUNE,
        baseline_version=baseline,
        candidate_version=candidate,
        verdict=Verdict(outcome=outcome, baseline_run="r1", candidate_run="r2", rules=[rule]),
    )
    store.save_attempt(attempt)
    return attempt


def test_register_records_lineage_and_candidate_alias(store: Store) -> None:
    reg = Registry(store)
    reg.register(_mv("v1"))
    reg.register(_mv("v2", parent="v1"))
    assert reg.candidate() == "v2"
    assert [m.id for m in reg.lineage("v2")] == ["v2", "v1"]
    assert reg.get("v2").training_data_hash == "data-v2"
    with pytest.raises(InputError, match="parent 'nope'"):
        reg.register(_mv("v3", parent="nope"))


def test_first_promotion_needs_no_verdict(store: Store) -> None:
    reg = Registry(store)
    reg.register(_mv("v1"))
    result = reg.promote("v1", actor="alice")
    assert reg.champion() == "v1" and result.previous is None
    assert store.get_model_version("v1").status == ModelStatus.CHAMPION


def test_promote_refused_without_or_with_failing_verdict(store: Store) -> None:
    reg = Registry(store)
    reg.register(_mv("v1"))
    reg.promote("v1", actor="alice")
    reg.register(_mv("v2", parent="v1"))
    with pytest.raises(RegistryError, match="no Verdict"):
        reg.promote("v2", actor="alice")
    _verdict(store, "v2", "v1", VerdictOutcome.FAIL)
    with pytest.raises(RegistryError, match=r"'fail'.*preservation_accuracy"):
        reg.promote("v2", actor="alice")
    assert reg.champion() == "v1"
    # a verdict against a different baseline does not count
    _verdict(store, "v2", "other", VerdictOutcome.PASS)
    with pytest.raises(RegistryError):
        reg.promote("v2", actor="alice")
    # the latest verdict wins
    _verdict(store, "v2", "v1", VerdictOutcome.PASS)
    result = reg.promote("v2", actor="alice")
    assert result.verdict == "pass" and reg.champion() == "v2"
    assert store.get_model_version("v1").status == ModelStatus.RETIRED


def test_force_needs_a_reason_and_records_it(store: Store) -> None:
    reg = Registry(store)
    for vid in ("v1", "v2"):
        reg.register(_mv(vid))
    reg.promote("v1", actor="alice")
    _verdict(store, "v2", "v1", VerdictOutcome.INCONCLUSIVE)
    with pytest.raises(RegistryError, match="non-empty --reason"):
        reg.promote("v2", actor="bob", force=True, reason="  ")
    reg.promote("v2", actor="bob", force=True, reason="incident 42: old model is down")
    last = reg.history("champion")[-1]
    assert last.version_id == "v2" and last.actor == "bob"
    assert "incident 42" in last.reason and last.reason.startswith("forced")
    audit = store.audit_log("registry.promote")[-1]
    assert audit["details"]["forced"] is True and "incident 42" in audit["details"]["reason"]


def test_rollback_walks_back_through_promotions(store: Store) -> None:
    reg = Registry(store)
    for vid in ("v1", "v2", "v3"):
        reg.register(_mv(vid))
    reg.promote("v1", actor="a")
    with pytest.raises(RegistryError, match="first champion"):
        reg.rollback(actor="a")
    _verdict(store, "v2", "v1", VerdictOutcome.PASS)
    reg.promote("v2", actor="a")
    _verdict(store, "v3", "v2", VerdictOutcome.PASS)
    reg.promote("v3", actor="a")
    assert reg.rollback(actor="ops", reason="FNR up").version_id == "v2"
    assert reg.champion() == "v2"
    assert reg.rollback(actor="ops").version_id == "v1"
    events = reg.history("champion")
    assert [e.version_id for e in events] == ["v1", "v2", "v3", "v2", "v1"]
    assert events[3].reason == ROLLBACK_PREFIX + "FNR up" and events[3].previous == "v3"
    assert store.get_model_version("v3").status == ModelStatus.RETIRED
    assert [e["action"] for e in store.audit_log()][-2:] == ["registry.rollback"] * 2
