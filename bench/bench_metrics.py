"""Benchmark: every metric with 1,000 paired bootstrap resamples on 100,000 predictions x 10
classes (tunegate.metrics.paired_bootstrap, vectorized), against a straightforward
per-resample loop with scikit-learn, in the same run.

The loop is timed on fewer resamples and extrapolated linearly to 1,000 (it is a loop: its
cost per resample is constant); the JSON says how many it actually ran.

    python bench/bench_metrics.py [--loop-resamples 20]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from _machine import machine_info
from tunegate import metrics as M

N, K, B = 100_000, 10, 1000
RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    return machine_info("numpy", "sklearn", "torch", load_key="load_avg_at_start")


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(N, K)) * 2.0
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    y = np.where(rng.random(N) < 0.7, p.argmax(axis=1), rng.integers(0, K, N))
    q = np.roll(p, 1, axis=1)
    q[: N // 2] = p[: N // 2]  # a second model agreeing on half the rows
    # latency from batch timing: one value per batch of 64, as run_eval records it
    lat = np.repeat(rng.lognormal(1.0, 0.3, N // 64 + 1), 64)[:N]
    return y, p, q, lat


def sklearn_loop(y: np.ndarray, p: np.ndarray, lat: np.ndarray, n: int) -> float:
    """The same metrics per resample with scikit-learn (ECE / selective / coverage / latency
    in plain numpy, since scikit-learn has none)."""
    from sklearn import metrics as skm

    rng = np.random.default_rng(1)
    labels = list(range(K))
    start = time.perf_counter()
    for _ in range(n):
        ix = rng.integers(0, N, N)
        yy, pp = y[ix], p[ix]
        pred = pp.argmax(axis=1)
        skm.accuracy_score(yy, pred)
        skm.f1_score(yy, pred, average="macro", labels=labels, zero_division=0)
        skm.precision_recall_fscore_support(yy, pred, labels=labels, zero_division=0)
        skm.brier_score_loss(yy, pp, labels=labels, scale_by_half=False)
        conf = pp.max(axis=1)
        bins = np.minimum((conf * 15).astype(int), 14)
        correct = pred == yy
        ece = 0.0
        for b in range(15):
            m = bins == b
            if m.any():
                ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
        auto = M.normalized_entropy(pp) <= 0.5
        _ = correct[auto].mean(), auto.mean()
        np.percentile(lat[ix], [50, 95])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loop-resamples", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    info = machine()
    y, p, q, lat = data()
    M.paired_bootstrap(y[:1000], p[:1000], n_resamples=10)  # warm-up
    single, paired = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        r = M.paired_bootstrap(y, p, latency_a=lat, n_resamples=B)
        single.append(time.perf_counter() - t)
    for _ in range(args.repeats):
        t = time.perf_counter()
        rp = M.paired_bootstrap(y, p, q, latency_a=lat, latency_b=lat * 1.05, n_resamples=B)
        paired.append(time.perf_counter() - t)
    loop_s = sklearn_loop(y, p, lat, args.loop_resamples)
    per = loop_s / args.loop_resamples
    o = r.a["overall"]
    result = {
        "task": f"all metrics, {B} bootstrap resamples, {N} predictions x {K} classes",
        "metrics": [
            "accuracy",
            "macro_f1",
            "precision/recall/FNR per class",
            "ECE (15 uniform bins)",
            "Brier",
            "selective accuracy",
            "coverage",
            "latency p50/p95",
        ],
        "vectorized_single_model_s": {"best": min(single), "all": single},
        "vectorized_paired_two_models_plus_differences_s": {"best": min(paired), "all": paired},
        "sklearn_loop": {
            "resamples_run": args.loop_resamples,
            "seconds": loop_s,
            "per_resample_s": per,
            "extrapolated_1000_s": per * B,
        },
        "speedup_single_vs_loop": per * B / min(single),
        "target_s": 3.0,
        "meets_target": min(single) < 3.0,
        "sanity": {
            "accuracy": o["accuracy"].to_dict(),
            "ece": o["expected_calibration_error"].to_dict(),
            "accuracy_diff_b_minus_a": rp.diff["overall"]["accuracy"].to_dict()
            if rp.diff
            else None,
        },
        "machine": info,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# bench_metrics",
        "",
        f"{result['task']} on {info['cpu']} ({info['cores']} cores, {info['ram_gb']} GB RAM, "
        f"load average {info['load_avg_at_start']:.2f} at start), Python {info['python']}, "
        f"numpy {info['numpy']}, {info['date']}.",
        "",
        "| path | seconds |",
        "|---|---|",
        f"| vectorized, one model (best of {args.repeats}) | {min(single):.2f} |",
        f"| vectorized, two models + paired differences (best of {args.repeats}) | "
        f"{min(paired):.2f} |",
        f"| scikit-learn per-resample loop, {args.loop_resamples} resamples measured | "
        f"{loop_s:.2f} |",
        f"| scikit-learn loop extrapolated to {B} resamples | {per * B:.1f} |",
        "",
        f"Speed-up (one model): {result['speedup_single_vs_loop']:.0f}x. Target < 3 s: "
        f"{'met' if result['meets_target'] else 'NOT met'}.",
        "",
    ]
    (RESULTS / "metrics.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
