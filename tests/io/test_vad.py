"""Voice activity (avsr/io/vad.py) on real recordings, and speech regions from a probability."""

from __future__ import annotations

import numpy as np
import pytest

from avsr.errors import OptionError
from avsr.io.vad import VadOptions, audio_speech_probability, silero_probability, speech_regions
from avsr.preprocessing import SAMPLE_RATE, SAMPLES_PER_FRAME
from tests.conftest import MUSIC, SPEECH, read_wav


def resampled(path) -> np.ndarray:
    import librosa

    audio, rate = read_wav(path)
    return librosa.resample(audio.astype(np.float32), orig_sr=rate, target_sr=SAMPLE_RATE) if rate != SAMPLE_RATE \
        else audio.astype(np.float32)


def test_real_speech_is_speech_and_music_noise_and_room_tone_are_not():
    speech = audio_speech_probability(resampled(SPEECH))
    assert len(speech) == len(resampled(SPEECH)) // SAMPLES_PER_FRAME
    assert (speech >= 0.5).mean() > 0.7
    rng = np.random.default_rng(0)
    for name, audio in [("music", resampled(MUSIC)),
                        ("white noise at -20 dBFS", (0.1 * rng.standard_normal(5 * SAMPLE_RATE)).astype(np.float32)),
                        ("room tone at -60 dBFS", (1e-3 * rng.standard_normal(5 * SAMPLE_RATE)).astype(np.float32))]:
        assert (audio_speech_probability(audio) >= 0.5).mean() < 0.02, name


def test_the_probability_follows_the_speech_along_the_file():
    speech = resampled(SPEECH)
    quiet = (1e-3 * np.random.default_rng(1).standard_normal(3 * SAMPLE_RATE)).astype(np.float32)
    probability = audio_speech_probability(np.concatenate([quiet, speech, quiet]))
    regions = speech_regions(probability)
    assert len(regions) >= 1
    first, last = regions[0][0], regions[-1][1]
    assert 75 - 10 <= first <= 75 + 10, first  # the speech starts 3 s (75 frames) in
    speech_end = 75 + len(speech) // SAMPLES_PER_FRAME
    assert speech_end - 15 <= last <= speech_end + 10, (last, speech_end)


def test_blocks_give_the_same_probability_as_one_call(monkeypatch):
    import avsr.io.vad

    audio = np.tile(resampled(SPEECH), 7)  # 657 Silero frames: two blocks, the state carried across
    blocked = silero_probability(audio)
    assert blocked.shape == (-(-len(audio) // 512),)
    monkeypatch.setattr(avsr.io.vad, "SILERO_BLOCK", 10 ** 6)
    assert np.allclose(silero_probability(audio), blocked, atol=1e-5)


def test_regions_close_short_pauses_drop_short_bursts_and_are_padded():
    p = np.zeros(200, np.float32)
    p[20:60] = 0.9   # speech
    p[64:80] = 0.9   # after a 4-frame (0.16 s) pause: the same region
    p[120:121] = 0.9  # a 1-frame click: dropped
    p[150:190] = 0.9  # after a long pause: a second region
    options = VadOptions(threshold=0.5, min_speech_s=0.1, min_pause_s=0.3, pad_s=0.2)
    assert speech_regions(p, options) == [(15, 85), (145, 195)]
    assert speech_regions(p, VadOptions(pad_s=2.0)) == [(0, 200)]  # padded regions that meet are joined
    assert speech_regions(np.zeros(50, np.float32)) == []


def test_long_regions_are_cut_at_their_pauses_into_pieces_no_longer_than_asked():
    rng = np.random.default_rng(0)
    p = np.full(1500, 0.95, np.float32)  # 60 s of speech ...
    pauses = [310, 640, 905, 1220]  # ... with brief dips (one frame under the threshold: not region edges)
    for frame in pauses:
        p[frame - 2: frame + 3] = [0.6, 0.4, 0.2, 0.4, 0.6]
    p += rng.uniform(-0.03, 0.03, len(p)).astype(np.float32)
    pieces = speech_regions(p, VadOptions(max_region_s=20.0))
    assert pieces[0][0] == 0 and pieces[-1][1] == 1500
    assert all(b - a <= 500 for a, b in pieces)
    assert all(a == b for (_, a), (b, _) in zip(pieces, pieces[1:]))  # contiguous
    assert {a for a, _ in pieces[1:]} <= set(pauses), pieces  # every cut at a pause
    assert speech_regions(p, VadOptions()) == [(0, 1500)]


@pytest.mark.parametrize("field, value", [("threshold", 1.5), ("threshold", float("nan")), ("pad_s", -1.0),
                                          ("min_pause_s", float("inf")), ("max_region_s", 1.0)])
def test_bad_options_are_refused_naming_the_option(field, value):
    with pytest.raises(OptionError, match=field):
        VadOptions(**{field: value})
