"""Record an analyst's override of a decision (a correction or a confirmation), audited.

The override is checked against the workflow (the final label must be one of its labels) and
against the decisions of the ticket (an explicit ``decision_id`` must be one of them; without
one the ticket's latest live decision is the one corrected). An override whose final label
equals the model's label is a *confirmation* (:attr:`tunegate.records.Override.is_correction`
is False); monitoring and the dashboard count corrections only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from tunegate.config import Workflow
from tunegate.errors import ConflictError, InputError, NotFoundError
from tunegate.records import Decision, Override, ReasonCode, utcnow

if TYPE_CHECKING:
    from tunegate.store import Store

__all__ = ["RecordedOverride", "idempotent_override_id", "recent_overrides", "record_override"]


@dataclass(frozen=True)
class RecordedOverride:
    """The stored override and whether it corrected the model (False = a confirmation)."""

    override: Override
    correction: bool
    created: bool = True
    """False when an idempotent retry found the override already stored (nothing written)."""

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
    idempotency_key: str | None = None,
    supersedes: str | None = None,
) -> RecordedOverride:
    """Store an override of a ticket's decision and its ``override`` audit row, in one
    transaction (:meth:`~tunegate.store.Store.add_override_audited`).

    Raises :class:`~tunegate.errors.InputError` for a label outside the workflow and
    :class:`~tunegate.errors.NotFoundError` for an unknown ticket or decision. ``token_id``
    (the API token used) goes into the audit row.

    A decision has one open override: a second raises
    :class:`~tunegate.errors.ConflictError` unless ``supersedes`` names the open one (which
    is then marked superseded). With ``idempotency_key`` the override's id is derived from the
    key and the analyst (:func:`idempotent_override_id`): a retry with the same key and the
    same request returns the stored override (``created=False``), the same key with a
    different request raises :class:`~tunegate.errors.ConflictError`.
    """
    if final_label not in workflow.labels:
        raise InputError(
            f"final_label {final_label!r} is not a label of workflow "
            f"{workflow.name!r}; allowed: {workflow.label_names}"
        )
    if not store.tickets(ids=[ticket_id]):
        raise NotFoundError(f"no ticket with id {ticket_id!r}")
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
    extra = (
        {} if idempotency_key is None else {"id": idempotent_override_id(analyst, idempotency_key)}
    )
    override = Override(
        **extra,
        ticket_id=ticket_id,
        decision_id=decision.id if decision else None,
        model_label=decision.label if decision else None,
        final_label=final_label,
        reason_code=reason_code,
        note=note,
        analyst=analyst,
    )
    correction = override.is_correction
    stored, created = store.add_override_audited(
        override,
        supersedes=supersedes,
        audit={
            "override_id": override.id,
            "ticket_id": override.ticket_id,
            "decision_id": override.decision_id,
            "model_label": override.model_label,
            "final_label": override.final_label,
            "reason_code": override.reason_code.value,
            "correction": correction,
            "token_id": token_id,
            "supersedes": supersedes,
        },
    )
    if not created:
        asked = (ticket_id, final_label, reason_code, note, decision_id or stored.decision_id)
        found = (
            stored.ticket_id,
            stored.final_label,
            stored.reason_code,
            stored.note,
            stored.decision_id,
        )
        if asked != found:
            raise ConflictError(
                f"idempotency key {idempotency_key!r} was used for override {stored.id!r} with "
                f"a different request; use a new key for a new override"
            )
    return RecordedOverride(stored, stored.is_correction, created)


def idempotent_override_id(analyst: str, key: str) -> str:
    """The override id of ``analyst``'s request with idempotency key ``key``: the same key
    gives the same id, so a retried request cannot store a second override."""
    digest = hashlib.sha256(f"{analyst}\x00{key}".encode()).hexdigest()
    return f"ovr_k{digest[:24]}"


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
