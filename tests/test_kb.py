"""The knowledge base: loaders, versions as of a time, change rate, chunking, hybrid retrieval,
filters, staleness, on SQLite and PostgreSQL, and the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from tests._tiny_models import make_tiny_encoder

import _store_fixtures
from tunegate.config import (
    MetaCondition,
    ModelSettings,
    RerankSettings,
    RetrievalSettings,
    RewriteSettings,
)
from tunegate.errors import InputError, NotFoundError
from tunegate.kb import (
    KbDocument,
    KnowledgeBase,
    chunk_text,
    load_jsonl,
    load_markdown_folder,
    mmr_select,
    rewrite_query,
    rrf_fuse,
)
from tunegate.metrics import change_rate
from tunegate.models import get_encoder
from tunegate.store import Store

store_url = _store_fixtures.store_url
store = _store_fixtures.store


def d(y: int, m: int, day: int = 1) -> datetime:
    return datetime(y, m, day, tzinfo=UTC)


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> object:
    path = make_tiny_encoder(tmp_path_factory.mktemp("tiny") / "enc", dropout=0.0)
    return get_encoder(ModelSettings(encoder=path, backend="torch"))


def doc(doc_id: str, version: str, start: datetime, text: str, **kw: object) -> KbDocument:
    return KbDocument(
        doc_id=doc_id,
        version=version,
        title=kw.pop("title", doc_id),
        text=text,
        effective_from=start,
        **kw,  # type: ignore[arg-type]
    )


CORPUS = [
    doc("vpn", "v1", d(2024, 1), "# VPN\nThe vpn gateway tunnel disconnect: restart the client."),
    doc(
        "vpn", "v2", d(2024, 6), "# VPN\nThe vpn gateway moved; reinstall the remote tunnel client."
    ),
    doc(
        "pw",
        "v1",
        d(2024, 1),
        "# Passwords\nA forgot password reset needs the expired code.",
        metadata={"dept": "it"},
    ),
    doc(
        "hw",
        "v1",
        d(2024, 1),
        "# Hardware\nA broken laptop monitor keyboard or printer dock.",
        metadata={"dept": "facilities"},
    ),
    doc(
        "mail",
        "v1",
        d(2024, 1),
        "# Mail\nThe outlook mailbox inbox messages email quota.",
        effective_to=d(2024, 9),
        metadata={"dept": "it"},
    ),
]


# -- loaders -------------------------------------------------------------------------------


def test_markdown_folder_loads_front_matter_and_title(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text(
        "---\nid: vpn\nversion: 2\neffective_from: 2024-03-01\nmetadata:\n  dept: it\n---\n"
        "# VPN policy\n\nUse the gateway.\n"
    )
    [loaded] = load_markdown_folder(tmp_path)
    assert (loaded.doc_id, loaded.version, loaded.title) == ("vpn", "2", "VPN policy")
    assert loaded.effective_from == d(2024, 3)
    assert loaded.metadata == {"dept": "it"}
    assert loaded.text.startswith("# VPN policy")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("no front matter\n", r"a\.md:1: .*front matter"),
        ("---\nid: x\nversion: 1\neffective_from: 2024-01-01\n", r"a\.md:1: .*never closed"),
        (
            "---\nid: x\nversion: 1\neffective_from: [\n---\nbody\n",
            r"a\.md:\d+: front matter is not valid YAML",
        ),
        (
            "---\nid: x\nversion: 1\neffective_from: 2024-01-01\nowner: me\n---\nbody\n",
            r"a\.md:5: unknown front-matter key 'owner'",
        ),
        ("---\nid: x\neffective_from: 2024-01-01\n---\nbody\n", r"a\.md:1: .*no 'version'"),
        ("---\nid: x\nversion: 1\neffective_from: soon\n---\nbody\n", r"a\.md:4: .*effective_from"),
        (
            "---\nid: x\nversion: 1\neffective_from: 2024-02-01\n"
            "effective_to: 2024-01-01\n---\nb\n",
            r"a\.md:\d+: .*effective_to .* must be after",
        ),
    ],
)
def test_bad_front_matter_names_file_and_line(tmp_path: Path, content: str, match: str) -> None:
    (tmp_path / "a.md").write_text(content)
    with pytest.raises(InputError, match=match):
        load_markdown_folder(tmp_path)


def test_jsonl_errors_name_the_line(tmp_path: Path) -> None:
    good = {"id": "a", "version": "1", "title": "A", "text": "t", "effective_from": "2024-01-01"}
    path = tmp_path / "kb.jsonl"
    path.write_text(json.dumps(good) + "\n\n" + json.dumps({**good, "colour": 1}) + "\n")
    with pytest.raises(InputError, match=r"kb\.jsonl:3: unknown keys \['colour'\]"):
        load_jsonl(path)
    path.write_text(json.dumps(good) + "\n{not json\n")
    with pytest.raises(InputError, match=r"kb\.jsonl:2: not valid JSON"):
        load_jsonl(path)
    path.write_text(json.dumps({**good, "text": ""}) + "\n")
    with pytest.raises(InputError, match=r"kb\.jsonl:1: .*text"):
        load_jsonl(path)
    path.write_text(json.dumps(good) + "\n")
    assert load_jsonl(path)[0].source == f"{path}:1"


# -- versions ------------------------------------------------------------------------------


def test_versions_supersede_at_their_effective_date(store: Store, tiny_encoder: object) -> None:
    kb = KnowledgeBase(
        store, RetrievalSettings(chunk_size=20, chunk_overlap=5), encoder=tiny_encoder
    )  # type: ignore[arg-type]
    report = kb.ingest(CORPUS)
    assert (report.versions_added, report.versions_existing, report.documents) == (5, 0, 4)
    assert report.chunks_added == report.chunks_embedded > 0
    again = kb.ingest(CORPUS)
    assert (again.versions_added, again.versions_existing, again.chunks_added) == (0, 5, 0)
    v1, v2 = kb.versions("vpn")
    assert (v1.version, v1.superseded_at, v2.superseded_at) == ("v1", d(2024, 6), None)
    assert kb.current_version("vpn", d(2024, 5, 31)).version == "v1"  # type: ignore[union-attr]
    assert kb.current_version("vpn", d(2024, 6)).version == "v2"  # type: ignore[union-attr]
    assert kb.current_version("vpn", d(2023, 12)) is None
    assert kb.current_version("mail", d(2024, 8)).version == "v1"  # type: ignore[union-attr]
    assert kb.current_version("mail", d(2024, 9)) is None  # withdrawn
    with pytest.raises(NotFoundError, match="no knowledge-base document 'nope'"):
        kb.versions("nope")
    # A version inserted between two existing ones re-cuts both ends.
    kb.ingest([doc("vpn", "v1.5", d(2024, 3), "# VPN\nInterim gateway notice.")])
    assert [(v.version, v.superseded_at) for v in kb.versions("vpn")] == [
        ("v1", d(2024, 3)),
        ("v1.5", d(2024, 6)),
        ("v2", None),
    ]


def test_changed_content_or_same_start_is_refused(store: Store, tiny_encoder: object) -> None:
    kb = KnowledgeBase(store, encoder=tiny_encoder)  # type: ignore[arg-type]
    kb.ingest(CORPUS[:1])
    with pytest.raises(InputError, match="'vpn' version 'v1' is already stored with other content"):
        kb.ingest([doc("vpn", "v1", d(2024, 1), "something else")])
    with pytest.raises(InputError, match="both take effect at 2024-01-01"):
        kb.ingest([doc("vpn", "v9", d(2024, 1), "another")])
    assert [v.version for v in kb.versions("vpn")] == ["v1"]


# -- change rate ---------------------------------------------------------------------------


def test_change_rate_metric_hand_computed() -> None:
    assert change_rate([1, 0, 2], [4, 4, 4]) == pytest.approx(3 / 12)
    assert change_rate([0, 1], [1, 3]) == pytest.approx(1 / 4)
    with pytest.raises(InputError, match="more changed documents"):
        change_rate([2], [1])
    with pytest.raises(InputError, match="no document was in force"):
        change_rate([0], [0])
    with pytest.raises(InputError, match="same length"):
        change_rate([0, 1], [1])


def test_kb_change_rate_counts_months(store: Store, tiny_encoder: object) -> None:
    kb = KnowledgeBase(store, encoder=tiny_encoder)  # type: ignore[arg-type]
    kb.ingest(CORPUS)
    result = kb.change_rate(start=d(2024, 5), months=2)
    # May: 4 documents in force, none changed; June: 4 in force, vpn changed.
    assert [(m.month, m.documents, m.changed) for m in result.months] == [
        ("2024-05", 4, 0),
        ("2024-06", 4, 1),
    ]
    assert result.rate == pytest.approx(1 / 8)
    # From January: in force at Jan 1 are the four first versions (a first version is no change).
    jan = kb.change_rate(start=d(2024, 1), months=1)
    assert (jan.months[0].documents, jan.months[0].changed) == (4, 0)


# -- chunking, rewriting, fusion, MMR --------------------------------------------------------


def test_chunking_by_heading_then_windows() -> None:
    text = "# A\none two three four five six seven\n## B\neight\n# C\nnine"
    chunks = chunk_text(text, size=3, overlap=1)
    assert [(c.heading, c.text) for c in chunks] == [
        ("A", "one two three"),
        ("A", "three four five"),
        ("A", "five six seven"),
        ("A > B", "eight"),
        ("C", "nine"),
    ]
    assert [c.position for c in chunks] == [0, 1, 2, 3, 4]
    fenced = chunk_text("# A\nx\n```\n# not a heading\n```", size=10, overlap=0)
    assert [(c.heading, c.text) for c in fenced] == [("A", "x ``` # not a heading ```")]
    with pytest.raises(ValueError, match="overlap < size"):
        chunk_text("x", size=2, overlap=2)


def test_query_rewriting_is_deterministic() -> None:
    settings = RewriteSettings(
        lowercase=True, remove_stopwords=True, synonyms={"MFA": ["multi-factor", "authentication"]}
    )
    r = rewrite_query("How do I reset my MFA?", settings)
    assert r.added == ["multi-factor", "authentication"]
    assert r.text == "reset mfa multi-factor authentication"
    assert r.terms == ["reset", "mfa", "multi-factor", "authentication"]
    assert rewrite_query("mfaX", settings).added == []  # whole words only
    assert rewrite_query("Keep The Case", RewriteSettings()).text == "Keep The Case"


def test_rrf_and_mmr_hand_computed() -> None:
    fused = rrf_fuse([[7, 8], [8, 9]], [1.0, 2.0], k=60)
    assert fused == pytest.approx({7: 1 / 61, 8: 1 / 62 + 2 / 61, 9: 2 / 62})
    rel = np.array([0.9, 0.85, 0.5])
    sim = np.array([[1.0, 0.99, 0.0], [0.99, 1.0, 0.0], [0.0, 0.0, 1.0]])
    picked, values = mmr_select(rel, sim, top_k=2, lam=0.5)
    assert picked == [0, 2]  # the near-duplicate of 0 loses to the different one
    assert values == pytest.approx([0.45, 0.25])
    assert mmr_select(rel, sim, top_k=2, lam=1.0)[0] == [0, 1]


# -- retrieval ------------------------------------------------------------------------------


@pytest.mark.parametrize("index", ["hnsw", "exact"])
def test_hybrid_search_finds_the_right_document_as_of(
    store: Store, tiny_encoder: object, index: str
) -> None:
    settings = RetrievalSettings(top_k=2, chunk_size=20, chunk_overlap=5, vector_index=index)  # type: ignore[arg-type]
    kb = KnowledgeBase(store, settings, encoder=tiny_encoder)  # type: ignore[arg-type]
    kb.ingest(CORPUS)
    now = d(2025, 1)
    old = kb.search("vpn tunnel disconnect", as_of=d(2024, 3), now=now)
    top = old.hits[0]
    assert (top.doc_id, top.version) == ("vpn", "v1")
    assert top.stale and not top.current_now and top.current_version == "v2"
    assert top.bm25_rank == 1 and top.vector_rank is not None
    assert top.fused_score == pytest.approx(1 / (60 + top.bm25_rank) + 1 / (60 + top.vector_rank))
    new = kb.search("vpn tunnel", as_of=d(2024, 7), now=now)
    assert (new.hits[0].doc_id, new.hits[0].version) == ("vpn", "v2")
    assert not new.hits[0].stale and new.hits[0].current_now
    # Only one version of a document is ever searched at a time.
    assert all(h.version != "v1" for h in new.hits if h.doc_id == "vpn")
    # The withdrawn mail document is found before its end, flagged stale, and gone after it.
    mail = kb.search("outlook mailbox", as_of=d(2024, 8), now=now).hits[0]
    assert (mail.doc_id, mail.stale, mail.current_version) == ("mail", True, None)
    after = kb.search("outlook mailbox", as_of=d(2024, 10), now=now)
    assert all(h.doc_id != "mail" for h in after.hits)
    assert kb.search("anything", as_of=d(2020, 1)).hits == []


def test_metadata_filters_and_bm25_only(store: Store, tiny_encoder: object) -> None:
    settings = RetrievalSettings(
        top_k=5, chunk_size=20, chunk_overlap=5, filters={"dept": MetaCondition(eq="it")}
    )
    kb = KnowledgeBase(store, settings, encoder=tiny_encoder)  # type: ignore[arg-type]
    kb.ingest(CORPUS)
    hits = kb.search("laptop printer password", as_of=d(2024, 7)).hits
    assert {h.doc_id for h in hits} <= {"pw", "mail"}
    assert hits[0].doc_id == "pw"
    overridden = kb.search(
        "laptop printer", as_of=d(2024, 7), filters={"dept": MetaCondition(in_=["facilities"])}
    )
    assert [h.doc_id for h in overridden.hits] == ["hw"]
    bm25_only = KnowledgeBase(
        store,
        RetrievalSettings(chunk_size=20, chunk_overlap=5, vector_weight=0.0),
        encoder=tiny_encoder,  # type: ignore[arg-type]
    ).search("printer", as_of=d(2024, 7))
    assert [h.doc_id for h in bm25_only.hits] == ["hw"]  # no vector candidates, one BM25 match
    assert bm25_only.hits[0].vector_score is None


def test_mmr_rerank_and_rewrite_in_search(store: Store, tiny_encoder: object) -> None:
    settings = RetrievalSettings(
        top_k=3,
        chunk_size=20,
        chunk_overlap=5,
        rerank=RerankSettings(method="mmr", pool=10, mmr_lambda=0.7),
        rewrite=RewriteSettings(synonyms={"pw": ["password", "reset"]}),
    )
    kb = KnowledgeBase(store, settings, encoder=tiny_encoder)  # type: ignore[arg-type]
    kb.ingest(CORPUS)
    result = kb.search("pw", as_of=d(2024, 7))
    assert result.query.terms == ["pw", "password", "reset"]
    assert result.hits[0].doc_id == "pw"
    assert all(h.rerank_relevance is not None for h in result.hits)
    assert len(result.hits) == 3 and len({h.chunk_id for h in result.hits}) == 3
    again = kb.search("pw", as_of=d(2024, 7))
    assert [h.chunk_id for h in again.hits] == [h.chunk_id for h in result.hits]  # deterministic
