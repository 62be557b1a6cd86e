"""The tokenizers a training run can name (``model.tokenizer`` in a training config), and auto_avsr's.

- ``characters``: :class:`~avsr.data.tokenizer.CharTokenizer` (blank, space, apostrophe, a-z; 29 ids).
- ``auto-avsr``: auto_avsr's SentencePiece unigram 5000 model and units (5,049 ids with blank and ``<eos>``;
  :class:`~avsr.data.spm_tokenizer.SentencePieceTokenizer`), shipped in avsr/assets/auto_avsr (Apache-2.0): the
  units the published LRS3 encoders were trained to emit, so their CTC heads can start a model's stream heads.

A checkpoint stores the name, and a bundle the tokenizer itself.
"""

from __future__ import annotations

import gzip
from functools import cache
from pathlib import Path

from avsr.data.spm_tokenizer import SentencePieceTokenizer, parse_units
from avsr.data.tokenizer import CharTokenizer
from avsr.errors import OptionError

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "auto_avsr"
TOKENIZERS = ("characters", "auto-avsr")


@cache
def auto_avsr_tokenizer() -> SentencePieceTokenizer:
    """auto_avsr's unigram 5000 SentencePiece model and units (shipped in avsr/assets/auto_avsr, Apache-2.0)."""
    model = gzip.decompress((ASSETS / "unigram5000.model.gz").read_bytes())
    units = gzip.decompress((ASSETS / "unigram5000_units.txt.gz").read_bytes()).decode("utf-8")
    return SentencePieceTokenizer(model, tuple(parse_units(units, "auto_avsr's units list")))


def named_tokenizer(name: str, option: str = "tokenizer") -> CharTokenizer | SentencePieceTokenizer:
    """The tokenizer called ``name`` (one of :data:`TOKENIZERS`); ``option`` names the setting in the error.

    Raises:
        OptionError: another name.
    """
    if name == "characters":
        return CharTokenizer()
    if name == "auto-avsr":
        return auto_avsr_tokenizer()
    raise OptionError(f"{option}={name!r}; use one of {', '.join(TOKENIZERS)}")
