"""MLflow export against a local sqlite-backed tracking store."""

from __future__ import annotations

from pathlib import Path

import pytest

from _tiny_models import make_tiny_encoder, toy_examples
from tunegate.config import Workflow
from tunegate.mlflow_export import export_training, registered_model_name, set_alias
from tunegate.records import ModelKind, ModelVersion
from tunegate.train import finetune

mlflow = pytest.importorskip("mlflow")


def test_run_metrics_artifact_version_and_aliases_are_logged(
    workflow: Workflow, tmp_path: Path
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    wf = workflow.model_copy(update={"data_targets": [], "mlflow_tracking_uri": uri})
    enc = make_tiny_encoder(tmp_path / "enc")
    art = finetune(toy_examples(6), wf, tmp_path / "art", seed=0, base_model=enc, epochs=1)
    mv = ModelVersion(id="lora-abc", kind=ModelKind.LORA, artifact_path=str(art))
    result = export_training(
        wf, art, model_version=mv, aliases=["candidate"], extra_metrics={"val_macro_f1_std": 0.01}
    )
    client = mlflow.tracking.MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client.get_run(result.run_id)
    # artifacts land next to the database, not in ./mlruns of the working directory
    assert run.info.artifact_uri.startswith((tmp_path / "mlflow-artifacts").as_uri())
    assert (tmp_path / "mlflow-artifacts").is_dir()
    assert run.data.params["lora_r"] == str(wf.training.lora_r)
    assert "val_macro_f1" in run.data.metrics and run.data.metrics["val_macro_f1_std"] == 0.01
    assert run.data.tags["tunegate.version"] == "lora-abc"
    files = {f.path for f in client.list_artifacts(result.run_id, "artifact")}
    assert "artifact/manifest.json" in files
    name = registered_model_name(wf)
    assert result.registered_model == name
    assert (
        str(client.get_model_version_by_alias(name, "candidate").version)
        == result.registered_version
    )
    set_alias(wf, "champion", result.run_id)
    assert client.get_model_version_by_alias(name, "champion").run_id == result.run_id
