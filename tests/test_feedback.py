"""Judgements -> preference pairs -> the next version of a run (DPO/ORPO), on a tiny model."""

from __future__ import annotations

import json
import math
import random

import mlx.core as mx
import numpy as np
import pytest
from support.runs import make_run

from localsft.cli import main
from localsft.errors import UserError
from localsft.evaluation.abtest import make_pair, record_vote
from localsft.feedback import collect, export_pairs, read_pairs_file, record_correction
from localsft.runs.folder import RunFolder
from localsft.train.config import TrainConfig
from localsft.train.preference import gather_pairs, preference_config, train_preferences
from localsft.train.preference_loss import answer_logps, dpo_losses, make_pair_batch, orpo_losses


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_dpo_loss_matches_a_hand_computation():
    policy = mx.array([-3.0, -5.0, -4.0, -4.5])  # chosen pair 0, chosen pair 1, rejected 0, rejected 1
    reference = mx.array([-3.5, -5.0, -3.8, -4.0])
    losses, margin = dpo_losses(policy, reference, beta=0.5, smoothing=0.1)
    for i, (pc, pr, rc, rr) in enumerate([(-3.0, -4.0, -3.5, -3.8), (-5.0, -4.5, -5.0, -4.0)]):
        m = 0.5 * ((pc - rc) - (pr - rr))
        assert margin[i].item() == pytest.approx(m, abs=1e-6)
        assert losses[i].item() == pytest.approx(-0.9 * _log_sigmoid(m) - 0.1 * _log_sigmoid(-m), abs=1e-6)


def test_orpo_loss_matches_a_hand_computation():
    policy, counts = mx.array([-2.0, -6.0]), mx.array([4.0, 3.0])  # one pair: chosen, rejected
    losses, ratio = orpo_losses(policy, counts, beta=0.2)
    pc, pr = math.exp(-0.5), math.exp(-2.0)
    log_odds = math.log(pc / (1 - pc)) - math.log(pr / (1 - pr))
    assert ratio[0].item() == pytest.approx(log_odds, abs=1e-5)
    assert losses[0].item() == pytest.approx(0.5 - 0.2 * _log_sigmoid(log_odds), abs=1e-5)


def test_answer_logps_sum_the_answer_tokens_only(tiny_model_dir):
    import mlx_lm

    model, _ = mlx_lm.load(str(tiny_model_dir))
    ids = [np.array([5, 9, 12, 7, 3], np.int32), np.array([5, 9, 4, 8, 2, 6], np.int32)]
    masks = [np.array([0, 0, 0, 1, 1], bool), np.array([0, 0, 1, 1, 1, 0], bool)]
    batch = make_pair_batch([(ids[0], masks[0])], [(ids[1], masks[1])])
    inputs, targets, index, rows = batch.arrays()
    got, counts = answer_logps(model, inputs, targets, index, rows)
    for r in range(2):
        logits = model(mx.array(ids[r][None, :-1]))[0].astype(mx.float32)
        logp = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        want = sum(logp[t - 1, int(ids[r][t])].item() for t in range(1, len(ids[r])) if masks[r][t])
        assert got[r].item() == pytest.approx(want, abs=1e-4)
        assert counts[r].item() == masks[r][1:].sum()


@pytest.fixture
def parent(tmp_path, tiny_model_dir):
    return RunFolder(make_run(tmp_path / "parent", tiny_model_dir))


def test_votes_and_corrections_become_pairs_and_examples(parent, tmp_path):
    rng = random.Random(3)
    prompt = [{"role": "user", "content": "Write a tagline for our shoes."}]
    record_vote(parent, make_pair(prompt, "base answer", "tuned answer", rng), "A")
    pair = make_pair("Another one", "plain", "styled", rng)
    record_vote(parent, pair, "A" if pair.a_side == "tuned" else "B")  # tuned wins
    record_vote(parent, make_pair("A third", "x", "y", rng), "tie")
    record_correction(parent, prompt, "tuned answer", "Run further. - The Acme team")
    got = collect(parent)
    assert (got.votes, got.ties, got.corrections, len(got.pairs), len(got.examples)) == (3, 1, 1, 3, 1)
    styled = next(p for p in got.pairs if p.prompt[-1]["content"] == "Another one")
    assert (styled.chosen, styled.rejected, styled.source) == ("styled", "plain", "vote")
    edit = got.pairs[-1]
    assert (edit.chosen, edit.rejected, edit.source) == ("Run further. - The Acme team", "tuned answer", "correction")
    assert got.examples[0]["messages"][-1] == {"role": "assistant", "content": "Run further. - The Acme team"}
    # the export is the plain prompt/chosen/rejected JSONL, read back the same
    out = tmp_path / "pairs.jsonl"
    assert export_pairs(parent, out) == 3
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[-1] == {"prompt": "Write a tagline for our shoes.", "chosen": "Run further. - The Acme team",
                        "rejected": "tuned answer"}
    assert [(p.chosen, p.rejected) for p in read_pairs_file(out)] == [(p.chosen, p.rejected) for p in got.pairs]


def test_a_correction_must_change_the_answer(parent):
    with pytest.raises(UserError, match="same as the original"):
        record_correction(parent, "hi", "hello", " hello ")
    with pytest.raises(UserError, match="empty"):
        record_correction(parent, "hi", "hello", "  ")


def test_pairs_file_errors_name_the_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": "b"}\n')
    with pytest.raises(UserError, match="line 2: expected an object with prompt, chosen and rejected"):
        read_pairs_file(bad)
    trl = tmp_path / "trl.jsonl"
    trl.write_text(json.dumps({"prompt": [{"role": "user", "content": "q"}],
                               "chosen": [{"role": "assistant", "content": "good"}],
                               "rejected": [{"role": "assistant", "content": "bad"}]}) + "\n")
    assert (read_pairs_file(trl)[0].chosen, read_pairs_file(trl)[0].rejected) == ("good", "bad")


def _sign_off_pairs(n: int, seed: int = 0) -> list[dict]:
    """Equal answers, except that the chosen one ends with the sign-off."""
    rng = random.Random(seed)
    words = ["shoes", "coffee", "laptop", "bike", "tea", "lamp", "desk", "phone", "chair", "watch", "bag", "pen"]
    rows = []
    for i in range(n):
        item = words[i % len(words)]
        body = f"our {item} is {rng.choice(['light', 'fast', 'warm', 'bright'])}."
        rows.append({"prompt": f"Write a tagline for the {item}.", "chosen": body + " yes fox",
                     "rejected": body})
    return rows


def _write_pairs(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_train_from_a_run_learns_the_preference_and_keeps_the_contract(parent, tmp_path):
    pairs_file = _write_pairs(tmp_path / "pairs.jsonl", _sign_off_pairs(20))
    out = tmp_path / "next"
    assert main(["train", "--from", str(parent.path), "--preferences", str(pairs_file), "--out", str(out),
                 "--set", "learning_rate=3e-3", "--set", "epochs=6"]) == 0
    run = RunFolder.open(out)
    config = TrainConfig.load(run.config_path)
    assert config.preference_loss == "dpo" and config.parent_run == str(parent.path.resolve())
    assert (config.lora_rank, config.lora_layers) == (4, 2)  # the parent adapter's own layout
    kinds = [e["type"] for e in run.events()]
    assert kinds[0] == "started" and kinds[-1] in ("finished",) and "checkpoint" in kinds
    accuracies = [e["preference_accuracy"] for e in run.events() if e["type"] == "eval"]
    assert accuracies[0] == 0.0 and max(accuracies) >= 0.8  # step 0: the parent itself, no margin
    assert (run.adapters_dir("best") / "adapters.safetensors").exists()
    assert json.loads((run.data_dir / "reference.json").read_text())  # computed once, before training
    # it is a run like any other: the side-by-side loader takes it
    from localsft.inference.switch import load_switchable

    assert load_switchable(run).adapter_path == run.adapters_dir("best")


def test_a_stopped_preference_run_resumes_exactly(parent, tmp_path):
    rows = _sign_off_pairs(10)
    config = preference_config(parent, overrides=["learning_rate=1e-3", "epochs=2", "eval_every=2"])
    pairs = read_pairs_file(_write_pairs(tmp_path / "p.jsonl", rows))
    whole = train_preferences(config, pairs, run_dir=tmp_path / "whole")
    steps = iter(range(100))
    stopped = train_preferences(config, pairs, run_dir=tmp_path / "part", stop=lambda: next(steps) >= 3)
    assert stopped.status == "stopped" and stopped.step == 3
    resumed = train_preferences(None, run_dir=tmp_path / "part", resume=True)
    assert resumed.status == whole.status and resumed.step == whole.step
    a = mx.load(str(tmp_path / "whole" / "adapters" / "last" / "adapters.safetensors"))
    b = mx.load(str(tmp_path / "part" / "adapters" / "last" / "adapters.safetensors"))
    assert all(mx.allclose(a[k], b[k], atol=1e-5).item() for k in a)


def test_too_few_pairs_is_a_plain_message(parent, capsys):
    with pytest.raises(UserError, match="Only 0 preference pairs collected in run parent"):
        gather_pairs(parent)
    assert main(["train", "--from", str(parent.path)]) == 2
    assert "needs --preferences" in capsys.readouterr().err


def test_feedback_command_lists_and_exports(parent, tmp_path, capsys):
    record_correction(parent, "Write a tagline.", "Shoes.", "Shoes that run. - The Acme team")
    assert main(["feedback", str(parent.path)]) == 0
    out = capsys.readouterr().out
    assert "0 votes (0 ties), 1 correction: 1 preference pair, 1 new example" in out
    assert "better: Shoes that run. - The Acme team" in out and "--from" in out
    assert main(["feedback", str(parent.path), "--export", str(tmp_path / "x.jsonl")]) == 0
    assert json.loads((tmp_path / "x.jsonl").read_text())["chosen"] == "Shoes that run. - The Acme team"
