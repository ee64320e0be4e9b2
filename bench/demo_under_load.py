"""The demo's decision under a load that starts mid-run: is it the same as on a quiet machine?

Runs ``tunegate demo [--quick] --out DIR`` as a subprocess and watches its output; with
``--hogs N`` (N > 0) it starts N busy-loop processes (``python -c "while True: pass"``) when
the line of step "7c." (the candidate's evaluation against the champion) appears, and kills
them when the demo ends. A load that starts between the champion's measurement (step 3) and the
candidate's (step 7c) is what flipped the verdict before latency was measured side by side
(issue 17). Records the verdict, its latency finding, the candidate, the promotion, the
cheap-fix comparison, the 1-minute load average sampled every 5 s, and the machine.

    python bench/demo_under_load.py --quick                    # quiet, then with 2 hogs
    python bench/demo_under_load.py --quick --hogs 0           # quiet only
    python bench/demo_under_load.py --hogs 2 --modes hogs      # the full demo, hogs only

Writes (merges into) bench/results/demo_under_load.json, one entry per (demo, mode).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _machine import machine_info

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "demo_under_load.json"
STEP_MARK = "7c."
CLI = "import sys; from tunegate.cli import main; sys.exit(main())"


def _load_sampler(samples: list[tuple[float, float]], stop: threading.Event, t0: float) -> None:
    while not stop.wait(5.0):
        try:
            samples.append((round(time.perf_counter() - t0, 1), os.getloadavg()[0]))
        except OSError:
            return


def run_demo(*, quick: bool, hogs: int, out_dir: Path, seed: int) -> dict[str, Any]:
    """One demo run; ``hogs`` busy loops start when step 7c begins (0: none)."""
    args = [sys.executable, "-c", CLI, "demo", "--out", str(out_dir), "--seed", str(seed)]
    if quick:
        args.append("--quick")
    env = {**os.environ, "TUNEGATE_PROGRESS": "0", "COLUMNS": "200"}
    t0 = time.perf_counter()
    procs: list[subprocess.Popen[bytes]] = []
    hogs_started_at: float | None = None
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    sampler = threading.Thread(target=_load_sampler, args=(samples, stop, t0), daemon=True)
    sampler.start()
    lines: list[str] = []
    demo = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line.rstrip("\n"))
            print(line, end="", flush=True)
            if hogs and hogs_started_at is None and STEP_MARK in line:
                hogs_started_at = time.perf_counter() - t0
                procs = [
                    subprocess.Popen([sys.executable, "-c", "while True: pass"])
                    for _ in range(hogs)
                ]
        code = demo.wait()
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        if demo.poll() is None:
            demo.kill()
        stop.set()
    seconds = time.perf_counter() - t0
    result_file = out_dir / "result.json"
    if code != 0 or not result_file.exists():
        return {"exit_code": code, "seconds": round(seconds, 1), "tail": lines[-30:]}
    result = json.loads(result_file.read_text(encoding="utf-8"))
    verdict = result.get("verdict") or {}
    rules = {r["rule"]: r for r in verdict.get("rules", [])}
    latency_rule = rules.get("latency_p50")
    return {
        "exit_code": code,
        "seconds": round(seconds, 1),
        "hogs": hogs,
        "hogs_started_at_s": None if hogs_started_at is None else round(hogs_started_at, 1),
        "verdict": verdict.get("outcome"),
        "rules": {name: r["outcome"] for name, r in rules.items()},
        "latency_rule": None
        if latency_rule is None
        else {"outcome": latency_rule["outcome"], "message": latency_rule["message"]},
        "latency": result.get("latency"),
        "candidate_version": result.get("candidate_version"),
        "promoted": result.get("promoted"),
        "versus_cheap_fix": result.get("versus_cheap_fix"),
        "step_seconds": {t["step"]: t["seconds"] for t in result.get("timings", [])},
        "load_avg_1m_samples": samples,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="Run `tunegate demo --quick`.")
    ap.add_argument("--hogs", type=int, default=2, help="Busy loops started at step 7c.")
    ap.add_argument(
        "--modes", default="quiet,hogs", help="Comma-separated: quiet, hogs (default both)."
    )
    ap.add_argument("--seed", type=int, default=7, help="The demo's simulation seed.")
    ap.add_argument("--out", type=Path, default=None, help="Parent folder of the demo outputs.")
    opts = ap.parse_args()
    modes = [m.strip() for m in opts.modes.split(",") if m.strip()]
    if opts.hogs == 0:
        modes = [m for m in modes if m != "hogs"] or ["quiet"]
    parent = opts.out or Path(tempfile.mkdtemp(prefix="tunegate-demo-load-"))
    demo_name = "quick" if opts.quick else "full"
    new_runs: dict[str, Any] = {}
    for mode in modes:
        hogs = opts.hogs if mode == "hogs" else 0
        out_dir = parent / f"{demo_name}-{mode}"
        print(f"=== {demo_name} demo, {mode} ({hogs} hogs at step {STEP_MARK}) -> {out_dir}")
        entry = run_demo(quick=opts.quick, hogs=hogs, out_dir=out_dir, seed=opts.seed)
        entry["machine"] = machine_info("torch", "onnxruntime")
        entry["seed"] = opts.seed
        new_runs[f"{demo_name}/{mode}"] = entry
    # merged when written, so two invocations (quiet and hogs) can run at once
    existing: dict[str, Any] = {}
    if RESULTS.exists():
        existing = json.loads(RESULTS.read_text(encoding="utf-8"))
    runs: dict[str, Any] = {**existing.get("runs", {}), **new_runs}
    same: dict[str, Any] = {}
    for name in ("quick", "full"):
        quiet, loaded = runs.get(f"{name}/quiet"), runs.get(f"{name}/hogs")
        if quiet and loaded and "verdict" in quiet and "verdict" in loaded:
            same[name] = all(
                quiet[k] == loaded[k] for k in ("verdict", "candidate_version", "promoted")
            )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps({"runs": runs, "same_decision": same}, indent=2) + "\n", encoding="utf-8"
    )
    print(f"wrote {RESULTS}: same decision quiet vs hogs: {same}")


if __name__ == "__main__":
    main()
