"""A run trained under instructions (a system prompt) gets them wherever it answers a chat that
brings none: Compare, `localsft chat`, the API, fill, and the GGUF export's Modelfile and card.

Without them a tuned model answers a plain request as a general one (replay trains general
requests without the task's instructions), so a glossary run asked "Cold email" in Compare
looked untrained."""

from __future__ import annotations

import json

import openai
import pytest
from support.runs import make_export_run, make_run
from support.serve import Server, finished_run, store_model

from localsft.inference.generate import chat_prompt
from localsft.runs.folder import RunFolder

GLOSSARY = "Write the glossary entry for this term."


def test_a_run_knows_the_instructions_every_example_began_with(tiny_model_dir, tmp_path):
    told = RunFolder(make_run(tmp_path / "told", tiny_model_dir, system_prompt=GLOSSARY))
    plain = RunFolder(make_run(tmp_path / "plain", tiny_model_dir))
    assert told.instructions() == GLOSSARY and plain.instructions() is None
    rows = (told.data_dir / "train.jsonl").read_text().splitlines()
    mixed = json.loads(rows[0])
    mixed["messages"][0]["content"] = "Answer briefly."  # one row with other instructions: none shared
    (told.data_dir / "train.jsonl").write_text("\n".join([json.dumps(mixed), *rows[1:]]) + "\n")
    assert told.instructions() is None


def test_compare_and_chat_begin_with_the_runs_instructions(tiny_model_dir, tmp_path):
    from localsft.inference.side_by_side import open_compare

    run = make_run(tmp_path / "run", tiny_model_dir, system_prompt=GLOSSARY)
    chat = open_compare(run)
    list(chat.send("Cold email"))
    assert [m["role"] for m in chat.history["tuned"]] == ["system", "user", "assistant"]
    assert chat.history["base"][0] == {"role": "system", "content": GLOSSARY}  # both sides get the same turn
    chat = open_compare(run, system="")  # `localsft chat RUN --system ""`: none
    list(chat.send("Cold email"))
    assert [m["role"] for m in chat.history["tuned"]] == ["user", "assistant"]


def test_the_compare_tab_says_which_instructions_go_with_every_message(tiny_model_dir, localsft_home):
    from localsft_ui.compare_tab import instructions_line

    finished_run(localsft_home, "glossary", tiny_model_dir, 1, system_prompt=GLOSSARY)
    finished_run(localsft_home, "plain", tiny_model_dir, 2)
    assert GLOSSARY in instructions_line("glossary")
    assert instructions_line("plain") == ""


def test_the_api_adds_the_instructions_to_a_chat_without_a_system_message(tiny_model_dir, localsft_home):
    from localsft.serve import create_app

    model = store_model(localsft_home, tiny_model_dir)
    finished_run(localsft_home, "glossary", model, 1, system_prompt=GLOSSARY)
    app = create_app()
    try:
        with Server(app) as server:
            client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=120)

            def prompt_tokens(model_id, messages):
                reply = client.chat.completions.create(model=model_id, messages=messages, max_tokens=2, temperature=0)
                return reply.usage.prompt_tokens

            from localsft.models.loading import load_model

            tokenizer = load_model(str(model)).tokenizer
            question = [{"role": "user", "content": "Cold email"}]
            told = [{"role": "system", "content": GLOSSARY}, *question]
            own = [{"role": "system", "content": "Answer briefly."}, *question]
            assert prompt_tokens("glossary", question) == len(chat_prompt(tokenizer, told))
            assert prompt_tokens("glossary", own) == len(chat_prompt(tokenizer, own))  # theirs kept
            assert prompt_tokens(model.name, question) == len(chat_prompt(tokenizer, question))
    finally:
        app.state.engine.close()


def test_the_gguf_modelfile_and_card_carry_the_instructions(tiny_model_dir, tmp_path):
    from localsft.export import export_run

    run = make_export_run(tmp_path / "run", tiny_model_dir, system_prompt=GLOSSARY)
    (result,) = export_run(run, "gguf")
    assert f'SYSTEM """{GLOSSARY}"""' in (result.path / "Modelfile").read_text()
    card = (result.path / "README.md").read_text()
    assert "send them as the system message" in card and GLOSSARY in card
