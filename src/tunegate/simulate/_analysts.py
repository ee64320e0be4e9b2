"""Simulated analysts acting on the real model's decisions.

For every decision the analyst knows the ground truth, but does not always act on it:

* a wrong decision is caught with the configured catch rate for its true class and shift
  (night lower); a caught one becomes an Override whose final label is the truth, except for a
  share ``wrong_override_rate`` where the analyst picks a wrong label (label noise);
* the reason code follows the ticket: R1 for vague or two-topic tickets (ambiguous input), R3
  for policy-rule cases, R2 (missed signal) for everything else;
* a correct decision is occasionally overridden anyway (``false_override_rate``, R1), and is
  otherwise confirmed with ``confirm_rate`` (``confirm_rate_escalated`` when it was escalated
  or, after the rollout, when the ticket is MFA-related) — a confirmation is a reviewed Example
  with source ``override`` that points at the ticket and the decision;
* a senior reviews an override with probability ``review_rate``.

:func:`review_disagreements` stands in for analysts who, before a promotion, label the tickets
where a shadow candidate disagreed with an un-reviewed champion label
(``tunegate.monitor.disagreements_to_review``): a deliberate review, so the truth, except for a
share ``wrong_override_rate`` labelled wrongly.

Every random choice is seeded by (seed, ticket id, model version), so the outcome of one
ticket does not depend on which others are in the batch.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from tunegate.config import Workflow
from tunegate.errors import InputError
from tunegate.records import (
    Decision,
    Example,
    ExampleSource,
    Override,
    ReasonCode,
    ReviewStatus,
    Route,
)
from tunegate.simulate._config import SimConfig
from tunegate.simulate._generate import SimTicket, reason_for

__all__ = ["AnalystResult", "review_disagreements", "simulate_analysts"]

_NOTES: dict[str, str] = {
    "mfa_security": "unrequested MFA prompts before the lockout: push-fatigue attack, not a "
    "routine unlock",
    "mfa_vpn": "the MFA step fails inside the VPN client: a VPN problem",
    "mfa_enrol": "MFA enrolment lockout: routine unlock and MFA reset",
    "policy_lost_device": "policy: a lost or stolen device is a security incident",
    "policy_contractor": "policy: expired contractor accounts are access requests (extension)",
    "policy_admin": "policy: admin rights are an access request, not an install",
    "vpn_client_shift": "new remote-access client (Zscaler) problem: VPN queue",
}


@dataclass
class AnalystResult:
    """What the analysts did: overrides (corrections) and confirmations (reviewed examples)."""

    overrides: list[Override] = field(default_factory=list)
    confirmations: list[Example] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    """Ids of tickets whose wrong decision nobody caught."""


def _rng(config: SimConfig, ticket_id: str, version: str) -> random.Random:
    key = f"{config.seed}|analyst|{ticket_id}|{version}"
    return random.Random(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))


def _note(sim: SimTicket, reason: str, final: str) -> str:
    if sim.truth.kind in _NOTES and final == sim.truth.label:
        return _NOTES[sim.truth.kind]
    if reason == "R1":
        return "ambiguous ticket; clarified with the user"
    return f"model missed that this is {final}"


def _ticket_of(dec: Decision, by_id: dict[str, SimTicket]) -> SimTicket:
    """The simulated ticket a decision is about (a clear error when it was not passed in)."""
    sim = by_id.get(dec.ticket_id)
    if sim is None:
        raise InputError(
            f"decision {dec.id} is for ticket {dec.ticket_id!r}, which is not "
            f"among the {len(by_id)} simulated tickets passed in"
        )
    return sim


def simulate_analysts(
    tickets: Sequence[SimTicket],
    decisions: Sequence[Decision],
    config: SimConfig,
    workflow: Workflow,
) -> AnalystResult:
    """Overrides and confirmations for ``decisions`` (one per ticket, matched by ticket id)."""
    by_id = {s.ticket.id: s for s in tickets}
    labels = workflow.label_names
    result = AnalystResult()
    for dec in decisions:
        sim = _ticket_of(dec, by_id)
        rng = _rng(config, sim.ticket.id, dec.model_version)
        night = sim.ticket.metadata.get("shift") == "night"
        truth = sim.truth.label
        team = "night" if night else "day"
        analyst = f"analyst.{team}.{rng.randrange(1, 7 if night else 13):02d}"
        delay = timedelta(minutes=rng.randrange(60, 600) if night else rng.randrange(10, 360))
        final: str | None = None
        reason = reason_for(sim.truth)
        if dec.label != truth:
            if rng.random() < config.catch_rate(truth, night):
                final = truth
                if rng.random() < config.wrong_override_rate:
                    final = rng.choice([x for x in labels if x not in (truth, dec.label)])
            else:
                result.missed.append(sim.ticket.id)
        elif rng.random() < config.false_override_rate:
            final = rng.choice([x for x in labels if x != truth])
            reason = "R1"
        else:
            mfa_after = "mfa" in sim.truth.tags and sim.truth.week >= config.rollout_week
            p = (
                config.confirm_rate_escalated
                if dec.route == Route.ESCALATE or mfa_after
                else config.confirm_rate
            )
            if rng.random() < p:
                result.confirmations.append(
                    Example(
                        id=f"ex-{dec.id.removeprefix('dec-')}",
                        text=sim.ticket.text,
                        label=dec.label,
                        source=ExampleSource.OVERRIDE,
                        reviewer=analyst,
                        review_status=ReviewStatus.REVIEWED,
                        slice_tags=workflow.slice_tags(sim.ticket.text, sim.ticket.metadata),
                        metadata={**sim.ticket.metadata, "confirmed": True, "decision_id": dec.id},
                        ticket_id=sim.ticket.id,
                        created_at=sim.ticket.created_at + delay,
                    )
                )
            continue
        if final is None:
            continue
        reviewed = rng.random() < config.review_rate
        result.overrides.append(
            Override(
                id=f"ovr-{dec.id.removeprefix('dec-')}",
                ticket_id=sim.ticket.id,
                decision_id=dec.id,
                model_label=dec.label,
                final_label=final,
                reason_code=ReasonCode(reason),
                note=_note(sim, reason, final),
                analyst=analyst,
                created_at=sim.ticket.created_at + delay,
                review_status=ReviewStatus.REVIEWED if reviewed else ReviewStatus.PENDING,
            )
        )
    return result


def review_disagreements(
    tickets: Sequence[SimTicket],
    decisions: Sequence[Decision],
    config: SimConfig,
    workflow: Workflow,
) -> list[Example]:
    """Reviewed examples labelling the tickets of ``decisions`` (shadow disagreements to review).

    One example per ticket, with ``ticket_id`` and the shadow ``decision_id`` in its metadata;
    the label is the truth except with probability ``wrong_override_rate`` (a wrong label).
    """
    by_id = {s.ticket.id: s for s in tickets}
    labels = workflow.label_names
    out: dict[str, Example] = {}
    for dec in decisions:
        sim = _ticket_of(dec, by_id)
        if sim.ticket.id in out:
            continue
        rng = _rng(config, sim.ticket.id, f"review|{dec.model_version}")
        label = sim.truth.label
        if rng.random() < config.wrong_override_rate:
            label = rng.choice([x for x in labels if x != label])
        out[sim.ticket.id] = Example(
            id=f"ex-review-{sim.ticket.id}",
            text=sim.ticket.text,
            label=label,
            source=ExampleSource.OVERRIDE,
            reviewer=f"analyst.day.{rng.randrange(1, 13):02d}",
            review_status=ReviewStatus.REVIEWED,
            slice_tags=workflow.slice_tags(sim.ticket.text, sim.ticket.metadata),
            metadata={
                **sim.ticket.metadata,
                "shadow_review": dec.model_version,
                "decision_id": dec.id,
            },
            ticket_id=sim.ticket.id,
            created_at=sim.ticket.created_at + timedelta(hours=rng.randrange(1, 48)),
        )
    return list(out.values())
