"""Compare a model as another library loads it (transformers on torch CPU) with MLX's adapter-on-base."""

from __future__ import annotations

import numpy as np

from localsft.export.check import Probe, probe_logits
from localsft.export.merge import load_tuned
from localsft.runs.folder import RunFolder
from support.runs import HELD_OUT


def mlx_reference(run_dir) -> tuple[list[list[int]], list[np.ndarray]]:
    """Token ids and adapter-on-base logits (MLX) for the HELD_OUT chats."""
    tuned = load_tuned(RunFolder.open(run_dir))
    ids = [Probe(m[:1], m[1]["content"]).ids(tuned.tokenizer) for m in HELD_OUT]
    return ids, [np.array(x) for x in probe_logits(tuned.model, ids)]


def assert_same_logits(model, ids, reference, tolerance: float) -> None:
    """A torch model gives MLX's logits (within `tolerance`) and the same top-1 token everywhere."""
    import torch

    with torch.no_grad():
        for seq, want in zip(ids, reference):
            got = model(torch.tensor([seq])).logits[0].float().numpy()
            assert np.abs(got - want).max() < tolerance
            assert (got.argmax(-1) == want.argmax(-1)).all()


def assert_same_tokens(folder, ids):
    """The tokenizer in `folder` (transformers, offline) tokenizes the HELD_OUT chats as MLX did; returns it."""
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    for messages, want in zip(HELD_OUT, ids):
        prompt = tokenizer.apply_chat_template(messages[:1], add_generation_prompt=True, tokenize=False)
        got = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        got += tokenizer(messages[1]["content"], add_special_tokens=False)["input_ids"]
        assert got == want
    return tokenizer
