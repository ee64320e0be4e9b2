"""Calibration of a causal-LM adapter: the best epoch's weights, a temperature fitted on the
calibration and validation rows (as for the encoder, :mod:`tunegate.lora.calibration`), and the
manifest's metrics, all from :mod:`tunegate.metrics`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tunegate.lora.state import TrainingState, load_trainable
from tunegate.metrics import (
    apply_temperature,
    expected_calibration_error,
    fit_route_threshold,
    fit_temperature,
    macro_f1_score,
    nll_loss,
)

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
        fit_scores = run.scores(fit_rows)
        cal = fit_scores[: len(splits.calibration)]
        y_cal = run.y[splits.calibration]
        temperature = fit_temperature(fit_scores, run.y[fit_rows])
        routing = run.workflow.routing
        if routing.target_clarify_rate is not None or routing.target_risk is not None:
            fit = fit_route_threshold(
                apply_temperature(fit_scores, temperature),
                run.y[fit_rows],
                target_clarify_rate=routing.target_clarify_rate,
                target_risk=routing.target_risk,
            )
            metrics["clarify_threshold"] = fit.threshold
            metrics["routing_fit"] = {**fit.to_dict(), "rows": "calibration+validation"}
        metrics.update(
            {
                "cal_accuracy": float((cal.argmax(axis=1) == y_cal).mean()),
                "cal_macro_f1": macro_f1_score(y_cal, cal.argmax(axis=1)),
                "ece_uncalibrated": expected_calibration_error(y_cal, apply_temperature(cal, 1.0)),
                "ece_calibrated": expected_calibration_error(
                    y_cal, apply_temperature(cal, temperature)
                ),
                "nll_uncalibrated": nll_loss(cal, y_cal),
                "nll_calibrated": nll_loss(cal, y_cal, temperature=temperature),
            }
        )
        if parent_proba is not None:
            texts = [run.examples[i].text for i in splits.calibration]
            metrics["ece_parent"] = expected_calibration_error(
                y_cal, np.asarray(parent_proba(texts))
            )
    metrics["temperature"] = temperature
    run.lap("calibration")
    metrics["phase_seconds"] = run.phases
    return metrics, temperature
