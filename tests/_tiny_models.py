"""Tiny random encoders and toy data for fast training tests (no real weights needed)."""

from __future__ import annotations

import string
from pathlib import Path

from tunegate.records import Example, ExampleSource, ReviewStatus

TOPICS: dict[str, list[str]] = {
    "account_unlock": ["locked", "unlock", "lockout", "attempts", "account"],
    "password_reset": ["password", "reset", "forgot", "expired", "change"],
    "vpn_issue": ["vpn", "tunnel", "remote", "disconnect", "gateway"],
    "security_incident": ["phishing", "suspicious", "malware", "compromised", "attack"],
    "hardware": ["laptop", "monitor", "keyboard", "printer", "dock"],
    "software_install": ["install", "license", "update", "application", "setup"],
    "access_request": ["access", "permission", "folder", "grant", "share"],
    "email_issue": ["mailbox", "outlook", "email", "inbox", "messages"],
}
FILLER = [
    "please",
    "help",
    "my",
    "the",
    "is",
    "not",
    "working",
    "today",
    "urgent",
    "again",
    "since",
    "morning",
    "team",
    "user",
    "need",
    "office",
    "home",
    "still",
]


def make_tiny_encoder(
    folder: Path, *, hidden: int = 32, layers: int = 2, seed: int = 0, dropout: float = 0.1
) -> str:
    """Save a randomly initialized 2-layer BERT and a WordPiece tokenizer to ``folder``
    (``dropout``: its hidden and attention dropout)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    words = sorted({w for ws in TOPICS.values() for w in ws} | set(FILLER))
    vocab = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *string.ascii_lowercase,
        *string.digits,
        *(f"##{c}" for c in string.ascii_lowercase),
        *words,
    ]
    ordered = list(dict.fromkeys(vocab))
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(ordered)}, do_lower_case=True)
    tokenizer.save_pretrained(str(folder))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
        initializer_range=0.2,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(str(folder))
    return str(folder)


def toy_examples(
    n_per_class: int,
    *,
    seed: int = 0,
    labels: list[str] | None = None,
    reviewed: bool = True,
    source: ExampleSource = ExampleSource.IMPORTED,
    prefix: str = "ex",
) -> list[Example]:
    """Separable synthetic tickets: two topic words of the class plus filler words."""
    import random

    rng = random.Random(seed)
    out: list[Example] = []
    for label in labels or list(TOPICS):
        for i in range(n_per_class):
            words = rng.sample(TOPICS[label], 2) + rng.sample(FILLER, 4)
            rng.shuffle(words)
            out.append(
                Example(
                    id=f"{prefix}_{label}_{i}",
                    text=" ".join(words) + f" {i}",
                    label=label,
                    source=source,
                    review_status=ReviewStatus.REVIEWED if reviewed else ReviewStatus.PENDING,
                    reviewer="alice" if reviewed else None,
                )
            )
    return out
