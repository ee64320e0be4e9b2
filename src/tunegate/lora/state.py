"""Training state and checkpoints: what a killed run needs to resume where its epoch ended.

After every epoch the loop writes a checkpoint into ``<artifact>/.checkpoint/``: every tensor
(trainable weights, best weights, optimizer moments, RNG states) in a safetensors file
``checkpoint-<epoch>-<random>.safetensors``, everything else (the :class:`TrainingState`,
optimizer and scheduler settings, Python's RNG state) in ``checkpoint.json``, which names the
tensors file and its SHA-256 and is written last (atomically), so a run killed at any point leaves a
consistent pair. Nothing is unpickled: the JSON is parsed and checked (format, fingerprint,
types, the tensors file's hash) before the tensors are read, and safetensors holds only raw
arrays. A checkpoint in the old pickle format (``checkpoint.pt``) is refused with
:class:`~tunegate.errors.InputError`. A checkpoint is resumed only by a run with the same
fingerprint (data, base weights, recipe, seeds); the folder is removed once the artifact is
written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunegate._optional import require
from tunegate.errors import InputError, ModelError

__all__ = [
    "CHECKPOINT_DIR",
    "Checkpoint",
    "TrainingState",
    "checkpoint_path",
    "deterministic",
    "load_checkpoint",
    "load_trainable",
    "save_checkpoint",
    "seed_everything",
    "trainable_state",
]

CHECKPOINT_DIR = ".checkpoint"
"""Folder inside the artifact folder that holds the per-epoch checkpoint."""


CHECKPOINT_FORMAT = "tunegate-checkpoint/2"
LEGACY_CHECKPOINT = "checkpoint.pt"
"""The pickle checkpoint of earlier versions (refused: unpickling can run code)."""


def checkpoint_path(out_dir: str | Path) -> Path:
    """The checkpoint's JSON file in the artifact folder ``out_dir`` (it names the tensors)."""
    return Path(out_dir) / CHECKPOINT_DIR / "checkpoint.json"


def trainable_state(model: Any) -> dict[str, Any]:
    """A detached copy of every parameter that requires a gradient, by name."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable(model: Any, state: dict[str, Any]) -> None:
    """Copy ``state`` (from :func:`trainable_state`) into the model's parameters."""
    torch = require("torch")
    params = dict(model.named_parameters())
    missing = [n for n in state if n not in params]
    if missing:
        raise ModelError(f"checkpoint has parameters the model lacks: {missing[:3]}")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


def seed_everything(seed: int) -> None:
    """Seed torch, Python's ``random`` and NumPy's global generator."""
    torch = require("torch")
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """``torch.use_deterministic_algorithms(True)`` for the block, restored afterwards."""
    torch = require("torch")
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


@dataclass
class TrainingState:
    """Where the epoch loop stands: early stopping, the best weights, the history."""

    best_state: dict[str, Any]
    """Trainable weights of the best epoch so far (see :func:`trainable_state`)."""
    epoch: int = 0
    """Epochs finished."""
    best_score: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    """Epochs since the best one (early stopping ends the run at ``training.patience``)."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """One row per finished epoch: train loss, validation figures, ``stop``."""
    train_seconds: float = 0.0
    resumed_from: int = 0
    """The epoch a resumed run started at (0 for a fresh run; not checkpointed)."""

    @property
    def stopped(self) -> bool:
        """The last finished epoch ended the run (early stopping)."""
        return bool(self.history and self.history[-1].get("stop"))

    def record(self, row: dict[str, Any], score: float, model: Any, *, patience: int) -> None:
        """Close epoch ``row["epoch"]`` with its selection ``score``; marks ``row["stop"]``."""
        if score > self.best_score:
            self.best_score, self.best_epoch, self.bad_epochs = score, int(row["epoch"]), 0
            self.best_state = trainable_state(model)
        else:
            self.bad_epochs += 1
        row["stop"] = self.bad_epochs >= patience
        self.history.append(row)
        self.epoch = int(row["epoch"])


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint file's contents (``torch.save`` of :meth:`payload`)."""

    fingerprint: str
    state: TrainingState
    trainable: dict[str, Any]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, Any]
    """``torch``, ``python`` and ``numpy`` generator states."""

    def payload(self) -> dict[str, Any]:
        s = self.state
        return {
            "fingerprint": self.fingerprint,
            "epoch": s.epoch,
            "trainable": self.trainable,
            "optimizer": self.optimizer,
            "scheduler": self.scheduler,
            "rng": self.rng,
            "best_state": s.best_state,
            "best_score": s.best_score,
            "best_epoch": s.best_epoch,
            "bad_epochs": s.bad_epochs,
            "history": s.history,
            "train_seconds": s.train_seconds,
        }

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Checkpoint:
        state = TrainingState(
            best_state=data["best_state"],
            epoch=int(data["epoch"]),
            best_score=float(data["best_score"]),
            best_epoch=int(data["best_epoch"]),
            bad_epochs=int(data["bad_epochs"]),
            history=list(data["history"]),
            train_seconds=float(data.get("train_seconds", 0.0)),
            resumed_from=int(data["epoch"]),
        )
        return cls(
            fingerprint=data["fingerprint"],
            state=state,
            trainable=data["trainable"],
            optimizer=data["optimizer"],
            scheduler=data["scheduler"],
            rng=data["rng"],
        )

    def restore(self, model: Any, optimizer: Any, scheduler: Any) -> TrainingState:
        """Load weights, optimizer, scheduler and RNG states; returns the training state."""
        torch = require("torch")
        load_trainable(model, self.trainable)
        optimizer.load_state_dict(self.optimizer)
        scheduler.load_state_dict(self.scheduler)
        torch.set_rng_state(self.rng["torch"])
        random.setstate(self.rng["python"])
        np.random.set_state(self.rng["numpy"])
        return self.state


def save_checkpoint(
    path: Path, fingerprint: str, state: TrainingState, model: Any, optimizer: Any, scheduler: Any
) -> None:
    """Write the checkpoint of the epoch just finished: the tensors file first, then the JSON
    that names it (atomically), then remove older tensors files."""
    torch = require("torch")
    from safetensors.torch import save_file

    checkpoint = Checkpoint(
        fingerprint=fingerprint,
        state=state,
        trainable=trainable_state(model),
        optimizer=optimizer.state_dict(),
        scheduler=scheduler.state_dict(),
        rng={
            "torch": torch.get_rng_state(),
            "python": random.getstate(),
            "numpy": np.random.get_state(),
        },
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, Any] = {}
    meta = _encode(checkpoint.payload(), tensors)
    name = f"checkpoint-{state.epoch}-{os.urandom(4).hex()}.safetensors"  # never overwritten
    tensor_file = path.parent / name
    tmp = tensor_file.with_suffix(".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, tensor_file)
    document = {
        "format": CHECKPOINT_FORMAT,
        "fingerprint": fingerprint,
        "tensors": name,
        "tensors_sha256": _sha256(tensor_file),
        "payload": meta,
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document), encoding="utf-8")
    os.replace(tmp, path)
    for old in path.parent.glob("checkpoint-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)


def load_checkpoint(path: Path, fingerprint: str) -> Checkpoint | None:
    """The checkpoint at ``path`` when it exists and matches ``fingerprint``, else None.

    Raises :class:`~tunegate.errors.InputError` naming the file for a checkpoint in the old
    pickle format (never loaded) and for one that fails its checks (malformed JSON, wrong
    types, a tensors file that is missing or does not match its hash).
    """
    legacy = path.parent / LEGACY_CHECKPOINT
    if legacy.exists():
        raise InputError(
            f"{legacy} is a checkpoint in the old pickle format, which tunegate no longer loads "
            f"(unpickling a file can run code); delete {path.parent} and restart the run"
        )
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _bad(path, f"it is not readable JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != CHECKPOINT_FORMAT:
        raise _bad(path, f"it is not a {CHECKPOINT_FORMAT} checkpoint")
    if document.get("fingerprint") != fingerprint:
        return None
    name = document.get("tensors")
    if (
        not isinstance(name, str)
        or "/" in name
        or "\\" in name
        or not name.endswith(".safetensors")
    ):
        raise _bad(path, f"its tensors file name {name!r} is not a file of {path.parent}")
    tensor_file = path.parent / name
    if not tensor_file.is_file() or _sha256(tensor_file) != document.get("tensors_sha256"):
        raise _bad(path, f"{tensor_file} is missing or does not match the hash it was saved with")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(tensor_file), device="cpu")
        payload = _decode(document.get("payload"), tensors)
        if not isinstance(payload, dict):
            raise TypeError("the payload is not an object")
        _check_shapes(payload)
        return Checkpoint.from_payload(payload)
    except (SafetensorError, KeyError, TypeError, ValueError) as exc:
        raise _bad(path, f"its contents do not check out ({type(exc).__name__}: {exc})") from None


def _check_shapes(payload: dict[str, Any]) -> None:
    """``TypeError`` unless the weights are tensors by name and the RNG states have their
    generators' shapes."""
    torch = require("torch")
    for key in ("trainable", "best_state"):
        weights = payload[key]
        if not isinstance(weights, dict) or not all(
            isinstance(v, torch.Tensor) for v in weights.values()
        ):
            raise TypeError(f"{key} is not a mapping of tensors")
    rng = payload["rng"]
    if not (
        isinstance(rng, dict)
        and isinstance(rng.get("torch"), torch.Tensor)
        and isinstance(rng.get("python"), tuple)
        and isinstance(rng.get("numpy"), tuple)
    ):
        raise TypeError("rng is not the torch, python and numpy generator states")
    for key in ("optimizer", "scheduler"):
        if not isinstance(payload[key], dict):
            raise TypeError(f"{key} is not an object")


def _bad(path: Path, why: str) -> InputError:
    return InputError(
        f"checkpoint {path} cannot be resumed: {why}; delete {path.parent} and restart the run"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _encode(value: Any, tensors: dict[str, Any]) -> Any:
    """``value`` as JSON, its tensors and arrays moved into ``tensors`` (by reference)."""
    torch = require("torch")
    if isinstance(value, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(value, np.ndarray):
        key = f"t{len(tensors)}"
        wide = value.astype(np.int64) if value.dtype == np.uint32 else value
        tensors[key] = torch.from_numpy(np.ascontiguousarray(wide)).clone()
        return {"__ndarray__": key, "dtype": str(value.dtype)}
    if isinstance(value, dict):
        if all(type(k) is str and not k.startswith("__") for k in value):
            return {k: _encode(v, tensors) for k, v in value.items()}
        if all(type(k) is int for k in value):
            return {"__intdict__": [[k, _encode(v, tensors)] for k, v in value.items()]}
        raise ModelError(f"cannot checkpoint a dict with keys {list(value)[:3]}")
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in value]}
    if isinstance(value, list):
        return [_encode(v, tensors) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, np.generic):
        return value.item()
    raise ModelError(f"cannot checkpoint a value of type {type(value).__name__}")


def _decode(value: Any, tensors: dict[str, Any]) -> Any:
    """The inverse of :func:`_encode` (``KeyError``/``TypeError`` for anything malformed)."""
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        if value is None or isinstance(value, bool | int | float | str):
            return value
        raise TypeError(f"unexpected {type(value).__name__}")
    if "__tensor__" in value:
        return tensors[str(value["__tensor__"])]
    if "__ndarray__" in value:
        dtype = np.dtype(str(value["dtype"]))
        if dtype.kind not in "iuf":
            raise TypeError(f"array dtype {dtype} is not numeric")
        return tensors[str(value["__ndarray__"])].numpy().astype(dtype)
    if "__intdict__" in value:
        return {int(k): _decode(v, tensors) for k, v in value["__intdict__"]}
    if "__tuple__" in value:
        return tuple(_decode(v, tensors) for v in value["__tuple__"])
    return {str(k): _decode(v, tensors) for k, v in value.items()}
