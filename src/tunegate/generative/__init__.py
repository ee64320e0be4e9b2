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
from tunegate.generative._generate import (
    ChatGenerator,
    Generator,
    build_generator,
    generator_version_id,
    parse_output,
    register_generator,
)
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
from tunegate.generative._prompt import (
    ANSWER_SYSTEM_PROMPT,
    NO_TOOL,
    PASSAGE_CHAR_BUDGET,
    TOOL_SYSTEM_PROMPT,
    decoding_schema,
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
    "ANSWER_SYSTEM_PROMPT",
    "DEFAULT_RUBRIC",
    "DEFAULT_SUPPORT_THRESHOLD",
    "JUDGE_SCHEMA",
    "NO_TOOL",
    "PASSAGE_CHAR_BUDGET",
    "PRESERVATION_CAPABILITIES",
    "REWRITE_SCHEMA",
    "TOKEN_F1_THRESHOLD",
    "TOOL_SYSTEM_PROMPT",
    "Agreement",
    "AnswerSupport",
    "ChatGenerator",
    "ClaimSupport",
    "EmbeddingSupportChecker",
    "Generator",
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
    "build_generator",
    "citation_markers",
    "decoding_schema",
    "format_valid",
    "generation_messages",
    "generator_version_id",
    "judge_agreement",
    "normalize_arguments",
    "parse_output",
    "passage_items",
    "preservation_examples",
    "read_labelled_pairs",
    "reference_match",
    "register_generator",
    "response_schema",
    "rewrite_outputs",
    "salient_tokens",
    "score_outputs",
    "split_claims",
    "style_similarity",
    "target_output",
    "token_f1",
    "tool_specs",
]
