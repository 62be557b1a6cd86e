"""Transcript text shared by every stage: normalisation, a word with its time span, and error rates.

A leaf of the package (it imports nothing from ``avsr``), so that the dataset recipes and the
synthesiser use one definition without importing each other.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass


def normalise(text: str) -> str:
    """Lower-case, hyphens and dashes to spaces, other punctuation dropped, spaces collapsed."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"[-–—/]", " ", text)
    text = re.sub(r"[.,;:!?\"()\[\]{}]", "", text)
    return " ".join(text.split())


@dataclass
class Word:
    """A word and where it is spoken, in seconds from the start of its recording."""

    text: str
    start_s: float
    end_s: float


def edit_distance(reference: Sequence[Hashable], hypothesis: Sequence[Hashable]) -> int:
    """Fewest substitutions, deletions and insertions that turn ``reference`` into ``hypothesis``
    (Levenshtein distance over their items: words or characters)."""
    previous = list(range(len(hypothesis) + 1))
    for i, wanted in enumerate(reference, 1):
        current = [i]
        for j, given in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (wanted != given)))
        previous = current
    return previous[-1]


def word_errors(reference: str, hypothesis: str) -> int:
    """Word edits (substitutions + deletions + insertions) of ``hypothesis`` against ``reference``;
    words are split at whitespace."""
    return edit_distance(reference.split(), hypothesis.split())


def char_errors(reference: str, hypothesis: str) -> int:
    """Character edits of ``hypothesis`` against ``reference``, spaces included, ends stripped."""
    return edit_distance(reference.strip(), hypothesis.strip())


def error_counts(references: Sequence[str], hypotheses: Sequence[str], unit: str = "word") -> tuple[int, int]:
    """``(edits, reference length)`` summed over utterances, in words (``unit="word"``) or characters
    (``"char"``): what a corpus error rate divides, and what processes add up before dividing."""
    if isinstance(references, str) or isinstance(hypotheses, str):
        raise TypeError("pass lists of transcripts, one per utterance: [reference], [hypothesis] for one")
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses; pair each reference with "
                         "its hypothesis")
    if unit == "word":
        return (sum(word_errors(r, h) for r, h in zip(references, hypotheses)),
                sum(len(r.split()) for r in references))
    if unit == "char":
        return (sum(char_errors(r, h) for r, h in zip(references, hypotheses)),
                sum(len(r.strip()) for r in references))
    raise ValueError(f"unit {unit!r}: use word or char")


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER: word edits over all utterances divided by the references' words (not a mean of
    per-utterance rates). References that hold no word at all are divided by one, so empty read as
    empty is 0 and each inserted word adds 1."""
    edits, words = error_counts(references, hypotheses, "word")
    return edits / max(words, 1)


def char_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus CER: character edits over all utterances divided by the references' characters, spaces
    included (see :func:`word_error_rate`)."""
    edits, chars = error_counts(references, hypotheses, "char")
    return edits / max(chars, 1)
