"""Deterministic judges for generative workflows: claim splitting, the support checker
(is each claim supported by the passages its answer cites?), and tool-call / output checks
against JSON Schemas. They turn answers into the per-example counts and flags the metrics
of :mod:`tunegate.metrics` take; they compute no metric themselves (docs/generative.md)."""

from __future__ import annotations

from tunegate.generative._claims import Salient, salient_tokens, split_claims
from tunegate.generative._support import (
    DEFAULT_SUPPORT_THRESHOLD,
    AnswerSupport,
    ClaimSupport,
    EmbeddingSupportChecker,
    Passage,
    SupportChecker,
    assess_answer,
)
from tunegate.generative._tools import (
    arguments_equal,
    arguments_valid,
    format_valid,
    normalize_arguments,
)

__all__ = [
    "DEFAULT_SUPPORT_THRESHOLD",
    "AnswerSupport",
    "ClaimSupport",
    "EmbeddingSupportChecker",
    "Passage",
    "Salient",
    "SupportChecker",
    "arguments_equal",
    "arguments_valid",
    "assess_answer",
    "format_valid",
    "normalize_arguments",
    "salient_tokens",
    "split_claims",
]
