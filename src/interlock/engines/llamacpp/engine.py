"""The chat engine: one llama context, one thread, continuous batching across slots.

Each slot is a sequence of the context with its own `n_ctx_per_slot` KV cells. Between steps the
thread admits queued jobs into free slots; every step is one `llama_decode` that carries the next
token of every generating slot plus prompt chunks of admitted ones, up to `n_batch` tokens, then
samples each slot in C at its batch index. Text goes back into each request's outbox, and the event
loop is woken once per step for all of them (`handoff`). An idle slot keeps its KV cells, so a new
prompt that starts like the slot's last one (the same system prompt) only decodes the tokens that
differ; a prompt that starts like what another slot holds or is decoding, or like a sequence saved in
the prompt cache before its slot was overwritten, gets those cells copied instead of decoding them
again (`cells.SlotCells`).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Literal

import llama_cpp

from interlock.engines.llamacpp.cells import SlotCells
from interlock.engines.llamacpp.context import apply_lora, create_context
from interlock.engines.llamacpp.generation import EngineStats, Generation
from interlock.engines.llamacpp.handoff import Outbox, wake_all
from interlock.engines.llamacpp.model import GgufModel, quiet_llama_logs
from interlock.engines.llamacpp.sampling import (
    GrammarError,
    LogitBiasError,
    RequestSampler,
    SamplingParams,
    TextAssembler,
)
from interlock.engines.llamacpp.slots import BatchWriter, Event, Finish, Job, Slot
from interlock.errors import BadRequest, RateLimited, Unavailable
from interlock.settings import EngineSettings


class ChatEngine:
    """Runs one GGUF chat model for many concurrent requests."""

    def __init__(
        self,
        model_path: Path,
        settings: EngineSettings,
        *,
        kv_unified: bool = False,
        lora_path: Path | None = None,
        lora_scale: float = 1.0,
    ) -> None:
        self.model_path = model_path
        self.lora_path = lora_path  # a GGUF LoRA adapter applied to every slot (`interlock tune`)
        self.lora_scale = lora_scale
        self._lora: Any = None
        self.settings = settings
        self.kv_unified = kv_unified
        self.model: GgufModel | None = None
        self.state = "not loaded"
        self.n_ctx_per_slot = settings.n_ctx_per_slot
        self._ctx: Any = None
        self._batch: Any = None
        self._writer: BatchWriter | None = None
        self._slots = [Slot(seq_id=i) for i in range(settings.slots)]
        self._cells = SlotCells(
            self._slots,
            kv_unified=kv_unified,
            share=settings.share_prefixes,
            prompt_cache_mib=settings.prompt_cache_mib,
        )
        self._waiting: deque[Job] = deque()
        self._busy = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._seconds_per_job = 2.0  # running average, for Retry-After
        self._steps = self._max_batch_seqs = self._prompt_tokens = self._completion_tokens = 0
        self._done = 0
        self._filler_tokens = 0
        self._to_wake: list[Job] = []  # jobs with new events this step whose consumer must be woken

    # ---- lifecycle (blocking; call from a worker thread) ----

    def load(self) -> None:
        """Load the model, create the context and start the engine thread."""
        self.state = "loading"
        try:
            quiet_llama_logs()
            llama_cpp.llama_backend_init()
            self.model = GgufModel(self.model_path)
            self._ctx, n_batch, self.n_ctx_per_slot = create_context(
                self.model, self.settings, kv_unified=self.kv_unified
            )
            self._cells.ctx = self._ctx
            self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
            self._writer = BatchWriter(self._batch, n_batch)
            if self.lora_path is not None:
                self._lora = apply_lora(self.model, self._ctx, self.lora_path, self.lora_scale)
        except Exception as exc:
            self.state = f"failed: {exc}"
            raise
        self._thread = threading.Thread(target=self._run, name="llamacpp-engine", daemon=True)
        self.state = "ready"
        self._thread.start()

    def close(self) -> None:
        """Stop the thread, fail what is still running, and free llama.cpp memory."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for slot in self._slots:
            job = slot.clear()
            if job is not None:
                self._fail(job, Unavailable("the local engine stopped"))
        while self._waiting:
            self._fail(self._waiting.popleft(), Unavailable("the local engine stopped"))
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
            self._ctx = self._cells.ctx = None
        if self._lora:
            llama_cpp.llama_adapter_lora_free(self._lora)
            self._lora = None
        if self.model is not None:
            self.model.close()
        self.state = "closed"

    # ---- the event loop's side ----

    def submit(self, prompt: list[int], params: SamplingParams, partition: str = "") -> Generation:
        """Queue a request; raises at once if it cannot be served. Call from the event loop.

        Its KV cells are reused only by jobs of the same `partition` (`types.tenancy`).
        """
        if self.state != "ready" or self.model is None:
            raise Unavailable(f"the local engine is not ready ({self.state})")
        room = self.n_ctx_per_slot - len(prompt)
        if room < 1:
            raise BadRequest(
                f"the prompt is {len(prompt)} tokens, but this model's context per request is "
                f"{self.n_ctx_per_slot} tokens; shorten the messages",
                code="context_length_exceeded",
                param="messages",
            )
        max_tokens = min(params.max_tokens, room)
        try:
            sampler = RequestSampler(self.model.vocab, params)
        except GrammarError as exc:
            raise BadRequest(str(exc), code="invalid_value", param="response_format") from None
        except LogitBiasError as exc:
            raise BadRequest(str(exc), code="invalid_value", param="logit_bias") from None
        job = Job(
            prompt=prompt,
            params=params,
            max_tokens=max_tokens,
            sampler=sampler,
            outbox=Outbox(asyncio.get_running_loop()),
            assembler=TextAssembler(params.stop),
            partition=partition,
        )
        with self._cond:
            if self.state != "ready":  # checked again under the lock: the engine may have failed meanwhile
                sampler.free()
                raise Unavailable(f"the local engine is not ready ({self.state})")
            if self._busy + len(self._waiting) >= self.settings.slots + self.settings.queue_size:
                sampler.free()
                raise RateLimited(
                    "the local engine is at capacity; retry shortly",
                    headers={"Retry-After": str(self._retry_after())},
                )
            self._waiting.append(job)
            self._cond.notify()
        return Generation(self, job)

    def _retry_after(self) -> int:
        rounds = len(self._waiting) / self.settings.slots + 1
        return max(1, math.ceil(self._seconds_per_job * rounds))

    def wake(self) -> None:
        """Make the thread look at cancellations now, even if it is idle."""
        with self._cond:
            self._cond.notify()

    def stats(self) -> EngineStats:
        """Current load and counters."""
        with self._cond:
            return EngineStats(
                state=self.state,
                slots=self.settings.slots,
                slots_busy=self._busy,
                queue_length=len(self._waiting),
                queue_size=self.settings.queue_size,
                n_ctx_per_slot=self.n_ctx_per_slot,
                steps=self._steps,
                max_batch_seqs=self._max_batch_seqs,
                prompt_tokens=self._prompt_tokens,
                **self._cells.stats(),
                filler_tokens=self._filler_tokens,
                completion_tokens=self._completion_tokens,
                requests_done=self._done,
            )

    # ---- the engine thread ----

    def _run(self) -> None:
        try:
            while self._admit():
                self._drop_cancelled()
                if self._busy:
                    self._step()
        except Exception as exc:  # a broken engine must fail its requests, not hang them
            with self._cond:  # submit() checks the state under this lock, so nothing joins the queue after
                self.state = f"failed: {exc}"
                waiting, self._waiting = list(self._waiting), deque()
                self._busy = 0
            for slot in self._slots:
                job = slot.clear()
                if job is not None:
                    self._fail(job, Unavailable("the local engine failed"))
            for job in waiting:
                self._fail(job, Unavailable("the local engine failed"))

    def _admit(self) -> bool:
        """Move queued jobs into free slots, sleeping while there is nothing to do."""
        if self._busy and not self._waiting and not self._stopping:
            # Nothing to admit and slots to run: skip the lock. Both are written under it by other
            # threads; a job queued just now is admitted one step later.
            return True
        with self._cond:
            while not self._stopping and not self._busy and not self._waiting:
                self._cond.wait()
            if self._stopping:
                return False
            free = [s for s in self._slots if s.job is None]
            while free and self._waiting:
                job = self._waiting.popleft()
                if job.cancelled:
                    job.sampler.free()
                    continue
                slot = self._cells.place(job, free)
                free.remove(slot)
                self._busy += 1
            return True

    def _drop_cancelled(self) -> None:
        dropped = False
        for slot in self._slots:
            if slot.job is not None and slot.job.cancelled:
                self._release(slot)
                dropped = True
        if dropped:  # a cancelled donor leaves its waiters what it has decoded so far
            self._cells.take_due_shares()

    def _step(self) -> None:
        """One llama_decode: the next token of each generating slot and prompt chunks, in slot order."""
        writer = self._writer
        assert writer is not None
        writer.reset()
        # Every non-generating slot may need one token (a prompt token or a filler), so only what
        # is left beyond one token per slot goes to longer prompt chunks.
        extra = max(0, writer.capacity - len(self._slots))
        busy = [s.seq_id for s in self._slots if s.ready()]
        fillers: list[Slot] = []
        for slot in self._slots:
            job = slot.job
            if job is None or slot.share is not None:  # idle, or waiting for another slot to decode its prefix
                # llama.cpp splits a batch for a per-sequence KV cache wherever sequence ids are not
                # consecutive, and each split is another pass over the weights. A filler token on an
                # idle slot between busy ones keeps the batch one pass; its cell is removed after.
                if not self.kv_unified and busy and busy[0] < slot.seq_id < busy[-1]:
                    writer.add(0, slot.pos, slot.seq_id, False)
                    fillers.append(slot)
                continue
            if not slot.prefilling():
                slot.logits_index = slot.feed(writer, slot.next_token, True)
                continue
            prompt = job.prompt
            end = min(len(prompt), slot.fed + 1 + extra)
            extra -= end - slot.fed - 1
            for i in range(slot.fed, end):
                slot.feed(writer, prompt[i], i == len(prompt) - 1)
            slot.logits_index = writer.n - 1 if end == len(prompt) else -1
            self._prompt_tokens += end - slot.fed
            slot.fed = end
        rc = llama_cpp.llama_decode(self._ctx, self._batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
        mem = llama_cpp.llama_get_memory(self._ctx)
        for slot in fillers:
            llama_cpp.llama_memory_seq_rm(mem, slot.seq_id, slot.pos, -1)
        self._filler_tokens += len(fillers)
        self._steps += 1
        self._max_batch_seqs = max(self._max_batch_seqs, len(busy))
        ctx = self._ctx
        for slot in self._slots:
            if slot.job is not None and slot.logits_index >= 0:
                self._advance(slot, slot.job.sampler.sample(ctx, slot.logits_index))
        self._cells.take_due_shares()
        self._flush()

    def _advance(self, slot: Slot, token: int) -> None:
        """Take one sampled token: emit its text, or finish the job."""
        job = slot.job
        model = self.model
        assert job is not None and model is not None
        if model.is_eog(token):
            self._finish(slot, "stop")
            return
        job.n_generated += 1
        self._completion_tokens += 1
        text = job.assembler.feed(model.piece(token))
        if text:
            self._emit(job, text)
        if job.assembler.stopped:
            self._finish(slot, "stop")
        elif job.n_generated >= job.max_tokens or slot.pos >= self.n_ctx_per_slot:
            self._finish(slot, "length")
        else:
            slot.next_token = token

    def _finish(self, slot: Slot, reason: Literal["stop", "length"]) -> None:
        job = slot.job
        assert job is not None
        tail = job.assembler.flush()
        if tail:
            self._emit(job, tail)
        elapsed = time.monotonic() - job.submitted_at
        self._seconds_per_job = 0.8 * self._seconds_per_job + 0.2 * elapsed
        self._done += 1
        # Free the slot first, so stats are already up to date when the consumer sees the finish.
        self._release(slot)
        self._emit(job, Finish(reason, len(job.prompt), job.n_generated), last=True)

    def _release(self, slot: Slot) -> None:
        job = slot.clear()
        if job is not None:
            job.sampler.free()
            with self._cond:
                self._busy -= 1

    def _emit(self, job: Job, event: Event, *, last: bool = False) -> None:
        """Queue an event for the job's consumer; `_flush` wakes the consumers after the step."""
        if job.outbox.put(event, last=last):
            self._to_wake.append(job)

    def _flush(self) -> None:
        jobs, self._to_wake = self._to_wake, []
        if jobs:
            dead = wake_all(job.outbox for job in jobs)
            for job in jobs:
                if job.outbox in dead:  # the consumer's event loop is closed: nobody is listening
                    job.cancelled = True

    def _fail(self, job: Job, exc: BaseException) -> None:
        job.outbox.put(exc, last=True)
        wake_all([job.outbox])
        job.sampler.free()
