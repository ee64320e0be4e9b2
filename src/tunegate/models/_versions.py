"""Build the classifier a registered :class:`~tunegate.records.ModelVersion` describes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tunegate.config import Workflow
from tunegate.errors import ModelError
from tunegate.models._base import Classifier
from tunegate.records import ModelKind, ModelVersion, ReviewStatus

if TYPE_CHECKING:
    from tunegate.store import Store

__all__ = ["load_model_version"]


def load_model_version(
    mv: ModelVersion, workflow: Workflow, *, store: Store | None = None
) -> Classifier:
    """The classifier of ``mv``.

    ``lora``: ``LoraClassifier.for_workflow(mv.artifact_path, workflow)`` (the workflow's
    backend and precision), or ``LocalLlmClassifier(adapter_dir=...)`` for an adapter of the
    local LLM (:func:`artifact_classifier`); ``zero_shot``: config
    ``instructions``/``temperature``; ``retrieval``: kNN over the store's reviewed examples
    (config ``k``, ``temperature``); ``rules``: config ``rules`` (else the workflow's rules).
    This is the one loader of registered versions: the service, ``tunegate classify`` and the
    pipelines build champions and candidates through it
    (:func:`tunegate.serving.load_champion` for the champion alias).

    A version with a fitted routing threshold (``mv.clarify_threshold``) gets it as the
    classifier's ``clarify_threshold`` attribute: :func:`tunegate.evaluate.run_eval` and
    :class:`tunegate.serving.TicketClassifier` route with it instead of the workflow's.
    """
    clf = _build(mv, workflow, store)
    if mv.clarify_threshold is not None:
        # the version's fitted routing threshold: read by run_eval and TicketClassifier
        setattr(clf, "clarify_threshold", mv.clarify_threshold)  # noqa: B010
    return clf


def artifact_classifier(artifact_dir: str | Path, workflow: Workflow) -> Classifier:
    """The classifier of a LoRA artifact folder: an adapter of the local LLM (manifest
    ``config.base: llm-local``) is served by ``LocalLlmClassifier(adapter_dir=...)``, an
    encoder adapter by ``LoraClassifier.for_workflow``."""
    from tunegate.lora.causal import is_causal_artifact

    if is_causal_artifact(artifact_dir):
        from tunegate.llm._local import LocalLlmClassifier

        return LocalLlmClassifier(workflow, adapter_dir=artifact_dir)
    from tunegate.lora.classifier import LoraClassifier

    return LoraClassifier.for_workflow(artifact_dir, workflow)


def _build(mv: ModelVersion, workflow: Workflow, store: Store | None) -> Classifier:
    from tunegate.config import RuleSpec
    from tunegate.models._knn import KNNClassifier
    from tunegate.models._rules import RulesClassifier
    from tunegate.models._zeroshot import ZeroShotClassifier

    config = mv.config
    if mv.kind is ModelKind.LORA:
        if not mv.artifact_path:
            raise ModelError(
                f"model version {mv.id} is a LoRA version without artifact_path; "
                f"register it again with its artifact folder"
            )
        return artifact_classifier(mv.artifact_path, workflow)
    if mv.kind is ModelKind.ZERO_SHOT:
        return ZeroShotClassifier(
            workflow, instructions=config.get("instructions"), temperature=config.get("temperature")
        )
    if mv.kind is ModelKind.RETRIEVAL:
        if store is None:
            raise ModelError(
                f"model version {mv.id} is a retrieval model; it needs the store "
                f"for its reviewed examples"
            )
        examples = store.examples(review_status=ReviewStatus.REVIEWED.value)
        kwargs = {k: config[k] for k in ("k", "temperature", "floor") if k in config}
        return KNNClassifier(workflow, examples, **kwargs)
    if mv.kind is ModelKind.RULES:
        rules = [RuleSpec.model_validate(r) for r in config.get("rules", [])] or workflow.rules
        return RulesClassifier(rules, workflow.label_names)
    raise ModelError(
        f"model version {mv.id} has kind {mv.kind.value!r}, which tunegate cannot "
        f"build locally; supported: lora, zero_shot, retrieval, rules"
    )
