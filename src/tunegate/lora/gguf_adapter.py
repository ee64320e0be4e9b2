"""A PEFT LoRA adapter of a Llama model as a llama.cpp LoRA file (GGUF), for
:func:`tunegate.llm.local_llm_server` to serve on top of the quantized base.

What llama.cpp reads (``src/llama-adapter.cpp``; the writer is llama.cpp's
``convert_lora_to_gguf.py``, reproduced here without its dependency on the llama.cpp source
tree):

- metadata ``general.architecture`` (must equal the base model's, ``llama``),
  ``general.type = adapter``, ``adapter.type = lora`` and ``adapter.lora.alpha`` (the scale
  applied is ``alpha / rank``, PEFT's own);
- per adapted weight ``W`` of the base, named as in the base GGUF (``blk.{i}.attn_q.weight``
  for ``model.layers.{i}.self_attn.q_proj.weight``: the ``gguf`` package's tensor-name map), two
  tensors ``<name>.lora_a`` (PEFT's ``lora_A``, shape (r, in)) and ``<name>.lora_b``
  (``lora_B``, (out, r)), here in float32;
- llama.cpp's Llama conversion permutes the rows of ``q_proj`` and ``k_proj`` (the rotary
  halves interleaved per head, :func:`permute_rows`), so the rows of their ``lora_b`` are
  permuted the same way (``W + B @ A`` permuted is ``W' + B' @ A``); ``lora_a`` is unchanged.

Only Llama-architecture bases (``LlamaForCausalLM``, e.g. SmolLM2) and adapters on their
linear layers are supported; anything else is refused with the reason.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tunegate._optional import require
from tunegate.errors import InputError, ModelError

__all__ = [
    "BASE_HASH_KEY",
    "GGUF_ADAPTER_ARCH",
    "check_gguf_adapter",
    "export_gguf_adapter",
    "gguf_tensor_name",
    "permute_rows",
]

GGUF_ADAPTER_ARCH = "llama"
"""The llama.cpp architecture of the supported bases."""
_SUPPORTED = {"LlamaForCausalLM"}
_PEFT_PREFIX = "base_model.model."
_HALVES = {".lora_A.weight": "lora_a", ".lora_B.weight": "lora_b"}
BASE_HASH_KEY = "tunegate.base_model_sha256"
"""Adapter metadata naming the SHA-256 of the base weights the adapter was trained on (when
known); :func:`tunegate.llm.local_llm_server` checks it against the GGUF it serves."""


def permute_rows(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's Llama row permutation of a q/k projection (or of its ``lora_b``): per head,
    the rows ``[0, 2, 4, ..., 1, 3, 5, ...]`` of Hugging Face's rotary layout become
    interleaved pairs. ``weights``: (n_head * head_dim, ...)."""
    rows = weights.shape[0]
    if rows % (2 * n_head):
        raise ModelError(f"{rows} rows cannot be split into {n_head} heads of rotary pairs")
    return (
        weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


@functools.lru_cache(maxsize=8)
def _name_map(n_layers: int) -> Any:
    """The ``gguf`` package's Hugging Face -> llama.cpp tensor-name map of a Llama model
    (building it takes ~10 ms: once per layer count)."""
    gguf = require("gguf", purpose="exporting a LoRA adapter for llama.cpp")
    return gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layers)


def gguf_tensor_name(peft_key: str, n_layers: int) -> tuple[str, str]:
    """``(base tensor name in the GGUF, "lora_a" | "lora_b")`` of a PEFT adapter key such as
    ``base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight``."""
    part = next((p for p in _HALVES if peft_key.endswith(p)), None)
    if part is None:
        raise InputError(
            f"adapter tensor {peft_key!r} is not a LoRA A/B matrix of a linear layer; only "
            f"adapters on linear layers (no embeddings, biases or modules_to_save) export"
        )
    module = peft_key.removeprefix(_PEFT_PREFIX).removesuffix(part)
    suffix = _HALVES[part]
    mapped = _name_map(n_layers).get_name(module)
    if mapped is None or not mapped.startswith("blk."):
        raise InputError(
            f"adapter module {module!r} has no llama.cpp counterpart in the transformer blocks; "
            f"adapt the attention or MLP projections (q_proj, k_proj, v_proj, o_proj, "
            f"gate_proj, up_proj, down_proj)"
        )
    return f"{mapped}.weight", suffix


def _base_config(
    adapter: Path, base_config: str | Path | Mapping[str, Any] | None
) -> dict[str, Any]:
    if isinstance(base_config, Mapping):
        return dict(base_config)
    candidates: list[Path] = []
    if base_config is not None:
        path = Path(base_config)
        candidates.append(path if path.suffix == ".json" else path / "config.json")
    else:
        from tunegate.lora.sft_artifact import read_sft_manifest

        manifest = adapter.parent / "manifest.json"
        if manifest.is_file():
            try:
                return dict(read_sft_manifest(adapter.parent).base_config)
            except ModelError:
                pass  # another artifact format: fall back on the adapter's own base path
        settings = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
        base = settings.get("base_model_name_or_path")
        if base:
            candidates.append(Path(base) / "config.json")
    for path in candidates:
        if path.is_file():
            loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return loaded
    raise InputError(
        f"{adapter}: the base model's config.json was not found (tried "
        f"{[str(c) for c in candidates] or 'nothing'}); pass base_config= (the base model's "
        f"Hugging Face folder or config.json)"
    )


def _adapter_folder(path: Path) -> Path:
    if (path / "adapter_config.json").is_file():
        return path
    if (path / "adapter" / "adapter_config.json").is_file():
        return path / "adapter"
    raise InputError(
        f"{path}: no adapter_config.json (expected a PEFT adapter folder or an artifact folder "
        f"with adapter/ inside, e.g. from train_sft_adapter)"
    )


def export_gguf_adapter(
    adapter_dir: str | Path,
    out_path: str | Path,
    *,
    base_config: str | Path | Mapping[str, Any] | None = None,
    base_model_hash: str | None = None,
) -> Path:
    """Write the LoRA adapter in ``adapter_dir`` as a llama.cpp GGUF LoRA file at
    ``out_path`` (written next to it, then renamed); returns ``out_path``.

    ``adapter_dir``: a PEFT adapter folder, or an artifact folder holding one in ``adapter/``
    (a ``tunegate-sft/1`` artifact also supplies the base model's config and hash).
    ``base_config``: the base model's Hugging Face config (a dict, a folder or a
    ``config.json``); by default the artifact's manifest or the adapter's
    ``base_model_name_or_path``. Raises :class:`InputError` for an adapter llama.cpp cannot
    apply (another architecture, DoRA, per-module ranks or alphas, adapted embeddings).
    """
    gguf = require("gguf", purpose="exporting a LoRA adapter for llama.cpp")
    safetensors_numpy = require("safetensors.numpy", purpose="reading a PEFT adapter")
    adapter = _adapter_folder(Path(adapter_dir))
    settings = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    config = _base_config(adapter, base_config)
    architectures = config.get("architectures") or []
    if not set(architectures) & _SUPPORTED:
        raise InputError(
            f"{adapter}: the base model is {architectures or 'of unknown architecture'}; the "
            f"llama.cpp export supports {sorted(_SUPPORTED)}"
        )
    if settings.get("use_dora"):
        raise InputError(f"{adapter}: DoRA adapters have no llama.cpp LoRA form; train plain LoRA")
    if settings.get("rank_pattern") or settings.get("alpha_pattern"):
        raise InputError(
            f"{adapter}: per-module ranks or alphas (rank_pattern/alpha_pattern) cannot be "
            f"expressed by llama.cpp's single adapter.lora.alpha; train with one r and alpha"
        )
    rank, alpha = int(settings["r"]), float(settings["lora_alpha"])
    if settings.get("use_rslora"):
        alpha = alpha * math.sqrt(rank)  # rsLoRA scales by alpha/sqrt(r); llama.cpp by alpha/r
    weights_file = adapter / "adapter_model.safetensors"
    if not weights_file.is_file():
        raise InputError(
            f"{adapter}: no adapter_model.safetensors (save the adapter with safetensors)"
        )
    tensors: dict[str, np.ndarray] = safetensors_numpy.load_file(str(weights_file))
    n_layers = int(config["num_hidden_layers"])
    n_head = int(config["num_attention_heads"])
    n_kv_head = int(config.get("num_key_value_heads") or n_head)

    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, value in tensors.items():
        name, part = gguf_tensor_name(key, n_layers)
        matrix = np.ascontiguousarray(value, dtype=np.float32)
        if part == "lora_b" and name.endswith(".attn_q.weight"):
            matrix = np.ascontiguousarray(permute_rows(matrix, n_head))
        elif part == "lora_b" and name.endswith(".attn_k.weight"):
            matrix = np.ascontiguousarray(permute_rows(matrix, n_kv_head))
        pairs.setdefault(name, {})[part] = matrix
    if not pairs:
        raise InputError(f"{weights_file}: no LoRA tensors")
    incomplete = sorted(n for n, p in pairs.items() if set(p) != {"lora_a", "lora_b"})
    if incomplete:
        raise InputError(
            f"{weights_file}: LoRA tensors without their A or B half: {incomplete[:3]}"
        )

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    writer = gguf.GGUFWriter(str(tmp), arch=GGUF_ADAPTER_ARCH)
    try:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        writer.add_name(adapter.parent.name if adapter.name == "adapter" else adapter.name)
        known_hash = base_model_hash or _manifest_hash(adapter)
        if known_hash:
            writer.add_string(BASE_HASH_KEY, known_hash)
        for name in sorted(pairs, key=_block_order):
            for part in ("lora_a", "lora_b"):
                writer.add_tensor(f"{name}.{part}", pairs[name][part])
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, out)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return out


def _manifest_hash(adapter: Path) -> str:
    from tunegate.lora.sft_artifact import read_sft_manifest

    if adapter.name != "adapter" or not (adapter.parent / "manifest.json").is_file():
        return ""
    try:
        return read_sft_manifest(adapter.parent).base_model_hash
    except ModelError:
        return ""


def _block_order(name: str) -> tuple[int, str]:
    parts = name.split(".")
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1, name)


def check_gguf_adapter(adapter_path: str | Path, base_path: str | Path) -> None:
    """Refuse (:class:`ModelError`, naming the file and why) a file llama.cpp would refuse
    as a LoRA of ``base_path`` — not a GGUF LoRA adapter, another architecture — or one whose
    recorded base hash (:data:`BASE_HASH_KEY`) is not the base file's. llama.cpp itself
    only finds out when a request first loads the adapter."""
    gguf = require("gguf", purpose="checking a llama.cpp LoRA adapter")
    from tunegate.models._hashing import file_sha256

    path = Path(adapter_path)
    if not path.is_file():
        raise ModelError(f"adapter {path} is not a file; pass a GGUF LoRA adapter")

    def fields(file: Path) -> dict[str, Any]:
        try:
            reader = gguf.GGUFReader(str(file))
        except (ValueError, OSError) as exc:
            raise ModelError(f"{file} is not a GGUF file ({exc})") from exc
        wanted = ("general.type", "general.architecture", "adapter.type", BASE_HASH_KEY)
        return {k: reader.fields[k].contents() for k in wanted if k in reader.fields}

    adapter, base = fields(path), fields(Path(base_path))
    if adapter.get("general.type") != "adapter" or adapter.get("adapter.type") != "lora":
        raise ModelError(
            f"{path} is not a llama.cpp LoRA adapter (general.type "
            f"{adapter.get('general.type')!r}, adapter.type {adapter.get('adapter.type')!r}); "
            f"write one with tunegate.lora.export_gguf_adapter"
        )
    if adapter.get("general.architecture") != base.get("general.architecture"):
        raise ModelError(
            f"{path} adapts a {adapter.get('general.architecture')!r} model, {base_path} is "
            f"{base.get('general.architecture')!r}; export the adapter for this base"
        )
    recorded = adapter.get(BASE_HASH_KEY)
    if recorded and recorded != file_sha256(Path(base_path)):
        raise ModelError(
            f"{path} was trained on a base model with weights hash {str(recorded)[:12]}..., "
            f"not {base_path}; serve it on the model it was trained on"
        )
