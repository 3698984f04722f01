"""`localsft serve` with real clients: the `openai` package on loopback, and curl for the API key."""

from __future__ import annotations

import concurrent.futures
import json
import subprocess

import mlx_lm
import openai
import pytest
from mlx_lm.tuner.utils import load_adapters
from support.serve import Server, finished_run, store_model

from localsft.inference.generate import chat_prompt
from localsft.serve import create_app

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
TOKENS = 16


@pytest.fixture
def store(localsft_home, tiny_model_dir):
    model = store_model(localsft_home, tiny_model_dir)
    runs = [finished_run(localsft_home, name, model, seed) for name, seed in (("shoes", 1), ("socks", 2))]
    return model, runs


@pytest.fixture
def server_app(store):
    app = create_app()
    yield app
    app.state.engine.close()


@pytest.fixture
def server(server_app):
    with Server(server_app) as running:
        yield running


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=120)


def alone(model_dir, adapter=None, messages=QUESTION, max_tokens=TOKENS) -> str:
    """The greedy answer of the model (with the adapter) loaded alone with mlx-lm."""
    model, tokenizer = mlx_lm.load(str(model_dir))
    if adapter is not None:
        load_adapters(model, str(adapter))
    return mlx_lm.generate(model, tokenizer, chat_prompt(tokenizer, messages), max_tokens=max_tokens)


def test_models_lists_the_base_and_every_finished_run(client, store, localsft_home):
    assert [m.id for m in client.models.list().data] == ["tiny-llama", "shoes", "socks"]
    finished_run(localsft_home, "hats", store[0], seed=3)  # finished after the server started
    assert "hats" in [m.id for m in client.models.list().data]
    answer = client.chat.completions.create(model="hats", messages=QUESTION, max_tokens=4, temperature=0)
    assert answer.choices[0].message.role == "assistant"


def test_chat_answers_like_the_run_alone_streamed_or_not(client, store):
    model, runs = store
    expected = alone(model, runs[0] / "adapters" / "best")
    answer = client.chat.completions.create(model="shoes", messages=QUESTION, max_tokens=TOKENS, temperature=0)
    assert answer.choices[0].message.content == expected
    assert answer.usage.completion_tokens <= TOKENS and answer.usage.prompt_tokens > 5
    chunks = list(client.chat.completions.create(model="shoes", messages=QUESTION, max_tokens=TOKENS,
                                                 temperature=0, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == expected
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    completion = client.completions.create(model="tiny-llama", prompt="Paris is", max_tokens=8, temperature=0)
    assert completion.object == "text_completion" and completion.choices[0].finish_reason in ("stop", "length")


def test_concurrent_requests_to_the_base_and_two_runs_equal_each_model_alone(client, store, server_app):
    model, runs = store
    expected = {"tiny-llama": alone(model), "shoes": alone(model, runs[0] / "adapters" / "best"),
                "socks": alone(model, runs[1] / "adapters" / "best")}
    assert len(set(expected.values())) == 3
    asks = ["tiny-llama", "shoes", "socks"] * 3

    def ask(name: str) -> str:
        reply = client.chat.completions.create(model=name, messages=QUESTION, max_tokens=TOKENS, temperature=0)
        return reply.choices[0].message.content

    with concurrent.futures.ThreadPoolExecutor(len(asks)) as pool:
        answers = list(pool.map(ask, asks))
    assert answers == [expected[name] for name in asks]
    stats = server_app.state.engine.stats
    assert stats["largest_batch"] >= 3 and stats["mixed_steps"] > 0  # decoded together, adapters mixed


def test_a_prompt_that_starts_like_an_earlier_one_is_filled_from_there_with_the_same_answer(client, store,
                                                                                            server_app):
    model, runs = store
    system = {"role": "system", "content": "You write product copy for a shop that sells outdoor gear."}
    second = [system, {"role": "user", "content": "Name a good hiking sock."}]
    stats = server_app.state.engine.stats
    client.chat.completions.create(model="shoes", messages=[system] + QUESTION, max_tokens=4, temperature=0)
    before = stats["reused_prompt_tokens"]
    answer = client.chat.completions.create(model="shoes", messages=second, max_tokens=TOKENS, temperature=0)
    assert stats["reused_prompt_tokens"] > before  # the system turn was not filled again
    assert answer.choices[0].message.content == alone(model, runs[0] / "adapters" / "best", second)
    before = stats["reused_prompt_tokens"]  # another adapter gives other keys and values: no reuse
    answer = client.chat.completions.create(model="socks", messages=second, max_tokens=TOKENS, temperature=0)
    assert stats["reused_prompt_tokens"] == before
    assert answer.choices[0].message.content == alone(model, runs[1] / "adapters" / "best", second)


def test_stop_strings_seeds_and_bad_requests_get_openai_errors(client, server):
    full = client.chat.completions.create(model="shoes", messages=QUESTION, max_tokens=TOKENS, temperature=0)
    text = full.choices[0].message.content
    stop = text[len(text) // 2:len(text) // 2 + 2]
    cut = client.chat.completions.create(model="shoes", messages=QUESTION, max_tokens=TOKENS, temperature=0, stop=stop)
    assert cut.choices[0].message.content == text[:text.find(stop)] and cut.choices[0].finish_reason == "stop"
    seeded = [client.chat.completions.create(model="shoes", messages=QUESTION, max_tokens=TOKENS, temperature=1.0,
                                             top_p=0.9, seed=7).choices[0].message.content for _ in range(2)]
    assert seeded[0] == seeded[1]
    with pytest.raises(openai.NotFoundError, match="'nope' does not exist"):
        client.chat.completions.create(model="nope", messages=QUESTION)
    with pytest.raises(openai.BadRequestError, match="temperature must be at least 0 and at most 2"):
        client.chat.completions.create(model="shoes", messages=QUESTION, temperature=5)
    with pytest.raises(openai.BadRequestError, match="context is 512 tokens") as err:
        client.chat.completions.create(model="shoes", messages=[{"role": "user", "content": "Paris " * 400}],
                                       max_tokens=200)
    assert err.value.code == "context_length_exceeded"
    broken = curl(server.url + "/chat/completions", "-d", "{not json")
    assert broken["status"] == 400 and "not valid JSON" in broken["body"]["error"]["message"]
    assert "Traceback" not in json.dumps(broken)
    assert client.chat.completions.create(model="shoes", messages=QUESTION, max_tokens=2).choices  # still serving


def test_a_client_leaving_mid_stream_does_not_stop_the_server(client):
    stream = client.chat.completions.create(model="socks", messages=QUESTION, max_tokens=200, temperature=0, stream=True)
    next(iter(stream))
    stream.close()  # hang up after the first chunk
    answer = client.chat.completions.create(model="shoes", messages=QUESTION, max_tokens=4, temperature=0)
    assert answer.choices[0].finish_reason in ("stop", "length")


def curl(url: str, *args: str) -> dict:
    """A request with the real curl; returns the status and the JSON body."""
    out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "-H", "Content-Type: application/json", *args, url],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    body, _, status = out.rpartition("\n")
    return {"status": int(status), "body": json.loads(body) if body.strip() else None}


def test_with_an_api_key_every_request_must_send_it(store):
    app = create_app(api_key="s3cret")
    try:
        with Server(app) as running:
            url = running.url + "/models"
            assert curl(url)["status"] == 401
            wrong = curl(url, "-H", "Authorization: Bearer nope")
            assert wrong["status"] == 401 and wrong["body"]["error"]["code"] == "invalid_api_key"
            good = curl(url, "-H", "Authorization: Bearer s3cret")
            assert good["status"] == 200 and [m["id"] for m in good["body"]["data"]][0] == "tiny-llama"
    finally:
        app.state.engine.close()


def test_serving_beyond_loopback_needs_an_api_key(capsys):
    from localsft.cli import main

    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "add --api-key" in capsys.readouterr().err
