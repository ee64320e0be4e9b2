"""Optional MLflow export: training runs, metrics, artifacts, registered versions and aliases.

Used when ``workflow.mlflow_tracking_uri`` is set and the ``mlflow`` extra is installed
(``pip install 'tunegate[mlflow]'``). tunegate's own store stays the source of truth; MLflow
receives a copy for teams that track there. The model registry API needs a database-backed
tracking store (e.g. ``sqlite:///mlflow.db``); with a ``file:`` store runs are logged and
registration is skipped with a note in the result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunegate._optional import require
from tunegate.config import Workflow
from tunegate.errors import InputError
from tunegate.lora.artifact import read_manifest
from tunegate.records import ModelVersion

__all__ = ["MlflowExport", "export_training", "registered_model_name", "set_alias"]


@dataclass(frozen=True)
class MlflowExport:
    """What was logged: the run, and the registered model version (when the store allows)."""

    tracking_uri: str
    experiment: str
    run_id: str
    registered_model: str | None
    registered_version: str | None
    aliases: list[str]
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def registered_model_name(workflow: Workflow) -> str:
    """The MLflow registered-model name of a workflow's adapters."""
    return f"tunegate-{workflow.name}"


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flat(f"{prefix}.{key}" if prefix else str(key), item, out)
    elif isinstance(value, list | tuple):
        out[prefix] = ",".join(str(v) for v in value)
    else:
        out[prefix] = value


def _artifact_location(uri: str) -> str | None:
    """For a SQLite tracking store, artifacts go next to the database file
    (``<db folder>/mlflow-artifacts``), not into ``./mlruns`` of whatever directory the command
    ran in (MLflow's default); other stores keep MLflow's default."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    return (Path(uri[len(prefix) :]).resolve().parent / "mlflow-artifacts").as_uri()


def export_training(
    workflow: Workflow,
    artifact_dir: str | Path,
    *,
    model_version: ModelVersion | None = None,
    aliases: Sequence[str] = ("candidate",),
    extra_metrics: Mapping[str, float] | None = None,
    tracking_uri: str | None = None,
) -> MlflowExport:
    """Log one trained artifact as an MLflow run and (if possible) a registered version.

    Params are the flattened training config, metrics the manifest's scalar metrics (plus
    ``extra_metrics``, e.g. seed standard deviations), tags the lineage (dataset hash, base
    model hash, tunegate version id, parent). The artifact folder is logged under
    ``artifact/``; the registered version gets ``aliases``.
    """
    uri = tracking_uri or workflow.mlflow_tracking_uri
    if not uri:
        raise InputError("no MLflow tracking URI: set mlflow_tracking_uri in tunegate.yaml")
    mlflow = require("mlflow", purpose="MLflow export")
    client = mlflow.tracking.MlflowClient(tracking_uri=uri, registry_uri=uri)
    manifest = read_manifest(artifact_dir)
    experiment_name = f"tunegate/{workflow.name}"
    experiment = client.get_experiment_by_name(experiment_name)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment(experiment_name, artifact_location=_artifact_location(uri))
    )
    tags = {
        "tunegate.dataset_hash": manifest.dataset_hash,
        "tunegate.base_model": manifest.base_model,
        "tunegate.base_model_hash": manifest.base_model_hash,
        "tunegate.seed": str(manifest.seed),
    }
    if model_version is not None:
        tags["tunegate.version"] = model_version.id
        tags["tunegate.parent"] = model_version.parent or ""
    run = client.create_run(
        experiment_id, tags=tags, run_name=model_version.id if model_version else None
    )
    run_id = run.info.run_id
    params: dict[str, Any] = {}
    _flat("", {k: v for k, v in manifest.config.items() if k != "fingerprint"}, params)
    params["temperature"] = manifest.temperature
    for key, value in sorted(params.items()):
        client.log_param(run_id, key, str(value)[:500])
    metrics = {
        k: float(v)
        for k, v in manifest.metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    metrics.update({k: float(v) for k, v in (extra_metrics or {}).items()})
    for key, value in sorted(metrics.items()):
        client.log_metric(run_id, key, value)
    for row in manifest.metrics.get("history", []):
        for key in ("train_loss", "val_macro_f1", "val_loss"):
            if key in row:
                client.log_metric(run_id, f"epoch.{key}", float(row[key]), step=int(row["epoch"]))
    client.log_artifacts(run_id, str(artifact_dir), artifact_path="artifact")
    client.set_terminated(run_id)

    name = registered_model_name(workflow)
    try:
        try:
            client.get_registered_model(name)
        except Exception:
            client.create_registered_model(
                name, description=f"tunegate adapters of {workflow.name}"
            )
        source = f"{run.info.artifact_uri}/artifact"
        version = client.create_model_version(name, source, run_id=run_id, tags=tags)
        for alias in aliases:
            client.set_registered_model_alias(name, alias, version.version)
    except Exception as exc:  # file stores have no model registry
        return MlflowExport(
            uri,
            experiment_name,
            run_id,
            None,
            None,
            [],
            note=f"model registry unavailable at {uri}: {exc}",
        )
    return MlflowExport(uri, experiment_name, run_id, name, str(version.version), list(aliases))


def set_alias(
    workflow: Workflow, alias: str, run_id: str, *, tracking_uri: str | None = None
) -> None:
    """Point an MLflow alias at the registered version logged by ``run_id`` (promote/rollback)."""
    uri = tracking_uri or workflow.mlflow_tracking_uri
    if not uri:
        return
    mlflow = require("mlflow", purpose="MLflow export")
    client = mlflow.tracking.MlflowClient(tracking_uri=uri, registry_uri=uri)
    name = registered_model_name(workflow)
    for version in client.search_model_versions(f"name='{name}'"):
        if version.run_id == run_id:
            client.set_registered_model_alias(name, alias, version.version)
            return
    raise InputError(f"no registered version of {name} was logged by run {run_id}")
