"""Memory plan per family and size: what LoRA on a 4-bit base needs on a Mac, and refusals with the number.

The configs are the published config.json figures of each model (hidden size, blocks, MLP
width, heads, KV heads, head size, vocabulary, tied embeddings); the parameter counts the
plan is built on must match the published sizes.
"""

from __future__ import annotations

import pytest
from support.families import make_chat_data

from localsft.cli import main
from localsft.models.memory import GIB, count_parameters, fits_message, plan_memory

TINY_SETTINGS = ["--set", "max_seq_len=128", "--set", "batch_tokens=256", "--set", "sample_prompts=0"]


def _config(hidden, layers, inter, heads, kv, vocab, tied, head_dim=None):
    return {"hidden_size": hidden, "num_hidden_layers": layers, "intermediate_size": inter,
            "num_attention_heads": heads, "num_key_value_heads": kv, "vocab_size": vocab,
            "tie_word_embeddings": tied, **({"head_dim": head_dim} if head_dim else {})}


# name: (config, published parameters in billions)
MODELS = {
    "Qwen2.5-0.5B-Instruct": (_config(896, 24, 4864, 14, 2, 151936, True), 0.494),
    "Llama-3.2-1B-Instruct": (_config(2048, 16, 8192, 32, 8, 128256, True), 1.24),
    "gemma-3-1b-it": (_config(1152, 26, 6912, 4, 1, 262144, True, 256), 1.0),
    "gemma-2-2b-it": (_config(2304, 26, 9216, 8, 4, 256000, True, 256), 2.61),
    "Llama-3.2-3B-Instruct": (_config(3072, 28, 8192, 24, 8, 128256, True), 3.21),
    "Phi-3.5-mini-instruct": (_config(3072, 32, 8192, 32, 32, 32064, False), 3.82),
    "Qwen3-4B": (_config(2560, 36, 9728, 32, 8, 151936, True, 128), 4.02),
    "Mistral-7B-Instruct-v0.3": (_config(4096, 32, 14336, 32, 8, 32768, False), 7.25),
    "Llama-3.1-8B-Instruct": (_config(4096, 32, 14336, 32, 8, 128256, False), 8.03),
    "Qwen3-8B": (_config(4096, 36, 12288, 32, 8, 151936, False, 128), 8.19),
}


@pytest.mark.parametrize("name", MODELS)
def test_plan_counts_the_published_parameters_and_grows_with_the_batch(name):
    config, billions = MODELS[name]
    assert count_parameters(config) / 1e9 == pytest.approx(billions, rel=0.03)
    small, large = plan_memory(config, batch_tokens=512), plan_memory(config, batch_tokens=4096)
    assert small.weights == large.weights and large.activations == 8 * small.activations
    assert small.weights == pytest.approx(count_parameters(config) * 4.5 / 8)
    assert plan_memory(config, grad_checkpoint=True).activations < small.activations * 2


def test_an_8b_model_is_refused_on_an_8_gb_mac_with_the_numbers_and_fits_on_32_gb():
    plan = plan_memory(MODELS["Llama-3.1-8B-Instruct"][0], batch_tokens=2048)
    message = fits_message(plan, 8 * GIB)
    assert message and f"{plan.total / GIB:.1f} GiB" in message and "6.0 GiB" in message
    assert fits_message(plan, 32 * GIB) is None
    assert fits_message(plan_memory(MODELS["Qwen2.5-0.5B-Instruct"][0]), 8 * GIB) is None


def test_dry_run_states_the_mac_plan_and_refuses_what_cannot_fit(tiny_model_dir, tmp_path, capsys):
    data = str(make_chat_data(tmp_path / "data", n_train=48, n_valid=8))
    assert main(["train", "--data", data, "--model", str(tiny_model_dir), "--dry-run", *TINY_SETTINGS]) == 0
    assert "On Apple Silicon with a 4-bit base: about" in capsys.readouterr().out
    code = main(["train", "--data", data, "--model", str(tiny_model_dir), "--dry-run", "--mac-memory", "0.001",
                 *TINY_SETTINGS])
    err = capsys.readouterr().err
    assert code != 0 and "This run needs about" in err and "Traceback" not in err
