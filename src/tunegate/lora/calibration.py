"""Phase 4 of the training loop: the best epoch's weights, the temperature, calibration figures.

The temperature is fitted by :func:`tunegate.train.fit_temperature`; ECE and macro-F1 come
from :mod:`tunegate.metrics`. The figures go into the manifest's ``metrics``.

When the workflow sets ``routing.target_clarify_rate`` or ``routing.target_risk``, the
version's own routing threshold is fitted here too, on the calibrated probabilities of the
same rows as the temperature (:func:`tunegate.metrics.fit_route_threshold`): the manifest's
``metrics["clarify_threshold"]`` and ``metrics["routing_fit"]``, which
:func:`tunegate.train.register_adapter` copies onto the ModelVersion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tunegate.config import Workflow
from tunegate.lora.model import predict_logits
from tunegate.lora.run import TrainingRun
from tunegate.lora.state import TrainingState, load_trainable
from tunegate.metrics import (
    apply_temperature,
    expected_calibration_error,
    fit_route_threshold,
    fit_temperature,
    macro_f1_score,
    nll_loss,
)

__all__ = ["ParentProba", "calibrate", "fit_calibration"]

ParentProba = Callable[[Sequence[str]], np.ndarray]
"""The parent model's ``predict_proba``: its ECE on the calibration split is recorded."""


def fit_calibration(
    workflow: Workflow,
    fit_logits: np.ndarray,
    y_fit: np.ndarray,
    n_cal: int,
    *,
    parent_proba: ParentProba | None = None,
    cal_texts: Sequence[str] = (),
) -> tuple[float, dict[str, Any]]:
    """The temperature and the calibration figures of an adapter (encoder or causal LM).

    ``fit_logits`` / ``y_fit`` are the calibration rows followed by the validation rows
    (``n_cal`` of them calibration). The temperature is fitted on all of them: one scalar,
    but on a few hundred tickets the calibration split alone is too small to fit it stably
    (validation only chose the epoch). With a routing target the version's threshold is
    fitted on the same rows; the figures (accuracy, macro-F1, ECE and NLL before and after)
    are on the calibration rows; with ``parent_proba`` the parent's ECE on ``cal_texts``.
    """
    temperature = fit_temperature(fit_logits, y_fit)
    figures: dict[str, Any] = {}
    routing = workflow.routing
    if routing.target_clarify_rate is not None or routing.target_risk is not None:
        fit = fit_route_threshold(
            apply_temperature(fit_logits, temperature),
            y_fit,
            target_clarify_rate=routing.target_clarify_rate,
            target_risk=routing.target_risk,
        )
        figures["clarify_threshold"] = fit.threshold
        figures["routing_fit"] = {**fit.to_dict(), "rows": "calibration+validation"}
    cal_logits, y_cal = fit_logits[:n_cal], y_fit[:n_cal]
    figures.update(
        {
            "cal_accuracy": float((cal_logits.argmax(axis=1) == y_cal).mean()),
            "cal_macro_f1": macro_f1_score(y_cal, cal_logits.argmax(axis=1)),
            "ece_uncalibrated": expected_calibration_error(
                y_cal, apply_temperature(cal_logits, 1.0)
            ),
            "ece_calibrated": expected_calibration_error(
                y_cal, apply_temperature(cal_logits, temperature)
            ),
            "nll_uncalibrated": nll_loss(cal_logits, y_cal),
            "nll_calibrated": nll_loss(cal_logits, y_cal, temperature=temperature),
        }
    )
    if parent_proba is not None:
        figures["ece_parent"] = expected_calibration_error(
            y_cal, np.asarray(parent_proba(list(cal_texts)))
        )
    return temperature, figures


def calibrate(
    run: TrainingRun, state: TrainingState, parent_proba: ParentProba | None
) -> tuple[dict[str, Any], float]:
    """Load the best epoch's weights; fit the temperature; the manifest's metrics."""
    load_trainable(run.model, state.best_state)
    run.model.eval()
    splits, history = run.splits, state.history
    metrics: dict[str, Any] = {
        "n_train": len(splits.train),
        "n_validation": len(splits.validation),
        "n_calibration": len(splits.calibration),
        "best_epoch": state.best_epoch,
        "epochs_run": len(history),
        "stopped_early": bool(history and history[-1]["stop"] and len(history) < run.recipe.epochs),
        "history": history,
        "train_seconds": round(state.train_seconds, 3),
        "resumed_from_epoch": state.resumed_from,
    }
    if run.zero is not None:
        metrics["warm_start"] = run.zero
    best_row = next(
        (r for r in [*history, run.zero or {}] if r.get("epoch") == state.best_epoch), {}
    )
    for key in ("val_macro_f1", "val_accuracy", "val_loss"):
        if key in best_row:
            metrics[key] = best_row[key]

    temperature = 1.0
    if splits.calibration:

        def logits_of(rows: list[int]) -> np.ndarray:
            return predict_logits(
                run.model, run.ids, run.pad_id, rows=rows, prefix=run.prefix, cap=run.longest
            )

        # calibration rows first: their figures are read from the first rows
        temperature, figures = fit_calibration(
            run.workflow,
            logits_of([*splits.calibration, *splits.validation]),
            run.y[[*splits.calibration, *splits.validation]],
            len(splits.calibration),
            parent_proba=parent_proba,
            cal_texts=[run.examples[i].text for i in splits.calibration],
        )
        metrics.update(figures)
    metrics["temperature"] = temperature
    run.lap("calibration")
    metrics["phase_seconds"] = run.phases
    if run.prefix is not None:
        metrics["prefix_cache"] = {
            "frozen_layers": run.prefix.k,
            "texts": run.prefix.n_cached,
            "megabytes": round(run.prefix.nbytes / 2**20, 1),
        }
    return metrics, temperature
