"""Model versions and their aliases (``champion``), with the alias history rollback reads."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tunegate.errors import InputError, NotFoundError
from tunegate.records import ModelStatus, ModelVersion, utcnow
from tunegate.store import _schema as s
from tunegate.store._core import StoreCore

__all__ = ["AliasEvent", "ModelsMixin"]


@dataclass(frozen=True)
class AliasEvent:
    """One change of an alias (e.g. ``champion``): the history rollback reads."""

    alias: str
    version_id: str
    previous: str | None
    actor: str
    reason: str
    at: datetime


_OPTIONAL_ROUTING = ("clarify_threshold", "routing_fit")


def _payload_hash(payload: Any) -> str:
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ModelsMixin(StoreCore):
    """Model versions (content-checked, status updatable) and aliases (append-only history)."""

    def save_model_version(self, mv: ModelVersion) -> None:
        """Register a model version; saving the same version again is a no-op (a different
        status is applied), different content under the same id is an :class:`InputError`."""
        payload = mv.model_dump(mode="json")
        # routing fields left at None stay out of the digest: versions stored before they
        # existed keep their hash
        digest = _payload_hash(
            {
                k: v
                for k, v in payload.items()
                if k != "status" and not (k in _OPTIONAL_ROUTING and v is None)
            }
        )
        row = {
            "id": mv.id,
            "kind": mv.kind.value,
            "status": mv.status.value,
            "parent": mv.parent,
            "created_at": mv.created_at,
            "payload": payload,
            "record_hash": digest,
        }
        t = s.model_versions
        with self._write() as conn:
            stmt = self._insert(t).on_conflict_do_nothing(index_elements=["id"]).returning(t.c.id)
            if conn.execute(stmt, row).first() is not None:
                return
            stored = conn.execute(
                sa.select(t.c.record_hash, t.c.status).where(t.c.id == mv.id)
            ).one()
            if stored.record_hash != digest:
                raise InputError(
                    f"model version {mv.id!r} is already registered with different content; "
                    f"register the new model under a new id"
                )
            if stored.status != mv.status.value:
                conn.execute(
                    sa.update(t)
                    .where(t.c.id == mv.id)
                    .values(status=mv.status.value, payload=payload)
                )

    def get_model_version(self, version_id: str) -> ModelVersion:
        """One model version; :class:`NotFoundError` when absent."""
        t = s.model_versions
        with self._read() as conn:
            payload = conn.execute(sa.select(t.c.payload).where(t.c.id == version_id)).scalar()
        if payload is None:
            raise NotFoundError(f"no model version {version_id!r}; see `tunegate models list`")
        return ModelVersion.model_validate(payload)

    def model_versions(self) -> list[ModelVersion]:
        """Every model version, oldest first."""
        t = s.model_versions
        with self._read() as conn:
            rows = conn.execute(sa.select(t.c.payload).order_by(t.c.created_at, t.c.id)).scalars()
            return [ModelVersion.model_validate(p) for p in rows]

    def update_model_status(self, version_id: str, status: ModelStatus | str) -> None:
        """Set a model version's status (candidate / champion / retired)."""
        try:
            value = ModelStatus(status)
        except ValueError:
            allowed = [v.value for v in ModelStatus]
            raise InputError(f"model status {status!r} is not one of {allowed}") from None
        mv = self.get_model_version(version_id).model_copy(update={"status": value})
        t = s.model_versions
        with self._write() as conn:
            conn.execute(
                sa.update(t)
                .where(t.c.id == version_id)
                .values(status=value.value, payload=mv.model_dump(mode="json"))
            )

    def set_alias(self, alias: str, version_id: str, *, actor: str, reason: str = "") -> None:
        """Point ``alias`` (e.g. ``champion``) at a registered version, recording history."""
        t = s.aliases
        with self._write() as conn:
            if conn.dialect.name == "postgresql":
                key = int.from_bytes(hashlib.sha256(f"alias:{alias}".encode()).digest()[:7], "big")
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
            exists = conn.execute(
                sa.select(s.model_versions.c.id).where(s.model_versions.c.id == version_id)
            ).first()
            if exists is None:
                raise NotFoundError(
                    f"cannot point alias {alias!r} at {version_id!r}: no such model version; "
                    f"register it first (Store.save_model_version / Registry.register)"
                )
            previous = conn.execute(
                sa.select(t.c.version_id)
                .where(t.c.alias == alias)
                .order_by(t.c.seq.desc())
                .limit(1)
            ).scalar()
            conn.execute(
                sa.insert(t).values(
                    alias=alias,
                    version_id=version_id,
                    previous=previous,
                    actor=actor,
                    reason=reason,
                    at=utcnow(),
                )
            )

    def get_alias(self, alias: str) -> str | None:
        """The version an alias points at now (``None`` when never set)."""
        t = s.aliases
        with self._read() as conn:
            value: str | None = conn.execute(
                sa.select(t.c.version_id)
                .where(t.c.alias == alias)
                .order_by(t.c.seq.desc())
                .limit(1)
            ).scalar()
        return value

    def alias_history(self, alias: str | None = None) -> list[AliasEvent]:
        """Alias changes, oldest first (all aliases, or one)."""
        t = s.aliases
        query = sa.select(t).order_by(t.c.seq)
        if alias is not None:
            query = query.where(t.c.alias == alias)
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            AliasEvent(
                alias=r["alias"],
                version_id=r["version_id"],
                previous=r["previous"],
                actor=r["actor"],
                reason=r["reason"],
                at=r["at"],
            )
            for r in rows
        ]
