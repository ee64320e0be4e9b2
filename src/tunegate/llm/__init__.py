"""A prompted LLM as the model under test: the prompt (:mod:`tunegate.llm._prompt`), shared by
the OpenAI-compatible client backend and the in-process local model
(:class:`LocalLlmClassifier`, backend ``llm-local``: :mod:`tunegate.llm._local`).

Settings live in ``tunegate.yaml`` under ``llm:`` (:class:`tunegate.config.LlmSettings`).
"""

from __future__ import annotations

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

__all__ = [
    "ANSWER_PREFIX",
    "DEFAULT_SYSTEM_PROMPT",
    "LocalLlm",
    "LocalLlmClassifier",
    "PromptEncoder",
    "answer_schema",
    "chat_messages",
    "label_scores",
    "load_local_llm",
    "local_gguf_path",
    "prompt_hash",
    "system_prompt",
]
