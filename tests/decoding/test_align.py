"""Word timings (avsr.decoding.align): a transcript forced onto CTC log-probabilities with known peaks."""

from __future__ import annotations

import pytest
import torch

from avsr.data.tokenizer import CharTokenizer
from avsr.decoding.align import align_words, can_align
from avsr.preprocessing import FRAME_S, VIDEO_FPS

TOKENIZER = CharTokenizer()


def peaks(frames: int, at: dict[int, str], peak: float = 0.0) -> torch.Tensor:
    """Log-probabilities ``(T, V)``: blank on every frame but those of ``at``, where its character
    has log-probability ``peak`` and everything else -20."""
    log_probs = torch.full((frames, TOKENIZER.vocab_size), -20.0)
    log_probs[:, TOKENIZER.blank] = 0.0
    for frame, char in at.items():
        log_probs[frame], log_probs[frame, TOKENIZER.encode(char)[0]] = -20.0, peak
    return log_probs


def test_words_are_placed_on_the_frames_where_their_characters_peak():
    spikes = {5: "b", 6: "i", 8: "n", 12: " ", 20: "r", 21: "e", 23: "d", 40: " ", 44: "n", 45: "o", 50: "w"}
    words = align_words(peaks(60, spikes).log_softmax(-1), "bin red now", TOKENIZER, offset_s=10.0)
    # A word runs from its first character's frame to the end of its last one's, 25 frames a second.
    assert FRAME_S == 1 / VIDEO_FPS == 0.04
    assert [(w.word, round(w.start_s, 2), round(w.end_s, 2)) for w in words] == [
        ("bin", 10.2, 10.36), ("red", 10.8, 10.96), ("now", 11.76, 12.04)]
    assert all(w.confidence > 0.99 for w in words)


def test_a_character_held_over_several_frames_spans_them_all():
    spikes = {3: "h", 4: "i", 5: "i", 6: "i", 7: "i"}  # "hi", its i held for four frames
    [word] = align_words(peaks(10, spikes).log_softmax(-1), "hi", TOKENIZER)
    assert (word.start_s, word.end_s) == pytest.approx((3 * FRAME_S, 8 * FRAME_S))


def test_confidence_is_the_mean_probability_of_the_words_characters():
    log_probs = torch.full((8, TOKENIZER.vocab_size), -30.0)
    log_probs[:, TOKENIZER.blank] = 0.0
    for frame, char, prob in ((2, "o", 0.5), (3, "k", 0.5)):
        log_probs[frame] = torch.tensor(0.5 / (TOKENIZER.vocab_size - 1)).log()  # the rest shared evenly
        log_probs[frame, TOKENIZER.encode(char)[0]] = torch.tensor(prob).log()
    [word] = align_words(log_probs, "ok", TOKENIZER)
    assert word.confidence == pytest.approx(0.5, abs=1e-4)
    assert (word.start_s, word.end_s) == pytest.approx((2 * FRAME_S, 4 * FRAME_S))


def test_a_repeated_character_needs_a_blank_between_its_frames():
    e = TOKENIZER.encode("e")[0]
    assert not can_align([e, e], 2) and can_align([e, e], 3) and can_align([e, e + 1], 2)
    with pytest.raises(ValueError, match="3 tokens cannot be aligned to 3 frames"):
        align_words(peaks(3, {}), "see", TOKENIZER)  # s, e, blank, e: 4 frames at least
    assert align_words(peaks(3, {}), "  ", TOKENIZER) == []


def test_each_token_says_which_word_it_belongs_to():
    ids = TOKENIZER.encode("ab  c d")
    assert TOKENIZER.words_of(ids) == [0, 0, None, None, 1, None, 2]
