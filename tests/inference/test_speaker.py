"""Who speaks: two synthetic faces side by side, one speaking and one held still."""

from __future__ import annotations

import numpy as np
import pytest

from avsr.inference.speaker import active_face, speaker_scores
from avsr.inference.sync import speech_envelope
from avsr.io.face_rois import extract_face_rois
from avsr.io.media import load_media


@pytest.fixture(scope="module")
def two_faces(synth_corpus):
    """A test clip beside another speaker's first frame held: frames ``(T, H, 2W, 3)`` and audio."""
    speaking, still = synth_corpus.split("test")[0], synth_corpus.split("test")[-1]
    media = load_media(speaking["video"])
    held = load_media(still["video"], audio=False).video[:1]
    frames = np.concatenate([media.video, np.repeat(held, len(media.video), axis=0)], axis=2)
    return frames, media.audio


def test_the_speaking_face_scores_higher_in_its_speech(two_faces):
    frames, audio = two_faces
    rois = extract_face_rois(frames)
    assert rois.faces == 2
    left = int(np.argmin(np.nanmean(rois.boxes[:, :, 0], axis=1)))  # the speaking clip is on the left
    envelope = speech_envelope(audio)[: len(rois)]
    speech = envelope > envelope.max() - 25  # the loud frames: speech
    for sound in (audio, None):  # with the audio, and on mouth motion alone
        scores = speaker_scores(rois, sound)
        assert (scores[left, speech] > scores[1 - left, speech]).mean() >= 0.95
        assert (active_face(scores)[speech] == left).mean() >= 0.9
