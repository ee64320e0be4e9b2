"""The head's warm start: before the first step, the model is the linear probe."""

from __future__ import annotations

import numpy as np
import pytest

from _tiny_models import make_tiny_encoder, toy_examples
from tunegate.config import Workflow
from tunegate.lora.data import tokenize as _tokenize
from tunegate.lora.head import warm_start_head as _warm_start_head
from tunegate.lora.model import predict_logits as _predict_logits
from tunegate.lora.model import training_model as _lora_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_tiny_encoder(tmp_path_factory.mktemp("enc") / "tiny-bert")


def test_warm_started_model_predicts_like_the_probe(tiny: str, workflow: Workflow) -> None:
    import torch
    import transformers

    labels = workflow.label_names
    examples = toy_examples(12, seed=3)
    model, saved = _lora_model(tiny, labels, workflow)
    assert "pooler" in saved and "classifier" in saved  # trained and saved with the adapter
    tok = transformers.AutoTokenizer.from_pretrained(tiny)
    ids = _tokenize(tok, [e.text for e in examples], 64)
    y = np.array([labels.index(e.label) for e in examples])
    rows = list(range(len(examples)))
    before = _predict_logits(model, ids, int(tok.pad_token_id or 0), 16, rows).argmax(1)

    assert _warm_start_head(model, ids, y, int(tok.pad_token_id or 0), rows, len(labels))
    logits = _predict_logits(model, ids, int(tok.pad_token_id or 0), 16, rows)

    # the trained pooler copy is the identity
    pooler = dict(model.named_modules())["base_model.model.bert.pooler.modules_to_save.default"]
    assert torch.equal(pooler.dense.weight, torch.eye(pooler.dense.weight.shape[0]))
    # and it fits the training rows far better than the random head did
    assert (logits.argmax(1) == y).mean() > (before == y).mean()
    assert (logits.argmax(1) == y).mean() >= 0.6  # chance is 1/8; a random head sits near it
