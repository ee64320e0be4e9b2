"""Fast unit tests of tunegate.models with tiny random BERTs and stub encoders."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from tunegate.config import ModelSettings, RuleSpec, TrainingSettings, Workflow
from tunegate.errors import InputError, ModelError
from tunegate.lora.artifact import dir_sha256, file_sha256
from tunegate.models import (
    ArtifactManifest,
    DuplicateBackendError,
    KNNClassifier,
    LoraClassifier,
    OnnxEncoder,
    Router,
    RulesClassifier,
    TextTooLongWarning,
    TorchEncoder,
    ZeroShotClassifier,
    backends,
    build_classifier,
    build_lora_model,
    fit_temperature_nll,
    get_encoder,
    read_manifest,
    register_backend,
    save_lora_artifact,
    softmax,
    write_manifest,
)
from tunegate.records import Example, ModelKind, ReviewStatus, Route, Ticket, utcnow

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _tiny_bert(folder: Path, encoder: str, *, pooler: bool = True, seed: int = 0) -> str:
    """A random 2-layer BERT with hidden size 32 and the shipped encoder's tokenizer."""
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    model = transformers.BertModel(config, add_pooling_layer=pooler)
    model.save_pretrained(folder)
    transformers.AutoTokenizer.from_pretrained(encoder).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory, encoder_path: str) -> str:
    return _tiny_bert(tmp_path_factory.mktemp("tiny_bert"), encoder_path)


@pytest.fixture(scope="session")
def tiny_bert_no_pooler(tmp_path_factory: pytest.TempPathFactory, encoder_path: str) -> str:
    return _tiny_bert(tmp_path_factory.mktemp("tiny_np"), encoder_path, pooler=False, seed=1)


@pytest.fixture
def tiny_workflow(workflow: Workflow, tiny_bert: str) -> Workflow:
    return workflow.model_copy(update={"model": ModelSettings(encoder=tiny_bert, backend="torch")})


class HashEncoder:
    """Deterministic stub encoder: a random unit vector per distinct text."""

    backend = "stub"
    path = "stub"
    max_length = 128
    batch_size = 64
    truncated_total = 0

    def __init__(self, dim: int = 16) -> None:
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim

    def embed(
        self, texts: Sequence[str], *, batch_size: int | None = None, progress: bool = False
    ) -> np.ndarray:
        rows = []
        for t in texts:
            seed = int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)
            v = np.random.default_rng(seed).normal(size=self._dim)
            rows.append(v / np.linalg.norm(v))
        return np.asarray(rows, dtype=np.float32)


def _assert_distributions(p: np.ndarray, n: int, k: int) -> None:
    assert p.shape == (n, k)
    assert np.all(np.isfinite(p)) and np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)


# -- registry ---------------------------------------------------------------------------------


def test_registry_lists_builtins_and_refuses_duplicates() -> None:
    assert {"zero-shot", "knn", "rules", "lora"} <= set(backends())
    with pytest.raises(DuplicateBackendError, match="already registered"):
        register_backend("knn")(lambda workflow, **kw: None)  # type: ignore[arg-type, return-value]
    with pytest.raises(ValueError, match="no ':'"):
        register_backend("a:b")


def test_build_classifier_errors(workflow: Workflow) -> None:
    with pytest.raises(InputError, match="unknown model backend 'nope'"):
        build_classifier("nope", workflow)
    with pytest.raises(InputError, match="lora:PATH"):
        build_classifier("knn:x", workflow)
    rules = build_classifier("rules", workflow)
    assert isinstance(rules, RulesClassifier) and rules.kind is ModelKind.RULES


def test_softmax_and_temperature_fit_recovers_truth() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(scale=0.1, size=(4000, 5))
    p_true = softmax(scores, 0.04)
    _assert_distributions(p_true, 4000, 5)
    y = np.array([rng.choice(5, p=row) for row in p_true])
    fitted = fit_temperature_nll(scores, y)
    assert fitted == pytest.approx(0.04, rel=0.15)
    with pytest.raises(ValueError):
        softmax(scores, 0.0)


# -- rules ------------------------------------------------------------------------------------


RULES = [
    RuleSpec(
        name="mfa_lockout",
        label="security_incident",
        all_of=[r"\block(ed)?\b"],
        any_of=[r"\bmfa\b", r"\bauthenticator\b"],
        none_of=[r"\btest\b"],
        description="unexpected MFA prompts plus lockout",
    ),
    RuleSpec(name="any_lock", label="account_unlock", any_of=[r"\blocked\b"]),
]


def test_rules_first_hit_wins_with_provenance(workflow: Workflow) -> None:
    clf = RulesClassifier(RULES, workflow.label_names)
    texts = [
        "Locked out after many MFA and Authenticator prompts",
        "my account is locked",
        "locked during mfa test",
        "printer on fire",
    ]
    hits = clf.hits(texts)
    assert hits[0] is not None and hits[0].rule == "mfa_lockout"
    assert hits[0].label == "security_incident"
    assert hits[0].matched == ["Locked", "MFA", "Authenticator"]
    assert hits[1] is not None and hits[1].rule == "any_lock" and hits[1].matched == ["locked"]
    assert hits[2] is not None and hits[2].rule == "any_lock"  # none_of blocked the first rule
    assert hits[3] is None
    p = clf.predict_proba(texts)
    _assert_distributions(p, 4, len(workflow.labels))
    assert p[0, workflow.label_names.index("security_incident")] > 0.9999
    np.testing.assert_allclose(p[3], 1.0 / len(workflow.labels))
    assert clf.version == RulesClassifier(RULES, workflow.label_names).version


def test_rules_reject_unknown_label(workflow: Workflow) -> None:
    bad = RuleSpec(name="x", label="nope", any_of=["a"])
    with pytest.raises(InputError, match="'nope'"):
        RulesClassifier([bad], workflow.label_names)


# -- encoder ----------------------------------------------------------------------------------


def test_torch_encoder_unit_rows_and_order(tiny_bert: str) -> None:
    enc = TorchEncoder(tiny_bert, max_length=32, batch_size=3)
    texts = [
        "short",
        "a much longer text about a vpn that keeps dropping",
        "mid length one",
        "x",
        "printer jam on floor three",
        "outlook",
    ]
    batched = enc.embed(texts)
    assert batched.shape == (6, 32) and batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    single = np.vstack([enc.embed([t]) for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)  # bucketing/padding do not leak


def test_encoder_truncation_counted_and_warned_once(tiny_bert: str) -> None:
    enc = TorchEncoder(tiny_bert, max_length=16)
    long_text = "word " * 400
    with pytest.warns(TextTooLongWarning, match="1 of 2 texts"):
        enc.embed([long_text, "short"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        enc.embed([long_text, long_text])
    assert enc.truncated_total == 3
    # truncation keeps the first max_length tokens: same as the prefix text
    np.testing.assert_allclose(enc.embed([long_text]), enc.embed(["word " * 14]), atol=1e-5)


@pytest.mark.parametrize(
    "bad, match",
    [
        (["ok", "  "], "empty or whitespace"),
        (["ok", None], "must be strings"),
        (["ok", 3], "must be strings"),
        ("just a string", "single str"),
    ],
)
def test_encoder_rejects_bad_texts(tiny_bert: str, bad: object, match: str) -> None:
    enc = TorchEncoder(tiny_bert)
    with pytest.raises(InputError, match=match):
        enc.embed(bad)  # type: ignore[arg-type]


def test_get_encoder_validates_folder_and_caches(tmp_path: Path, tiny_bert: str) -> None:
    with pytest.raises(ModelError, match="is not a folder"):
        get_encoder(ModelSettings(encoder=str(tmp_path / "missing")))
    with pytest.raises(ModelError, match=r"no config\.json"):
        get_encoder(ModelSettings(encoder=str(tmp_path)))
    settings = ModelSettings(encoder=tiny_bert, backend="torch")
    assert get_encoder(settings) is get_encoder(settings)
    assert get_encoder(settings).path == str(Path(tiny_bert).resolve())


def test_get_encoder_follows_precision(
    tmp_path: Path, tiny_bert: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("TUNEGATE_CACHE_DIR", str(tmp_path))
    int8 = get_encoder(ModelSettings(encoder=tiny_bert, backend="onnx"))
    fp32 = get_encoder(ModelSettings(encoder=tiny_bert, backend="onnx", precision="fp32"))
    assert isinstance(int8, OnnxEncoder) and isinstance(fp32, OnnxEncoder)
    assert int8.quantized and int8.onnx_path.name == "model.int8.onnx"  # the default
    assert not fp32.quantized and fp32.onnx_path.name == "model.onnx"
    assert fp32 is not int8  # cached per precision
    # float32: a text's embedding does not depend on the other texts in its batch
    texts = [f"ticket {i}: " + "vpn drops " * (i % 5) + "please help" for i in range(16)]
    alone = np.vstack([fp32.embed([t]) for t in texts])
    np.testing.assert_allclose(alone, fp32.embed(texts), atol=1e-5)
    # torch has no int8 path: the precision is ignored there, not an error
    torch_enc = get_encoder(ModelSettings(encoder=tiny_bert, backend="torch", precision="int8"))
    assert isinstance(torch_enc, TorchEncoder)


def test_precision_setting_is_validated() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="precision"):
        ModelSettings(precision="fp16")  # type: ignore[arg-type]


@pytest.mark.parametrize("quantize", [False, True])
def test_onnx_matches_torch_on_tiny_bert(tmp_path: Path, tiny_bert: str, quantize: bool) -> None:
    pytest.importorskip("onnxruntime")
    texts = [f"ticket {i}: " + "vpn drops " * (i % 7) + "please help" for i in range(40)]
    ref = TorchEncoder(tiny_bert, batch_size=8).embed(texts)
    onnx = OnnxEncoder(tiny_bert, batch_size=8, quantize=quantize, cache_dir=tmp_path)
    got = onnx.embed(texts)
    cos = (ref * got).sum(axis=1)
    if quantize:  # int8 weights: stated tolerance mean cosine >= 0.98 on a random tiny model
        assert cos.mean() >= 0.98
    else:
        assert cos.min() >= 0.9999
    assert (tmp_path).rglob("*.onnx")


# -- zero-shot --------------------------------------------------------------------------------


def test_zero_shot_rows_and_instructions_matter(tiny_workflow: Workflow) -> None:
    texts = ["vpn keeps dropping", "forgot my password", "new laptop screen cracked"]
    base = ZeroShotClassifier(tiny_workflow)
    p = base.predict_proba(texts)
    _assert_distributions(p, 3, len(tiny_workflow.labels))
    other = ZeroShotClassifier(tiny_workflow, instructions="Recipe for a cake with")
    assert other.version != base.version
    assert other.prompts["vpn_issue"].startswith("Recipe for a cake with")
    assert np.abs(other.predict_proba(texts) - p).max() > 1e-4


def test_zero_shot_fit_temperature_lowers_nll(tiny_workflow: Workflow) -> None:
    clf = ZeroShotClassifier(tiny_workflow, temperature=5.0)
    texts = [spec.description for spec in tiny_workflow.labels.values()]
    labels = tiny_workflow.label_names
    y = np.arange(len(labels))

    def nll() -> float:
        return float(-np.log(clf.predict_proba(texts)[y, y]).mean())

    before = nll()
    clf.fit_temperature(texts, labels)
    assert clf.temperature_fitted and clf.temperature != 5.0
    assert nll() < before
    with pytest.raises(InputError, match="not in the workflow"):
        clf.fit_temperature(texts[:1], ["bogus"])


# -- kNN --------------------------------------------------------------------------------------


def _examples(workflow: Workflow, n: int) -> list[Example]:
    labels = workflow.label_names
    return [
        Example(
            text=f"example text number {i}",
            label=labels[i % len(labels)],
            review_status=ReviewStatus.REVIEWED,
        )
        for i in range(n)
    ]


def test_knn_votes_and_rows(workflow: Workflow) -> None:
    examples = _examples(workflow, 40)
    rejected = Example(
        text="example text number 0", label="hardware", review_status=ReviewStatus.REJECTED
    )
    clf = KNNClassifier(workflow, [*examples, rejected], k=1, encoder=HashEncoder())
    p = clf.predict_proba([e.text for e in examples])
    _assert_distributions(p, 40, len(workflow.labels))
    predicted = [clf.labels[i] for i in p.argmax(axis=1)]
    assert predicted == [e.label for e in examples]  # each text's nearest neighbour is itself
    assert p.min() >= clf.floor / len(clf.labels) - 1e-12


def test_knn_hnsw_agrees_with_exact(workflow: Workflow) -> None:
    pytest.importorskip("hnswlib")
    examples = _examples(workflow, 600)
    enc = HashEncoder(dim=32)
    exact = KNNClassifier(workflow, examples, k=5, encoder=enc)
    approx = KNNClassifier(workflow, examples, k=5, encoder=enc, ann_threshold=100)
    assert exact.index is None and approx.index is not None
    queries = [f"query {i}" for i in range(200)]
    pe, pa = exact.predict_proba(queries), approx.predict_proba(queries)
    _assert_distributions(pa, 200, len(workflow.labels))
    assert (pe.argmax(1) == pa.argmax(1)).mean() >= 0.95


def test_knn_input_errors(workflow: Workflow) -> None:
    with pytest.raises(InputError, match="at least one"):
        KNNClassifier(workflow, [], encoder=HashEncoder())
    bad = [Example(text="x", label="nope")]
    with pytest.raises(InputError, match="not in the workflow"):
        KNNClassifier(workflow, bad, encoder=HashEncoder())
    with pytest.raises(InputError, match="needs examples"):
        build_classifier("knn", workflow)


# -- router -----------------------------------------------------------------------------------


class Fixed:
    """A stub classifier returning a fixed row for texts containing a key."""

    kind = ModelKind.ZERO_SHOT

    def __init__(self, labels: list[str], rows: dict[str, np.ndarray], name: str) -> None:
        self.labels = labels
        self.rows = rows
        self.version = name
        self.calls: list[list[str]] = []

    def predict_proba(self, texts: Sequence[str], metadata: object = None) -> np.ndarray:
        self.calls.append(list(texts))
        k = len(self.labels)
        out = np.full((len(texts), k), 1.0 / k)
        for i, t in enumerate(texts):
            for key, row in self.rows.items():
                if key in t:
                    out[i] = row
        return out


def _onehot(labels: list[str], label: str, p: float = 0.97) -> np.ndarray:
    row = np.full(len(labels), (1 - p) / (len(labels) - 1))
    row[labels.index(label)] = p
    return row


def test_router_rules_then_chain_then_human(workflow: Workflow) -> None:
    labels = workflow.label_names
    first = Fixed(labels, {"vpn": _onehot(labels, "vpn_issue")}, "m1")
    second = Fixed(
        labels,
        {
            "printer": _onehot(labels, "hardware"),
            "phish": _onehot(labels, "security_incident", 0.5),
        },
        "m2",
    )
    router = Router(workflow, [first, second], rules=RULES)
    texts = ["account locked after MFA spam", "vpn down", "printer broken", "phish mail", "no idea"]
    tickets = [Ticket(id=f"t{i}", text=t, created_at=utcnow()) for i, t in enumerate(texts)]
    decisions = router.decide(tickets)
    assert [d.ticket_id for d in decisions] == [t.id for t in tickets]
    got = [(d.label, d.route) for d in decisions]
    assert got[0] == ("security_incident", Route.ESCALATE)  # rule hit, escalate-class
    assert decisions[0].rule_hits[0].rule == "mfa_lockout"
    assert got[1] == ("vpn_issue", Route.AUTO)
    assert got[2] == ("hardware", Route.AUTO)
    assert got[3] == ("security_incident", Route.ESCALATE)  # p=0.5 >= 0.4 threshold
    assert got[4][1] is Route.CLARIFY
    assert first.calls == [texts[1:]]  # rule-decided tickets never reach models
    assert second.calls == [[texts[2], texts[3], texts[4]]]
    assert all(d.model_version == router.version for d in decisions)
    assert router.version.startswith("router-")
    for d in decisions:
        assert sum(d.probabilities.values()) == pytest.approx(1.0)
    _assert_distributions(router.predict_proba(texts), 5, len(labels))


def test_router_single_model_version_and_label_check(workflow: Workflow) -> None:
    labels = workflow.label_names
    only = Fixed(labels, {}, "solo")
    assert Router(workflow, [only], rules=[]).version == "solo"
    with pytest.raises(InputError, match="must use the workflow's labels"):
        Router(workflow, [Fixed(labels[::-1], {}, "rev")])


# -- artifacts and LoRA -----------------------------------------------------------------------


def test_manifest_round_trip_and_validation(tmp_path: Path) -> None:
    manifest = ArtifactManifest(labels=["a", "b"], base_model="/x", temperature=1.7, seed=3)
    write_manifest(tmp_path, manifest)
    assert read_manifest(tmp_path) == manifest
    (tmp_path / "manifest.json").write_text(
        '{"format": "other/9", "labels": ["a", "b"], "base_model": "x"}'
    )
    with pytest.raises(ModelError, match="unknown artifact format"):
        read_manifest(tmp_path)
    with pytest.raises(ModelError, match=r"no manifest\.json"):
        read_manifest(tmp_path / "nothing")
    blob = tmp_path / "w.safetensors"
    blob.write_bytes(b"abc")
    assert file_sha256(blob) == hashlib.sha256(b"abc").hexdigest()
    before = dir_sha256(tmp_path)
    (tmp_path / "README.md").write_text("not a weight")
    assert dir_sha256(tmp_path) == before


def _train_tiny_adapter(base: str, labels: list[str], steps: int = 5) -> object:
    model = build_lora_model(base, labels, TrainingSettings(lora_r=4, lora_dropout=0.0), seed=0)
    tok = transformers.AutoTokenizer.from_pretrained(base)
    texts = ["vpn keeps dropping", "forgot password", "laptop broken", "need folder access"]
    y = torch.tensor([i % len(labels) for i in range(len(texts))])
    batch = tok(texts, padding=True, return_tensors="pt")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(**batch, labels=y).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    return model.eval()


@pytest.mark.parametrize("which", ["tiny_bert", "tiny_bert_no_pooler"])
def test_lora_save_reload_predicts_identically(
    which: str, request: pytest.FixtureRequest, tmp_path: Path, workflow: Workflow
) -> None:
    pytest.importorskip("peft")
    base = request.getfixturevalue(which)
    labels = workflow.label_names
    model = _train_tiny_adapter(base, labels)
    manifest = ArtifactManifest(labels=labels, base_model=base, temperature=1.5, max_length=64)
    out = save_lora_artifact(model, tmp_path / "art", manifest)
    texts = ["vpn keeps dropping", "my screen is cracked", "who can give me access"]
    saved = LoraClassifier(model, read_manifest(out), base, version="mem")
    loaded = LoraClassifier.load(out, backend="torch")  # exact reload; ONNX: own tests
    expected = saved.predict_proba(texts)
    _assert_distributions(expected, 3, len(labels))
    np.testing.assert_allclose(loaded.predict_proba(texts), expected, atol=1e-6)
    assert loaded.version.startswith("lora-") and loaded.kind is ModelKind.LORA
    assert read_manifest(out).base_model_hash == dir_sha256(base)
    if which == "tiny_bert_no_pooler":  # the new pooler had to be saved with the adapter
        assert any("pooler" in m for m in model.peft_config["default"].modules_to_save)
    # an untrained head must differ: proves the reload really restored trained weights
    fresh = LoraClassifier(
        build_lora_model(base, labels, seed=1).eval(), read_manifest(out), base, version="fresh"
    )
    assert np.abs(fresh.predict_proba(texts) - expected).max() > 1e-4
    # through the registry, with the workflow's label check
    assert isinstance(build_classifier(f"lora:{out}", workflow), LoraClassifier)
    other = workflow.model_copy(update={"labels": dict(reversed(workflow.labels.items()))})
    with pytest.raises(ModelError, match="differ from the workflow"):
        build_classifier("lora", other, artifact_dir=str(out))


def test_lora_load_refuses_changed_base(
    tmp_path: Path, tiny_bert: str, encoder_path: str, workflow: Workflow
) -> None:
    pytest.importorskip("peft")
    base = _tiny_bert(tmp_path / "base", encoder_path, seed=5)
    model = _train_tiny_adapter(base, workflow.label_names, steps=1)
    out = save_lora_artifact(
        model, tmp_path / "art", ArtifactManifest(labels=workflow.label_names, base_model=base)
    )
    _tiny_bert(tmp_path / "base", encoder_path, seed=6)  # same folder, different weights
    with pytest.raises(ModelError, match="do not match base_model_hash"):
        LoraClassifier.load(out)
    assert LoraClassifier.load(out, check_hash=False).labels == workflow.label_names
    with pytest.raises(ModelError, match="outputs but the manifest"):
        save_lora_artifact(
            model, tmp_path / "bad", ArtifactManifest(labels=["a", "b"], base_model=base)
        )
