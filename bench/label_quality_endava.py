"""Label quality on the real, noisy Endava IT tickets: what confident learning flags, and how
held-out accuracy changes when the flagged training examples are dropped.

Reads ../shared/data/it_tickets/endava_tickets_v3.csv.gz in place (never copied). A seeded
sample of 6,000 training and 2,000 held-out tickets is embedded once with the shipped
encoder; the classifier is a logistic regression on the frozen embeddings (the same model
``tunegate label-issues`` cross-validates).

The held-out labels are noisy too, so accuracy is reported on two held-out sets:
* ``all``: every held-out ticket with its given label;
* ``clean``: the held-out tickets that confident learning, run on the held-out side alone
  (5-fold out-of-fold, no training data involved), does NOT flag. This is a proxy for a
  clean set, biased towards labels a linear model on these embeddings can predict.
A control drops the same number of *random* training examples, to separate "removing noise"
from "training on less data".

Writes bench/results/label_quality_endava.json and .md.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from _machine import machine_info

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "it_tickets" / "endava_tickets_v3.csv.gz"
RESULTS = ROOT / "bench" / "results"
N_TRAIN, N_TEST, SEED = 6000, 2000, 0


def machine() -> dict[str, object]:
    return machine_info("torch", load_key="load_avg_1m")


def main() -> int:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from tunegate.config import ModelSettings
    from tunegate.models import get_encoder
    from tunegate.records import Example, ReviewStatus
    from tunegate.train import label_issues

    if not DATA.exists():
        print(f"skipped: {DATA} is absent", file=sys.stderr)
        return 0
    began = time.perf_counter()
    df = pd.read_csv(DATA).dropna()
    sample = df.sample(n=N_TRAIN + N_TEST, random_state=SEED).reset_index(drop=True)
    labels = sorted(sample["Topic_group"].unique())
    texts = sample["Document"].astype(str).tolist()
    y = np.array([labels.index(v) for v in sample["Topic_group"]])
    enc = get_encoder(ModelSettings())
    t0 = time.perf_counter()
    X = np.asarray(enc.embed(texts))
    embed_s = time.perf_counter() - t0
    tr, te = np.arange(N_TRAIN), np.arange(N_TRAIN, N_TRAIN + N_TEST)
    ex = [
        Example(
            id=f"endava_{i}", text=texts[i], label=labels[y[i]], review_status=ReviewStatus.REVIEWED
        )
        for i in range(len(texts))
    ]

    t0 = time.perf_counter()
    train_report = label_issues([ex[i] for i in tr], labels, encoder=enc, features=X[tr], seed=SEED)
    cl_s = time.perf_counter() - t0
    test_report = label_issues([ex[i] for i in te], labels, encoder=enc, features=X[te], seed=SEED)
    flagged = {int(i.id.split("_")[1]) for i in train_report.issues}
    test_flagged = {int(i.id.split("_")[1]) for i in test_report.issues}
    clean_te = np.array([i for i in te if i not in test_flagged])

    def fit_eval(rows: np.ndarray) -> dict[str, float]:
        model = LogisticRegression(C=1.0, max_iter=2000).fit(X[rows], y[rows])
        return {
            "n_train": len(rows),
            "acc_all_heldout": float((model.predict(X[te]) == y[te]).mean()),
            "acc_clean_heldout": float((model.predict(X[clean_te]) == y[clean_te]).mean()),
        }

    keep = np.array([i for i in tr if i not in flagged])
    rng = np.random.default_rng(SEED)
    random_keep = np.sort(rng.choice(tr, size=len(keep), replace=False))
    results = {
        "all_training": fit_eval(tr),
        "drop_flagged": fit_eval(keep),
        "drop_random_same_count": fit_eval(random_keep),
    }
    per_label = train_report.summary()["flagged_per_given_label"]
    shown = [i.to_dict() for i in train_report.issues[:12]]
    for row in shown:
        row["text"] = row["text"][:160]
    payload = {
        "benchmark": "label_quality_endava",
        "data": str(DATA.relative_to(ROOT.parent)),
        "sample": {"train": N_TRAIN, "heldout": N_TEST, "seed": SEED, "labels": labels},
        "model": "logistic regression (C=1) on all-MiniLM-L6-v2 embeddings; "
        "5-fold out-of-fold probabilities -> cleanlab.filter.find_label_issues",
        "flagged_train": len(flagged),
        "flagged_train_share": round(len(flagged) / N_TRAIN, 4),
        "flagged_per_given_label": per_label,
        "oof_accuracy_train": round(train_report.oof_accuracy, 4),
        "heldout_flagged_by_heldout_side": len(test_flagged),
        "clean_heldout_size": len(clean_te),
        "results": results,
        "examples_flagged": shown,
        "seconds": {
            "embed": round(embed_s, 1),
            "label_issues_6000": round(cl_s, 1),
            "total": round(time.perf_counter() - began, 1),
        },
        "machine": machine(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "label_quality_endava.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        "# Label quality on the Endava tickets",
        "",
        f"Sample: {N_TRAIN} training + {N_TEST} held-out tickets (seed {SEED}), 8 classes. "
        f"Confident learning flagged **{len(flagged)}** training tickets "
        f"({100 * len(flagged) / N_TRAIN:.1f}%); out-of-fold accuracy "
        f"{train_report.oof_accuracy:.3f}.",
        "",
        f"The clean held-out part is the {len(clean_te)} held-out tickets that cleanlab, run "
        f"on the held-out side alone, does not flag ({len(test_flagged)} flagged). It is a "
        f"proxy: it favours labels a linear model on these embeddings can predict.",
        "",
        "| training set | n | accuracy, all held-out (noisy) | accuracy, clean held-out |",
        "|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['n_train']} | {r['acc_all_heldout']:.4f} | "
            f"{r['acc_clean_heldout']:.4f} |"
        )
    lines += [
        "",
        "Flagged examples (most suspicious first):",
        "",
        "| given | suggested | p(given) | text |",
        "|---|---|---|---|",
    ]
    for row in shown[:8]:
        text = row["text"][:90].replace("|", "/")
        lines.append(
            f"| {row['given_label']} | {row['suggested_label']} | "
            f"{row['self_confidence']:.3f} | {text} |"
        )
    lines += ["", f"Machine: {payload['machine']}", ""]
    (RESULTS / "label_quality_endava.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
