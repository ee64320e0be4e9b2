"""Reviewing imported examples: list the pending ones, mark them reviewed or rejected.

Fine-tuning trains only on reviewed data (:func:`tunegate.train.build_dataset` refuses pending
examples). Examples imported with ``tunegate ingest examples`` are ``pending`` unless their rows
carry ``review_status: reviewed`` (and a ``reviewer``); these functions are what
``tunegate review list`` and ``tunegate review mark`` call.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from tunegate.errors import InputError
from tunegate.records import Example, ReviewStatus

if TYPE_CHECKING:
    from tunegate.store import Store

__all__ = ["mark_examples", "pending_examples"]

_SHOWN_IDS = 10


def pending_examples(store: Store, *, limit: int | None = None) -> list[Example]:
    """Examples waiting for review (oldest first), at most ``limit`` of them."""
    if limit is not None and limit < 1:
        raise InputError(f"limit must be >= 1, got {limit}")
    pending = store.examples(review_status=ReviewStatus.PENDING.value)
    return pending if limit is None else pending[:limit]


def mark_examples(
    store: Store,
    status: ReviewStatus | str,
    *,
    reviewer: str,
    ids: Iterable[str] | None = None,
    all_pending: bool = False,
) -> int:
    """Set the review status of examples: the given ``ids`` or, with ``all_pending``, every
    pending example. Returns how many examples were marked.

    Raises :class:`InputError` for a blank reviewer, an unknown status, both or neither of
    ``ids`` and ``all_pending``, or ids that are not stored examples (all of them are checked
    before anything is written).
    """
    if not reviewer or not reviewer.strip():
        raise InputError("a review needs a reviewer: give the name of whoever reviewed the data")
    try:
        value = ReviewStatus(status)
    except ValueError:
        allowed = [v.value for v in ReviewStatus]
        raise InputError(f"review status {status!r} is not one of {allowed}") from None
    wanted = None if ids is None else [i.strip() for i in ids if i and i.strip()]
    if all_pending == (wanted is not None):
        raise InputError("mark either the examples given by id or all pending examples, not both")
    if wanted is None:
        chosen = [e.id for e in store.examples(review_status=ReviewStatus.PENDING.value)]
    else:
        if not wanted:
            raise InputError("no example ids given")
        known = {e.id for e in store.examples()}
        unknown = [i for i in dict.fromkeys(wanted) if i not in known]
        if unknown:
            more = f" (and {len(unknown) - _SHOWN_IDS} more)" if len(unknown) > _SHOWN_IDS else ""
            raise InputError(
                f"{len(unknown)} ids are not stored examples: {unknown[:_SHOWN_IDS]}{more}; "
                f"`tunegate review list` shows the pending ones"
            )
        chosen = list(dict.fromkeys(wanted))
    if not chosen:
        return 0
    return store.set_review_status("example", chosen, value, reviewer=reviewer.strip())
