"""Token attribution: which words the model under-weights on the overrides it missed.

A :class:`Scorer` exposes a differentiable score of one class for a batch of token ids:

* :class:`ZeroShotScorer` — the zero-shot model's score: cosine similarity between the
  mean-pooled encoder embedding of the text and the class prompt's embedding.
* :class:`LogitScorer` — a sequence-classification model's class logit (a LoRA adapter).

:func:`attribute_texts` attributes a class score to the words of each text, with Captum
``LayerIntegratedGradients`` on the input embedding layer (baseline: every non-special token
replaced by ``[PAD]``), or — as a fallback, or on request — by occlusion (each word masked out of
the attention in turn). Word pieces are summed into words, and each text's attributions are
divided by their total absolute value, so every text carries the same weight.

:func:`underweighted_terms` aggregates over missed-signal overrides against correctly handled
tickets; :func:`attribute_overrides` does it from a store and records findings
(:class:`tunegate.documents.Finding` documents) that a person confirms with :func:`confirm_finding`.
"""

from __future__ import annotations

import functools
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from tunegate._optional import require
from tunegate.config import Workflow
from tunegate.diagnose._overrides import _correct_ticket_ids, log_odds_dirichlet
from tunegate.documents import Finding, FindingTerm
from tunegate.errors import InputError, NotFoundError
from tunegate.records import new_id, utcnow
from tunegate.text import STOPWORDS

if TYPE_CHECKING:
    from tunegate.execute import Executor
    from tunegate.store import Store

__all__ = [
    "LogitScorer",
    "Scorer",
    "TermWeight",
    "TextAttribution",
    "ZeroShotScorer",
    "attribute_overrides",
    "attribute_texts",
    "confirm_finding",
    "scorer_for",
    "underweighted_terms",
    "word_lists",
]

Method = Literal["ig", "occlusion"]


class Scorer(Protocol):
    """A differentiable per-class score over token ids."""

    labels: list[str]
    tokenizer: Any
    """A Hugging Face *fast* tokenizer (word_ids and offsets are needed)."""
    max_length: int

    def embedding_layer(self) -> Any:
        """The input-embedding module (``nn.Embedding``) attributions are taken at."""

    def score(self, input_ids: Any, attention_mask: Any, target: Any) -> Any:
        """(batch,) score of class ``target[i]`` (long tensor (batch,)) for each row."""


def _torch() -> Any:
    return require("torch", purpose="attribution")


class ZeroShotScorer:
    """Cosine similarity of the mean-pooled text embedding to each class prompt's embedding."""

    def __init__(
        self,
        workflow: Workflow,
        *,
        instructions: str | None = None,
        encoder_path: str | None = None,
        max_length: int | None = None,
    ) -> None:
        torch = _torch()
        transformers = require("transformers", purpose="attribution")
        from tunegate.models._encoder import resolve_encoder_path

        path = encoder_path or resolve_encoder_path(workflow.model)
        self.labels = workflow.label_names
        self.max_length = max_length or workflow.model.max_length
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(path)
        self.model = transformers.AutoModel.from_pretrained(path).eval()
        wf = (
            workflow
            if instructions is None
            else workflow.model_copy(update={"instructions": instructions})
        )
        prompts = wf.label_prompts()
        enc = self.tokenizer(
            [prompts[y] for y in self.labels],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        with torch.no_grad():
            emb = self._pooled(enc["input_ids"], enc["attention_mask"])
        self.class_embeddings = torch.nn.functional.normalize(emb, dim=-1)
        """(k, d) unit rows, in ``labels`` order."""

    def _pooled(self, input_ids: Any, attention_mask: Any) -> Any:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    def embedding_layer(self) -> Any:
        return self.model.get_input_embeddings()

    def score(self, input_ids: Any, attention_mask: Any, target: Any) -> Any:
        torch = _torch()
        pooled = torch.nn.functional.normalize(self._pooled(input_ids, attention_mask), dim=-1)
        return (pooled * self.class_embeddings[target]).sum(-1)


class LogitScorer:
    """The class logit of a Hugging Face sequence-classification model (e.g. a LoRA adapter)."""

    def __init__(
        self, model: Any, tokenizer: Any, labels: Sequence[str], *, max_length: int = 128
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.labels = list(labels)
        self.max_length = max_length

    def embedding_layer(self) -> Any:
        return self.model.get_input_embeddings()

    def score(self, input_ids: Any, attention_mask: Any, target: Any) -> Any:
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        return logits.gather(1, target.view(-1, 1)).squeeze(1)


def scorer_for(classifier: Any, workflow: Workflow) -> Scorer:
    """The scorer matching a classifier: zero-shot -> :class:`ZeroShotScorer`; a model with
    ``.model`` and ``.base_model`` (LoRA) -> :class:`LogitScorer`."""
    transformers = require("transformers", purpose="attribution")
    from tunegate.models import ZeroShotClassifier

    if isinstance(classifier, ZeroShotClassifier):
        from tunegate.execute import ModelRecipe, attach_recipe

        options: dict[str, Any] = {
            "instructions": classifier.instructions,
            "encoder_path": str(classifier.encoder.path),
        }
        # Ray workers build the scorer from this recipe (tunegate.execute)
        recipe = ModelRecipe(ZeroShotScorer, (workflow,), options)
        return attach_recipe(ZeroShotScorer(workflow, **options), recipe)
    if hasattr(classifier, "model") and hasattr(classifier, "base_model"):
        tok = transformers.AutoTokenizer.from_pretrained(classifier.base_model)
        return LogitScorer(
            classifier.model, tok, classifier.labels, max_length=workflow.model.max_length
        )
    raise InputError(
        f"no attribution scorer for {type(classifier).__name__}; attribution "
        "needs a zero-shot or a LoRA model"
    )


@dataclass(frozen=True)
class TextAttribution:
    """Word attributions of one text toward one or more classes."""

    text: str
    words: list[str]
    """Lowercased words (word pieces merged), in order."""
    scores: dict[str, list[float]]
    """Class -> per-word attribution, normalized so that sum(|a|) = 1 per class."""
    predicted: str | None = None
    analyst: str | None = None


def _words(
    tokenizer: Any, enc: Any, row: int, text: str, n_tokens: int
) -> tuple[list[int | None], list[str]]:
    return _words_from(
        enc.word_ids(row)[:n_tokens], enc["offset_mapping"][row][:n_tokens].tolist(), text
    )


def _words_from(
    word_ids: list[int | None], offsets: Any, text: str
) -> tuple[list[int | None], list[str]]:
    spans: dict[int, list[int]] = {}
    for wid, (start, end) in zip(word_ids, offsets, strict=True):
        if wid is None:
            continue
        span = spans.setdefault(wid, [start, end])
        span[0], span[1] = min(span[0], start), max(span[1], end)
    order = sorted(spans)
    remap = {wid: i for i, wid in enumerate(order)}
    words = [text[spans[w][0] : spans[w][1]].lower() for w in order]
    return [remap.get(w) if w is not None else None for w in word_ids], words


def _merge(token_scores: np.ndarray, token_words: list[int | None], n_words: int) -> list[float]:
    out = np.zeros(n_words)
    for score, w in zip(token_scores, token_words, strict=True):
        if w is not None:
            out[w] += score
    total = np.abs(out).sum()
    return (out / total if total > 0 else out).tolist()


def attribute_texts(
    scorer: Scorer,
    texts: Sequence[str],
    classes: Sequence[Sequence[str]],
    *,
    method: Method = "ig",
    n_steps: int = 20,
    batch_size: int = 8,
    executor: Executor | None = None,
) -> list[TextAttribution]:
    """Attribute each text's score for each of its ``classes`` to its words.

    ``classes[i]`` lists the class names to attribute for ``texts[i]``. ``method="ig"`` uses
    Captum's LayerIntegratedGradients (``n_steps`` steps) and falls back to occlusion when
    Captum is not installed. Cost: about ``len(texts) * len(classes[i]) * n_steps`` forward and
    backward passes for IG, ``len(texts) * words`` forward passes for occlusion.
    ``executor`` (default: this process) runs the batches of (text, class) jobs, e.g. on Ray
    workers that each rebuild the scorer once (:mod:`tunegate.execute`): the same batches.
    """
    if len(texts) != len(classes):
        raise InputError(f"got {len(texts)} texts but {len(classes)} class lists")
    if executor is not None and executor.name != "local":
        return _attribute_on(executor, scorer, texts, classes, method, n_steps, batch_size)
    torch = _torch()
    if method == "ig":
        try:
            captum_attr = require("captum.attr", purpose="integrated gradients")
        except ImportError:
            method = "occlusion"
    jobs = [(i, c) for i, cs in enumerate(classes) for c in cs]
    for _, c in jobs:
        if c not in scorer.labels:
            raise InputError(f"class {c!r} is not one of the scorer's labels {scorer.labels}")
    tok = scorer.tokenizer
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    special = set(tok.all_special_ids)
    results: dict[int, dict[str, list[float]]] = defaultdict(dict)
    word_lists: dict[int, list[str]] = {}
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        chunk_texts = [texts[i] for i, _ in chunk]
        enc = tok(
            chunk_texts,
            padding=True,
            truncation=True,
            max_length=scorer.max_length,
            return_tensors="pt",
            return_offsets_mapping=True,
        )
        ids, mask = enc["input_ids"], enc["attention_mask"]
        target = torch.tensor([scorer.labels.index(c) for _, c in chunk], dtype=torch.long)
        if method == "ig":
            baseline = ids.clone()
            is_special = torch.zeros_like(ids, dtype=torch.bool)
            for s in special:
                is_special |= ids == s
            baseline[~is_special] = pad_id

            def forward(input_ids: Any, attention_mask: Any, tgt: Any) -> Any:
                return scorer.score(input_ids, attention_mask, tgt)

            lig = captum_attr.LayerIntegratedGradients(forward, scorer.embedding_layer())
            attr = lig.attribute(
                inputs=ids,
                baselines=baseline,
                additional_forward_args=(mask, target),
                n_steps=n_steps,
            )
            token_scores = attr.sum(-1).detach().cpu().numpy()
        else:
            token_scores = _occlusion(scorer, ids, mask, target)
        for row, (i, c) in enumerate(chunk):
            n_tok = int(mask[row].sum())
            token_words, words = _words(tok, enc, row, texts[i], n_tok)
            word_lists[i] = words
            results[i][c] = _merge(token_scores[row][:n_tok], token_words, len(words))
    return [
        TextAttribution(texts[i], word_lists.get(i, []), dict(results.get(i, {})))
        for i in range(len(texts))
    ]


def _occlusion(scorer: Scorer, ids: Any, mask: Any, target: Any) -> np.ndarray:
    """Per-token score drop when the token is masked out of the attention: (batch, seq)."""
    torch = _torch()
    out = np.zeros(ids.shape, dtype=np.float64)
    with torch.no_grad():
        full = scorer.score(ids, mask, target).cpu().numpy()
        special = set(scorer.tokenizer.all_special_ids)
        for row in range(ids.shape[0]):
            positions = [p for p in range(int(mask[row].sum())) if int(ids[row, p]) not in special]
            if not positions:
                continue
            m = mask[row].repeat(len(positions), 1).clone()
            for j, p in enumerate(positions):
                m[j, p] = 0
            rep_ids = ids[row].repeat(len(positions), 1)
            rep_t = target[row].repeat(len(positions))
            occluded = scorer.score(rep_ids, m, rep_t).cpu().numpy()
            out[row, positions] = full[row] - occluded
    return out


TermWeight = FindingTerm
"""A word distinctive of the missed overrides, with how much the model weighs it: the stored
:class:`~tunegate.documents.FindingTerm` (one definition for the finding and its document)."""


def underweighted_terms(
    overrides: Sequence[TextAttribution],
    reference: Sequence[TextAttribution],
    *,
    z_min: float = 1.96,
    min_count: int = 3,
    top: int = 15,
    prior_strength: float | None = None,
    reference_words: Sequence[Sequence[str]] | None = None,
) -> tuple[list[TermWeight], float]:
    """Words the model under-weights on missed overrides, and the reference weight level.

    ``overrides`` carry attributions toward ``analyst`` and ``predicted``; ``reference`` texts
    (correctly handled) carry attributions toward their own (``analyst``) class. The reference
    level is the mean, over reference texts, of the largest word attribution toward their
    class — the weight the model gives its main cue when it is right. A term is under-weighted
    when it is distinctive of the overrides (log-odds z >= ``z_min``, in >= ``min_count``
    overrides) and its mean attribution toward the analyst's class is below that level.
    Stopwords and words of fewer than three characters are skipped. ``reference_words`` (word
    lists of correctly handled tickets) replaces the reference texts' words for the document
    frequencies, so a large reference can be counted without attributing it. Sorted by z,
    largest first.
    """
    df_o: Counter[str] = Counter(w for a in overrides for w in set(a.words))
    ref_docs = reference_words if reference_words is not None else [a.words for a in reference]
    df_r: Counter[str] = Counter(w for words in ref_docs for w in set(words))
    scores = log_odds_dirichlet(df_o, df_r, prior_strength=prior_strength)
    peaks = [
        max(a.scores[a.analyst])
        for a in reference
        if a.analyst is not None and a.scores.get(a.analyst)
    ]
    level = float(np.mean(peaks)) if peaks else float("inf")
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    labels: dict[str, Counter[str]] = defaultdict(Counter)
    for a in overrides:
        if a.analyst is None or a.predicted is None:
            continue
        to_a, to_p = a.scores.get(a.analyst), a.scores.get(a.predicted)
        if to_a is None or to_p is None:
            continue
        for k, w in enumerate(a.words):
            acc = sums[w]
            acc[0] += to_a[k]
            acc[1] += to_p[k]
            acc[2] += 1
        for w in set(a.words):
            labels[w][a.analyst] += 1
    out = []
    for w, (delta, z) in scores.items():
        del delta
        if df_o[w] < min_count or z < z_min or w not in sums or not _content(w):
            continue
        s_a, s_p, n = sums[w]
        mean_a, mean_p = s_a / n, s_p / n
        if mean_a >= level:
            continue
        margin = mean_a - mean_p
        out.append(
            TermWeight(
                term=w,
                label=labels[w].most_common(1)[0][0],
                z=float(z),
                overrides_with=df_o[w],
                reference_with=df_r.get(w, 0),
                attr_analyst=mean_a,
                attr_predicted=mean_p,
                margin=margin,
                cue="weak" if margin >= 0 else "misleading",
            )
        )
    out.sort(key=lambda t: (-t.z, t.term))
    return out[:top], level


def _content(word: str) -> bool:
    return len(word) >= 3 and word.isalpha() and word not in STOPWORDS


def word_lists(
    tokenizer: Any, texts: Sequence[str], *, max_length: int = 128, batch_size: int = 256
) -> list[list[str]]:
    """The words (lowercased, word pieces merged) the tokenizer sees in each text."""
    out: list[list[str]] = []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        enc = tokenizer(chunk, truncation=True, max_length=max_length, return_offsets_mapping=True)
        for row, text in enumerate(chunk):
            n_tok = len(enc["input_ids"][row])
            out.append(_words_from(enc.word_ids(row)[:n_tok], enc["offset_mapping"][row], text)[1])
    return out


@dataclass
class _Sample:
    texts: list[str] = field(default_factory=list)
    predicted: list[str] = field(default_factory=list)
    analyst: list[str] = field(default_factory=list)


def record_findings(
    store: Store, found: Sequence[Finding], *, save: bool = True
) -> list[dict[str, Any]]:
    """Store ``found`` (each a Finding document) and one ``attribute`` audit row when
    ``save``; the findings as JSON-ready dicts either way."""
    if save:
        for finding in found:
            store.documents(Finding).put(finding.id, finding)
        store.audit("attribute", "tunegate", {"findings": [f.id for f in found]})
    return [f.model_dump(mode="json") for f in found]


def _attribute_batch(
    scorer: Scorer, batch: list[tuple[str, str]], *, method: Method, n_steps: int
) -> list[TextAttribution]:
    """One batch of (text, class) jobs, attributed as :func:`attribute_texts` batches them."""
    texts = [t for t, _ in batch]
    return attribute_texts(
        scorer,
        texts,
        [[c] for _, c in batch],
        method=method,
        n_steps=n_steps,
        batch_size=len(batch),
    )


def _attribute_on(
    executor: Executor,
    scorer: Scorer,
    texts: Sequence[str],
    classes: Sequence[Sequence[str]],
    method: Method,
    n_steps: int,
    batch_size: int,
) -> list[TextAttribution]:
    jobs = [(i, c) for i, cs in enumerate(classes) for c in cs]
    parts = [jobs[s : s + batch_size] for s in range(0, len(jobs), batch_size)]
    fn = functools.partial(_attribute_batch, method=method, n_steps=n_steps)
    batches = [[(texts[i], c) for i, c in part] for part in parts]
    results: dict[int, dict[str, list[float]]] = defaultdict(dict)
    words: dict[int, list[str]] = {}
    for part, done in zip(parts, executor.map_batches(scorer, fn, batches), strict=True):
        for (i, c), one in zip(part, done, strict=True):
            words[i] = one.words
            results[i][c] = one.scores[c]
    return [
        TextAttribution(texts[i], words.get(i, []), dict(results.get(i, {})))
        for i in range(len(texts))
    ]


def attribute_overrides(
    store: Store,
    workflow: Workflow,
    *,
    scorer: Scorer | None = None,
    reason_code: str | None = None,
    method: Method = "ig",
    n_steps: int = 20,
    max_per_side: int = 100,
    max_reference_count: int = 5000,
    reference_attributed: int | None = None,
    seed: int = 0,
    save: bool = True,
    executor: Executor | None = None,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """Attribute missed-signal overrides against correctly handled tickets; record findings.

    Up to ``max_per_side`` of the newest ``reason_code`` (default ``gate.reason_code``)
    corrections, attributed toward the model's and the analyst's class, and up to
    ``max_per_side`` correctly handled tickets (seeded sample), attributed toward their class
    (for the reference weight level; ``reference_attributed`` of them when given). Document
    frequencies of the reference side are counted over up to ``max_reference_count`` correctly
    handled tickets (no model run needed).
    One finding per analyst class with terms, stored unconfirmed as a
    :class:`~tunegate.documents.Finding` document.
    ``kwargs`` go to :func:`underweighted_terms`; ``executor`` to :func:`attribute_texts`.
    Returns the findings (``id`` included).
    """
    code = reason_code or workflow.gate.reason_code
    overrides = store.overrides()
    missed = sorted(
        (
            o
            for o in overrides
            if o.is_correction and o.model_label and str(o.reason_code.value) == code
        ),
        key=lambda o: o.created_at,
    )
    missed = [
        o for o in missed if o.model_label in workflow.labels and o.final_label in workflow.labels
    ][-max_per_side:]
    if not missed:
        raise NotFoundError(
            f"no {code} overrides with known model and final labels to "
            f"attribute; ingest overrides first"
        )
    decisions = [d for d in store.decisions() if not d.shadow]
    by_ticket = {d.ticket_id: d for d in decisions}
    all_ok = _correct_ticket_ids(decisions, overrides)
    rng = random.Random(seed)
    count_ids = rng.sample(all_ok, min(max_reference_count, len(all_ok)))
    ok_ids = count_ids[: reference_attributed or max_per_side]
    tickets = {
        t.id: t for t in store.tickets(ids=sorted({o.ticket_id for o in missed} | set(count_ids)))
    }
    if scorer is None:
        from tunegate.diagnose._attempts import champion_classifier

        scorer = scorer_for(champion_classifier(workflow, store)[0], workflow)
    side_o, side_r = _Sample(), _Sample()
    for o in missed:
        if o.ticket_id in tickets and o.model_label is not None:
            side_o.texts.append(tickets[o.ticket_id].text)
            side_o.predicted.append(o.model_label)
            side_o.analyst.append(o.final_label)
    for tid in ok_ids:
        if tid in tickets and by_ticket[tid].label in workflow.labels:
            side_r.texts.append(tickets[tid].text)
            side_r.predicted.append(by_ticket[tid].label)
            side_r.analyst.append(by_ticket[tid].label)
    attr_o = attribute_texts(
        scorer,
        side_o.texts,
        [[p, a] for p, a in zip(side_o.predicted, side_o.analyst, strict=True)],
        method=method,
        n_steps=n_steps,
        executor=executor,
    )
    attr_r = attribute_texts(
        scorer,
        side_r.texts,
        [[a] for a in side_r.analyst],
        method=method,
        n_steps=n_steps,
        executor=executor,
    )
    attr_o = [
        TextAttribution(a.text, a.words, a.scores, p, y)
        for a, p, y in zip(attr_o, side_o.predicted, side_o.analyst, strict=True)
    ]
    attr_r = [
        TextAttribution(a.text, a.words, a.scores, y, y)
        for a, y in zip(attr_r, side_r.analyst, strict=True)
    ]
    ref_words = word_lists(
        scorer.tokenizer,
        [tickets[i].text for i in count_ids if i in tickets],
        max_length=scorer.max_length,
    )
    terms, level = underweighted_terms(attr_o, attr_r, reference_words=ref_words, **kwargs)
    found: list[Finding] = []
    pairs = Counter(zip(side_o.predicted, side_o.analyst, strict=True))
    for label, n in Counter(side_o.analyst).most_common():
        mine = [t for t in terms if t.label == label]
        if not mine:
            continue
        finding = Finding(
            id=new_id("fnd"),
            kind="attribution",
            reason_code=code,
            label=label,
            model_labels={p: c for (p, a), c in pairs.items() if a == label},
            tokens=list(mine),
            reference_level=level,
            method=method,
            n_steps=n_steps,
            n_overrides=n,
            n_reference=len(attr_r),
            n_reference_counted=len(ref_words),
            confirmed=False,
            confirmed_by=None,
            created_at=utcnow().isoformat(),
        )
        found.append(finding)
    return record_findings(store, found, save=save)


def confirm_finding(
    store: Store, finding_id: str, *, reviewer: str = "unknown", note: str = ""
) -> dict[str, Any]:
    """Mark a finding as confirmed by a person (the gate's condition 2)."""
    found: Finding | None = store.documents(Finding).get(finding_id)
    if found is None:
        known = store.documents(Finding).keys()
        raise NotFoundError(
            f"no finding {finding_id!r}; known findings: {known[:10]} "
            f"(run `tunegate attribute` to record one)"
        )
    confirmed = found.model_copy(
        update={
            "confirmed": True,
            "confirmed_by": reviewer,
            "confirmed_at": utcnow().isoformat(),
            "note": note,
        }
    )
    store.documents(Finding).put(finding_id, confirmed)
    store.audit("finding.confirm", reviewer, {"finding": finding_id})
    return confirmed.model_dump(mode="json")
