"""The generation thread of the transformers backend: continuous batching.

One thread owns the model. Requests arrive as :class:`Job` objects; each choice of each
job is a :class:`_Seq`, one row of the running batch (:mod:`sdk.backends.hf_batch`). The
thread repeats, between any two tokens:

1. **admit** waiting jobs, oldest first, while at most ``max_batch_size`` sequences run (a
   job with more choices than that starts alone): their prompts are prefilled together in
   one forward pass and their rows join the batch;
2. **pick** the next token of every row whose reader keeps up, and send its text;
3. **leave**: rows that finished, failed or were cancelled are dropped;
4. **step**: one forward pass for the whole batch.

Back-pressure: a job with ``WINDOW`` unread pieces sits steps out (its row gets a masked
column and no token) until its reader catches up, so a slow reader never holds the
others back and a cancelled stream stops within a few tokens. A row that sat out
``PARK_AFTER`` steps in a row leaves the batch with its cache and rejoins once its reader
has read half the window, so a stalled reader costs neither compute nor a growing cache.

Failures: what fails in one job's own work (sampling, decoding) fails that job; a failed
forward pass fails the jobs whose rows were in it; the thread goes on. Events go back to
each caller's event loop once per step, all of that loop's together (:class:`Outbox`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from sdk.backends.hf_batch import Rows, prefill
from sdk.backends.hf_model import LoadedModel, new_generator, pick
from sdk.backends.local_answer import Failed, Finished, Piece
from sdk.backends.sampling import IncrementalDecoder, SamplingSpec, StopMatcher
from sdk.errors import BackendError, BackendUnavailable, BitrateError, InternalError
from sdk.protocol import TokenLogprob

__all__ = ["Job", "Outbox", "Worker"]

log = logging.getLogger(__name__)

WINDOW = 16
"""Most unread pieces a job may have before its sequences sit steps out."""

PARK_AFTER = 32
"""Steps a row may sit out in a row before it leaves the batch until its reader catches up."""


Event = Piece | Finished | Failed


class Job:
    """One request on its way through the worker, and the queue its events arrive on."""

    def __init__(self, prompt: list[int], spec: SamplingSpec, loop: asyncio.AbstractEventLoop):
        self.prompt = prompt
        self.spec = spec
        self.loop = loop
        """The reader's event loop: events are put on ``events`` there."""
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._unread = 0

    def cancel(self) -> None:
        """Stop generating for this job (safe from any thread, idempotent)."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def read_one(self) -> bool:
        """Called by the reader for each event taken; True when that lets the job run again
        (the worker should be woken)."""
        with self._lock:
            self._unread -= 1
            return self._unread in (WINDOW - 1, WINDOW // 2)

    def paused(self) -> bool:
        """The reader is ``WINDOW`` pieces behind."""
        with self._lock:
            return self._unread >= WINDOW

    def caught_up(self) -> bool:
        """The reader is at most half a window behind."""
        with self._lock:
            return self._unread <= WINDOW // 2

    def sent(self) -> None:
        """One more event on its way to the reader."""
        with self._lock:
            self._unread += 1


class Outbox:
    """Events on their way to the readers' event loops, handed over together: one wake-up of
    each loop per step instead of one per event, so a loop serving many streams takes the
    interpreter lock once per step, not once per token."""

    def __init__(self) -> None:
        self._batches: dict[asyncio.AbstractEventLoop, list[tuple[Job, Event]]] = {}

    def put(self, job: Job, event: Event) -> None:
        job.sent()
        self._batches.setdefault(job.loop, []).append((job, event))

    def flush(self) -> None:
        """Hand every batch to its loop; a closed loop cancels its jobs (nobody will read)."""
        batches, self._batches = self._batches, {}
        for loop, items in batches.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:
                for job, _ in items:
                    job.cancel()


def _deliver(items: list[tuple[Job, Event]]) -> None:
    for job, event in items:
        job.events.put_nowait(event)


@dataclass
class _Seq:
    """One choice of one job: its sampling state and what it has shown so far."""

    job: Job
    index: int
    generator: Any
    decoder: IncrementalDecoder
    stopper: StopMatcher
    tokens: int = 0
    idle: int = 0
    """Steps sat out in a row."""
    next_token: int | None = None
    """What the next step feeds this row (None: it sits the step out)."""
    done: bool = False
    pending_logprobs: list[TokenLogprob] = field(default_factory=list)

    @property
    def gone(self) -> bool:
        return self.done or self.job.cancelled


class Worker:
    """The thread that runs every job of one model."""

    def __init__(self, lm: LoadedModel, name: str, max_active: int = 8):
        self._lm = lm
        self._name = name
        self._max_active = max_active
        self._inbox: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._waiting: collections.deque[Job] = collections.deque()
        self._wake = threading.Event()
        self._stopping = False
        self._seqs: list[_Seq] = []
        """The batch's sequences, row by row."""
        self._rows: Rows | None = None
        self._parked: list[tuple[_Seq, Rows]] = []
        self._outbox = Outbox()
        self.tokens_generated = 0
        """Tokens generated since start, over all jobs."""
        self.forward_passes = 0
        """Forward passes run since start (prefills and steps), each for every row it held."""
        self._thread = threading.Thread(target=self._run, name=f"bitrate-hf-{name}", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping

    @property
    def active_sequences(self) -> int:
        """Sequences in flight now (a cancelled one leaves at the next step)."""
        return len(self._seqs) + len(self._parked)

    def submit(self, job: Job) -> None:
        """Queue ``job``; raise ``BackendUnavailable`` once the worker is stopping."""
        if not self.alive:
            raise BackendUnavailable("the model is closed", backend=self._name)
        self._inbox.put(job)
        self._wake.set()

    def wake(self) -> None:
        """Let a paused job run again after its reader caught up (see ``Job.read_one``)."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the thread; jobs still in flight fail with ``BackendUnavailable``."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)

    # ------------------------------------------------------------ the thread

    def _run(self) -> None:
        with torch.inference_mode():
            while not self._stopping:
                self._wake.clear()
                self._admit()
                self._unpark()
                moved = self._step()
                self._outbox.flush()
                if not moved:
                    self._wake.wait(timeout=1.0)
        self._fail_all(BackendUnavailable("the model was closed", backend=self._name))
        self._outbox.flush()

    def _admit(self) -> None:
        """Prefill waiting jobs together, oldest first, while at most ``max_active`` sequences
        run (a job with more choices than that starts alone)."""
        while True:
            try:
                self._waiting.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        running, group = self.active_sequences, []
        while self._waiting:
            job = self._waiting[0]
            if job.cancelled:
                self._waiting.popleft()
                continue
            if running and running + job.spec.n > self._max_active:
                break
            group.append(self._waiting.popleft())
            running += job.spec.n
        if group:
            seqs = [self._new_seq(job, i) for job in group for i in range(job.spec.n)]
            prompts = [s.job.prompt for s in seqs]
            rows = self._guarded(group, prefill, self._lm.forward, prompts, self._lm.pad_id, self._lm.device)
            self.forward_passes += 1
            if rows is not None:
                self._join(seqs, rows)

    def _new_seq(self, job: Job, index: int) -> _Seq:
        return _Seq(
            job=job,
            index=index,
            generator=new_generator(job.spec, index, self._lm.device),
            decoder=IncrementalDecoder(self._lm.decode),
            stopper=StopMatcher(job.spec.stop),
        )

    def _join(self, seqs: list[_Seq], rows: Rows) -> None:
        self._rows = rows if self._rows is None else Rows.join(self._rows, rows)
        self._seqs.extend(seqs)

    def _unpark(self) -> None:
        """Rows whose reader caught up rejoin the batch; cancelled ones are dropped."""
        parked, self._parked = self._parked, []
        for seq, rows in parked:
            if seq.job.cancelled:
                continue
            if seq.job.caught_up():
                seq.idle = 0
                self._join([seq], rows)
            else:
                self._parked.append((seq, rows))

    def _step(self) -> bool:
        """Pick, leave, step (see the module docstring); False when no row could move."""
        if self._rows is None:
            return False
        moved = self._pick(self._rows)
        self._leave()
        rows, tokens = self._rows, [s.next_token for s in self._seqs]
        if moved and rows is not None and any(t is not None for t in tokens):
            jobs = {id(s.job): s.job for s in self._seqs}.values()
            if self._guarded(jobs, rows.step, self._lm.forward, tokens, self._lm.pad_id) is None:
                self._rows, self._seqs = None, []
            self.forward_passes += 1
        return moved

    def _pick(self, rows: Rows) -> bool:
        """Choose the next token of every row whose reader keeps up; False when none does
        (then no step runs, and nobody sits one out)."""
        moving = [not s.gone and not s.job.paused() for s in self._seqs]
        for seq in self._seqs:
            seq.next_token = None
        if not any(moving):
            return False
        wants_argmax = any(m and s.job.spec.greedy for m, s in zip(moving, self._seqs, strict=True))
        greedy = rows.greedy() if wants_argmax else None
        for i, seq in enumerate(self._seqs):
            seq.idle = 0 if moving[i] else seq.idle + 1
            if moving[i]:
                best = greedy[i] if greedy is not None else None
                seq.next_token = self._guarded([seq.job], self._advance, seq, rows.logits[i], best)
        return True

    def _advance(self, seq: _Seq, logits: torch.Tensor, best: int | None) -> int | None:
        """Choose ``seq``'s next token (``best`` when greedy) and send its text; the token to
        feed, or None when the sequence ended."""
        spec = seq.job.spec
        token = best if spec.greedy and best is not None else pick(logits, spec, seq.generator)
        seq.tokens += 1
        self.tokens_generated += 1
        if spec.logprobs:
            seq.pending_logprobs.append(self._lm.token_logprob(logits, token, spec.top_logprobs))
        if token in self._lm.eos_ids:
            self._finish(seq, seq.stopper.flush(), "stop")
            return None
        shown = seq.stopper.feed(seq.decoder.push(token))
        if seq.stopper.stopped:
            self._finish(seq, shown, "stop")
        elif seq.tokens >= spec.max_new_tokens:
            self._finish(seq, shown + seq.stopper.flush(), "length")
        else:
            self._send(seq, shown)
            return token
        return None

    def _leave(self) -> None:
        """Drop rows that are gone; park rows that sat out ``PARK_AFTER`` steps."""
        rows, seqs = self._rows, self._seqs
        if rows is None:
            return
        keep = [i for i, s in enumerate(seqs) if not s.gone and s.idle <= PARK_AFTER]
        if len(keep) == len(seqs):
            return
        park = [i for i, s in enumerate(seqs) if not s.gone and s.idle > PARK_AFTER]
        self._parked.extend((seqs[i], rows.select([i])) for i in park)
        self._rows = rows.select(keep) if keep else None
        self._seqs = [seqs[i] for i in keep]

    def _guarded(self, jobs: Iterable[Job], fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``, or None when it raised (then ``jobs`` failed with the error)."""
        # The one boundary where torch's errors become bitrate errors: what fails while
        # generating for these jobs fails them only, and the thread goes on.
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - boundary, see above
            log.exception("generation failed in backend '%s'", self._name)
            error = _translate(exc, self._name)
            for job in jobs:
                job.cancel()
                self._outbox.put(job, Failed(error))
            return None

    def _send(self, seq: _Seq, text: str) -> None:
        if not text and not seq.pending_logprobs:
            return
        logprobs = seq.pending_logprobs if seq.job.spec.logprobs else None
        seq.pending_logprobs = []
        self._outbox.put(seq.job, Piece(seq.index, text, logprobs))

    def _finish(self, seq: _Seq, text: str, reason: str) -> None:
        """Send the last text and the finish; the sequence leaves at the next step."""
        self._send(seq, text)
        self._outbox.put(seq.job, Finished(seq.index, reason, seq.tokens))
        seq.done = True

    def _fail_all(self, error: BitrateError) -> None:
        jobs = {id(s.job): s.job for s in self._seqs}
        jobs.update((id(s.job), s.job) for s, _ in self._parked)
        jobs.update((id(j), j) for j in self._waiting)
        self._waiting.clear()
        while True:
            try:
                job = self._inbox.get_nowait()
            except queue.Empty:
                break
            jobs[id(job)] = job
        for job in jobs.values():
            self._outbox.put(job, Failed(error))
        self._seqs, self._rows, self._parked = [], None, []


def _translate(exc: Exception, name: str) -> BitrateError:
    if isinstance(exc, BitrateError):
        return exc
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return BackendUnavailable(f"out of memory while generating: {exc}", backend=name)
    if isinstance(exc, RuntimeError):
        return BackendError(f"generation failed: {exc}", backend=name)
    return InternalError(f"generation failed in backend '{name}': {exc!r}")
