"""The workflow configuration, ``tunegate.yaml``, as validated pydantic models.

A :class:`Workflow` is data: it round-trips to YAML, every field carries a docstring, and
computation takes these objects, never raw dicts. :func:`load_workflow` validates a file and
turns every problem into a :class:`~tunegate.errors.ConfigError` that names the key, the line
and what is allowed.
"""

from __future__ import annotations

from tunegate.config._base import (
    MetaCondition,
)
from tunegate.config._generative import (
    AnswerSettings,
    GenerativeRules,
    ToolSpec,
    WorkflowKind,
)
from tunegate.config._loading import load_workflow, parse_workflow, starter_yaml
from tunegate.config._models import (
    DataTarget,
    GatePolicy,
    LabelSpec,
    LlmSettings,
    ModelSettings,
    RegressionPolicy,
    RollbackPolicy,
    RoutingPolicy,
    RuleSpec,
    SliceSpec,
    StoreSettings,
    SuiteSizes,
    TrainingSettings,
    TriagePolicy,
    Workflow,
)
from tunegate.config._retrieval import (
    RerankSettings,
    RetrievalSettings,
    RewriteSettings,
)
from tunegate.config._starter import (
    blank_yaml,
    describe_label,
    starter_from_file,
    starter_from_labels,
    starter_target,
)

__all__ = [
    "AnswerSettings",
    "DataTarget",
    "GatePolicy",
    "GenerativeRules",
    "LabelSpec",
    "LlmSettings",
    "MetaCondition",
    "ModelSettings",
    "RegressionPolicy",
    "RerankSettings",
    "RetrievalSettings",
    "RewriteSettings",
    "RollbackPolicy",
    "RoutingPolicy",
    "RuleSpec",
    "SliceSpec",
    "StoreSettings",
    "SuiteSizes",
    "ToolSpec",
    "TrainingSettings",
    "TriagePolicy",
    "Workflow",
    "WorkflowKind",
    "blank_yaml",
    "describe_label",
    "load_workflow",
    "parse_workflow",
    "starter_from_file",
    "starter_from_labels",
    "starter_target",
    "starter_yaml",
]
