"""``tunegate probe --encoder`` takes a LoRA artifact (issue 25, item 11): its adapter merged
into the base encoder is exported once to ``<artifact>/merged`` and probed, so the
encoder-preservation check measures the fine-tuned encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _tiny_models import make_tiny_encoder, toy_examples
from tunegate.config import ModelSettings, TrainingSettings
from tunegate.errors import InputError
from tunegate.evaluate import probe_encoder_folder
from tunegate.lora import (
    ArtifactManifest,
    build_lora_model,
    export_merged_encoder,
    save_lora_artifact,
)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("probe_lora")
    base = make_tiny_encoder(root / "base", dropout=0.0)
    train = toy_examples(4)
    labels = sorted({e.label for e in train})
    model = build_lora_model(base, labels, TrainingSettings(lora_r=4, lora_dropout=0.0), seed=0)
    tok = transformers.AutoTokenizer.from_pretrained(base)
    batch = tok([e.text for e in train], padding=True, return_tensors="pt")
    target = torch.tensor([labels.index(e.label) for e in train])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-2)
    model.train()
    for _ in range(10):
        model(**batch, labels=target).loss.backward()
        opt.step()
        opt.zero_grad()
    manifest = ArtifactManifest(labels=labels, base_model=base, temperature=1.0, max_length=64)
    return base, save_lora_artifact(model.eval(), root / "art", manifest)


def _embed(folder: str, texts: list[str]) -> Any:
    from tunegate.models import get_encoder

    return np.asarray(get_encoder(ModelSettings(encoder=folder, backend="torch")).embed(texts))


def test_a_lora_artifact_is_probed_as_its_merged_encoder(artifact: tuple[str, Path]) -> None:
    base, art = artifact
    folder = probe_encoder_folder(art)
    assert Path(folder) == art / "merged" and (art / "merged" / "config.json").is_file()
    texts = [e.text for e in toy_examples(2, seed=3, prefix="p")]
    tuned, plain = _embed(folder, texts), _embed(base, texts)
    assert tuned.shape == plain.shape
    assert not np.allclose(tuned, plain, atol=1e-4)  # the adapter changed the encoder
    # the exported weights are the merged model's backbone, not the base's
    from tunegate.lora import LoraClassifier, merged_model

    backbone = merged_model(LoraClassifier.load(art, backend="torch").model).base_model
    saved = transformers.AutoModel.from_pretrained(folder)
    for name, tensor in backbone.state_dict().items():
        assert torch.allclose(saved.state_dict()[name], tensor, atol=1e-6), name


def test_the_export_is_reused_until_the_adapter_changes(artifact: tuple[str, Path]) -> None:
    _, art = artifact
    first = export_merged_encoder(art)
    stamp = first / "tunegate-merged.json"
    before = stamp.stat().st_mtime_ns
    assert export_merged_encoder(art) == first and stamp.stat().st_mtime_ns == before
    stamp.write_text('{"adapter_sha256": "stale"}', encoding="utf-8")
    export_merged_encoder(art)
    assert "stale" not in stamp.read_text(encoding="utf-8")


def test_an_encoder_folder_is_probed_as_it_is(artifact: tuple[str, Path]) -> None:
    base, _ = artifact
    assert probe_encoder_folder(base) == base


def test_a_folder_that_is_neither_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(
        InputError, match=r"neither an encoder folder \(no config.json\) nor a LoRA"
    ):
        probe_encoder_folder(tmp_path / "x")
    with pytest.raises(InputError, match="is not a folder"):
        probe_encoder_folder(tmp_path / "missing")
