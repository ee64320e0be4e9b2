"""A prompted LLM as the model under test: the prompt (:mod:`tunegate.llm._prompt`), shared by
the OpenAI-compatible client backend and the in-process local model; the Chat Completions
client (:class:`ChatClient`); the ``llm`` backend (:class:`LlmClassifier`); the answers'
outcomes (:class:`AnswerOutcome`); and the local llama.cpp server
(:func:`local_llm_server`, ``tunegate llm serve``); the in-process local model
(:class:`LocalLlmClassifier`, backend ``llm-local``: :mod:`tunegate.llm._local`).

Settings live in ``tunegate.yaml`` under ``llm:`` (:class:`tunegate.config.LlmSettings`).
"""

from __future__ import annotations

from tunegate.llm._answers import AnswerKind, AnswerOutcome, label_logprobs, parse_answer
from tunegate.llm._classifier import LlmClassifier, LlmPrediction, llm_version_id
from tunegate.llm._client import DEFAULT_BASE_URL, ChatClient, ChatResult, resolve_base_url
from tunegate.llm._local import (
    ANSWER_PREFIX,
    LocalLlm,
    LocalLlmClassifier,
    PromptEncoder,
    label_scores,
    load_local_llm,
    local_gguf_path,
)
from tunegate.llm._prompt import (
    DEFAULT_SYSTEM_PROMPT,
    answer_schema,
    chat_messages,
    prompt_hash,
    system_prompt,
)
from tunegate.llm._server import LocalLlmServer, local_llm_server
from tunegate.store._llm_cache import LlmUsage

__all__ = [
    "ANSWER_PREFIX",
    "DEFAULT_BASE_URL",
    "DEFAULT_SYSTEM_PROMPT",
    "AnswerKind",
    "AnswerOutcome",
    "ChatClient",
    "ChatResult",
    "LlmClassifier",
    "LlmPrediction",
    "LlmUsage",
    "LocalLlm",
    "LocalLlmClassifier",
    "LocalLlmServer",
    "PromptEncoder",
    "answer_schema",
    "chat_messages",
    "label_logprobs",
    "label_scores",
    "llm_version_id",
    "load_local_llm",
    "local_gguf_path",
    "local_llm_server",
    "parse_answer",
    "prompt_hash",
    "resolve_base_url",
    "system_prompt",
]
