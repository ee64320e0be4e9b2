"""A prompted LLM as the model under test: the prompt (:mod:`tunegate.llm._prompt`), shared by
the OpenAI-compatible client backend and the in-process local model.

Settings live in ``tunegate.yaml`` under ``llm:`` (:class:`tunegate.config.LlmSettings`).
"""

from __future__ import annotations

from tunegate.llm._prompt import (
    DEFAULT_SYSTEM_PROMPT,
    answer_schema,
    chat_messages,
    prompt_hash,
    system_prompt,
)

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "answer_schema",
    "chat_messages",
    "prompt_hash",
    "system_prompt",
]
