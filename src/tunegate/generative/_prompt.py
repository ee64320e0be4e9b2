"""The prompt of a generative workflow: the system prompt and user message a generator sends,
the JSON Schema its output must follow, and the output a reviewed example should produce (the
supervised fine-tuning target). One home for the wording, so generation, constrained decoding
and fine-tuning ask for the same thing (docs/generative.md#generators-prompt-and-output-format).

The prompts are short on purpose: the local model (SmolLM2-135M) has a 2,048-token context, so
passages are truncated to :data:`PASSAGE_CHAR_BUDGET` characters in all.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from tunegate.config import AnswerSettings, ToolSpec, Workflow
from tunegate.errors import InputError
from tunegate.records import GenerativeExample, GenerativeSuiteExample, GeneratorConfig

__all__ = [
    "ANSWER_SYSTEM_PROMPT",
    "NO_TOOL",
    "PASSAGE_CHAR_BUDGET",
    "TOOL_SYSTEM_PROMPT",
    "generation_messages",
    "passage_items",
    "response_schema",
    "target_output",
    "tool_specs",
]

NO_TOOL = "none"
"""The ``tool`` value of an output that calls no tool."""

PASSAGE_CHAR_BUDGET = 3600
"""Characters of passage text shown in all (about 900 tokens), split evenly between the
passages; a longer passage is cut at a word boundary and marked with ``...``."""

ANSWER_SYSTEM_PROMPT = (
    "{instructions}Answer the question using only the numbered passages. Each passage "
    "starts with its document id in brackets. Put the ids of the passages you used in "
    '"citations". If the passages do not answer the question, set "abstain" to true and '
    'answer exactly: "{abstention}"\n'
    'Reply only with JSON: {{"answer": "...", "citations": ["<document id>"], '
    '"abstain": false}}'
)
"""The built-in system prompt of ``answer`` workflows (``GeneratorConfig.system_prompt``
replaces it; placeholders ``{instructions}``, ``{abstention}``)."""

TOOL_SYSTEM_PROMPT = (
    "{instructions}Map the request to one of these tools, or to none:\n{tools}\n"
    'Reply only with JSON: {{"tool": "<tool name or none>", "arguments": {{...}}}}'
)
"""The built-in system prompt of ``tool_call`` workflows (placeholders ``{instructions}``,
``{tools}``)."""

Example = GenerativeExample | GenerativeSuiteExample


def tool_specs(workflow: Workflow, example: Example | None = None) -> list[ToolSpec]:
    """The tools offered for ``example``: its ``metadata["tools"]`` when given (validated as
    :class:`~tunegate.config.ToolSpec`), else the workflow's."""
    raw = None if example is None else example.metadata.get("tools")
    if raw is None:
        return list(workflow.tools)
    if not isinstance(raw, list):
        raise InputError(
            f"example {getattr(example, 'id', '?')}: metadata.tools must be a list of tool "
            f"specs (name, description, parameters), got {type(raw).__name__}"
        )
    try:
        return [ToolSpec.model_validate(t) for t in raw]
    except ValueError as exc:
        raise InputError(
            f"example {getattr(example, 'id', '?')}: metadata.tools: {exc}".splitlines()[0]
        ) from None


def passage_items(passages: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """``(doc id, text)`` of each passage: a retrieved entry (``doc_id``) or an example's own
    passage (``id``)."""
    out = []
    for i, p in enumerate(passages):
        doc_id = p.get("doc_id", p.get("id"))
        text = p.get("text")
        if not isinstance(doc_id, str) or not isinstance(text, str):
            raise InputError(
                f"passage {i} needs a string 'id' (or 'doc_id') and 'text', got keys {sorted(p)}"
            )
        out.append((doc_id, text))
    return out


def _truncate(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] if " " in text[:limit] else text[:limit]
    return cut + " ..."


def _render(template: str, values: Mapping[str, str]) -> str:
    """Fill ``{name}`` placeholders; ``{{``/``}}`` are literal braces."""
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise InputError(
            f"system_prompt: not a valid template ({exc!r}); placeholders are "
            + ", ".join("{" + k + "}" for k in values)
            + " (write {{ and }} for literal braces)"
        ) from None


def _system(
    workflow: Workflow, config: GeneratorConfig, kind: str, tools: Sequence[ToolSpec]
) -> str:
    instructions = workflow.instructions.strip()
    values = {"instructions": f"{instructions}\n" if instructions else ""}
    if kind == "tool_call":
        default = TOOL_SYSTEM_PROMPT
        values["tools"] = "\n".join(f"- {t.name}: {t.description}" for t in tools)
    else:
        default = ANSWER_SYSTEM_PROMPT
        values["abstention"] = workflow.answer.abstention
    # the version's prompt is for the workflow's kind; a preservation example of the other
    # kind gets that kind's built-in prompt
    own = config.system_prompt if kind == workflow.kind else None
    text = _render(own or default, values)
    if config.abstention_criteria and default is ANSWER_SYSTEM_PROMPT:
        text += f"\nAbstain when: {config.abstention_criteria.strip()}"
    return text


def generation_messages(
    workflow: Workflow,
    config: GeneratorConfig,
    example: Example,
    passages: Sequence[Mapping[str, Any]],
    tools: Sequence[ToolSpec],
) -> list[dict[str, str]]:
    """The Chat Completions messages for one example.

    ``answer`` (``example.kind``): the system prompt asks for an answer from the numbered
    passages only, citing their document ids, or the workflow's ``answer.abstention`` wording
    with ``abstain: true``; ``config.abstention_criteria`` is appended. The user message lists
    the passages (``[n] [doc id] text``, truncated to :data:`PASSAGE_CHAR_BUDGET` in all) and
    the question. ``tool_call``: the system prompt lists ``tools`` (name: description) and
    asks for ``{"tool": <name>|"none", "arguments": {...}}``; the user message is the request.
    ``config.system_prompt`` replaces the built-in template.
    """
    if example.kind == "tool_call":
        system = _system(workflow, config, "tool_call", tools)
        return [{"role": "system", "content": system}, {"role": "user", "content": example.input}]
    system = _system(workflow, config, "answer", [])
    items = passage_items(passages)
    lines = []
    if items:
        each = max(80, PASSAGE_CHAR_BUDGET // len(items))
        for n, (doc_id, text) in enumerate(items, start=1):
            lines.append(f"[{n}] [{doc_id}] {_truncate(text, each)}")
    else:
        lines.append("(no passages)")
    user = "Passages:\n" + "\n".join(lines) + f"\n\nQuestion: {example.input}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def response_schema(
    kind: str, tools: Sequence[ToolSpec], config: GeneratorConfig | None = None
) -> dict[str, Any]:
    """The JSON Schema an output of ``kind`` must satisfy (constrained decoding sends it as
    ``response_format``; format validity is checked against it).

    ``answer``: ``{"answer": str, "citations": [str], "abstain": bool}``, all required.
    ``tool_call``: ``{"tool", "arguments"}`` as one ``anyOf`` branch per tool (``tool`` is the
    tool's name, ``arguments`` its ``parameters`` schema) plus ``{"tool": "none",
    "arguments": {}}``. ``config`` is accepted for future per-version variations.
    """
    del config
    if kind == "answer":
        return {
            "type": "object",
            "properties": {
                "answer": {"type": "string"},
                "citations": {"type": "array", "items": {"type": "string"}},
                "abstain": {"type": "boolean"},
            },
            "required": ["answer", "citations", "abstain"],
        }
    if kind != "tool_call":
        raise InputError(f"response_schema: kind must be 'answer' or 'tool_call', got {kind!r}")
    branches: list[dict[str, Any]] = [
        {
            "type": "object",
            "properties": {"tool": {"const": t.name}, "arguments": t.parameters},
            "required": ["tool", "arguments"],
        }
        for t in tools
    ]
    branches.append(
        {
            "type": "object",
            "properties": {
                "tool": {"const": NO_TOOL},
                # llama.cpp's grammar ignores maxProperties; this form it enforces
                "arguments": {"type": "object", "properties": {}, "additionalProperties": False},
            },
            "required": ["tool", "arguments"],
        }
    )
    return {"anyOf": branches}


_UNDECODABLE = ("pattern", "format", "patternProperties")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions")
_SUBSCHEMA_ONE = ("items", "additionalProperties", "not", "contains")


def decoding_schema(schema: Any) -> Any:
    """``schema`` as sent for constrained decoding: without ``pattern``, ``format`` and
    ``patternProperties``, which llama.cpp's grammar converter cannot express (a date pattern
    ``^\\d{4}-\\d{2}-\\d{2}$`` became a broken grammar and crashed the server). Those
    constraints stay in :func:`response_schema` and the tools' schemas, so an output that
    breaks one is still judged format- or argument-invalid."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _UNDECODABLE:
            continue
        if key in _SUBSCHEMA_LISTS and isinstance(value, list):
            out[key] = [decoding_schema(v) for v in value]
        elif key in _SUBSCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: decoding_schema(v) for name, v in value.items()}
        elif key in _SUBSCHEMA_ONE and isinstance(value, dict):
            out[key] = decoding_schema(value)
        else:
            out[key] = value
    return out


def target_output(
    example: Example,
    passages: Sequence[Mapping[str, Any]] = (),
    *,
    abstention: str | None = None,
) -> str:
    """The JSON a model should emit for a reviewed example (the SFT target), in the format of
    :func:`response_schema`.

    ``answer``: an unanswerable question gives the abstention (``abstention``, default the
    :class:`~tunegate.config.AnswerSettings` wording) with ``abstain: true``; an answerable
    one its ``reference`` citing its gold documents (those among ``passages`` when passages
    are given and any gold document is among them). ``tool_call``: the expected call, or
    ``{"tool": "none", "arguments": {}}``. An answerable example without a reference has no
    target text: :class:`~tunegate.errors.InputError`.
    """
    if example.kind == "tool_call":
        call = example.expected_tool
        value: dict[str, Any] = (
            {"tool": NO_TOOL, "arguments": {}}
            if call is None
            else {"tool": call.name, "arguments": call.arguments}
        )
        return json.dumps(value, ensure_ascii=False)
    if not example.answerable:
        wording = abstention or AnswerSettings().abstention
        value = {"answer": wording, "citations": [], "abstain": True}
        return json.dumps(value, ensure_ascii=False)
    if not example.reference:
        raise InputError(
            f"example {getattr(example, 'id', '?')} has no reference answer, so it has no "
            f"target output; add a reference (or leave it out of the training data)"
        )
    gold = list(dict.fromkeys(d.id for d in example.gold_documents))
    shown = {doc_id for doc_id, _ in passage_items(passages)}
    if shown and any(g in shown for g in gold):
        gold = [g for g in gold if g in shown]
    value = {"answer": example.reference, "citations": gold, "abstain": False}
    return json.dumps(value, ensure_ascii=False)
