"""The prompt an LLM classifier sends: a system prompt built from the workflow's labels,
descriptions and instructions, the ticket as the user message, and the JSON schema of an
answer. One home for the wording, so the served and the in-process paths ask the same thing,
and :func:`prompt_hash` (part of every cache key and of a prompt version's identity) changes
whenever any of it does."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tunegate.config import Workflow
from tunegate.errors import ConfigError

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "answer_schema",
    "chat_messages",
    "prompt_hash",
    "system_prompt",
]

DEFAULT_SYSTEM_PROMPT = (
    "Classify the user's message. Pick exactly one label from this list:\n{labels}\n\n"
    'Reply only with JSON: {{"label": "<one of: {label_names}>"}}'
)
"""The built-in template (``llm.system_prompt`` replaces it)."""

_FIELDS = ("instructions", "labels", "label_names")


def system_prompt(workflow: Workflow, template: str | None = None) -> str:
    """The system prompt for ``workflow``: ``template`` (else ``workflow.llm.system_prompt``,
    else :data:`DEFAULT_SYSTEM_PROMPT`) with ``{instructions}``, ``{labels}`` (one
    ``- name: description`` line per label) and ``{label_names}`` filled in.

    An unknown placeholder raises :class:`~tunegate.errors.ConfigError` naming it.
    """
    text = template if template is not None else workflow.llm.system_prompt
    text = DEFAULT_SYSTEM_PROMPT if text is None else text
    values = {
        "instructions": workflow.instructions.strip(),
        "labels": "\n".join(f"- {name}: {p}" for name, p in workflow.label_prompts().items()),
        "label_names": ", ".join(workflow.labels),
    }
    try:
        return text.format(**values)
    except KeyError as exc:
        raise ConfigError(
            f"llm.system_prompt: unknown placeholder {{{exc.args[0]}}}; allowed: "
            + ", ".join("{" + f + "}" for f in _FIELDS)
            + " (write {{ and }} for literal braces)"
        ) from exc
    except (IndexError, ValueError) as exc:
        raise ConfigError(
            f"llm.system_prompt: not a valid template ({exc}); placeholders are "
            + ", ".join("{" + f + "}" for f in _FIELDS)
            + " (write {{ and }} for literal braces)"
        ) from exc


def chat_messages(system: str, text: str) -> list[dict[str, str]]:
    """The Chat Completions messages for one ticket."""
    return [{"role": "system", "content": system}, {"role": "user", "content": text}]


def answer_schema(workflow: Workflow) -> dict[str, Any]:
    """The JSON schema of a valid answer: ``{"label": <one of the workflow's labels>}``."""
    return {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": list(workflow.labels)}},
        "required": ["label"],
        "additionalProperties": False,
    }


def prompt_hash(system: str, model: str) -> str:
    """A short content hash of (model, system prompt): the identity of a prompt version and
    part of every response-cache key."""
    payload = json.dumps({"model": model, "system": system}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]
