"""Training state and checkpoints: what a killed run needs to resume where its epoch ended.

After every epoch the loop writes ``<artifact>/.checkpoint/checkpoint.pt`` atomically: the
trainable weights, optimizer, scheduler, the RNG states and the :class:`TrainingState`
(epoch, early-stopping state, history). A checkpoint is resumed only by a run with the same
fingerprint (data, base weights, recipe, seeds); the file is removed once the artifact is
written.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunegate._optional import require
from tunegate.errors import ModelError

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


def checkpoint_path(out_dir: str | Path) -> Path:
    """The checkpoint file of the artifact folder ``out_dir``."""
    return Path(out_dir) / CHECKPOINT_DIR / "checkpoint.pt"


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
    """Write the checkpoint of the epoch just finished, atomically."""
    torch = require("torch")
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
    tmp = path.with_suffix(".tmp")
    torch.save(checkpoint.payload(), tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, fingerprint: str) -> Checkpoint | None:
    """The checkpoint at ``path`` when it exists and matches ``fingerprint``, else None."""
    if not path.is_file():
        return None
    torch = require("torch")
    data = torch.load(path, weights_only=False)
    if data.get("fingerprint") != fingerprint:
        return None
    return Checkpoint.from_payload(data)
