"""Dataset builder: review enforcement, leakage, duplicates, replay, targets, storage."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from _tiny_models import toy_examples
from tunegate.config import Workflow
from tunegate.errors import InputError, LeakageError
from tunegate.records import (
    EvalSuite,
    Example,
    ExampleSource,
    Override,
    ReasonCode,
    ReviewStatus,
    SuiteExample,
    SuiteSlice,
    Ticket,
)
from tunegate.train import build_dataset, dataset_hash, load_dataset, override_to_example


class BagOfWords:
    """Deterministic hashed bag-of-words embedder (rows L2-normalized)."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), 256), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % 256] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


ENC = BagOfWords()


@pytest.fixture
def wf(workflow: Workflow) -> Workflow:
    return workflow.model_copy(update={"data_targets": []})


def _suite(texts: list[tuple[str, str]]) -> EvalSuite:
    return EvalSuite(
        name="frozen",
        examples=[
            SuiteExample(id=f"s{i}", text=t, label=y, slice=SuiteSlice.CORE)
            for i, (t, y) in enumerate(texts)
        ],
    ).frozen()


def test_unreviewed_examples_are_refused_with_count_and_how_to_review(wf: Workflow) -> None:
    data = toy_examples(5) + toy_examples(2, reviewed=False, prefix="p", seed=9)
    with pytest.raises(InputError, match=r"16 examples are not reviewed.*set_review_status"):
        build_dataset(data, wf, encoder=ENC)
    ds = build_dataset(data, wf, encoder=ENC, include_unreviewed=True)
    assert ds.manifest["pending_included"] == 16


def test_rejected_examples_are_dropped(wf: Workflow) -> None:
    data = toy_examples(5)
    data[0] = data[0].model_copy(update={"review_status": ReviewStatus.REJECTED})
    ds = build_dataset(data, wf, encoder=ENC)
    assert data[0].id not in {e.id for e in ds.examples}
    assert ds.manifest["rejected"] == 1


def test_suite_overlap_is_excluded_and_reported(wf: Workflow) -> None:
    data = toy_examples(6)
    exact = data[0]
    near = data[1]
    suite = _suite(
        [
            ("  " + exact.text.upper() + " ", exact.label),
            (" ".join(reversed(near.text.split())), near.label),
        ]
    )
    ds = build_dataset(data, wf, suites=[suite], encoder=ENC)
    ids = {e.id for e in ds.examples}
    assert exact.id not in ids and near.id not in ids
    report = ds.leakage_report
    assert report["exact"] == 1 and report["near"] == 1 and report["per_suite"] == {"frozen": 2}
    assert {r["example_id"] for r in report["examples"]} == {exact.id, near.id}
    with pytest.raises(LeakageError, match="overlap frozen evaluation suites"):
        build_dataset(data, wf, suites=[suite], encoder=ENC, on_leak="raise")


def test_exact_and_near_duplicates_are_removed_newest_label_wins(wf: Workflow) -> None:
    old = datetime(2025, 1, 1, tzinfo=UTC)
    base = toy_examples(4)
    dup_exact = Example(
        id="dup1",
        text=base[0].text.upper(),
        label="hardware",
        review_status=ReviewStatus.REVIEWED,
        created_at=old + timedelta(days=30),
    )
    first = base[0].model_copy(update={"created_at": old})
    near = Example(
        id="dup2",
        text=" ".join(reversed(base[1].text.split())),
        label=base[1].label,
        review_status=ReviewStatus.REVIEWED,
        created_at=old,
    )
    ds = build_dataset([first, *base[1:], dup_exact, near], wf, encoder=ENC)
    ids = {e.id for e in ds.examples}
    assert "dup1" in ids and first.id not in ids  # the newer label wins the exact conflict
    assert ds.dedup_report["exact_removed"] == 1 and ds.dedup_report["label_conflicts"] >= 1
    assert ds.dedup_report["near_removed"] == 1
    assert len({e.text.lower() for e in ds.examples}) == len(ds.examples)


def test_target_shortfall_message_names_target_have_and_missing(workflow: Workflow) -> None:
    data = toy_examples(20)
    mfa = [
        Example(
            id=f"m{i}",
            text=f"mfa push prompt suspicious attack number {i} x{i}",
            label="security_incident",
            review_status=ReviewStatus.REVIEWED,
        )
        for i in range(7)
    ]
    with pytest.raises(InputError) as err:
        build_dataset(data + mfa, workflow, encoder=ENC)
    msg = str(err.value)
    assert (
        "mfa_security_incidents: 7 reviewed 'security_incident' examples in slice "
        "'mfa_related', need 150 (143 more needed)" in msg
    )
    assert "routine_lockouts: 20 reviewed 'account_unlock'" in msg and "130 more needed" in msg
    assert "mfa_vpn_issues" in msg and "--allow-shortfall" in msg
    ds = build_dataset(data + mfa, workflow, encoder=ENC, allow_shortfall=True)
    row = next(r for r in ds.target_report if r["name"] == "mfa_security_incidents")
    assert (row["have"], row["need"], row["missing"], row["ok"]) == (7, 150, 143, False)


def test_replay_mixes_a_stratified_share_of_correct_historical_examples(wf: Workflow) -> None:
    new = toy_examples(10, source=ExampleSource.OVERRIDE, labels=["vpn_issue", "hardware"])
    hist = toy_examples(30, source=ExampleSource.HISTORICAL, prefix="h", seed=3)
    ds = build_dataset(new + hist, wf, encoder=ENC, replay_ratio=0.5, seed=1)
    assert ds.manifest["n_new"] == 20 and ds.manifest["n_replay"] == 10
    again = build_dataset(new + hist, wf, encoder=ENC, replay_ratio=0.5, seed=1)
    assert again.hash == ds.hash
    other = build_dataset(new + hist, wf, encoder=ENC, replay_ratio=0.5, seed=2)
    assert other.hash != ds.hash
    none = build_dataset(new + hist, wf, encoder=ENC, replay_ratio=0.0)
    assert none.manifest["n_replay"] == 0


def test_hash_depends_on_text_and_label_not_order_or_ids(wf: Workflow) -> None:
    data = toy_examples(3)
    renamed = [e.model_copy(update={"id": "x" + e.id}) for e in reversed(data)]
    assert dataset_hash(data) == dataset_hash(renamed)
    relabeled = [data[0].model_copy(update={"label": "hardware"}), *data[1:]]
    assert dataset_hash(relabeled) != dataset_hash(data)


def test_store_overrides_join_tickets_and_dataset_round_trips(tmp_path: Path, wf: Workflow) -> None:
    from tunegate.store import Store

    store = Store(f"sqlite:///{tmp_path / 'd.db'}")
    tickets = [
        Ticket(id=f"t{i}", text=e.text, created_at=datetime(2025, 3, 1, tzinfo=UTC))
        for i, e in enumerate(toy_examples(3))
    ]
    store.add_tickets(tickets)
    overrides = [
        Override(
            ticket_id=t.id,
            final_label="hardware",
            reason_code=ReasonCode.R2,
            analyst="ann",
            review_status=ReviewStatus.REVIEWED,
        )
        for t in tickets
    ]
    store.add_overrides(overrides)
    store.add_examples(toy_examples(2, source=ExampleSource.HISTORICAL, prefix="h", seed=5))
    ds = build_dataset(store, wf, encoder=ENC, replay_ratio=1.0)
    from_overrides = [e for e in ds.examples if e.source == ExampleSource.OVERRIDE]
    assert len(from_overrides) == 24 and {e.label for e in from_overrides} == {"hardware"}
    assert all(e.reviewer == "ann" and e.ticket_id for e in from_overrides)
    ds.save(store)
    loaded = load_dataset(store, ds.hash[:10])
    assert loaded.hash == ds.hash and [e.id for e in loaded.examples] == [e.id for e in ds.examples]
    pending = Override(ticket_id="t0", final_label="vpn_issue", reason_code=ReasonCode.R1)
    ex = override_to_example(pending, tickets[0], wf)
    assert ex.review_status == ReviewStatus.PENDING and ex.reviewer is None
