"""tunegate: make fine-tuning the last mile, not the first move, and safe when it is right.

The public API is re-exported here; see docs/architecture.md for the modules.
"""

from __future__ import annotations

from tunegate.config import Workflow, load_workflow, parse_workflow
from tunegate.errors import (
    ConfigError,
    GateClosedError,
    InputError,
    LeakageError,
    MissingExtraError,
    ModelError,
    NotFoundError,
    RegistryError,
    StoreError,
    TunegateError,
)
from tunegate.records import (
    Attempt,
    Decision,
    EvalRun,
    EvalSuite,
    Example,
    ModelVersion,
    Override,
    ReasonCode,
    Route,
    Ticket,
    Verdict,
)

__version__ = "0.1.0"

__all__ = [
    "Attempt",
    "ConfigError",
    "Decision",
    "EvalRun",
    "EvalSuite",
    "Example",
    "GateClosedError",
    "InputError",
    "LeakageError",
    "MissingExtraError",
    "ModelError",
    "ModelVersion",
    "NotFoundError",
    "Override",
    "ReasonCode",
    "RegistryError",
    "Route",
    "StoreError",
    "Ticket",
    "TunegateError",
    "Verdict",
    "Workflow",
    "__version__",
    "load_workflow",
    "parse_workflow",
]
