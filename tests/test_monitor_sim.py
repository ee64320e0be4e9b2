"""Monitoring on the service-desk simulation (real encoder weights; slow).

A zero-shot champion serves four weeks (the baseline); a retrieval model built from the
reviewed history is promoted and serves eight quiet weeks (no trigger may fire), then a new
remote-access client is rolled out (simulated shift ``vpn_client``): a trigger must fire and
``--auto-rollback`` must restore the zero-shot champion.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tunegate.config import Workflow
from tunegate.records import Example, ModelKind, ModelVersion, ReviewStatus

pytestmark = pytest.mark.slow


class Named:
    """A classifier under a registry version id (what Decision.model_version records)."""

    def __init__(self, inner: Any, version: str) -> None:
        self.inner, self.version, self.labels = inner, version, list(inner.labels)

    def predict_proba(self, texts: Sequence[str], metadata: Any = None) -> np.ndarray:
        return np.asarray(self.inner.predict_proba(list(texts)))


def test_shift_fires_a_trigger_and_auto_rollback_restores_the_champion(
    tmp_path: Path, workflow: Workflow, encoder_path: str
) -> None:
    from tunegate.models import KNNClassifier, ZeroShotClassifier
    from tunegate.monitor import act_on, run_monitor, set_reference
    from tunegate.simulate import (
        SimConfig,
        generate_history,
        generate_stream,
        make_decisions,
        simulate_analysts,
    )
    from tunegate.store import Store

    config = SimConfig(weeks=12, rollout_week=1000, seed=11, tickets_per_week=250)
    store = Store(f"sqlite:///{tmp_path / 'sim.db'}")
    history = generate_history(config)
    examples = [
        Example(text=s.ticket.text, label=s.label, review_status=ReviewStatus.REVIEWED)
        for s in history
    ]
    zero = Named(ZeroShotClassifier(workflow), "zs-1")
    knn = Named(KNNClassifier(workflow, examples), "knn-1")
    for mv in ("zs-1", "knn-1"):
        store.save_model_version(ModelVersion(id=mv, kind=ModelKind.RETRIEVAL))
    set_reference(store, "knn-1", [e.text for e in examples])

    def serve(model: Named, start: int, end: int, shift: str | None = None) -> None:
        sims = generate_stream(config, start, end, shift=shift)
        tickets = [s.ticket for s in sims]
        decisions = make_decisions(model, tickets, workflow)
        store.add_tickets(tickets)
        store.add_decisions(decisions)
        store.add_overrides(simulate_analysts(sims, decisions, config, workflow).overrides)

    store.set_alias("champion", "zs-1", actor="test", reason="first champion")
    serve(zero, 0, 4)
    # The retrieval candidate shadowed those weeks: its production figures before promotion are
    # the baseline. (make_decisions models latency like the live stream; shadow_score would
    # measure it, which is not comparable with the modelled live latency of the simulation.)
    shadowed = make_decisions(knn, store.tickets(), workflow)
    store.add_decisions([d.model_copy(update={"shadow": True}) for d in shadowed])
    store.set_alias("champion", "knn-1", actor="test", reason="promoted after a pass verdict")
    serve(knn, 4, 12)

    quiet = run_monitor(store, workflow, drift=False)
    assert quiet.baseline_source == "shadow" and len(quiet.windows) == 8
    judged = {r.trigger for w in quiet.windows for r in w.results if r.judged}
    assert {"override_rate", "abstention_quality", "latency"} <= judged
    assert not quiet.fired, [r.message for r in quiet.fired]

    serve(knn, 12, 14, shift="vpn_client")
    shifted = run_monitor(store, workflow, drift=True)
    assert shifted.fired, [r.message for w in shifted.windows for r in w.results]
    shift_weeks = {w.window for w in shifted.windows[-2:]}
    new_vocab = {
        period: {d.test: d.score for d in ds}["new_vocabulary"]
        for period, ds in shifted.drift.items()
    }
    print("fired:", sorted({(r.window, r.trigger) for r in shifted.fired}))
    print("new_vocabulary excess share per week:", new_vocab)
    quiet_scores = [s for p, s in new_vocab.items() if p not in shift_weeks]
    assert min(new_vocab[p] for p in shift_weeks) > max(quiet_scores)
    alert = act_on(shifted, store, auto_rollback=True)
    assert alert is not None and alert.rollback is not None
    assert store.get_alias("champion") == "zs-1"
    assert "auto-rollback" in store.alias_history("champion")[-1].reason
    store.close()
