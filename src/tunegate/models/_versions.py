"""Build the classifier a registered :class:`~tunegate.records.ModelVersion` describes, and
the ``prompt`` versions a system prompt becomes (:func:`prompt_version`)."""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from tunegate.config import Workflow
from tunegate.errors import ConfigError, InputError, ModelError
from tunegate.models._base import _BACKENDS, Classifier, _load_builtin
from tunegate.records import (
    ModelKind,
    ModelVersion,
    PromptVersionConfig,
    ReviewStatus,
    content_hash,
)

if TYPE_CHECKING:
    from tunegate.store import Store

__all__ = [
    "load_model_version",
    "load_prompt_classifier",
    "prompt_backend_check",
    "prompt_version",
    "prompt_version_id",
]

_PLACEHOLDERS = "{instructions}, {labels}, {label_names}"


def load_model_version(
    mv: ModelVersion, workflow: Workflow, *, store: Store | None = None
) -> Classifier:
    """The classifier of ``mv``.

    ``lora``: ``LoraClassifier.for_workflow(mv.artifact_path, workflow)`` (the workflow's
    backend and precision), or ``LocalLlmClassifier(adapter_dir=...)`` for an adapter of the
    local LLM (:func:`artifact_classifier`); ``zero_shot``: config
    ``instructions``/``temperature``; ``prompt``: :func:`load_prompt_classifier` (the stored
    backend with the stored template, on the stored model); ``retrieval``: kNN over the
    store's reviewed examples (config ``k``, ``temperature``; ``example_ids`` pins the exact
    examples); ``rules``: config ``rules`` (else the workflow's rules).
    This is the one loader of registered versions: the service, ``tunegate classify`` and the
    pipelines build champions and candidates through it
    (:func:`tunegate.serving.load_champion` for the champion alias).

    A version with a fitted routing threshold (``mv.clarify_threshold``) gets it as the
    classifier's ``clarify_threshold`` attribute: :func:`tunegate.evaluate.run_eval` and
    :class:`tunegate.serving.TicketClassifier` route with it instead of the workflow's.
    """
    clf = _build(mv, workflow, store)
    if mv.clarify_threshold is not None:
        # the version's fitted routing threshold: read by run_eval and TicketClassifier
        setattr(clf, "clarify_threshold", mv.clarify_threshold)  # noqa: B010
    return clf


def artifact_classifier(artifact_dir: str | Path, workflow: Workflow) -> Classifier:
    """The classifier of a LoRA artifact folder: an adapter of the local LLM (manifest
    ``config.base: llm-local``) is served by ``LocalLlmClassifier(adapter_dir=...)``, an
    encoder adapter by ``LoraClassifier.for_workflow``."""
    from tunegate.lora.causal import is_causal_artifact

    if is_causal_artifact(artifact_dir):
        from tunegate.llm._local import LocalLlmClassifier

        return LocalLlmClassifier(workflow, adapter_dir=artifact_dir)
    from tunegate.lora.classifier import LoraClassifier

    return LoraClassifier.for_workflow(artifact_dir, workflow)


def _build(mv: ModelVersion, workflow: Workflow, store: Store | None) -> Classifier:
    from tunegate.config import RuleSpec
    from tunegate.models._knn import KNNClassifier
    from tunegate.models._rules import RulesClassifier
    from tunegate.models._zeroshot import ZeroShotClassifier

    config = mv.config
    if mv.kind is ModelKind.LORA:
        if not mv.artifact_path:
            raise ModelError(
                f"model version {mv.id} is a LoRA version without artifact_path; "
                f"register it again with its artifact folder"
            )
        return artifact_classifier(mv.artifact_path, workflow)
    if mv.kind is ModelKind.ZERO_SHOT:
        return ZeroShotClassifier(
            workflow, instructions=config.get("instructions"), temperature=config.get("temperature")
        )
    if mv.kind is ModelKind.RETRIEVAL:
        if store is None:
            raise ModelError(
                f"model version {mv.id} is a retrieval model; it needs the store "
                f"for its reviewed examples"
            )
        examples = store.examples(review_status=ReviewStatus.REVIEWED.value)
        pinned = config.get("example_ids")
        if pinned is not None:
            # a version registered from a retrieval attempt: exactly the examples it was
            # judged with (tunegate.diagnose.register_cheap_fix)
            by_id = {e.id: e for e in examples}
            missing = [i for i in pinned if i not in by_id]
            if missing:
                raise ModelError(
                    f"model version {mv.id} is a retrieval model over {len(pinned)} pinned "
                    f"examples; {len(missing)} are no longer reviewed in the store (e.g. "
                    f"{missing[0]}); run `tunegate try retrieval` again for a new version"
                )
            examples = [by_id[i] for i in pinned]
        kwargs = {k: config[k] for k in ("k", "temperature", "floor") if k in config}
        return KNNClassifier(workflow, examples, **kwargs)
    if mv.kind is ModelKind.RULES:
        rules = [RuleSpec.model_validate(r) for r in config.get("rules", [])] or workflow.rules
        return RulesClassifier(rules, workflow.label_names)
    if mv.kind is ModelKind.PROMPT:
        return load_prompt_classifier(mv, workflow, store=store)
    if mv.kind is ModelKind.REMOTE_LLM:
        # a model behind an OpenAI-compatible endpoint, registered with its describe():
        # the model name, the template and the calibration temperature
        from tunegate.models._base import build_classifier

        model = config.get("model") or mv.base_model or workflow.llm.model
        pinned = workflow.model_copy(
            update={"llm": workflow.llm.model_copy(update={"model": model})}
        )
        return build_classifier(
            "llm",
            pinned,
            system_prompt=config.get("template"),
            store=store,
            calibration_temperature=config.get("calibration_temperature"),
        )
    raise ModelError(
        f"model version {mv.id} has kind {mv.kind.value!r}, which tunegate cannot "
        f"build locally; supported: lora, zero_shot, retrieval, rules, prompt, remote_llm"
    )


# -- prompt versions ---------------------------------------------------------------------------


def prompt_version_id(backend: str, prompt_hash: str) -> str:
    """``prompt-`` + 12 hex of (backend, prompt hash): the same prompt on the same model and
    backend is the same version; another backend is another version (its scores differ)."""
    return f"prompt-{content_hash(backend, prompt_hash)[:12]}"


def prompt_backend_check(backend: str) -> None:
    """Refuse a backend that is not registered or whose factory has no ``system_prompt``
    parameter (:class:`~tunegate.errors.InputError` naming the backends that have one)."""
    _load_builtin()
    factory = _BACKENDS.get(backend)
    prompted = sorted(n for n, f in _BACKENDS.items() if _takes(f, "system_prompt"))
    if factory is None:
        raise InputError(
            f"unknown model backend {backend!r} for a prompt; backends that take a system "
            f"prompt: {prompted or 'none registered (install the llm backends)'}"
        )
    if not _takes(factory, "system_prompt"):
        raise InputError(
            f"model backend {backend!r} does not take a system prompt; use one that does: "
            f"{prompted or 'none registered (install the llm backends)'}"
        )


def _takes(factory: Any, name: str) -> bool:
    """Whether ``factory`` names the keyword parameter ``name`` (``**kwargs`` does not count:
    the built-in backends take them all and pass them on)."""
    try:
        return name in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # no signature to read
        return False


def _render(workflow: Workflow, template: str, source: str) -> str:
    """The rendered system prompt; empty or invalid templates raise InputError naming
    ``source``."""
    from tunegate.llm import system_prompt

    if not template.strip():
        raise InputError(
            f"{source} is empty; write a system prompt template (placeholders: {_PLACEHOLDERS})"
        )
    try:
        return system_prompt(workflow, template)
    except ConfigError as exc:
        why = str(exc).removeprefix("llm.system_prompt: ")
        raise InputError(f"{source}: {why}") from None


def prompt_version(
    workflow: Workflow,
    template: str,
    *,
    backend: str = "llm",
    parent: str | None = None,
    source: str = "the prompt template",
) -> ModelVersion:
    """The ``prompt`` :class:`~tunegate.records.ModelVersion` of ``template`` on ``backend``
    with the workflow's ``llm.model`` (not registered: pass it to
    :meth:`tunegate.registry.Registry.register`).

    Its config is a :class:`~tunegate.records.PromptVersionConfig`; its id is
    :func:`prompt_version_id`; ``parent`` is its lineage (the version it changes, usually
    the champion). An empty template, an unknown placeholder or a backend that takes no
    system prompt raise :class:`~tunegate.errors.InputError` naming ``source`` (the file).
    """
    from tunegate.llm import prompt_hash

    prompt_backend_check(backend)
    rendered = _render(workflow, template, source)
    model = workflow.llm.model
    cfg = PromptVersionConfig(
        backend=backend,
        template=template,
        model=model,
        base_url=workflow.llm.base_url,
        prompt_hash=prompt_hash(rendered, model),
        labels=list(workflow.label_names),
    )
    return ModelVersion(
        id=prompt_version_id(backend, cfg.prompt_hash),
        kind=ModelKind.PROMPT,
        base_model=model,
        config=cfg.model_dump(mode="json"),
        parent=parent,
    )


def load_prompt_classifier(
    mv: ModelVersion, workflow: Workflow, *, store: Store | None = None
) -> Classifier:
    """The classifier of a ``prompt`` version: ``build_classifier(config.backend, workflow,
    system_prompt=config.template)`` on the version's model (``llm.model`` pinned to
    ``config.model``; ``store`` is passed to backends that take one, for their response
    cache).

    A version registered for other labels raises :class:`~tunegate.errors.ModelError`; when
    the workflow's instructions or label descriptions changed since registration the rendered
    prompt differs from the one evaluated, which warns (``RuntimeWarning``) and still loads.
    """
    from tunegate.llm import prompt_hash, system_prompt
    from tunegate.models._base import build_classifier

    try:
        cfg = PromptVersionConfig.model_validate(mv.config)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ModelError(
            f"model version {mv.id} is a prompt version with an invalid config ({where}: "
            f"{first['msg']}); register the prompt again (`tunegate try prompt FILE`)"
        ) from None
    if list(cfg.labels) != list(workflow.label_names):
        raise ModelError(
            f"prompt version {mv.id} was registered for labels {cfg.labels}, the workflow has "
            f"{workflow.label_names}; try the prompt again on this workflow"
        )
    llm = workflow.llm.model_copy(update={"model": cfg.model})
    pinned = workflow.model_copy(update={"llm": llm})
    rendered = system_prompt(pinned, cfg.template)
    if prompt_hash(rendered, cfg.model) != cfg.prompt_hash:
        warnings.warn(
            f"prompt version {mv.id}: the workflow's instructions or label descriptions changed "
            f"since it was registered, so its rendered system prompt is not the one evaluated; "
            f"try the prompt again (`tunegate try prompt`) to evaluate what is served",
            RuntimeWarning,
            stacklevel=2,
        )
    prompt_backend_check(cfg.backend)
    kwargs: dict[str, Any] = {"system_prompt": cfg.template}
    if store is not None and _takes(_BACKENDS[cfg.backend], "store"):
        kwargs["store"] = store
    return build_classifier(cfg.backend, pinned, **kwargs)
