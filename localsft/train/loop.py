"""`train()`: our own loop over mlx-lm models and LoRA layers, with events, stop and exact resume.

One optimizer step = `grad_accumulation` micro-batches. Per micro-batch the compiled
`micro` function returns (summed loss, loss tokens, gradients); `apply` divides by the
token count (so an all-masked batch gives zero, never NaN) and updates. The loss is
checked before the update, so a NaN never reaches the weights: the run fails with a
plain reason and the last good checkpoint and adapters stay as they were.
"""

from __future__ import annotations

import bisect
import errno
import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_map

from localsft import paths
from localsft.errors import UserError
from localsft.models.loading import load_model
from localsft.runs.folder import STOP_FILE, RunFolder
from localsft.train import events as ev
from localsft.train.batching import Batch, BatchPlan, eval_batches, make_batch, tokenize_examples
from localsft.train.claim import claim
from localsft.train.checkpoint import (TrainState, adapter_config, list_checkpoints, load_checkpoint, read_state,
                                       save_adapters, save_checkpoint)
from localsft.train.config import TrainConfig
from localsft.train.group import SINGLE, Group
from localsft.train.loss import loss_sum
from localsft.train.plan import MB, calibrate, check_fits, estimate_memory
from localsft.train.setup import apply_method, build_optimizer, load_splits, prepare_run_data, trainable_count
from localsft.train import sizing as sz
from localsft.train.format_watch import FormatWatch, greedy_answers, held_out_chats, is_better

DIVERGED_FACTOR = 1.5  # validation loss this many times the untrained model's: diverged


@dataclass
class TrainResult:
    status: str  # finished, early_stopped, stopped, failed, diverged
    run_dir: Path
    step: int
    best_val_loss: float | None
    reason: str = ""


def new_run_dir(config: TrainConfig) -> Path:
    """A fresh folder under the runs store, named by time and model."""
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{Path(config.model or paths.DEFAULT_MODEL).name}"
    path, n = paths.runs_dir() / stem, 1
    while path.exists():
        n += 1
        path = paths.runs_dir() / f"{stem}-{n}"
    return path


def train(config: TrainConfig | None = None, run_dir: str | Path | None = None, on_event=None, stop=None,
          resume: bool = False, group: Group | None = None) -> TrainResult:
    """Train as `config` says, in `run_dir` (default: a new folder under the runs store).

    on_event(event): called with every event (also written to RUN/events.jsonl).
    stop(): polled after every step; True ends training cleanly with a checkpoint.
    resume: continue the run in `run_dir` from its latest checkpoint (config read from the run).
    group: the data-parallel process group this process is part of (see train.distributed;
    use `distributed.train_in_group`, which also sets up the ranks other than 0).

    A new run needs a new or empty folder. While it trains, the process holds the run
    folder's lock and this machine's training lock (localsft.runs.lock): a second training,
    a second resume of the same run, or deleting it, is refused with a plain message.
    """
    writes = (group or SINGLE).is_main  # data-parallel ranks other than 0 write nothing
    if resume:
        run = RunFolder.open(run_dir)
    else:
        run = RunFolder(Path(run_dir).expanduser() if run_dir else new_run_dir(config))
    locks = claim(run, None if resume else config) if writes else []
    log = None
    trainer = None
    try:
        if writes and not resume and not run.config_path.exists():
            config.save(run.config_path)
        log = ev.EventLog(run.events_path if writes else None, on_event)
        if resume:
            config = TrainConfig.load(run.config_path)
        trainer = _Trainer(config, run, log, stop, resume, group)
        return trainer.run()
    except Exception as err:
        reason = _reason(err, run)
        if log is not None:
            _log_failure(log, reason, trainer, resume)
        if isinstance(err, UserError):
            raise
        if reason != _internal(err):
            raise UserError(reason) from None
        raise
    finally:
        if trainer:
            trainer.close()
        if log is not None:
            log.close()
        for lock in reversed(locks):
            lock.release()


def stop_requested(trainer) -> bool:
    """A stop asked for through RUN/STOP (consumed here) or the trainer's `stop()` callback."""
    stop_file = trainer.run_folder.path / STOP_FILE
    if stop_file.exists():
        stop_file.unlink(missing_ok=True)
        return True
    return bool(trainer.stop and trainer.stop())


def write_checkpoint(trainer) -> Path:
    """Checkpoint `trainer` (model, optimizer, state) and its adapters/last, and log it; used by
    every trainer (this loop, the preference loop)."""
    path = save_checkpoint(trainer.run_folder, trainer.model, trainer.optimizer, trainer.state)
    save_adapters(trainer.run_folder.adapters_dir("last"), trainer.model, trainer.adapter_conf)
    trainer.log.emit(ev.Checkpoint(step=trainer.state.step, path=str(path)))
    return path


def _internal(err: Exception) -> str:
    return f"Training stopped on an internal error: {type(err).__name__}: {err}"


def _reason(err: Exception, run: RunFolder) -> str:
    """The sentence a user sees for an error that ended training."""
    if isinstance(err, UserError):
        return str(err)
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"The disk is full: training could not write to {run.path}. Free some space on that disk, "
                f"then resume with: localsft train --resume {run.path}")
    return _internal(err)


def _log_failure(log: ev.EventLog, reason: str, trainer, resume: bool) -> None:
    """A failed resume that never began leaves the run's status as it was; any other failure ends it."""
    began = trainer is not None and trainer.began
    event = ev.ResumeFailed(reason) if resume and not began else ev.Failed(reason, trainer.state.step if trainer else 0)
    try:
        log.emit(event)
    except OSError:
        pass  # a full disk cannot take the event either; the error still reaches the caller


def plan_only(config: TrainConfig, on_event=None) -> ev.Started:
    """The plan (steps, estimated time and memory) without training; nothing is kept."""
    with tempfile.TemporaryDirectory() as tmp:
        run = RunFolder(Path(tmp) / "plan")
        run.path.mkdir()
        config.save(run.config_path)
        trainer = _Trainer(config, run, ev.EventLog(None, on_event), None, False, None)
        try:
            return trainer._emit_plan()
        finally:
            trainer.close()


class _Trainer:
    def __init__(self, config: TrainConfig, run: RunFolder, log: ev.EventLog, stop, resume: bool,
                 group: Group | None):
        self.config, self.run_folder, self.log, self.stop = config, run, log, stop
        self.group = group or SINGLE
        self.began = False  # the plan is logged: from here on a failure ends the run
        self.state = TrainState()
        self.loaded = load_model(config.model, config.precision)
        self.model = self.loaded.model
        tokenizer = self.loaded.tokenizer
        if self.group.is_main and not (resume and (run.data_dir / "train.jsonl").exists()):
            prepare_run_data(config, run, tokenizer)
        train_rows, self.valid_rows = self.group.from_main(lambda: load_splits(config, run))
        if config.augment_paraphrases:  # before LoRA is attached: the base model paraphrases
            from localsft.train.augment import augmented_train_rows

            train_rows = self.group.from_main(lambda: augmented_train_rows(train_rows, self.loaded, run.data_dir,
                                                                           config.seed))
        replay = self._replay_rows(train_rows, run, resume) if config.replay > 0 else []
        train_rows = train_rows + replay
        examples = tokenize_examples(train_rows, tokenizer, config.max_seq_len, config.mask_prompt)
        self.valid = tokenize_examples(self.valid_rows, tokenizer, config.max_seq_len, config.mask_prompt)
        # unset settings are sized to the data (sizing.py); the run's config.yaml keeps them unset and
        # its checkpoints what the rule decided, so a resume keeps those values (even if the rule changed)
        found = list_checkpoints(run) if resume else []  # rank 0 resumes; the others get its state
        decided = self.group.from_main(lambda: read_state(found[-1]).sized if found else None)
        config, self.sizing = sz.size_config(config, [e.width for e in examples],
                                             lambda sized: BatchPlan(examples, sized).steps_per_epoch(), len(replay),
                                             decided)
        self.config = config
        self.plan = sz.batch_plan(examples, config)
        self.total_steps = self.plan.total_steps()
        self.layers, keys = apply_method(self.model, config)
        self.adapter_conf = adapter_config(config, self.layers, keys)
        self.optimizer = build_optimizer(config, self.total_steps)
        self.optimizer.init(self.model.trainable_parameters())
        if found:
            self.state = load_checkpoint(found[-1], self.model, self.optimizer)
        else:
            self.state.epoch = self.plan.first_epoch()
            self.state.sized = {k: getattr(config, k) for k in self.sizing.sized}
        self.state = self.group.sync_state(self.model, self.optimizer, self.state)
        self.resumed_from = self.state.step
        self.last_loss: float | None = None  # training loss of the latest step (for the check after training)
        subset = [self.valid[i] for i in sz.validation_subset([e.width for e in self.valid])]
        self.eval_set = eval_batches(subset, config) if subset else []
        # one process only: the decision to stop must be the same on every data-parallel rank
        self.format_watch = None if self.group.size > 1 else FormatWatch.for_run(config, self.valid_rows, self.loaded)
        self.eval_every = config.eval_every or sz.eval_every(self.total_steps, self.format_watch is not None)
        self.validations = sz.validation_steps(self.total_steps, self.eval_every,
                                               early=not config.eval_every and self.format_watch is not None)
        # validations from one format check to the next (1: every one), from the cost of a check
        step_tokens = self.plan.tokens_per_epoch() / max(self.plan.steps_per_epoch(), 1)
        self.format_every = self.format_watch.checks_every(self.eval_every * step_tokens) if self.format_watch else 1
        self.first_step = None  # (position, outputs): the plan's measurement, which is the next step
        self.model.train()
        self._build_functions()

    def _replay_rows(self, train_rows: list[dict], run: RunFolder, resume: bool) -> list[dict]:
        """General rows answered by the base model (before LoRA is attached), made once per run;
        none for a resumed run that began without them (its data must not change mid-run)."""
        from localsft.train.replay import FILE, replay_rows

        if resume and not (run.data_dir / FILE).exists():
            return []
        config = self.config
        return self.group.from_main(lambda: replay_rows(train_rows, self.loaded, run.data_dir, config.replay,
                                                        config.seed))

    # ---- compiled pieces -------------------------------------------------------------------
    def _build_functions(self) -> None:
        model, optimizer = self.model, self.optimizer
        packed = self.plan.packed
        value_and_grad = nn.value_and_grad(model, loss_sum)

        def micro(inputs, targets, segments, loss_index, loss_weight):
            (total, count), grads = value_and_grad(model, inputs, targets, segments if packed else None,
                                                   loss_index, loss_weight)
            return total, count, grads

        def apply(grads, count):
            grads = tree_map(lambda g: g / mx.maximum(count, 1.0), grads)
            optimizer.update(model, grads)

        def evaluate(inputs, targets, segments, loss_index, loss_weight):
            return loss_sum(model, inputs, targets, segments if packed else None, loss_index, loss_weight)

        if self.config.compile:
            # value_and_grad swaps the model's trainable arrays, so model.state is an output too;
            # the random state only when dropout draws from it (an unused one breaks the trace).
            state = [model.state, mx.random.state] if self.config.lora_dropout > 0 else [model.state]
            micro = mx.compile(micro, inputs=state, outputs=state)
            apply = mx.compile(apply, inputs=[model.state, optimizer.state], outputs=[model.state, optimizer.state])
            evaluate = mx.compile(evaluate, inputs=[model.state])
        self.micro, self.apply, self.evaluate_fn = micro, apply, evaluate
        if self.config.grad_checkpoint:
            from mlx_lm.tuner.trainer import grad_checkpoint

            layer_class = type(model.layers[0])
            self._restore_call = (layer_class, layer_class.__call__)
            grad_checkpoint(model.layers[0])  # patches the class: undone in close()

    def close(self) -> None:
        if getattr(self, "_restore_call", None):
            layer_class, call = self._restore_call
            layer_class.__call__ = call
            self._restore_call = None

    @staticmethod
    def _arrays(batch: Batch) -> tuple:
        segments = batch.segments if batch.segments is not None else batch.inputs[:, :1]
        return (mx.array(batch.inputs), mx.array(batch.targets), mx.array(segments),
                mx.array(batch.loss_index), mx.array(batch.loss_weight))

    # ---- the loop --------------------------------------------------------------------------
    def run(self) -> TrainResult:
        self._emit_plan(measure_next_step=True)
        self.began = True
        self.recent_losses: list[float] = []  # training losses since the last validation
        self.session_start = time.perf_counter()
        if self.eval_set and self.state.step == 0:
            self._evaluate(sample=False)  # the base model's validation loss, to compare against
            self.state.base_val_loss = self.state.best_val_loss
        while self.state.step < self.total_steps:
            if self.group.any(self._stop_requested()):  # every rank stops at the same step
                return self._stopped()
            started = time.perf_counter()
            loss, tokens = self._train_step()
            if not math.isfinite(loss):
                return self._failed_nan(loss)
            self.state.elapsed_s += time.perf_counter() - started
            self.recent_losses.append(loss)
            self._emit_step(loss, tokens, time.perf_counter() - started)
            self.last_loss = loss
            step = self.state.step
            validating = self._validates(step)
            if self.eval_set and validating:
                early = self._evaluate()
                if self._diverging():
                    return self._diverged()
                if early and step < self.total_steps:  # at the last step the run simply ends
                    return self._finish(early=True)
            every = self.config.checkpoint_every
            if (step % every == 0 if every else validating) and step < self.total_steps:
                self._checkpoint()
        return self._finish()

    def _next_position(self) -> tuple[int, int]:
        """(epoch, index) of the micro-batch the run trains on next."""
        epoch, index = self.state.epoch, self.state.batch_index
        return (epoch + 1, 0) if index >= len(self.plan.epoch(epoch)) else (epoch, index)

    def _next_batch(self) -> Batch:
        self.state.epoch, index = self._next_position()
        rows = self.plan.epoch(self.state.epoch)[index]
        batch = self.group.local_batch(self.plan.examples, rows, self.plan.packed, self.plan.pack_width(self.state.epoch))
        self.state.batch_index = index + 1
        return batch

    def _measured_outputs(self):
        """The plan's timed call when it was this very micro-batch (its loss and gradients), once."""
        found, self.first_step = self.first_step, None
        return found[1] if found and found[0] == self._next_position() else None

    def _train_step(self) -> tuple[float, int]:
        """One optimizer step; returns (mean loss, tokens). The weights are untouched if the loss is not finite."""
        accum = self.config.grad_accumulation
        total = count = grads = None
        tokens = 0
        for m in range(accum):
            measured = self._measured_outputs()
            batch = self._next_batch()
            if measured is not None:
                part_total, part_count, part_grads = measured
            else:
                mx.random.seed(self.config.seed * 1_000_003 + self.state.step * accum + m)  # dropout: exact on resume
                part_total, part_count, part_grads = self.micro(*self._arrays(batch))
            if grads is None:
                total, count, grads = part_total, part_count, part_grads
            else:
                total, count = total + part_total, count + part_count
                grads = tree_map(mx.add, grads, part_grads)
            tokens += batch.tokens
        # across data-parallel ranks: sums first, then one division by the global token count
        total, count, grads, tokens = self.group.sum((total, count, grads, mx.array(tokens, mx.float32)))
        mx.eval(total, count, grads, tokens)
        tokens = int(tokens.item())
        loss = total.item() / max(count.item(), 1.0)
        if math.isfinite(loss):
            self.apply(grads, count)
            mx.eval(self.model.trainable_parameters(), self.optimizer.state)
            self.state.step += 1
            self.state.trained_tokens += tokens
        return loss, tokens

    def _stop_requested(self) -> bool:
        return stop_requested(self)

    # ---- events ----------------------------------------------------------------------------
    def _emit_plan(self, measure_next_step: bool = False) -> ev.Started:
        """The plan event: steps, and time and memory measured on one call of the training step.

        measure_next_step: time the micro-batch the run trains on next, and keep that call's
        loss and gradients as its first step (one step of compute less than timing a row of its
        own; the plan alone times one row, which is cheaper)."""
        batches = [make_batch(self.plan.examples, rows, self.plan.packed, self.config.pack_width)
                   for rows in self.plan.epoch(0)]
        widest = max(range(len(batches)), key=lambda i: batches[i].inputs.size)
        big = batches[widest]
        rows, width, positions = big.shape
        backward = len(self.model.layers) if self.config.method == "full" else self.layers
        trainable = trainable_count(self.model)
        needed = estimate_memory(self.model, rows, width, positions, backward, trainable)
        available = check_fits(needed)
        # the next step's outputs can stand in for it when it is a whole step of one process, with no dropout
        reuse = (measure_next_step and self.config.grad_accumulation == 1 and self.group.size == 1
                 and self.config.lora_dropout == 0)
        position = self._next_position()
        timed = (self.plan.batch(*position) if reuse else
                 make_batch(self.plan.examples, self.plan.epoch(0)[widest][:1], self.plan.packed, self.config.pack_width))
        base = mx.get_active_memory()
        seconds_per_token, peak, outputs = calibrate(self.micro, self._arrays(timed), timed.tokens)
        self.first_step = (position, outputs) if reuse else None
        measured = base + (peak - base) * big.inputs.size / timed.inputs.size
        started = ev.Started(
            run=str(self.run_folder.path), model=self.loaded.path.name, precision=self.loaded.precision.describe(),
            method=self.config.method, steps=self.total_steps, epochs=self._epochs(),
            train_examples=len(self.plan.examples), valid_examples=len(self.valid),
            tokens_per_epoch=self.plan.tokens_per_epoch(), trainable_params=trainable,
            est_seconds=round(seconds_per_token * self._remaining_tokens(), 1),
            est_memory_mb=round(max(needed, measured) / MB, 1), available_memory_mb=round(available / MB, 1),
            resumed_from_step=self.resumed_from)
        est_seconds = started.est_seconds
        self.sizing.summary = sz.describe(self.sizing, self.total_steps, est_seconds)
        started.sizing = self.sizing.to_dict()
        self.log.emit(started)
        return started

    def _epochs(self) -> float:
        return round(self.total_steps / max(self.plan.steps_per_epoch(), 1), 2)

    def _remaining_tokens(self) -> float:
        per_step = self.plan.tokens_per_epoch() / max(self.plan.steps_per_epoch(), 1)
        return per_step * (self.total_steps - self.state.step)

    def _emit_step(self, loss: float, tokens: int, seconds: float) -> None:
        done = self.state.step - self.resumed_from
        per_step = (time.perf_counter() - self.session_start) / max(done, 1)
        epoch_len = max(len(self.plan.epoch(self.state.epoch)), 1)
        self.log.emit(ev.Step(
            step=self.state.step, steps=self.total_steps,
            epoch=round(max(0.0, self.state.epoch + self.state.batch_index / epoch_len), 3), loss=round(loss, 5),
            learning_rate=float(self.optimizer.learning_rate.item()), tokens_per_s=round(tokens / seconds, 1),
            trained_tokens=self.state.trained_tokens, peak_memory_mb=round(mx.get_peak_memory() / MB, 1),
            elapsed_s=round(self.state.elapsed_s, 2), eta_s=round(per_step * (self.total_steps - self.state.step), 1)))

    # ---- validation, samples, checkpoints ----------------------------------------------------
    def _evaluate(self, sample: bool = True) -> bool:
        """Validation loss, best adapter, samples; True when early stopping says stop."""
        self.model.eval()
        total = count = 0.0
        for batch in self.group.shard(self.eval_set):
            part_total, part_count = self.evaluate_fn(*self._arrays(batch))
            total += part_total.item()
            count += part_count.item()
        total, count = self.group.sum_values(total, count)
        val_loss = total / max(count, 1.0)
        state = self.state
        self.val_loss = val_loss
        watching = self.format_watch is not None and sample
        checking = watching and self._format_due()
        adherence, answers = self.format_watch.measure(self.model) if checking else (None, None)
        tolerance = self.format_watch.tolerance if self.format_watch else 0.0
        # between format checks only the loss is measured, and only a checked validation can be best
        improved = (checking or not watching) and is_better(adherence, val_loss, state.best_adherence,
                                                            state.best_val_loss, tolerance)
        if adherence is not None:
            state.best_adherence = max(adherence, state.best_adherence or 0.0)
        # progress: a new best checkpoint, or a new lowest validation loss (the answers still
        # move towards the references even when an 8-prompt format count dips)
        lower = state.lowest_val_loss is None or val_loss < state.lowest_val_loss
        state.lowest_val_loss = val_loss if lower else state.lowest_val_loss
        state.evals_since_best = 0 if improved or lower else state.evals_since_best + 1
        if improved:
            state.best_val_loss, state.best_step = val_loss, state.step
            if self.group.is_main:
                save_adapters(self.run_folder.adapters_dir("best"), self.model, self.adapter_conf)
        self.log.emit(ev.Eval(step=state.step, val_loss=round(val_loss, 5),
                              best_val_loss=round(state.best_val_loss or val_loss, 5), improved=improved,
                              format_adherence=adherence))
        if sample and self.group.is_main and checking == watching:  # samples reuse the check's answers
            self._sample(answers)
        self.model.train()
        patience = self.config.early_stopping_patience
        # stop after `patience` validations without progress; not as soon as the format holds
        # (measured: 19 of 20 held-out answers the same label) nor while the loss still falls
        # (brand-voice, 40 rows: stopped at step 25 of 60 with loss falling 3.4 -> 2.7, 65% format)
        return bool(patience and state.evals_since_best >= patience)

    def _validates(self, step: int) -> bool:
        index = bisect.bisect_left(self.validations, step)
        return index < len(self.validations) and self.validations[index] == step

    def _format_due(self) -> bool:
        """Whether this validation checks the format: the first one, every `format_every`-th after
        it, and the last (the best checkpoint is picked among checked validations)."""
        step = self.state.step
        return step >= self.total_steps or bisect.bisect_left(self.validations, step) % self.format_every == 0

    def _sample(self, answered: list[str] | None) -> None:
        """Greedy answers to the first held-out prompts, for the app; `answered`: the format watch's
        answers to the same prompts in the same order (reused, not decoded a second time)."""
        pairs = held_out_chats(self.valid_rows, self.config.sample_prompts)
        if not pairs:
            return
        if answered is None or len(answered) < len(pairs):
            answered = greedy_answers(self.model, self.loaded.tokenizer, [chat for chat, _ in pairs],
                                      self.config.sample_max_tokens)
        samples = [{"prompt": chat[-1]["content"] if chat else "", "answer": answer.strip(), "reference": reference}
                   for (chat, reference), answer in zip(pairs, answered)]
        self.log.emit(ev.Sample(step=self.state.step, samples=samples))

    def _checkpoint(self) -> Path:
        if not self.group.is_main:  # one copy of the run: rank 0 writes it
            return self.run_folder.checkpoints_dir / f"step-{self.state.step}"
        return write_checkpoint(self)

    # ---- endings ---------------------------------------------------------------------------
    def _stopped(self) -> TrainResult:
        path = self._checkpoint()
        self.log.emit(ev.Stopped(step=self.state.step, checkpoint=str(path)))
        return self._result("stopped")

    def _diverging(self) -> bool:
        """Whether the loss has grown well past the untrained model's: the learning rate is too
        high (measured on the default model: learning rate 1e6 took validation loss from 4.97 to
        10.80). The training loss must be worse than the untrained model's too; otherwise it is a
        validation set unlike the training data, which early stopping handles."""
        base, recent = self.state.base_val_loss, self.recent_losses
        self.recent_losses = []
        return (base is not None and bool(recent) and self.val_loss > DIVERGED_FACTOR * base
                and sum(recent) / len(recent) > base)

    def _diverged(self) -> TrainResult:
        state, base = self.state, self.state.base_val_loss
        reason = (f"Training diverged: the validation loss rose from {base:.2f} before training to "
                  f"{self.val_loss:.2f} at step {state.step}, so training stopped. Try a lower learning rate "
                  f"(this run used {self.config.learning_rate:g}).")
        if state.best_step > 0:
            reason += f" The adapter from step {state.best_step}, the best before it went wrong, is kept."
        else:  # "best" would be the untrained adapter written at step 0: never offer it as the result
            shutil.rmtree(self.run_folder.adapters_dir("best"), ignore_errors=True)
            reason += " No step improved on the model before training, so no adapter is kept as the best."
        self.log.emit(ev.Diverged(reason=reason, step=state.step, val_loss=round(self.val_loss, 5),
                                  base_val_loss=round(base, 5)))
        return self._result("diverged", reason)

    def _failed_nan(self, loss: float) -> TrainResult:
        reason = (f"The loss became {loss} at step {self.state.step + 1}, so training stopped. "
                  f"Try a lower learning rate. The last good checkpoint and adapters are kept in "
                  f"{self.run_folder.path}.")
        self.log.emit(ev.Failed(reason=reason, step=self.state.step))
        return self._result("failed", reason)

    def _finish(self, early: bool = False) -> TrainResult:
        self._checkpoint()
        state = self.state
        if self.group.is_main:
            self._check_health()
        if early:
            self.log.emit(ev.EarlyStopped(step=state.step, best_step=state.best_step,
                                          best_val_loss=state.best_val_loss))
        self.log.emit(ev.Finished(step=state.step, best_val_loss=state.best_val_loss,
                                  adapters=str(self.run_folder.best_adapter()) if self.group.is_main else "",
                                  run_dir=str(self.run_folder.path),
                                  seconds=round(state.elapsed_s, 1)))
        return self._result("early_stopped" if early else "finished")

    def _check_health(self) -> None:
        """Answer a few held-out prompts with the best adapter; flag loops, empty or identical answers."""
        from localsft.evaluation import degenerate

        best = self.run_folder.best_adapter() / "adapters.safetensors"
        if best.exists():
            self.model.load_weights(list(mx.load(str(best)).items()), strict=False)
        self.model.eval()
        health = degenerate.check_model(self.model, self.loaded.tokenizer, self.valid_rows, self.last_loss)
        if health is not None:
            path = degenerate.write_health(self.run_folder.path, health)
            self.log.emit(ev.Health(ok=health.ok, summary=health.summary(), problems=health.problems,
                                    path=str(path)))

    def _result(self, status: str, reason: str = "") -> TrainResult:
        return TrainResult(status, self.run_folder.path, self.state.step, self.state.best_val_loss, reason)
