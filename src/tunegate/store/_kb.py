"""The knowledge base's tables: document versions with effective dates, chunks, embeddings.

A version is in force from ``effective_from`` until the earliest of the end its source gave
(``effective_to``, a withdrawal) and the start of the document's next version
(``superseded_at``, recomputed whenever a version of the document is written). The retrieval
itself lives in :mod:`tunegate.kb`; this part only reads and writes rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import sqlalchemy as sa

from tunegate.errors import InputError
from tunegate.records import utcnow
from tunegate.store import _schema as s
from tunegate.store._core import StoreCore, _chunks

__all__ = ["KbChunkRow", "KbMixin", "KbPutResult", "KbVersion", "KbVersionLike"]


class KbVersionLike(Protocol):
    """What the store needs of a document version (:class:`tunegate.kb.KbDocument` has it)."""

    @property
    def doc_id(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def effective_from(self) -> datetime: ...
    @property
    def effective_to(self) -> datetime | None: ...
    @property
    def metadata(self) -> dict[str, Any]: ...
    @property
    def source(self) -> str: ...
    @property
    def content_hash(self) -> str: ...


@dataclass(frozen=True)
class KbVersion:
    """One stored version of a knowledge-base document."""

    doc_id: str
    version: str
    title: str
    text: str
    effective_from: datetime
    effective_to: datetime | None
    """The end its source gave (a withdrawal), if any."""
    superseded_at: datetime | None
    """When the document's next version took effect, if there is one."""
    metadata: dict[str, Any]
    content_hash: str
    source: str
    ingested_at: datetime

    @property
    def effective_until(self) -> datetime | None:
        """The end of this version's time in force (``None``: still in force)."""
        ends = [t for t in (self.effective_to, self.superseded_at) if t is not None]
        return min(ends) if ends else None

    def in_force_at(self, at: datetime) -> bool:
        """``effective_from <= at < effective_until``."""
        until = self.effective_until
        return self.effective_from <= at and (until is None or at < until)


@dataclass(frozen=True)
class KbChunkRow:
    """One stored chunk of a version under one chunking."""

    id: int
    doc_id: str
    version: str
    chunking: str
    position: int
    heading: str
    text: str


@dataclass
class KbPutResult:
    """What writing versions did: the new ``(doc_id, version)`` pairs, and how many were
    already stored with the same content."""

    added: list[tuple[str, str]] = field(default_factory=list)
    existing: int = 0


def _version(r: Any) -> KbVersion:
    return KbVersion(
        doc_id=r["doc_id"],
        version=r["version"],
        title=r["title"],
        text=r["text"],
        effective_from=r["effective_from"],
        effective_to=r["effective_to"],
        superseded_at=r["superseded_at"],
        metadata=dict(r["metadata"]),
        content_hash=r["content_hash"],
        source=r["source"],
        ingested_at=r["ingested_at"],
    )


class KbMixin(StoreCore):
    """Read and write knowledge-base versions, chunks and embeddings."""

    def put_kb_versions(self, docs: Sequence[KbVersionLike]) -> KbPutResult:
        """Store document versions in one transaction and recompute ``superseded_at`` of every
        document touched. A stored ``(doc_id, version)`` with the same content counts as
        existing; with other content, or a second version of a document taking effect at the
        same instant, it is an :class:`~tunegate.errors.InputError` and nothing is written."""
        seen: dict[tuple[str, str], KbVersionLike] = {}
        for d in docs:
            key = (d.doc_id, d.version)
            if key in seen and seen[key].content_hash != d.content_hash:
                raise InputError(
                    f"document {d.doc_id!r} version {d.version!r} is given twice with different "
                    f"content ({seen[key].source} and {d.source}); give each version once"
                )
            seen[key] = d
        t = s.kb_versions
        now = utcnow()

        def write() -> KbPutResult:
            result = KbPutResult()
            doc_ids = sorted({d for d, _ in seen})
            with self._write() as conn:
                stored: dict[tuple[str, str], tuple[str, datetime]] = {}
                for chunk in _chunks(doc_ids):
                    for r in conn.execute(
                        sa.select(
                            t.c.doc_id, t.c.version, t.c.content_hash, t.c.effective_from
                        ).where(t.c.doc_id.in_(chunk))
                    ):
                        stored[(r[0], r[1])] = (r[2], r[3])
                rows = []
                for key in sorted(seen):
                    d = seen[key]
                    if key in stored:
                        if stored[key][0] != d.content_hash:
                            raise InputError(
                                f"document {d.doc_id!r} version {d.version!r} is already stored "
                                f"with other content ({d.source}); a changed document needs a "
                                f"new version"
                            )
                        result.existing += 1
                        continue
                    stored[key] = (d.content_hash, d.effective_from)
                    result.added.append(key)
                    rows.append(
                        {
                            "doc_id": d.doc_id,
                            "version": d.version,
                            "title": d.title,
                            "text": d.text,
                            "effective_from": d.effective_from,
                            "effective_to": d.effective_to,
                            "superseded_at": None,
                            "metadata": d.metadata,
                            "content_hash": d.content_hash,
                            "source": d.source,
                            "ingested_at": now,
                        }
                    )
                starts: dict[tuple[str, datetime], str] = {}
                for (doc_id, version), (_, start) in sorted(stored.items()):
                    other = starts.setdefault((doc_id, start), version)
                    if other != version:
                        raise InputError(
                            f"document {doc_id!r} versions {other!r} and {version!r} both take "
                            f"effect at {start.isoformat()}; give them different effective dates"
                        )
                for chunk in _chunks(rows):
                    conn.execute(sa.insert(t), list(chunk))
                touched = sorted({d for d, _ in result.added})
                for doc_id in touched:
                    ordered = sorted(
                        ((start, v) for (d, v), (_, start) in stored.items() if d == doc_id)
                    )
                    for (_, version), nxt in zip(ordered, [*ordered[1:], None], strict=True):
                        conn.execute(
                            sa.update(t)
                            .where(t.c.doc_id == doc_id, t.c.version == version)
                            .values(superseded_at=None if nxt is None else nxt[0])
                        )
            return result

        out: KbPutResult = self._retrying(write)
        return out

    def kb_versions(self, doc_id: str | None = None) -> list[KbVersion]:
        """Stored versions (of one document, or all), by document and then effective date."""
        t = s.kb_versions
        query = sa.select(t).order_by(t.c.doc_id, t.c.effective_from)
        if doc_id is not None:
            query = query.where(t.c.doc_id == doc_id)
        with self._read() as conn:
            return [_version(r) for r in conn.execute(query).mappings()]

    def kb_version_at(self, doc_id: str, at: datetime) -> KbVersion | None:
        """The version of ``doc_id`` in force at ``at`` (``None``: none was)."""
        for v in self.kb_versions(doc_id):
            if v.in_force_at(at):
                return v
        return None

    def kb_unchunked(self, chunking: str) -> list[KbVersion]:
        """Versions that have no chunks under ``chunking`` yet."""
        v, c = s.kb_versions, s.kb_chunks
        chunked = (
            sa.select(c.c.id)
            .where(c.c.doc_id == v.c.doc_id, c.c.version == v.c.version, c.c.chunking == chunking)
            .exists()
        )
        query = sa.select(v).where(~chunked).order_by(v.c.doc_id, v.c.effective_from)
        with self._read() as conn:
            return [_version(r) for r in conn.execute(query).mappings()]

    def put_kb_chunks(self, chunking: str, rows: Sequence[tuple[str, str, int, str, str]]) -> int:
        """Store chunks ``(doc_id, version, position, heading, text)`` under ``chunking``;
        a chunk already stored is left as it is. Returns how many were written."""
        if not rows:
            return 0
        values = [
            {
                "doc_id": d,
                "version": v,
                "chunking": chunking,
                "position": p,
                "heading": h,
                "text": text,
            }
            for d, v, p, h, text in rows
        ]

        def write() -> int:
            written = 0
            with self._write() as conn:
                for chunk in _chunks(values):
                    result = conn.execute(
                        self._insert(s.kb_chunks)
                        .on_conflict_do_nothing(
                            index_elements=["doc_id", "version", "chunking", "position"]
                        )
                        .returning(s.kb_chunks.c.id),
                        list(chunk),
                    )
                    written += len(result.all())  # rowcount is -1 for executemany on psycopg
            return written

        n: int = self._retrying(write)
        return n

    def kb_chunks(self, chunking: str) -> list[KbChunkRow]:
        """Every chunk under ``chunking``, by id."""
        c = s.kb_chunks
        query = sa.select(c).where(c.c.chunking == chunking).order_by(c.c.id)
        with self._read() as conn:
            return [KbChunkRow(**dict(r)) for r in conn.execute(query).mappings()]

    def kb_unembedded(self, chunking: str, encoder: str) -> list[KbChunkRow]:
        """Chunks under ``chunking`` without an embedding by ``encoder``."""
        c, e = s.kb_chunks, s.kb_embeddings
        has = sa.select(e.c.chunk_id).where(e.c.chunk_id == c.c.id, e.c.encoder == encoder).exists()
        query = sa.select(c).where(c.c.chunking == chunking, ~has).order_by(c.c.id)
        with self._read() as conn:
            return [KbChunkRow(**dict(r)) for r in conn.execute(query).mappings()]

    def put_kb_embeddings(self, encoder: str, ids: Sequence[int], vectors: np.ndarray) -> int:
        """Store one float32 embedding per chunk id (rows of ``vectors``, shape (n, d))."""
        matrix = np.ascontiguousarray(vectors, dtype="<f4")
        if matrix.ndim != 2 or matrix.shape[0] != len(ids):
            raise InputError(
                f"expected one embedding per chunk ({len(ids)}), got an array of shape "
                f"{matrix.shape}"
            )
        values = [
            {
                "chunk_id": int(i),
                "encoder": encoder,
                "dim": matrix.shape[1],
                "vector": row.tobytes(),
            }
            for i, row in zip(ids, matrix, strict=True)
        ]

        def write() -> int:
            written = 0
            with self._write() as conn:
                for chunk in _chunks(values):
                    result = conn.execute(
                        self._insert(s.kb_embeddings)
                        .on_conflict_do_nothing(index_elements=["chunk_id", "encoder"])
                        .returning(s.kb_embeddings.c.chunk_id),
                        list(chunk),
                    )
                    written += len(result.all())
            return written

        n: int = self._retrying(write)
        return n

    def kb_embeddings(self, chunking: str, encoder: str) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, vectors)``: the chunk ids (n,) and their float32 embeddings (n, d) by
        ``encoder``, for the chunks under ``chunking``, by id."""
        c, e = s.kb_chunks, s.kb_embeddings
        query = (
            sa.select(e.c.chunk_id, e.c.dim, e.c.vector)
            .join(c, c.c.id == e.c.chunk_id)
            .where(c.c.chunking == chunking, e.c.encoder == encoder)
            .order_by(e.c.chunk_id)
        )
        ids: list[int] = []
        rows: list[np.ndarray] = []
        with self._read() as conn:
            for chunk_id, dim, blob in conn.execute(query):
                ids.append(int(chunk_id))
                rows.append(np.frombuffer(bytes(blob), dtype="<f4", count=int(dim)))
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        return np.asarray(ids, dtype=np.int64), np.vstack(rows).astype(np.float32)

    def kb_fingerprint(self) -> tuple[int, int, int]:
        """(versions, chunks, embeddings) row counts: changes whenever the knowledge base does
        (rows are only ever added; ``superseded_at`` changes only with a new version)."""
        with self._read() as conn:
            return (
                int(
                    conn.execute(sa.select(sa.func.count()).select_from(s.kb_versions)).scalar_one()
                ),
                int(conn.execute(sa.select(sa.func.count()).select_from(s.kb_chunks)).scalar_one()),
                int(
                    conn.execute(
                        sa.select(sa.func.count()).select_from(s.kb_embeddings)
                    ).scalar_one()
                ),
            )
