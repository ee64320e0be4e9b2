"""Typed access to the store's documents: ``store.documents(Finding).get/put/items/delete``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from pydantic import ValidationError

from tunegate.documents import Document
from tunegate.errors import InputError, StoreError
from tunegate.records import utcnow
from tunegate.store import _schema as s
from tunegate.store._core import StoreCore

__all__ = ["Documents", "DocumentsMixin"]

D = TypeVar("D", bound=Document)


class Documents(Generic[D]):
    """The documents of one kind (``cls.KIND``), read and written as ``cls`` instances."""

    def __init__(self, store: StoreCore, cls: type[D]) -> None:
        kind = cls.__dict__.get("KIND")
        if not isinstance(kind, str):
            raise InputError(
                f"{cls.__name__} declares no document kind; pass a Document subclass with KIND "
                f"(see tunegate.documents)"
            )
        self._store = store
        self.cls = cls
        self.kind = kind

    def __repr__(self) -> str:
        return f"Documents({self.cls.__name__}, kind={self.kind!r})"

    def _load(self, key: str, payload: Any) -> D:
        try:
            return self.cls.model_validate(payload)
        except ValidationError as exc:
            raise StoreError(
                f"stored {self.kind} document {key!r} does not validate as "
                f"{self.cls.__name__}: {exc}"
            ) from exc

    def put(self, key: str, doc: D) -> None:
        """Store ``doc`` under ``key`` (replacing what was there)."""
        if not isinstance(doc, self.cls):
            raise InputError(
                f"documents({self.cls.__name__}).put({key!r}): expected a {self.cls.__name__}, "
                f"got {type(doc).__name__}"
            )
        try:
            payload = doc.model_dump(mode="json")
            json.dumps(payload)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"{self.kind} document {key!r} is not JSON-serializable: {exc}"
            ) from exc
        t = s.documents
        stmt = self._store._insert(t)
        stmt = stmt.on_conflict_do_update(
            index_elements=["kind", "key"],
            set_={"payload": stmt.excluded.payload, "updated_at": stmt.excluded.updated_at},
        )
        row = {"kind": self.kind, "key": key, "payload": payload, "updated_at": utcnow()}
        with self._store._write() as conn:
            conn.execute(stmt, row)

    def get(self, key: str) -> D | None:
        """The document under ``key``, or ``None``."""
        t = s.documents
        with self._store._read() as conn:
            payload = conn.execute(
                sa.select(t.c.payload).where(t.c.kind == self.kind, t.c.key == key)
            ).scalar()
        return None if payload is None else self._load(key, payload)

    def items(self) -> list[tuple[str, D]]:
        """Every ``(key, document)`` of this kind, ordered by key."""
        return list(self._iter())

    def keys(self, *, below: str | None = None, limit: int | None = None) -> list[str]:
        """The keys of this kind, ordered; ``below`` keeps keys that sort before it and
        ``limit`` caps how many come back (a range scan of the primary key: bounded work
        however many documents there are)."""
        t = s.documents
        query = sa.select(t.c.key).where(t.c.kind == self.kind).order_by(t.c.key)
        if below is not None:
            query = query.where(t.c.key < below)
        if limit is not None:
            query = query.limit(limit)
        with self._store._read() as conn:
            return list(conn.execute(query).scalars())

    def _iter(self) -> Iterator[tuple[str, D]]:
        t = s.documents
        with self._store._read() as conn:
            rows = conn.execute(
                sa.select(t.c.key, t.c.payload).where(t.c.kind == self.kind).order_by(t.c.key)
            ).all()
        for row in rows:
            yield row.key, self._load(row.key, row.payload)

    def delete(self, key: str) -> bool:
        """Delete the document under ``key``; ``True`` when one was deleted."""
        t = s.documents
        with self._store._write() as conn:
            res = conn.execute(sa.delete(t).where(t.c.kind == self.kind, t.c.key == key))
        return bool(res.rowcount)


class DocumentsMixin(StoreCore):
    """``store.documents(cls)``: the typed documents of one kind."""

    def documents(self, cls: type[D]) -> Documents[D]:
        """Typed access to the documents of ``cls``'s kind (see :mod:`tunegate.documents`):
        ``store.documents(Finding).get(key)`` -> ``Finding | None``; also ``put``, ``items``,
        ``keys`` and ``delete``."""
        return Documents(self, cls)
