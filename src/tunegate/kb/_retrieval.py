"""The pieces of hybrid retrieval: BM25 over a snapshot, a vector index, reciprocal rank
fusion, and the sentence-similarity + MMR reranker. Pure over arrays where they can be."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from tunegate._optional import require

__all__ = ["Bm25Snapshot", "VectorIndex", "mmr_select", "rrf_fuse", "sentences"]


class Bm25Snapshot:
    """BM25 (``bm25s``, Lucene variant, k1 = 1.5, b = 0.75) over the chunks of one snapshot:
    the versions in force at one time. Document frequencies are those of the snapshot, so a
    search "as of" a date scores as the knowledge base stood then."""

    def __init__(self, terms: Sequence[Sequence[str]]) -> None:
        bm25s = require("bm25s", purpose="BM25 retrieval in the knowledge base")
        self.size = len(terms)
        self._retriever: Any = None
        if any(terms):
            self._retriever = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
            self._retriever.index([list(t) for t in terms], show_progress=False)

    def scores(self, query_terms: Sequence[str]) -> np.ndarray:
        """(size,) BM25 scores of the snapshot's chunks for the query terms (0: no term)."""
        if self._retriever is None or not query_terms:
            return np.zeros(self.size)
        vocab = self._retriever.vocab_dict
        known = [t for t in query_terms if t in vocab]
        if not known:
            return np.zeros(self.size)
        return np.asarray(self._retriever.get_scores(known), dtype=np.float64)


class VectorIndex:
    """Cosine nearest neighbours over unit-norm float32 rows, restricted to allowed rows.

    ``hnsw``: an hnswlib HNSW index (inner product, M = 16, ef_construction = 200, ef =
    max(200, k)) searched with a filter on the allowed rows; when the filtered graph search
    cannot return k rows it falls back to the exact search. ``exact``: a matrix product.
    """

    def __init__(self, vectors: np.ndarray, *, kind: Literal["hnsw", "exact"] = "hnsw") -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.kind = kind
        self.fallbacks = 0
        self._hnsw: Any = None
        if kind == "hnsw" and len(self.vectors):
            hnswlib = require("hnswlib", purpose="the knowledge base's HNSW vector index")
            index = hnswlib.Index(space="ip", dim=int(self.vectors.shape[1]))
            index.init_index(
                max_elements=len(self.vectors), ef_construction=200, M=16, random_seed=0
            )
            index.add_items(self.vectors, np.arange(len(self.vectors)), num_threads=1)
            self._hnsw = index

    def search(
        self, query: np.ndarray, allowed: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, similarities)`` of the ``k`` allowed rows most similar to ``query`` (d,),
        most similar first (ties: lower row first). ``allowed`` is a boolean mask (n,)."""
        n_allowed = int(allowed.sum())
        k = min(k, n_allowed)
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        if self._hnsw is not None:
            self._hnsw.set_ef(max(200, k))
            mask = allowed.tolist()
            try:
                labels, distances = self._hnsw.knn_query(
                    query[None, :].astype(np.float32),
                    k=k,
                    num_threads=1,
                    filter=lambda label: mask[label],
                )
            except RuntimeError:
                self.fallbacks += 1
            else:
                rows = labels[0].astype(np.int64)
                sims = (1.0 - distances[0]).astype(np.float64)
                order = np.lexsort((rows, -np.round(sims, 6)))
                return rows[order], sims[order]
        rows = np.flatnonzero(allowed)
        sims = self.vectors[rows] @ query.astype(np.float32)
        order = np.lexsort((rows, -sims))[:k]
        return rows[order], sims[order].astype(np.float64)


def rrf_fuse(
    rankings: Sequence[Sequence[int]], weights: Sequence[float], *, k: int = 60
) -> dict[int, float]:
    """Weighted reciprocal rank fusion: ``score(c) = sum_r weights[r] / (k + rank_r(c))`` with
    ranks from 1; an item absent from a ranking gets nothing from it."""
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (k + rank)
    return fused


def mmr_select(
    relevance: np.ndarray, similarity: np.ndarray, *, top_k: int, lam: float
) -> tuple[list[int], list[float]]:
    """Maximal marginal relevance: pick ``top_k`` of ``n`` candidates one at a time, each time
    the one maximizing ``lam * relevance[i] - (1 - lam) * max_{j picked} similarity[i, j]``
    (the first pick is the most relevant). Ties go to the lower index (the better fused rank).
    Returns the picked indices and their objective values at selection."""
    n = len(relevance)
    picked: list[int] = []
    values: list[float] = []
    redundancy = np.zeros(n)
    free = np.ones(n, dtype=bool)
    for _ in range(min(top_k, n)):
        objective = lam * relevance - (1.0 - lam) * redundancy
        objective = np.where(free, objective, -np.inf)
        best = int(np.argmax(objective))  # argmax returns the first (lowest) index on ties
        picked.append(best)
        values.append(float(objective[best]))
        free[best] = False
        redundancy = np.maximum(redundancy, similarity[:, best])
    return picked, values


_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def sentences(text: str) -> list[str]:
    """A chunk's sentences: split after ``.``, ``!`` or ``?`` followed by whitespace."""
    parts = [p.strip() for p in _SENTENCE.split(text)]
    return [p for p in parts if p] or [text]
