"""Windows and chunks (avsr.inference.chunks): windows that tile a recording, and cuts at pauses,
placed where the picture changes inside them."""

from __future__ import annotations

import numpy as np

from avsr.inference.chunks import chunk_plan, first_windows, pause_cuts, windows
from tests.conftest import SPEECH, read_wav


def test_windows_tile_the_recording():
    for frames in (10, 750, 751, 2000, 9001):
        plan = windows(frames, 750, 50)
        kept = [i for _, _, a, b in plan for i in range(a, b)]
        assert kept == list(range(frames))
        for start, stop, keep_from, keep_to in plan:
            assert start <= keep_from < keep_to <= stop <= frames and stop - start <= 750


def test_the_first_windows_of_a_chunk_are_those_of_every_longer_chunk():
    """What the model may read before a chunk's end is known (avsr.inference.stream)."""
    for at_least in (10, 750, 1449, 1450, 1451, 3000):
        first = first_windows(at_least, 750, 50)
        assert len(first) == max(0, -(-(at_least - 750) // 700))
        for frames in range(at_least, at_least + 1500, 7):
            assert windows(frames, 750, 50)[: len(first)] == first


def test_a_pause_is_cut_where_the_picture_changes_inside_it():
    speech, rate = read_wav(SPEECH)
    gap = np.zeros(rate // 2, np.float32)  # 12.5 frames of silence
    audio = np.concatenate([speech, gap, speech])
    frames = len(audio) // 640
    rng = np.random.default_rng(0)
    roi = np.clip(100 + rng.normal(0, 2, (frames, 96, 96)), 0, 255).astype(np.uint8)  # one face, small motion
    [middle] = pause_cuts(audio, min_pause_frames=6)
    assert pause_cuts(audio, 6, roi) == [middle]  # no picture cut: the middle of the pause
    for change in (middle - 4, middle + 3):  # another face from this frame on
        other = roi.copy()
        other[change:] = np.clip(other[change:].astype(int) + 60, 0, 255)
        assert pause_cuts(audio, 6, other) == [change]
    far = roi.copy()
    far[middle + 40:] = np.clip(far[middle + 40:].astype(int) + 60, 0, 255)  # a picture cut during speech
    assert pause_cuts(audio, 6, far) == [middle]


def test_pauses_are_found_in_speech_and_not_in_noise():
    speech, rate = read_wav(SPEECH)
    gap = np.zeros(rate // 2, np.float32)  # 0.5 s of silence = 12.5 frames
    audio = np.concatenate([speech, gap, speech, gap, speech])
    cuts = pause_cuts(audio, min_pause_frames=6)
    gaps = [(len(speech) + k * (len(speech) + len(gap))) / 640 for k in range(2)]
    assert all(any(g <= c <= g + 12.5 for c in cuts) for g in gaps), (cuts, gaps)
    assert pause_cuts(np.random.default_rng(0).standard_normal(len(audio)).astype(np.float32), 6) == []
    plan = chunk_plan(1000, [300, 700], window=250, overlap=50)
    assert [i for _, _, a, b in plan for i in range(a, b)] == list(range(1000))
    assert all(b - a <= 250 for a, b, _, _ in plan) and {(0, 250), (700, 950)} <= {(a, b) for a, b, _, _ in plan}
