"""The model registry: versions with lineage, ``champion``/``candidate`` aliases, promotion
gated on a passing Verdict, and one-call rollback.

Aliases are pointers in the store (``Store.set_alias``), so promotion and rollback never touch
an artifact: rolling back re-points ``champion`` at the previous version, whose folder is
exactly as it was. Every change is appended to the alias history and the audit log with its
actor and reason.

Promotion reads the evidence the rest of tunegate stores: the latest
:class:`~tunegate.records.Attempt` whose ``candidate_version`` is the version being promoted,
whose ``baseline_version`` is the current champion, and which carries a Verdict (from
``tunegate.evaluate.compare``). Anything but a pass is refused unless ``force`` is given with
a non-empty reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tunegate.errors import InputError, NotFoundError, RegistryError
from tunegate.records import Attempt, ModelStatus, ModelVersion, VerdictOutcome

if TYPE_CHECKING:
    from tunegate.store import Store

__all__ = ["CANDIDATE", "CHAMPION", "ROLLBACK_PREFIX", "Promotion", "Registry"]

CHAMPION = "champion"
CANDIDATE = "candidate"
ROLLBACK_PREFIX = "rollback: "
"""Alias-history reasons of rollbacks start with this (how history tells them apart)."""


@dataclass(frozen=True)
class Promotion:
    """What a promote or rollback did."""

    alias: str
    version_id: str
    previous: str | None
    actor: str
    reason: str
    forced: bool
    verdict: str | None
    """Outcome of the Verdict that allowed it (``None`` for a first champion or a rollback)."""
    attempt_id: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "version_id": self.version_id,
            "previous": self.previous,
            "actor": self.actor,
            "reason": self.reason,
            "forced": self.forced,
            "verdict": self.verdict,
            "attempt_id": self.attempt_id,
        }


class Registry:
    """Model versions and aliases over a :class:`~tunegate.store.Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- versions ---------------------------------------------------------------------------

    def register(
        self, mv: ModelVersion, *, actor: str = "tunegate", as_candidate: bool = True
    ) -> ModelVersion:
        """Store ``mv`` (idempotent) and, by default, point ``candidate`` at it."""
        if mv.parent is not None:
            try:
                self.store.get_model_version(mv.parent)
            except NotFoundError:
                raise InputError(
                    f"model version {mv.id!r} names parent {mv.parent!r}, which is not "
                    f"registered; register the parent first or pass parent=None"
                ) from None
        self.store.save_model_version(mv)
        if as_candidate and self.store.get_alias(CANDIDATE) != mv.id:
            self.store.set_alias(CANDIDATE, mv.id, actor=actor, reason="registered")
        self.store.audit(
            "registry.register",
            actor,
            {
                "version": mv.id,
                "kind": mv.kind.value,
                "parent": mv.parent,
                "training_data_hash": mv.training_data_hash,
                "artifact_path": mv.artifact_path,
            },
        )
        return mv

    def get(self, version_id: str) -> ModelVersion:
        return self.store.get_model_version(version_id)  # type: ignore[no-any-return]

    def versions(self) -> list[ModelVersion]:
        return list(self.store.model_versions())

    def champion(self) -> str | None:
        """The version ``champion`` points at (``None`` before the first promotion)."""
        return self.store.get_alias(CHAMPION)  # type: ignore[no-any-return]

    def candidate(self) -> str | None:
        """The version ``candidate`` points at."""
        return self.store.get_alias(CANDIDATE)  # type: ignore[no-any-return]

    def aliases(self) -> dict[str, str | None]:
        return {CHAMPION: self.champion(), CANDIDATE: self.candidate()}

    def history(self, alias: str | None = None) -> list[Any]:
        """Alias changes, oldest first (``AliasEvent`` records of the store)."""
        return list(self.store.alias_history(alias))

    def lineage(self, version_id: str) -> list[ModelVersion]:
        """``version_id`` and its ancestors, newest first (follows ``parent``)."""
        chain: list[ModelVersion] = []
        seen: set[str] = set()
        current: str | None = version_id
        while current is not None and current not in seen:
            seen.add(current)
            mv = self.get(current)
            chain.append(mv)
            current = mv.parent
        return chain

    # -- evidence ---------------------------------------------------------------------------

    def latest_verdict(self, candidate: str, baseline: str) -> Attempt | None:
        """The newest stored Attempt of ``candidate`` against ``baseline`` with a Verdict."""
        attempts = [
            a
            for a in self.store.attempts()
            if a.candidate_version == candidate
            and a.baseline_version == baseline
            and a.verdict is not None
        ]
        return max(attempts, key=lambda a: (a.created_at, a.id)) if attempts else None

    # -- promote / rollback -----------------------------------------------------------------

    def promote(
        self, version_id: str, *, actor: str, force: bool = False, reason: str = ""
    ) -> Promotion:
        """Point ``champion`` at ``version_id``.

        Refused (:class:`RegistryError`) when the latest Verdict of ``version_id`` against the
        current champion is missing or not a pass, unless ``force`` with a non-empty
        ``reason`` (recorded in the alias history and the audit log).
        """
        if not actor.strip():
            raise InputError("promote needs an actor (who is promoting); pass --actor NAME")
        if force and not reason.strip():
            raise RegistryError(
                "--force needs a non-empty --reason explaining why the verdict is overridden; "
                "it is recorded in the alias history and the audit log"
            )
        mv = self.get(version_id)
        current = self.champion()
        if current == version_id:
            raise RegistryError(f"{version_id} is already the champion; nothing to promote")
        attempt: Attempt | None = None
        outcome: str | None = None
        if current is not None:
            attempt = self.latest_verdict(version_id, current)
            if attempt is not None and attempt.verdict is not None:
                outcome = attempt.verdict.outcome.value
            passed = outcome == VerdictOutcome.PASS.value
            if not passed and not force:
                if attempt is None or attempt.verdict is None:
                    why = f"no Verdict of {version_id} against the champion {current} is stored"
                    todo = "evaluate it first (`tunegate finetune --suite ...` or `tunegate try`)"
                else:
                    failing = [
                        f"{r.rule} ({r.outcome.value}: {r.message})" if r.message else r.rule
                        for r in attempt.verdict.rules
                        if r.outcome != VerdictOutcome.PASS
                    ]
                    why = (
                        f"its latest Verdict against the champion {current} is "
                        f"{outcome!r} (attempt {attempt.id}; rules not passing: "
                        f"{'; '.join(failing) or 'none listed'})"
                    )
                    todo = "fix the candidate and evaluate again"
                raise RegistryError(
                    f"refusing to promote {version_id}: {why}; {todo}, or pass "
                    f'--force --reason "..." to override (recorded in the audit log)'
                )
        full_reason = reason.strip() or (
            f"verdict {outcome} (attempt {attempt.id})" if attempt else "first champion"
        )
        if force:
            full_reason = f"forced: {full_reason}"
        self.store.set_alias(CHAMPION, mv.id, actor=actor, reason=full_reason)
        self.store.update_model_status(mv.id, ModelStatus.CHAMPION)
        if current is not None:
            self.store.update_model_status(current, ModelStatus.RETIRED)
        promotion = Promotion(
            alias=CHAMPION,
            version_id=mv.id,
            previous=current,
            actor=actor,
            reason=full_reason,
            forced=force,
            verdict=outcome,
            attempt_id=attempt.id if attempt else None,
        )
        self.store.audit("registry.promote", actor, promotion.to_dict())
        return promotion

    def champion_stack(self) -> list[str]:
        """Champions in order of promotion, with rolled-back ones popped (last = current)."""
        stack: list[str] = []
        for event in self.store.alias_history(CHAMPION):
            if event.reason.startswith(ROLLBACK_PREFIX):
                if stack:
                    stack.pop()
                if not stack or stack[-1] != event.version_id:
                    stack.append(event.version_id)
            else:
                stack.append(event.version_id)
        return stack

    def rollback(self, *, actor: str, reason: str = "") -> Promotion:
        """Point ``champion`` back at the version it replaced; artifacts are not touched.

        Repeated rollbacks walk further back through the promotion history.
        """
        if not actor.strip():
            raise InputError("rollback needs an actor (who is rolling back); pass --actor NAME")
        current = self.champion()
        if current is None:
            raise RegistryError("there is no champion to roll back; promote a version first")
        stack = self.champion_stack()
        if len(stack) < 2:
            raise RegistryError(
                f"{current} is the first champion; there is no previous champion to roll back to"
            )
        target = stack[-2]
        recorded = ROLLBACK_PREFIX + (reason.strip() or "manual rollback")
        self.store.set_alias(CHAMPION, target, actor=actor, reason=recorded)
        self.store.update_model_status(target, ModelStatus.CHAMPION)
        self.store.update_model_status(current, ModelStatus.RETIRED)
        result = Promotion(
            alias=CHAMPION,
            version_id=target,
            previous=current,
            actor=actor,
            reason=recorded,
            forced=False,
            verdict=None,
            attempt_id=None,
        )
        self.store.audit("registry.rollback", actor, result.to_dict())
        return result
