"""espeak-ng synthesis with timings, and the viseme mapping / coarticulation."""

from __future__ import annotations

import numpy as np
import pytest

from avsr.synth.text import GRID_SLOTS, TextError, normalise, read_sentences
from avsr.synth.tts import ENGLISH_VOICES, Phone, Synthesizer, Voice, VoiceError
from avsr.synth.visemes import DIPHTHONGS, PHONEME_TO_VISEME, VISEMES, mouth_track, phones_to_visemes, viseme_of


@pytest.fixture(scope="module")
def synthesizer() -> Synthesizer:
    return Synthesizer()


def test_words_and_phones_are_timed_in_order(synthesizer):
    utterance = synthesizer.synthesize("place red with k nine again", Voice("en-gb-x-rp", "f2", 170, 60))
    assert utterance.sample_rate == 22_050 and utterance.audio.dtype == np.float32
    assert [w.text for w in utterance.words] == "place red with k nine again".split()
    starts = [p.start_s for p in utterance.phones]
    assert starts == sorted(starts) and utterance.phones[-1].end_s == pytest.approx(utterance.duration_s)
    for word in utterance.words:
        assert 0 <= word.start_s < word.end_s <= utterance.duration_s
    # Speech energy sits inside the words, silence outside them.
    rms = lambda a, b: float(np.sqrt(np.mean(utterance.audio[int(a * 22050):int(b * 22050)] ** 2)))
    assert rms(utterance.words[0].start_s, utterance.words[-1].end_s) > 10 * rms(utterance.words[-1].end_s + 0.05,
                                                                                  utterance.duration_s)


def test_rate_changes_duration(synthesizer):
    slow = synthesizer.synthesize("set white by q seven soon", Voice("en-us", rate_wpm=130))
    fast = synthesizer.synthesize("set white by q seven soon", Voice("en-us", rate_wpm=220))
    assert fast.duration_s < 0.8 * slow.duration_s


def test_unknown_voice_is_a_clear_error(synthesizer):
    with pytest.raises(VoiceError, match="unknown espeak-ng voice 'xx-klingon'"):
        synthesizer.synthesize("hello", Voice("xx-klingon"))


def test_every_grid_phoneme_has_a_viseme(synthesizer):
    for name in ENGLISH_VOICES:
        for slot in GRID_SLOTS:
            for word in slot:
                for phone in synthesizer.synthesize(word, Voice(name)).phones:
                    symbol = phone.symbol.replace("'", "").replace(",", "")
                    assert symbol in PHONEME_TO_VISEME or symbol in DIPHTHONGS, (name, word, symbol)


def test_viseme_classes_group_what_looks_alike():
    assert viseme_of("p") == viseme_of("b") == viseme_of("m") == ("p_b_m",)
    assert viseme_of("f") == viseme_of("v") and viseme_of("k") == viseme_of("g")
    assert viseme_of("p") != viseme_of("f") != viseme_of("t")
    assert viseme_of("'aI") == ("vowel_open", "vowel_spread")
    # What the renderer draws: every phoneme of a class gives the same mouth, between vowels and with the
    # same timing, and every class gives a mouth of its own (no class that looks like another or that
    # no phoneme reaches).
    classes: dict[str, list[str]] = {}
    for phoneme, name in PHONEME_TO_VISEME.items():
        classes.setdefault(name, []).append(phoneme)
    assert set(classes) == {v.name for v in VISEMES}
    tracks = {}
    for name, phonemes in classes.items():
        first = _track_between_vowels(phonemes[0])
        for other in phonemes[1:]:
            np.testing.assert_array_equal(_track_between_vowels(other), first, err_msg=f"{other} in {name}")
        tracks[name] = first
    names = sorted(tracks)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.abs(tracks[a] - tracks[b]).max() > 0.02, (a, b)  # a lip reader could tell them apart


def _track_between_vowels(symbol: str) -> np.ndarray:
    """The mouth track ``(T, 2)`` of ``a <symbol> a``, 0.12 s per phoneme, with silence around it."""
    phones = [Phone(s, 0.12 * i, 0.12 * (i + 1)) for i, s in enumerate(["_", "a", symbol, "a", "_"])]
    return mouth_track(phones_to_visemes(phones), 15)


def test_mouth_closes_for_bilabials_and_blends_smoothly(synthesizer):
    utterance = synthesizer.synthesize("bin blue at a one now", Voice("en-us"))
    segments = phones_to_visemes(utterance.phones)
    frames = round(utterance.duration_s * 25)
    track = mouth_track(segments, frames)
    assert track.shape == (frames, 2)
    b = next(s for s in segments if VISEMES[s.viseme].name == "p_b_m")
    open_vowel = max(track[:, 0])
    assert track[int((b.start_s + b.end_s) / 2 * 25), 0] < 0.3 * open_vowel  # lips (nearly) closed on b
    assert np.abs(np.diff(track[:, 0])).max() < 0.35  # no jumps: coarticulated


def test_text_files_are_normalised_and_checked(tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("Hello, World!\n\nIt's a well-known test.\n")
    assert read_sentences(good) == ["hello world", "it's a well known test"]
    assert normalise("  Don’t   STOP ") == "don't stop"
    (tmp_path / "digits.txt").write_text("call 911 now\n")
    with pytest.raises(TextError, match="digits.txt:1: .*spell out numbers"):
        read_sentences(tmp_path / "digits.txt")
    (tmp_path / "empty.txt").write_text("\n  \n")
    with pytest.raises(TextError, match="holds no sentence"):
        read_sentences(tmp_path / "empty.txt")
