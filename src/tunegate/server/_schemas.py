"""Request and response bodies of the HTTP API (they make the OpenAPI spec)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tunegate._validation import aware, check_json_value, check_text, check_unicode
from tunegate.records import (
    MAX_NOTE_CHARS,
    MAX_TEXT_CHARS,
    Decision,
    ModelVersion,
    Override,
    ReasonCode,
    Route,
)

__all__ = [
    "BatchIn",
    "ClassifyResponse",
    "ModelsResponse",
    "OverrideIn",
    "PromoteIn",
    "QueueClaimIn",
    "QueueClaimOut",
    "QueueItem",
    "QueueResponse",
    "RollbackIn",
    "TicketIn",
    "TokenCreateIn",
]


class _In(BaseModel):
    """A request body. Its strings, timestamps and metadata pass the checks and limits every
    record passes at ingestion (:mod:`tunegate._validation`), with the same messages."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _valid_unicode(cls, value: Any, info: Any) -> Any:
        if isinstance(value, str) and not value.isascii():
            check_unicode(value, info.field_name)
        return value


class TicketIn(_In):
    """One ticket to classify. ``id`` and ``created_at`` default to a fresh id and now."""

    text: str = Field(min_length=1, pattern=r"\S", json_schema_extra={"maxLength": MAX_TEXT_CHARS})
    """The ticket text (at least one non-space character, at most 20,000 characters)."""
    id: str | None = Field(default=None, min_length=1, max_length=200)
    """Your ticket id; classifying the same id again adds a new decision for it."""
    created_at: datetime | None = None
    """When the ticket was created (timezone-aware; naive times are taken as UTC)."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Free-form metadata (channel, shift, site...) used by named slices: at most 32 levels
    deep, no NaN or infinite numbers."""

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        return check_text(value, "text")

    @field_validator("created_at")
    @classmethod
    def _created_at(cls, value: datetime | None) -> datetime | None:
        return None if value is None else aware(value)

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_json_value(value, "metadata")  # type: ignore[no-any-return]


class BatchIn(_In):
    """A batch of tickets (at most the server's batch limit, 256 by default)."""

    tickets: list[TicketIn] = Field(min_length=1)


class ClassifyResponse(BaseModel):
    """One decision per ticket, in request order (already stored)."""

    decisions: list[Decision]


class OverrideIn(_In):
    """An analyst's correction or confirmation of a decision. The analyst is the token's name."""

    ticket_id: str = Field(min_length=1, max_length=200)
    decision_id: str | None = Field(default=None, min_length=1, max_length=200)
    """The decision corrected; default: the ticket's latest decision."""
    final_label: str = Field(min_length=1, max_length=200)
    """The correct label (equal to the model's label = a confirmation)."""
    reason_code: ReasonCode
    """R1 ambiguous input, R2 model missed a signal, R3 policy/workflow rule, R4 taxonomy."""
    note: str = Field(default="", json_schema_extra={"maxLength": MAX_NOTE_CHARS})
    supersedes: str | None = Field(default=None, min_length=1, max_length=200)
    """The id of the decision's open override this one replaces (it is marked superseded).
    Without it, an override of a decision that already has an open one is refused (409)."""

    @field_validator("note")
    @classmethod
    def _note(cls, value: str) -> str:
        return check_text(value, "note", MAX_NOTE_CHARS)


class QueueClaimOut(BaseModel):
    """A waiting decision's lease: it is handed to ``analyst`` until ``expires_at``."""

    decision_id: str
    analyst: str
    claimed_at: datetime
    expires_at: datetime


class QueueItem(BaseModel):
    """A decision waiting for an analyst (route clarify or escalate, no override yet)."""

    decision: Decision
    ticket_text: str
    top: list[tuple[str, float]]
    """The three most probable classes with their probabilities, best first."""
    claim: QueueClaimOut | None = None
    """Who holds the decision now (None: nobody; anyone may take it)."""


class QueueClaimIn(_In):
    """Ask for decisions from the queue; they are handed to the token's holder alone."""

    limit: int = Field(default=1, ge=1, le=50)
    """How many decisions to take (the holder's own live leases come first, renewed)."""
    route: Route | None = None
    """Take only ``clarify`` or only ``escalate`` decisions (None: both)."""
    lease_s: float | None = Field(default=None, ge=10.0, le=86_400.0)
    """Seconds the decisions stay with the holder unless decided or released (None: the
    service's ``queue_lease_s``, 600 by default)."""


class QueueResponse(BaseModel):
    items: list[QueueItem]
    total: int
    """Waiting decisions in all (``items`` holds at most ``limit`` of them, oldest first)."""


class AliasEventOut(BaseModel):
    alias: str
    version_id: str | None
    previous: str | None
    actor: str
    reason: str
    at: datetime


class ModelsResponse(BaseModel):
    champion: str | None
    candidate: str | None
    versions: list[ModelVersion]
    history: list[AliasEventOut]
    serving: str | None
    """The version of the classifier this process serves now (None before the first request)."""


class PromoteIn(_In):
    force: bool = False
    """Promote even when the registry's checks refuse (recorded in the audit trail)."""
    reason: str = Field(default="", max_length=2000)


class RollbackIn(_In):
    reason: str = Field(default="", max_length=2000)


class TokenCreateIn(_In):
    role: str = Field(pattern="^(analyst|admin)$")
    name: str = Field(min_length=1, max_length=100)


class OverrideOut(BaseModel):
    override: Override
    correction: bool
    """False when the final label equals the model's label (a confirmation)."""
