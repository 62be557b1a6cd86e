"""Transcript text shared by every stage: normalisation and a word with its time span.

A leaf of the package (it imports nothing from ``avsr``), so that the dataset recipes and the
synthesiser use one definition without importing each other.
"""

from __future__ import annotations

import re
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
