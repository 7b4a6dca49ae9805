"""The generation thread of the transformers backend.

One thread owns the model. Requests arrive as :class:`Job` objects; each choice
of each job is a :class:`_Seq` with its own KV cache. The thread admits new jobs
(prefill), then advances every runnable sequence by one token, round-robin, so
concurrent requests share the model fairly and a long answer never blocks a
short one. Results go back to the caller's event loop through
``loop.call_soon_threadsafe``.

At most ``max_batch_size`` sequences run at once; later jobs wait their turn in order.
Back-pressure: a job with ``WINDOW`` unread pieces is not advanced until its
reader catches up, so a slow (or gone) reader costs no compute and a cancelled
stream stops within a few tokens. Each sequence runs alone (batch of one), so an
answer does not depend on what else is running: greedy answers are identical
whether requests arrive alone or together.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Any

from sdk.backends.hf_model import LoadedModel, new_generator, pick
from sdk.backends.local_answer import Failed, Finished, Piece
from sdk.backends.sampling import IncrementalDecoder, SamplingSpec, StopMatcher
from sdk.errors import BackendError, BackendUnavailable, BitrateError, InternalError
from sdk.protocol import TokenLogprob

__all__ = ["Job", "Worker"]

log = logging.getLogger(__name__)

WINDOW = 16
"""Most unread pieces a job may have before its sequences pause."""


Event = Piece | Finished | Failed


class Job:
    """One request on its way through the worker, and the queue its events arrive on."""

    def __init__(self, prompt: list[int], spec: SamplingSpec, loop: asyncio.AbstractEventLoop):
        self.prompt = prompt
        self.spec = spec
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self._loop = loop
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._unread = 0

    def cancel(self) -> None:
        """Stop generating for this job (safe from any thread, idempotent)."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def read_one(self) -> None:
        """Called by the reader for each event taken; may let the job run again."""
        with self._lock:
            self._unread -= 1

    def paused(self) -> bool:
        with self._lock:
            return self._unread >= WINDOW

    def emit(self, event: Event) -> None:
        """Hand ``event`` to the reader's loop; a closed loop cancels the job."""
        with self._lock:
            self._unread += 1
        try:
            self._loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the reader's loop is closed: nobody will read
            self.cancel()


@dataclass
class _Seq:
    job: Job
    index: int
    logits: Any
    cache: Any
    generator: Any
    decoder: IncrementalDecoder
    stopper: StopMatcher
    tokens: int = 0
    pending_logprobs: list[TokenLogprob] = field(default_factory=list)


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
        self._active: list[_Seq] = []
        self.tokens_generated = 0
        """Tokens generated since start, over all jobs."""
        self._thread = threading.Thread(target=self._run, name=f"bitrate-hf-{name}", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping

    @property
    def active_sequences(self) -> int:
        """Sequences in flight now (a cancelled one leaves at the next step)."""
        return len(self._active)

    def submit(self, job: Job) -> None:
        """Queue ``job``; raise ``BackendUnavailable`` once the worker is stopping."""
        if not self.alive:
            raise BackendUnavailable("the model is closed", backend=self._name)
        self._inbox.put(job)
        self._wake.set()

    def wake(self) -> None:
        """Let a paused job run again after its reader caught up."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the thread; jobs still in flight fail with ``BackendUnavailable``."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)

    # ------------------------------------------------------------ the thread

    def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            self._admit()
            runnable = self._runnable()
            if not runnable:
                self._wake.wait(timeout=1.0)
                continue
            for seq in runnable:
                self._guarded(seq.job, self._step, seq)
        self._fail_all(BackendUnavailable("the model was closed", backend=self._name))

    def _admit(self) -> None:
        """Start waiting jobs, oldest first, while at most ``max_active`` sequences run
        (a job with more choices than that starts alone)."""
        while True:
            try:
                self._waiting.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        while self._waiting:
            job = self._waiting[0]
            if job.cancelled:
                self._waiting.popleft()
                continue
            if self._active and len(self._active) + job.spec.n > self._max_active:
                return
            self._waiting.popleft()
            self._guarded(job, self._prefill, job)

    def _runnable(self) -> list[_Seq]:
        self._active = [s for s in self._active if not s.job.cancelled]
        return [s for s in self._active if not s.job.paused()]

    def _guarded(self, job: Job, fn: Any, arg: Any) -> None:
        # The one boundary where torch's errors become bitrate errors: whatever fails
        # while generating one job fails that job only, and the thread goes on.
        try:
            fn(arg)
        except Exception as exc:  # noqa: BLE001 - boundary, see above
            log.exception("generation failed in backend '%s'", self._name)
            job.cancel()
            job.emit(Failed(_translate(exc, self._name)))

    def _prefill(self, job: Job) -> None:
        for index in range(job.spec.n):
            logits, cache = self._lm.prefill(job.prompt)
            self._active.append(
                _Seq(
                    job=job,
                    index=index,
                    logits=logits,
                    cache=cache,
                    generator=new_generator(job.spec, index, self._lm.device),
                    decoder=IncrementalDecoder(self._lm.decode),
                    stopper=StopMatcher(job.spec.stop),
                )
            )

    def _step(self, seq: _Seq) -> None:
        spec = seq.job.spec
        token = pick(seq.logits, spec, seq.generator)
        seq.tokens += 1
        self.tokens_generated += 1
        if spec.logprobs:
            seq.pending_logprobs.append(self._lm.token_logprob(seq.logits, token, spec.top_logprobs))
        if token in self._lm.eos_ids:
            return self._finish(seq, seq.stopper.flush(), "stop")
        shown = seq.stopper.feed(seq.decoder.push(token))
        if seq.stopper.stopped:
            return self._finish(seq, shown, "stop")
        if seq.tokens >= spec.max_new_tokens:
            return self._finish(seq, shown + seq.stopper.flush(), "length")
        self._send(seq, shown)
        seq.logits = self._lm.advance(token, seq.cache)
        return None

    def _send(self, seq: _Seq, text: str) -> None:
        if not text and not seq.pending_logprobs:
            return
        logprobs = seq.pending_logprobs if seq.job.spec.logprobs else None
        seq.pending_logprobs = []
        seq.job.emit(Piece(seq.index, text, logprobs))

    def _finish(self, seq: _Seq, text: str, reason: str) -> None:
        self._send(seq, text)
        seq.job.emit(Finished(seq.index, reason, seq.tokens))
        self._active.remove(seq)

    def _fail_all(self, error: BitrateError) -> None:
        jobs = {id(s.job): s.job for s in self._active}
        jobs.update((id(j), j) for j in self._waiting)
        self._waiting.clear()
        while True:
            try:
                job = self._inbox.get_nowait()
            except queue.Empty:
                break
            jobs[id(job)] = job
        for job in jobs.values():
            job.emit(Failed(error))
        self._active.clear()


def _translate(exc: Exception, name: str) -> BitrateError:
    if isinstance(exc, BitrateError):
        return exc
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return BackendUnavailable(f"out of memory while generating: {exc}", backend=name)
    if isinstance(exc, RuntimeError):
        return BackendError(f"generation failed: {exc}", backend=name)
    return InternalError(f"generation failed in backend '{name}': {exc!r}")
