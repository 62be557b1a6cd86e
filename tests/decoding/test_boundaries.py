"""Word boundaries moved onto the audio (avsr/decoding/boundaries.py): held-out synthetic clips through the
Transcriber against the synthesiser's word times, the LibriVox reading, and two bursts around a pause."""

from __future__ import annotations

import numpy as np
import pytest

from avsr.decoding.align import WordTiming
from avsr.decoding.boundaries import (BoundaryOptions, envelope, nucleus_counts, refine_boundaries, spoken_length,
                                      syllables)
from avsr.inference.transcribe import TranscribeOptions, Transcriber
from avsr.models.loader import load_model
from avsr.preprocessing import SAMPLE_RATE
from tests.conftest import SPEECH, read_wav


def assert_in_order(words, regions: list[tuple[float, float]], shortest_s: float = BoundaryOptions().min_word_s,
                    ) -> None:
    """Words keep their order, never cross, each lies in one of ``regions`` (start and end, s) and lasts at least
    ``shortest_s``."""
    for word, following in zip(words, words[1:]):
        assert word.end_s <= following.start_s + 1e-9, (word, following)
    for word in words:
        assert any(a - 1e-9 <= word.start_s and word.end_s <= b + 1e-9 for a, b in regions), (word, regions)
        assert word.end_s - word.start_s >= shortest_s - 1e-9, word


def test_refined_starts_are_closer_to_the_synthesisers_than_the_aligned(synth_corpus):
    model = load_model("synth-grid-tiny")
    readers = {refine: Transcriber(model.network, model.tokenizer, model.id, TranscribeOptions(refine_words=refine))
               for refine in (False, True)}
    errors = {False: [], True: []}
    for clip in synth_corpus.split("test")[:3]:
        truth = [w["start_s"] for w in clip["words"]]
        for refine, reader in readers.items():
            transcript = reader(clip["video"])
            assert_in_order(transcript.words, transcript.speech_regions, BoundaryOptions().min_word_s if refine else 0)
            if [w.word for w in transcript.words] == [w["text"] for w in clip["words"]]:
                errors[refine] += [abs(w.start_s - t) for w, t in zip(transcript.words, truth)]
    assert len(errors[True]) == len(errors[False]) >= 6  # the text is the same either way
    assert np.median(errors[True]) < 0.6 * np.median(errors[False]), errors
    assert np.median(errors[True]) <= 0.06, errors[True]


def test_the_librivox_reading_keeps_its_words_in_order_inside_the_speech():
    audio, rate = read_wav(SPEECH)
    assert rate == SAMPLE_RATE
    words = SPEECH.with_suffix(".txt").read_text().split()
    duration_s = len(audio) / rate
    step = duration_s / len(words)  # evenly spread, as a poor alignment would be
    aligned = [WordTiming(w, i * step, (i + 0.8) * step, 1.0) for i, w in enumerate(words)]
    refined = refine_boundaries(aligned, audio, 0.0)
    assert [w.word for w in refined] == words
    assert_in_order(refined, [(0.0, duration_s)])
    assert refined != aligned
    for before, after in zip(aligned, refined):  # each boundary within the window of the alignment's
        assert abs(after.start_s - before.start_s) <= BoundaryOptions().window_s + step + 1e-9


def test_a_pause_between_two_bursts_separates_their_words():
    rng = np.random.default_rng(0)
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    audio = 1e-3 * rng.standard_normal(SAMPLE_RATE)
    for begin, end, pitch in ((0.1, 0.4, 220.0), (0.6, 0.9, 330.0)):  # two "words" with 0.2 s of quiet between
        inside = (t >= begin) & (t < end)
        audio[inside] += 0.3 * np.sin(2 * np.pi * pitch * t[inside])
    aligned = [WordTiming("lay", 0.15, 0.3, 1.0), WordTiming("bin", 0.75, 0.95, 1.0)]  # late, as CTC spikes are
    refined = refine_boundaries(aligned, audio.astype(np.float32), 0.0)
    assert [w.word for w in refined] == ["lay", "bin"]
    for word, (begin, end) in zip(refined, ((0.1, 0.4), (0.6, 0.9))):
        assert abs(word.start_s - begin) <= 0.02 and abs(word.end_s - end) <= 0.03, refined


def test_known_lengths_place_the_cuts_where_the_audio_marks_none():
    rng = np.random.default_rng(0)
    audio = np.concatenate([1e-3 * rng.standard_normal(SAMPLE_RATE // 10), 0.2 * rng.standard_normal(SAMPLE_RATE),
                            1e-3 * rng.standard_normal(SAMPLE_RATE // 10)]).astype(np.float32)  # 1 s of even noise
    aligned = [WordTiming(w, 0.1 + i / 3, 0.1 + (i + 1) / 3, 1.0) for i, w in enumerate(("bin", "bin", "bin"))]
    guessed = refine_boundaries(aligned, audio, 0.0)
    given = refine_boundaries(aligned, audio, 0.0, lengths=np.array([1.0, 3.0, 1.0]))
    assert [w.word for w in given] == ["bin"] * 3
    duration = [w.end_s - w.start_s for w in given]
    assert duration[1] > 2.5 * max(duration[0], duration[2]), given  # the cuts follow the lengths given ...
    assert abs(given[1].start_s - 0.3) <= 0.05 and abs(given[1].end_s - 0.9) <= 0.05, given
    assert abs(guessed[1].end_s - guessed[1].start_s - 1 / 3) <= 0.1, guessed  # ... not the spelling's guess
    with pytest.raises(ValueError, match="2 lengths for 3 words"):
        refine_boundaries(aligned, audio, 0.0, lengths=np.ones(2))


def test_a_stretch_without_speech_or_too_short_leaves_the_words():
    words = [WordTiming("bin", 0.0, 0.1, 1.0), WordTiming("blue", 0.1, 0.2, 1.0)]
    quiet = 1e-3 * np.random.default_rng(0).standard_normal(SAMPLE_RATE).astype(np.float32)
    assert refine_boundaries(words, quiet, 0.0) == words
    assert refine_boundaries([], quiet, 0.0) == []


@pytest.mark.parametrize("word, length", [("seven", 5), ("place", 4), ("green", 4), ("eight", 2), ("six", 4),
                                          ("with", 3), ("e", 1), ("w", 6), ("q", 3), ("b", 2), ("it's", 3)])
def test_a_word_is_as_long_as_its_sounds_and_a_lone_letter_as_its_name(word, length):
    assert spoken_length(word) == length


@pytest.mark.parametrize("word, count", [("seven", 2), ("one", 1), ("place", 1), ("again", 2), ("table", 2),
                                         ("w", 3), ("x", 1), ("zero", 2), ("please", 1), ("the", 1)])
def test_a_word_has_its_syllables_and_a_lone_letter_its_names(word, count):
    assert syllables(word) == count


def test_each_loud_voiced_burst_is_one_syllable_nucleus():
    rng = np.random.default_rng(0)
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    audio = 1e-3 * rng.standard_normal(SAMPLE_RATE)
    for centre in (0.2, 0.45, 0.75):  # three vowels, each rising and falling over 160 ms, and quieter between
        audio += 0.3 * np.exp(-0.5 * ((t - centre) / 0.04) ** 2) * np.sin(2 * np.pi * 180 * t)
    audio += 0.03 * np.sin(2 * np.pi * 180 * t)  # voicing goes on between them, as it does across "seven"
    _, log_mel = envelope(audio.astype(np.float32))
    counts = nucleus_counts(log_mel, BoundaryOptions())
    assert counts[-1] == 3
    assert counts[32] == 1 and counts[60] == 2  # frames at 0.32 and 0.6 s: one nucleus in each burst, none between
    assert nucleus_counts(log_mel, BoundaryOptions(nucleus_prominence_db=40.0))[-1] == 0


def test_the_command_line_keeps_the_ctc_times_when_asked(synth_corpus, tmp_path):
    import json
    import subprocess

    from tests.conftest import AVSR

    clip = synth_corpus.split("test")[0]
    words = {}
    for name, flags in (("refined", ()), ("ctc", ("--ctc-word-times",))):
        done = subprocess.run([AVSR, "transcribe", str(clip["video"]), "-o", str(tmp_path / name), "--quiet", *flags],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        written = json.loads(next((tmp_path / name).glob("*.json")).read_text())["words"]
        words[name] = [(w["word"], w["start_s"]) for w in written]
    assert [w for w, _ in words["refined"]] == [w for w, _ in words["ctc"]]
    assert [s for _, s in words["refined"]] != [s for _, s in words["ctc"]]
