"""Batching, packing and the loss: packed examples get exactly the loss they get alone."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from localsft.errors import UserError
from localsft.train.batching import Example, make_batch, plan_batches, width_bucket
from localsft.train.config import TrainConfig
from localsft.train.loss import hidden_states, loss_sum, token_losses


def _examples(lengths, seed=0, vocab=300):
    rng = np.random.default_rng(seed)
    out = []
    for n in lengths:
        mask = np.zeros(n, bool)
        mask[n // 2:] = True  # second half is the "answer"
        out.append(Example(rng.integers(3, vocab, n).astype(np.int32), mask))
    return out


def _per_example_loss(model, examples, rows, packed):
    batch = make_batch(examples, rows, packed, pack_width=64)
    losses = token_losses(model, mx.array(batch.inputs), mx.array(batch.targets),
                          mx.array(batch.segments) if packed else None, mx.array(batch.loss_index))
    losses = np.array(losses)[: batch.loss_tokens]
    out, start = [], 0
    for row in rows:
        for i in row:
            out.append(losses[start:start + examples[i].loss_tokens].sum())
            start += examples[i].loss_tokens
    return out


def test_packed_examples_get_the_loss_they_get_alone(tiny_model_dir):
    import mlx_lm

    model, _ = mlx_lm.load(str(tiny_model_dir))
    examples = _examples([7, 20, 13, 30, 5, 100])  # the 136-wide row spans several attention blocks
    packed = _per_example_loss(model, examples, [[0, 1, 2, 5], [3, 4]], packed=True)
    alone = [_per_example_loss(model, examples, [[i]], packed=False)[0] for i in (0, 1, 2, 5, 3, 4)]
    np.testing.assert_allclose(packed, alone, atol=1e-4, rtol=0)
    assert min(alone) > 0


@pytest.mark.parametrize("packed", [True, False])
def test_validation_takes_fewer_larger_batches_and_scores_the_same(tiny_model_dir, monkeypatch, packed):
    import mlx_lm

    from localsft.train import batching

    model, _ = mlx_lm.load(str(tiny_model_dir))
    examples = _examples([7, 20, 13, 30, 5, 60, 9, 40, 22, 11])
    config = TrainConfig(batch_tokens=64, pack_width=64) if packed else TrainConfig(batch_size=2)

    def scored(batches):
        sums = [loss_sum(model, mx.array(b.inputs), mx.array(b.targets),
                         mx.array(b.segments) if b.segments is not None else None,
                         mx.array(b.loss_index), mx.array(b.loss_weight)) for b in batches]
        return sum(total.item() for total, _ in sums), sum(count.item() for _, count in sums)

    larger = batching.eval_batches(examples, config)
    monkeypatch.setattr(batching, "EVAL_BATCH_FACTOR", 1)
    training_size = batching.eval_batches(examples, config)
    assert len(larger) < len(training_size)
    assert max(b.inputs.shape[0] for b in larger) > max(b.inputs.shape[0] for b in training_size)
    (total, count), (total_again, count_again) = scored(larger), scored(training_size)
    assert count == count_again == sum(e.loss_tokens for e in examples)
    assert total == pytest.approx(total_again, rel=1e-5)


@pytest.mark.parametrize("packed", [True, False])
def test_attention_in_query_blocks_equals_one_block(tiny_model_dir, packed):
    """Chunked causal attention (what training uses) gives the same states and gradients."""
    import mlx_lm
    from mlx.utils import tree_flatten

    from localsft.train.setup import apply_method

    model, _ = mlx_lm.load(str(tiny_model_dir))
    apply_method(model, TrainConfig(lora_layers=-1))
    examples = _examples([90, 40, 70, 150])
    batch = make_batch(examples, [[0, 1, 2], [3]], packed=packed, pack_width=64)
    inputs = mx.array(batch.inputs)
    segments = mx.array(batch.segments) if packed else None
    direction = mx.random.normal((*batch.inputs.shape, model.args.hidden_size), key=mx.random.key(0))

    def loss(model, chunk):  # a random projection: every attention output matters
        return (hidden_states(model, inputs, segments, chunk=chunk) * direction).mean()

    outputs = {}
    for chunk in (0, 16, 50):
        value, grads = nn.value_and_grad(model, lambda m: loss(m, chunk))(model)
        outputs[chunk] = (value.item(), dict(tree_flatten(grads)))
    assert batch.inputs.shape[1] == 224  # wider than the blocks: several blocks per row
    for chunk in (16, 50):
        assert abs(outputs[chunk][0] - outputs[0][0]) < 1e-5
        for name, grad in outputs[0][1].items():
            np.testing.assert_allclose(np.array(outputs[chunk][1][name]), np.array(grad), atol=1e-5)
    assert mx.fast.scaled_dot_product_attention.__name__ != "_causal_sdpa"  # MLX's own again


def test_all_masked_batch_gives_zero_loss_and_finite_gradients(tiny_model_dir):
    import mlx_lm

    model, _ = mlx_lm.load(str(tiny_model_dir))
    batch = make_batch(_examples([12, 9]), [[0, 1]], packed=True, pack_width=32)
    weight = mx.zeros(len(batch.loss_index))
    args = (mx.array(batch.inputs), mx.array(batch.targets), mx.array(batch.segments),
            mx.array(batch.loss_index), weight)
    (total, count), grads = nn.value_and_grad(model, loss_sum)(model, *args)
    loss = total / mx.maximum(count, 1.0)
    assert loss.item() == 0.0
    from mlx.utils import tree_flatten
    assert all(bool(mx.all(mx.isfinite(g)).item()) for _, g in tree_flatten(grads))


def test_packing_places_every_example_once_in_bucketed_rows():
    lengths = [5, 250, 17, 60, 3, 300, 90, 44, 128, 700] * 7
    examples = _examples(lengths)
    plan = plan_batches(examples, batch_tokens=1024, pack_width=256, batch_size=None,
                        rng=np.random.default_rng(1))
    seen = sorted(i for batch in plan for row in batch for i in row)
    assert seen == list(range(len(examples)))
    shapes = set()
    for rows in plan:
        batch = make_batch(examples, rows, packed=True, pack_width=256)
        assert batch.inputs.shape[0] * batch.inputs.shape[1] <= 1024 or batch.inputs.shape[0] == 1
        assert batch.tokens == sum(examples[i].width for row in rows for i in row)
        shapes.add(batch.shape)
    padding = 1 - sum(e.width for e in examples) / sum(
        make_batch(examples, rows, True, 256).inputs.size for rows in plan)
    assert padding < 0.2, padding
    assert len(shapes) <= 12  # few shapes: the compiled step is rarely retraced


def test_count_batching_groups_shuffled_examples_like_mlx_lm():
    lengths = [5, 300, 6, 290, 7, 310, 8, 305] * 4
    examples = _examples(lengths)
    plan = plan_batches(examples, 0, None, batch_size=2, rng=np.random.default_rng(0))
    assert sorted(i for rows in plan for row in rows for i in row) == list(range(len(examples)))
    assert all(len(rows) == 2 and all(len(row) == 1 for row in rows) for rows in plan)
    # not sorted by length: some batches mix a short and a long example
    assert any(max(lengths[r[0]] for r in rows) > 100 > min(lengths[r[0]] for r in rows) for rows in plan)
    batch = make_batch(examples, plan[0], packed=False)
    assert batch.inputs.shape[1] == width_bucket(max(lengths[r[0]] - 1 for r in plan[0]))
    # evaluation (no rng) sorts by length, which only saves padding
    fixed = plan_batches(examples, 0, None, batch_size=2, rng=None)
    assert [lengths[r[0]] for rows in fixed for r in rows] == sorted(lengths)


def test_width_buckets_pad_to_multiples_of_32_up_to_512():
    assert [width_bucket(n) for n in (1, 16, 17, 64, 65, 300, 512, 513, 2049)] == [16, 16, 32, 64, 96, 320, 512, 640, 2560]


def test_config_reads_overrides_and_rejects_unknown_keys():
    config = TrainConfig().with_overrides(["learning_rate=1e-4", "lora_keys=[self_attn.q_proj]", "iters=5"])
    assert config.learning_rate == 1e-4 and config.lora_keys == ["self_attn.q_proj"] and config.iters == 5
    with pytest.raises(UserError, match="lerning_rate"):
        TrainConfig().with_overrides(["lerning_rate=1"])
    with pytest.raises(UserError, match="method"):
        TrainConfig(method="qlora")
