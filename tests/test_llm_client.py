"""The llm backend against small real HTTP servers started in the test: faults (server down,
429 with Retry-After, 500s, timeouts, a slow server, a malformed body, answers that are not a
label, refusals), each a clear error or a counted outcome, and nothing lost."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from tunegate.config import Workflow
from tunegate.errors import ConfigError, LlmError, LlmUnavailableError
from tunegate.evaluate import run_eval
from tunegate.llm import ChatClient, LlmClassifier
from tunegate.models import build_classifier
from tunegate.records import EvalSuite, ModelKind, SuiteExample, SuiteSlice
from tunegate.store import Store

Reply = Callable[[dict[str, Any], int], tuple[int, dict[str, str], bytes] | None]
"""(request body, request number) -> (status, headers, body); None drops the connection."""


def completion(content: str | None, **extra: Any) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    message.update(extra.pop("message", {}))
    choice = {"index": 0, "message": message, "finish_reason": extra.pop("finish", "stop")}
    choice.update(extra)
    body = {
        "choices": [choice],
        "usage": {"prompt_tokens": 40, "completion_tokens": 7, "total_tokens": 47},
    }
    return json.dumps(body).encode()


def ok(content: str | None, **extra: Any) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, completion(content, **extra)


class FakeServer:
    """A real HTTP server on loopback answering /v1/chat/completions with ``reply``."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[dict[str, Any]] = []
        self.times: list[float] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with server.lock:
                    n = len(server.requests)
                    server.requests.append(body)
                    server.times.append(time.monotonic())
                answer = server.reply(body, n)
                if answer is None:  # drop the connection without a response
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                status, headers, payload = answer
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def llm_workflow(workflow: Workflow, base_url: str, **settings: Any) -> Workflow:
    values = {"base_url": base_url, "probabilities": "samples", "samples": 1, **settings}
    values.setdefault("max_retries", 2)
    return workflow.model_copy(update={"llm": workflow.llm.model_copy(update=values)})


def fast_client(wf: Workflow, **kw: Any) -> ChatClient:
    client = ChatClient.from_settings(wf.llm, backoff_s=0.01, max_backoff_s=0.05, **kw)
    return client


def user_text(body: dict[str, Any]) -> str:
    return str(body["messages"][-1]["content"])


@pytest.fixture
def store(tmp_path: Any) -> Iterator[Store]:
    with Store(f"sqlite:///{tmp_path / 'llm.db'}") as s:
        yield s


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the client ------------------------------------------------------------------------------


def test_server_down_is_a_clear_error_naming_the_url_and_the_fix(workflow: Workflow) -> None:
    wf = llm_workflow(workflow, f"http://127.0.0.1:{free_port()}/v1", max_retries=1)
    clf = LlmClassifier(wf, client=fast_client(wf))
    with pytest.raises(LlmUnavailableError) as info:
        clf.predict_proba(["my vpn is down"])
    message = str(info.value)
    assert wf.llm.base_url in message and "tunegate llm serve" in message
    assert "2 attempts" in message


def test_429_then_success_honours_retry_after(workflow: Workflow) -> None:
    def reply(body: dict[str, Any], n: int) -> tuple[int, dict[str, str], bytes]:
        if n == 0:
            return 429, {"Retry-After": "0.4"}, b'{"error": "slow down"}'
        return ok('{"label": "vpn_issue"}')

    with FakeServer(reply) as server:
        wf = llm_workflow(workflow, server.base_url)
        clf = LlmClassifier(wf, client=fast_client(wf))
        proba = clf.predict_proba(["the vpn drops"])
    assert len(server.requests) == 2
    waited = server.times[1] - server.times[0]
    assert waited >= 0.35, f"Retry-After 0.4s not honoured (waited {waited:.3f}s)"
    assert clf.labels[int(proba[0].argmax())] == "vpn_issue"


def test_500s_exhausted_raise_with_the_status_and_what_to_do(workflow: Workflow) -> None:
    with FakeServer(lambda body, n: (500, {}, b"boom")) as server:
        wf = llm_workflow(workflow, server.base_url, max_retries=2)
        clf = LlmClassifier(wf, client=fast_client(wf))
        with pytest.raises(LlmError) as info:
            clf.predict_proba(["printer on fire"])
    assert len(server.requests) == 3
    assert "HTTP 500" in str(info.value) and "3 attempts" in str(info.value)
    assert not isinstance(info.value, LlmUnavailableError)


def test_4xx_is_not_retried_and_names_the_key_variable(
    workflow: Workflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TG_TEST_KEY", "sk-secret-value")
    with FakeServer(lambda body, n: (401, {}, b'{"error": "bad key"}')) as server:
        wf = llm_workflow(workflow, server.base_url, api_key_env="TG_TEST_KEY")
        clf = LlmClassifier(wf, client=fast_client(wf))
        with pytest.raises(LlmError) as info:
            clf.predict_proba(["hello"])
    assert len(server.requests) == 1
    assert "HTTP 401" in str(info.value) and "api_key_env" in str(info.value)
    assert "sk-secret-value" not in str(info.value) and "sk-secret" not in repr(clf.client)


def test_unset_key_variable_is_a_config_error_naming_it(workflow: Workflow) -> None:
    wf = llm_workflow(workflow, "http://127.0.0.1:1/v1", api_key_env="TG_SURELY_UNSET_KEY")
    with pytest.raises(ConfigError, match="TG_SURELY_UNSET_KEY"):
        LlmClassifier(wf)


def test_timeouts_retry_then_fail_clearly_and_a_slow_server_within_the_timeout_works(
    workflow: Workflow,
) -> None:
    def slow(delay: float) -> Reply:
        def reply(body: dict[str, Any], n: int) -> tuple[int, dict[str, str], bytes]:
            time.sleep(delay)
            return ok('{"label": "hardware"}')

        return reply

    with FakeServer(slow(0.6)) as server:
        wf = llm_workflow(workflow, server.base_url, timeout_s=0.2, max_retries=1)
        clf = LlmClassifier(wf, client=fast_client(wf))
        with pytest.raises(LlmUnavailableError, match=r"timed out after 0\.2s"):
            clf.predict_proba(["monitor flickers"])
        assert len(server.requests) == 2
    with FakeServer(slow(0.3)) as server:
        wf = llm_workflow(workflow, server.base_url, timeout_s=5, samples=4, max_concurrency=4)
        clf = LlmClassifier(wf, client=fast_client(wf))
        start = time.monotonic()
        proba = clf.predict_proba(["monitor flickers"])
        elapsed = time.monotonic() - start
    assert clf.labels[int(proba[0].argmax())] == "hardware"
    assert elapsed < 4 * 0.3, f"4 requests were not sent concurrently ({elapsed:.2f}s)"


def test_dropped_connection_is_retried(workflow: Workflow) -> None:
    def reply(body: dict[str, Any], n: int) -> tuple[int, dict[str, str], bytes] | None:
        return None if n == 0 else ok('{"label": "email_issue"}')

    with FakeServer(reply) as server:
        wf = llm_workflow(workflow, server.base_url)
        clf = LlmClassifier(wf, client=fast_client(wf))
        proba = clf.predict_proba(["outlook will not sync"])
    assert len(server.requests) == 2
    assert clf.labels[int(proba[0].argmax())] == "email_issue"


def test_a_body_that_is_not_json_is_an_error_naming_the_url(workflow: Workflow) -> None:
    with FakeServer(lambda body, n: (200, {}, b"<html>proxy login</html>")) as server:
        wf = llm_workflow(workflow, server.base_url)
        clf = LlmClassifier(wf, client=fast_client(wf))
        with pytest.raises(LlmError, match="not JSON") as info:
            clf.predict_proba(["x"])
    assert server.base_url in str(info.value)


def test_a_json_body_of_the_wrong_shape_is_an_error(workflow: Workflow) -> None:
    with FakeServer(lambda body, n: (200, {}, b'{"result": "ok"}')) as server:
        wf = llm_workflow(workflow, server.base_url)
        clf = LlmClassifier(wf, client=fast_client(wf))
        with pytest.raises(LlmError, match="not a Chat Completions response"):
            clf.predict_proba(["x"])


# -- answers ---------------------------------------------------------------------------------


ANSWERS = {
    "good": '{"label": "vpn_issue"}',
    "not a label": '{"label": "printer"}',
    "no label key": '{"category": "vpn_issue"}',
    "invalid json": '{"label": "vpn_iss',
    "prose": "The answer is vpn_issue.",
    "apology": "I'm sorry, but I can't help with that.",
}


def test_bad_answers_are_counted_by_kind_and_never_become_a_class(
    workflow: Workflow, store: Store
) -> None:
    def reply(body: dict[str, Any], n: int) -> tuple[int, dict[str, str], bytes]:
        text = user_text(body)
        if text == "refusal field":
            return ok(None, message={"refusal": "I can't classify this."})
        return ok(ANSWERS[text])

    texts = [*ANSWERS, "refusal field"]
    with FakeServer(reply) as server:
        wf = llm_workflow(workflow, server.base_url, samples=2)
        clf = LlmClassifier(wf, store=store, client=fast_client(wf))
        pred = clf.predict_outcomes(texts)
    kinds = {t: o.counts() for t, o in zip(texts, pred.outcomes, strict=True)}
    assert kinds["good"]["valid"] == 2
    assert kinds["not a label"]["not_a_label"] == 2
    assert kinds["no label key"]["not_a_label"] == 2
    assert kinds["invalid json"]["invalid_json"] == 2
    assert kinds["prose"]["invalid_json"] == 2
    assert kinds["apology"]["refusal"] == 2
    assert kinds["refusal field"]["refusal"] == 2
    k = len(clf.labels)
    for i, t in enumerate(texts):
        if t == "good":
            assert clf.labels[int(pred.proba[i].argmax())] == "vpn_issue"
        else:  # no valid answer: exactly uniform, never a class
            np.testing.assert_allclose(pred.proba[i], np.full(k, 1.0 / k))
    assert pred.invalid_mask.tolist() == [t != "good" for t in texts]


def test_invalid_answers_dilute_a_sampled_row(workflow: Workflow) -> None:
    def reply(body: dict[str, Any], n: int) -> tuple[int, dict[str, str], bytes]:
        return ok('{"label": "hardware"}' if body["seed"] < 2 else "garbage")

    with FakeServer(reply) as server:
        wf = llm_workflow(workflow, server.base_url, samples=4, smoothing=0.5)
        clf = LlmClassifier(wf, client=fast_client(wf))
        pred = clf.predict_outcomes(["laptop screen cracked"])
    k = len(clf.labels)
    # (2 + 0.5 + 2/k) / (4 + 0.5k) for the answer, (0.5 + 2/k) / (4 + 0.5k) for the others
    expected = (2 + 0.5 + 2 / k) / (4 + 0.5 * k)
    assert pred.proba[0][clf.labels.index("hardware")] == pytest.approx(expected)
    assert pred.outcomes[0].valid == 2 and pred.outcomes[0].invalid_json == 2


def test_answers_cached_before_a_failure_are_reused_on_rerun(
    workflow: Workflow, store: Store
) -> None:
    broken = {"on": True}

    def reply(body: dict[str, Any], n: int) -> tuple[int, dict[str, str], bytes]:
        if broken["on"] and user_text(body) == "text 3":
            return 503, {}, b"unavailable"
        return ok('{"label": "software_install"}')

    texts = [f"text {i}" for i in range(6)]
    with FakeServer(reply) as server:
        wf = llm_workflow(workflow, server.base_url, samples=2, max_retries=1)
        clf = LlmClassifier(wf, store=store, client=fast_client(wf))
        with pytest.raises(LlmError, match="HTTP 503") as info:
            clf.predict_proba(texts)
        assert "10 answered and kept" in str(info.value)
        first = len(server.requests)
        assert first == 10 + 2 * 2  # 10 good answers, 2 requests x 2 attempts failing
        broken["on"] = False
        pred = clf.predict_outcomes(texts)
        assert len(server.requests) == first + 2, "only the two failed requests are sent again"
        assert pred.requested == 2 and pred.cached == 10
        # a new classifier on the same store: everything from the cache, the same numbers
        again = LlmClassifier(wf, store=store, client=fast_client(wf)).predict_outcomes(texts)
        assert len(server.requests) == first + 2
    assert again.requested == 0 and again.cached == 12
    np.testing.assert_array_equal(again.proba, pred.proba)
    usage = clf.usage_for("text 0")
    assert usage.requests == 2 and usage.prompt_tokens == 80 and usage.completion_tokens == 14


def test_cache_key_changes_with_prompt_model_and_params(workflow: Workflow, store: Store) -> None:
    with FakeServer(lambda body, n: ok('{"label": "hardware"}')) as server:
        wf = llm_workflow(workflow, server.base_url)
        LlmClassifier(wf, store=store, client=fast_client(wf)).predict_proba(["a"])
        LlmClassifier(
            wf, system_prompt="Answer {label_names}", store=store, client=fast_client(wf)
        ).predict_proba(["a"])
        wf_t = llm_workflow(workflow, server.base_url, temperature=0.3)
        LlmClassifier(wf_t, store=store, client=fast_client(wf_t)).predict_proba(["a"])
        wf_m = llm_workflow(workflow, server.base_url, model="other-model")
        LlmClassifier(wf_m, store=store, client=fast_client(wf_m)).predict_proba(["a"])
        assert len(server.requests) == 4
        LlmClassifier(wf, store=store, client=fast_client(wf)).predict_proba(["a"])
        assert len(server.requests) == 4


def test_cost_is_recorded_from_token_prices(workflow: Workflow, store: Store) -> None:
    with FakeServer(lambda body, n: ok('{"label": "hardware"}')) as server:
        wf = llm_workflow(
            workflow,
            server.base_url,
            cost_per_1k_input_tokens=1.0,
            cost_per_1k_output_tokens=2.0,
        )
        pred = LlmClassifier(wf, store=store, client=fast_client(wf)).predict_outcomes(["a"])
    assert pred.usage[0].cost == pytest.approx((40 * 1.0 + 7 * 2.0) / 1000)
    assert pred.usage[0].latency_ms > 0


# -- logprobs --------------------------------------------------------------------------------


def token(tok: str, lp: float, top: dict[str, float]) -> dict[str, Any]:
    return {
        "token": tok,
        "logprob": lp,
        "top_logprobs": [{"token": t, "logprob": v} for t, v in top.items()],
    }


def test_logprobs_give_label_probabilities_and_auto_uses_them(workflow: Workflow) -> None:
    import math

    # {"label": "hardware"}: at the label's first token, "hard" 0.5, "soft" 0.3, junk 0.1
    tokens = [
        token('{"', -0.1, {'{"': -0.1}),
        token("label", -0.01, {"label": -0.01}),
        token('":', -0.01, {'":': -0.01}),
        token(' "', -0.1, {' "': -0.1}),
        token("hard", math.log(0.5), {"hard": math.log(0.5), "soft": math.log(0.3), "X": -2.3}),
        token("ware", -0.01, {"ware": -0.01}),
        token('"}', -0.01, {'"}': -0.01}),
    ]

    def reply(body: dict[str, Any], n: int) -> tuple[int, dict[str, str], bytes]:
        assert body["logprobs"] is True and body["temperature"] == 0.0
        return ok('{"label": "hardware"}', logprobs={"content": tokens})

    with FakeServer(reply) as server:
        wf = llm_workflow(workflow, server.base_url, probabilities="auto")
        clf = LlmClassifier(wf, client=fast_client(wf))
        pred = clf.predict_outcomes(["my keyboard is broken", "mouse dead"])
    assert clf.method_ == "logprobs"
    assert len(server.requests) == 2  # the probe's answer is reused for the first text
    p = dict(zip(clf.labels, pred.proba[0], strict=True))
    assert p["hardware"] > p["software_install"] > p["vpn_issue"]
    # hardware / software_install keep the 5:3 ratio of their first tokens
    assert p["hardware"] / p["software_install"] == pytest.approx(0.5 / 0.3, rel=1e-6)


def test_auto_falls_back_to_samples_without_logprobs(workflow: Workflow) -> None:
    with FakeServer(lambda body, n: ok('{"label": "hardware"}')) as server:
        wf = llm_workflow(workflow, server.base_url, probabilities="auto", samples=3)
        clf = LlmClassifier(wf, client=fast_client(wf))
        pred = clf.predict_outcomes(["keyboard"])
    assert clf.method_ == "samples" and pred.outcomes[0].valid == 3
    assert len(server.requests) == 1 + 3


# -- the factory and evaluation --------------------------------------------------------------


def test_factory_contract_version_and_kind(workflow: Workflow, store: Store) -> None:
    wf = llm_workflow(workflow, "http://127.0.0.1:9/v1")
    clf = build_classifier("llm", wf, system_prompt="Pick one of {label_names}", store=store)
    assert isinstance(clf, LlmClassifier) and clf.store is store
    assert clf.kind is ModelKind.REMOTE_LLM and clf.version.startswith("llm-")
    other = build_classifier("llm", wf, store=store)
    assert other.version != clf.version
    assert build_classifier("llm", wf).version == other.version


def test_run_eval_counts_invalid_answers_as_errors(workflow: Workflow) -> None:
    # label 0 is the true class of every example; invalid answers must not score as correct
    first = workflow.label_names[0]

    def reply(body: dict[str, Any], n: int) -> tuple[int, dict[str, str], bytes]:
        i = int(user_text(body).split()[-1])
        return ok(json.dumps({"label": first}) if i < 2 else "no idea")

    suite = EvalSuite(
        name="tiny",
        examples=[
            SuiteExample(id=f"e{i}", text=f"ticket {i}", label=first, slice=SuiteSlice.CORE)
            for i in range(6)
        ],
    ).frozen()
    with FakeServer(reply) as server:
        wf = llm_workflow(workflow, server.base_url, samples=1)
        run = run_eval(LlmClassifier(wf, client=fast_client(wf)), suite, wf)
    invalid = run.metrics["invalid_answer"]
    assert invalid["count"] == 4 and invalid["rate"] == pytest.approx(4 / 6)
    assert invalid["answers"]["invalid_json"] == 4
    assert run.metrics["overall"]["accuracy"]["estimate"] == pytest.approx(2 / 6)
    assert run.metrics["llm_usage"]["requests_sent"] == 6


@pytest.mark.postgres
def test_the_response_cache_on_postgresql(workflow: Workflow, pg_url: str) -> None:
    with FakeServer(lambda body, n: ok('{"label": "hardware"}')) as server, Store(pg_url) as pg:
        wf = llm_workflow(workflow, server.base_url, samples=2)
        text = f"pg cache {time.time_ns()}"  # the database may be shared between runs
        first = LlmClassifier(wf, store=pg, client=fast_client(wf)).predict_outcomes([text])
        again = LlmClassifier(wf, store=pg, client=fast_client(wf)).predict_outcomes([text])
        assert len(server.requests) == 2 and first.requested == 2 and again.cached == 2
        np.testing.assert_array_equal(first.proba, again.proba)
        usage = LlmClassifier(wf, store=pg, client=fast_client(wf)).usage_for(text)
    assert usage.requests == 2 and usage.prompt_tokens == 80


def test_an_llm_baseline_is_the_first_champion_and_versions_load_through_the_backend(
    workflow: Workflow, store: Store
) -> None:
    """``baseline: llm``: the first champion is a ``prompt`` version of the workflow's
    system prompt on the ``llm`` backend, served when no champion is registered; a
    ``remote_llm`` version loads with its stored model, template and calibration."""
    from tunegate.models import load_model_version
    from tunegate.records import ModelVersion
    from tunegate.serving import load_champion
    from tunegate.train import ensure_champion

    wf = workflow.model_copy(update={"baseline": "llm"})
    assert isinstance(load_champion(wf, None).classifier, LlmClassifier)
    champ = ensure_champion(store, wf, actor="t")
    mv = store.get_model_version(champ)
    assert mv.kind is ModelKind.PROMPT and mv.config["backend"] == "llm"
    assert ensure_champion(store, wf, actor="t") == champ
    served = load_champion(wf, store)
    assert isinstance(served.classifier, LlmClassifier) and served.version is not None
    clf = LlmClassifier(wf, system_prompt="Pick one of {label_names}.", calibration_temperature=2.0)
    remote = ModelVersion(id=clf.version, kind=ModelKind.REMOTE_LLM, config=clf.describe())
    loaded = load_model_version(remote, wf)
    assert isinstance(loaded, LlmClassifier)
    assert loaded.version == clf.version and loaded.template == clf.template
    assert loaded.calibration_temperature == 2.0


def test_a_model_the_endpoint_does_not_list_is_refused_before_any_request() -> None:
    """llama.cpp's server answers an unknown model name with its default model: a mistyped
    adapter alias would evaluate the base. The client asks /models once per name."""
    import httpx

    from tunegate.errors import ModelError

    seen: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "base"}, {"id": "base+sft-1"}]})
        return httpx.Response(200, content=completion("ok"))

    client = ChatClient("http://llm.test/v1", transport=httpx.MockTransport(handler))
    with pytest.raises(ModelError, match=r"does not serve the model 'base\+sft-2'.*'base\+sft-1'"):
        client.complete({"model": "base+sft-2", "messages": []})
    assert seen == [("GET", "/v1/models")]  # refused before the completion was sent
    for _ in range(2):
        assert client.complete({"model": "base+sft-1", "messages": []}).content == "ok"
    assert seen.count(("GET", "/v1/models")) == 2  # one per name, then remembered
    assert seen.count(("POST", "/v1/chat/completions")) == 2


@pytest.mark.parametrize(
    "models_reply",
    [
        (404, b'{"error": "not found"}'),
        (200, b"not json"),
        (200, b'{"object": "list"}'),
    ],
)
def test_an_endpoint_that_lists_no_models_is_not_checked(
    models_reply: tuple[int, bytes],
) -> None:
    import httpx

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/models"):
            return httpx.Response(models_reply[0], content=models_reply[1])
        return httpx.Response(200, content=completion("ok"))

    client = ChatClient("http://llm.test/v1", transport=httpx.MockTransport(handler))
    assert client.complete({"model": "anything", "messages": []}).content == "ok"
