"""The service-desk simulation: a reproducible scenario with known ground truth.

A service desk over N weeks rolls out multi-factor authentication at ``rollout_week``; from then
on a growing share of security incidents arrive as "locked out" tickets that mention
authenticator apps, MFA codes or push prompts, which a pre-rollout model routes as routine
``account_unlock``. See docs/simulation.md.

>>> from tunegate.simulate import SimConfig, simulate
>>> result = simulate(SimConfig(weeks=12, rollout_week=6, seed=7), "sim/")  # doctest: +SKIP
"""

from __future__ import annotations

from tunegate.simulate._analysts import (
    AnalystResult,
    review_disagreements,
    simulate_analysts,
)
from tunegate.simulate._config import SHIFTS, SimConfig, default_catch_rates
from tunegate.simulate._generate import (
    LABELS,
    GroundTruth,
    SimTicket,
    generate_all,
    generate_heldout,
    generate_history,
    generate_stream,
    is_night,
    reason_for,
)
from tunegate.simulate._serve import Champion, default_champion, make_decisions, model_version_of
from tunegate.simulate._simulate import (
    FILES,
    INGEST_ORDER,
    SimResult,
    dumps_record,
    ingest_simulation,
    simulate,
    summarize,
    write_jsonl,
)
from tunegate.simulate._support import SUPPORT_FILES, SupportScenario, support_scenario

__all__ = [
    "FILES",
    "INGEST_ORDER",
    "LABELS",
    "SHIFTS",
    "SUPPORT_FILES",
    "AnalystResult",
    "Champion",
    "GroundTruth",
    "SimConfig",
    "SimResult",
    "SimTicket",
    "SupportScenario",
    "default_catch_rates",
    "default_champion",
    "dumps_record",
    "generate_all",
    "generate_heldout",
    "generate_history",
    "generate_stream",
    "ingest_simulation",
    "is_night",
    "make_decisions",
    "model_version_of",
    "reason_for",
    "review_disagreements",
    "simulate",
    "simulate_analysts",
    "summarize",
    "support_scenario",
    "write_jsonl",
]
