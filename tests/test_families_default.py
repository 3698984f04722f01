"""The default model's own GGUF export in real llama.cpp: its embedded chat template and greedy answers.

A tuned run of SmolLM2-135M-Instruct (a LoRA on 8 blocks) is exported as GGUF the default way;
llama.cpp renders nothing itself here: the prompt is rendered with the chat template embedded in
the GGUF file (and with the Modelfile's TEMPLATE and SYSTEM, as Ollama would), tokenized by
llama.cpp, and decoded greedily. Tokens and answers must be MLX's (the adapter on the base).
"""

from __future__ import annotations

import re

import pytest
from support.go_template import ollama_render
from support.llama_cpp import missing_reason, run_llama_cpp
from support.runs import make_export_run as make_run

from localsft.export import export_run

pytestmark = pytest.mark.slow
QUESTIONS = ["What is the capital of France?", "Write a tagline for a bakery.", "Name a famous painter.",
             "What is two plus two?"]
TOKENS = 12


def test_default_model_gguf_answers_like_mlx_in_llama_cpp(default_model_dir, tmp_path):
    from gguf import GGUFReader
    from mlx_lm.generate import generate_step

    import mlx.core as mx

    from localsft.export.merge import load_tuned
    from localsft.inference.generate import chat_prompt
    from localsft.runs.folder import RunFolder

    if missing_reason():
        pytest.skip(missing_reason())
    run = make_run(tmp_path / "run", default_model_dir, num_layers=8, rank=8, scale=20.0, strength=0.02)
    (result,) = export_run(run, "gguf", out=tmp_path / "gguf")
    path = next(result.path.glob("*.gguf"))
    template = GGUFReader(str(path)).fields["tokenizer.chat_template"].contents()
    tuned = load_tuned(RunFolder.open(run))
    chats = [[{"role": "user", "content": q}] for q in QUESTIONS]
    texts = [tuned.tokenizer.apply_chat_template(c, chat_template=template, tokenize=False,
                                                 add_generation_prompt=True) for c in chats]
    modelfile = (result.path / "Modelfile").read_text()
    go = re.search(r'TEMPLATE """(.*?)"""', modelfile, re.S).group(1)
    system = re.search(r'SYSTEM """(.*?)"""', modelfile, re.S).group(1)
    ollama = [ollama_render(go, system, c) for c in chats]  # what Ollama's server would send llama.cpp
    ids = [chat_prompt(tuned.tokenizer, c) for c in chats]
    answer = run_llama_cpp(path, tokenize=texts + ollama, prompts=[{"tokens": p, "generate": TOKENS} for p in ids])
    # the embedded template and the Modelfile, tokenized by llama.cpp, are exactly what MLX runs
    assert answer["tokenized"] == ids + ids
    stops = set(tuned.tokenizer.eos_token_ids)
    for prompt, got in zip(ids, answer["prompts"]):
        want = []
        for token, _ in generate_step(mx.array(prompt), tuned.model, max_tokens=TOKENS):
            if int(token) in stops:
                break
            want.append(int(token))
        greedy = got["greedy"]
        greedy = greedy[:next((i for i, t in enumerate(greedy) if t in stops), len(greedy))]
        assert greedy == want
