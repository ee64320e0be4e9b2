"""The llm backend end to end against the REAL local llama.cpp server (SmolLM2-135M-Instruct),
started once per session by conftest's ``llm_server`` fixture: ``tunegate eval llm`` through
the CLI, the response cache making a rerun free and identical, tokens and latency recorded,
logprobs read from the server, and ``tunegate llm serve`` starting and stopping cleanly.

The 135M model is poor at classification; these tests check the plumbing, never accuracy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tunegate.cli import main
from tunegate.config import parse_workflow, starter_yaml
from tunegate.llm import LlmClassifier, LocalLlmServer
from tunegate.records import EvalRun
from tunegate.simulate import SimConfig, generate_heldout
from tunegate.store import Store

pytestmark = pytest.mark.slow

N_TEXTS = 16
K = 3


def _config(tmp_path: Path, server: LocalLlmServer, **llm: object) -> Path:
    settings = {
        "base_url": server.base_url,
        "model": server.model,
        "probabilities": "samples",
        "samples": K,
        "max_concurrency": 2,
        "timeout_s": 120,
        **llm,
    }
    cfg = tmp_path / "tunegate.yaml"
    cfg.write_text(starter_yaml() + "\nllm: " + json.dumps(settings) + "\n", encoding="utf-8")
    return cfg


def _suite_file(tmp_path: Path) -> Path:
    heldout = [t for t in generate_heldout(SimConfig()) if t.truth.slice.value == "preservation"]
    rows = [
        {"id": t.ticket.id, "text": t.ticket.text, "label": t.label, "slice": "preservation"}
        for t in heldout[:N_TEXTS]
    ]
    path = tmp_path / "suite.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_eval_llm_through_the_cli_and_a_free_identical_rerun(
    tmp_path: Path, llm_server: LocalLlmServer, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path, llm_server)
    suite = _suite_file(tmp_path)
    assert (
        main(["suite", "freeze", str(suite), "--name", "llm", "-c", str(cfg), "--exact-only"]) == 0
    )
    capsys.readouterr()
    outputs = []
    seconds = []
    for i in range(2):
        out = tmp_path / f"run{i}.json"
        start = time.perf_counter()
        code = main(
            ["eval", "llm", "--suite", "llm", "-c", str(cfg), "--output", str(out), "--json"]
        )
        seconds.append(time.perf_counter() - start)
        assert code == 0, capsys.readouterr().err
        capsys.readouterr()
        outputs.append(EvalRun.model_validate_json(out.read_text(encoding="utf-8")))
    first, second = outputs
    usage1, usage2 = first.metrics["llm_usage"], second.metrics["llm_usage"]
    assert usage1["requests_sent"] == N_TEXTS * K and usage1["requests_cached"] == 0
    assert usage2["requests_sent"] == 0 and usage2["requests_cached"] == N_TEXTS * K
    assert usage1["prompt_tokens"] > 0 and usage1["completion_tokens"] > 0
    assert usage1["latency_ms"] > 0
    # the same numbers: probabilities, latency (recorded per request) and every metric
    assert first.model_version == second.model_version and first.model_version.startswith("llm-")
    assert first.proba == second.proba and first.latency_ms == second.latency_ms
    assert first.metrics["overall"] == second.metrics["overall"]
    assert first.metrics["invalid_answer"] == second.metrics["invalid_answer"]
    invalid = first.metrics["invalid_answer"]
    answers = invalid["answers"]
    assert sum(answers.values()) == N_TEXTS * K
    # per-decision usage: the cache rows of the text under this model and prompt
    wf = parse_workflow(cfg.read_text(encoding="utf-8"))
    with Store(f"sqlite:///{tmp_path / 'tunegate.db'}") as store:
        clf = LlmClassifier(wf, store=store)
        text = json.loads(suite.read_text(encoding="utf-8").splitlines()[0])["text"]
        usage = clf.usage_for(text)
    assert usage.requests == K and usage.completion_tokens > 0
    acc = first.metrics["overall"]["accuracy"]["estimate"]
    tokens_per_s = usage1["completion_tokens"] / (usage1["latency_ms"] / 1000.0)
    print(
        f"\n[llm served] {N_TEXTS} texts x k={K}: first run {seconds[0]:.1f}s "
        f"({N_TEXTS / seconds[0]:.2f} texts/s), rerun {seconds[1]:.2f}s; accuracy {acc:.3f}; "
        f"invalid {invalid['count']}/{N_TEXTS} {answers}; completion tokens/s per request "
        f"{tokens_per_s:.1f}; server start {llm_server.startup_s:.1f}s"
    )
    assert seconds[1] < seconds[0]


def test_logprobs_from_the_real_server(tmp_path: Path, llm_server: LocalLlmServer) -> None:
    cfg = _config(tmp_path, llm_server, probabilities="auto")
    wf = parse_workflow(cfg.read_text(encoding="utf-8"))
    clf = LlmClassifier(wf)
    texts = ["I forgot my password and need it reset", "The VPN disconnects every hour"]
    start = time.perf_counter()
    pred = clf.predict_outcomes(texts)
    elapsed = time.perf_counter() - start
    assert clf.method_ == "logprobs"  # llama.cpp returns top_logprobs on chat completions
    assert pred.proba.shape == (2, len(wf.label_names))
    np.testing.assert_allclose(pred.proba.sum(axis=1), 1.0)
    for row, outcome in zip(pred.proba, pred.outcomes, strict=True):
        assert outcome.answers == 1
        if outcome.answered:  # a real distribution, not the uniform row of a bad answer
            assert row.max() > 1.5 / len(wf.label_names)
    print(f"\n[llm logprobs] {len(texts)} texts in {elapsed:.1f}s")


def test_llm_serve_cli_starts_answers_and_stops_on_ctrl_c() -> None:
    from tunegate.llm._server import free_port

    port = free_port()
    env = {**os.environ, "TUNEGATE_PROGRESS": "0"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from tunegate.cli import main; main()",
            "llm",
            "serve",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = ""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("http://"):
                break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        base_url = line.strip()
        assert base_url == f"http://127.0.0.1:{port}/v1"
        models = httpx.get(f"{base_url}/models", timeout=10).json()
        assert models["data"][0]["id"] == "smollm2-135m-instruct"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base_url}/models", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_an_llm_workflow_tries_a_prompt_gates_promotes_rolls_back_and_serves(
    tmp_path: Path, llm_server: LocalLlmServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """``baseline: llm``: the first champion is the prompted model (a ``prompt`` version);
    ``tunegate try prompt`` judges a new prompt against it on the real server, the gate's
    condition 4 reads that attempt, the registry promotes and rolls the prompt back, and the
    service classifies with the champion prompt through the server."""
    from fastapi.testclient import TestClient

    from tunegate.server import ServerSettings, create_app, create_token

    cfg = _config(tmp_path, llm_server, samples=2)
    cfg.write_text(cfg.read_text(encoding="utf-8") + "baseline: llm\n", encoding="utf-8")
    n = 8
    rows = [json.loads(r) for r in _suite_file(tmp_path).read_text().splitlines()[:n]]
    suite = tmp_path / "small.jsonl"
    suite.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    c = ["-c", str(cfg)]
    assert main(["suite", "freeze", str(suite), "--name", "s", *c, "--exact-only"]) == 0
    prompt = tmp_path / "prompt.txt"
    prompt.write_text(
        "You route IT service desk tickets. Labels:\n{labels}\n"
        'Answer only with JSON {{"label": "<one of {label_names}>"}}.',
        encoding="utf-8",
    )
    capsys.readouterr()
    code = main(
        ["try", "prompt", str(prompt), "--suite", "s", *c, "--no-measure-latency", "--json"]
    )
    attempt = json.loads(capsys.readouterr().out)
    assert code in (0, 1, 2) and attempt["kind"] == "prompt"
    wf = parse_workflow(cfg.read_text(encoding="utf-8"))
    # no champion yet: the baseline is the workflow's prompt, registered (not promoted);
    # promoting it is what `try prompt` suggests, and needs no verdict as the first champion
    baseline_id = attempt["baseline_version"]
    assert main(["promote", baseline_id, *c]) == 0
    with Store(f"sqlite:///{tmp_path / 'tunegate.db'}") as store:
        assert store.get_model_version(baseline_id).kind.value == "prompt"
        runs = {r.model_version: r for r in store.eval_runs()}
        assert runs[baseline_id].metrics["llm_usage"]["requests_sent"] > 0
    # the gate's condition 4 reads the prompt attempt (an LLM champion)
    capsys.readouterr()
    main(["gate", *c, "--json"])
    gate = json.loads(capsys.readouterr().out)
    cond4 = next(x for x in gate["conditions"] if x["number"] == 4)
    assert attempt["id"] in json.dumps(cond4), cond4
    # promote the tried prompt (forced when its verdict did not pass) and roll it back
    new_id = attempt["candidate_version"]
    promote = ["promote", new_id, *c]
    if attempt["verdict"]["outcome"] != "pass":
        promote += ["--force", "--reason", "test: exercise the registry"]
    assert main(promote) == 0
    with Store(f"sqlite:///{tmp_path / 'tunegate.db'}") as store:
        assert store.get_alias("champion") == new_id
        token, _ = create_token(store, role="analyst", name="t")
        app = create_app(wf, store=store, settings=ServerSettings(secret_key=b"k" * 32))
        with TestClient(app) as client:
            response = client.post(
                "/v1/classify",
                json={"tickets": [{"text": rows[0]["text"]}]},
                headers={"Authorization": f"Bearer {token}"},
            )
        assert response.status_code == 200, response.text
        decision = response.json()["decisions"][0]
        assert decision["model_version"] == new_id and decision["label"] in wf.labels
    assert main(["rollback", *c, "--reason", "test"]) == 0
    with Store(f"sqlite:///{tmp_path / 'tunegate.db'}") as store:
        assert store.get_alias("champion") == baseline_id


def test_the_real_server_refuses_nothing_but_the_client_refuses_an_unknown_name(
    llm_server: LocalLlmServer,
) -> None:
    """llama_cpp.server lists its aliases at /v1/models; a request for another name would be
    answered by the base model, so the client refuses it first."""
    from tunegate.errors import ModelError
    from tunegate.llm import ChatClient

    client = ChatClient(llm_server.base_url, timeout_s=120, max_concurrency=1)
    assert client.served_models() == list(llm_server.models)
    with pytest.raises(ModelError, match="does not serve the model 'no-such-adapter'"):
        client.complete(
            {"model": "no-such-adapter", "messages": [{"role": "user", "content": "hi"}]}
        )
    reply = client.complete(
        {
            "model": llm_server.model,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 4,
        }
    )
    assert reply.completion_tokens >= 1
