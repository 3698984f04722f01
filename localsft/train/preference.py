"""`train_preferences()`: the next version of a tuned run, trained on the user's judgements.

The new run continues from the parent run's adapter (same base, same LoRA layout) with a
preference loss (DPO by default, ORPO as the reference-free choice; see preference_loss.py).
One copy of the base weights: DPO's reference is the parent adapter itself, whose answer
log-probabilities are computed once, before the first step, and kept in RUN/data/reference.json.
The run folder is a run like any other (config, events, checkpoints, adapters, exact resume),
so Compare, evaluation and export work on it unchanged; its config names the parent.

Model selection: a share of the pairs is held out; after each validation the step with the
highest held-out preference accuracy (ties: lower held-out loss) becomes adapters/best, and
training stops early after `early_stopping_patience` validations without a better one.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten

from localsft.errors import UserError
from localsft.feedback.judgements import PreferencePair, collect, pairs_to_rows, read_pairs_file
from localsft.models.loading import load_model
from localsft.runs.folder import RunFolder, atomic_write_jsonl, atomic_write_text
from localsft.train import events as ev
from localsft.train.claim import claim
from localsft.train.checkpoint import (TrainState, adapter_config, list_checkpoints, load_checkpoint,
                                       save_adapters)
from localsft.train.config import TrainConfig
from localsft.train.loop import TrainResult, new_run_dir, stop_requested, write_checkpoint
from localsft.train.plan import MB
from localsft.train.preference_loss import make_pair_batch, pair_loss
from localsft.train.setup import apply_method, build_optimizer, trainable_count

# What a preference run changes in the parent's settings (an explicit override still wins). A few
# dozen noisy pairs, a few passes, validation often enough to pick the best step. The step size was
# measured on the default model (26 pairs of its own taglines, the chosen ones signed off, 28 steps):
# 5e-5 left the held-out answers unsigned (0 of 6), 2e-4 signed 4 of 6 (DPO recipes use 5e-7..5e-6
# for full weights; a LoRA update needs far more). That was at a LoRA scale of 2; the update
# grows with scale x learning rate, so the rate is that product over the parent's own scale.
PREFERENCE_STEP = 4e-4  # learning rate x LoRA scale (alpha / rank)
PREFERENCE_DEFAULTS = {"epochs": 4.0, "warmup_ratio": 0.1, "lora_dropout": 0.0,
                       "lr_schedule": "cosine", "iters": None, "eval_every": None, "batch_size": 4}
MIN_PAIRS = 4


def preference_config(parent: RunFolder, loss: str = "dpo", overrides: list[str] | None = None) -> TrainConfig:
    """The parent's settings with its adapter's exact LoRA layout, the preference defaults, then `overrides`."""
    config = TrainConfig.load(parent.config_path)
    adapter = json.loads((parent.best_adapter() / "adapter_config.json").read_text())
    if adapter.get("fine_tune_type", "lora") not in ("lora", "dora"):
        raise UserError(f"Run {parent.name} trained all weights, not an adapter: --from needs a LoRA or DoRA run.")
    lora = adapter.get("lora_parameters", {})
    layout = {"method": adapter.get("fine_tune_type", "lora"), "lora_layers": adapter.get("num_layers", -1),
              "lora_rank": lora.get("rank", config.lora_rank), "lora_keys": lora.get("keys"),
              "lora_alpha": lora.get("scale", config.lora_scale) * lora.get("rank", config.lora_rank)}
    config = config.replace(**layout, **PREFERENCE_DEFAULTS, learning_rate=PREFERENCE_STEP * layout["lora_rank"]
                            / layout["lora_alpha"], preference_loss=loss,
                            parent_run=str(parent.path.resolve()), data=None)
    return config.with_overrides(overrides or [])


def load_parent_adapter(model: nn.Module, parent: RunFolder) -> None:
    """Put the parent's adapter weights into the (already adapted) model; every weight must fit."""
    weights = mx.load(str(parent.best_adapter() / "adapters.safetensors"))
    own = dict(tree_flatten(model.trainable_parameters()))
    wrong = [k for k, v in weights.items() if k not in own or own[k].shape != v.shape]
    if wrong or len(weights) != len(own):
        raise UserError(f"The adapter of run {parent.name} does not fit this model "
                        f"({len(wrong) or abs(len(own) - len(weights))} weights differ).")
    model.load_weights(list(weights.items()), strict=False)
    mx.eval(model.parameters())


def gather_pairs(parent: RunFolder, pairs_file: str | Path | None = None) -> list[PreferencePair]:
    """The pairs to train on: a prompt/chosen/rejected file, or the parent's votes and corrections."""
    pairs = read_pairs_file(pairs_file) if pairs_file else collect(parent).pairs
    if len(pairs) < MIN_PAIRS:
        raise UserError(f"Only {len(pairs)} preference pair{'s' * (len(pairs) != 1)} "
                        f"{'in ' + str(pairs_file) if pairs_file else 'collected in run ' + parent.name}: "
                        f"at least {MIN_PAIRS} are needed (vote in the blind A/B test, or correct answers).")
    return pairs


def split_pairs(pairs: list[PreferencePair], config: TrainConfig) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """(train, held out): a seeded fifth (at least 2) is held out once there are 8 pairs or more."""
    if len(pairs) < 8:
        return pairs, []
    held = max(2, round(len(pairs) * max(config.valid_fraction, 0.2)))
    order = np.random.default_rng(config.seed).permutation(len(pairs))
    return [pairs[i] for i in sorted(order[held:])], [pairs[i] for i in sorted(order[:held])]


def train_preferences(config: TrainConfig, pairs: list[PreferencePair] | None = None,
                      run_dir: str | Path | None = None, on_event=None, stop=None,
                      resume: bool = False) -> TrainResult:
    """Train `config` (a preference config) on `pairs` in `run_dir` (default: a new run folder).

    resume: continue the run in `run_dir` exactly (its pairs and reference are read from the run).
    """
    run = RunFolder.open(run_dir) if resume else RunFolder(Path(run_dir).expanduser() if run_dir
                                                           else new_run_dir(config))
    locks = claim(run, None if resume else config)  # the same run and machine locks as any training
    log = trainer = None
    try:
        if resume:
            config = TrainConfig.load(run.config_path)
        else:
            train, held = split_pairs(pairs or [], config)
            for name, part in (("pairs.jsonl", train), ("valid_pairs.jsonl", held)):
                atomic_write_jsonl(run.data_dir / name, pairs_to_rows(part))
            config.save(run.config_path)
        log = ev.EventLog(run.events_path, on_event)
        trainer = _PreferenceTrainer(config, run, log, stop, resume)
        return trainer.run()
    except Exception as err:
        if log is not None:
            reason = str(err) if isinstance(err, UserError) else f"Training stopped on an internal error: {err!r}"
            log.emit(ev.Failed(reason, trainer.state.step if trainer else 0))
        raise
    finally:
        if log is not None:
            log.close()
        for lock in reversed(locks):
            lock.release()


def _read_pairs(path: Path) -> list[PreferencePair]:
    if not path.exists():
        return []
    return [PreferencePair(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


class _PreferenceTrainer:
    def __init__(self, config: TrainConfig, run: RunFolder, log: ev.EventLog, stop, resume: bool):
        if not config.preference_loss or not config.parent_run:
            raise UserError("A preference run needs preference_loss and parent_run (use train --from RUN).")
        self.config, self.run_folder, self.log, self.stop = config, run, log, stop
        self.state = TrainState()
        parent = RunFolder.open(config.parent_run)
        self.loaded = load_model(config.model, config.precision)
        self.model = self.loaded.model
        self.layers, keys = apply_method(self.model, config)
        load_parent_adapter(self.model, parent)
        self.adapter_conf = adapter_config(config, self.layers, keys)
        self.train_pairs = _read_pairs(run.data_dir / "pairs.jsonl")
        self.held_pairs = _read_pairs(run.data_dir / "valid_pairs.jsonl")
        self.train_tok = [self._tokenize(p) for p in self.train_pairs]
        self.held_tok = [self._tokenize(p) for p in self.held_pairs]
        self.per_batch = config.batch_size or PREFERENCE_DEFAULTS["batch_size"]
        self.batches_per_epoch = math.ceil(len(self.train_pairs) / self.per_batch)
        self.total_steps = config.iters or max(1, math.ceil(self.batches_per_epoch * config.epochs))
        self.eval_every = config.eval_every or max(1, math.ceil(self.total_steps / 8))
        self.optimizer = build_optimizer(config, self.total_steps)
        self.reference = self._reference()  # before any step, and before a checkpoint is restored
        self.optimizer.init(self.model.trainable_parameters())
        if resume and (found := list_checkpoints(run)):
            self.state = load_checkpoint(found[-1], self.model, self.optimizer)
        self.resumed_from = self.state.step
        loss_args = (config.preference_loss, config.preference_beta, config.label_smoothing,
                     config.preference_sft_weight)
        self.loss_args = loss_args
        self.value_and_grad = nn.value_and_grad(self.model, lambda m, *a: pair_loss(m, *a, *loss_args))

    # ---- data --------------------------------------------------------------------------------
    def _tokenize(self, pair: PreferencePair) -> tuple:
        from localsft.data.template import tokenize_chat

        limit = self.config.max_seq_len + 1
        sides = []
        for answer in (pair.chosen, pair.rejected):
            t = tokenize_chat(self.loaded.tokenizer, pair.prompt + [{"role": "assistant", "content": answer}])
            sides.append((np.asarray(t.ids[:limit], np.int32), np.asarray(t.loss_mask[:limit], bool)))
        return sides[0], sides[1]

    def _batch(self, tokenized: list[tuple]):
        return make_pair_batch([t[0] for t in tokenized], [t[1] for t in tokenized])

    def _reference(self) -> dict[str, list[float]]:
        """The parent's summed answer log-probs per pair id: computed once, kept in the run folder."""
        path = self.run_folder.data_dir / "reference.json"
        if path.exists():
            return json.loads(path.read_text())
        from localsft.train.preference_loss import answer_logps

        self.model.eval()
        reference, pairs = {}, self.train_pairs + self.held_pairs
        toks = self.train_tok + self.held_tok
        for start in range(0, len(pairs), self.per_batch):
            part = self._batch(toks[start:start + self.per_batch])
            inputs, targets, index, rows = part.arrays()
            logps, _ = answer_logps(self.model, inputs, targets, index, rows)
            logps = logps.tolist()
            half = len(logps) // 2
            for i, pair in enumerate(pairs[start:start + self.per_batch]):
                reference[pair.id] = [logps[i], logps[half + i]]
        atomic_write_text(path, json.dumps(reference))
        return reference

    def _ref_array(self, pairs: list[PreferencePair]) -> mx.array:
        return mx.array([self.reference[p.id][0] for p in pairs] + [self.reference[p.id][1] for p in pairs])

    def _next(self) -> tuple[list[PreferencePair], list[tuple]]:
        if self.state.batch_index >= self.batches_per_epoch:
            self.state.epoch, self.state.batch_index = self.state.epoch + 1, 0
        order = np.random.default_rng(self.config.seed * 7919 + self.state.epoch).permutation(len(self.train_pairs))
        rows = order[self.state.batch_index * self.per_batch:(self.state.batch_index + 1) * self.per_batch]
        self.state.batch_index += 1
        return [self.train_pairs[i] for i in rows], [self.train_tok[i] for i in rows]

    # ---- the loop ----------------------------------------------------------------------------
    def run(self) -> TrainResult:
        self._emit_plan()
        self.session_start = time.perf_counter()
        if self.held_pairs and self.state.step == 0:
            self._evaluate(sample=False)
        self.model.train()
        while self.state.step < self.total_steps:
            if self._stop_requested():
                return self._stopped()
            started = time.perf_counter()
            pairs, tokenized = self._next()
            batch = self._batch(tokenized)
            (loss, _), grads = self.value_and_grad(self.model, *batch.arrays(), self._ref_array(pairs))
            mx.eval(loss, grads)
            loss = loss.item()
            if not math.isfinite(loss):
                reason = (f"The loss became {loss} at step {self.state.step + 1}, so training stopped. "
                          f"Try a lower learning_rate. The parent run is unchanged.")
                self.log.emit(ev.Failed(reason=reason, step=self.state.step))
                return self._result("failed", reason)
            self.optimizer.update(self.model, grads)
            mx.eval(self.model.trainable_parameters(), self.optimizer.state)
            self.state.step += 1
            self.state.trained_tokens += batch.tokens
            self.state.elapsed_s += time.perf_counter() - started
            self._emit_step(loss, batch.tokens, time.perf_counter() - started)
            step = self.state.step
            if self.held_pairs and (step % self.eval_every == 0 or step == self.total_steps):
                if self._evaluate():
                    return self._finish(early=True)
            if step % self.eval_every == 0 and step < self.total_steps:
                self._checkpoint()
        return self._finish()

    def _stop_requested(self) -> bool:
        return stop_requested(self)

    def _evaluate(self, sample: bool = True) -> bool:
        """Held-out preference loss and accuracy; keeps the best adapter; True when it is time to stop."""
        self.model.eval()
        losses, wins = [], 0
        for start in range(0, len(self.held_pairs), self.per_batch):
            pairs = self.held_pairs[start:start + self.per_batch]
            batch = self._batch(self.held_tok[start:start + self.per_batch])
            loss, margin = pair_loss(self.model, *batch.arrays(), self._ref_array(pairs), *self.loss_args)
            losses.append(loss.item() * len(pairs))
            wins += int((margin > 0).sum().item())
        val_loss, accuracy = sum(losses) / len(self.held_pairs), wins / len(self.held_pairs)
        s = self.state
        improved = math.isfinite(val_loss) and (
            s.best_accuracy is None or accuracy > s.best_accuracy
            or (accuracy == s.best_accuracy and val_loss < (s.best_val_loss or math.inf)))
        if improved:
            s.best_accuracy, s.best_val_loss, s.best_step, s.evals_since_best = accuracy, val_loss, s.step, 0
            save_adapters(self.run_folder.adapters_dir("best"), self.model, self.adapter_conf)
        else:
            s.evals_since_best += 1
        self.log.emit(ev.Eval(step=s.step, val_loss=round(val_loss, 5), best_val_loss=round(s.best_val_loss, 5),
                              improved=improved, preference_accuracy=round(accuracy, 4)))
        if sample:
            self._sample()
        self.model.train()
        patience = self.config.early_stopping_patience
        return bool(patience and s.evals_since_best >= patience and s.step > 0)

    def _sample(self) -> None:
        from localsft.inference.generate import SamplingSettings, stream_chat

        settings = SamplingSettings(max_tokens=self.config.sample_max_tokens)
        samples = [{"prompt": p.prompt[-1]["content"], "answer": "".join(stream_chat(self.loaded, p.prompt, settings)).strip(),
                    "reference": p.chosen} for p in self.held_pairs[: self.config.sample_prompts]]
        if samples:
            self.log.emit(ev.Sample(step=self.state.step, samples=samples))

    # ---- events, checkpoints, endings ----------------------------------------------------------
    def _emit_plan(self) -> None:
        tokens = sum(len(c[0]) + len(r[0]) - 2 for c, r in self.train_tok)
        per_token = self._time_one_step()
        self.log.emit(ev.Started(
            run=str(self.run_folder.path), model=self.loaded.path.name, precision=self.loaded.precision.describe(),
            method=f"{self.config.method} + {self.config.preference_loss}", steps=self.total_steps,
            epochs=round(self.total_steps / self.batches_per_epoch, 2), train_examples=len(self.train_pairs),
            valid_examples=len(self.held_pairs), tokens_per_epoch=tokens,
            trainable_params=trainable_count(self.model),
            est_seconds=round(per_token * tokens * self.total_steps / self.batches_per_epoch, 1),
            est_memory_mb=round(mx.get_peak_memory() / MB, 1), available_memory_mb=0.0,
            resumed_from_step=self.resumed_from))

    def _time_one_step(self) -> float:
        """Seconds per trained token of one gradient pass (not applied) on the first pairs."""
        pairs, tokenized = self.train_pairs[: self.per_batch], self.train_tok[: self.per_batch]
        batch = self._batch(tokenized)
        start = time.perf_counter()
        mx.eval(self.value_and_grad(self.model, *batch.arrays(), self._ref_array(pairs)))
        return (time.perf_counter() - start) / max(batch.tokens, 1)

    def _emit_step(self, loss: float, tokens: int, seconds: float) -> None:
        done = self.state.step - self.resumed_from
        per_step = (time.perf_counter() - self.session_start) / max(done, 1)
        self.log.emit(ev.Step(
            step=self.state.step, steps=self.total_steps,
            epoch=round(self.state.epoch + self.state.batch_index / self.batches_per_epoch, 3), loss=round(loss, 5),
            learning_rate=float(self.optimizer.learning_rate.item()), tokens_per_s=round(tokens / seconds, 1),
            trained_tokens=self.state.trained_tokens, peak_memory_mb=round(mx.get_peak_memory() / MB, 1),
            elapsed_s=round(self.state.elapsed_s, 2), eta_s=round(per_step * (self.total_steps - self.state.step), 1)))

    def _checkpoint(self) -> Path:
        return write_checkpoint(self)

    def _stopped(self) -> TrainResult:
        path = self._checkpoint()
        self.log.emit(ev.Stopped(step=self.state.step, checkpoint=str(path)))
        return self._result("stopped")

    def _finish(self, early: bool = False) -> TrainResult:
        self._checkpoint()
        s = self.state
        if not self.held_pairs:  # nothing held out: the last step is the one to use
            save_adapters(self.run_folder.adapters_dir("best"), self.model, self.adapter_conf)
        if early:
            self.log.emit(ev.EarlyStopped(step=s.step, best_step=s.best_step, best_val_loss=s.best_val_loss))
        self.log.emit(ev.Finished(step=s.step, best_val_loss=s.best_val_loss,
                                  adapters=str(self.run_folder.best_adapter()), run_dir=str(self.run_folder.path),
                                  seconds=round(s.elapsed_s, 1)))
        return self._result("early_stopped" if early else "finished")

    def _result(self, status: str, reason: str = "") -> TrainResult:
        return TrainResult(status, self.run_folder.path, self.state.step, self.state.best_val_loss, reason)
