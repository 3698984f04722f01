"""Which checkpoint a run with a format check keeps: format first, then closeness, without chasing noise."""

from __future__ import annotations

from localsft.train.format_watch import is_better

ONE_OF_8 = 1 / 8


def best_step(validations: list[tuple[int, float | None, float]]) -> int:
    """The step kept, applying the rule as the training loop does (top = highest adherence so far)."""
    best = top = best_loss = None
    for step, adherence, loss in validations:
        if is_better(adherence, loss, top, best_loss, ONE_OF_8):
            best, best_loss = step, loss
        if adherence is not None:
            top = max(adherence, top or 0.0)
    return best


def test_one_answer_out_of_format_does_not_keep_an_undertrained_checkpoint():
    # measured on fixed-format, 40 rows: step 5 had 8 of 8 in format but answered one label to all
    run = [(0, None, 1.84), (5, 1.0, 0.78), (10, 0.5, 0.54), (15, 0.875, 0.24), (20, 0.875, 0.30)]
    assert best_step(run) == 15


def test_clearly_better_format_wins_over_a_lower_loss():
    assert best_step([(0, None, 1.8), (5, 0.25, 0.40), (10, 1.0, 0.55)]) == 10
    assert best_step([(0, None, 1.8), (5, 1.0, 0.40), (10, 0.5, 0.20)]) == 5  # lost the format


def test_the_format_cannot_drift_down_one_answer_at_a_time():
    run = [(5, 1.0, 0.5), (10, 0.875, 0.4), (15, 0.75, 0.3), (20, 0.625, 0.2)]
    assert best_step(run) == 10  # each step is one answer below the last, but 15 is two below the top


def test_a_run_without_a_format_check_keeps_the_lowest_loss():
    assert best_step([(0, None, 1.8), (5, None, 0.9), (10, None, 1.1)]) == 5


# ---- answers that can no longer have the format stop early --------------------------------------

def test_no_shipped_answer_is_judged_hopeless_before_it_ends():
    from localsft.data.doctor import read_examples
    from localsft.evaluation.house_style import format_checker, hopeless_checker
    from localsft.train.recipes import list_recipes

    checked = 0
    for recipe in list_recipes():
        config = recipe.train_config()
        if not config.data:
            continue
        check, hopeless = format_checker(config.format_check), hopeless_checker(config.format_check)
        assert hopeless is not None, recipe.name
        for example in read_examples(config.data).examples:
            answer = example["messages"][-1]["content"] if "messages" in example else ""  # plain text: no answers
            if answer and check(answer):  # an answer in the format is never cut on the way to it
                assert not any(hopeless(answer[:i]) for i in range(len(answer) + 1)), (recipe.name, answer)
                checked += 1
    assert checked > 500


def test_off_format_starts_are_hopeless():
    from localsft.evaluation.house_style import hopeless_checker
    from localsft.train.recipes import load_recipe

    glossary = hopeless_checker(load_recipe("glossary").train_config().format_check)
    assert glossary("Viral is a word") and not glossary("**Viral** (adj")
    json_line = hopeless_checker(load_recipe("fixed-format").train_config().format_check)
    assert json_line("Sure! Here") and json_line('{"category": "ship') and not json_line('{"category":"ship')
    style = hopeless_checker({"starts_with": "Subject:", "max_length": 20})
    assert not style("  Sub") and style("Dear") and style("Subject: " + "x" * 12)
    assert hopeless_checker({"ends_with": "!"}) is None and hopeless_checker(None) is None


def test_halted_rows_leave_the_batch_and_the_others_decode_as_before(tiny_model_dir):
    from localsft.inference.batch import decode_tokens
    from localsft.inference.generate import SamplingSettings
    from localsft.models.loading import load_model

    loaded = load_model(str(tiny_model_dir), "float32")
    prompts = [loaded.tokenizer.encode(text) for text in ("fox dog", "capital Paris shoes", "light", "Berlin fast")]
    greedy = SamplingSettings(max_tokens=12, temperature=0.0)

    def tokens_per_row(halt_after: int | None) -> dict[int, list[int]]:
        halted, rows = set(), {i: [] for i in range(len(prompts))}
        for number, step in enumerate(decode_tokens(loaded.model, prompts, set(), greedy, halted=halted)):
            for row, token in step:
                rows[row].append(token)
            if halt_after is not None and number + 1 == halt_after:
                halted.update({0, 2})
        return rows

    whole, halted = tokens_per_row(None), tokens_per_row(3)
    assert [len(halted[row]) for row in range(4)] == [3, 12, 3, 12]
    assert halted[1] == whole[1] and halted[3] == whole[3]
    assert halted[0] == whole[0][:3] and halted[2] == whole[2][:3]


def test_an_answer_judged_hopeless_stops_there_and_is_marked(tiny_model_dir):
    from localsft.models.loading import load_model
    from localsft.train.format_watch import CUT, greedy_answers

    loaded = load_model(str(tiny_model_dir), "float32")
    chats = [[{"role": "user", "content": text}] for text in ("fox dog", "capital Paris shoes")]
    full = greedy_answers(loaded.model, loaded.tokenizer, chats, 24)
    assert all(len(a) > 8 for a in full)  # the random model runs to the token limit
    cut = greedy_answers(loaded.model, loaded.tokenizer, chats, 24, hopeless=lambda text: len(text) > 4)
    for whole, answer in zip(full, cut):
        start = answer[:-len(CUT)]
        assert answer.endswith(CUT) and whole.startswith(start) and 4 < len(start) < len(whole)
    kept = greedy_answers(loaded.model, loaded.tokenizer, chats, 24, hopeless=lambda text: False)
    assert kept == full


def test_format_checks_are_spaced_when_they_cost_more_than_the_training_between():
    from localsft.train.format_watch import DECODE_STEP_TOKENS, WATCH_SHARE, FormatWatch

    watch = FormatWatch(check=bool, chats=[[]] * 8, max_tokens=70, tokenizer=None, answer_tokens=40)
    cost = 40 * DECODE_STEP_TOKENS
    assert watch.checks_every(cost / WATCH_SHARE) == 1  # cheap next to the training: every validation
    assert watch.checks_every(cost / WATCH_SHARE / 2) == 2
    assert watch.checks_every(cost / WATCH_SHARE / 5) == 5  # long answers, short steps
    assert watch.checks_every(0) >= 1


def test_a_run_checks_the_format_at_spaced_validations_and_picks_its_best_among_them(tiny_model_dir, tmp_path):
    from support.training import make_data, tiny_config

    from localsft.train import train
    from localsft.train.format_watch import DECODE_STEP_TOKENS

    # answers of ~10 tokens against steps of a few dozen: a check costs more than the steps between
    config = tiny_config(tiny_model_dir, make_data(tmp_path / "data"), eval_every=1, iters=14, batch_tokens=32,
                         pack_width=32, format_check={"regex": "Answer: [^\n]*"}, sample_prompts=1,
                         sample_max_tokens=8)
    events = []
    result = train(config, tmp_path / "run", on_event=events.append)
    assert result.status == "finished" and DECODE_STEP_TOKENS > 1
    evals = [e for e in events if e.type == "eval" and e.step > 0]
    checked = [e.step for e in evals if e.format_adherence is not None]
    every = checked[1] - checked[0]
    assert checked[0] == 1 and every > 1 and checked == list(range(1, 14, every)) + [14]  # and the last
    assert all(e.step in checked for e in evals if e.improved)  # only a checked validation can be the best
    assert {e.step for e in events if e.type == "sample"} == set(checked)  # samples are the check's answers
    assert len(evals) == 14  # the loss is still measured at every validation
