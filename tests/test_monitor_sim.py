"""Monitoring a fine-tuned model on the service-desk simulation (real encoder weights; slow).

A zero-shot champion serves four weeks while a LoRA adapter fine-tuned on a few hundred
reviewed history tickets shadows them (its shadow decisions are the pre-promotion baseline).
The LoRA model is promoted and serves eight quiet weeks: no trigger may fire at the default
thresholds. Then a new remote-access client is rolled out (simulated shift ``vpn_client``):
a trigger must fire and ``act_on(..., auto_rollback=True)`` must restore the zero-shot
champion, with the reason in the alias history.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tunegate.config import Workflow
from tunegate.records import Example, ModelKind, ModelVersion, ReviewStatus

pytestmark = pytest.mark.slow

N_TRAIN = 800
"""Reviewed history examples the adapter is trained on (a small, fast fine-tune)."""


class Named:
    """A classifier under a registry version id (what Decision.model_version records)."""

    def __init__(self, inner: Any, version: str) -> None:
        self.inner, self.version, self.labels = inner, version, list(inner.labels)

    def predict_proba(self, texts: Sequence[str], metadata: Any = None) -> np.ndarray:
        return np.asarray(self.inner.predict_proba(list(texts)))


def test_shift_after_a_lora_promotion_fires_and_auto_rollback_restores_the_champion(
    tmp_path: Path, workflow: Workflow, encoder_path: str
) -> None:
    from tunegate.models import LoraClassifier, ZeroShotClassifier
    from tunegate.monitor import act_on, disagreements_to_review, run_monitor, set_reference
    from tunegate.simulate import (
        SimConfig,
        SimTicket,
        generate_history,
        generate_stream,
        make_decisions,
        review_disagreements,
        simulate_analysts,
    )
    from tunegate.store import Store
    from tunegate.train import finetune

    # No MFA rollout inside the window: the only change after the promotion is the shift.
    config = SimConfig(weeks=12, rollout_week=1000, seed=11, tickets_per_week=250)
    store = Store(f"sqlite:///{tmp_path / 'sim.db'}")
    history = generate_history(config)
    picked = random.Random(0).sample(history, N_TRAIN)
    examples = [
        Example(
            text=s.ticket.text, label=s.truth.recorded_label, review_status=ReviewStatus.REVIEWED
        )
        for s in picked
    ]
    began = time.perf_counter()
    artifact = finetune(
        examples,
        workflow.model_copy(update={"data_targets": []}),
        tmp_path / "lora",
        seed=0,
        base_model=encoder_path,
        epochs=3,
    )
    print(f"fine-tune of {N_TRAIN} examples, 3 epochs: {time.perf_counter() - began:.1f} s")
    zero = Named(ZeroShotClassifier(workflow), "zs-1")
    lora = Named(LoraClassifier.load(artifact), "lora-1")
    store.save_model_version(ModelVersion(id="zs-1", kind=ModelKind.ZERO_SHOT))
    store.save_model_version(
        ModelVersion(id="lora-1", kind=ModelKind.LORA, artifact_path=str(artifact), parent="zs-1")
    )
    set_reference(store, "lora-1", [e.text for e in examples])

    def serve(model: Named, start: int, end: int, shift: str | None = None) -> list[SimTicket]:
        sims = generate_stream(config, start, end, shift=shift)
        tickets = [s.ticket for s in sims]
        decisions = make_decisions(model, tickets, workflow)
        analysts = simulate_analysts(sims, decisions, config, workflow)
        store.add_tickets(tickets)
        store.add_decisions(decisions)
        store.add_overrides(analysts.overrides)
        store.add_examples(analysts.confirmations)
        return sims

    store.set_alias("champion", "zs-1", actor="test", reason="first champion")
    served = serve(zero, 0, 4)
    # The fine-tuned candidate shadowed those weeks: its production figures before promotion
    # are the baseline. (make_decisions models latency like the live stream; shadow_score would
    # measure it, which is not comparable with the modelled live latency of the simulation.)
    shadowed = make_decisions(lora, store.tickets(), workflow)
    store.add_decisions([d.model_copy(update={"shadow": True}) for d in shadowed])
    # Before the promotion analysts label the tickets where the candidate disagreed with an
    # un-reviewed champion label, so the baseline is not charged with the champion's misses.
    to_review = disagreements_to_review(store, "lora-1")
    assert 0 < len(to_review) < len(shadowed) // 5
    store.add_examples(review_disagreements(served, to_review, config, workflow))
    assert disagreements_to_review(store, "lora-1") == []
    store.set_alias("champion", "lora-1", actor="test", reason="promoted after a pass verdict")
    serve(lora, 4, 12)

    quiet = run_monitor(store, workflow, drift=False)
    assert quiet.champion == "lora-1" and quiet.baseline_source == "shadow"
    assert quiet.baseline is not None and len(quiet.windows) == 8
    assert not quiet.notes, quiet.notes  # no unreviewed disagreement is left in the baseline
    print(
        f"baseline: {quiet.baseline.override_rate:.3f} override rate on "
        f"{quiet.baseline.n_decisions} shadow decisions ({len(to_review)} disagreements reviewed)"
    )
    print("quiet override rates:", [f"{p.figures.override_rate:.3f}" for p in quiet.periods])
    judged = {r.trigger for w in quiet.windows for r in w.results if r.judged}
    assert {"override_rate", "abstention_quality", "latency", "escalation_rising"} <= judged
    assert not quiet.fired, [r.message for r in quiet.fired]

    serve(lora, 12, 14, shift="vpn_client")
    shifted = run_monitor(store, workflow, drift=True)
    for w in shifted.windows[-2:]:
        print(w.window, [r.message for r in w.results if r.trigger == "override_rate"])
    shift_weeks = {w.window for w in shifted.windows[-2:]}
    fired = sorted({(r.window, r.trigger) for r in shifted.fired})
    print("fired:", fired)
    assert fired and {window for window, _ in fired} <= shift_weeks
    new_vocab = {
        period: {d.test: d.score for d in ds}["new_vocabulary"]
        for period, ds in shifted.drift.items()
    }
    print("new_vocabulary excess share per week:", new_vocab)
    quiet_scores = [s for p, s in new_vocab.items() if p not in shift_weeks]
    assert min(new_vocab[p] for p in shift_weeks) > max(quiet_scores)

    alert = act_on(shifted, store, auto_rollback=True)
    assert alert is not None and alert.rollback is not None
    assert alert.rollback["from"] == "lora-1" and alert.rollback["to"] == "zs-1"
    assert store.get_alias("champion") == "zs-1"
    reason = store.alias_history("champion")[-1].reason
    assert "auto-rollback: " in reason
    first = shifted.fired[0]
    assert f"{first.window} {first.message}" in reason and first.message.startswith("FIRED")
    store.close()
