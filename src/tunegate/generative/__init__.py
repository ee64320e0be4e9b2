"""Deterministic judges for generative workflows: claim splitting, the support checker
(is each claim supported by the passages its answer cites?), and tool-call / output checks
against JSON Schemas. They turn answers into the per-example counts and flags the metrics
of :mod:`tunegate.metrics` take; they compute no metric themselves (docs/generative.md). And the
packaged capability-preservation set (:func:`preservation_examples`)."""

from __future__ import annotations

from tunegate.generative._claims import Salient, salient_tokens, split_claims
from tunegate.generative._preservation import PRESERVATION_CAPABILITIES, preservation_examples
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
    "PRESERVATION_CAPABILITIES",
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
    "preservation_examples",
    "salient_tokens",
    "split_claims",
]
