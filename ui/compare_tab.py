"""Compare: base (left) and tuned (right) answering side by side, the held-out evaluation, blind A/B votes.

The loaded model lives in this session's gr.State: one copy of the base weights with
the run's adapter switched per answer (localsft.inference.side_by_side), loaded on first use.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import gradio as gr

from localsft.runs import jobs
from localsft.errors import UserError
from localsft.inference.generate import SamplingSettings
from localsft_ui.common import finished_run_choices, plain_errors, run_dropdown

METRICS = [("loss", "validation loss (lower is better)"), ("perplexity", "perplexity (lower is better)"),
           ("exact_match", "exact match"), ("chrf", "chrF (similarity to the reference)"),
           ("format_adherence", "answers in the required format"), ("probe_accuracy", "general knowledge probes")]
VOTES = (("A", "A is better"), ("tie", "Tie"), ("B", "B is better"))


def open(name: str | None):  # noqa: A001  (the Runs tab's "Open in Compare")
    return run_dropdown(name), gr.Tabs(selected="compare")


def _loaded(session: dict | None, run: str | None, progress) -> dict:
    """This session's model for `run`, loaded when the run changes."""
    from localsft.inference.side_by_side import open_compare

    if not run:
        raise UserError("Choose a trained run first (train one, or open one from the Runs tab).")
    if session and session.get("run") == run:
        return session
    progress(0.1, desc=f"Loading the base model and the adapter of {run}…")
    chat = open_compare(jobs.find_run(run))
    return {"run": run, "chat": chat, "pair": None}


def _settings(max_tokens, temperature) -> SamplingSettings:
    return SamplingSettings(max_tokens=int(max_tokens), temperature=float(temperature))


@plain_errors
def send(message: str, run: str | None, session: dict | None, max_tokens, temperature, progress=gr.Progress()):
    """Stream both answers into the two panes."""
    if not (message or "").strip():
        raise UserError("Type a message first.")
    session = _loaded(session, run, progress)
    chat = session["chat"]
    before = {side: list(chat.history[side]) for side in chat.sides}
    user = {"role": "user", "content": message}
    answers = {"base": "", "tuned": ""}
    for answers in chat.send_pairs(message, _settings(max_tokens, temperature)):
        yield ([*before["base"], user, {"role": "assistant", "content": answers["base"]}],
               [*before["tuned"], user, {"role": "assistant", "content": answers["tuned"]}], session, "")
    yield _panes(chat) + (session, "")


def _panes(chat) -> tuple[list, list]:
    return ([m for m in chat.history["base"] if m["role"] != "system"],
            [m for m in chat.history["tuned"] if m["role"] != "system"])


def clear(session: dict | None):
    if session:
        session["chat"].reset()
    return [], [], session


# ---- held-out evaluation ----------------------------------------------------------------------
def eval_rows(report: dict) -> list[list]:
    rows = []
    for key, label in METRICS:
        base, tuned = report["base"].get(key), report["tuned"].get(key)
        if base is not None or tuned is not None:
            rows.append([label, _fmt(base), _fmt(tuned)])
    rows.append(["retention (tuned probes / base probes)", "", _fmt(report.get("retention")) or "n/a"])
    return rows


def _fmt(value) -> str:
    return "" if value is None else f"{value:.4g}"


def saved_eval(run: str | None) -> list[list]:
    """The run's eval.json as table rows, if it was evaluated before."""
    import json

    if not run:
        return []
    path = jobs.find_run(run).eval_json
    return eval_rows(json.loads(path.read_text())) if path.exists() else []


@plain_errors
def evaluate(run: str | None, session: dict | None, max_tokens, progress=gr.Progress()):
    from dataclasses import asdict

    from localsft.evaluation.evaluate import evaluate_run

    session = _loaded(session, run, progress)

    def on_event(e):
        progress(e.done / max(e.total, 1), desc=f"{e.stage}: {e.side} ({e.done}/{e.total})")

    report = evaluate_run(jobs.find_run(run), settings=SamplingSettings(max_tokens=int(max_tokens)),
                          on_event=on_event, switchable=session["chat"].switchable)
    return eval_rows(asdict(report) | {"base": asdict(report.base), "tuned": asdict(report.tuned)}), session


# ---- blind A/B --------------------------------------------------------------------------------
def _held_out_prompt(run: str) -> list[dict]:
    from localsft.evaluation.evaluate import read_examples, split_prompt

    path = jobs.find_run(run).data_dir / "test.jsonl"
    prompts = [split[0] for ex in (read_examples(path) if path.exists() else []) if (split := split_prompt(ex))]
    if not prompts:
        raise UserError(f"Run {run} has no held-out prompts (data/test.jsonl) to vote on.")
    return random.choice(prompts)


@plain_errors
def new_pair(run: str | None, session: dict | None, max_tokens, temperature, progress=gr.Progress()):
    from localsft.evaluation.abtest import new_pair as make

    session = _loaded(session, run, progress)
    prompt = _held_out_prompt(run)
    progress(0.5, desc="Both models are answering…")
    session["pair"] = make(session["chat"].switchable, prompt, _settings(max_tokens, temperature))
    pair = session["pair"]
    question = "\n\n".join(f"**{m['role']}:** {m['content']}" for m in prompt)
    return (question, pair.a, pair.b, session) + (gr.update(interactive=True),) * len(VOTES)


@plain_errors
def vote(choice: str, run: str | None, session: dict | None):
    from localsft.evaluation.abtest import record_vote, win_rate

    pair = (session or {}).get("pair")
    if pair is None:
        raise UserError("Ask for a new pair first; each pair takes one vote.")
    record_vote(jobs.find_run(run), pair, choice)
    session["pair"] = None
    rate = win_rate(jobs.find_run(run))
    return (f"Thanks. So far: {rate.describe()}.", session) + (gr.update(interactive=False),) * len(VOTES)


def win_rate_text(run: str | None) -> str:
    from localsft.evaluation.abtest import win_rate

    if not run:
        return ""
    return f"So far: {win_rate(jobs.find_run(run)).describe()}."


@plain_errors
def show_run(name: str | None):
    """Another run chosen: empty chats, its saved evaluation and votes (its model loads on first use)."""
    return [], [], None, saved_eval(name), win_rate_text(name)


def build() -> SimpleNamespace:
    with gr.Tab("Compare", id="compare"):
        session = gr.State(None)
        with gr.Row():
            run = gr.Dropdown(label="Run", choices=finished_run_choices(), elem_id="compare-run", scale=3)
            max_tokens = gr.Slider(16, 512, value=96, step=16, label="Max answer tokens", scale=2,
                                   elem_id="compare-max-tokens")
            temperature = gr.Slider(0, 1.5, value=0, step=0.1, label="Temperature (0: always the same)", scale=2)
        with gr.Row():
            base = gr.Chatbot(label="Base model", elem_id="chat-base", height=360)
            tuned = gr.Chatbot(label="Tuned model", elem_id="chat-tuned", height=360)
        with gr.Row():
            message = gr.Textbox(placeholder="Ask both models…", show_label=False, scale=5, elem_id="chat-input")
            send_btn = gr.Button("Send", variant="primary", scale=1, elem_id="chat-send")
            clear_btn = gr.Button("Clear", scale=1)
        with gr.Accordion("Held-out evaluation", open=False):
            eval_btn = gr.Button("Evaluate on the held-out examples")
            eval_table = gr.Dataframe(headers=["metric", "base", "tuned"], interactive=False, elem_id="eval-table")
        with gr.Accordion("Blind A/B test", open=True):
            gr.Markdown("Both models answer a held-out prompt; you do not know which is which. Pick the better one.")
            pair_btn = gr.Button("New pair", elem_id="ab-new")
            question = gr.Markdown()
            with gr.Row():
                answer_a = gr.Textbox(label="Answer A", lines=5, interactive=False, elem_id="ab-a")
                answer_b = gr.Textbox(label="Answer B", lines=5, interactive=False, elem_id="ab-b")
            with gr.Row():
                buttons = {c: gr.Button(label, interactive=False, elem_id=f"vote-{c.lower()}") for c, label in VOTES}
            tally = gr.Markdown(elem_id="ab-tally")

    # Generation runs one at a time: a model's adapter switch is set per batch, and the CPU is shared.
    one = {"concurrency_id": "generate", "concurrency_limit": 1}
    chat_out = [base, tuned, session, message]
    send_btn.click(send, [message, run, session, max_tokens, temperature], chat_out, **one)
    message.submit(send, [message, run, session, max_tokens, temperature], chat_out, **one)
    clear_btn.click(clear, session, [base, tuned, session])
    run.change(show_run, run, [base, tuned, session, eval_table, tally])
    eval_btn.click(evaluate, [run, session, max_tokens], [eval_table, session], **one)
    pair_btn.click(new_pair, [run, session, max_tokens, temperature],
                   [question, answer_a, answer_b, session, *buttons.values()], **one)
    for choice, button in buttons.items():
        button.click(lambda name, state, choice=choice: vote(choice, name, state), [run, session],
                     [tally, session, *buttons.values()])
    return SimpleNamespace(run=run, refresh=run_dropdown, open=open)
