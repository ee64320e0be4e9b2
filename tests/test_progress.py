"""Progress output: Rich bars on a terminal, plain lines in a log, nothing when asked."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from tunegate import _progress
from tunegate._progress import LineProgress, make_progress, progress_mode, set_progress


def test_line_progress_writes_lines_with_counts_and_status() -> None:
    out = io.StringIO()
    with LineProgress(interval_s=0.0, stream=out) as progress:
        task = progress.add_task("fine-tune seed 0", total=4, status="")
        for step in range(4):
            progress.update(task, advance=1, status=f"loss {1.0 / (step + 1):.3f}")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("fine-tune seed 0: 1/4 (25%), 0m00s elapsed, loss 1.000")
    assert lines[3].startswith("fine-tune seed 0: 4/4 (100%)")
    assert lines[-1].endswith("done")


def test_line_progress_is_silent_for_short_work() -> None:
    out = io.StringIO()
    with LineProgress(interval_s=3600.0, stream=out) as progress:
        task = progress.add_task("ingest tickets", total=None)
        progress.advance(task, 10)
    assert out.getvalue() == ""


def test_mode_follows_terminal_flag_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNEGATE_PROGRESS", raising=False)
    set_progress(None)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert progress_mode() == "lines"
    assert isinstance(make_progress(), LineProgress)
    monkeypatch.setenv("TUNEGATE_PROGRESS", "0")
    assert progress_mode() == "off"
    assert not isinstance(make_progress(), LineProgress)
    set_progress(True)
    try:
        assert progress_mode() == "bar"
    finally:
        set_progress(None)


def test_a_logged_command_leaves_progress_lines(tmp_path: object) -> None:
    """Long work with stderr redirected to a file (as in CI or ``> log 2>&1``) reports."""
    code = (
        "import time; from tunegate import _progress as p; p.LINE_INTERVAL_S = 0.05\n"
        "for _ in p.track(range(4), description='eval suite'): time.sleep(0.06)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TUNEGATE_PROGRESS"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    lines = done.stderr.splitlines()
    assert lines and all(line.startswith("eval suite: ") for line in lines)
    assert "4/4 (100%)" in lines[-1]
    assert _progress.LINE_INTERVAL_S == 30.0
