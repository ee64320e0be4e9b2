"""Judges for generative workflows: claim splitting, the support checkers (is each claim
supported by the passages its answer cites? the deterministic :class:`EmbeddingSupportChecker`
and the LLM judge :class:`LlmJudgeChecker`, each measured by :func:`judge_agreement` against a
labelled sample), tool-call / output checks against JSON Schemas, and the style rewrite stage
(:class:`StyleRewriter`, :func:`rewrite_outputs`). The judges turn answers into the
per-example counts and flags the metrics of :mod:`tunegate.metrics` take; they compute no
metric themselves (docs/generative.md). And the packaged capability-preservation set
(:func:`preservation_examples`)."""

from __future__ import annotations

from tunegate.generative._claims import Salient, salient_tokens, split_claims
from tunegate.generative._judge import (
    DEFAULT_RUBRIC,
    JUDGE_SCHEMA,
    Agreement,
    JudgeVerdict,
    LabelledPair,
    LlmJudgeChecker,
    judge_agreement,
    read_labelled_pairs,
)
from tunegate.generative._preservation import PRESERVATION_CAPABILITIES, preservation_examples
from tunegate.generative._style import (
    REWRITE_SCHEMA,
    StyledGenerator,
    StyleRewriter,
    citation_markers,
    rewrite_outputs,
    style_similarity,
)
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
    "DEFAULT_RUBRIC",
    "DEFAULT_SUPPORT_THRESHOLD",
    "JUDGE_SCHEMA",
    "PRESERVATION_CAPABILITIES",
    "REWRITE_SCHEMA",
    "Agreement",
    "AnswerSupport",
    "ClaimSupport",
    "EmbeddingSupportChecker",
    "JudgeVerdict",
    "LabelledPair",
    "LlmJudgeChecker",
    "Passage",
    "Salient",
    "StyleRewriter",
    "StyledGenerator",
    "SupportChecker",
    "arguments_equal",
    "arguments_valid",
    "assess_answer",
    "citation_markers",
    "format_valid",
    "judge_agreement",
    "normalize_arguments",
    "preservation_examples",
    "read_labelled_pairs",
    "rewrite_outputs",
    "salient_tokens",
    "split_claims",
    "style_similarity",
]
