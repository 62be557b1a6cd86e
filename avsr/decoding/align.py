"""Word timestamps and confidences: a transcript forced onto its CTC log-probabilities.

``torchaudio.functional.forced_align`` finds the best CTC path that spells the transcript; the
frames each word's characters occupy on that path give its start and end, and the mean probability
of those characters on their frames gives its confidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from avsr.data.tokenizer import CharTokenizer
from avsr.preprocessing import FRAME_S



@dataclass(frozen=True)
class WordTiming:
    word: str
    start_s: float
    end_s: float
    confidence: float  # mean probability of the word's characters on their aligned frames, 0-1


def can_align(ids: list[int], frames: int) -> bool:
    """Whether a CTC path of ``frames`` frames can spell ``ids``: one frame per token, and a blank
    between each repeated pair."""
    return frames >= len(ids) + sum(a == b for a, b in zip(ids, ids[1:]))


def align_words(log_probs: torch.Tensor, text: str, tokenizer=CharTokenizer(), offset_s: float = 0.0) -> list[WordTiming]:
    """Timings of the words of ``text`` on ``log_probs`` ``(T, V)`` (one utterance, 25 Hz frames).

    ``tokenizer``: the model's (characters, or SentencePiece pieces); it says which word each token
    belongs to (``words_of``). ``offset_s`` is added to every time (the start of this stretch in a longer
    recording).
    """
    import torchaudio.functional as F

    words = text.split()
    if not words:
        return []
    ids = tokenizer.encode(" ".join(words))
    log_probs = log_probs.detach().float().cpu()
    frames = log_probs.shape[0]
    if not can_align(ids, frames):
        raise ValueError(f"{len(ids)} tokens cannot be aligned to {frames} frames")
    path, scores = F.forced_align(log_probs[None], torch.tensor([ids], dtype=torch.int32), blank=tokenizer.blank)
    spans = F.merge_tokens(path[0], scores[0].exp(), blank=tokenizer.blank)
    assert [s.token for s in spans] == ids, "forced alignment lost a token"
    grouped: list[list] = [[] for _ in words]
    for span, word in zip(spans, tokenizer.words_of(ids)):
        if word is not None:
            grouped[word].append(span)
    assert all(grouped), "a word without tokens"
    timings = []
    for word, current in zip(words, grouped):
        frames_of_word = sum(s.end - s.start for s in current)
        confidence = sum(s.score * (s.end - s.start) for s in current) / frames_of_word
        timings.append(WordTiming(word, offset_s + current[0].start * FRAME_S, offset_s + current[-1].end * FRAME_S,
                                  float(confidence)))
    return timings
