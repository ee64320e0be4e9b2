"""Review-queue leases: a waiting decision is handed to one analyst at a time.

A claim is a row of ``queue_claims`` (decision id, analyst, expiry). Claiming runs in one
write transaction: it selects the oldest waiting decisions nobody else holds a live lease on
(on PostgreSQL with ``FOR UPDATE SKIP LOCKED``, so concurrent claimers in other processes
skip the rows one of them is taking instead of waiting for it), then writes the leases with
an upsert that only takes a row when its lease expired or is the claimer's own. The upsert is
the arbiter: two claimers can never both get a decision, even when one of them read the
queue before the other committed; SKIP LOCKED keeps them from colliding in the common case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from tunegate.errors import InputError
from tunegate.records import utcnow
from tunegate.store import _schema as s
from tunegate.store._core import StoreCore, _chunks

__all__ = ["ClaimsMixin", "QueueClaim"]

_ROUNDS = 3
"""Claim rounds per call: a round that loses some rows to a concurrent claimer tries again."""


@dataclass(frozen=True)
class QueueClaim:
    """A decision handed to ``analyst`` until ``expires_at`` (UTC)."""

    decision_id: str
    analyst: str
    claimed_at: datetime
    expires_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision_id": self.decision_id,
            "analyst": self.analyst,
            "claimed_at": self.claimed_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
        }


def _claim(row: sa.RowMapping) -> QueueClaim:
    return QueueClaim(
        decision_id=str(row["decision_id"]),
        analyst=str(row["analyst"]),
        claimed_at=row["claimed_at"],
        expires_at=row["expires_at"],
    )


class ClaimsMixin(StoreCore):
    """Leases on waiting review-queue decisions (``queue_claims``)."""

    def claim_decisions(
        self,
        analyst: str,
        *,
        limit: int,
        lease_s: float,
        routes: Sequence[str],
        since: datetime,
        overrides_since: datetime,
        now: datetime | None = None,
    ) -> list[QueueClaim]:
        """Hand up to ``limit`` waiting decisions to ``analyst`` for ``lease_s`` seconds and
        return their claims, the analyst's own live claims first (renewed), then oldest first.

        A decision waits when its route is one of ``routes``, it is not a shadow decision, it
        was made at or after ``since``, and its ticket has no override made at or after
        ``overrides_since``. A decision another analyst holds a live lease on is skipped.
        Fewer than ``limit`` claims come back when fewer decisions are free.
        """
        if not analyst:
            raise InputError("analyst must name who claims the decisions (got an empty name)")
        if limit < 1:
            raise InputError(f"limit must be at least 1; got {limit}")
        if lease_s <= 0:
            raise InputError(f"lease_s must be positive seconds; got {lease_s}")
        claimed: list[QueueClaim] = []
        for _ in range(_ROUNDS):
            want = limit - len(claimed)
            got, exhausted = self._retrying(
                lambda want=want: self._claim_round(
                    analyst,
                    limit=want,
                    lease_s=lease_s,
                    routes=routes,
                    since=since,
                    overrides_since=overrides_since,
                    now=now,
                )
            )
            claimed.extend(got)
            if exhausted or len(claimed) >= limit:
                break
        return claimed

    def _claim_round(
        self,
        analyst: str,
        *,
        limit: int,
        lease_s: float,
        routes: Sequence[str],
        since: datetime,
        overrides_since: datetime,
        now: datetime | None,
    ) -> tuple[list[QueueClaim], bool]:
        """One transaction of :meth:`claim_decisions`: the claims it won and whether the
        queue had no more free decisions (True) or a concurrent claimer took some (False)."""
        d, o, c = s.decisions, s.overrides, s.queue_claims
        at = now or utcnow()
        expires = at + timedelta(seconds=lease_s)
        reviewed = sa.exists().where(
            o.c.ticket_id == d.c.ticket_id, o.c.created_at >= overrides_since
        )
        held_by_other = sa.exists().where(
            c.c.decision_id == d.c.id, c.c.expires_at > at, c.c.analyst != analyst
        )
        own = sa.exists().where(c.c.decision_id == d.c.id, c.c.analyst == analyst)
        query = (
            sa.select(d.c.id)
            .where(d.c.route.in_([str(getattr(r, "value", r)) for r in routes]))
            .where(d.c.shadow.is_(False), d.c.created_at >= since)
            .where(~reviewed, ~held_by_other)
            .order_by(sa.case((own, 0), else_=1), d.c.created_at, d.c.id)
            .limit(limit)
        )
        if self.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True, of=d)
        with self._write() as conn:
            ids = [str(row[0]) for row in conn.execute(query)]
            won: list[QueueClaim] = []
            for decision_id in ids:
                stmt = self._insert(c).values(
                    decision_id=decision_id, analyst=analyst, claimed_at=at, expires_at=expires
                )
                stmt = stmt.on_conflict_do_update(
                    index_elements=[c.c.decision_id],
                    set_={
                        "analyst": stmt.excluded.analyst,
                        "claimed_at": stmt.excluded.claimed_at,
                        "expires_at": stmt.excluded.expires_at,
                    },
                    where=sa.or_(c.c.expires_at <= at, c.c.analyst == analyst),
                ).returning(c)
                row = conn.execute(stmt).mappings().first()
                if row is not None:
                    won.append(_claim(row))
        return won, len(ids) < limit or len(won) == len(ids)

    def live_claims(
        self,
        *,
        decision_ids: Sequence[str] | None = None,
        ticket_ids: Sequence[str] | None = None,
        now: datetime | None = None,
    ) -> dict[str, QueueClaim]:
        """Claims whose lease has not expired, by decision id; ``decision_ids`` /
        ``ticket_ids`` keep those decisions / the decisions of those tickets."""
        c, d = s.queue_claims, s.decisions
        query = sa.select(c).where(c.c.expires_at > (now or utcnow()))
        out: dict[str, QueueClaim] = {}
        with self._read() as conn:
            if decision_ids is None and ticket_ids is None:
                return {r["decision_id"]: _claim(r) for r in conn.execute(query).mappings()}
            for chunk in _chunks(list(dict.fromkeys(decision_ids or []))):
                for row in conn.execute(query.where(c.c.decision_id.in_(chunk))).mappings():
                    out[row["decision_id"]] = _claim(row)
            for chunk in _chunks(list(dict.fromkeys(ticket_ids or []))):
                of_tickets = sa.select(d.c.id).where(d.c.ticket_id.in_(chunk))
                for row in conn.execute(query.where(c.c.decision_id.in_(of_tickets))).mappings():
                    out[row["decision_id"]] = _claim(row)
        return out

    def release_claims(
        self,
        *,
        decision_ids: Sequence[str] | None = None,
        ticket_ids: Sequence[str] | None = None,
        analyst: str | None = None,
        expired_before: datetime | None = None,
    ) -> int:
        """Delete claims: of ``decision_ids``, of the decisions of ``ticket_ids``, only
        ``analyst``'s when given, or every claim that expired before ``expired_before``.
        Returns how many were deleted."""
        c, d = s.queue_claims, s.decisions
        deleted = 0
        with self._write() as conn:
            if expired_before is not None:
                result = conn.execute(sa.delete(c).where(c.c.expires_at < expired_before))
                deleted += int(result.rowcount or 0)
            who = [c.c.analyst == analyst] if analyst is not None else []
            for chunk in _chunks(list(dict.fromkeys(decision_ids or []))):
                result = conn.execute(sa.delete(c).where(c.c.decision_id.in_(chunk), *who))
                deleted += int(result.rowcount or 0)
            for chunk in _chunks(list(dict.fromkeys(ticket_ids or []))):
                of_tickets = sa.select(d.c.id).where(d.c.ticket_id.in_(chunk))
                result = conn.execute(sa.delete(c).where(c.c.decision_id.in_(of_tickets), *who))
                deleted += int(result.rowcount or 0)
        return deleted
