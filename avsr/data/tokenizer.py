"""Characters to CTC token ids and back."""

from __future__ import annotations

from dataclasses import dataclass

CHARACTERS = " 'abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class CharTokenizer:
    """Token 0 is the CTC blank; then space, apostrophe and a-z (``vocab_size`` 29)."""

    characters: str = CHARACTERS

    @property
    def vocab_size(self) -> int:
        return len(self.characters) + 1

    @property
    def blank(self) -> int:
        return 0

    def encode(self, text: str) -> list[int]:
        index = {c: i + 1 for i, c in enumerate(self.characters)}
        unknown = sorted(set(text) - set(index))
        if unknown:
            raise ValueError(f"text {text!r} has characters {''.join(unknown)!r} outside the tokenizer's "
                             f"{self.characters!r}; normalise it first (avsr.text.normalise)")
        return [index[c] for c in text]

    def decode(self, ids: list[int]) -> str:
        """Ids to text; blanks are skipped (collapse CTC repeats before calling this)."""
        return "".join(self.characters[i - 1] for i in ids if i != self.blank)

    def words_of(self, ids: list[int]) -> list[int | None]:
        """The word each token of ``ids`` (a text's, no blanks) belongs to, counted from 0; None for a space."""
        space, word, out = self.encode(" ")[0], 0, []
        for index, token in enumerate(ids):
            if token == space:
                out.append(None)
                word += index > 0 and ids[index - 1] != space
            else:
                out.append(word)
        return out
