"""Temperature scaling: one scalar ``T`` so that ``softmax(logits / T)`` is calibrated.

Fitted by minimizing the negative log-likelihood on a held-out calibration split. The
computation lives in :mod:`tunegate.metrics` (the one numeric core); these names are kept
here because fine-tuning code and users import them from :mod:`tunegate.train`.
"""

from __future__ import annotations

from tunegate.metrics import apply_temperature, fit_temperature, nll_loss

__all__ = ["apply_temperature", "fit_temperature", "nll_loss"]
