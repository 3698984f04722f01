"""Every evaluation metric on inputs whose answer is known."""

from __future__ import annotations

import math

import pytest

from localsft.evaluation import metrics
from localsft.errors import UserError
from localsft.evaluation.evaluate import load_probes


def test_exact_match_ignores_case_and_spacing_only():
    assert metrics.exact_match("  Light, fast,\n yours. ", "light, fast, yours.")
    assert not metrics.exact_match("light, fast, yours", "light, fast, yours.")


def test_chrf_is_100_for_identical_text_and_lower_for_partial_overlap():
    assert metrics.chrf(["the cat sat"], ["the cat sat"]) == pytest.approx(100.0)
    partial = metrics.chrf(["the cat sat"], ["the cat sat on the mat"])
    assert 0 < partial < 100
    assert metrics.chrf(["xyz"], ["the cat"]) == pytest.approx(0.0)
    assert metrics.sentence_chrf("the cat sat", "the cat sat") == pytest.approx(100.0)


def test_chrf_matches_sacrebleu_on_a_corpus():
    from sacrebleu.metrics import CHRF

    hyps, refs = ["Paris is the capital.", "four"], ["Paris is the capital of France.", "four."]
    assert metrics.chrf(hyps, refs) == pytest.approx(CHRF().corpus_score(hyps, [refs]).score)


def test_regex_format_check_needs_the_whole_answer_to_match():
    check = metrics.format_checker({"regex": r"[A-Z][^.!?]{0,40}[.!]"})
    assert check("  Light, fast, yours. ")
    assert not check("Light, fast, yours. And more text after it.")
    assert not check("light, fast, yours.")


def test_json_schema_format_check():
    check = metrics.format_checker({"json_schema": {
        "type": "object", "required": ["name", "price"],
        "properties": {"name": {"type": "string"}, "price": {"type": "number"}}}})
    assert check('{"name": "Shoe", "price": 99.5}')
    assert not check('{"name": "Shoe"}')
    assert not check("Shoe, 99.5")
    assert metrics.format_checker(None) is None


def test_invalid_format_checks_are_plain_errors():
    with pytest.raises(UserError, match="regex"):
        metrics.format_checker({"regex": "([a-z"})
    with pytest.raises(UserError, match="schema"):
        metrics.format_checker({"json_schema": {"type": "no-such-type"}})
    with pytest.raises(UserError, match="regex.*json_schema"):
        metrics.format_checker({"pattern": "x"})


def test_probe_answers_count_as_whole_words_in_any_case():
    assert metrics.probe_correct("The capital of France is Paris.", ["Paris"])
    assert metrics.probe_correct("2 + 2 = 4", ["4", "four"])
    assert metrics.probe_correct("It is carbon dioxide (CO2).", ["carbon dioxide"])
    assert not metrics.probe_correct("Parisian food is great", ["Paris"])
    assert not metrics.probe_correct("14", ["4"])


def test_perplexity_is_exp_of_the_loss():
    assert metrics.perplexity(math.log(7.0)) == pytest.approx(7.0)
    assert metrics.perplexity(None) is None


def test_probe_set_is_broad_and_well_formed():
    probes = load_probes()
    assert len(probes) >= 60
    categories = {p["category"] for p in probes}
    assert categories == {"geography", "science", "arithmetic", "language", "common sense"}
    assert all(p["question"].strip() and p["answers"] for p in probes)
    assert len({p["question"] for p in probes}) == len(probes)


def test_a_check_with_regex_and_schema_needs_both():
    check = metrics.format_checker({"regex": r"\{.*\}", "json_schema": {"type": "object", "required": ["a"]}})
    assert check('{"a": 1}')
    assert not check('{"b": 1}')  # matches the regex, fails the schema
    assert not check('[{"a": 1}]')  # valid JSON, but no match for the regex
