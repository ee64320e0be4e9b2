"""Support checkers: is each claim of an answer supported by the passages the answer cites?

A :class:`SupportChecker` is anything with ``check(claims, passages) -> list[bool]``; the
deterministic default is :class:`EmbeddingSupportChecker`. An LLM judge through an
OpenAI-compatible endpoint with a written rubric implements the same protocol
(:class:`~tunegate.generative.LlmJudgeChecker`); both report their agreement with the
labelled sample through :func:`~tunegate.generative.judge_agreement`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from tunegate.errors import InputError
from tunegate.generative._claims import salient_tokens, split_claims

if TYPE_CHECKING:
    from tunegate.models import Encoder

__all__ = [
    "DEFAULT_SUPPORT_THRESHOLD",
    "AnswerSupport",
    "ClaimSupport",
    "EmbeddingSupportChecker",
    "Passage",
    "SupportChecker",
    "assess_answer",
]

DEFAULT_SUPPORT_THRESHOLD = 0.7
"""Cosine similarity (all-MiniLM-L6-v2) from which a passage window can support a claim."""


@runtime_checkable
class SupportChecker(Protocol):
    """Decides, for each claim, whether the given passages support it."""

    def check(self, claims: Sequence[str], passages: Sequence[str]) -> list[bool]:
        """One boolean per claim: True when some passage supports it."""
        ...


@dataclass(frozen=True)
class ClaimSupport:
    """Why the deterministic checker decided as it did for one claim.

    ``similarity`` is the best cosine between the claim and a passage window (one or two
    consecutive sentences), ``passage`` the index of the passage holding the best window that
    also agrees on numbers, dates and entities (``None`` when none does), ``missing`` the
    claim's numbers, dates and entities absent from the most similar window."""

    claim: str
    supported: bool
    similarity: float
    passage: int | None
    missing: tuple[str, ...]


class EmbeddingSupportChecker:
    """The deterministic support checker.

    A claim is supported when some window of a passage (one sentence, or two consecutive
    sentences) is similar to it (cosine of the encoder's unit embeddings >= ``threshold``)
    **and** asserts every number, version, date and named-entity-like word the claim asserts
    (:func:`~tunegate.generative.salient_tokens`). So "MFA codes expire after 60 seconds"
    is not supported by "MFA codes expire after 30 seconds", however similar the two are.

    Args:
        encoder: a sentence encoder whose rows are unit-norm (``tunegate.models.Encoder``);
            ``None`` loads the shipped all-MiniLM-L6-v2 on first use.
        threshold: the similarity from which a window can support a claim.
    """

    def __init__(
        self, encoder: Encoder | None = None, *, threshold: float = DEFAULT_SUPPORT_THRESHOLD
    ) -> None:
        if not -1.0 <= threshold <= 1.0:
            raise InputError(f"threshold is a cosine similarity in [-1, 1], got {threshold}")
        self.threshold = threshold
        self._encoder = encoder

    @property
    def encoder(self) -> Encoder:
        """The encoder (loaded on first use)."""
        if self._encoder is None:
            from tunegate.models import get_encoder

            self._encoder = get_encoder()
        return self._encoder

    def assess(self, claims: Sequence[str], passages: Sequence[str]) -> list[ClaimSupport]:
        """Each claim's decision with its evidence (see :class:`ClaimSupport`)."""
        claims = list(claims)
        if not claims:
            return []
        windows: list[tuple[int, str]] = []
        for p, passage in enumerate(passages):
            sentences = split_claims(passage) or [passage]
            windows += [(p, s) for s in sentences]
            windows += [(p, f"{a} {b}") for a, b in pairwise(sentences)]
        if not windows:
            return [ClaimSupport(c, False, float("nan"), None, ()) for c in claims]
        emb = np.asarray(self.encoder.embed([*claims, *(w for _, w in windows)]), dtype=float)
        sims = emb[: len(claims)] @ emb[len(claims) :].T  # (claims, windows)
        window_salient = [salient_tokens(w) for _, w in windows]
        out = []
        for c, claim in enumerate(claims):
            salient = salient_tokens(claim)
            order = np.argsort(-sims[c], kind="stable")
            best = int(order[0])
            missing = salient.missing_from(window_salient[best], windows[best][1])
            found: int | None = None
            for w in order:
                if sims[c, w] < self.threshold:
                    break
                if not salient.missing_from(window_salient[w], windows[w][1]):
                    found = int(w)
                    break
            out.append(
                ClaimSupport(
                    claim,
                    found is not None,
                    float(sims[c, best]),
                    None if found is None else windows[found][0],
                    missing,
                )
            )
        return out

    def check(self, claims: Sequence[str], passages: Sequence[str]) -> list[bool]:
        """One boolean per claim: True when some passage supports it."""
        return [s.supported for s in self.assess(claims, passages)]


@dataclass(frozen=True)
class Passage:
    """A cited passage (a minimal local shape until the knowledge base's chunk record lands):
    its text, and whether it comes from a superseded version of its document."""

    text: str
    superseded: bool = False
    doc_id: str | None = None


@dataclass(frozen=True)
class AnswerSupport:
    """One answer's claims judged against its cited passages: ``n_unsupported`` claims no
    cited passage supports, ``n_stale`` claims only a superseded cited passage supports
    (disjoint: ``n_unsupported + n_stale <= n_claims``). The inputs of
    :func:`~tunegate.metrics.unsupported_claim_rate` and
    :func:`~tunegate.metrics.stale_claim_rate`."""

    claims: tuple[str, ...]
    supported: tuple[bool, ...]
    stale: tuple[bool, ...]

    @property
    def n_claims(self) -> int:
        return len(self.claims)

    @property
    def n_unsupported(self) -> int:
        return sum(not s and not t for s, t in zip(self.supported, self.stale, strict=True))

    @property
    def n_stale(self) -> int:
        return sum(self.stale)


def assess_answer(answer: str, cited: Sequence[Passage], checker: SupportChecker) -> AnswerSupport:
    """Split ``answer`` into claims and judge each against the passages it cites: supported
    by a current passage; else stale when a superseded passage supports it; else
    unsupported. An answer citing nothing has every claim unsupported."""
    claims = split_claims(answer)
    current = [p.text for p in cited if not p.superseded]
    old = [p.text for p in cited if p.superseded]
    supported = checker.check(claims, current) if current and claims else [False] * len(claims)
    stale = [False] * len(claims)
    if old and not all(supported):
        todo = [i for i, s in enumerate(supported) if not s]
        for i, ok in zip(todo, checker.check([claims[i] for i in todo], old), strict=True):
            stale[i] = ok
    if len(supported) != len(claims):
        raise InputError(
            f"the support checker returned {len(supported)} decisions for {len(claims)} claims"
        )
    return AnswerSupport(tuple(claims), tuple(bool(s) for s in supported), tuple(stale))
