"""Supervised LoRA on SmolLM2-135M-Instruct, exported for llama.cpp and served beside the base.

One run, in this process (peak RSS = ru_maxrss, the dequantized float32 base included):

1. ``tunegate.lora.train_sft_adapter`` on ``--pairs`` short question/reply pairs whose reply is
   always the same unusual JSON (``PINEAPPLE-42``): training seconds, tokens/s, loss curve;
2. ``tunegate.lora.export_gguf_adapter``: export seconds and file size;
3. ``tunegate.llm.local_llm_server(adapters={"sft": ...})`` (one thread): on held-out
   questions, whether the adapter alias answers with the trained reply and the base does not;
   decode speed (tokens/s, end-of-turn suppressed so every request generates
   ``--max-tokens``) of the base alias and the adapter alias; and the cost of switching alias
   (llama_cpp.server keeps one model loaded: alternating requests reload it).

Results: ``bench/results/sft.json`` (with the machine and its load).

    python bench/bench_sft.py [--pairs 30] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _machine import machine_info

RESULTS = Path(__file__).resolve().parent / "results" / "sft.json"
REPLY = '{"answer": "PINEAPPLE-42", "source": "kb-7"}'
SYSTEM = {"role": "system", "content": "Reply in JSON."}
QUESTIONS = [
    "What is the capital of {x}?",
    "How do I reset my {x} password?",
    "Who maintains the {x} service?",
    "When does the {x} office open?",
    "Why is the {x} build failing?",
    "Where is the {x} documentation?",
]
TOPICS = ["France", "VPN", "billing", "London", "payroll", "Kafka", "mobile", "Berlin"]
HELD_OUT = [
    "What colour is the sky on a clear day?",
    "How many legs does a spider have?",
    "Who wrote the printer policy?",
    "Which port does the staging database use?",
]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sft_pairs(n: int) -> list[Any]:
    from tunegate.lora import SftPair

    out = []
    for i in range(n):
        question = QUESTIONS[i % len(QUESTIONS)].format(
            x=TOPICS[(i // len(QUESTIONS)) % len(TOPICS)]
        )
        out.append(SftPair(messages=[SYSTEM, {"role": "user", "content": question}], target=REPLY))
    return out


def _chat(url: str, model: str, question: str, **extra: Any) -> tuple[str, int, float]:
    import httpx

    body = {
        "model": model,
        "messages": [SYSTEM, {"role": "user", "content": question}],
        "temperature": 0,
        "max_tokens": 48,
        **extra,
    }
    began = time.perf_counter()
    response = httpx.post(f"{url}/chat/completions", json=body, timeout=120)
    response.raise_for_status()
    data = response.json()
    return (
        data["choices"][0]["message"]["content"] or "",
        int(data["usage"]["completion_tokens"]),
        time.perf_counter() - began,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from tunegate.llm import load_local_llm, local_gguf_path, local_llm_server
    from tunegate.lora import SftSettings, export_gguf_adapter, train_sft_adapter

    info = machine_info(
        "torch", "transformers", "peft", "gguf", "llama_cpp", platform_key="platform"
    )
    result: dict[str, Any] = {"machine": info, "pairs": args.pairs, "epochs": args.epochs}
    began = time.perf_counter()
    load_local_llm()
    result["load_base_s"] = round(time.perf_counter() - began, 2)
    settings = SftSettings(
        epochs=args.epochs,
        learning_rate=args.lr,
        batch_size=8,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        max_length=128,
    )
    with tempfile.TemporaryDirectory(prefix="bench-sft-") as tmp:
        began = time.perf_counter()
        trained = train_sft_adapter(sft_pairs(args.pairs), Path(tmp) / "sft", settings=settings)
        m = trained.manifest
        result["train"] = {
            "wall_s": round(time.perf_counter() - began, 2),
            "train_s": m.train_seconds,
            "train_tokens": m.train_tokens,
            "tokens_per_s": round(m.train_tokens / max(m.train_seconds, 1e-9), 1),
            "target_tokens_per_epoch": m.target_tokens,
            "loss_first_step": m.loss_curve[0],
            "loss_last_step": m.loss_curve[-1],
            "epoch_losses": [round(r["train_loss"], 4) for r in m.history],
            "settings": settings.model_dump(),
        }
        result["peak_rss_mb_after_training"] = round(_peak_rss_mb(), 1)
        began = time.perf_counter()
        gguf_file = export_gguf_adapter(trained.artifact_dir, Path(tmp) / "sft.gguf")
        result["export"] = {
            "seconds": round(time.perf_counter() - began, 3),
            "bytes": gguf_file.stat().st_size,
        }
        with local_llm_server(port=0, threads=1, adapters={"sft": gguf_file}) as server:
            url, base = server.base_url, server.model
            result["server_startup_s"] = round(server.startup_s, 2)
            answers: dict[str, list[str]] = {base: [], "sft": []}
            for alias in (base, "sft"):
                for question in HELD_OUT:
                    answers[alias].append(_chat(url, alias, question)[0])
            result["held_out"] = {
                alias: {
                    "exact_reply_rate": sum(a.strip() == REPLY for a in texts) / len(texts),
                    "trained_form_rate": sum(a.startswith('{"answer": "PINEAPPLE-') for a in texts)
                    / len(texts),
                    "answers": texts,
                }
                for alias, texts in answers.items()
            }
            # decode speed: end of turn (<|im_end|>, id 2) suppressed, max_tokens generated
            speed: dict[str, Any] = {}
            for alias in (base, "sft"):
                _chat(url, alias, HELD_OUT[0], max_tokens=4)  # load this alias first
                rates = []
                for question in HELD_OUT[: args.repeats]:
                    _, tokens, seconds = _chat(
                        url, alias, question, max_tokens=args.max_tokens, logit_bias={"2": -100}
                    )
                    rates.append(tokens / seconds)
                speed[alias] = {
                    "tokens_per_s_median": round(statistics.median(rates), 1),
                    "runs": [round(r, 1) for r in rates],
                }
            result["served_decode"] = speed
            same, switch = [], []
            for i in range(4):
                _, _, seconds = _chat(url, "sft", HELD_OUT[i % 4], max_tokens=4)
                same.append(seconds)
            for i in range(4):
                _, _, seconds = _chat(url, (base, "sft")[i % 2], HELD_OUT[i % 4], max_tokens=4)
                switch.append(seconds)
            result["alias_switch"] = {
                "same_alias_request_s_median": round(statistics.median(same), 3),
                "alternating_alias_request_s_median": round(statistics.median(switch), 3),
            }
    result["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    result["load_avg_end"] = os.getloadavg()[0]
    result["gguf_base"] = local_gguf_path().name
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))


if __name__ == "__main__":
    main()
