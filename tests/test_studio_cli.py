"""What a user sees on the command line: run names everywhere, aligned tables, the verdict, house style."""

from __future__ import annotations

import pytest
from fake_run import make_run

from localsft import paths
from localsft.cli import main
from localsft.errors import UserError
from localsft.evaluation import house_style, verdict
from localsft.evaluation.metrics import format_checker
from localsft.runs.names import display_name, resolve_run, set_friendly_name


def eval_json(base_chrf, tuned_chrf, retention=1.0, base_fmt=None, tuned_fmt=None, base_loss=2.0,
              tuned_loss=1.5, examples=20) -> dict:
    return {"examples": examples, "retention": retention,
            "base": {"chrf": base_chrf, "loss": base_loss, "format_adherence": base_fmt, "probe_accuracy": 0.5},
            "tuned": {"chrf": tuned_chrf, "loss": tuned_loss, "format_adherence": tuned_fmt,
                      "probe_accuracy": 0.5 * retention}}


def test_verdict_in_plain_words_with_numbers():
    v = verdict.verdict(eval_json(10.2, 17.4, retention=1.08, base_fmt=0.0, tuned_fmt=0.92))
    assert v.recommendation == "use it"
    text = "\n".join(v.lines())
    assert "closer to your examples: 17 vs 10" in text
    assert "kept general knowledge: 108%" in text
    assert "follows your format: 92% vs 0%" in text
    assert "How close to your examples" in text and "chrF" not in text and "perplexity" not in text


@pytest.mark.parametrize("report, expected, words", [
    (eval_json(10, 12), "train longer", "little closer"),
    (eval_json(10, 30, base_fmt=0.0, tuned_fmt=0.4), "train longer", "40%"),
    (eval_json(10, 9, tuned_loss=2.5), "fix the data", "did not get closer"),
    (eval_json(10, 30, retention=0.5), "fix the data", "forgot general knowledge (kept 50%)"),
    (eval_json(10, 30, examples=3), "use it", "so few"),
])
def test_verdict_recommendation(report, expected, words):
    v = verdict.verdict(report)
    assert v.recommendation == expected and words in "\n".join(v.lines())


def test_house_style_rules_become_the_format_check():
    spec = house_style.clean_spec(starts_with="Subject:", line_starts_with="Price:", ends_with="!",
                                  max_length=60)
    check = format_checker(spec)
    assert check("  Subject: Spring sale\nPrice: 20 EUR off!\n")
    assert not check("Spring sale\nPrice: 20 EUR off!")  # no subject line
    assert not check("Subject: Spring sale\nPrice: 20 EUR off! " + "x" * 60 + "!")  # too long
    answers = ["Subject: a\nPrice: 1!", "Subject: b\nno price!", "Hello"]
    result = house_style.preview(spec, answers, rows=[2, 3, 4])
    assert (result.passed, result.total) == (1, 3) and result.describe() == "1 of 3 of your answers follow this house style."
    assert result.failures == [(3, "answer has no line starting with 'Price:'"), (4, "answer does not start with 'Subject:'")]
    assert house_style.clean_spec() is None
    with pytest.raises(UserError, match="regex"):
        house_style.preview({"regex": "("}, answers)


@pytest.fixture
def named_run(tiny_model_dir):
    folder = make_run(paths.runs_dir() / "20261129-2231-tiny-llama", tiny_model_dir)
    set_friendly_name(folder, "Spring taglines")
    return folder


def test_runs_prints_an_aligned_table_and_every_command_takes_its_names(named_run, tiny_model_dir, capsys):
    make_run(paths.runs_dir() / "other", tiny_model_dir)
    assert main(["runs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["RUN", "NAME", "MODEL", "STATUS", "STEP", "BEST", "VAL", "STARTED"]
    assert len({line.index("tiny-llama", 30) for line in lines[1:]}) == 1  # the MODEL column lines up
    assert any("Spring taglines" in line and line.startswith(named_run.name) for line in lines)
    for name in ("Spring taglines", "spring taglines", named_run.name, str(named_run)):
        assert resolve_run(name) == named_run
    assert display_name(named_run) == "Spring taglines" and display_name(paths.runs_dir() / "other") == "other"

    assert main(["eval", "Spring taglines", "--no-probes", "--max-tokens", "8"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Verdict: ") and "How close to your examples" in out and "validation loss" in out
    first = out.splitlines()[0].removeprefix("Verdict: ")
    assert f"**{first}**" in (named_run / "eval.md").read_text()  # the report file says the same
    assert main(["eval", "no such run"]) == 2
    assert "There is no run named 'no such run'" in capsys.readouterr().err


def test_naming_a_run_from_the_cli(named_run, tiny_model_dir, capsys):
    make_run(paths.runs_dir() / "other", tiny_model_dir)
    assert main(["runs", "--name", "other", "Autumn mails"]) == 0
    assert "other is now called 'Autumn mails'" in capsys.readouterr().out
    assert main(["runs", "--name", "Autumn mails", "Spring taglines"]) == 2
    assert "already called 'Spring taglines'" in capsys.readouterr().err
    assert main(["runs", "--name", "Autumn mails", ""]) == 0 and display_name(paths.runs_dir() / "other") == "other"


def test_gguf_is_named_after_the_tuned_model_and_its_card_has_one_settings_table(named_run):
    from gguf import GGUFReader

    from localsft.export import export_run

    (result,) = export_run(named_run, "gguf", force=True)  # tiny random logits: near-ties flip
    reader = GGUFReader(str(next(result.path.glob("*.gguf"))))
    assert reader.fields["general.name"].contents() == "Spring taglines"
    card = (result.path / "README.md").read_text()
    settings = [line.split("|")[1].strip() for line in card.split("## Method and hyperparameters")[1]
                .split("##")[0].splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(settings) == len(set(settings)) and "lora_rank" in settings and "method" in settings
    usage = card.split("## How to use")[1]
    assert "/" not in usage.replace("path/to/", "") and "llama-cli -m model-" in usage  # relative paths only


def test_a_training_log_in_a_file_gets_progress_lines_with_time_left(tiny_model_dir, tmp_path, capsys):
    data = tmp_path / "taglines.csv"
    data.write_text("prompt,response\n" + "".join(f"Tagline {i}?,Go far {i}.\n" for i in range(40)))
    assert main(["train", "--data", str(data), "--model", str(tiny_model_dir), "--out", str(tmp_path / "run"),
                 "--set", "iters=6", "--set", "max_seq_len=64", "--set", "batch_tokens=128",
                 "--set", "sample_prompts=0", "--set", "compile=false"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("step ") and "/6:" in line]
    assert [line.split(":")[0] for line in lines] == [f"step {i}/6" for i in range(1, 7)]
    assert all(line.endswith(" left") and "\r" not in line for line in lines)
