"""Sentences for the synthetic corpus: the GRID grammar, or the user's own text file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avsr.errors import AvsrError
from avsr.text import normalise

# GRID corpus grammar (Cooke, Barker, Cunningham & Shao, 2006): six slots, one word each.
GRID_SLOTS = (
    ("bin", "lay", "place", "set"),
    ("blue", "green", "red", "white"),
    ("at", "by", "in", "with"),
    tuple("abcdefghijklmnopqrstuvxyz"),  # every letter but w
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    ("again", "now", "please", "soon"),
)
ALPHABET = "abcdefghijklmnopqrstuvwxyz' "


class TextError(AvsrError, ValueError):
    """A text file the corpus cannot use."""


def grid_sentence(rng: np.random.Generator) -> str:
    """One GRID sentence, each slot drawn uniformly, e.g. ``"bin blue at f two now"``."""
    return " ".join(slot[rng.integers(len(slot))] for slot in GRID_SLOTS)


def read_sentences(path: str | Path) -> list[str]:
    """Normalised sentences, one per non-empty line; the characters must be a-z, ' and space."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise TextError(f"{path}: cannot be read as UTF-8 text ({error.__class__.__name__}); "
                        "pass a text file") from None
    sentences = []
    for number, line in enumerate(lines, 1):
        sentence = normalise(line)
        if not sentence:
            continue
        bad = sorted(set(sentence) - set(ALPHABET))
        if bad:
            raise TextError(f"{path}:{number}: characters {''.join(bad)!r} are outside a-z, apostrophe and space; "
                            "spell out numbers and symbols")
        sentences.append(sentence)
    if not sentences:
        raise TextError(f"{path}: holds no sentence; put one sentence per line")
    return sentences
