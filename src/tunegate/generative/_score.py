"""Score generative outputs against their examples: the per-example columns
(:class:`~tunegate.records.ExampleScore`) the metrics of :mod:`tunegate.metrics` take
(docs/generative.md#scoring-and-correctness).

Correctness, by kind:

* ``answer``, unanswerable: the output abstained.
* ``answer``, answerable: not abstained, every ``check`` passes on the answer text, and it
  matches the reference or an alternative (:func:`reference_match`); without a reference,
  it cites a gold document (when there are gold documents).
* ``tool_call``: the expected tool (or no tool when none is expected) with arguments equal to
  the expected ones after normalisation against the tool's schema.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tunegate.config import Workflow
from tunegate.errors import InputError
from tunegate.generative._claims import salient_tokens
from tunegate.generative._prompt import Example, passage_items, tool_specs
from tunegate.generative._support import (
    EmbeddingSupportChecker,
    Passage,
    SupportChecker,
    assess_answer,
)
from tunegate.generative._tools import arguments_equal, arguments_valid
from tunegate.records import (
    ExampleScore,
    GenerativeOutput,
    GenerativeSuite,
    SuiteSlice,
)
from tunegate.text import STOPWORDS, words

__all__ = ["TOKEN_F1_THRESHOLD", "reference_match", "score_outputs", "token_f1"]

TOKEN_F1_THRESHOLD = 0.5
"""Token F1 (content words) from which an answer matches a reference without salient tokens."""


def token_f1(answer: str, reference: str) -> float:
    """SQuAD-style token F1 over content words (:func:`tunegate.text.words` without
    stopwords, as multisets); 0 when either side has none."""
    from collections import Counter

    a = Counter(w for w in words(answer) if w not in STOPWORDS)
    r = Counter(w for w in words(reference) if w not in STOPWORDS)
    common = sum((a & r).values())
    if not common:
        return 0.0
    precision, recall = common / sum(a.values()), common / sum(r.values())
    return 2 * precision * recall / (precision + recall)


def reference_match(answer: str, reference: str, *, threshold: float = TOKEN_F1_THRESHOLD) -> bool:
    """True when ``answer`` states the reference's facts: every number and date of the
    reference is in the answer (:func:`~tunegate.generative.salient_tokens`), **and** either
    the reference has salient tokens and all its entity-like words are in the answer, or the
    content-word token F1 is at least ``threshold``."""
    ref, ans = salient_tokens(reference), salient_tokens(answer)
    if not (ref.numbers <= ans.numbers and ref.dates <= ans.dates):
        return False
    answer_words = {w.lower() for w in words(answer)}
    has_salient = bool(ref.numbers or ref.dates or ref.entities)
    entities_ok = all(e in ans.entities or e in answer_words for e in ref.entities)
    if has_salient and entities_ok:
        return True
    return token_f1(answer, reference) >= threshold


def _examples(suite_or_examples: GenerativeSuite | Sequence[Example]) -> list[Example]:
    if isinstance(suite_or_examples, GenerativeSuite):
        return list(suite_or_examples.examples)
    return list(suite_or_examples)


def _cited_passages(
    output: GenerativeOutput, example: Example
) -> tuple[list[Passage], list[dict[str, Any]]]:
    """The passages the output cites (from what its prompt showed), and what was shown. A
    citation with a version matches that version's passages; one without, every passage of
    its document.

    Shown: ``metadata["retrieved"]``, else the example's ``metadata["passages"]``. Without
    either, the example's ``context`` (passages without ids) counts as cited in full."""
    shown = output.metadata.get("retrieved")
    if shown is None and example.metadata.get("passages") is not None:
        shown = [
            {"doc_id": d, "version": None, "text": t, "stale": False}
            for d, t in passage_items(example.metadata["passages"])
        ]
    if shown is None:
        return [Passage(t) for t in example.context], []
    cited = {(r.id, r.version) for r in output.cited}
    any_version = {r.id for r in output.cited if r.version is None}
    passages = [
        Passage(str(p["text"]), superseded=bool(p.get("stale")), doc_id=str(p["doc_id"]))
        for p in shown
        if (str(p["doc_id"]), p.get("version")) in cited or str(p["doc_id"]) in any_version
    ]
    return passages, list(shown)


def _score_answer(
    output: GenerativeOutput, example: Example, checker: SupportChecker | None, base: dict[str, Any]
) -> tuple[dict[str, Any], SupportChecker | None]:
    passages, shown = _cited_passages(output, example)
    gold = list(dict.fromkeys(d.id for d in example.gold_documents))
    cited = list(dict.fromkeys(r.id for r in output.cited))
    text = output.answer or ""
    n_claims = n_unsupported = n_stale = 0
    evidence: list[str] = []
    if not output.abstained and text.strip():
        if checker is None:
            checker = EmbeddingSupportChecker()
        support = assess_answer(text, passages, checker)
        n_claims, n_unsupported, n_stale = support.n_claims, support.n_unsupported, support.n_stale
        for claim, ok, stale in zip(support.claims, support.supported, support.stale, strict=True):
            if stale:
                evidence.append(f"stale: {claim!r}")
            elif not ok:
                evidence.append(f"unsupported: {claim!r}")
    if example.answerable:
        checks_ok = all(c.passes(text) for c in example.checks)
        refs = [r for r in [example.reference, *example.alternatives] if r]
        if refs:
            matched = any(reference_match(text, r) for r in refs)
        else:
            matched = not gold or bool(set(gold) & set(cited))
        correct = not output.abstained and checks_ok and matched
        if output.abstained:
            evidence.append("abstained on an answerable question")
        elif not checks_ok:
            failed = [c.type for c in example.checks if not c.passes(text)]
            evidence.append(f"failed checks: {failed}")
        elif not matched:
            evidence.append("does not match the reference")
    else:
        correct = output.abstained
        if not correct:
            evidence.append("answered an unanswerable question")
    retrieved_ids = {str(p["doc_id"]) for p in shown}
    fields = {
        **base,
        "n_claims": n_claims,
        "n_unsupported": n_unsupported,
        "n_stale": n_stale,
        "cited": cited,
        "gold": gold,
        "answerable": example.answerable,
        "abstained": output.abstained,
        "correct": correct,
        "retrieved_gold": (bool(set(gold) & retrieved_ids) if gold and shown else None),
        "evidence": "; ".join(evidence)[:2000],
    }
    return fields, checker


def _score_tool(output: GenerativeOutput, example: Example, workflow: Workflow) -> dict[str, Any]:
    specs = {t.name: t for t in tool_specs(workflow, example)}
    expected, called = example.expected_tool, output.tool_call
    expected_name = None if expected is None else expected.name
    called_name = None if called is None else called.name
    spec = specs.get(called_name) if called_name is not None else None
    schema: Mapping[str, Any] = spec.parameters if spec is not None else {}
    match = (
        expected is not None
        and called is not None
        and expected.name == called.name
        and arguments_equal(expected.arguments, called.arguments, schema)
    )
    valid = called is not None and spec is not None and arguments_valid(called.arguments, schema)
    correct = expected_name == called_name and (expected is None or match)
    evidence = ""
    if not correct:
        if expected_name != called_name:
            evidence = f"expected tool {expected_name or 'none'}, called {called_name or 'none'}"
        else:
            errors = spec.argument_errors(called.arguments) if spec and called else []
            evidence = "arguments differ from the expected ones" + (
                f" ({'; '.join(errors)})" if errors else ""
            )
    elif called is not None and spec is None:
        evidence = f"tool {called_name!r} is not declared"
    return {
        "expected_tool": expected_name,
        "called_tool": called_name,
        "arguments_match": bool(match),
        "arguments_valid": bool(valid),
        "correct": bool(correct),
        "evidence": evidence[:2000],
    }


def score_outputs(
    workflow: Workflow,
    suite_or_examples: GenerativeSuite | Sequence[Example],
    outputs: Sequence[GenerativeOutput],
    *,
    checker: SupportChecker | None = None,
) -> list[ExampleScore]:
    """One :class:`~tunegate.records.ExampleScore` per output, in the outputs' order.

    Each output is judged against the example with its ``example_id`` (every output needs
    one; an output of another kind than its example is refused): the claims of an answer
    against the passages it cites (``checker``, default
    :class:`~tunegate.generative.EmbeddingSupportChecker`; ``n_stale``: claims only a cited
    version superseded when the question was asked supports), its citations against the gold
    documents, abstention, correctness (module docstring), a tool call against the expected
    one, format validity (``metadata["format_valid"]``, default true), latency and tokens.
    ``failure`` is left for triage; ``evidence`` says what went wrong.
    """
    by_id: dict[str, Example] = {}
    for e in _examples(suite_or_examples):
        by_id[getattr(e, "id", "")] = e
    scores: list[ExampleScore] = []
    for output in outputs:
        example = by_id.get(output.example_id)
        if example is None:
            raise InputError(
                f"output {output.id} is for example {output.example_id!r}, which is not among "
                f"the {len(by_id)} examples given; score outputs against their own suite"
            )
        if output.kind != example.kind:
            raise InputError(
                f"output {output.id} is a {output.kind} output but example "
                f"{output.example_id!r} is a {example.kind} example"
            )
        base: dict[str, Any] = {
            "example_id": output.example_id,
            "kind": example.kind,
            "slice": getattr(example, "slice", SuiteSlice.CORE),
            "tags": list(getattr(example, "tags", [])),
            "format_valid": bool(output.metadata.get("format_valid", True)),
            "latency_ms": output.latency_ms,
            "prompt_tokens": output.prompt_tokens,
            "completion_tokens": output.completion_tokens,
        }
        if example.kind == "answer":
            fields, checker = _score_answer(output, example, checker, base)
        else:
            fields = {**base, **_score_tool(output, example, workflow)}
        scores.append(ExampleScore(**fields))
    return scores
