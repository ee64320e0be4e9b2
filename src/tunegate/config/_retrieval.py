"""The knowledge base's retrieval settings: chunking, hybrid search, reranking and query
rewriting (the ``retrieval:`` section; docs/knowledge-base.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from tunegate.config._base import MetaCondition, _Strict


class RerankSettings(_Strict):
    """Reranking of the fused candidates (docs/knowledge-base.md#reranking)."""

    method: Literal["none", "mmr"] = "none"
    """``none``: keep the fused order. ``mmr``: score each candidate by its best sentence's
    cosine similarity to the query (the workflow's encoder, query and sentence embedded
    separately; not a cross-encoder), then pick ``top_k`` by maximal marginal relevance."""
    pool: int = Field(default=20, ge=1, le=1000)
    """How many fused candidates the reranker sees."""
    mmr_lambda: float = Field(default=0.7, ge=0.0, le=1.0)
    """MMR trade-off: 1 is relevance only, 0 is diversity only."""


class RewriteSettings(_Strict):
    """Deterministic query rewriting, applied in this order (docs/knowledge-base.md)."""

    lowercase: bool = False
    """Lowercase the query before it is embedded (BM25 always lowercases)."""
    synonyms: dict[str, list[str]] = Field(default_factory=dict)
    """Phrase -> words appended to the query when the phrase occurs in it as whole words
    (case-insensitive), e.g. ``{"mfa": ["multi-factor", "authentication"]}``."""
    remove_stopwords: bool = False
    """Drop :data:`tunegate.text.STOPWORDS` from the query before it is embedded (BM25 always
    drops them)."""

    @field_validator("synonyms")
    @classmethod
    def _non_empty(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for phrase, alternatives in value.items():
            if not phrase.strip() or not alternatives:
                raise ValueError(
                    f"synonym entry {phrase!r} needs a non-empty phrase and at least one word"
                )
        return value


class RetrievalSettings(_Strict):
    """The knowledge base's chunking and hybrid retrieval (docs/knowledge-base.md)."""

    top_k: int = Field(default=5, ge=1, le=1000)
    """How many chunks a search returns."""
    chunk_size: int = Field(default=80, ge=8, le=5000)
    """Words per chunk (whitespace-separated), within a Markdown section. The encoder embeds
    at most ``model.max_length`` tokens (128: about 80-90 English words), truncating the rest;
    BM25 always sees the whole chunk."""
    chunk_overlap: int = Field(default=16, ge=0)
    """Words shared by consecutive chunks of one section; less than ``chunk_size``."""
    candidates: int = Field(default=50, ge=1, le=10_000)
    """How many chunks each retriever (BM25, vector) contributes to the fusion."""
    bm25_weight: float = Field(default=1.0, ge=0.0)
    """Weight of the BM25 ranking in reciprocal rank fusion."""
    vector_weight: float = Field(default=1.0, ge=0.0)
    """Weight of the embedding ranking in reciprocal rank fusion."""
    rrf_k: int = Field(default=60, ge=1)
    """The constant of reciprocal rank fusion: ``weight / (rrf_k + rank)``."""
    vector_index: Literal["hnsw", "exact"] = "hnsw"
    """``hnsw``: an hnswlib HNSW index (the ``kb`` extra); ``exact``: a numpy matrix product."""
    filters: dict[str, MetaCondition] = Field(default_factory=dict)
    """Metadata field -> condition every searched document version must meet (as slices)."""
    rerank: RerankSettings = Field(default_factory=RerankSettings)
    """Reranking of the fused candidates."""
    rewrite: RewriteSettings = Field(default_factory=RewriteSettings)
    """Query rewriting."""

    @model_validator(mode="after")
    def _overlap_below_size(self) -> RetrievalSettings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be less than chunk_size "
                f"({self.chunk_size})"
            )
        if self.bm25_weight == 0 and self.vector_weight == 0:
            raise ValueError("bm25_weight and vector_weight cannot both be 0")
        return self
