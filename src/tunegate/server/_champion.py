"""Build the classifier the service runs: the registry's champion, or zero-shot without one."""

from __future__ import annotations

from typing import Any

from tunegate.config import Workflow
from tunegate.errors import ModelError
from tunegate.records import ModelKind

__all__ = ["load_champion"]


def load_champion(workflow: Workflow, store: Any) -> tuple[Any, str | None]:
    """``(classifier, version id)`` of the ``champion`` alias; ``(ZeroShotClassifier, None)``
    when no champion is set. The version id is what the service writes into
    ``Decision.model_version`` (None = the classifier's own content-hash version).

    Supported kinds: ``lora`` (artifact folder), ``zero_shot`` (config ``instructions`` and
    ``temperature``), ``retrieval`` (kNN over the store's reviewed examples, config ``k``).
    """
    from tunegate.models import ZeroShotClassifier, load_model_version

    champion = store.get_alias("champion")
    if champion is None:
        return ZeroShotClassifier(workflow), None
    mv = store.get_model_version(champion)
    if mv.kind not in (ModelKind.LORA, ModelKind.ZERO_SHOT, ModelKind.RETRIEVAL):
        raise ModelError(
            f"champion {mv.id} has kind {mv.kind.value!r}, which the service cannot build; "
            f"supported: lora, zero_shot, retrieval. Promote one of those or roll back"
        )
    return load_model_version(mv, workflow, store=store), mv.id
