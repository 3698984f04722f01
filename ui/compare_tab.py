"""Compare: base (left) and tuned (right) answering side by side, the held-out evaluation, blind A/B votes.

The loaded model lives in this session's gr.State: one copy of the base weights with
the run's adapter switched per answer (localsft.inference.side_by_side), loaded on first use.
"""

from __future__ import annotations

import html
import random
from types import SimpleNamespace

import gradio as gr

from localsft.runs import jobs
from localsft.errors import UserError
from localsft.inference.generate import SamplingSettings
from localsft_ui import feedback
from localsft_ui import verdict as verdict_ui
from localsft_ui.common import finished_run_choices, plain_errors, run_dropdown

VOTES = (("A", "A is better"), ("tie", "Tie"), ("B", "B is better"))
ONE_SHOT_NOTE = ("Each message is answered on its own: the models do not see your earlier messages, "
                 "just as when the tuned model is used in a tool. Turn on **Conversation** to chat.")
CONVERSATION_NOTE = ("**Conversation**: both models see the earlier messages of this chat and answer in "
                     "context. Turn it off to have each message answered on its own.")


def open(name: str | None):  # noqa: A001  (the Runs tab's "Open in Compare")
    return run_dropdown(name), gr.Tabs(selected="compare")


def open_run_dir(run_dir: str | None):
    """The Train tab's "Try it in Compare": its run chosen here."""
    from pathlib import Path

    return open(Path(run_dir).name if run_dir else None)


def _loaded(session: dict | None, run: str | None, progress) -> dict:
    """This session's model for `run`, loaded when the run changes."""
    from localsft.inference.side_by_side import open_compare

    if not run:
        raise UserError("Choose a trained run first (train one, or open one from the Runs tab).")
    if session and session.get("run") == run:
        return session
    progress(0.1, desc=f"Loading the base model and the adapter of {run}…")
    chat = open_compare(jobs.find_run(run))
    return {"run": run, "chat": chat, "pair": None, "panes": None}


def _settings(max_tokens, temperature) -> SamplingSettings:
    return SamplingSettings(max_tokens=int(max_tokens), temperature=float(temperature))


@plain_errors
def send(message: str, run: str | None, session: dict | None, max_tokens, temperature,
         conversation: bool = False, left: str | None = feedback.BASE, right: str | None = None,
         progress=gr.Progress()):
    """Stream both answers into the two panes (`left` and `right`: the base model or a run, see
    ui/feedback.py). Without `conversation` each message is answered on its own (the models see
    only it); the panes still list the earlier exchanges."""
    if not (message or "").strip():
        raise UserError("Type a message first.")
    session = _loaded(session, run, progress)
    chat = feedback.panes(session, run, left, right or run)
    shown = session["shown"]
    if not conversation:
        chat.reset()
    user = {"role": "user", "content": message}
    answers = {side: "" for side in chat.sides}
    box = ""  # the message box empties once, when the answers start; then the user may type the next one
    for answers in chat.send_pairs(message, _settings(max_tokens, temperature)):
        yield (*(shown[side] + [user, {"role": "assistant", "content": answers[side]}] for side in chat.sides),
               session, box)
        box = gr.update()
    for side in chat.sides:
        shown[side] += [user, {"role": "assistant", "content": answers[side]}]
    yield shown["left"], shown["right"], session, box


def clear(session: dict | None):
    if session and session.get("panes"):
        session["panes"].reset()
        session["shown"] = {side: [] for side in feedback.PANES}
    return [], [], session


def instructions_line(run: str | None) -> str:
    """Which instructions go with every message: the ones the run was trained with, if any."""
    text = jobs.find_run(run).instructions() if run else None
    if not text:
        return ""
    shown = text if len(text) <= 300 else text[:300] + "…"
    return (f"Every message goes to both models with the instructions this run was trained with: "
            f"*{html.escape(shown)}*")


def mode_line(on: bool) -> str:
    """What the Conversation toggle means (the chat then starts afresh in that mode)."""
    return CONVERSATION_NOTE if on else ONE_SHOT_NOTE


# ---- held-out evaluation ----------------------------------------------------------------------
def eval_outputs(report: dict | None) -> tuple:
    """The verdict card, the plain-words table, the technical details and the examples side by side."""
    return (verdict_ui.card_html(report), verdict_ui.table_rows(report), verdict_ui.details_rows(report),
            verdict_ui.example_rows(report))


def saved_eval(run: str | None) -> tuple:
    """The run's saved evaluation (eval.json), as shown when the run is opened again."""
    return eval_outputs(verdict_ui.read_eval(jobs.find_run(run).path) if run else None)


@plain_errors
def evaluate(run: str | None, session: dict | None, max_tokens, progress=gr.Progress()):
    from localsft.evaluation.evaluate import evaluate_run

    session = _loaded(session, run, progress)
    stages = {"answers": "Both models answer the examples kept aside", "loss": "Scoring the answers",
              "probes": "Asking general-knowledge questions"}

    def on_event(e):
        progress(e.done / max(e.total, 1), desc=f"{stages.get(e.stage, e.stage)} ({e.done}/{e.total})…")

    report = evaluate_run(jobs.find_run(run), settings=SamplingSettings(max_tokens=int(max_tokens)),
                          on_event=on_event, switchable=session["chat"].switchable,
                          probe_limit=verdict_ui.PROBE_LIMIT)
    return (*eval_outputs(report.to_dict()), session)


# ---- blind A/B --------------------------------------------------------------------------------
def _held_out_prompt(run: str) -> list[dict]:
    from localsft.evaluation.evaluate import read_examples, split_prompt

    path = jobs.find_run(run).data_dir / "test.jsonl"
    prompts = [split[0] for ex in (read_examples(path) if path.exists() else []) if (split := split_prompt(ex))]
    if not prompts:
        raise UserError(f"Run {run} has no held-out prompts (data/test.jsonl) to vote on.")
    return random.choice(prompts)


def clear_pair():
    """A new pair was asked for: the old one disappears at once (answers, question and votes)."""
    return "", "", "", gr.update(visible=False)


@plain_errors
def new_pair(run: str | None, session: dict | None, max_tokens, temperature, progress=gr.Progress()):
    """Both answers and the vote buttons appear together, once both are written."""
    from localsft.evaluation.abtest import new_pair as make

    session = _loaded(session, run, progress)
    prompt = _held_out_prompt(run)
    progress(0.5, desc="Both models are answering…")
    session["pair"] = make(session["chat"].switchable, prompt, _settings(max_tokens, temperature))
    pair = session["pair"]
    question = "\n\n".join(f"**{m['role']}:** {m['content']}" for m in prompt)
    return (question, pair.a, pair.b, session, gr.update(visible=True)) + (gr.update(interactive=True),) * len(VOTES)


@plain_errors
def vote(choice: str, run: str | None, session: dict | None):
    from localsft.evaluation.abtest import record_vote, win_rate

    pair = (session or {}).get("pair")
    if pair is None:
        raise UserError("Ask for a new pair first; each pair takes one vote.")
    record_vote(jobs.find_run(run), pair, choice)
    session["pair"], session["judged"] = None, pair  # the judged pair can still be corrected
    rate = win_rate(jobs.find_run(run))
    return (f"Thanks. So far: {rate.describe()}.", session) + (gr.update(interactive=False),) * len(VOTES)


def win_rate_text(run: str | None) -> str:
    from localsft.evaluation.abtest import win_rate

    if not run:
        return ""
    return f"So far: {win_rate(jobs.find_run(run)).describe()}."


@plain_errors
def show_run(name: str | None):
    """Another run chosen: its saved evaluation and votes (its model loads on first use), the side
    pickers (base / this run / its parent / runs improved from it) and the Improve button. The chat
    is emptied by the pickers' change (`clear_if_moved`): only when the pair shown changes, and
    after any answer still streaming."""
    return (*saved_eval(name), win_rate_text(name)) + clear_pair() + feedback.pickers(name) + feedback.improve_button(name)


def clear_if_moved(left: str | None, right: str | None, session: dict | None):
    """After a side picker changed (another run chosen, or another side): empty panes that showed
    another pair than the one now chosen. No chat yet, or the same pair set again: nothing changes
    (the session is left as it is, in case an answer to the first message is on its way)."""
    if not session or session.get("who") in (None, {"left": left, "right": right}):
        return gr.update(), gr.update(), gr.update()
    return clear(session)


def correction_box(elem: str) -> SimpleNamespace:
    """An answer to edit into the one wanted, and "Save as example"."""
    text = gr.Textbox(label="The answer you wanted (edit it, then save)", lines=4, elem_id=f"{elem}-edit")
    save = gr.Button("Save as example", elem_id=f"{elem}-save")
    note = gr.Markdown(elem_id=f"{elem}-saved")
    return SimpleNamespace(text=text, save=save, note=note)


def build() -> SimpleNamespace:
    with gr.Tab("Compare", id="compare"):
        session = gr.State(None)
        with gr.Row():
            run = gr.Dropdown(label="Run", choices=finished_run_choices(), elem_id="compare-run", scale=3)
            max_tokens = gr.Slider(16, 512, value=96, step=16, label="Longest answer (tokens)", scale=2,
                                   elem_id="compare-max-tokens")
            temperature = gr.Slider(0, 1.5, value=0, step=0.1, label="Variety (0: the same answer every time)",
                                    scale=2)
        with gr.Row():
            left = gr.Dropdown(label="Left", choices=[], elem_id="compare-left")
            right = gr.Dropdown(label="Right", choices=[], elem_id="compare-right")
        with gr.Row():
            base = gr.Chatbot(label="Base model (before training)", elem_id="chat-base", height=360)
            tuned = gr.Chatbot(label="Tuned model (trained on your examples)", elem_id="chat-tuned", height=360)
        with gr.Row():
            message = gr.Textbox(placeholder="Ask both models…", show_label=False, scale=5, elem_id="chat-input")
            send_btn = gr.Button("Send", variant="primary", scale=1, elem_id="chat-send")
            clear_btn = gr.Button("Clear", scale=1)
        with gr.Row():
            conversation = gr.Checkbox(label="Conversation (remember earlier messages)", value=False,
                                       elem_id="chat-conversation", scale=1)
            mode_note = gr.Markdown(ONE_SHOT_NOTE, elem_id="chat-mode")
        instructions = gr.Markdown(elem_id="chat-instructions")
        with gr.Accordion("Not what you wanted? Correct an answer", open=False):
            with gr.Row():
                edit_left = gr.Button("Edit the left answer", elem_id="edit-left")
                edit_right = gr.Button("Edit the right answer", elem_id="edit-right")
            chat_fix = correction_box("chat")
        with gr.Accordion("How did training go? (examples kept aside)", open=True):
            gr.Markdown("Both models answer the examples that were kept aside from training; "
                        "the answers are compared with yours.")
            eval_btn = gr.Button("Check on the examples kept aside", elem_id="eval-go")
            card = gr.HTML(elem_id="compare-verdict")
            eval_table = gr.Dataframe(headers=verdict_ui.TABLE_HEADERS, interactive=False, wrap=True,
                                      column_widths=["22%", "12%", "12%", "54%"],
                                      elem_id="eval-table")
            examples = gr.Dataframe(headers=verdict_ui.EXAMPLE_HEADERS, interactive=False, wrap=True,
                                    label="The examples kept aside, side by side", elem_id="eval-examples")
            with gr.Accordion("Details", open=False):
                details = gr.Dataframe(headers=["score", "base model", "tuned model"], interactive=False,
                                       elem_id="eval-details")
        with gr.Accordion("Blind A/B test", open=True):
            gr.Markdown("Both models answer an example kept aside; you do not know which is which. "
                        "Pick the better one.")
            pair_btn = gr.Button("New pair", elem_id="ab-new")
            with gr.Column(visible=False) as pair_box:
                question = gr.Markdown(elem_id="ab-question")
                with gr.Row():
                    answer_a = gr.Textbox(label="Answer A", lines=5, interactive=False, elem_id="ab-a")
                    answer_b = gr.Textbox(label="Answer B", lines=5, interactive=False, elem_id="ab-b")
                with gr.Row():
                    buttons = {c: gr.Button(label, interactive=False, elem_id=f"vote-{c.lower()}")
                               for c, label in VOTES}
                with gr.Row():
                    edit_a = gr.Button("Edit answer A", elem_id="edit-a")
                    edit_b = gr.Button("Edit answer B", elem_id="edit-b")
                ab_fix = correction_box("ab")
            tally = gr.Markdown(elem_id="ab-tally")
        with gr.Accordion("Improve with my feedback", open=True):
            improve_btn = gr.Button("Improve with my feedback", interactive=False, variant="primary",
                                    elem_id="improve-go")
            improve_note = gr.Markdown(elem_id="improve-note")

    # Generation runs one at a time: a model's adapter switch is set per batch, and the CPU is shared.
    one = {"concurrency_id": "generate", "concurrency_limit": 1}
    chat_in = [message, run, session, max_tokens, temperature, conversation, left, right]
    chat_out = [base, tuned, session, message]
    # a message sent while answers stream waits its turn (Gradio's default drops it)
    send_btn.click(send, chat_in, chat_out, trigger_mode="multiple", **one)
    message.submit(send, chat_in, chat_out, trigger_mode="multiple", **one)
    # emptying the chat waits for answers still streaming (else they would write into the emptied panes)
    clear_btn.click(clear, session, [base, tuned, session], **one)
    conversation.change(mode_line, conversation, mode_note).then(clear, session, [base, tuned, session], **one)
    evaluation = [card, eval_table, details, examples]
    pair_out = [question, answer_a, answer_b, pair_box]
    run.change(show_run, run, [*evaluation, tally, *pair_out, left, right, improve_btn, improve_note])
    run.change(plain_errors(instructions_line), run, instructions)
    for picker in (left, right):
        picker.change(feedback.pane_labels, [run, left, right], [base, tuned]).then(
            clear_if_moved, [left, right, session], [base, tuned, session], **one)
    improved = [improve_btn, improve_note]
    edit_left.click(lambda state: feedback.edit_pane("left", state), session,
                    [chat_fix.text, session, chat_fix.note])
    edit_right.click(lambda state: feedback.edit_pane("right", state), session,
                     [chat_fix.text, session, chat_fix.note])
    edit_a.click(lambda state: feedback.edit_blind("A", state), session, [ab_fix.text, session, ab_fix.note])
    edit_b.click(lambda state: feedback.edit_blind("B", state), session, [ab_fix.text, session, ab_fix.note])
    for fix in (chat_fix, ab_fix):
        fix.save.click(feedback.save_example, [run, session, fix.text], [fix.note, session]).then(
            feedback.improve_button, run, improved)
    eval_btn.click(evaluate, [run, session, max_tokens], [*evaluation, session], **one)
    pair_btn.click(clear_pair, None, pair_out, show_progress="hidden").then(
        new_pair, [run, session, max_tokens, temperature], [question, answer_a, answer_b, session, pair_box,
                                                            *buttons.values()], **one)
    for choice, button in buttons.items():
        button.click(lambda name, state, choice=choice: vote(choice, name, state), [run, session],
                     [tally, session, *buttons.values()]).then(feedback.improve_button, run, improved)
    return SimpleNamespace(run=run, refresh=run_dropdown, open=open, open_run_dir=open_run_dir,
                           improve=improve_btn, feedback_in=[run, left, right],
                           feedback_out=[left, right, improve_btn, improve_note])
