"""The validation error rates: the whole set's edits over its reference length, however it is batched."""

from __future__ import annotations

import pytest

from avsr.text import char_error_rate, word_error_rate
from avsr.training.metrics import CorpusErrorRate


def test_corpus_error_rate_sums_batches_before_dividing():
    references = ["bin blue at f two now", "set red", "lay green by"]
    hypotheses = ["bin blue at f two", "set red by", "lay green by"]
    wer, cer = CorpusErrorRate("word"), CorpusErrorRate("char")
    for metric in (wer, cer):
        metric.update(hypotheses[:1], references[:1])
        metric.update(hypotheses[1:], references[1:])
    assert float(wer.compute()) == pytest.approx(word_error_rate(references, hypotheses))  # 2 / 11
    assert float(wer.compute()) == pytest.approx(2 / 11)  # not the mean of the batches' 1/6 and 1/5
    assert float(cer.compute()) == pytest.approx(char_error_rate(references, hypotheses))
    wer.reset()
    wer.update(["x"], ["bin"])
    assert float(wer.compute()) == 1.0


def test_corpus_error_rate_refuses_an_unknown_unit():
    with pytest.raises(ValueError, match="unit 'phone': use word or char"):
        CorpusErrorRate("phone")
