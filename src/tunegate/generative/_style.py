"""Style as its own stage (issue 20, item 7): a rewrite pass that puts a task model's answers
into the house tone, as a separate model version evaluated on its own, so a tone change never
touches the task model (docs/generative.md "Style as its own stage").

The rewrite changes an answer's wording only. What the gate measures is carried through by
construction: the cited documents, the abstention, the tool call and the retrieved passages
are copied from the task output, never re-generated; an abstention and a tool call are not
rewritten at all; a rewrite that loses an inline citation marker (``[doc-3]``) or cannot be
read is not used (the task text is kept, and ``metadata["style_error"]`` says why). Facts are
NOT guarded here: a rewrite that changes a number is the support checker's to catch when the
style version is scored like any other version.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from tunegate.errors import InputError

if TYPE_CHECKING:
    from tunegate.llm import ChatClient, ChatResult
    from tunegate.models import Encoder
    from tunegate.records import GenerativeOutput

__all__ = [
    "REWRITE_SCHEMA",
    "StyleRewriter",
    "StyledGenerator",
    "citation_markers",
    "rewrite_outputs",
    "style_similarity",
]

REWRITE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"text": {"type": "string"}},
    "required": ["text"],
    "additionalProperties": False,
}
"""The JSON Schema the rewrite is constrained to (``response_format``)."""

_RULES = """\
Rewrite the ANSWER below in the house style described here:
{instructions}

Rules that are never broken:
- Keep every fact exactly: every number, version, date, duration, name and condition.
- Keep every citation marker in square brackets, such as [doc-3], exactly as written, after
  the sentence it belongs to.
- Add no fact, no advice and no citation; remove none.
- Change only tone and wording.
Reply with JSON only: {{"text": "<the rewritten answer>"}}."""


def citation_markers(text: str) -> Counter[str]:
    """The inline citation markers of ``text`` (``[doc-3]``, ``[1]``) with their counts (the
    same marker syntax :func:`~tunegate.generative.split_claims` removes)."""
    from tunegate.generative._claims import _CITATION

    return Counter(_CITATION.findall(text))


class StyleRewriter:
    """Rewrites answer texts in the house tone through an OpenAI-compatible endpoint.

    Args:
        client: the endpoint (:class:`tunegate.llm.ChatClient`).
        instructions: the house style, in words ("plain British English, second person, no
            exclamation marks, at most three sentences").
        model: the model name sent with each request (``None``: none sent).
        version_id: the style version's id (``model_version`` of the rewritten outputs);
            ``None`` derives ``style-<hash>`` from the instructions and model. Pass the id of
            the registered ``stage: style`` generator version to tie outputs to it.
        max_tokens: the rewrite's budget.
    """

    def __init__(
        self,
        client: ChatClient,
        *,
        instructions: str,
        model: str | None = None,
        version_id: str | None = None,
        max_tokens: int = 384,
    ) -> None:
        if not instructions.strip():
            raise InputError("instructions is empty; describe the house style in words")
        if max_tokens < 1:
            raise InputError(f"max_tokens must be positive, got {max_tokens}")
        self.client = client
        self.instructions = instructions
        self.model = model
        self.max_tokens = max_tokens
        if version_id is None:
            digest = hashlib.sha256(
                json.dumps([instructions, model, max_tokens]).encode("utf-8")
            ).hexdigest()
            version_id = f"style-{digest[:12]}"
        if not version_id.strip():
            raise InputError("version_id is empty; pass the style version's id or None")
        self.version_id = version_id

    def request(self, text: str) -> dict[str, Any]:
        """The Chat Completions body rewriting ``text``."""
        body: dict[str, Any] = {
            "messages": [
                {"role": "system", "content": _RULES.format(instructions=self.instructions)},
                {"role": "user", "content": f"ANSWER:\n{text}"},
            ],
            "temperature": 0.0,
            "seed": 0,
            "max_tokens": self.max_tokens,
            "response_format": {"type": "json_object", "schema": REWRITE_SCHEMA},
        }
        if self.model is not None:
            body["model"] = self.model
        return body

    def rewrite(self, texts: Sequence[str]) -> list[tuple[str, str | None, ChatResult]]:
        """Rewrite each text: ``(text, error, result)`` per input, where ``text`` is the
        rewrite, or the input unchanged when ``error`` says why the rewrite was not used
        (not JSON, no ``text``, cut off, empty, or a citation marker lost or added)."""
        results = self.client.complete_many([self.request(t) for t in texts])
        out = []
        for original, result in zip(texts, results, strict=True):
            rewritten, error = _read_rewrite(result)
            before = citation_markers(original)
            after = citation_markers(rewritten or "")
            if rewritten is not None and after != before:
                lost, added = before - after, after - before
                error = (
                    f"the rewrite changed the citation markers (lost {sorted(lost)}, "
                    f"added {sorted(added)})"
                )
                rewritten = None
            out.append((original if rewritten is None else rewritten, error, result))
        return out


def _read_rewrite(result: ChatResult) -> tuple[str | None, str | None]:
    content = result.content
    if content is None or not content.strip():
        return None, "the rewriter returned no text"
    if result.finish_reason == "length":
        return None, "the rewrite was cut off at max_tokens"
    try:
        data = json.loads(content)
    except json.JSONDecodeError as exc:
        return None, f"the rewrite is not JSON ({exc.msg}): {content[:120]!r}"
    text = data.get("text") if isinstance(data, dict) else None
    if not isinstance(text, str) or not text.strip():
        return None, f'the rewrite has no non-empty "text": {content[:120]!r}'
    return text.strip(), None


def rewrite_outputs(
    outputs: Sequence[GenerativeOutput], rewriter: StyleRewriter
) -> list[GenerativeOutput]:
    """The style version's outputs: each task output with its answer text rewritten by
    ``rewriter`` and everything else carried through.

    New outputs (new ids) with ``model_version = rewriter.version_id``,
    ``metadata["rewritten_from"]`` the task output's id and ``metadata["parent_version"]``
    its model version; cited documents, abstention, tool call and the rest of the metadata
    unchanged. Abstentions, tool calls and outputs without text are copied, not rewritten.
    Latency and tokens add the rewrite's to the task output's (the style version pays for
    both stages). A rewrite that could not be used keeps the task text and records
    ``metadata["style_error"]``."""
    todo = [
        i
        for i, o in enumerate(outputs)
        if not o.abstained and o.tool_call is None and o.answer is not None and o.answer.strip()
    ]
    rewritten = rewriter.rewrite([outputs[i].answer or "" for i in todo])
    done = dict(zip(todo, rewritten, strict=True))
    new = []
    for i, output in enumerate(outputs):
        metadata = {
            **output.metadata,
            "rewritten_from": output.id,
            "parent_version": output.model_version,
        }
        update: dict[str, Any] = {"model_version": rewriter.version_id}
        if i in done:
            text, error, result = done[i]
            if error is not None:
                metadata["style_error"] = error
            update |= {
                "answer": text,
                "latency_ms": output.latency_ms + result.latency_ms,
                "prompt_tokens": output.prompt_tokens + result.prompt_tokens,
                "completion_tokens": output.completion_tokens + result.completion_tokens,
            }
        data = output.model_dump(exclude={"id", "created_at"})
        data |= update | {"metadata": metadata}
        new.append(type(output).model_validate(data))
    return new


class _TaskGenerator(Protocol):
    version_id: str

    def generate(self, example: Any) -> GenerativeOutput: ...


class StyledGenerator:
    """The style version as a generator (the ``Generator`` protocol: ``version_id`` and
    ``generate(example)``): the task generator's output, rewritten by ``rewriter``. So the
    style version runs through the same evaluation as any version, on its own.

    Args:
        task: the task version's generator (anything with ``version_id`` and ``generate``).
        rewriter: the style stage; its ``version_id`` is this generator's.
    """

    def __init__(self, task: _TaskGenerator, rewriter: StyleRewriter) -> None:
        if rewriter.version_id == task.version_id:
            raise InputError(
                f"the style version and its task version are both {task.version_id!r}; "
                f"give the style version its own id"
            )
        self.task = task
        self.rewriter = rewriter
        self.version_id = rewriter.version_id

    def generate(self, example: Any) -> GenerativeOutput:
        """The task output for ``example``, rewritten (see :func:`rewrite_outputs`)."""
        return rewrite_outputs([self.task.generate(example)], self.rewriter)[0]


def style_similarity(
    texts: Sequence[str], house_examples: Sequence[str], encoder: Encoder | None = None
) -> float:
    """Mean over ``texts`` of the highest cosine similarity to any of ``house_examples``
    (:func:`tunegate.metrics.style_similarity_score` on their embeddings); ``encoder``
    ``None`` uses the shipped all-MiniLM-L6-v2."""
    from tunegate.metrics import style_similarity_score

    if not texts or not house_examples:
        raise InputError("style_similarity needs at least one text and one house example")
    if encoder is None:
        from tunegate.models import get_encoder

        encoder = get_encoder()
    return style_similarity_score(encoder.embed(list(texts)), encoder.embed(list(house_examples)))
