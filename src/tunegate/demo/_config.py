"""The demo's knobs, its workflow and its simulation, and the fixes its team tries first."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tunegate.config import Workflow, parse_workflow, starter_yaml
from tunegate.errors import TunegateError

__all__ = [
    "FIX_INSTRUCTIONS",
    "FIX_RULE",
    "INSTRUCTION_VARIANTS",
    "DemoConfig",
    "demo_workflow",
    "simulation_config",
]

# Instructions a team would try first when MFA lockouts are misrouted (step 5).
FIX_INSTRUCTIONS = (
    "IT service desk ticket; unexpected MFA push prompts, authenticator codes or sign-in "
    "attempts the user did not make are security incidents, not routine lockouts. Ticket about"
)
# The rule a team would try (step 5): the policy "MFA prompts + lockout = security incident".
FIX_RULE = {
    "name": "mfa_lockout_is_security",
    "label": "security_incident",
    "all_of": [r"\b(locked|lock(ed)? ?out|lockout)\b"],
    "any_of": [r"\b(push (prompt|notification|request)s?|authenticator|mfa|2fa)\b"],
    "description": "MFA prompts with a lockout are treated as a possible attack.",
}
# Paraphrases of the champion's instructions: the zero-shot model's "seeds" are its prompt
# configurations, so its variance is measured across these (docs/demo.md).
INSTRUCTION_VARIANTS = (
    "IT service desk ticket about",
    "Support request concerning",
    "This helpdesk ticket is about",
)


@dataclass
class DemoConfig:
    """Knobs of the demo. ``quick`` shrinks every volume for tests (under two minutes)."""

    out_dir: Path = Path("tunegate-demo")
    quick: bool = False
    seed: int = 7
    weeks: int = 12
    rollout_week: int = 6
    post_weeks: int | None = None
    seeds: int | None = None
    epochs: int | None = None
    """Training epochs (default: 5 in the full demo, 2 with ``quick``; early stopping may end
    sooner)."""
    shift_share: float = 0.3
    """Share of tickets from the new VPN client in the shifted weeks (step 8c): a
    company-wide rollout; the simulation's own default (``SimConfig.shift_rate``) is 0.15."""
    fresh: bool = True
    """Delete ``out_dir`` first (the demo always starts from an empty store)."""
    precision: Literal["int8", "fp32"] | None = None
    """``model.precision`` of the demo's workflow, for the champion and the candidate alike
    (default: ``fp32``; ``int8`` with ``quick``). float32: at a service desk's volume the speed
    of int8 buys nothing, while int8 changes about 1% of labels and makes a ticket's label
    depend on its batch (docs/demo.md). ``quick`` keeps int8: in float32 it ran at the edge of
    its two-minute budget (119 s) and its small preservation slice left the verdict
    inconclusive (docs/demo.md)."""

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        if not 0.0 <= self.shift_share <= 1.0:
            raise TunegateError(f"shift_share must be between 0 and 1, got {self.shift_share}")
        if self.precision not in (None, "int8", "fp32"):
            raise TunegateError(f"precision must be int8 or fp32, got {self.precision!r}")
        if self.rollout_week >= self.weeks:
            raise TunegateError(
                f"rollout_week ({self.rollout_week}) must be before weeks ({self.weeks})"
            )

    @property
    def serving_precision(self) -> Literal["int8", "fp32"]:
        if self.precision is not None:
            return self.precision
        return "int8" if self.quick else "fp32"

    @property
    def n_seeds(self) -> int:
        return self.seeds if self.seeds is not None else (2 if self.quick else 3)

    @property
    def n_post_weeks(self) -> int:
        return self.post_weeks if self.post_weeks is not None else (2 if self.quick else 4)


def demo_workflow(config: DemoConfig) -> Workflow:
    """The starter service-desk workflow with the demo's store; quick mode scales the data
    targets down with the smaller volumes (the same proportions, documented in docs/demo.md)."""
    wf = parse_workflow(starter_yaml())
    updates: dict[str, Any] = {
        "store": wf.store.model_copy(update={"url": "sqlite:///demo.db"}),
        "model": wf.model.model_copy(update={"precision": config.serving_precision}),
    }
    if config.quick:
        updates["data_targets"] = [
            t.model_copy(update={"min": max(10, t.min // 5)}) for t in wf.data_targets
        ]
        updates["gate"] = wf.gate.model_copy(update={"min_reviewed_examples": 100})
        updates["triage"] = wf.triage.model_copy(update={"min_failures": 40})
        updates["regression"] = wf.regression.model_copy(update={"n_bootstrap": 300})
        updates["training"] = wf.training.model_copy(update={"epochs": config.epochs or 2})
    else:
        # Five, not the workflow's three: in the reference run every seed was still improving
        # at epoch 3 (best epoch = last); early stopping ends a run that stops improving.
        updates["training"] = wf.training.model_copy(update={"epochs": config.epochs or 5})
    return wf.model_copy(update=updates)


def simulation_config(config: DemoConfig) -> Any:
    from tunegate.simulate import SimConfig

    if config.quick:
        return SimConfig(
            weeks=config.weeks,
            rollout_week=config.rollout_week,
            seed=config.seed,
            tickets_per_week=110,
            history_size=500,
            heldout_core=150,
            heldout_edge=90,
            heldout_preservation=80,
        )
    return SimConfig(weeks=config.weeks, rollout_week=config.rollout_week, seed=config.seed)
