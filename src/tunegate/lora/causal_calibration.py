"""Calibration of a causal-LM adapter: the best epoch's weights, a temperature fitted on the
calibration and validation rows (as for the encoder, :mod:`tunegate.lora.calibration`), and the
manifest's metrics, all from :mod:`tunegate.metrics`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tunegate.lora.calibration import fit_calibration
from tunegate.lora.state import TrainingState, load_trainable

if TYPE_CHECKING:
    from tunegate.lora.causal import CausalRun

__all__ = ["calibrate_causal"]


def calibrate_causal(
    run: CausalRun, state: TrainingState, parent_proba: Callable[[Sequence[str]], np.ndarray] | None
) -> tuple[dict[str, Any], float]:
    """The best epoch's weights, the temperature (calibration + validation rows, as for the
    encoder) and the manifest's metrics."""
    load_trainable(run.model, state.best_state)
    splits, history = run.splits, state.history
    metrics: dict[str, Any] = {
        "n_train": len(splits.train),
        "n_validation": len(splits.validation),
        "n_calibration": len(splits.calibration),
        "best_epoch": state.best_epoch,
        "epochs_run": len(history),
        "history": history,
        "train_seconds": round(state.train_seconds, 3),
        "train_tokens": run.tokens,
        "train_tokens_per_second": round(run.tokens / state.train_seconds, 1)
        if state.train_seconds
        else None,
        "resumed_from_epoch": state.resumed_from,
    }
    if "epoch0_val_macro_f1" in run.phases:
        metrics["untuned_val_macro_f1"] = run.phases.pop("epoch0_val_macro_f1")
    best = next((r for r in history if r.get("epoch") == state.best_epoch), {})
    for key in ("val_macro_f1", "val_accuracy", "val_loss"):
        if key in best:
            metrics[key] = best[key]
    temperature = 1.0
    if splits.calibration:
        fit_rows = [*splits.calibration, *splits.validation]
        temperature, figures = fit_calibration(
            run.workflow,
            run.scores(fit_rows),
            run.y[fit_rows],
            len(splits.calibration),
            parent_proba=parent_proba,
            cal_texts=[run.examples[i].text for i in splits.calibration],
        )
        metrics.update(figures)
    metrics["temperature"] = temperature
    run.lap("calibration")
    metrics["phase_seconds"] = run.phases
    return metrics, temperature
