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


def test_nobody_speaks_in_a_pause_and_the_face_read_is_held_through_it(conversation_corpus):
    """A conversation of the test speakers: where the sound is quiet (before the first turn, between turns) no face
    scores, though the lips moved just before; the crops read stay on a speaker's face through a short pause,
    switching in its middle, where the recording is cut."""
    import json

    from avsr.inference.speaker import held_through_pauses, speaker_changes, voiced_frames

    record = json.loads((conversation_corpus / "test.jsonl").read_text().splitlines()[0])
    path = conversation_corpus / record["video"]
    truth = json.loads(path.with_suffix(".json").read_text())
    rois, audio = extract_face_rois(path), load_media(path, video=False).audio
    scores = speaker_scores(rois, audio)
    frames = min(len(truth["active_face"]), scores.shape[1])
    nobody = np.asarray(truth["active_face"][:frames]) < 0
    voiced = voiced_frames(speech_envelope(audio)[:frames])
    assert (scores[:, :frames][:, ~voiced] == 0).all() and (~voiced & nobody).sum() >= 0.5 * nobody.sum()
    assert (scores.max(axis=0)[:frames][~nobody] > 0).mean() >= 0.95  # the speech frames do score
    active = np.array([-1, -1, 0, 0, -1, -1, -1, -1, 1, 1, -1, -1])
    read = held_through_pauses(active, max_frames=4)
    assert read.tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    assert speaker_changes(active) == [6] and speaker_changes(np.array([0, 1])) == [1]
    assert held_through_pauses(np.array([0, -1, -1, -1, 1]), max_frames=2).tolist() == [0, -1, -1, -1, 1]
    assert held_through_pauses(np.full(5, -1)).tolist() == [-1] * 5  # nobody speaking: nothing read


def test_a_face_taken_for_a_moment_inside_anothers_turn_is_that_speakers():
    """The best score flickers to the other face for 0.16 s inside face 0's speech (it cut a turn in two and cost its
    words in the test conversations); a real change of speaker, and a flicker to nobody, are kept."""
    scores = np.zeros((2, 60), np.float32)
    scores[0, :30] = 0.8
    scores[1, 12:16] = 0.9  # 4 frames: a flicker
    scores[1, 30:] = 0.8  # the other face's turn
    scores[0, 40:42] = 0.0
    scores[1, 40:42] = 0.0  # 2 frames of nobody speaking
    active = active_face(scores)
    assert (active[:30] == 0).all() and (active[30:40] == 1).all() and (active[40:42] == -1).all()
    assert (active_face(scores, min_frames=1)[12:16] == 1).all()  # without the rule, as the scores say
