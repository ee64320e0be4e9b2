"""A knowledge base with time in it: versioned documents with effective dates, chunked and
searched by hybrid retrieval (BM25 + embeddings, reciprocal rank fusion) as of a time.

See docs/knowledge-base.md.
"""

from __future__ import annotations

from tunegate.kb._chunking import TextChunk, chunk_text, chunking_key
from tunegate.kb._documents import (
    FILE_KEYS,
    KbDocument,
    load_documents,
    load_jsonl,
    load_markdown_folder,
)
from tunegate.kb._kb import (
    KbChangeRate,
    KbIngestReport,
    KbSearchResult,
    KnowledgeBase,
    MonthChange,
    SearchHit,
    encoder_key,
)
from tunegate.kb._retrieval import Bm25Snapshot, VectorIndex, mmr_select, rrf_fuse
from tunegate.kb._rewrite import RewrittenQuery, analyze, rewrite_query
from tunegate.store._kb import KbVersion

__all__ = [
    "FILE_KEYS",
    "Bm25Snapshot",
    "KbChangeRate",
    "KbDocument",
    "KbIngestReport",
    "KbSearchResult",
    "KbVersion",
    "KnowledgeBase",
    "MonthChange",
    "RewrittenQuery",
    "SearchHit",
    "TextChunk",
    "VectorIndex",
    "analyze",
    "chunk_text",
    "chunking_key",
    "encoder_key",
    "load_documents",
    "load_jsonl",
    "load_markdown_folder",
    "mmr_select",
    "rewrite_query",
    "rrf_fuse",
]
