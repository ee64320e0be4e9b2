"""Record an analyst's override of a decision (a correction or a confirmation), audited.

The override is checked against the workflow (the final label must be one of its labels) and
against the decisions of the ticket (an explicit ``decision_id`` must be one of them; without
one the ticket's latest live decision is the one corrected). An override whose final label
equals the model's label is a *confirmation* (:attr:`tunegate.records.Override.is_correction`
is False); monitoring and the dashboard count corrections only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from tunegate.config import Workflow
from tunegate.errors import InputError, NotFoundError
from tunegate.records import Decision, Override, ReasonCode, utcnow

if TYPE_CHECKING:
    from tunegate.store import Store

__all__ = ["RecordedOverride", "recent_overrides", "record_override"]


@dataclass(frozen=True)
class RecordedOverride:
    """The stored override and whether it corrected the model (False = a confirmation)."""

    override: Override
    correction: bool

    def to_dict(self) -> dict[str, Any]:
        return {"override": self.override.model_dump(mode="json"), "correction": self.correction}


def record_override(
    workflow: Workflow,
    store: Store,
    *,
    ticket_id: str,
    final_label: str,
    reason_code: ReasonCode,
    analyst: str,
    decision_id: str | None = None,
    note: str = "",
    token_id: str | None = None,
) -> RecordedOverride:
    """Store an override of a ticket's decision and its ``override`` audit row.

    Raises :class:`~tunegate.errors.InputError` for a label outside the workflow and
    :class:`~tunegate.errors.NotFoundError` for an unknown ticket or decision. ``token_id``
    (the API token used) goes into the audit row.
    """
    if final_label not in workflow.labels:
        raise InputError(
            f"final_label {final_label!r} is not a label of workflow "
            f"{workflow.name!r}; allowed: {workflow.label_names}"
        )
    store.get_ticket(ticket_id)  # NotFoundError for an unknown ticket
    decisions = [d for d in store.decisions(ticket_ids=[ticket_id]) if not d.shadow]
    decision: Decision | None = None
    if decision_id is not None:
        decision = next((d for d in decisions if d.id == decision_id), None)
        if decision is None:
            raise NotFoundError(
                f"ticket {ticket_id!r} has no decision "
                f"{decision_id!r}; GET /v1/queue lists open decisions"
            )
    elif decisions:
        decision = max(decisions, key=lambda d: d.created_at)
    override = Override(
        ticket_id=ticket_id,
        decision_id=decision.id if decision else None,
        model_label=decision.label if decision else None,
        final_label=final_label,
        reason_code=reason_code,
        note=note,
        analyst=analyst,
    )
    store.add_overrides([override])
    correction = override.is_correction
    store.audit(
        "override",
        analyst,
        {
            "override_id": override.id,
            "ticket_id": override.ticket_id,
            "decision_id": override.decision_id,
            "model_label": override.model_label,
            "final_label": override.final_label,
            "reason_code": override.reason_code.value,
            "correction": correction,
            "token_id": token_id,
        },
    )
    return RecordedOverride(override, correction)


def recent_overrides(
    store: Store, *, days: int = 14, limit: int = 10, until: datetime | None = None
) -> list[Override]:
    """The latest ``limit`` overrides of the ``days`` days before ``until`` (default: now;
    exclusive), newest first."""
    end = until or utcnow()
    recent = sorted(
        store.overrides(since=end - timedelta(days=days), until=until),
        key=lambda o: o.created_at,
        reverse=True,
    )
    return recent[:limit]
