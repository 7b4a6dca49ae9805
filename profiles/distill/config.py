"""What one distillation run is asked to do (:class:`DistillConfig`) and what it did
(:class:`DistillResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DistillConfig", "DistillResult"]


@dataclass(frozen=True)
class DistillConfig:
    """One run of ``bitrate student distill`` (the defaults suit a real chat model; the embedded
    pair's flywheel passes its own, see ``docs/distill.md``)."""

    data: Path
    """Chat-format training data (``{"messages": [...]}`` a line; see :mod:`profiles.distill.data`)."""
    base: str
    """The student to start from: a ``save_pretrained`` directory or ``embedded:student``."""
    out: Path
    """Where the new student is saved (its checkpoints go to ``out/checkpoints`` meanwhile)."""
    teacher: str | None = None
    """A local teacher (directory or ``embedded:teacher``) with the student's tokenizer: its logits
    add a token-level KL term to the loss. None: sequence-level only (SFT on the answers)."""
    kl_weight: float = 0.5
    """With a teacher: loss = ``kl_weight * T^2 * KL(teacher_T || student_T) + (1 - kl_weight) * CE``."""
    temperature: float = 1.0
    """With a teacher: the softmax temperature T of the KL term."""
    interpolate: float = 1.0
    """Weight-space interpolation with the base (WiSE-FT, Wortsman et al. 2022): the saved weights
    are ``base + interpolate * (trained - base)``. 1.0 keeps the trained weights; less trades part
    of the gain for less forgetting of what the base did well (a small student forgets fast)."""
    lora: bool = False
    """Train LoRA adapters (PEFT) instead of every weight; merged into the saved model."""
    lora_rank: int = 16
    """LoRA rank r."""
    lora_alpha: int = 32
    """LoRA scaling alpha."""
    epochs: float = 3.0
    """Passes over the data (ignored when ``max_steps`` is set)."""
    max_steps: int | None = None
    """Optimiser steps in all; overrides ``epochs``."""
    batch_size: int = 8
    """Conversations per device per step."""
    grad_accum: int = 1
    """Steps whose gradients are summed before each optimiser update."""
    lr: float = 5e-5
    """Peak learning rate (linear warm-up, then cosine decay); LoRA usually wants ~2e-4."""
    warmup_ratio: float = 0.03
    """Share of the steps spent warming the learning rate up."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_length: int | None = None
    """Longest conversation kept, in tokens; None: the model's context (longer ones are dropped)."""
    save_steps: int = 200
    """A checkpoint every this many steps (the two newest are kept)."""
    log_every: int = 20
    """A progress line every this many steps (when the output is not a terminal)."""
    seed: int = 0
    """Seed of the data order and the initialisation of LoRA adapters."""
    threads: int | None = None
    """Torch intra-op threads on CPU (None: torch's default; 1 is fastest on a busy machine)."""
    device: str = "auto"
    """``auto`` (a GPU when present), ``cuda`` or ``cpu``."""
    bf16: bool = False
    """Mixed precision in bfloat16 (GPUs that support it)."""
    resume: bool = False
    """Continue from the newest checkpoint in ``out/checkpoints``."""
    keep_checkpoints: bool = False
    """Keep ``out/checkpoints`` after the model is saved (removed by default)."""


@dataclass
class DistillResult:
    """What a run did."""

    out: Path
    """The saved model directory."""
    examples: int
    """Conversations trained on."""
    dropped: int
    """Conversations left out (longer than the context)."""
    steps: int
    """Optimiser steps taken in all (a resumed run counts the steps before it too)."""
    resumed_from: int | None
    """The step a resumed run continued from; None for a fresh run."""
    train_loss: float
    """Mean training loss of this run's steps."""
    seconds: float
    """Wall time of this run (loading, training, saving)."""
    device: str
    """Where it trained (``cpu``, ``cuda``...)."""
    categories: dict[str, int] = field(default_factory=dict)
    """Conversations per category (``-``: no category given)."""

    def line(self) -> str:
        """One ``key=value`` line for scripts."""
        return (
            f"distill out={self.out} examples={self.examples} dropped={self.dropped} steps={self.steps} "
            f"resumed_from={self.resumed_from if self.resumed_from is not None else '-'} "
            f"train_loss={self.train_loss:.4f} seconds={self.seconds:.1f} device={self.device}"
        )
