"""SentencePiece pieces to model token ids and back, numbered as auto_avsr numbers them.

The model's ids do not come from the SentencePiece model: they come from a units list (one piece per
line, ``<unk> 1`` first, then the pieces seen in the training text, each with its id), framed by the
CTC blank and the end token::

    0: <blank>   1: <unk>   2 .. len(units): the other units in file order   len(units) + 1: <eos> (= <sos>)

so the vocabulary is ``len(units) + 2`` tokens (5049 for auto_avsr's unigram 5000 model, whose
units file holds 5047 lines). Text is upper-cased before encoding (the pieces are upper case); a
piece outside the units becomes ``<unk>``. Decoding joins the pieces, turns the word marker
``\u2581`` and ``<space>`` into spaces and strips the ends; blank and ``<eos>`` are left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from avsr.errors import AvsrError

WORD_MARKER = "\u2581"
BLANK, UNKNOWN, END = "<blank>", "<unk>", "<eos>"


class TokenizerError(AvsrError, ValueError):
    """A SentencePiece model or units list that cannot be used, or a vocabulary they do not fit."""


def parse_units(text: str, source: str = "units list") -> list[str]:
    """The units, in order, of a units file's text (``PIECE ID`` per line, ids 1, 2, ... in order,
    ``<unk>`` first)."""
    units = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or fields[1] != str(len(units) + 1):
            raise TokenizerError(f"{source}: line {number} is {line!r}; expected 'PIECE {len(units) + 1}' "
                                 f"(a piece and its id, ids counting up from 1)")
        units.append(fields[0])
    if not units or units[0] != UNKNOWN:
        raise TokenizerError(f"{source}: the first unit must be '{UNKNOWN} 1'")
    return units


@dataclass(frozen=True)
class SentencePieceTokenizer:
    """A SentencePiece model (the bytes of its ``.model`` file) and the units list that numbers its pieces."""

    model: bytes = field(repr=False)
    units: tuple[str, ...] = field(repr=False)

    def __post_init__(self) -> None:
        import sentencepiece

        object.__setattr__(self, "units", tuple(self.units))
        if not self.units or self.units[0] != UNKNOWN:
            raise TokenizerError(f"the units list must start with {UNKNOWN!r}")
        if len(set(self.units)) != len(self.units):
            raise TokenizerError("the units list names a piece twice")
        processor = sentencepiece.SentencePieceProcessor()
        try:
            processor.LoadFromSerializedProto(self.model)
        except (RuntimeError, TypeError) as error:
            raise TokenizerError(f"not a SentencePiece model ({len(self.model)} bytes): {error}") from None
        object.__setattr__(self, "_processor", processor)
        object.__setattr__(self, "_ids", {unit: i for i, unit in enumerate(self.token_list)})

    def __repr__(self) -> str:
        return f"SentencePieceTokenizer(model={len(self.model)} bytes, units={len(self.units)})"

    @classmethod
    def from_files(cls, model_path: str | Path, units_path: str | Path) -> SentencePieceTokenizer:
        """From a ``.model`` file and its units file (auto_avsr's ``spm/unigram/unigram5000*``)."""
        try:
            model, units_text = Path(model_path).read_bytes(), Path(units_path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise TokenizerError(f"cannot read the tokenizer files: {error}") from None
        return cls(model, tuple(parse_units(units_text, str(units_path))))

    @property
    def token_list(self) -> list[str]:
        """Each id's token: ``<blank>``, the units, ``<eos>``."""
        return [BLANK, *self.units, END]

    @property
    def vocab_size(self) -> int:
        return len(self.units) + 2

    @property
    def blank(self) -> int:
        return 0

    @property
    def unknown(self) -> int:
        return 1

    @property
    def eos(self) -> int:
        """The end token, also the start token of the attention decoder."""
        return len(self.units) + 1

    sos = eos

    def check_vocab_size(self, vocab_size: int, source: str = "the model") -> None:
        """Raise :class:`TokenizerError` unless ``vocab_size`` (a model's output size) fits the units."""
        if vocab_size != self.vocab_size:
            raise TokenizerError(f"{source} has {vocab_size} output tokens but the tokenizer's {len(self.units)} units "
                                 f"give {self.vocab_size} (blank + units + <eos>); use the units list the model was "
                                 f"trained with")

    def pieces(self, text: str) -> list[str]:
        """The SentencePiece pieces of ``text``, upper-cased first."""
        return self._processor.encode(text.upper(), out_type=str)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (pieces outside the units become ``<unk>``)."""
        return [self._ids.get(piece, self.unknown) for piece in self.pieces(text)]

    def decode(self, ids: list[int]) -> str:
        """Text of token ids (blank and ``<eos>`` left out)."""
        tokens = self.token_list
        pieces = [tokens[i] for i in ids if i not in (self.blank, self.eos)]
        return "".join(pieces).replace("<space>", " ").replace(WORD_MARKER, " ").strip()

    def words_of(self, ids: list[int]) -> list[int | None]:
        """The word each token of ``ids`` (a text's pieces) belongs to, counted from 0: a piece that starts with
        the word marker starts a word; the marker alone is a separator (None)."""
        tokens, word, out = self.token_list, -1, []
        for token in ids:
            piece = tokens[token]
            if piece.startswith(WORD_MARKER) or word < 0:
                word += 1
            out.append(None if piece == WORD_MARKER else word)
        return out

    def to_dict(self) -> dict:
        """What a bundle stores (plain types, readable with ``torch.load(weights_only=True)``)."""
        return {"kind": "sentencepiece", "model": bytes(self.model), "units": list(self.units)}

    @classmethod
    def from_dict(cls, data: dict) -> SentencePieceTokenizer:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data, dict) or data.get("kind") != "sentencepiece":
            raise TokenizerError("not a stored SentencePiece tokenizer (expected kind 'sentencepiece')")
        if not isinstance(data.get("model"), bytes) or not isinstance(data.get("units"), (list, tuple)):
            raise TokenizerError("a stored SentencePiece tokenizer needs 'model' (bytes) and 'units' (a list)")
        return cls(data["model"], tuple(data["units"]))
