"""Contrastive attribution: what the overridden tickets of one predicted class have that the
correctly handled tickets of the same class do not.

For a predicted class P and an analyst class A, the *overridden* set holds the tickets the
model labelled P that analysts moved to A with the missed-signal reason code (R2); the
*contrast* set holds the tickets the model labelled P that were handled correctly (no
correction). Every word and phrase (n-gram) of the overridden tickets, every named slice of the
workflow (a user-declared term family, e.g. ``mfa_related``: its regex covers mfa, 2fa,
authenticator, push prompts, verification codes; scored as the term ``"[mfa_related]"``), and
every pair of two terms found in the same ticket, is scored by

* its counts: overridden tickets containing it (``overrides_with``) against contrast tickets
  containing it (``reference_with``);
* the smoothed log odds ratio of the two rates (:func:`tunegate.metrics.log_odds_ratio`);
* the one-sided Fisher exact p-value that it is more frequent in the overrides
  (:func:`tunegate.metrics.fisher_rate_increase_p`), and the Benjamini-Hochberg q-value over
  every term and pair tested (:func:`tunegate.metrics.benjamini_hochberg`).

A term is tested only with ``min_support`` or more overridden tickets, and kept when
``q <= alpha``. Kept terms are ranked by ``excess``, the overridden tickets a term accounts for
beyond the contrast rate (``overrides_with - n_overridden * reference_rate``): what a reviewer
cares about is how many of the errors a term explains, and log odds alone rank a rare, perfectly
separating template word above a family that marks most of the errors. A pair is kept only
when it is more specific to the overrides than either of its parts alone (its log odds ratio
exceeds both parts'): "authenticator + locked out" is reported when the combination, not just
"authenticator", marks the overrides. Single-class occlusion
scores cannot see this: a word that also occurs in other classes gets little weight toward any
one class even when, in tickets the model calls P, it is what separates the errors.

:func:`contrast_terms` works on texts; :func:`contrast_overrides` does it from a store and
records one :class:`tunegate.documents.Finding` (``kind="contrast"``) per (P, A) pair, confirmed
with :func:`tunegate.diagnose.confirm_finding` (the gate's condition 2).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import TYPE_CHECKING, Any

from tunegate.config import SliceSpec, Workflow
from tunegate.diagnose._attribution import record_findings
from tunegate.diagnose._overrides import _correct_ticket_ids
from tunegate.documents import Finding, FindingTerm
from tunegate.errors import InputError, NotFoundError
from tunegate.metrics import benjamini_hochberg, fisher_rate_increase_p, log_odds_ratio
from tunegate.records import new_id, utcnow
from tunegate.text import STOPWORDS, ngrams

if TYPE_CHECKING:
    from tunegate.store import Store

__all__ = [
    "contrast_overrides",
    "contrast_terms",
    "finding_phrases",
    "readable_term",
    "slice_term",
]

PHRASE_STOPWORDS = STOPWORDS - {"out"}
"""Phrase boundaries: the shared stopwords, except that a phrase may end in ``out``
(``locked out``, ``timed out``); ``out`` alone, or starting a phrase, is still not a term."""


def slice_term(name: str) -> str:
    """The term a named slice is scored as: ``"[mfa_related]"`` (brackets never occur in a
    word or phrase, so a slice cannot be mistaken for one)."""
    return f"[{name}]"


def _is_slice(term: str) -> bool:
    return term.startswith("[") and term.endswith("]")


def readable_term(term: str) -> str:
    """A term as people read it: a slice ``"[mfa_related]"`` reads ``"mfa_related (slice)"``,
    in pairs too (``"mfa_related (slice) + locked"``); words and phrases unchanged."""
    return " + ".join(
        f"{part[1:-1]} (slice)" if _is_slice(part) else part for part in term.split(" + ")
    )


def _term_sets(
    text: str,
    n_range: tuple[int, int],
    slices: Mapping[str, SliceSpec],
    metadata: Mapping[str, Any] | None,
) -> set[str]:
    grams = ngrams(text, n_range, stopwords=PHRASE_STOPWORDS)
    terms = {g for g in grams if g.split()[0] not in STOPWORDS}
    terms.update(slice_term(n) for n, spec in slices.items() if spec.matches(text, metadata))
    return terms


def _popcount(mask: int) -> int:
    return mask.bit_count()


def _masks(docs: Sequence[set[str]]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for i, terms in enumerate(docs):
        bit = 1 << i
        for t in terms:
            out[t] |= bit
    return out


def _first_ids(mask: int, ids: Sequence[str], n: int) -> list[str]:
    picked: list[str] = []
    i = 0
    while mask and len(picked) < n:
        if mask & 1:
            picked.append(ids[i])
        mask >>= 1
        i += 1
    return picked


def _redundant(
    term: str, longer: Sequence[str], m_o: Mapping[str, int], m_c: Mapping[str, int]
) -> bool:
    """A term is redundant when a longer phrase containing it is in exactly the same tickets."""
    words = term.split()
    for other in longer:
        ow = other.split()
        if len(ow) <= len(words):
            continue
        inside = any(ow[k : k + len(words)] == words for k in range(len(ow) - len(words) + 1))
        if inside and m_o[other] == m_o[term] and m_c.get(other, 0) == m_c.get(term, 0):
            return True
    return False


def contrast_terms(
    overridden: Sequence[tuple[str, str]],
    contrast: Sequence[tuple[str, str]],
    *,
    label: str,
    slices: Mapping[str, SliceSpec] | None = None,
    metadata: Mapping[str, Mapping[str, Any]] | None = None,
    min_support: int = 5,
    alpha: float = 0.05,
    n_range: tuple[int, int] = (1, 2),
    pairs: bool = True,
    max_pair_terms: int = 60,
    smoothing: float = 0.5,
    top: int = 20,
    n_examples: int = 3,
) -> list[FindingTerm]:
    """Terms and term pairs over-represented in ``overridden`` tickets against ``contrast``.

    ``overridden`` and ``contrast`` are (ticket id, text) pairs; each ticket counts a term
    once. Words and phrases are the :func:`tunegate.text.ngrams` of ``n_range`` (a phrase may
    end in ``out``). Each named slice of ``slices`` (the workflow's, a user-declared term
    family such as ``mfa_related``) is one more term, ``"[name]"`` (:func:`slice_term`), in the
    tickets it matches (``metadata``: ticket id -> ``Ticket.metadata``, for slices with
    metadata conditions). Terms in fewer than ``min_support`` overridden tickets are not tested.
    Pairs are formed from the ``max_pair_terms`` terms with the most overridden tickets and
    every supported slice (parts sharing a word are skipped), tested when both parts co-occur
    in ``min_support`` or more overridden tickets, and kept only when their log odds ratio
    exceeds both parts'. Every tested term and pair enters the Benjamini-Hochberg correction;
    those with ``q <= alpha`` and a positive log odds ratio are returned, ranked by
    ``excess`` — the overridden tickets a term accounts for beyond the contrast rate,
    ``overrides_with - n_overridden * reference_with / n_contrast`` — then p-value, then term
    (deterministic), at most ``top``. ``label`` is the analyst's class the terms are evidence
    for. Each term carries up to ``n_examples`` overridden ticket ids (input order).
    """
    if min_support < 1:
        raise InputError(f"min_support must be >= 1, got {min_support}")
    if not 0.0 < alpha <= 1.0:
        raise InputError(f"alpha must be in (0, 1], got {alpha}")
    if max_pair_terms < 2 and pairs:
        raise InputError(f"max_pair_terms must be >= 2 to form pairs, got {max_pair_terms}")
    n_o, n_c = len(overridden), len(contrast)
    if n_o == 0 or n_c == 0:
        return []
    families = dict(slices or {})
    meta = metadata or {}
    ids_o = [tid for tid, _ in overridden]
    m_o = _masks([_term_sets(text, n_range, families, meta.get(t)) for t, text in overridden])
    m_c = _masks([_term_sets(text, n_range, families, meta.get(t)) for t, text in contrast])
    supported = sorted((t for t, m in m_o.items() if _popcount(m) >= min_support))
    longest_first = sorted(supported, key=lambda t: (-len(t.split()), t))
    terms = [t for t in supported if not _redundant(t, longest_first, m_o, m_c)]

    # (term, parts, mask over the overrides, count in the contrast)
    tests: list[tuple[str, list[str], int, int]] = [
        (t, [], m_o[t], _popcount(m_c.get(t, 0))) for t in terms
    ]
    if pairs:
        by_support = sorted(terms, key=lambda t: (-_popcount(m_o[t]), t))[:max_pair_terms]
        pool = sorted(set(by_support) | {t for t in terms if _is_slice(t)})
        for x, y in combinations(pool, 2):
            if set(x.split()) & set(y.split()):
                continue
            both = m_o[x] & m_o[y]
            if _popcount(both) < min_support:
                continue
            tests.append((f"{x} + {y}", [x, y], both, _popcount(m_c.get(x, 0) & m_c.get(y, 0))))
    if not tests:
        return []
    stats: list[tuple[float, float, float]] = []
    for _, _, mask, b in tests:
        a = _popcount(mask)
        lor, se = log_odds_ratio(b, n_c, a, n_o, smoothing=smoothing)
        stats.append((fisher_rate_increase_p(b, n_c, a, n_o), lor, lor / se))
    q_values = benjamini_hochberg([p for p, _, _ in stats])
    lor_of = {t: s[1] for (t, parts, _, _), s in zip(tests, stats, strict=True) if not parts}
    out: list[FindingTerm] = []
    for (term, parts, mask, b), (p, lor, z), q in zip(tests, stats, q_values, strict=True):
        if q > alpha or lor <= 0:
            continue
        if parts and lor <= max(lor_of[parts[0]], lor_of[parts[1]]):
            continue
        a = _popcount(mask)
        if parts:
            kind = "pair"
        elif _is_slice(term):
            kind = "slice"
        else:
            kind = "phrase" if " " in term else "word"
        out.append(
            FindingTerm(
                term=term,
                label=label,
                z=z,
                overrides_with=a,
                reference_with=b,
                kind=kind,
                parts=parts,
                log_odds=lor,
                p_value=p,
                q_value=float(q),
                excess=a - n_o * b / n_c,
                examples=_first_ids(mask, ids_o, n_examples),
            )
        )
    out.sort(key=lambda t: (-(t.excess or 0.0), t.p_value, t.term))
    # a pair in exactly the same tickets as a pair listed before it says nothing new
    cells = {term: (mask, b) for term, _, mask, b in tests}
    seen: set[tuple[int, int]] = set()
    kept: list[FindingTerm] = []
    for t in out:
        if t.kind == "pair":
            if cells[t.term] in seen:
                continue
            seen.add(cells[t.term])
        kept.append(t)
    return kept[:top]


def finding_phrases(finding: Mapping[str, Any] | Finding, n: int = 6) -> list[str]:
    """A finding's top ``n`` terms as people read them, in the finding's order.

    A contrastive term reads ``"mfa_related (slice) + locked (113 of 214 vs 82 of 483)"``:
    its overridden tickets of all overridden tickets vs its correctly handled tickets of all
    of them (:func:`readable_term` for slice names); contrastive findings are ranked by the
    overridden tickets a term accounts for beyond the contrast rate. A contrastive finding
    stored before that ranking (no ``excess``) shows its top pairs (up to two) first, as it
    did. An attribution term is its word."""
    f = finding.model_dump(mode="json") if isinstance(finding, Finding) else dict(finding)
    tokens = [t if isinstance(t, dict) else {"term": str(t)} for t in f.get("tokens", [])]
    if f.get("kind") != "contrast":
        pairs = [t for t in tokens if t.get("kind") == "pair"][:2]
        chosen = (pairs + [t for t in tokens if t.get("kind") != "pair"])[:n]
        return [str(t.get("term")) for t in chosen]
    if any(t.get("excess") is None for t in tokens):
        pairs = [t for t in tokens if t.get("kind") == "pair"][:2]
        tokens = pairs + [t for t in tokens if t.get("kind") != "pair"]
    n_o, n_c = f.get("n_overrides"), f.get("n_reference")
    out = []
    for t in tokens[:n]:
        a, b = t.get("overrides_with", 0), t.get("reference_with", 0)
        counts = f"{a} of {n_o} vs {b} of {n_c}" if n_o and n_c else f"{a} vs {b}"
        out.append(f"{readable_term(str(t.get('term')))} ({counts})")
    return out


def contrast_overrides(
    store: Store,
    workflow: Workflow,
    *,
    reason_code: str | None = None,
    min_support: int = 5,
    alpha: float = 0.05,
    max_overrides: int = 5000,
    max_contrast: int = 5000,
    min_overrides: int | None = None,
    seed: int = 0,
    save: bool = True,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """Contrast missed-signal overrides with correctly handled tickets of the same predicted
    class; record one finding per (model class, analyst class) pair.

    The workflow's named slices are scored as term families beside the words
    (:func:`contrast_terms`).
    Overrides: the newest ``max_overrides`` corrections with ``reason_code`` (default
    ``gate.reason_code``) whose model and final labels are workflow labels. Contrast: the
    tickets with a non-shadow decision of the same predicted class and no correction (a seeded
    sample of ``max_contrast`` when there are more). A pair with fewer than ``min_overrides``
    overrides (default ``min_support``) or no significant term records no finding.
    ``kwargs`` go to :func:`contrast_terms`. Each finding is stored unconfirmed as a
    :class:`~tunegate.documents.Finding` (``kind="contrast"``) when ``save``; returned sorted by
    number of overrides, largest first (``id`` included).
    """
    code = reason_code or workflow.gate.reason_code
    need = min_support if min_overrides is None else min_overrides
    overrides = store.overrides()
    missed = sorted(
        (
            o
            for o in overrides
            if o.is_correction
            and o.model_label in workflow.labels
            and o.final_label in workflow.labels
            and o.model_label != o.final_label
            and str(o.reason_code.value) == code
        ),
        key=lambda o: (o.created_at, o.id),
    )[-max_overrides:]
    if not missed:
        raise NotFoundError(
            f"no {code} overrides with known model and final labels to contrast; "
            "ingest overrides first"
        )
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    seen: set[str] = set()
    for o in missed:
        if o.ticket_id not in seen and o.model_label is not None:
            seen.add(o.ticket_id)
            groups[(o.model_label, o.final_label)].append(o.ticket_id)
    decisions = [d for d in store.decisions() if not d.shadow]
    label_of = {d.ticket_id: d.label for d in decisions}
    correct = _correct_ticket_ids(decisions, overrides)
    contrast_ids: dict[str, list[str]] = defaultdict(list)
    for tid in correct:
        contrast_ids[label_of[tid]].append(tid)
    rng = random.Random(seed)
    for p, ids in contrast_ids.items():
        if len(ids) > max_contrast:
            contrast_ids[p] = sorted(rng.sample(sorted(ids), max_contrast))
    ids_needed = seen | {t for p, _ in groups for t in contrast_ids.get(p, [])}
    tickets = store.tickets(ids=sorted(ids_needed))
    texts = {t.id: t.text for t in tickets}
    metadata = {t.id: t.metadata for t in tickets}
    found: list[Finding] = []
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    for (p, a), ids in ordered:
        over = [(t, texts[t]) for t in ids if t in texts]
        ref = [(t, texts[t]) for t in contrast_ids.get(p, []) if t in texts]
        if len(over) < need or not ref:
            continue
        terms = contrast_terms(
            over,
            ref,
            label=a,
            slices=workflow.slices,
            metadata=metadata,
            min_support=min_support,
            alpha=alpha,
            **kwargs,
        )
        if not terms:
            continue
        example_ids: list[str] = []
        for t in terms:
            for e in t.examples:
                if e not in example_ids and len(example_ids) < 3:
                    example_ids.append(e)
        finding = Finding(
            id=new_id("fnd"),
            kind="contrast",
            reason_code=code,
            label=a,
            predicted_label=p,
            model_labels={p: len(over)},
            tokens=terms,
            method="contrast",
            n_overrides=len(over),
            n_reference=len(ref),
            n_reference_counted=len(ref),
            examples=[{"ticket_id": e, "text": texts[e]} for e in example_ids],
            min_support=min_support,
            alpha=alpha,
            confirmed=False,
            confirmed_by=None,
            created_at=utcnow().isoformat(),
        )
        found.append(finding)
    return record_findings(store, found, save=save)
