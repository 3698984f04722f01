"""The families people use (Llama 3, Qwen 2.5, Qwen 3, Gemma 2, Gemma 3, Mistral, Phi-3), end to end.

Per family, once (module-scoped): a tiny random model built by transformers with a tokenizer of
the family's kind (tests/support/families.py), added through `models add`, trained a few
steps by localsft's trainer. Then: MLX runs it like transformers does, side by side and eval
work, every export is read back by its real consumer (transformers + peft on torch CPU, real
llama.cpp for GGUF) and matches MLX's adapter-on-base logits, and the Ollama Modelfile renders
exactly the conversation the model was trained on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from support.families import FAMILIES, build_family_model, make_chat_data
from support.go_template import ollama_render
from support.llama_cpp import missing_reason, run_llama_cpp

from localsft.export import export_run
from localsft.export.check import Probe, probe_logits
from localsft.export.merge import load_tuned
from localsft.runs.folder import RunFolder

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

CHATS = [
    [{"role": "user", "content": "What is the capital of France?"},
     {"role": "assistant", "content": "Paris is the capital of France."}],
    [{"role": "system", "content": "Answer briefly."},
     {"role": "user", "content": "Question: what is two plus two?"},
     {"role": "assistant", "content": "Answer: four."}],
]
GREEDY_TOKENS = 8
QUESTIONS = ["What is the capital of France?", "fox dog Paris shoes"]
ANSWER_TOKENS = 16


@dataclass
class Prepared:
    family: object
    model_dir: Path  # the model as added to the store
    run: Path
    ids: list[list[int]]  # held-out chats, as the run's tokenizer renders them
    reference: list[np.ndarray]  # adapter-on-base logits in MLX (fp32)
    home: Path  # the localsft home holding the model and the run


def _chats(family) -> list[list[dict]]:
    """The held-out chats the family's template accepts (Gemma 2 has no system role)."""
    return [c for c in CHATS if family.name != "gemma2" or c[0]["role"] != "system"]


@pytest.fixture(scope="module", params=[f.name for f in FAMILIES])
def prepared(request, tmp_path_factory) -> Prepared:
    from localsft.models.store import add_model
    from localsft.train import TrainConfig, train

    family = next(f for f in FAMILIES if f.name == request.param)
    root = tmp_path_factory.mktemp(family.name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOCALSFT_HOME", str(root / "home"))
        source = build_family_model(family, root / "hf")
        info = add_model(str(source), name=f"tiny-{family.name}")
        # one short answer to learn: 40 steps teach every family to give it and end its turn
        data = make_chat_data(root / "data", answer="Yes, Paris.")
        config = TrainConfig(model=str(info.path), data=str(data), iters=40, lora_rank=8, precision="float32",
                             batch_tokens=256, pack_width=128, max_seq_len=128, learning_rate=5e-3,
                             sample_prompts=0, eval_every=8, early_stopping_patience=0, lora_alpha=16.0,
                             replay=0.0, warmup_ratio=0.05)
        # in the store, so `serve` lists it; named after the family (a name with "phi3" in it
        # changes how llama.cpp reads the vocabulary: see localsft.export.gguf.file_name)
        run = root / "home" / "runs" / family.name
        train(config, run)
    (run / "data" / "test.jsonl").write_text("".join(json.dumps({"messages": c}) + "\n" for c in _chats(family)))
    tuned = load_tuned(RunFolder.open(run))
    ids = [Probe(c[:-1], c[-1]["content"]).ids(tuned.tokenizer) for c in _chats(family)]
    reference = [np.array(x) for x in probe_logits(tuned.model, ids)]
    return Prepared(family, info.path, run, ids, reference, root / "home")


def _torch_logits(model, ids: list[list[int]]) -> list[np.ndarray]:
    with torch.no_grad():
        return [model(torch.tensor([seq])).logits[0].float().numpy() for seq in ids]


def _assert_close(got: list[np.ndarray], want: list[np.ndarray], tolerance: float) -> None:
    for g, w in zip(got, want):
        assert g.shape == w.shape
        assert np.abs(g - w).max() < tolerance
        assert (g.argmax(-1) == w.argmax(-1)).mean() >= 0.95  # random tiny models have near ties


def test_added_model_runs_in_mlx_as_in_transformers(prepared):
    from localsft.export.layout import end_of_turn_ids
    from localsft.models.loading import load_model
    from localsft.models.store import model_info

    assert model_info(prepared.model_dir).architecture == prepared.family.model_type
    loaded = load_model(str(prepared.model_dir), precision="float32")
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(prepared.model_dir), dtype=torch.float32).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(prepared.model_dir))
    messages = _chats(prepared.family)[0][:-1]
    ids = hf_tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    assert loaded.tokenizer.apply_chat_template(messages, add_generation_prompt=True) == list(ids)
    got = [np.array(x) for x in probe_logits(loaded.model, [list(ids)])]
    _assert_close(got, _torch_logits(hf, [list(ids)]), 1e-3)
    eos = loaded.tokenizer.get_vocab()[prepared.family.eos]
    assert eos in end_of_turn_ids(loaded.tokenizer, loaded.config)


def test_trained_run_compares_side_by_side_and_evaluates(prepared):
    from localsft.evaluation.evaluate import evaluate_run
    from localsft.inference.generate import SamplingSettings
    from localsft.inference.side_by_side import answer_sides
    from localsft.inference.switch import load_switchable

    assert (prepared.run / "adapters" / "best" / "adapters.safetensors").exists()
    switchable = load_switchable(prepared.run)
    settings = SamplingSettings(max_tokens=6, temperature=0.0)
    answers = answer_sides(switchable, _chats(prepared.family)[0][:-1], settings)
    assert set(answers) == {"base", "tuned"}
    report = evaluate_run(prepared.run, settings=settings, probes=False, switchable=switchable).to_dict()
    assert report["examples"] == len(_chats(prepared.family))
    assert report["base"]["loss"] != report["tuned"]["loss"]  # the adapter changed the model


def test_exports_read_back_by_transformers_and_peft_match_mlx(prepared, tmp_path):
    from peft import PeftModel

    results = {r.fmt: r for r in export_run(prepared.run, "adapter,peft,mlx,hf", out=tmp_path, dtype="float32")}
    assert all(r.check.passed for r in results.values()), [r.check.summary() for r in results.values()]
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(results["hf"].path), local_files_only=True).eval()
    _assert_close(_torch_logits(hf, prepared.ids), prepared.reference, 2e-3)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(results["hf"].path), local_files_only=True)
    eos = tokenizer.convert_tokens_to_ids(prepared.family.eos)
    generation = json.loads((results["hf"].path / "generation_config.json").read_text())
    assert eos in (generation["eos_token_id"] if isinstance(generation["eos_token_id"], list)
                   else [generation["eos_token_id"]])
    base = transformers.AutoModelForCausalLM.from_pretrained(str(prepared.model_dir), dtype=torch.float32)
    peft = PeftModel.from_pretrained(base, str(results["peft"].path)).eval()
    _assert_close(_torch_logits(peft, prepared.ids), prepared.reference, 2e-3)


def _llama_cpp_tokens(tokenizer, text: str) -> list[int]:
    """What llama.cpp makes of a rendered chat: the tokenizer's own ids, except that a SentencePiece
    vocabulary with a leading space ("▁" before plain words) gets it after every special token too
    (llama.cpp's rule, the same for files from its own converter)."""
    ids = list(tokenizer.encode(text, add_special_tokens=False))
    space = tokenizer.get_vocab().get("▁")
    if space is None or not tokenizer.convert_ids_to_tokens(tokenizer.encode("a", add_special_tokens=False))[0] \
            .startswith("▁"):
        return ids  # no leading-space rule (byte-level BPE, Gemma)
    special = set(tokenizer.added_tokens_encoder.values())
    out = []
    for i, token in enumerate(ids):
        out.append(token)
        if token in special and i + 1 < len(ids) and ids[i + 1] not in special:
            out.append(space)
    return out


def _mlx_greedy(tuned, ids: list[int], count: int) -> list[int]:
    """MLX's greedy answer (adapter on base), up to the family's end-of-turn token (llama.cpp stops there too)."""
    import mlx.core as mx
    from mlx_lm.generate import generate_step

    from localsft.export.layout import end_of_turn_ids

    stops, out = set(end_of_turn_ids(tuned.tokenizer, tuned.base_config)), []
    for token, _ in generate_step(mx.array(ids), tuned.model, max_tokens=count):
        if int(token) in stops:
            break
        out.append(int(token))
    return out


def test_gguf_export_runs_in_real_llama_cpp_like_mlx(prepared, tmp_path):
    """Every family's f32 GGUF: llama.cpp tokenizes the chat, scores it and answers greedily like MLX."""
    from gguf import GGUFReader

    (result,) = export_run(prepared.run, "gguf", out=tmp_path, dtype="float32")
    assert result.check.passed, result.check.summary()
    name = GGUFReader(str(result.path / "model-f32.gguf")).fields["general.name"].contents()
    # the run is named after its family; the tiny Phi-3 lacks <|endoftext|>, which llama.cpp's Phi-3 rule needs
    assert name == ("Phi 3" if prepared.family.name == "phi3" else prepared.family.name)
    if missing_reason():
        pytest.skip(missing_reason())
    tuned = load_tuned(RunFolder.open(prepared.run))
    prompts = [Probe(c[:-1], "").ids(tuned.tokenizer) for c in _chats(prepared.family)]
    texts = [tuned.tokenizer.apply_chat_template(c[:-1], tokenize=False, add_generation_prompt=True)
             for c in _chats(prepared.family)]
    answer = run_llama_cpp(result.path / "model-f32.gguf", tokenize=texts,
                           prompts=[{"tokens": ids, "logits": True} for ids in prepared.ids]
                           + [{"tokens": ids, "generate": GREEDY_TOKENS} for ids in prompts])
    for text, ids in zip(texts, answer["tokenized"]):
        assert ids == _llama_cpp_tokens(tuned.tokenizer, text)
    got = [np.array(p["logits"], dtype=np.float32) for p in answer["prompts"][:len(prepared.ids)]]
    scale = max(np.abs(r).max() for r in prepared.reference)
    _assert_close(got, prepared.reference, 1e-2 * max(scale, 1.0))  # llama.cpp keeps its KV cache in f16
    greedy = [p["greedy"] for p in answer["prompts"][len(prepared.ids):]]
    assert greedy == [_mlx_greedy(tuned, ids, GREEDY_TOKENS) for ids in prompts]


def _alone(prepared, question: str, adapter: Path | None = None) -> tuple[str, int | None]:
    """The greedy answer of the base (with the adapter) loaded alone with mlx-lm, and the token that ended it
    (None when it ran to ANSWER_TOKENS)."""
    import mlx.core as mx
    import mlx_lm
    from mlx_lm.generate import generate_step
    from mlx_lm.tuner.utils import load_adapters

    from localsft.inference.generate import chat_prompt

    model, tokenizer = mlx_lm.load(str(prepared.model_dir))
    if adapter is not None:
        load_adapters(model, str(adapter))
    stops = set(tokenizer.eos_token_ids) | {tokenizer.convert_tokens_to_ids(prepared.family.eos)}
    detokenizer = tokenizer.detokenizer
    detokenizer.reset()
    prompt = chat_prompt(tokenizer, [{"role": "user", "content": question}])
    for token, _ in generate_step(mx.array(prompt), model, max_tokens=ANSWER_TOKENS):
        if int(token) in stops:
            detokenizer.finalize()
            return detokenizer.text, int(token)
        detokenizer.add_token(int(token))
    detokenizer.finalize()
    return detokenizer.text, None


def test_fill_and_serve_answer_like_the_model_alone_up_to_the_end_of_turn(prepared, tmp_path, monkeypatch, capsys):
    """`localsft fill` and `localsft serve` (OpenAI client, one server per family) give the run's and the
    base's greedy answers as each model alone gives them, and the run's answer ends at the family's
    end-of-turn token."""
    import csv

    import openai
    from support.serve import Server

    from localsft.cli import main
    from localsft.fill.output import printable
    from localsft.serve import create_app

    monkeypatch.setenv("LOCALSFT_HOME", str(prepared.home))
    eot = load_tuned(RunFolder.open(prepared.run)).tokenizer.get_vocab()[prepared.family.eos]
    tuned = {q: _alone(prepared, q, prepared.run / "adapters" / "best") for q in QUESTIONS}
    base = {q: _alone(prepared, q) for q in QUESTIONS}
    assert [end for _, end in tuned.values()] == [eot] * len(QUESTIONS)  # the run learnt to end its turn

    data, out = tmp_path / "in.csv", tmp_path / "out.csv"
    data.write_text("prompt\n" + "".join(f"{q}\n" for q in QUESTIONS))
    assert main(["fill", str(prepared.run), "--data", str(data), "--with-base", "--max-tokens",
                 str(ANSWER_TOKENS), "--out", str(out)]) == 0
    with open(out, newline="", encoding="utf-8-sig") as fh:
        header, *rows = list(csv.reader(fh))
    assert header == ["prompt", "answer", "base answer"]
    assert rows == [[q, printable(tuned[q][0]).strip(), printable(base[q][0]).strip()] for q in QUESTIONS]

    app = create_app()
    try:
        with Server(app) as server:
            client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=120)
            models = [m.id for m in client.models.list().data]
            base_id = f"tiny-{prepared.family.name}"
            run_id = next(m for m in models if m != base_id)
            for q in QUESTIONS:
                for model, (text, end) in ((run_id, tuned[q]), (base_id, base[q])):
                    answer = client.chat.completions.create(model=model, messages=[{"role": "user", "content": q}],
                                                            max_tokens=ANSWER_TOKENS, temperature=0)
                    assert answer.choices[0].message.content == text, (model, q)
                    assert answer.choices[0].finish_reason == ("length" if end is None else "stop")
    finally:
        app.state.engine.close()


def _conversations(family) -> list[list[dict]]:
    user, answer = {"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"}
    again = {"role": "user", "content": "And now?"}
    chats = [[user], [user, answer, again], [user, answer, again, answer, again]]
    if family.name != "gemma2":
        system = {"role": "system", "content": "You write taglines."}
        chats += [[system, user], [system, user, answer, again]]
    return chats


@pytest.mark.parametrize("family", FAMILIES, ids=[f.name for f in FAMILIES])
def test_ollama_modelfile_renders_the_trained_conversation(family, tmp_path):
    """Ollama's rendering of the Modelfile TEMPLATE/SYSTEM equals the chat template's, turn for turn."""
    import re
    from types import SimpleNamespace

    from mlx_lm.utils import load_tokenizer

    from localsft.export.layout import adds_bos
    from localsft.export.ollama import modelfile_text

    folder = build_family_model(family, tmp_path / family.name)
    config = json.loads((folder / "config.json").read_text())
    tokenizer = load_tokenizer(folder, eos_token_ids=config.get("eos_token_id"))
    tuned = SimpleNamespace(tokenizer=tokenizer, base_config=config, instructions=None)
    text = modelfile_text(tuned, "model.gguf")
    template = re.search(r'TEMPLATE """(.*?)"""', text, re.S)
    assert template, text
    system = re.search(r'SYSTEM """(.*?)"""', text, re.S)
    assert f'PARAMETER stop "{family.eos}"' in text
    bos = family.bos if adds_bos(tuned) else ""  # llama.cpp adds it while tokenizing
    for chat in _conversations(family):
        want = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        got = ollama_render(template.group(1), system.group(1) if system else None, chat)
        assert bos + got == want, chat
