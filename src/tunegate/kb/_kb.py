"""The knowledge base: versioned documents in the store, chunked, indexed, searched as of a time.

``KnowledgeBase(store, settings, encoder=...)`` ingests :class:`KbDocument` versions (each new
version supersedes the previous one at its effective date), chunks and embeds them, and
answers :meth:`KnowledgeBase.search` over the versions in force at the question's time, saying
for every hit whether its version is still current now (docs/knowledge-base.md).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tunegate.config import MetaCondition, ModelSettings, RetrievalSettings, Workflow
from tunegate.errors import InputError, NotFoundError
from tunegate.kb._chunking import chunk_text, chunking_key
from tunegate.kb._documents import KbDocument, load_documents
from tunegate.kb._retrieval import Bm25Snapshot, VectorIndex, mmr_select, rrf_fuse, sentences
from tunegate.kb._rewrite import RewrittenQuery, analyze, rewrite_query
from tunegate.metrics import change_rate
from tunegate.records import utcnow
from tunegate.store._kb import KbChunkRow, KbVersion

if TYPE_CHECKING:
    from tunegate.models import Encoder
    from tunegate.store import Store

__all__ = [
    "KbChangeRate",
    "KbIngestReport",
    "KbSearchResult",
    "KnowledgeBase",
    "MonthChange",
    "SearchHit",
    "encoder_key",
]


def encoder_key(encoder: Encoder) -> str:
    """The name embeddings are stored under: folder name, backend, and a hash of the path,
    backend, precision and max_length (a different encoder never reuses another's vectors)."""
    precision = getattr(encoder, "precision", None) or getattr(encoder, "quantize", None)
    ident = f"{encoder.path}|{encoder.backend}|{precision}|{encoder.max_length}"
    digest = hashlib.sha256(ident.encode("utf-8")).hexdigest()[:12]
    return f"{Path(encoder.path).name[:120]}:{encoder.backend}:{digest}"


def _utc(value: datetime | date | None) -> datetime:
    if value is None:
        return utcnow()
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class KbIngestReport:
    """What an ingest did."""

    versions_added: int
    versions_existing: int
    chunks_added: int
    chunks_embedded: int
    documents: int
    """Distinct document ids in the input."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SearchHit:
    """One retrieved chunk and why it ranked where it did."""

    rank: int
    doc_id: str
    version: str
    title: str
    chunk_id: int
    position: int
    """The chunk's index within its version."""
    heading: str
    text: str
    score: float
    """The ranking score: the MMR objective when reranked, else the fused score."""
    fused_score: float
    """Weighted reciprocal rank fusion of the two rankings."""
    bm25_score: float | None
    bm25_rank: int | None
    """Rank among the BM25 candidates (1 = best); ``None``: not a BM25 candidate."""
    vector_score: float | None
    """Cosine similarity of the query and chunk embeddings (when a vector candidate)."""
    vector_rank: int | None
    rerank_relevance: float | None
    """The reranker's relevance: best sentence's cosine similarity to the query."""
    effective_from: datetime
    effective_until: datetime | None
    current_now: bool
    """Whether this version is in force now."""
    stale: bool
    """This version was in force at ``as_of`` but has been superseded or withdrawn since."""
    current_version: str | None
    """The version of the document in force now (``None``: withdrawn)."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["effective_from"] = self.effective_from.isoformat()
        out["effective_until"] = (
            None if self.effective_until is None else self.effective_until.isoformat()
        )
        return out


@dataclass(frozen=True)
class KbSearchResult:
    """A search: the rewritten query, the time it was asked at, the hits."""

    query: RewrittenQuery
    as_of: datetime
    now: datetime
    hits: list[SearchHit]
    searched_chunks: int
    """Chunks of versions in force at ``as_of`` that met the filters."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query.original,
            "rewritten": self.query.text,
            "terms": self.query.terms,
            "as_of": self.as_of.isoformat(),
            "now": self.now.isoformat(),
            "searched_chunks": self.searched_chunks,
            "hits": [h.to_dict() for h in self.hits],
        }


@dataclass(frozen=True)
class MonthChange:
    """One month of :class:`KbChangeRate`."""

    month: str
    """``YYYY-MM``."""
    documents: int
    """Documents in force at the start of the month."""
    changed: int
    """Of those, documents with a new version taking effect during the month."""


@dataclass(frozen=True)
class KbChangeRate:
    """The share of documents given a new version per month over a window
    (:func:`tunegate.metrics.change_rate`)."""

    rate: float
    months: list[MonthChange] = field(default_factory=list)


@dataclass
class _Loaded:
    fingerprint: tuple[int, int, int]
    versions: dict[tuple[str, str], KbVersion]
    by_doc: dict[str, list[KbVersion]]
    chunks: list[KbChunkRow]
    terms: list[list[str]]
    rows: np.ndarray  # chunk index -> row of the vector matrix (-1: no embedding)
    index: VectorIndex


class KnowledgeBase:
    """Versioned documents with hybrid retrieval (BM25 + embeddings, fused by RRF).

    ``settings`` is the workflow's ``retrieval:`` section; ``encoder`` embeds chunks and
    queries (default: :func:`tunegate.models.get_encoder` of ``model``). The index is built
    in memory from the store's chunks and embeddings on first search and rebuilt when the
    store's knowledge base changes.
    """

    def __init__(
        self,
        store: Store,
        settings: RetrievalSettings | None = None,
        *,
        encoder: Encoder | None = None,
        model: ModelSettings | None = None,
    ) -> None:
        self.store = store
        self.settings = settings or RetrievalSettings()
        self._encoder = encoder
        self._model = model
        self.chunking = chunking_key(self.settings.chunk_size, self.settings.chunk_overlap)
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None
        self._bm25: OrderedDict[tuple[int, ...], Bm25Snapshot] = OrderedDict()

    @classmethod
    def from_workflow(
        cls, store: Store, workflow: Workflow, *, encoder: Encoder | None = None
    ) -> KnowledgeBase:
        """The knowledge base with the workflow's ``retrieval:`` settings and encoder."""
        return cls(store, workflow.retrieval, encoder=encoder, model=workflow.model)

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            from tunegate.models import get_encoder

            self._encoder = get_encoder(self._model)
        return self._encoder

    # -- writing -----------------------------------------------------------------------------

    def ingest(self, documents: Sequence[KbDocument]) -> KbIngestReport:
        """Store the versions (one transaction; a new version supersedes the document's
        previous one at its effective date), then chunk and embed what is new."""
        if not documents:
            raise InputError("no documents to ingest")
        put = self.store.put_kb_versions(documents)
        chunks, embedded = self.sync()
        return KbIngestReport(
            versions_added=len(put.added),
            versions_existing=put.existing,
            chunks_added=chunks,
            chunks_embedded=embedded,
            documents=len({d.doc_id for d in documents}),
        )

    def ingest_path(self, path: str | Path) -> KbIngestReport:
        """:meth:`ingest` of a folder of Markdown files or a JSONL file."""
        return self.ingest(load_documents(path))

    def sync(self) -> tuple[int, int]:
        """Chunk every version not yet chunked under this chunking and embed every chunk not
        yet embedded by this encoder. Returns (chunks added, chunks embedded)."""
        size, overlap = self.settings.chunk_size, self.settings.chunk_overlap
        rows: list[tuple[str, str, int, str, str]] = []
        for v in self.store.kb_unchunked(self.chunking):
            for c in chunk_text(v.text, size=size, overlap=overlap):
                rows.append((v.doc_id, v.version, c.position, c.heading, c.text))
        added = self.store.put_kb_chunks(self.chunking, rows)
        todo = self.store.kb_unembedded(self.chunking, encoder_key(self.encoder))
        embedded = 0
        if todo:
            versions = {(v.doc_id, v.version): v for v in self.store.kb_versions()}
            texts = [_passage(versions[(c.doc_id, c.version)], c) for c in todo]
            vectors = self.encoder.embed(texts, progress=len(texts) > 256)
            embedded = self.store.put_kb_embeddings(
                encoder_key(self.encoder), [c.id for c in todo], vectors
            )
        return added, embedded

    # -- versions ----------------------------------------------------------------------------

    def versions(self, doc_id: str) -> list[KbVersion]:
        """Every stored version of ``doc_id``, oldest effective first."""
        found = self.store.kb_versions(doc_id)
        if not found:
            raise NotFoundError(f"no knowledge-base document {doc_id!r}; see `tunegate kb ingest`")
        return found

    def current_version(self, doc_id: str, at: datetime | date | None = None) -> KbVersion | None:
        """The version of ``doc_id`` in force at ``at`` (default now); ``None`` when none was
        (before its first version, or after a withdrawal)."""
        moment = _utc(at)
        for v in self.versions(doc_id):
            if v.in_force_at(moment):
                return v
        return None

    def change_rate(self, *, start: date | datetime, months: int) -> KbChangeRate:
        """The share of documents given a new version per month over ``months`` calendar
        months from the month of ``start`` (:func:`tunegate.metrics.change_rate`)."""
        if months < 1:
            raise InputError(f"months must be >= 1, got {months}")
        by_doc: dict[str, list[KbVersion]] = {}
        for v in self.store.kb_versions():
            by_doc.setdefault(v.doc_id, []).append(v)
        year, month = start.year, start.month
        rows: list[MonthChange] = []
        for _ in range(months):
            begin = datetime(year, month, 1, tzinfo=UTC)
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
            end = datetime(year, month, 1, tzinfo=UTC)
            in_force = [d for d, vs in by_doc.items() if any(v.in_force_at(begin) for v in vs)]
            changed = [  # a new version: not the document's first (by_doc is by date)
                d for d in in_force if any(begin <= v.effective_from < end for v in by_doc[d][1:])
            ]
            rows.append(MonthChange(f"{begin:%Y-%m}", len(in_force), len(changed)))
        rate = change_rate([r.changed for r in rows], [r.documents for r in rows])
        return KbChangeRate(rate=rate, months=rows)

    # -- search ------------------------------------------------------------------------------

    def _load(self) -> _Loaded:
        fingerprint = self.store.kb_fingerprint()
        with self._lock:
            if self._loaded is not None and self._loaded.fingerprint == fingerprint:
                return self._loaded
            versions = {(v.doc_id, v.version): v for v in self.store.kb_versions()}
            by_doc: dict[str, list[KbVersion]] = {}
            for v in versions.values():
                by_doc.setdefault(v.doc_id, []).append(v)
            chunks = self.store.kb_chunks(self.chunking)
            ids, vectors = self.store.kb_embeddings(self.chunking, encoder_key(self.encoder))
            row_of = {int(i): r for r, i in enumerate(ids)}
            rows = np.asarray([row_of.get(c.id, -1) for c in chunks], dtype=np.int64)
            self._loaded = _Loaded(
                fingerprint=fingerprint,
                versions=versions,
                by_doc=by_doc,
                chunks=chunks,
                terms=[analyze(_passage(versions[(c.doc_id, c.version)], c)) for c in chunks],
                rows=rows,
                index=VectorIndex(vectors, kind=self.settings.vector_index),
            )
            self._bm25.clear()
            return self._loaded

    def _bm25_for(self, loaded: _Loaded, snapshot: np.ndarray) -> Bm25Snapshot:
        key = tuple(int(i) for i in snapshot)
        with self._lock:
            cached = self._bm25.get(key)
            if cached is not None:
                self._bm25.move_to_end(key)
                return cached
        built = Bm25Snapshot([loaded.terms[i] for i in snapshot])
        with self._lock:
            self._bm25[key] = built
            while len(self._bm25) > 8:
                self._bm25.popitem(last=False)
        return built

    def search(
        self,
        query: str,
        *,
        as_of: datetime | date | None = None,
        top_k: int | None = None,
        filters: Mapping[str, MetaCondition] | None = None,
        now: datetime | None = None,
        include_superseded: bool = False,
    ) -> KbSearchResult:
        """The ``top_k`` chunks for ``query`` among the versions in force at ``as_of``
        (default now) whose metadata meet ``filters`` (default: the settings' filters).
        ``include_superseded``: also search the versions that took effect before ``as_of``
        but had ended by then (superseded or withdrawn): a retrieval without freshness.

        Steps: rewrite the query; BM25 over the snapshot at ``as_of`` and cosine similarity
        in the vector index, each giving its ``candidates`` best allowed chunks; weighted
        reciprocal rank fusion; optional MMR reranking; each hit flagged current or stale
        relative to ``now`` (default: the current time).
        """
        s = self.settings
        if not query.strip():
            raise InputError("the query is empty")
        k = s.top_k if top_k is None else top_k
        if k < 1:
            raise InputError(f"top_k must be >= 1, got {k}")
        moment, current = _utc(as_of), _utc(now)
        conditions = dict(s.filters if filters is None else filters)
        rewritten = rewrite_query(query, s.rewrite)
        loaded = self._load()
        n = len(loaded.chunks)
        in_force = np.zeros(n, dtype=bool)
        allowed = np.zeros(n, dtype=bool)
        for i, c in enumerate(loaded.chunks):
            v = loaded.versions[(c.doc_id, c.version)]
            if v.in_force_at(moment) or (include_superseded and v.effective_from <= moment):
                in_force[i] = True
                allowed[i] = all(
                    cond.holds(v.metadata.get(name)) for name, cond in conditions.items()
                )
        snapshot = np.flatnonzero(in_force)
        searched = int(allowed.sum())
        if searched == 0:
            return KbSearchResult(rewritten, moment, current, [], 0)

        # BM25 over the snapshot, restricted to the allowed chunks.
        bm25_scores: dict[int, float] = {}
        bm25_rank: list[int] = []
        if s.bm25_weight > 0:
            scores = self._bm25_for(loaded, snapshot).scores(rewritten.terms)
            keep = [
                (float(sc), int(i))
                for sc, i in zip(scores, snapshot, strict=True)
                if allowed[i] and sc > 0
            ]
            keep.sort(key=lambda t: (-t[0], loaded.chunks[t[1]].id))
            bm25_rank = [i for _, i in keep[: s.candidates]]
            bm25_scores = {i: sc for sc, i in keep[: s.candidates]}

        # Cosine similarity in the vector index, restricted to allowed, embedded chunks.
        vector_scores: dict[int, float] = {}
        vector_rank: list[int] = []
        query_vector: np.ndarray | None = None
        if s.vector_weight > 0 and len(loaded.index.vectors):
            query_vector = self.encoder.embed([rewritten.text])[0]
            row_allowed = np.zeros(len(loaded.index.vectors), dtype=bool)
            chunk_of_row = np.full(len(loaded.index.vectors), -1, dtype=np.int64)
            has = loaded.rows >= 0
            row_allowed[loaded.rows[allowed & has]] = True
            chunk_of_row[loaded.rows[has]] = np.flatnonzero(has)
            rows, sims = loaded.index.search(query_vector, row_allowed, s.candidates)
            vector_rank = [int(chunk_of_row[r]) for r in rows]
            vector_scores = {
                int(chunk_of_row[r]): float(x) for r, x in zip(rows, sims, strict=True)
            }

        fused = rrf_fuse([bm25_rank, vector_rank], [s.bm25_weight, s.vector_weight], k=s.rrf_k)
        order = sorted(fused, key=lambda i: (-fused[i], loaded.chunks[i].id))
        relevance: dict[int, float] = {}
        final_scores: dict[int, float] = {i: fused[i] for i in order}
        if s.rerank.method == "mmr" and order:
            pool = order[: s.rerank.pool]
            picked, values, rel = self._mmr(loaded, pool, rewritten, query_vector, k)
            order = [pool[p] for p in picked]
            final_scores = {pool[p]: v for p, v in zip(picked, values, strict=True)}
            relevance = {pool[p]: float(rel[p]) for p in range(len(pool))}
        else:
            order = order[:k]

        b_pos = {c: r for r, c in enumerate(bm25_rank, start=1)}
        v_pos = {c: r for r, c in enumerate(vector_rank, start=1)}
        hits = []
        for rank, i in enumerate(order, start=1):
            c = loaded.chunks[i]
            v = loaded.versions[(c.doc_id, c.version)]
            now_version = next((x for x in loaded.by_doc[c.doc_id] if x.in_force_at(current)), None)
            until = v.effective_until
            hits.append(
                SearchHit(
                    rank=rank,
                    doc_id=c.doc_id,
                    version=c.version,
                    title=v.title,
                    chunk_id=c.id,
                    position=c.position,
                    heading=c.heading,
                    text=c.text,
                    score=final_scores[i],
                    fused_score=fused[i],
                    bm25_score=bm25_scores.get(i),
                    bm25_rank=b_pos.get(i),
                    vector_score=vector_scores.get(i),
                    vector_rank=v_pos.get(i),
                    rerank_relevance=relevance.get(i),
                    effective_from=v.effective_from,
                    effective_until=until,
                    current_now=v.in_force_at(current),
                    stale=until is not None and until <= current,
                    current_version=None if now_version is None else now_version.version,
                )
            )
        return KbSearchResult(rewritten, moment, current, hits, searched)

    def _mmr(
        self,
        loaded: _Loaded,
        pool: list[int],
        query: RewrittenQuery,
        query_vector: np.ndarray | None,
        k: int,
    ) -> tuple[list[int], list[float], np.ndarray]:
        encoder = self.encoder
        qv = encoder.embed([query.text])[0] if query_vector is None else query_vector
        parts = [sentences(loaded.chunks[i].text) for i in pool]
        flat = [p for ps in parts for p in ps]
        sent = encoder.embed(flat)
        rel = np.empty(len(pool))
        start = 0
        for j, ps in enumerate(parts):
            rel[j] = float(np.max(sent[start : start + len(ps)] @ qv))
            start += len(ps)
        rows = loaded.rows[pool]
        if np.all(rows >= 0):
            chunk_vectors = loaded.index.vectors[rows]
        else:
            chunk_vectors = encoder.embed(
                [
                    _passage(
                        loaded.versions[(loaded.chunks[i].doc_id, loaded.chunks[i].version)],
                        loaded.chunks[i],
                    )
                    for i in pool
                ]
            )
        similarity = chunk_vectors @ chunk_vectors.T
        picked, values = mmr_select(rel, similarity, top_k=k, lam=self.settings.rerank.mmr_lambda)
        return picked, values, rel


def _passage(version: KbVersion, chunk: KbChunkRow) -> str:
    """What is embedded and BM25-indexed for a chunk: title, heading path, text."""
    head = f"{version.title} > {chunk.heading}" if chunk.heading else version.title
    return f"{head}\n{chunk.text}"
