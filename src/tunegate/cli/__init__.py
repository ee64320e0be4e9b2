"""The ``tunegate`` command line: a thin Typer layer over the library.

Each command module defines ``register(app)``. User errors (:class:`TunegateError`) become one
clear line on stderr and the error's exit code, never a traceback.
"""

from __future__ import annotations

import collections.abc
import importlib
import os
import sys
import warnings

import rich.markup
import typer

from tunegate import errors

__all__ = ["app", "main"]

# tunegate never downloads weights; keep library chatter (download/loading bars, deprecation
# notices of dependencies) out of the terminal. Users can override any of these.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft|torch)\.")

app = typer.Typer(
    name="tunegate",
    help=(
        "Make fine-tuning the last mile: serve and log decisions, watch overrides, diagnose, "
        "try cheap fixes first, gate, fine-tune safely, evaluate, promote or roll back."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    """``--version``: print the version and exit before any command is required."""
    if value:
        from tunegate import __version__

        typer.echo(__version__)
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        is_eager=True,
        callback=_print_version,
    ),
) -> None:
    """tunegate: diagnose before you fine-tune; fine-tune safely when the gate opens."""
    from tunegate._progress import set_progress
    from tunegate.cli._common import note_command, widen_when_not_a_terminal

    note_command(ctx.invoked_subcommand)
    if quiet:
        set_progress(False)
    widen_when_not_a_terminal()


_COMMAND_MODULES = (
    "_init",
    "_ingest",
    "_classify",
    "_simulate",
    "_evaluate",
    "_runs",
    "_review",
    "_diagnose",
    "_train",
    "_registry",
    "_monitor",
    "_serve",
    "_llm",
    "_kb",
    "_generative",
    "_demo",
)


def _register() -> None:
    for name in _COMMAND_MODULES:
        module = importlib.import_module(f"tunegate.cli.{name}")
        module.register(app)


_register()


def main(argv: collections.abc.Sequence[str] | None = None) -> int:
    """Run the CLI; returns (and, as a console script, exits with) the exit code."""
    from tunegate._progress import console

    try:
        app(args=list(argv) if argv is not None else None, standalone_mode=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if argv is None:
            raise
        return code
    except errors.TunegateError as exc:
        # The message is user data (ids in brackets, paths): never parse it as Rich markup.
        console.print(
            f"[red]error:[/red] {rich.markup.escape(str(exc))}",
            markup=True,
            highlight=False,
            soft_wrap=True,
        )
        if argv is None:
            sys.exit(exc.exit_code)
        return exc.exit_code
    return 0
