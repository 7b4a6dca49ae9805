"""Training loops: the teacher on ground truth, the student on the teacher only.

Teacher: next-token cross-entropy on the answer tokens of freshly sampled task
examples. Student: knowledge distillation on a pool of task prompts that the
teacher answered greedily; the loss at every answer position is

    alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))
    + (1 - alpha) * CE(student, teacher's greedy token)

so the ground-truth answer never reaches the student.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from data import ChatCodec, pad_batch
from models import Decoded, greedy
from tasks import Example, sample

__all__ = ["DistillPool", "Schedule", "accuracy", "build_pool", "distill_student", "train_teacher"]


@dataclass(frozen=True)
class Schedule:
    """Optimiser settings of one run."""

    steps: int
    batch_size: int
    lr: float
    warmup: int = 100
    weight_decay: float = 0.01
    log_every: int = 200


def _optimizer(model, sched: Schedule):
    import torch

    opt = torch.optim.AdamW(
        model.parameters(), lr=sched.lr, weight_decay=sched.weight_decay, betas=(0.9, 0.98)
    )

    def lr_at(step: int) -> float:
        if step < sched.warmup:
            return sched.lr * (step + 1) / sched.warmup
        frac = (step - sched.warmup) / max(1, sched.steps - sched.warmup)
        return sched.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))

    return opt, lr_at


def _step(opt, lr: float, loss, model) -> None:
    import torch

    for group in opt.param_groups:
        group["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


def _log(tag: str, step: int, sched: Schedule, loss: float, t0: float) -> None:
    if step % sched.log_every == 0 or step == sched.steps - 1:
        print(
            f"[{tag}] step {step + 1}/{sched.steps} loss {loss:.4f} {time.perf_counter() - t0:.0f}s",
            flush=True,
        )


def train_teacher(
    model,
    codec: ChatCodec,
    rng: random.Random,
    sched: Schedule,
    exclude: frozenset[str],
    mix: dict[str, float] | None = None,
    on_step: Callable[[int], None] | None = None,
) -> None:
    """Train ``model`` on ground-truth answers of sampled examples outside ``exclude``,
    categories drawn with weights ``mix``; ``on_step(step)`` runs after every step."""
    import torch.nn.functional as F

    opt, lr_at = _optimizer(model, sched)
    model.train()
    t0 = time.perf_counter()
    for step in range(sched.steps):
        seqs, labels = [], []
        for _ in range(sched.batch_size):
            ex = sample(rng, exclude, mix)
            p, a = codec.prompt(ex.prompt), codec.answer(ex.answer)
            seqs.append(p + a)
            labels.append([-100] * len(p) + a)
        ids = pad_batch(seqs, codec.pad)
        tgt = pad_batch(labels, -100)
        logits = model(input_ids=ids, attention_mask=(ids != codec.pad).long()).logits
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tgt[:, 1:].reshape(-1))
        _step(opt, lr_at(step), loss, model)
        _log("teacher", step, sched, loss.item(), t0)
        if on_step:
            on_step(step)
    model.eval()


@dataclass
class DistillPool:
    """Task prompts with the teacher's greedy answers and the logits behind them."""

    prompts: list[list[int]]
    answers: list[Decoded]


def build_pool(
    teacher,
    codec: ChatCodec,
    rng: random.Random,
    size: int,
    exclude: frozenset[str],
    max_new: int,
    mix: dict[str, float] | None = None,
) -> DistillPool:
    """Sample ``size`` prompts (outside ``exclude``, categories weighted by ``mix``) and let
    the teacher answer them."""
    prompts = [codec.prompt(sample(rng, exclude, mix).prompt) for _ in range(size)]
    answers = greedy(teacher, prompts, codec.eos, max_new, keep_logits=True)
    return DistillPool(prompts, answers)


def _distill_batch(pool: DistillPool, idx: list[int], pad: int, vocab: int):
    import torch

    seqs = [pool.prompts[i] + pool.answers[i].tokens for i in idx]
    ids = pad_batch(seqs, pad)
    t_logits = torch.zeros(len(idx), ids.shape[1], vocab)
    mask = torch.zeros(len(idx), ids.shape[1], dtype=torch.bool)
    for row, i in enumerate(idx):
        start, n = len(pool.prompts[i]) - 1, len(pool.answers[i].tokens)
        t_logits[row, start : start + n] = pool.answers[i].logits.float()
        mask[row, start : start + n] = True
    # the token that follows each masked position: the teacher's greedy choice there
    targets = torch.roll(ids, -1, dims=1)
    return ids, t_logits, mask, targets


def distill_student(
    student,
    pool: DistillPool,
    codec: ChatCodec,
    rng: random.Random,
    sched: Schedule,
    temperature: float,
    alpha: float,
) -> None:
    """Train ``student`` on the teacher's logits (KL at ``temperature``) and greedy tokens (CE)."""
    import torch.nn.functional as F

    opt, lr_at = _optimizer(student, sched)
    student.train()
    t0 = time.perf_counter()
    vocab = student.config.vocab_size
    for step in range(sched.steps):
        idx = [rng.randrange(len(pool.prompts)) for _ in range(sched.batch_size)]
        ids, t_logits, mask, targets = _distill_batch(pool, idx, codec.pad, vocab)
        s_logits = student(input_ids=ids, attention_mask=(ids != codec.pad).long()).logits[mask]
        t_sel = t_logits[mask]
        kl = (
            F.kl_div(
                F.log_softmax(s_logits / temperature, -1),
                F.log_softmax(t_sel / temperature, -1),
                log_target=True,
                reduction="batchmean",
            )
            * temperature**2
        )
        ce = F.cross_entropy(s_logits, targets[mask])
        loss = alpha * kl + (1 - alpha) * ce
        _step(opt, lr_at(step), loss, student)
        _log("student", step, sched, loss.item(), t0)
    student.eval()


def accuracy(
    model,
    codec: ChatCodec,
    items: list[Example],
    max_new: int,
    on_answer: Callable[[Example, str], None] | None = None,
) -> dict[str, float]:
    """Greedy exact-match accuracy per category."""
    outs = greedy(model, [codec.prompt(ex.prompt) for ex in items], codec.eos, max_new)
    right: dict[str, list[int]] = {}
    for ex, dec in zip(items, outs, strict=True):
        text = codec.decode(dec.tokens)
        right.setdefault(ex.category, []).append(int(text == ex.answer))
        if on_answer:
            on_answer(ex, text)
    return {cat: sum(v) / len(v) for cat, v in right.items()}
