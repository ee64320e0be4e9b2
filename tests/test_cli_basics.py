"""CLI plumbing every command shares: ``--version`` and how user errors are printed."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

import tunegate
from tunegate.cli import app, main
from tunegate.errors import InputError

_MESSAGE = "16 near-duplicates [test-2692 (cos 0.960), test-17 (cos 0.951)]; drop these examples"


def test_version_prints_without_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == tunegate.__version__


def test_version_from_a_fresh_process_exits_zero() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "from tunegate.cli import main; main()", "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == tunegate.__version__


@pytest.fixture
def failing_command() -> Iterator[str]:
    """A hidden command that raises a user error whose text holds square brackets."""

    @app.command("raise-for-test", hidden=True)
    def _cmd() -> None:
        raise InputError(_MESSAGE)

    yield "raise-for-test"
    app.registered_commands[:] = [c for c in app.registered_commands if c.name != "raise-for-test"]


def test_error_text_in_brackets_is_printed_verbatim(failing_command: str) -> None:
    """Ids such as ``[test-2692 (cos 0.960)]`` are data, not Rich markup to be swallowed."""
    from tunegate._progress import console

    with console.capture() as captured:
        code = main([failing_command])
    assert code == InputError(_MESSAGE).exit_code
    assert "[test-2692 (cos 0.960), test-17 (cos 0.951)]" in captured.get()
