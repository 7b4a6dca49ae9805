"""``bitrate student distill``: train the next student on the frontier's answers
(:func:`profiles.distill.distill`); registered by ``bitrate_cli.student``.

Several GPUs: run the same command under ``accelerate launch`` (``accelerate launch -m
bitrate_cli student distill ...``); transformers' ``Trainer`` then runs data-parallel (DDP, or
FSDP/DeepSpeed as ``accelerate config`` says) with no other change."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bitrate_cli.common import cli_errors
from profiles.distill import DistillConfig, distill

__all__ = ["distill_command"]


def distill_command(
    data: Annotated[Path, typer.Option("--data", help='Chat JSONL: {"messages": [...]} a line.')],
    base: Annotated[
        str, typer.Option("--base", help="Student to start from: a directory or embedded:student.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Where to save the new student (a model directory).")],
    teacher: Annotated[
        str | None,
        typer.Option(
            help="Local teacher (directory or embedded:teacher) with the student's tokenizer: "
            "adds its token-level KL to the loss."
        ),
    ] = None,
    kl_weight: Annotated[float, typer.Option(min=0.0, max=1.0, help="Weight of the KL term.")] = 0.5,
    temperature: Annotated[float, typer.Option(min=0.05, help="Temperature of the KL term.")] = 1.0,
    interpolate: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Save base + A * (trained - base) (WiSE-FT): less forgetting."),
    ] = 1.0,
    lora: Annotated[bool, typer.Option("--lora", help="Train LoRA adapters (PEFT), merged on save.")] = False,
    lora_rank: Annotated[int, typer.Option(min=1, help="LoRA rank.")] = 16,
    epochs: Annotated[float, typer.Option(min=0.01, help="Passes over the data.")] = 3.0,
    max_steps: Annotated[
        int | None, typer.Option(min=1, help="Optimiser steps (overrides --epochs).")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Conversations per device per step.")] = 8,
    grad_accum: Annotated[int, typer.Option(min=1, help="Gradient accumulation steps.")] = 1,
    lr: Annotated[float, typer.Option(min=0.0, help="Peak learning rate (LoRA: try 2e-4).")] = 5e-5,
    max_length: Annotated[
        int | None, typer.Option(min=2, help="Longest conversation kept, in tokens.")
    ] = None,
    save_steps: Annotated[int, typer.Option(min=1, help="A checkpoint every N steps.")] = 200,
    log_every: Annotated[
        int, typer.Option(min=1, help="A progress line every N steps (not a terminal).")
    ] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the data order.")] = 0,
    device: Annotated[str, typer.Option(help="auto (a GPU when present), cuda or cpu.")] = "auto",
    threads: Annotated[int | None, typer.Option(min=1, help="Torch CPU threads (default: torch's).")] = None,
    bf16: Annotated[bool, typer.Option("--bf16", help="bfloat16 mixed precision (GPU).")] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted run from its checkpoint.")
    ] = False,
    keep_checkpoints: Annotated[
        bool, typer.Option("--keep-checkpoints", help="Keep OUT/checkpoints.")
    ] = False,
) -> None:
    """Distil the next student from the frontier's answers (SFT on the assistant turns; plus the
    teacher's token-level KL with --teacher). Saves a model directory that `bitrate serve` and
    `bitrate student serve` load as it is."""
    config = DistillConfig(
        data=data,
        base=base,
        out=out,
        teacher=teacher,
        kl_weight=kl_weight,
        temperature=temperature,
        interpolate=interpolate,
        lora=lora,
        lora_rank=lora_rank,
        lora_alpha=2 * lora_rank,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        grad_accum=grad_accum,
        lr=lr,
        max_length=max_length,
        save_steps=save_steps,
        log_every=log_every,
        seed=seed,
        device=device,
        threads=threads,
        bf16=bf16,
        resume=resume,
        keep_checkpoints=keep_checkpoints,
    )
    with cli_errors():
        result = distill(config, emit=lambda line: typer.echo(line, err=True))
    counts = ", ".join(f"{name} {n}" for name, n in sorted(result.categories.items()))
    typer.echo(
        f"wrote {result.out} ({result.examples} conversations: {counts}; {result.steps} steps, "
        f"{result.seconds:.0f}s on {result.device})"
    )
    typer.echo(result.line())
