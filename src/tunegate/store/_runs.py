"""Evaluation suites (frozen, by hash), attempts (replaceable) and evaluation runs (immutable)."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

from tunegate.errors import InputError, NotFoundError
from tunegate.records import Attempt, EvalRun, EvalSuite
from tunegate.store import _schema as s
from tunegate.store._core import StoreCore

__all__ = ["RunsMixin"]


class RunsMixin(StoreCore):
    """Suites, attempts and evaluation runs."""

    def save_suite(self, suite: EvalSuite) -> None:
        """Store a suite, frozen (hashed) if it is not yet; saving it again is a no-op."""
        frozen = suite if suite.hash else suite.frozen()
        row = {
            "hash": frozen.hash,
            "name": frozen.name,
            "created_at": frozen.created_at,
            "n_examples": len(frozen.examples),
            "payload": frozen.model_dump_json(),
        }
        with self._write() as conn:
            conn.execute(
                self._insert(s.suites).on_conflict_do_nothing(index_elements=["hash"]), row
            )

    def get_suite(self, name_or_hash: str) -> EvalSuite:
        """A suite by full hash, by a unique hash prefix (>= 8 chars), or the newest by name."""
        t = s.suites
        with self._read() as conn:
            payload = conn.execute(sa.select(t.c.payload).where(t.c.hash == name_or_hash)).scalar()
            if payload is None:
                payload = conn.execute(
                    sa.select(t.c.payload)
                    .where(t.c.name == name_or_hash)
                    .order_by(t.c.created_at.desc())
                    .limit(1)
                ).scalar()
            if payload is None and len(name_or_hash) >= 8:
                found = (
                    conn.execute(
                        sa.select(t.c.payload).where(t.c.hash.startswith(name_or_hash)).limit(2)
                    )
                    .scalars()
                    .all()
                )
                if len(found) == 1:
                    payload = found[0]
            names = sorted(set(conn.execute(sa.select(t.c.name)).scalars()))
        if payload is None:
            raise NotFoundError(
                f"no evaluation suite named or hashed {name_or_hash!r}; stored suites: {names}"
            )
        return EvalSuite.model_validate_json(payload)

    def suites(self) -> list[EvalSuite]:
        """Every stored suite, oldest first."""
        t = s.suites
        with self._read() as conn:
            payloads = conn.execute(sa.select(t.c.payload).order_by(t.c.created_at)).scalars().all()
        return [EvalSuite.model_validate_json(p) for p in payloads]

    def save_attempt(self, attempt: Attempt) -> None:
        """Store an attempt; saving the same id again replaces it (e.g. once its verdict is in)."""
        t = s.attempts
        row = {
            "id": attempt.id,
            "kind": attempt.kind.value,
            "created_at": attempt.created_at,
            "payload": attempt.model_dump(mode="json"),
        }
        stmt = self._insert(t)
        stmt = stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={
                "kind": stmt.excluded.kind,
                "created_at": stmt.excluded.created_at,
                "payload": stmt.excluded.payload,
            },
        )
        with self._write() as conn:
            conn.execute(stmt, row)

    def attempts(self, kind: str | None = None) -> list[Attempt]:
        """Attempts, oldest first (optionally of one kind)."""
        t = s.attempts
        query = sa.select(t.c.payload).order_by(t.c.created_at, t.c.id)
        if kind is not None:
            query = query.where(t.c.kind == str(kind))
        with self._read() as conn:
            return [Attempt.model_validate(p) for p in conn.execute(query).scalars()]

    def save_eval_run(self, run: EvalRun) -> None:
        """Store an evaluation run (immutable: the same id with other content is an error)."""
        payload = run.model_dump_json()
        digest = hashlib.sha256(payload.encode("utf-8")).hexdigest()
        t = s.eval_runs
        row = {
            "id": run.id,
            "model_version": run.model_version,
            "suite_hash": run.suite_hash,
            "created_at": run.created_at,
            "payload": payload,
            "record_hash": digest,
        }
        with self._write() as conn:
            stmt = self._insert(t).on_conflict_do_nothing(index_elements=["id"]).returning(t.c.id)
            if conn.execute(stmt, row).first() is not None:
                return
            stored = conn.execute(sa.select(t.c.record_hash).where(t.c.id == run.id)).scalar()
            if stored != digest:
                raise InputError(
                    f"evaluation run {run.id!r} is already stored with different "
                    f"content; runs are immutable, save the new one under a new id"
                )

    def get_eval_run(self, run_id: str) -> EvalRun:
        """One evaluation run; :class:`NotFoundError` when absent."""
        t = s.eval_runs
        with self._read() as conn:
            payload = conn.execute(sa.select(t.c.payload).where(t.c.id == run_id)).scalar()
        if payload is None:
            raise NotFoundError(f"no evaluation run {run_id!r}")
        return EvalRun.model_validate_json(payload)

    def eval_runs(
        self, model_version: str | None = None, suite_hash: str | None = None
    ) -> list[EvalRun]:
        """Evaluation runs, oldest first, optionally filtered."""
        t = s.eval_runs
        query = sa.select(t.c.payload).order_by(t.c.created_at, t.c.id)
        if model_version is not None:
            query = query.where(t.c.model_version == model_version)
        if suite_hash is not None:
            query = query.where(t.c.suite_hash == suite_hash)
        with self._read() as conn:
            return [EvalRun.model_validate_json(p) for p in conn.execute(query).scalars()]
