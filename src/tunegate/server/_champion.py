"""Build the classifier the service runs: the registry's champion, or zero-shot without one."""

from __future__ import annotations

from typing import Any

from tunegate.config import Workflow
from tunegate.errors import ModelError
from tunegate.records import ModelKind, ReviewStatus

__all__ = ["load_champion"]


def load_champion(workflow: Workflow, store: Any) -> tuple[Any, str | None]:
    """``(classifier, version id)`` of the ``champion`` alias; ``(ZeroShotClassifier, None)``
    when no champion is set. The version id is what the service writes into
    ``Decision.model_version`` (None = the classifier's own content-hash version).

    Supported kinds: ``lora`` (artifact folder), ``zero_shot`` (config ``instructions`` and
    ``temperature``), ``retrieval`` (kNN over the store's reviewed examples, config ``k``).
    """
    from tunegate.models import KNNClassifier, LoraClassifier, ZeroShotClassifier

    champion = store.get_alias("champion")
    if champion is None:
        return ZeroShotClassifier(workflow), None
    mv = store.get_model_version(champion)
    config = mv.config
    if mv.kind is ModelKind.LORA:
        if not mv.artifact_path:
            raise ModelError(
                f"champion {mv.id} is a LoRA version without an artifact_path; "
                f"register it again with its artifact folder"
            )
        return LoraClassifier.load(mv.artifact_path), mv.id
    if mv.kind is ModelKind.ZERO_SHOT:
        return ZeroShotClassifier(
            workflow, instructions=config.get("instructions"), temperature=config.get("temperature")
        ), mv.id
    if mv.kind is ModelKind.RETRIEVAL:
        examples = store.examples(review_status=ReviewStatus.REVIEWED.value)
        return KNNClassifier(workflow, examples, k=int(config.get("k", 10))), mv.id
    raise ModelError(
        f"champion {mv.id} has kind {mv.kind.value!r}, which the service cannot build; "
        f"supported: lora, zero_shot, retrieval. Promote one of those or roll back"
    )
