"""The decode loop behind the server: one thread, one copy of each base, many requests per batch.

Requests join the running batch between steps (continuous batching): a newcomer's prompt
is filled into a batch cache of its own, then that cache is appended to the running one
(mlx-lm's BatchKVCache.extend); a prompt that starts like an earlier one on the same adapter
is filled from where they part (prefix.py). Every row has its own adapter slot (AdapterBank), its own
sampling settings and its own stop strings; a finished or abandoned row leaves the batch.
Rows on another base wait until the running batch drains (first come, first served), so
one base's weights are in use at a time and each base is loaded once.

All MLX work happens on the engine's thread; requests talk to it through `Job.emit`.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import mlx.core as mx

from localsft.errors import UserError
from localsft.inference.generate import SamplingSettings
from localsft.inference.targets import Target
from localsft.serve.prefix import PrefixStore

log = logging.getLogger("localsft.serve")
DEFAULT_MAX_TOKENS = 512


@dataclass
class Job:
    """One request: what to answer (chat messages or a plain prompt) and where events go.

    emit(event) receives, in order: {"type": "start", "prompt_tokens": n}, then
    {"type": "text", "text": piece}..., then {"type": "end", "finish_reason", "completion_tokens"};
    or a single {"type": "error", "status", "code", "message"}.
    """

    target: Target
    emit: Callable[[dict], None]
    messages: list[dict] | None = None
    prompt: str | None = None
    settings: SamplingSettings = field(default_factory=SamplingSettings)
    max_tokens_given: bool = False
    stop: list[str] = field(default_factory=list)
    cancelled: bool = False  # set by the request when its client goes away


class Row:
    """A job while it decodes: its adapter slot, text so far, and how much has been sent."""

    def __init__(self, job: Job, slot: int, tokenizer, prompt_tokens: int) -> None:
        self.job, self.slot, self.prompt_tokens = job, slot, prompt_tokens
        self.detokenizer = tokenizer.detokenizer
        self.detokenizer.reset()
        self.eos = set(tokenizer.eos_token_ids)
        self.text, self.sent, self.count = "", 0, 0
        seed = job.settings.seed
        self.key = mx.random.key(seed) if seed is not None else None
        self.hold = max((len(s) for s in job.stop), default=1) - 1  # a stop string may be cut

    def accept(self, token: int) -> bool:
        """Take the next token; False when the row is done (answer complete or abandoned)."""
        if self.job.cancelled:
            return False
        done = None
        if token in self.eos:
            done = "stop"
        else:
            self.count += 1
            self.detokenizer.add_token(token)
            done = "length" if self.count >= self.job.settings.max_tokens else None
        if done:
            self.detokenizer.finalize()
        self.text += self.detokenizer.last_segment
        starts = (self.text.find(s, max(self.sent - self.hold, 0)) for s in self.job.stop)
        cut = min((i for i in starts if i >= 0), default=-1)
        if cut >= 0:
            self.text, done = self.text[:cut], "stop"
        if done:
            self._send(len(self.text))
            self.job.emit({"type": "end", "finish_reason": done, "completion_tokens": self.count})
            return False
        self._send(len(self.text) - self.hold)
        return True

    def _send(self, upto: int) -> None:
        if upto > self.sent:
            self.job.emit({"type": "text", "text": self.text[self.sent:upto]})
            self.sent = upto


def sample(logits: mx.array, rows: list[Row]) -> mx.array:
    """The next token of every row with its own temperature, top-p and seed (mlx-lm's top-p)."""
    from mlx_lm.sample_utils import apply_top_p

    logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
    greedy = mx.argmax(logprobs, axis=-1)
    if all(r.job.settings.temperature == 0 for r in rows):
        return greedy
    tokens = []
    for i, row in enumerate(rows):
        settings = row.job.settings
        if settings.temperature == 0:
            tokens.append(greedy[i:i + 1])
            continue
        scores = logprobs[i:i + 1]
        if settings.top_p < 1.0:
            scores = apply_top_p(scores, settings.top_p)
        key = None
        if row.key is not None:
            row.key, key = mx.random.split(row.key)
        tokens.append(mx.random.categorical(scores * (1.0 / settings.temperature), key=key))
    return mx.concatenate(tokens)


class Engine:
    """Owns the models (one AdapterBank per base) and the running batch; runs on its own thread."""

    def __init__(self, max_batch: int = 32, blas_threads: int | None = None) -> None:
        self.max_batch, self.blas_threads = max_batch, blas_threads
        self.inbox: queue.Queue = queue.Queue()
        self.pending: deque[Job] = deque()
        self.banks: dict[Path, object] = {}
        self.base: Path | None = None  # the base of the running batch
        self.rows: list[Row] = []
        self.cache = None
        self.y = None  # the next token of every row, sampled but not yet taken
        self.stats = {"largest_batch": 0, "mixed_steps": 0,  # steps whose rows use different adapters
                      "reused_prompt_tokens": 0}  # prompt tokens not filled again (see prefix.py)
        self.prefixes = PrefixStore()
        self.plain: dict[Path, bool] = {}  # per base: whether its KV caches can be cut and continued
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="localsft-serve")

    def start(self) -> "Engine":
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self.inbox.put(None)
        self._thread.join(timeout=10)

    def submit(self, job: Job) -> None:
        self.inbox.put(job)

    def _loop(self) -> None:
        if self.blas_threads:
            from localsft.platform.blas import set_threads

            set_threads(self.blas_threads)
        try:
            while not self._stop.is_set():
                self._collect(block=not self.rows and not self.pending)
                try:
                    self._admit()
                    if self.rows:
                        self._step()
                except Exception as err:  # never leave requests hanging, keep serving
                    log.exception("decode step failed")
                    self._fail_all(err)
        finally:
            mx.clear_streams()  # MLX work on a worker thread can abort the interpreter at exit without this

    def _collect(self, block: bool) -> None:
        try:
            job = self.inbox.get(timeout=0.5) if block else self.inbox.get_nowait()
            while job is not None:
                self.pending.append(job)
                job = self.inbox.get_nowait()
        except queue.Empty:
            pass

    def _bank(self, base: Path):
        if base not in self.banks:
            from localsft.inference.switch import AdapterBank
            from localsft.models.loading import load_model

            self.banks[base] = AdapterBank(load_model(str(base)))
        return self.banks[base]

    def _admit(self) -> None:
        """Move waiting jobs of the running base (first come, first served) into the batch."""
        new = []
        while self.pending and len(self.rows) + len(new) < self.max_batch:
            job = self.pending[0]
            if job.cancelled:
                self.pending.popleft()
                continue
            if (self.rows or new) and job.target.base != self.base:
                break
            self.pending.popleft()
            self.base = job.target.base
            try:
                new.append(self._row(job))
            except UserError as err:
                job.emit({"type": "error", "status": 400, "code": getattr(err, "code", None), "message": str(err)})
            except Exception as err:
                log.exception("could not start a request")
                job.emit({"type": "error", "status": 500, "code": None,
                          "message": f"The server could not load {job.target.id} ({type(err).__name__})."})
        if new:
            self._join(new)

    def _row(self, job: Job) -> tuple[Row, list[int]]:
        from localsft.inference.generate import chat_prompt

        bank = self._bank(job.target.base)
        tokenizer = bank.loaded.tokenizer
        slot = bank.add(job.target.adapter) if job.target.adapter else 0
        if job.messages is not None:
            prompt = chat_prompt(tokenizer, job.messages)
        else:
            prompt = list(tokenizer.encode(job.prompt))
        context = job.target.context_length
        if not prompt:
            raise UserError("The prompt is empty.")
        room = context - len(prompt)
        if not job.max_tokens_given:
            job.settings.max_tokens = min(DEFAULT_MAX_TOKENS, room)
        if room < 1 or job.settings.max_tokens > room:
            err = UserError(f"This model's context is {context} tokens; the prompt has {len(prompt)} tokens"
                            + (f" and max_tokens asks for {job.settings.max_tokens} more." if job.max_tokens_given
                               else ", which leaves no room for an answer."))
            err.code = "context_length_exceeded"
            raise err
        job.emit({"type": "start", "prompt_tokens": len(prompt)})
        return Row(job, slot, tokenizer, len(prompt)), prompt

    def _join(self, new: list[tuple[Row, list[int]]]) -> None:
        """Fill the newcomers' prompts and append them to the running batch.

        A prompt whose start an earlier request on the same base and adapter already filled
        (see prefix.py) is filled alone from there; the others are filled together as one batch."""
        from localsft.inference.batch import prefill, prefill_after

        bank = self._bank(self.base)
        model = bank.loaded.model
        reusable = self._reusable(model)
        cold, parts = [], []
        for row, prompt in new:
            n, known = self.prefixes.lookup(self.base, row.slot, prompt) if reusable else (0, [])
            if not n:
                cold.append((row, prompt))
                continue
            bank.switch.set_adapters([row.slot])
            parts.append(([(row, prompt)], *prefill_after(model, known, prompt[n:])))
            self.stats["reused_prompt_tokens"] += n
        if cold:
            bank.switch.set_adapters([row.slot for row, _ in cold])
            parts.append((cold, *prefill(model, [prompt for _, prompt in cold], batched=True)))
        for joined, cache, logits in parts:
            rows = [row for row, _ in joined]
            first = sample(logits, rows)
            mx.eval(first, [c.state for c in cache])
            if reusable:
                for i, (row, prompt) in enumerate(joined):
                    kept = [layer.extract(i) for layer in cache]
                    self.prefixes.store(self.base, row.slot, prompt, [(c.keys, c.values) for c in kept])
            if self.cache is None:
                self.cache, self.y = cache, first
            else:
                for mine, theirs in zip(self.cache, cache):
                    mine.extend(theirs)
                self.y = mx.concatenate([self.y, first])
            self.rows += rows

    def _reusable(self, model) -> bool:
        """Whether prompt starts can be reused on this model (plain KV caches), asked once per base."""
        from localsft.inference.batch import plain_caches

        if self.base not in self.plain:
            self.plain[self.base] = plain_caches(model)
        return self.plain[self.base]

    def _step(self) -> None:
        """Queue the next step for every row, then take this step's tokens while it computes.

        Reading the tokens back, detokenizing and handing text to the requests is Python work;
        done before the next step was queued, the model would wait for it every step. A row
        that finishes on this token gets one step computed for nothing, then leaves the batch.
        """
        bank = self._bank(self.base)
        slots = [row.slot for row in self.rows]
        bank.switch.set_adapters(slots)
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(slots))
        self.stats["mixed_steps"] += len(set(slots)) > 1
        logits = bank.loaded.model(self.y[:, None], cache=self.cache)[:, -1, :]
        following = sample(logits, self.rows)
        mx.async_eval(following)
        keep = [i for i, (row, token) in enumerate(zip(self.rows, self.y.tolist())) if row.accept(token)]
        self.y = following
        if len(keep) < len(self.rows):
            self.rows = [self.rows[i] for i in keep]
            if not self.rows:
                mx.eval(following)  # let the wasted step finish before the cache is dropped
                self.cache = self.y = None
                return
            index = mx.array(keep)
            for layer in self.cache:
                layer.filter(index)
            self.y = self.y[index]

    def _fail_all(self, err: Exception) -> None:
        for row in self.rows:
            row.job.emit({"type": "error", "status": 500, "code": None,
                          "message": f"Generation failed ({type(err).__name__}); please retry."})
        self.rows, self.cache, self.y = [], None, None
