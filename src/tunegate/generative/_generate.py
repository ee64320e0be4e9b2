"""Generators: a served LLM with its prompt, retrieval and output settings turning a generative
example into a :class:`~tunegate.records.GenerativeOutput` (docs/generative.md).

A :class:`Generator` is anything with ``version_id`` and ``generate(example)``;
:class:`ChatGenerator` is the one behind an OpenAI-compatible endpoint (``tunegate.llm``), its
settings a :class:`~tunegate.records.GeneratorConfig` stored as a ``generator``
:class:`~tunegate.records.ModelVersion` (:func:`register_generator`, :func:`build_generator`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from tunegate.config import RetrievalSettings, ToolSpec, Workflow
from tunegate.errors import InputError, NotFoundError
from tunegate.generative._prompt import (
    NO_TOOL,
    Example,
    decoding_schema,
    generation_messages,
    passage_items,
    response_schema,
    tool_specs,
)
from tunegate.generative._support import (
    EmbeddingSupportChecker,
    Passage,
    SupportChecker,
    assess_answer,
)
from tunegate.generative._tools import format_valid
from tunegate.records import (
    DocumentRef,
    GenerativeOutput,
    GeneratorConfig,
    ModelKind,
    ModelVersion,
    ToolCall,
)

if TYPE_CHECKING:
    from tunegate.kb import KnowledgeBase
    from tunegate.llm import ChatClient, ChatResult
    from tunegate.store import Store
    from tunegate.store._llm_cache import LlmResponseRow

__all__ = [
    "ChatGenerator",
    "Generator",
    "build_generator",
    "generator_version_id",
    "parse_output",
    "register_generator",
]


@runtime_checkable
class Generator(Protocol):
    """Turns one generative example into an output (a model version of an ``answer`` /
    ``tool_call`` workflow). ``generate``'s output carries ``metadata["retrieved"]``: the
    passages the prompt showed (``doc_id``, ``version``, ``text``, ``stale``,
    ``current_version``), against which its cited refs resolve."""

    version_id: str

    def generate(self, example: Example) -> GenerativeOutput:
        """The output for ``example``."""
        ...


def generator_version_id(config: GeneratorConfig) -> str:
    """``gen-`` and 12 hex digits of a SHA-256 over the config's canonical JSON."""
    blob = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return "gen-" + hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


def register_generator(
    store: Store, workflow: Workflow, config: GeneratorConfig, *, parent: str | None = None
) -> ModelVersion:
    """Register ``config`` as a ``generator`` :class:`~tunegate.records.ModelVersion` (id
    :func:`generator_version_id`; not pointed at by any alias). Idempotent: the same config
    returns the version already registered, whatever ``parent`` says."""
    from tunegate.registry import Registry

    workflow.require_kind("a generator", "answer", "tool_call")
    vid = generator_version_id(config)
    try:
        return store.get_model_version(vid)  # type: ignore[no-any-return]
    except NotFoundError:
        pass
    mv = ModelVersion(
        id=vid,
        kind=ModelKind.GENERATOR,
        base_model=config.model,
        artifact_path=config.adapter,
        config=config.model_dump(mode="json"),
        parent=parent if parent is not None else config.parent,
    )
    return Registry(store).register(mv, as_candidate=False)


def build_generator(workflow: Workflow, version: ModelVersion, store: Store | None) -> Generator:
    """The generator of a registered ``generator`` version (its :class:`GeneratorConfig`), with
    the workflow's ``llm:`` endpoint, the store's knowledge base and response cache."""
    if version.kind is not ModelKind.GENERATOR:
        raise InputError(
            f"model version {version.id} is a {version.kind.value} version, not a generator; "
            f"register a GeneratorConfig with register_generator"
        )
    try:
        config = GeneratorConfig.model_validate(version.config)
    except ValueError as exc:
        raise InputError(
            f"model version {version.id}: config is not a GeneratorConfig ({exc})".splitlines()[0]
        ) from None
    if config.stage == "style":
        return _style_generator(workflow, version, config, store)
    return ChatGenerator(workflow, config, version_id=version.id, store=store)


def _style_generator(
    workflow: Workflow, version: ModelVersion, config: GeneratorConfig, store: Store | None
) -> Generator:
    """A ``style`` version: its parent task version's outputs rewritten in the house tone
    (``system_prompt`` holds the style instructions), evaluated as a version of its own."""
    from tunegate.generative._style import StyledGenerator, StyleRewriter
    from tunegate.llm import ChatClient

    if config.parent is None or store is None:
        raise InputError(
            f"model version {version.id} is a style stage without a task version to rewrite; "
            "set config.parent to the task version and build it with a store"
        )
    if not (config.system_prompt or "").strip():
        raise InputError(
            f"model version {version.id} is a style stage without instructions; put the house "
            "style in config.system_prompt"
        )
    task = build_generator(workflow, store.get_model_version(config.parent), store)
    rewriter = StyleRewriter(
        ChatClient.from_settings(workflow.llm),
        instructions=str(config.system_prompt),
        model=config.model,
        version_id=version.id,
        max_tokens=config.max_tokens,
    )
    return StyledGenerator(task, rewriter)


# -- parsing -----------------------------------------------------------------------------------

_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
_MARKER = re.compile(r"\[([^\[\]\n]{1,80})\]")


def _first_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` (fences and prose around it allowed)."""
    stripped = _FENCE.sub("", text.strip())
    try:
        value = json.loads(stripped)
        return value if isinstance(value, dict) else None
    except ValueError:
        pass
    decoder = json.JSONDecoder()
    for start in (i for i, ch in enumerate(text) if ch == "{"):
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def parse_output(kind: str, raw: str) -> dict[str, Any] | None:
    """The output object of ``raw`` read leniently (the first JSON object in it, Markdown
    fences and prose around it ignored), or ``None`` when there is none. Strictness is
    :func:`~tunegate.generative.format_valid`'s job."""
    del kind
    return _first_object(raw)


# -- the chat generator --------------------------------------------------------------------


def _merged_settings(workflow: Workflow, overrides: Mapping[str, Any]) -> RetrievalSettings:
    if not overrides:
        return workflow.retrieval
    try:
        return RetrievalSettings.model_validate(
            {**workflow.retrieval.model_dump(), **dict(overrides)}
        )
    except ValueError as exc:
        raise InputError(
            f"GeneratorConfig.retrieval: {exc}".splitlines()[0]
            + f" (overrides given: {sorted(overrides)})"
        ) from None


class ChatGenerator:
    """A generator behind an OpenAI-compatible Chat Completions endpoint.

    For each example: the passages (``metadata["passages"]`` of the example, else a
    knowledge-base search of its input as of ``asked_at`` with ``config.retrieval`` overrides;
    ``config.freshness=False`` searches superseded versions too), the tools
    (``metadata["tools"]``, else the workflow's), the messages of
    :func:`~tunegate.generative.generation_messages`; one request (``response_format``
    ``{"type": "json_object", "schema": ...}`` when ``config.constrained``, else free text
    read leniently); with ``config.verify`` an answer one of whose claims its cited passages
    do not support becomes the abstention.

    Args:
        workflow: an ``answer`` or ``tool_call`` workflow (its ``llm:`` endpoint, its tools,
            its abstention wording, its ``retrieval:`` settings).
        config: the version's settings.
        version_id: the id outputs are recorded under.
        client: the Chat Completions client (default: from ``workflow.llm``).
        kb: the knowledge base (default: the store's, with the merged retrieval settings).
        store: caches every answer (``llm_responses``): a rerun sends no request.
        checker: the support checker of ``config.verify`` (default
            :class:`~tunegate.generative.EmbeddingSupportChecker`, loaded on first use).
    """

    def __init__(
        self,
        workflow: Workflow,
        config: GeneratorConfig,
        *,
        version_id: str,
        client: ChatClient | None = None,
        kb: KnowledgeBase | None = None,
        store: Store | None = None,
        checker: SupportChecker | None = None,
    ) -> None:
        workflow.require_kind("a generator", "answer", "tool_call")
        self.workflow = workflow
        self.config = config
        self.version_id = version_id
        if client is None:
            from tunegate.llm import ChatClient

            client = ChatClient.from_settings(workflow.llm)
        self.client = client
        self.store = store
        self.settings = _merged_settings(workflow, config.retrieval)
        self._kb = kb
        self._kb_ready = False
        self._checker = checker
        self._memory: dict[str, LlmResponseRow] = {}
        self._lock = threading.Lock()

    # -- retrieval ---------------------------------------------------------------------------

    @property
    def kb(self) -> KnowledgeBase:
        """The knowledge base searched, with this version's retrieval settings."""
        with self._lock:
            if not self._kb_ready:
                from tunegate.kb import KnowledgeBase

                base = self._kb
                if base is None:
                    if self.store is None:
                        raise InputError(
                            "an answer generator needs a knowledge base: pass kb= or store=, "
                            "or give each example its own metadata.passages"
                        )
                    base = KnowledgeBase(self.store, self.settings, model=self.workflow.model)
                    base.sync()
                elif base.settings != self.settings:
                    derived = KnowledgeBase(
                        base.store, self.settings, encoder=base.encoder, model=self.workflow.model
                    )
                    if derived.chunking != base.chunking:
                        derived.sync()  # a new chunk size: chunk and embed under it once
                    base = derived
                self._kb = base
                self._kb_ready = True
            assert self._kb is not None
            return self._kb

    def retrieve(self, example: Example) -> list[dict[str, Any]]:
        """The passages shown for ``example``: its own ``metadata["passages"]``, else the
        search hits (``doc_id``, ``version``, ``text``, ``stale``, ``current_version``).
        ``stale`` is relative to when the question was asked: the version had been superseded
        (or withdrawn) by ``asked_at``, which only a search without freshness returns."""
        own = example.metadata.get("passages")
        if own is not None:
            if not isinstance(own, list):
                raise InputError(
                    f"example {getattr(example, 'id', '?')}: metadata.passages must be a list "
                    f"of {{'id', 'text'}}, got {type(own).__name__}"
                )
            items = passage_items(own)
            return [
                {
                    "doc_id": doc_id,
                    "version": p.get("version"),
                    "text": text,
                    "stale": bool(p.get("stale", False)),
                    "current_version": p.get("current_version", p.get("version")),
                }
                for (doc_id, text), p in zip(items, own, strict=True)
            ]
        if example.kind != "answer":
            return []
        s = self.settings
        result = self.kb.search(
            example.input,
            as_of=example.asked_at,
            now=example.asked_at,
            top_k=s.top_k,
            filters=s.filters,
            include_superseded=not self.config.freshness,
        )
        return [
            {
                "doc_id": h.doc_id,
                "version": h.version,
                "text": h.text,
                "stale": h.stale,
                "current_version": h.current_version,
            }
            for h in result.hits
        ]

    # -- requests ----------------------------------------------------------------------------

    def _body(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any],
        cite: Sequence[str] = (),
    ) -> dict[str, Any]:
        """The request. Constrained decoding follows :func:`decoding_schema`; for an answer,
        ``cite`` (the ids of the passages shown) restricts the citations to those ids, so a
        small model cannot cite the prompt's placeholder or an id it made up (the validation
        schema stays the general one: format validity is judged as without constraints)."""
        c = self.config
        body: dict[str, Any] = {
            "model": c.model,
            "max_tokens": c.max_tokens,
            "temperature": c.temperature,
            "seed": 0,
        }
        if c.constrained:
            sent = decoding_schema(schema)
            citations = sent.get("properties", {}).get("citations")
            if cite and isinstance(citations, dict):
                citations["items"] = {"enum": list(dict.fromkeys(cite))}
            body["response_format"] = {"type": "json_object", "schema": sent}
        return {**body, "messages": messages}

    def _complete(self, body: dict[str, Any]) -> ChatResult:
        """One answer, from the response cache when this exact request was answered before."""
        from tunegate.llm import ChatResult, prompt_hash
        from tunegate.store._llm_cache import LlmResponseRow, llm_cache_key, text_hash

        system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
        params = {k: v for k, v in body.items() if k != "messages"}
        phash = prompt_hash(system, self.config.model)
        key = llm_cache_key(self.config.model, phash, user, params)
        if self.store is not None:
            found = self.store.llm_responses([key]).get(key)
        else:
            with self._lock:
                found = self._memory.get(key)
        if found is not None:
            return ChatResult.from_json(found.response)
        result = self.client.complete(body)
        row = LlmResponseRow(
            key=key,
            model=self.config.model,
            prompt_hash=phash,
            text_hash=text_hash(user),
            params=params,
            response=result.to_json(),
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            latency_ms=result.latency_ms,
        )
        if self.store is not None:
            self.store.put_llm_responses([row])
        else:
            with self._lock:
                self._memory.setdefault(key, row)
        return result

    # -- outputs -----------------------------------------------------------------------------

    @property
    def checker(self) -> SupportChecker:
        if self._checker is None:
            self._checker = EmbeddingSupportChecker()
        return self._checker

    def generate(self, example: Example) -> GenerativeOutput:
        """The output for ``example`` (see the class docstring)."""
        start = time.perf_counter()
        tools: list[ToolSpec] = tool_specs(self.workflow, example)
        retrieved = self.retrieve(example)
        messages = generation_messages(self.workflow, self.config, example, retrieved, tools)
        schema = response_schema(example.kind, tools, self.config)
        shown = [str(r["doc_id"]) for r in retrieved] if example.kind == "answer" else []
        result = self._complete(self._body(messages, schema, shown))
        raw = result.content or ""
        parsed = parse_output(example.kind, raw)
        meta: dict[str, Any] = {
            "retrieved": retrieved,
            "raw": raw,
            "format_valid": bool(raw.strip()) and format_valid(raw, schema),
            "finish_reason": result.finish_reason,
        }
        common: dict[str, Any] = {
            "example_id": getattr(example, "id", "example"),
            "model_version": self.version_id,
            "kind": example.kind,
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
        }
        if example.kind == "tool_call":
            call = self._tool_call(parsed, meta)
            fields: dict[str, Any] = {"tool_call": call}
        else:
            fields = self._answer(raw, parsed, retrieved, meta)
        # the model's time (cached: as first measured) plus retrieval and parsing here
        overhead = (time.perf_counter() - start) * 1000.0
        return GenerativeOutput(
            **common,
            **fields,
            latency_ms=result.latency_ms + overhead,
            metadata=meta,
        )

    def _tool_call(self, parsed: dict[str, Any] | None, meta: dict[str, Any]) -> ToolCall | None:
        if parsed is None:
            return None
        name = parsed.get("tool", parsed.get("name"))
        if name is None or not isinstance(name, str) or name.strip().lower() in (NO_TOOL, ""):
            return None
        arguments = parsed.get("arguments", {})
        if isinstance(arguments, str):
            with contextlib.suppress(ValueError):
                arguments = json.loads(arguments)
        if not isinstance(arguments, dict):
            meta["arguments_raw"] = json.dumps(arguments, ensure_ascii=False)[:2000]
            arguments = {}
        return ToolCall(name=name, arguments=arguments)

    def _answer(
        self,
        raw: str,
        parsed: dict[str, Any] | None,
        retrieved: Sequence[Mapping[str, Any]],
        meta: dict[str, Any],
    ) -> dict[str, Any]:
        settings = self.workflow.answer
        if parsed is not None and isinstance(parsed.get("answer"), str):
            answer: str = parsed["answer"]
            raw_ids = parsed.get("citations") or []
            ids = [str(i) for i in raw_ids] if isinstance(raw_ids, list) else [str(raw_ids)]
            abstained = parsed.get("abstain") is True
        else:  # free text: citation markers that name a shown document
            answer = raw.strip()
            shown = {str(p["doc_id"]) for p in retrieved}
            ids = [m for m in _MARKER.findall(answer) if m in shown]
            abstained = False
        abstained = abstained or settings.is_abstention(answer) or not answer.strip()
        versions: dict[str, str | None] = {}
        for p in retrieved:
            versions.setdefault(str(p["doc_id"]), p.get("version"))
        cited_ids = list(dict.fromkeys(i.strip() for i in ids if i.strip()))
        unknown = [i for i in cited_ids if i not in versions]
        if unknown:
            meta["unknown_citations"] = unknown
        if abstained:
            return {"answer": answer or settings.abstention, "abstained": True, "cited": []}
        cited = [DocumentRef(id=i, version=versions.get(i)) for i in cited_ids]
        if self.config.verify:
            passages = [
                Passage(str(p["text"]), superseded=bool(p.get("stale")), doc_id=str(p["doc_id"]))
                for p in retrieved
                if str(p["doc_id"]) in cited_ids
            ]
            support = assess_answer(answer, passages, self.checker)
            bad = [
                c
                for c, ok, stale in zip(
                    support.claims, support.supported, support.stale, strict=True
                )
                if not ok or stale
            ]
            meta["verification"] = {"claims": support.n_claims, "unsupported": bad}
            if bad or not support.n_claims:
                meta["unverified_answer"] = answer
                return {"answer": settings.abstention, "abstained": True, "cited": []}
        return {"answer": answer, "abstained": False, "cited": cited}
