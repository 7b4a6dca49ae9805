"""The distillation run: transformers' ``Trainer`` over the frontier's answers.

Why ``Trainer`` and not a hand-written loop, even for a 65k-parameter student: it brings what a
run needs and a loop would re-implement badly: checkpoints with optimizer, scheduler and RNG
state and ``resume_from_checkpoint`` that skips the batches already seen; the device placement
and mixed precision; and ``accelerate launch`` (DDP, FSDP, DeepSpeed) with no code change. Its
cost on the tiny pair is a few seconds of start-up, not per-step time.

Loss: causal-LM cross-entropy on the assistant tokens (sequence-level distillation); with a
local teacher that shares the student's tokenizer, ``kl_weight * T^2 * KL(teacher_T ||
student_T) + (1 - kl_weight) * CE`` at the same positions (token-level, the teacher's full
distribution, computed on the fly by teacher forcing on the frontier's answer).

torch, transformers (and peft for ``lora``) are imported here, and this module only when a run
starts (:func:`profiles.distill.distill`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PrinterCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.trainer_utils import get_last_checkpoint
from transformers.utils import logging as hf_logging

from profiles.distill.config import DistillConfig, DistillResult
from profiles.distill.data import IGNORE, TokenisedData, read_chat_jsonl, tokenise
from sdk.embedded import resolve_model_path
from sdk.errors import ConfigError, DependencyMissing

__all__ = ["run_distill"]

_RUN_FILE = "distill_run.json"
"""In ``out/checkpoints``: the data's hash and the settings, checked on ``--resume``."""
_RESUME_KEYS = (
    "base",
    "teacher",
    "lora",
    "lora_rank",
    "lora_alpha",
    "kl_weight",
    "temperature",
    "seed",
    "lr",
)


class _Collate:
    """Right-pads a batch: ids with the pad token, labels with ``IGNORE``, and the attention mask."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        ids = [r["input_ids"] + [self.pad_id] * (width - len(r["input_ids"])) for r in rows]
        labels = [r["labels"] + [IGNORE] * (width - len(r["labels"])) for r in rows]
        mask = [[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in rows]
        return {
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
            "attention_mask": torch.tensor(mask),
        }


class _TeacherTrainer(Trainer):
    """``Trainer`` whose loss adds the teacher's token-level KL (see the module docstring)."""

    def __init__(self, *args: Any, teacher: Any, kl_weight: float, temperature: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.teacher = teacher.eval()
        self.kl_weight = kl_weight
        self.temperature = temperature
        self.model_accepts_loss_kwargs = False  # the loss below is a per-batch mean

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        labels = inputs["labels"][:, 1:]
        keep = labels != IGNORE
        outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        student = outputs.logits[:, :-1][keep].float()
        device = inputs["input_ids"].device
        if next(self.teacher.parameters()).device != device:
            self.teacher.to(device)
        with torch.no_grad():
            teacher_logits = self.teacher(
                input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]
            )
        t = self.temperature
        teacher = teacher_logits.logits[:, :-1][keep].float()
        kl = F.kl_div(
            F.log_softmax(student / t, -1),
            F.log_softmax(teacher / t, -1),
            log_target=True,
            reduction="batchmean",
        )
        ce = F.cross_entropy(student, labels[keep])
        loss = self.kl_weight * t * t * kl + (1.0 - self.kl_weight) * ce
        return (loss, outputs) if return_outputs else loss


class _LogLines(TrainerCallback):
    """A progress line every ``every`` steps, for output that is not a terminal."""

    def __init__(self, every: int, emit: Callable[[str], None]):
        self.every, self.emit, self.t0 = every, emit, time.perf_counter()

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        if not logs or "loss" not in logs:
            return
        lr = logs.get("learning_rate", 0.0)
        elapsed = time.perf_counter() - self.t0
        self.emit(
            f"step {state.global_step}/{state.max_steps} loss {logs['loss']:.4f} lr {lr:.2e} {elapsed:.0f}s"
        )


def _device(config: DistillConfig) -> str:
    if config.device not in ("auto", "cpu", "cuda"):
        raise ConfigError("device must be auto, cpu or cuda", key="--device")
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda, but torch sees no CUDA GPU", key="--device")
    return "cuda" if config.device != "cpu" and torch.cuda.is_available() else "cpu"


def _load(path: str, what: str) -> tuple[Any, Any]:
    location = resolve_model_path(path)
    if not Path(location).is_dir():
        raise ConfigError(f"no model directory for the {what}", location=location)
    model = AutoModelForCausalLM.from_pretrained(location, dtype=torch.float32)
    return model, AutoTokenizer.from_pretrained(location)


def _with_lora(model: Any, config: DistillConfig) -> Any:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise DependencyMissing("peft", "train") from exc
    from transformers.pytorch_utils import Conv1D

    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
        fan_in_fan_out=any(isinstance(m, Conv1D) for m in model.modules()),  # GPT-2's layers
    )
    return get_peft_model(model, lora)


def _data_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_run(checkpoints: Path, config: DistillConfig, data_hash: str) -> str | None:
    """The checkpoint to resume from (None: a fresh run); refuses to mix two runs' checkpoints."""
    settings = {key: getattr(config, key) for key in _RESUME_KEYS} | {"data_sha256": data_hash}
    record = checkpoints / _RUN_FILE
    last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if not config.resume:
        if last is not None:
            raise ConfigError(
                "a run left checkpoints here: --resume continues it, or remove them",
                location=str(checkpoints),
            )
        checkpoints.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(settings, indent=2, default=str))
        return None
    if last is None:
        raise ConfigError("--resume, but there is no checkpoint to resume from", location=str(checkpoints))
    before = json.loads(record.read_text()) if record.is_file() else {}
    changed = sorted(
        k for k, v in settings.items() if json.loads(json.dumps(v, default=str)) != before.get(k)
    )
    if changed:
        raise ConfigError(
            f"--resume with other settings than the interrupted run: {', '.join(changed)}",
            location=str(record),
        )
    return last


def _arguments(config: DistillConfig, checkpoints: Path, device: str) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps if config.max_steps is not None else -1,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.lr,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,
        lr_scheduler_type="cosine",
        optim="adamw_torch",
        logging_steps=config.log_every,
        save_steps=config.save_steps,
        save_total_limit=2,
        seed=config.seed,
        data_seed=config.seed,
        use_cpu=device == "cpu",
        bf16=config.bf16,
        disable_tqdm=not sys.stderr.isatty(),
        report_to="none",
        dataloader_num_workers=0,
        remove_unused_columns=False,
    )


def _trainer(
    model: Any, tokenizer: Any, data: TokenisedData, config: DistillConfig, args: TrainingArguments
) -> Trainer:
    kwargs: dict[str, Any] = {
        "model": model,
        "args": args,
        "train_dataset": data.rows(),
        "data_collator": _Collate(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0),
    }
    if config.teacher is None:
        return Trainer(**kwargs)
    teacher, teacher_tokenizer = _load(config.teacher, "teacher")
    if teacher_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise ConfigError(
            "the teacher's tokenizer is not the student's: token-level KL needs the same "
            "vocabulary (leave --teacher out for sequence-level distillation)",
            key="--teacher",
        )
    return _TeacherTrainer(
        **kwargs, teacher=teacher, kl_weight=config.kl_weight, temperature=config.temperature
    )


def _interpolated(model: Any, config: DistillConfig) -> dict[str, torch.Tensor]:
    """``base + interpolate * (trained - base)`` for every weight (computed before any is replaced:
    tied weights share one tensor)."""
    base, _ = _load(config.base, "base student")
    before = base.state_dict()
    a = config.interpolate
    with torch.no_grad():
        return {
            k: before[k].to(v.device) + a * (v - before[k].to(v.device))
            for k, v in model.state_dict().items()
        }


def _save(model: Any, config: DistillConfig) -> None:
    """The merged model and generation config, and the base's tokenizer files (chat template
    included) copied as they are: the ``transformers`` and ``vllm`` backends load the directory as
    they load the base (a re-saved tokenizer could name a class an older transformers lacks)."""
    if config.lora:
        model = model.merge_and_unload()
    if config.interpolate != 1.0:
        model.load_state_dict(_interpolated(model, config))
    model.save_pretrained(config.out)
    for path in Path(resolve_model_path(config.base)).iterdir():
        if path.is_file() and not (config.out / path.name).exists():
            shutil.copy2(path, config.out / path.name)


def run_distill(config: DistillConfig, emit: Callable[[str], None]) -> DistillResult:
    """Train the next student (see the module docstring); ``emit`` gets progress lines."""
    t0 = time.perf_counter()
    device = _device(config)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    if not sys.stderr.isatty():
        hf_logging.disable_progress_bar()  # no bars for loading and saving weights in a log
    examples = read_chat_jsonl(config.data)
    model, tokenizer = _load(config.base, "base student")
    context = getattr(model.config, "max_position_embeddings", None) or getattr(
        model.config, "n_positions", None
    )
    data = tokenise(examples, tokenizer, config.max_length or context)
    if not len(data):
        raise ConfigError("every conversation is longer than the context", location=str(config.data))
    checkpoints = config.out / "checkpoints"
    resume_from = _check_run(checkpoints, config, _data_hash(config.data))
    if config.lora:
        model = _with_lora(model, config)
    trainer = _trainer(model, tokenizer, data, config, _arguments(config, checkpoints, device))
    if not sys.stderr.isatty():
        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(_LogLines(config.log_every, emit))
    resumed = (
        int(json.loads((Path(resume_from) / "trainer_state.json").read_text())["global_step"])
        if resume_from
        else None
    )
    emit(
        f"training on {len(data)} conversations ({data.dropped} too long) on {device}"
        + (f", resuming from step {resumed}" if resumed is not None else "")
    )
    output = trainer.train(resume_from_checkpoint=resume_from)
    _save(trainer.model, config)
    if not config.keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    return DistillResult(
        out=config.out,
        examples=len(data),
        dropped=data.dropped,
        steps=int(output.global_step),
        resumed_from=resumed,
        train_loss=float(output.training_loss),
        seconds=time.perf_counter() - t0,
        device=device,
        categories=dict(data.categories),
    )
