"""The one word and character error rate of the project (``avsr.text``), on cases counted by hand."""

from __future__ import annotations

import pytest

from avsr.text import char_error_rate, char_errors, edit_distance, word_error_rate, word_errors


@pytest.mark.parametrize("reference, hypothesis, edits", [
    ("bin blue at f two now", "bin blue at f two now", 0),
    ("bin blue at f two now", "bin red at f two now", 1),  # one substitution
    ("bin blue at f two now", "bin blue at f two please now", 1),  # one insertion
    ("bin blue at f two now", "bin at f two now", 1),  # one deletion
    ("bin blue at f two now", "blue bin at two now soon", 4),  # 2 substitutions, 1 deletion, 1 insertion
    ("", "bin blue", 2),  # an empty reference: every word inserted
    ("bin blue", "", 2),  # an empty hypothesis: every word deleted
    ("", "", 0),
    ("  bin   blue ", "bin blue", 0),  # words are split at any whitespace
])
def test_word_errors_count_substitutions_insertions_and_deletions(reference, hypothesis, edits):
    assert word_errors(reference, hypothesis) == edits


def test_edit_distance_is_symmetric_and_counts_items():
    assert edit_distance("kitten", "sitting") == 3  # k->s, e->i, +g
    assert edit_distance("sitting", "kitten") == 3
    assert edit_distance(["a", "b"], ["a", "b"]) == 0


def test_corpus_rates_divide_all_edits_by_all_reference_units():
    references = ["bin blue at f two now", "set red"]
    hypotheses = ["bin blue at f two", "set red by"]  # 1 deletion + 1 insertion over 8 words
    assert word_error_rate(references, hypotheses) == 2 / 8  # not the mean of 1/6 and 1/2
    assert char_errors("set red", "set rod") == 1 and char_errors(" set red ", "set red") == 0
    # "bin blue at f two now" -> "bin blue at f two": " now" deleted (4); "set red" -> "set red by": 3 inserted
    assert char_error_rate(references, hypotheses) == pytest.approx((4 + 3) / (21 + 7))


def test_an_empty_reference_counts_its_insertions_and_a_mismatch_is_refused():
    assert word_error_rate([""], [""]) == 0.0
    assert word_error_rate([""], ["bin blue"]) == 2.0  # nothing to divide by: each inserted word is 1
    assert word_error_rate(["bin blue", ""], ["bin blue", "now"]) == 0.5
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        word_error_rate(["a", "b"], ["a"])
    with pytest.raises(TypeError, match="pass lists of transcripts"):  # not its characters as utterances
        word_error_rate("bin blue", "bin red")
