"""Integration tests of every backend on the real shipped all-MiniLM-L6-v2 weights."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from tunegate.config import ModelSettings, TrainingSettings, Workflow, parse_workflow
from tunegate.models import (
    ArtifactManifest,
    KNNClassifier,
    LoraClassifier,
    OnnxEncoder,
    Router,
    RulesClassifier,
    TorchEncoder,
    ZeroShotClassifier,
    build_lora_model,
    get_encoder,
    read_manifest,
    save_lora_artifact,
)
from tunegate.records import Example, ReviewStatus, Route, Ticket, utcnow

pytestmark = pytest.mark.slow
pytest.importorskip("torch")

TICKETS = [
    ("my account is locked after too many wrong sign-in attempts", "account_unlock"),
    ("please unlock my user account, it says locked out", "account_unlock"),
    ("I forgot my password and need it reset", "password_reset"),
    ("password expired this morning, how do I change it", "password_reset"),
    ("the vpn disconnects every few minutes from home", "vpn_issue"),
    ("cannot connect to the remote access gateway", "vpn_issue"),
    ("I clicked a link in a phishing email and typed my credentials", "security_incident"),
    ("there is malware on my laptop, antivirus popped up", "security_incident"),
    ("my laptop screen is cracked", "hardware"),
    ("the docking station does not charge my laptop", "hardware"),
    ("please install visual studio code on my machine", "software_install"),
    ("need a license for adobe acrobat", "software_install"),
    ("grant me access to the finance shared folder", "access_request"),
    ("requesting permissions for the HR application", "access_request"),
    ("my mailbox is full and I cannot receive emails", "email_issue"),
    ("outlook keeps crashing when I open messages", "email_issue"),
]


def _banking(shared_data: Path, split: str, n: int) -> tuple[list[str], list[str]]:
    with (shared_data / "banking77" / f"{split}.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    rng = np.random.default_rng(0)
    picked = rng.choice(len(rows), size=min(n, len(rows)), replace=False)
    return [rows[i]["text"] for i in picked], [rows[i]["category"] for i in picked]


def _banking_workflow(shared_data: Path) -> Workflow:
    """All 77 BANKING77 intents as labels; the description is the intent name in words."""
    import json

    labels = json.loads((shared_data / "banking77" / "categories.json").read_text())
    body = "\n".join(
        f'  {y}:\n    description: "{y.replace("_", " ")}"' for y in sorted(set(labels))
    )
    return parse_workflow(
        f'name: banking\ninstructions: "bank customer asks about"\n'
        f"labels:\n{body}\nmodel:\n  backend: torch\n"
    )


@pytest.fixture(scope="module")
def torch_workflow(encoder_path: str) -> Workflow:
    from tunegate.config import starter_yaml

    return parse_workflow(starter_yaml()).model_copy(
        update={"model": ModelSettings(backend="torch")}
    )


def test_zero_shot_real_weights_is_accurate_and_instructions_matter(
    torch_workflow: Workflow,
) -> None:
    texts = [t for t, _ in TICKETS]
    gold = [y for _, y in TICKETS]
    clf = ZeroShotClassifier(torch_workflow)
    p = clf.predict_proba(texts)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    accuracy = np.mean([clf.labels[i] == y for i, y in zip(p.argmax(1), gold, strict=True)])
    assert accuracy >= 0.75  # 8 classes, chance 0.125
    # The instructions lever: a different instruction gives measurably different output.
    other = ZeroShotClassifier(torch_workflow, instructions="A cooking recipe that mentions")
    q = other.predict_proba(texts)
    tv = 0.5 * np.abs(p - q).sum(axis=1)
    assert tv.mean() > 0.02
    none = ZeroShotClassifier(torch_workflow, instructions="")
    assert none.prompts["vpn_issue"] == torch_workflow.labels["vpn_issue"].description
    assert 0.5 * np.abs(none.predict_proba(texts) - p).sum(axis=1).mean() > 0.005


def test_zero_shot_temperature_fit_improves_nll(shared_data: Path) -> None:
    texts, labels = _banking(shared_data, "train", 400)
    wf = _banking_workflow(shared_data)
    clf = ZeroShotClassifier(wf)
    test_texts, test_labels = _banking(shared_data, "test", 300)
    y = np.array([clf.labels.index(t) for t in test_labels])

    def nll() -> float:
        return float(-np.log(clf.predict_proba(test_texts)[np.arange(len(y)), y]).mean())

    before = nll()
    clf.fit_temperature(texts, labels)
    assert nll() < before


def test_onnx_int8_agrees_with_pytorch(shared_data: Path, encoder_path: str) -> None:
    """Stated tolerance: mean cosine >= 0.99, 1st-percentile cosine >= 0.97, and >= 98% top-1
    agreement of a kNN classifier over 2,000 BANKING77 training texts, on 400 test texts."""
    pytest.importorskip("onnxruntime")
    texts, _ = _banking(shared_data, "test", 400)
    ref = TorchEncoder(encoder_path).embed(texts)
    fast = OnnxEncoder(encoder_path).embed(texts)
    cos = (ref * fast).sum(axis=1)
    assert cos.mean() >= 0.99
    assert np.quantile(cos, 0.01) >= 0.97
    train, train_labels = _banking(shared_data, "train", 2000)
    wf = _banking_workflow(shared_data)
    examples = [Example(text=t, label=y) for t, y in zip(train, train_labels, strict=True)]
    knn_ref = KNNClassifier(wf, examples, encoder=TorchEncoder(encoder_path))
    knn_fast = KNNClassifier(wf, examples, encoder=OnnxEncoder(encoder_path))
    agree = knn_ref.predict_proba(texts).argmax(1) == knn_fast.predict_proba(texts).argmax(1)
    assert agree.mean() >= 0.98


def test_auto_backend_picks_onnx(encoder_path: str) -> None:
    pytest.importorskip("onnxruntime")
    encoder = get_encoder(ModelSettings())
    assert encoder.backend == "onnx"
    assert get_encoder(ModelSettings(backend="torch")).backend == "torch"


def test_knn_real_weights(shared_data: Path) -> None:
    train, train_labels = _banking(shared_data, "train", 3000)
    wf = _banking_workflow(shared_data)
    examples = [
        Example(text=t, label=y, review_status=ReviewStatus.REVIEWED)
        for t, y in zip(train, train_labels, strict=True)
    ]
    clf = KNNClassifier(wf, examples, k=10)
    texts, labels = _banking(shared_data, "test", 300)
    p = clf.predict_proba(texts)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    accuracy = np.mean([clf.labels[i] == y for i, y in zip(p.argmax(1), labels, strict=True)])
    assert accuracy >= 0.6  # 77 classes, chance 0.013


def test_lora_real_weights_reload_identical(
    tmp_path: Path, encoder_path: str, torch_workflow: Workflow
) -> None:
    import torch
    import transformers

    pytest.importorskip("peft")
    labels = torch_workflow.label_names
    model = build_lora_model(encoder_path, labels, TrainingSettings(lora_dropout=0.0), seed=0)
    tok = transformers.AutoTokenizer.from_pretrained(encoder_path)
    texts = [t for t, _ in TICKETS]
    y = torch.tensor([labels.index(g) for _, g in TICKETS])
    batch = tok(texts, padding=True, return_tensors="pt")
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=5e-3)
    model.train()
    for _ in range(3):
        model(**batch, labels=y).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    out = save_lora_artifact(
        model,
        tmp_path / "art",
        ArtifactManifest(labels=labels, base_model=encoder_path, temperature=1.3, seed=0),
    )
    expected = LoraClassifier(model, read_manifest(out), encoder_path, version="m").predict_proba(
        texts
    )
    loaded = LoraClassifier.load(out, backend="torch")  # exact reload; ONNX: own tests
    np.testing.assert_allclose(loaded.predict_proba(texts), expected, atol=1e-6)


def test_router_real_weights_rules_first(torch_workflow: Workflow) -> None:
    from tunegate.config import RuleSpec

    rule = RuleSpec(
        name="mfa_lockout",
        label="security_incident",
        all_of=[r"\blocked\b"],
        any_of=[r"\bauthenticator\b"],
    )
    router = Router(
        torch_workflow,
        [ZeroShotClassifier(torch_workflow)],
        rules=RulesClassifier([rule], torch_workflow.label_names),
    )
    tickets = [
        Ticket(id=f"t{i}", text=t, created_at=utcnow())
        for i, t in enumerate(
            [
                "locked out after 30 authenticator prompts I did not start",
                "the vpn disconnects every few minutes from home",
            ]
        )
    ]
    first, second = router.decide(tickets)
    assert first.rule_hits and first.label == "security_incident"
    assert first.route is Route.ESCALATE
    assert second.label == "vpn_issue" and not second.rule_hits
    assert second.latency_ms > 0
