"""The LLM response cache: every Chat Completions answer an ``llm`` classifier received, keyed
by (model, prompt hash, text hash, request parameters), with its tokens, cost and latency.

Re-running an evaluation reads its answers from here (no request, no cost, the same numbers);
a decision's usage is the rows of its (model, prompt hash, text) (:meth:`llm_usage`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tunegate.records import utcnow
from tunegate.store import _schema as s
from tunegate.store._core import StoreCore, _chunks

__all__ = ["LlmCacheMixin", "LlmResponseRow", "LlmUsage", "llm_cache_key", "text_hash"]


def text_hash(text: str) -> str:
    """SHA-256 of a text (UTF-8), the text's part of a cache key."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def llm_cache_key(model: str, prompt_hash: str, text: str, params: Mapping[str, Any]) -> str:
    """The cache key of one request: SHA-256 over (model, prompt hash, text hash, the request
    parameters other than the messages, as canonical JSON)."""
    payload = json.dumps(
        {"model": model, "prompt": prompt_hash, "text": text_hash(text), "params": params},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class LlmResponseRow:
    """One cached answer: the key, what it answered, and what it cost."""

    key: str
    model: str
    prompt_hash: str
    text_hash: str
    params: dict[str, Any]
    response: dict[str, Any]
    """:meth:`tunegate.llm.ChatResult.to_json` of the answer."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    cost: float = 0.0


@dataclass(frozen=True)
class LlmUsage:
    """Tokens, cost and latency summed over requests (e.g. the k samples of one decision)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency_ms: float = 0.0

    def __add__(self, other: LlmUsage) -> LlmUsage:
        return LlmUsage(
            self.requests + other.requests,
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cost + other.cost,
            self.latency_ms + other.latency_ms,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost": self.cost,
            "latency_ms": self.latency_ms,
        }


class LlmCacheMixin(StoreCore):
    """Read and write the LLM response cache."""

    def llm_responses(self, keys: Sequence[str]) -> dict[str, LlmResponseRow]:
        """The cached answers among ``keys`` (key -> row); missing keys are absent."""
        t = s.llm_responses
        found: dict[str, LlmResponseRow] = {}
        with self._read() as conn:
            for chunk in _chunks(list(dict.fromkeys(keys))):
                for r in conn.execute(sa.select(t).where(t.c.key.in_(chunk))).mappings():
                    found[r["key"]] = LlmResponseRow(
                        key=r["key"],
                        model=r["model"],
                        prompt_hash=r["prompt_hash"],
                        text_hash=r["text_hash"],
                        params=dict(r["params"]),
                        response=dict(r["response"]),
                        prompt_tokens=int(r["prompt_tokens"]),
                        completion_tokens=int(r["completion_tokens"]),
                        latency_ms=float(r["latency_ms"]),
                        cost=float(r["cost"]),
                    )
        return found

    def put_llm_responses(self, rows: Sequence[LlmResponseRow]) -> int:
        """Cache answers; a key already cached keeps its first answer. Returns rows written."""
        if not rows:
            return 0
        now = utcnow()
        values = [
            {
                "key": r.key,
                "model": r.model,
                "prompt_hash": r.prompt_hash,
                "text_hash": r.text_hash,
                "params": r.params,
                "response": r.response,
                "prompt_tokens": r.prompt_tokens,
                "completion_tokens": r.completion_tokens,
                "latency_ms": r.latency_ms,
                "cost": r.cost,
                "created_at": now,
            }
            for r in rows
        ]

        def write() -> int:
            written = 0
            with self._write() as conn:
                for chunk in _chunks(values):
                    result = conn.execute(
                        self._insert(s.llm_responses).on_conflict_do_nothing(
                            index_elements=["key"]
                        ),
                        list(chunk),
                    )
                    written += max(int(result.rowcount or 0), 0)
            return written

        written: int = self._retrying(write)
        return written

    def llm_usage(self, model: str, prompt_hash: str, text: str) -> LlmUsage:
        """Tokens, cost and latency of every cached request for one text under one model and
        prompt: the usage of the decisions made on it (k rows when sampled k times)."""
        t = s.llm_responses
        query = sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(t.c.prompt_tokens), 0),
            sa.func.coalesce(sa.func.sum(t.c.completion_tokens), 0),
            sa.func.coalesce(sa.func.sum(t.c.cost), 0.0),
            sa.func.coalesce(sa.func.sum(t.c.latency_ms), 0.0),
        ).where(
            t.c.model == model, t.c.prompt_hash == prompt_hash, t.c.text_hash == text_hash(text)
        )
        with self._read() as conn:
            n, pt, ct, cost, lat = conn.execute(query).one()
        return LlmUsage(int(n), int(pt), int(ct), float(cost), float(lat))
