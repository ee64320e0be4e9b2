"""Deterministic judges for generative workflows: claim splitting, the support checker
(is each claim supported by the passages its answer cites?), and tool-call / output checks
against JSON Schemas. They turn answers into the per-example counts and flags the metrics
of :mod:`tunegate.metrics` take; they compute no metric themselves (docs/generative.md)."""

from __future__ import annotations

from tunegate.generative._claims import Salient, salient_tokens, split_claims
from tunegate.generative._generate import (
    ChatGenerator,
    Generator,
    build_generator,
    generator_version_id,
    parse_output,
    register_generator,
)
from tunegate.generative._prompt import (
    ANSWER_SYSTEM_PROMPT,
    NO_TOOL,
    PASSAGE_CHAR_BUDGET,
    TOOL_SYSTEM_PROMPT,
    generation_messages,
    passage_items,
    response_schema,
    target_output,
    tool_specs,
)
from tunegate.generative._score import (
    TOKEN_F1_THRESHOLD,
    reference_match,
    score_outputs,
    token_f1,
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
    "ANSWER_SYSTEM_PROMPT",
    "DEFAULT_SUPPORT_THRESHOLD",
    "NO_TOOL",
    "PASSAGE_CHAR_BUDGET",
    "TOKEN_F1_THRESHOLD",
    "TOOL_SYSTEM_PROMPT",
    "AnswerSupport",
    "ChatGenerator",
    "ClaimSupport",
    "EmbeddingSupportChecker",
    "Generator",
    "Passage",
    "Salient",
    "SupportChecker",
    "arguments_equal",
    "arguments_valid",
    "assess_answer",
    "build_generator",
    "format_valid",
    "generation_messages",
    "generator_version_id",
    "normalize_arguments",
    "parse_output",
    "passage_items",
    "reference_match",
    "register_generator",
    "response_schema",
    "salient_tokens",
    "score_outputs",
    "split_claims",
    "target_output",
    "token_f1",
    "tool_specs",
]
