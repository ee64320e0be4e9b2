"""Retrieval classifier: a similarity-weighted vote of the nearest reviewed examples."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tunegate._optional import require
from tunegate.config import Workflow
from tunegate.errors import InputError
from tunegate.metrics import softmax
from tunegate.models._base import Metadata, labels_to_index, register_backend
from tunegate.models._encoder import Encoder, _cpu_count, get_encoder, validate_texts
from tunegate.records import Example, ModelKind, ReviewStatus, content_hash

if TYPE_CHECKING:
    from tunegate.store import Store

__all__ = ["ANN_THRESHOLD", "KNNClassifier"]

ANN_THRESHOLD = 20_000
"""At or above this many examples the search uses an HNSW index (hnswlib) instead of an
exact matrix product."""


class KNNClassifier:
    """k nearest reviewed examples by cosine similarity, softmax-weighted vote.

    For a text with neighbours ``j = 1..k`` (similarities ``s_j``, labels ``y_j``)::

        w_j = softmax(s / temperature)_j
        p_c = (1 - floor) * sum_{j: y_j = c} w_j + floor / K

    The ``floor`` keeps every class possible (rows stay distributions with no zeros).
    Rejected examples are ignored; :meth:`from_store` uses only reviewed ones.
    """

    kind = ModelKind.RETRIEVAL

    def __init__(
        self,
        workflow: Workflow,
        examples: Sequence[Example],
        *,
        k: int = 10,
        temperature: float = 0.05,
        floor: float = 0.01,
        ann_threshold: int = ANN_THRESHOLD,
        encoder: Encoder | None = None,
    ) -> None:
        if k < 1:
            raise InputError(f"k must be >= 1, got {k}")
        if temperature <= 0:
            raise InputError(f"temperature must be > 0, got {temperature}")
        if not 0.0 <= floor < 1.0:
            raise InputError(f"floor must be within [0, 1), got {floor}")
        kept = [e for e in examples if e.review_status != ReviewStatus.REJECTED]
        if not kept:
            raise InputError(
                "the kNN classifier needs at least one (non-rejected) example; "
                "review some with `tunegate review` or import examples"
            )
        self.workflow = workflow
        self.labels = workflow.label_names
        self.k = min(k, len(kept))
        self.temperature = temperature
        self.floor = floor
        self.encoder = encoder or get_encoder(workflow.model)
        self.example_ids = [e.id for e in kept]
        self.y = labels_to_index([e.label for e in kept], self.labels)
        self.embeddings = self.encoder.embed([e.text for e in kept], progress=len(kept) > 1000)
        """(m, d) float32 unit rows of the examples."""
        self._data_hash = content_hash(sorted(e.content_hash for e in kept))
        self.index: Any = None
        if len(kept) >= ann_threshold:
            self.index = _hnsw_index(self.embeddings)

    @classmethod
    def from_store(cls, workflow: Workflow, store: Store, **kwargs: Any) -> KNNClassifier:
        """Build over the store's reviewed examples."""
        return cls(workflow, store.examples(review_status=ReviewStatus.REVIEWED.value), **kwargs)

    @property
    def version(self) -> str:
        digest = content_hash(
            "knn",
            Path(self.encoder.path).name,
            self._data_hash,
            self.k,
            self.temperature,
            self.floor,
        )
        return f"knn-{digest[:12]}"

    def neighbours(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest examples: (indices (n, k) int, cosine similarities (n, k)), best first."""
        q = np.asarray(embeddings, dtype=np.float32)
        if self.index is not None:
            idx, dist = self.index.knn_query(q, k=self.k, num_threads=_cpu_count())
            return idx.astype(np.int64), 1.0 - dist.astype(np.float64)
        idx_out = np.empty((len(q), self.k), dtype=np.int64)
        sim_out = np.empty((len(q), self.k), dtype=np.float64)
        for start in range(0, len(q), 1024):  # bound the (chunk, m) similarity matrix
            sims = q[start : start + 1024] @ self.embeddings.T
            if self.k < sims.shape[1]:
                part = np.argpartition(-sims, self.k - 1, axis=1)[:, : self.k]
            else:
                part = np.tile(np.arange(sims.shape[1]), (len(sims), 1))
            part_sims = np.take_along_axis(sims, part, axis=1)
            order = np.argsort(-part_sims, axis=1, kind="stable")
            idx_out[start : start + len(sims)] = np.take_along_axis(part, order, axis=1)
            sim_out[start : start + len(sims)] = np.take_along_axis(part_sims, order, axis=1)
        return idx_out, sim_out

    def proba_from_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        """Probabilities (n, K) from unit-norm text embeddings (n, d)."""
        idx, sims = self.neighbours(embeddings)
        weights = softmax(sims, self.temperature)
        votes = np.zeros((len(idx), len(self.labels)))
        np.add.at(
            votes, (np.repeat(np.arange(len(idx)), self.k), self.y[idx].ravel()), weights.ravel()
        )
        out: np.ndarray = (1.0 - self.floor) * votes + self.floor / len(self.labels)
        return out

    def predict_proba(self, texts: Sequence[str], metadata: Metadata = None) -> np.ndarray:
        """(n, K) probabilities in ``labels`` order; ``metadata`` is not used."""
        items = validate_texts(texts)
        if not items:
            return np.zeros((0, len(self.labels)))
        return self.proba_from_embeddings(self.encoder.embed(items, progress=len(items) > 256))


def _hnsw_index(embeddings: np.ndarray) -> Any:
    hnswlib = require("hnswlib", purpose="approximate nearest-neighbour search")
    index = hnswlib.Index(space="ip", dim=int(embeddings.shape[1]))
    index.init_index(max_elements=len(embeddings), ef_construction=200, M=16, random_seed=0)
    index.add_items(embeddings, np.arange(len(embeddings)), num_threads=_cpu_count())
    index.set_ef(200)
    return index


@register_backend("knn")
def _build(workflow: Workflow, **kwargs: Any) -> KNNClassifier:
    if "examples" in kwargs:
        examples = kwargs.pop("examples")
    elif "store" in kwargs:
        examples = kwargs.pop("store").examples(review_status=ReviewStatus.REVIEWED.value)
    else:
        raise InputError("the knn backend needs examples=[...] or store=Store(...)")
    return KNNClassifier(workflow, examples, **kwargs)
