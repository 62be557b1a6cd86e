"""The SentencePiece tokenizer numbers pieces as auto_avsr does (ids and texts given by the reference's
own TextTransform on auto_avsr's unigram 5000 model, tests/fixtures/auto_avsr/unigram5000.md), travels
in a bundle, and refuses what it cannot use in one line."""

from __future__ import annotations

import gzip
import io

import pytest
import torch

from avsr.data.spm_tokenizer import SentencePieceTokenizer, TokenizerError, parse_units
from tests.models.auto_avsr_fixtures import FIXTURES, manifest


@pytest.fixture(scope="module")
def files() -> tuple[bytes, str]:
    model = gzip.decompress((FIXTURES / "unigram5000.model.gz").read_bytes())
    units = gzip.decompress((FIXTURES / "unigram5000_units.txt.gz").read_bytes()).decode("utf-8")
    return model, units


@pytest.fixture(scope="module")
def tokenizer(files) -> SentencePieceTokenizer:
    model, units = files
    return SentencePieceTokenizer(model, tuple(parse_units(units)))


# (text, the reference's ids, the reference's text back): TextTransform.tokenize and post_process
REFERENCE = [
    ("HELLO WORLD", [2455, 4996], "HELLO WORLD"),
    ("IT'S 46664 O'CLOCK IN ZÜRICH", [2743, 2, 407, 501, 13, 3305, 2, 123, 304, 132, 2598, 5043, 1, 395, 129],
     "IT'S 46664 O'CLOCK IN Z<unk>RICH"),
    ("THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG", [4575, 3780, 1038, 2163, 495, 2779, 407, 3404, 4575, 2854, 1716],
     "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG"),
]


def test_the_vocabulary_is_blank_the_units_and_eos(tokenizer):
    assert tokenizer.vocab_size == 5049 == manifest()["vsr"]["odim"]
    assert (tokenizer.blank, tokenizer.unknown, tokenizer.eos, tokenizer.sos) == (0, 1, 5048, 5048)
    tokens = tokenizer.token_list
    assert [tokens[i] for i in (0, 1, 2, 5047, 5048)] == ["<blank>", "<unk>", "'", "\u2581ZOO", "<eos>"]


@pytest.mark.parametrize("text, ids, back", REFERENCE)
def test_ids_and_text_are_the_references(tokenizer, text, ids, back):
    assert tokenizer.encode(text) == ids
    assert tokenizer.decode(ids) == back


def test_text_is_upper_cased_before_encoding(tokenizer):
    assert tokenizer.encode("hello world") == tokenizer.encode("HELLO WORLD") == [2455, 4996]


def test_the_references_beam_search_ids_decode_to_its_text(tokenizer):
    for kind in ("vsr", "asr", "avsr"):
        for beam in ("beam_default", "beam4"):
            result = manifest()[kind][beam]
            assert tokenizer.decode(result["token_ids"]) == result["text"]  # <eos> left out


def test_it_travels_in_a_bundle(tokenizer):
    buffer = io.BytesIO()
    torch.save({"tokenizer": tokenizer.to_dict()}, buffer)
    buffer.seek(0)
    restored = SentencePieceTokenizer.from_dict(torch.load(buffer, weights_only=True)["tokenizer"])
    assert restored == tokenizer
    assert restored.encode(REFERENCE[1][0]) == REFERENCE[1][1]


def test_from_files(files, tmp_path):
    model, units = files
    (tmp_path / "m.model").write_bytes(model)
    (tmp_path / "units.txt").write_text(units, encoding="utf-8")
    assert SentencePieceTokenizer.from_files(tmp_path / "m.model", tmp_path / "units.txt").vocab_size == 5049


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_a_vocabulary_the_units_do_not_fit_is_refused(tokenizer):
    tokenizer.check_vocab_size(5049)
    with pytest.raises(TokenizerError) as error:
        tokenizer.check_vocab_size(5000, "vsr.pth")
    assert "vsr.pth has 5000 output tokens" in one_line(error) and "5049" in one_line(error)


def test_bad_files_are_refused_in_one_line(files, tmp_path):
    model, units = files
    with pytest.raises(TokenizerError) as error:
        SentencePieceTokenizer(b"not a model", ("<unk>", "A"))
    assert "not a SentencePiece model" in one_line(error)
    with pytest.raises(TokenizerError) as error:
        parse_units("<unk> 1\nA 2\nB 4\n", "units.txt")
    assert "units.txt: line 3" in one_line(error)
    with pytest.raises(TokenizerError) as error:
        parse_units("A 1\n", "units.txt")
    assert "<unk> 1" in one_line(error)
    with pytest.raises(TokenizerError) as error:
        SentencePieceTokenizer.from_files(tmp_path / "missing.model", tmp_path / "units.txt")
    assert "missing.model" in one_line(error)
    with pytest.raises(TokenizerError):
        SentencePieceTokenizer.from_dict({"kind": "characters"})
