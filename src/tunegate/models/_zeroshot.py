"""Zero-shot classification by embedding similarity to the workflow's label prompts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tunegate.config import Workflow
from tunegate.errors import InputError
from tunegate.metrics import fit_temperature, softmax
from tunegate.models._base import Metadata, labels_to_index, register_backend
from tunegate.models._encoder import (
    Encoder,
    get_encoder,
    resolve_encoder_path,
    validate_texts,
)
from tunegate.records import ModelKind, content_hash

__all__ = ["DEFAULT_ZERO_SHOT_TEMPERATURE", "ZeroShotClassifier", "zero_shot_version_id"]

DEFAULT_ZERO_SHOT_TEMPERATURE = 0.05
"""Prior temperature before any fit: cosine similarities of sentence encoders differ between
classes by a few hundredths, so the scores are sharpened ~20x. Replace it with
:meth:`ZeroShotClassifier.fit_temperature` as soon as labelled data exists."""

_T_BOUNDS = (1e-3, 10.0)


def zero_shot_version_id(
    workflow: Workflow,
    *,
    instructions: str | None = None,
    temperature: float | None = None,
    encoder_path: str | None = None,
) -> str:
    """The version id of a zero-shot model: ``zero-shot-`` and a content hash of the encoder
    folder's name, the label prompts (instructions + descriptions) and the temperature.

    The one formula for the id: :attr:`ZeroShotClassifier.version` (what ``tunegate eval
    zero-shot`` records) and the registry's first champion
    (:func:`tunegate.train.ensure_champion`) both call it, so the same model has one id.
    Defaults: the workflow's instructions, the prior temperature, the workflow's encoder.
    """
    prompts = workflow.model_copy(
        update={"instructions": workflow.instructions if instructions is None else instructions}
    ).label_prompts()
    path = encoder_path if encoder_path is not None else resolve_encoder_path(workflow.model)
    t = DEFAULT_ZERO_SHOT_TEMPERATURE if temperature is None else float(temperature)
    digest = content_hash("zero-shot", Path(path).name, prompts, round(t, 6))
    return f"zero-shot-{digest[:12]}"


class ZeroShotClassifier:
    """Softmax over cosine similarities between a text and each label's prompt.

    The prompt of a label is ``instructions + " " + description`` from ``tunegate.yaml``
    (:meth:`Workflow.label_prompts`); ``instructions=`` overrides the workflow's
    instructions, which is what ``tunegate try instructions`` evaluates.
    ``probabilities = softmax(cos(text, prompt_j) / temperature)``.
    """

    kind = ModelKind.ZERO_SHOT

    def __init__(
        self,
        workflow: Workflow,
        *,
        instructions: str | None = None,
        temperature: float | None = None,
        encoder: Encoder | None = None,
    ) -> None:
        if temperature is not None and temperature <= 0:
            raise InputError(f"temperature must be > 0, got {temperature}")
        self.workflow = workflow
        self.instructions = workflow.instructions if instructions is None else instructions
        self.labels = workflow.label_names
        self.temperature = temperature or DEFAULT_ZERO_SHOT_TEMPERATURE
        self.temperature_fitted = False
        self.encoder = encoder or get_encoder(workflow.model)
        self.prompts = workflow.model_copy(
            update={"instructions": self.instructions}
        ).label_prompts()
        self.label_embeddings = self.encoder.embed([self.prompts[y] for y in self.labels])
        """(k, d) float32 unit rows, in ``labels`` order."""

    @property
    def version(self) -> str:
        """Content hash of encoder, prompts and temperature: equal configs, equal versions
        (:func:`zero_shot_version_id`)."""
        return zero_shot_version_id(
            self.workflow,
            instructions=self.instructions,
            temperature=self.temperature,
            encoder_path=self.encoder.path,
        )

    def similarities(self, embeddings: np.ndarray) -> np.ndarray:
        """Cosine similarities (n, k) of unit-norm text embeddings (n, d) to the prompts."""
        return np.asarray(embeddings, dtype=np.float64) @ self.label_embeddings.T.astype(np.float64)

    def proba_from_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        """Probabilities (n, k) from precomputed text embeddings (n, d)."""
        return softmax(self.similarities(embeddings), self.temperature)

    def predict_proba(self, texts: Sequence[str], metadata: Metadata = None) -> np.ndarray:
        """(n, k) probabilities in ``labels`` order; ``metadata`` is not used."""
        items = validate_texts(texts)
        if not items:
            return np.zeros((0, len(self.labels)))
        return self.proba_from_embeddings(self.encoder.embed(items, progress=len(items) > 256))

    def fit_temperature(self, texts: Sequence[str], labels: Sequence[str]) -> ZeroShotClassifier:
        """Fit the temperature by minimizing the negative log-likelihood of ``labels``.

        A bounded 1-D search over ``log T`` in [1e-3, 10]. Returns ``self``.
        """
        items = validate_texts(texts)
        if len(items) != len(labels):
            raise InputError(f"fit_temperature got {len(items)} texts but {len(labels)} labels")
        if not items:
            raise InputError("fit_temperature needs at least one labelled text")
        y = labels_to_index(labels, self.labels)
        sims = self.similarities(self.encoder.embed(items))
        self.temperature = fit_temperature_nll(sims, y)
        self.temperature_fitted = True
        return self

    def describe(self) -> dict[str, Any]:
        """Config as a JSON-able dict (for ModelVersion.config)."""
        return {
            "instructions": self.instructions,
            "temperature": self.temperature,
            "encoder": self.encoder.path,
            "prompts": self.prompts,
        }


def fit_temperature_nll(
    scores: np.ndarray, y: np.ndarray, bounds: tuple[float, float] = _T_BOUNDS
) -> float:
    """Temperature T minimizing mean NLL of ``softmax(scores / T)`` at integer labels ``y``.

    ``scores`` (n, k) logits or similarities; ``y`` (n,) column indices. This is
    :func:`tunegate.metrics.fit_temperature` with the zero-shot bounds [1e-3, 10] and no
    fallback (the prior temperature is replaced by the fit).
    """
    return fit_temperature(scores, y, bounds=bounds, fallback=None)


@register_backend("zero-shot")
def _build(workflow: Workflow, **kwargs: Any) -> ZeroShotClassifier:
    return ZeroShotClassifier(workflow, **kwargs)
