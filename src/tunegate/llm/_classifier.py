"""The ``llm`` backend: a prompted LLM behind an OpenAI-compatible Chat Completions endpoint.

Probabilities (docs/models.md#llms):

* ``logprobs`` — one greedy, schema-constrained answer per text with ``logprobs`` and
  ``top_logprobs``; label log-probabilities are read off the tokens where the label's value
  starts (:func:`tunegate.llm.label_logprobs`).
* ``samples`` — k answers per text (``llm.samples``, seeds 0..k-1, ``llm.temperature``);
  probabilities are the smoothed answer frequencies
  (:func:`tunegate.metrics.smoothed_frequencies`), invalid answers spread evenly.
* ``auto`` — ``logprobs`` when the server returns them (asked once, on the first text),
  else ``samples``.

Either way the scores are label log-probabilities, and calibration is one temperature on them
(:meth:`LlmClassifier.fit_temperature`, through :func:`tunegate.metrics.fit_temperature`).
Every answer is cached in the store (:mod:`tunegate.store._llm_cache`) before the next
failure can lose it; a text whose answers are all invalid gets a uniform row, never a class.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tunegate.config import Workflow
from tunegate.errors import InputError
from tunegate.llm._answers import AnswerKind, AnswerOutcome, label_logprobs, parse_answer
from tunegate.llm._client import ChatClient, ChatResult
from tunegate.llm._prompt import answer_schema, chat_messages, prompt_hash, system_prompt
from tunegate.metrics import fit_temperature, smoothed_frequencies, softmax
from tunegate.models._base import Metadata, labels_to_index, register_backend
from tunegate.records import ModelKind, content_hash
from tunegate.store._llm_cache import LlmResponseRow, LlmUsage, llm_cache_key, text_hash

if TYPE_CHECKING:
    from tunegate.store import Store

__all__ = ["LlmClassifier", "LlmPrediction", "llm_version_id"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LlmPrediction:
    """Probabilities (n, k) and, per text, its answers' outcomes and usage."""

    proba: FloatArray
    outcomes: list[AnswerOutcome]
    usage: list[LlmUsage]
    """Tokens, cost and latency of each text's requests (cached ones included: what the
    answers cost when they were made)."""
    requested: int = 0
    """Requests sent to the server in this call (the rest came from the cache)."""
    cached: int = 0
    """Requests answered from the cache."""

    @property
    def invalid_mask(self) -> npt.NDArray[np.bool_]:
        """(n,) True where no answer named a label."""
        return np.array([not o.answered for o in self.outcomes], dtype=np.bool_)


def llm_version_id(
    model: str,
    system: str,
    *,
    method: str = "auto",
    samples: int = 5,
    temperature: float = 1.0,
    calibration_temperature: float = 1.0,
) -> str:
    """``llm-`` and a content hash of the model, the prompt hash and how probabilities are
    made: equal configurations, equal versions."""
    digest = content_hash(
        "llm",
        model,
        prompt_hash(system, model),
        method,
        samples if method != "logprobs" else None,
        round(temperature, 6) if method != "logprobs" else None,
        round(calibration_temperature, 6),
    )
    return f"llm-{digest[:12]}"


@dataclass
class _Plan:
    """The requests of one text."""

    text: str
    bodies: list[dict[str, Any]]
    keys: list[str]
    results: list[ChatResult | None] = field(default_factory=list)


class LlmClassifier:
    """Label probabilities from an LLM behind an OpenAI-compatible endpoint.

    ``LlmClassifier(workflow, system_prompt=None, store=None)``: the prompt is
    :func:`tunegate.llm.system_prompt` of ``system_prompt`` (a template; default the
    workflow's ``llm.system_prompt``); ``store`` caches answers (without one, answers are
    cached in memory for this object's life). ``client`` replaces the HTTP client built from
    ``workflow.llm``.
    """

    kind = ModelKind.REMOTE_LLM

    def __init__(
        self,
        workflow: Workflow,
        *,
        system_prompt: str | None = None,
        store: Store | None = None,
        client: ChatClient | None = None,
        calibration_temperature: float | None = None,
    ) -> None:
        if calibration_temperature is not None and calibration_temperature <= 0:
            raise InputError(f"calibration_temperature must be > 0, got {calibration_temperature}")
        self.workflow = workflow
        self.settings = workflow.llm
        self.labels = workflow.label_names
        self.template = system_prompt
        self.system = _system_prompt(workflow, system_prompt)
        self.prompt_hash = prompt_hash(self.system, self.settings.model)
        self.store = store
        self.client = client or ChatClient.from_settings(self.settings)
        self.calibration_temperature = calibration_temperature or 1.0
        self.method_: str | None = (
            None if self.settings.probabilities == "auto" else self.settings.probabilities
        )
        """The method in use (``auto`` is resolved on the first text)."""
        self._memory: dict[str, LlmResponseRow] = {}
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        """Content id of model, prompt and probability method (:func:`llm_version_id`)."""
        return llm_version_id(
            self.settings.model,
            self.system,
            method=self.settings.probabilities,
            samples=self.settings.samples,
            temperature=self.settings.temperature,
            calibration_temperature=self.calibration_temperature,
        )

    def describe(self) -> dict[str, Any]:
        """Config as a JSON-able dict (for ``ModelVersion.config``)."""
        return {
            "model": self.settings.model,
            "base_url": self.client.base_url,
            "system_prompt": self.system,
            "template": self.template,
            "prompt_hash": self.prompt_hash,
            "probabilities": self.settings.probabilities,
            "samples": self.settings.samples,
            "temperature": self.settings.temperature,
            "calibration_temperature": self.calibration_temperature,
        }

    # -- requests ---------------------------------------------------------------------------

    def _body(self, **extra: Any) -> dict[str, Any]:
        s = self.settings
        body: dict[str, Any] = {"model": s.model, "max_tokens": s.max_tokens}
        schema = answer_schema(self.workflow)
        if s.response_format == "json_object_schema":
            body["response_format"] = {"type": "json_object", "schema": schema}
        elif s.response_format == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema, "strict": True},
            }
        elif s.response_format == "json_object":
            body["response_format"] = {"type": "json_object"}
        body.update(extra)
        return body

    def _params(self, method: str) -> list[dict[str, Any]]:
        """The request parameters (everything but the messages) of one text's requests."""
        if method == "logprobs":
            return [
                self._body(
                    temperature=0.0,
                    seed=0,
                    logprobs=True,
                    top_logprobs=self.settings.top_logprobs,
                )
            ]
        return [
            self._body(temperature=self.settings.temperature, seed=i)
            for i in range(self.settings.samples)
        ]

    def _plan(self, text: str, method: str) -> _Plan:
        params = self._params(method)
        keys = [llm_cache_key(self.settings.model, self.prompt_hash, text, p) for p in params]
        bodies = [{**p, "messages": chat_messages(self.system, text)} for p in params]
        return _Plan(text=text, bodies=bodies, keys=keys, results=[None] * len(params))

    def _lookup(self, keys: Sequence[str]) -> dict[str, LlmResponseRow]:
        if self.store is not None:
            return self.store.llm_responses(keys)
        with self._lock:
            return {k: self._memory[k] for k in keys if k in self._memory}

    def _keep(self, row: LlmResponseRow) -> None:
        if self.store is not None:
            self.store.put_llm_responses([row])
        else:
            with self._lock:
                self._memory.setdefault(row.key, row)

    def _row(self, plan: _Plan, i: int, result: ChatResult) -> LlmResponseRow:
        s = self.settings
        cost = (
            result.prompt_tokens * s.cost_per_1k_input_tokens
            + result.completion_tokens * s.cost_per_1k_output_tokens
        ) / 1000.0
        params = {k: v for k, v in plan.bodies[i].items() if k != "messages"}
        return LlmResponseRow(
            key=plan.keys[i],
            model=s.model,
            prompt_hash=self.prompt_hash,
            text_hash=text_hash(plan.text),
            params=params,
            response=result.to_json(),
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            latency_ms=result.latency_ms,
            cost=cost,
        )

    def _run(self, plans: Sequence[_Plan]) -> tuple[list[list[LlmResponseRow]], int, int]:
        """Fill every plan's answers from the cache, then the server; each new answer is
        cached as it arrives. Returns the rows per plan, requests sent, requests cached."""
        all_keys = [k for p in plans for k in p.keys]
        cached = self._lookup(all_keys)
        todo: list[tuple[int, int]] = [
            (pi, i) for pi, p in enumerate(plans) for i, k in enumerate(p.keys) if k not in cached
        ]
        rows: dict[str, LlmResponseRow] = dict(cached)

        def on_result(j: int, result: ChatResult) -> None:
            pi, i = todo[j]
            row = self._row(plans[pi], i, result)
            self._keep(row)
            rows[row.key] = row

        self.client.complete_many([plans[pi].bodies[i] for pi, i in todo], on_result=on_result)
        per_plan = [[rows[k] for k in p.keys] for p in plans]
        return per_plan, len(todo), len(all_keys) - len(todo)

    def _resolve_method(self, texts: Sequence[str]) -> str:
        if self.method_ is not None:
            return self.method_
        plan = self._plan(texts[0], "logprobs")
        (rows,), _, _ = self._run([plan])
        has_logprobs = bool(rows[0].response.get("logprobs"))
        self.method_ = "logprobs" if has_logprobs else "samples"
        return self.method_

    # -- scoring ----------------------------------------------------------------------------

    def _score(
        self, rows: Sequence[LlmResponseRow], method: str
    ) -> tuple[list[float], AnswerOutcome]:
        counts = dict.fromkeys(self.labels, 0)
        kinds = dict.fromkeys(AnswerKind, 0)
        answers: list[str | None] = []
        for row in rows:
            r = row.response
            label, kind = parse_answer(
                r.get("content"),
                self.labels,
                refusal=r.get("refusal"),
                finish_reason=r.get("finish_reason"),
            )
            kinds[kind] += 1
            answers.append(label)
            if label is not None:
                counts[label] += 1
        outcome = AnswerOutcome(
            method=method,
            valid=kinds[AnswerKind.VALID],
            not_a_label=kinds[AnswerKind.NOT_A_LABEL],
            invalid_json=kinds[AnswerKind.INVALID_JSON],
            refusal=kinds[AnswerKind.REFUSAL],
        )
        k = len(self.labels)
        if not outcome.answered:
            return [0.0] * k, outcome
        if method == "logprobs":
            tokens = rows[0].response.get("logprobs")
            answer = answers[0]
            if tokens and answer is not None:
                scores = label_logprobs(tokens, answer, self.labels)
                if scores is not None:
                    return scores, outcome
        freq = smoothed_frequencies(
            np.array([[counts[y] for y in self.labels]], dtype=np.float64),
            np.array([outcome.invalid], dtype=np.float64),
            smoothing=self.settings.smoothing,
        )
        return [float(v) for v in np.log(freq[0])], outcome

    def predict_scores(self, texts: Sequence[str]) -> tuple[FloatArray, LlmPrediction]:
        """Label log-probabilities (n, k) before calibration, and the prediction (whose
        ``proba`` is calibrated)."""
        items = _validate(texts)
        k = len(self.labels)
        if not items:
            empty = np.zeros((0, k))
            return empty, LlmPrediction(proba=empty, outcomes=[], usage=[])
        method = self._resolve_method(items)
        plans = [self._plan(t, method) for t in items]
        per_plan, sent, cached = self._run(plans)
        scores = np.zeros((len(items), k))
        outcomes: list[AnswerOutcome] = []
        usage: list[LlmUsage] = []
        for i, rows in enumerate(per_plan):
            row_scores, outcome = self._score(rows, method)
            scores[i] = row_scores
            outcomes.append(outcome)
            usage.append(
                sum(
                    (
                        LlmUsage(1, r.prompt_tokens, r.completion_tokens, r.cost, r.latency_ms)
                        for r in rows
                    ),
                    LlmUsage(),
                )
            )
        proba = softmax(scores, self.calibration_temperature)
        return scores, LlmPrediction(
            proba=proba, outcomes=outcomes, usage=usage, requested=sent, cached=cached
        )

    def predict_outcomes(self, texts: Sequence[str], metadata: Metadata = None) -> LlmPrediction:
        """Probabilities with each text's answer outcomes and usage (``metadata`` unused)."""
        return self.predict_scores(texts)[1]

    def predict_proba(self, texts: Sequence[str], metadata: Metadata = None) -> FloatArray:
        """(n, k) probabilities in ``labels`` order; a text without a valid answer gets a
        uniform row (normalized entropy 1: routed to clarify)."""
        return self.predict_outcomes(texts, metadata).proba

    def fit_temperature(self, texts: Sequence[str], labels: Sequence[str]) -> LlmClassifier:
        """Fit the calibration temperature on labelled texts (NLL over the label
        log-probabilities; texts without a valid answer are left out). Returns ``self``."""
        if len(texts) != len(labels):
            raise InputError(f"fit_temperature got {len(texts)} texts but {len(labels)} labels")
        y = labels_to_index(labels, self.labels)
        scores, prediction = self.predict_scores(texts)
        keep = ~prediction.invalid_mask
        if not keep.any():
            raise InputError(
                "fit_temperature: no text got a valid answer, so there is nothing to fit; "
                "check the prompt and the model (tunegate eval shows the invalid answers)"
            )
        self.calibration_temperature = fit_temperature(scores[keep], y[keep], fallback=1.0)
        return self

    def usage_for(self, text: str) -> LlmUsage:
        """Tokens, cost and latency of the cached requests for ``text`` under this model and
        prompt (the usage of a decision on it); zero without a store."""
        if self.store is None:
            return LlmUsage()
        return self.store.llm_usage(self.settings.model, self.prompt_hash, text)


def _system_prompt(workflow: Workflow, template: str | None) -> str:
    return system_prompt(workflow, template)


def _validate(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise InputError("predict_proba takes a list of texts, not one string")
    items = list(texts)
    for i, t in enumerate(items):
        if not isinstance(t, str):
            raise InputError(f"texts[{i}] is {type(t).__name__}, expected a string")
    return items


@register_backend("llm")
def _build(
    workflow: Workflow,
    system_prompt: str | None = None,
    store: Store | None = None,
    **kwargs: Any,
) -> LlmClassifier:
    return LlmClassifier(workflow, system_prompt=system_prompt, store=store, **kwargs)
