"""The :class:`Store`: every record tunegate keeps, in SQLite or PostgreSQL.

The facade over one part per concern, each a mixin over :class:`~tunegate.store._core.StoreCore`
(the engine, transactions, retries):

* :mod:`~tunegate.store._bulk` — bulk idempotent record writes and the SQLite fast path;
* :mod:`~tunegate.store._records` — record queries and review status;
* :mod:`~tunegate.store._models` — model versions and aliases;
* :mod:`~tunegate.store._runs` — evaluation suites, attempts and evaluation runs;
* :mod:`~tunegate.store._documents` — typed documents (:mod:`tunegate.documents`);
* :mod:`~tunegate.store._audit` — the audit log;
* :mod:`~tunegate.store._llm_cache` — the LLM response cache (answers, tokens, cost, latency);
* :mod:`~tunegate.store._kb` — knowledge-base document versions, chunks and embeddings;
* :mod:`~tunegate.store._claims` — review-queue leases (a decision to one analyst at a time).
"""

from __future__ import annotations

from tunegate.store._audit import AuditMixin
from tunegate.store._bulk import AddResult, BulkWritesMixin
from tunegate.store._claims import ClaimsMixin, QueueClaim
from tunegate.store._documents import DocumentsMixin
from tunegate.store._kb import KbMixin
from tunegate.store._llm_cache import LlmCacheMixin
from tunegate.store._models import AliasEvent, ModelsMixin
from tunegate.store._records import RecordsMixin
from tunegate.store._runs import RunsMixin

__all__ = ["AddResult", "AliasEvent", "QueueClaim", "Store"]


class Store(
    BulkWritesMixin,
    RecordsMixin,
    ModelsMixin,
    RunsMixin,
    DocumentsMixin,
    AuditMixin,
    LlmCacheMixin,
    KbMixin,
    ClaimsMixin,
):
    """tunegate's database: ``Store("sqlite:///tunegate.db")`` or a PostgreSQL URL.

    Opening a store migrates it to the newest schema (Alembic ``upgrade head``); a database
    at a revision this version does not know raises :class:`~tunegate.errors.StoreError`.
    A store is safe to share between threads; processes each open their own.
    """
