"""The champion: loading it to serve, what the dashboard and ``/v1/models`` say about it, and
moving the alias (promote, roll back).

There is one loader for every model kind: :func:`tunegate.models.load_model_version`. The
champion alias names the version; without one the workflow's zero-shot classifier is served.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from tunegate.config import Workflow
from tunegate.errors import InputError, NotFoundError
from tunegate.records import Attempt, ModelVersion, Verdict

if TYPE_CHECKING:
    from tunegate.models import Classifier
    from tunegate.registry import Promotion
    from tunegate.store import AliasEvent, Store

__all__ = [
    "AliasChange",
    "ChampionSummary",
    "ModelsOverview",
    "ServingModel",
    "champion_summary",
    "load_champion",
    "models_overview",
    "promote_version",
    "rollback_champion",
]

CHAMPION = "champion"


@dataclass(frozen=True)
class ServingModel:
    """A classifier to serve and the registered version it was built from."""

    classifier: Classifier
    version: ModelVersion | None = None
    """The registered version (None: the zero-shot fallback, not a registered version)."""

    @property
    def version_id(self) -> str | None:
        """What goes into ``Decision.model_version`` (None = the classifier's own version)."""
        return self.version.id if self.version is not None else None

    @property
    def description(self) -> str:
        """``champion ID (kind)`` or ``zero-shot``."""
        if self.version is None:
            return "zero-shot"
        return f"champion {self.version.id} ({self.version.kind.value})"

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.description, "version_id": self.version_id}


def load_champion(
    workflow: Workflow, store: Store | None, *, fallback: bool = True
) -> ServingModel:
    """Build the classifier of the ``champion`` alias (any kind
    :func:`~tunegate.models.load_model_version` builds: lora, zero_shot, retrieval, rules,
    prompt, remote_llm).

    Without a champion (or without a store) the workflow's ``baseline`` model is returned
    when ``fallback`` (the zero-shot classifier, or the prompted LLM with
    ``llm.system_prompt``); otherwise :class:`~tunegate.errors.InputError` says how to set one.
    """
    from tunegate.models import ZeroShotClassifier, build_classifier, load_model_version

    champion = None
    if store is not None:
        alias = store.get_alias(CHAMPION)
        champion = store.get_model_version(alias) if alias else None
    if champion is not None:
        return ServingModel(load_model_version(champion, workflow, store=store), champion)
    if not fallback:
        raise InputError(
            "no champion is registered; promote one with `tunegate promote`, "
            "or pass --model zero-shot|knn|lora:PATH"
        )
    if workflow.baseline != "zero-shot":
        return ServingModel(build_classifier(workflow.baseline, workflow, store=store))
    return ServingModel(ZeroShotClassifier(workflow))


@dataclass(frozen=True)
class ChampionSummary:
    """The champion alias, its version and the latest verdict that let it in."""

    id: str | None
    """The version the champion alias points at (None: no champion yet)."""
    version: ModelVersion | None = None
    """Its record (None when the alias points at an unknown version)."""
    attempt: Attempt | None = None
    """The latest attempt with a verdict whose candidate is this version."""

    @property
    def verdict(self) -> Verdict | None:
        return self.attempt.verdict if self.attempt is not None else None

    @property
    def base_model_name(self) -> str:
        """The base model as a page shows it (see :func:`_display_model`); "" when none."""
        return _display_model(self.version.base_model) if self.version else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version.model_dump(mode="json") if self.version else None,
            "base_model_name": self.base_model_name,
            "verdict": self.verdict.model_dump(mode="json") if self.verdict else None,
            "attempt": self.attempt.model_dump(mode="json") if self.attempt else None,
        }


def _display_model(ref: str, root: Path | None = None) -> str:
    """A model reference fit to show: a hub name or relative path as given; an absolute path
    relative to ``root`` (default: the working directory) when it lies under it, otherwise
    its last component, the model's name (never an absolute site-packages path)."""
    path = PurePath(ref)
    if not ref or not path.is_absolute():
        return ref
    base = root or Path.cwd()
    try:
        return str(path.relative_to(base))
    except ValueError:
        pass
    cache = path.parent.parent.name  # a Hugging Face cache: models--org--name/snapshots/<hash>
    if path.parent.name == "snapshots" and cache.startswith("models--"):
        return cache.removeprefix("models--").replace("--", "/")
    return path.name or ref


def champion_summary(store: Store) -> ChampionSummary:
    """What the dashboard's champion card shows."""
    champ = store.get_alias(CHAMPION)
    if champ is None:
        return ChampionSummary(None)
    try:
        version = store.get_model_version(champ)
    except NotFoundError:
        return ChampionSummary(champ)
    attempts = [a for a in store.attempts() if a.candidate_version == champ and a.verdict]
    latest = max(attempts, key=lambda a: a.created_at) if attempts else None
    return ChampionSummary(champ, version, latest)


@dataclass(frozen=True)
class ModelsOverview:
    """Registered versions, where the aliases point and how they moved."""

    champion: str | None
    candidate: str | None
    versions: list[ModelVersion]
    history: list[AliasEvent]
    """Alias changes, oldest first."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "champion": self.champion,
            "candidate": self.candidate,
            "versions": [v.model_dump(mode="json") for v in self.versions],
            "history": [
                {
                    "alias": e.alias,
                    "version_id": e.version_id,
                    "previous": e.previous,
                    "actor": e.actor,
                    "reason": e.reason,
                    "at": e.at.isoformat(),
                }
                for e in self.history
            ],
        }


def models_overview(store: Store) -> ModelsOverview:
    """What ``GET /v1/models`` lists (besides the version this process serves)."""
    return ModelsOverview(
        champion=store.get_alias(CHAMPION),
        candidate=store.get_alias("candidate"),
        versions=store.model_versions(),
        history=store.alias_history(),
    )


@dataclass(frozen=True)
class AliasChange:
    """A promotion or rollback and where the champion points after it."""

    promotion: Promotion
    champion: str | None

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = self.promotion.to_dict()
        result["champion"] = self.champion
        return result


def promote_version(
    store: Store, version_id: str, *, actor: str, force: bool = False, reason: str = ""
) -> AliasChange:
    """Make ``version_id`` the champion through :meth:`tunegate.registry.Registry.promote`
    (which checks the verdict and writes the alias history and the audit entry)."""
    from tunegate.registry import Registry

    done = Registry(store).promote(version_id, actor=actor, force=force, reason=reason)
    return AliasChange(done, store.get_alias(CHAMPION))


def rollback_champion(store: Store, *, actor: str, reason: str = "") -> AliasChange:
    """Restore the previous champion through :meth:`tunegate.registry.Registry.rollback`."""
    from tunegate.registry import Registry

    done = Registry(store).rollback(actor=actor, reason=reason)
    return AliasChange(done, store.get_alias(CHAMPION))
