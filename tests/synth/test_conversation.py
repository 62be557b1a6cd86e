"""Conversations (``avsr synth --faces-per-clip``): the shared test corpus's test utterances composed into clips of
two speakers taking turns (tests/conftest.py ``conversation_corpus``), checked against their truth with the
project's own media loader, landmarker and speech envelope."""

from __future__ import annotations

import json

import numpy as np
import pytest

from avsr.data.manifest import read_jsonl
from avsr.evaluation.speakers import match_faces, read_speaker_truth
from avsr.inference.sync import mouth_opening, speech_envelope
from avsr.io.face_rois import extract_face_rois
from avsr.io.lip_roi import LipRoiOptions
from avsr.io.media import load_media
from avsr.io.writer import write_video
from avsr.synth.conversation import held_frames, side_by_side, tile_boxes
from avsr.synth.corpus import load_faces
from avsr.synth.face_rig import BLINK_SHAPE, MouthAnimator, blink_track, build_rig, close_eyes
from avsr.synth.options import ConversationOptions
from avsr.errors import OptionError
from tests.conftest import avsr_main


@pytest.fixture(scope="module")
def clips(conversation_corpus) -> list[dict]:
    """Every conversation: its record, side file, media and every face's crops (landmarks on every frame), each
    tracked face matched to its truth face."""
    out = []
    for record in read_jsonl(conversation_corpus / "test.jsonl"):
        path = conversation_corpus / record["video"]
        rois = extract_face_rois(path, LipRoiOptions(detect_every=1))
        truth = read_speaker_truth(path.with_suffix(".json"))
        out.append({"record": record, "path": path, "side": json.loads(path.with_suffix(".json").read_text()),
                    "media": load_media(path), "rois": rois, "truth": truth,
                    "matched": match_faces(rois.boxes, truth.tiles)})
    return out


def test_the_truth_matches_the_turns(conversation_corpus, clips):
    alone = read_jsonl(conversation_corpus / "test_alone.jsonl")
    assert clips and len(alone) == sum(len(c["side"]["turns"]) for c in clips)
    for clip in clips:
        record, side, truth = clip["record"], clip["side"], clip["truth"]
        frames = len(clip["media"].video)
        assert len(side["active_face"]) == frames == round(record["duration_s"] * 25)
        assert record["faces"] == [face["speaker"] for face in side["faces"]] and len(set(record["faces"])) == 2
        assert record["text"] == " ".join(turn["text"] for turn in side["turns"])
        turns = side["turns"]
        assert all(a["face"] != b["face"] for a, b in zip(turns, turns[1:]))  # the speakers take turns
        assert all(record["faces"][t["face"]] == t["speaker"] for t in turns)
        # Nobody speaks before the first turn and after the last; the edges are quiet, the turns loud.
        first, last = int(turns[0]["start_s"] * 25), int(max(t["end_s"] for t in turns) * 25) + 1
        assert (truth.active[:first] == -1).all() and (truth.active[last:] == -1).all()
        envelope = speech_envelope(clip["media"].audio)[:frames]
        for turn in turns:
            middle = int((turn["start_s"] + turn["end_s"]) / 2 * 25)
            assert truth.speaking[turn["face"], middle]
            holders = [t["face"] for t in turns if t["start_s"] <= middle / 25 <= t["end_s"]]
            assert truth.active[middle] == holders[0]  # the floor holder where turns overlap
            assert envelope[middle] > np.median(envelope[: first - 2]) + 20
            own = [w for w in side["words"] if w["face"] == turn["face"]
                   and turn["start_s"] - 1e-3 <= w["start_s"] and w["end_s"] <= turn["end_s"] + 1e-3]
            assert " ".join(w["text"] for w in own) == turn["text"]  # its words, on its face, inside its speech
        assert len(side["words"]) == len(record["text"].split())


def test_the_landmarker_finds_each_face_in_its_tile_and_the_speaker_moves_its_lips(clips):
    for clip in clips:
        matched, truth, rois = clip["matched"], clip["truth"], clip["rois"]
        assert sorted(matched) == [0, 1]
        for face, target in enumerate(matched):
            opening = mouth_opening(rois.mouth_landmarks[face])
            speaking = truth.speaking[target]
            listening = truth.speaking[1 - target] & ~speaking
            assert np.nanstd(opening[speaking]) > 2 * np.nanstd(opening[listening])


def test_a_listener_keeps_idle_motion_with_its_mouth_closed(clips, tmp_path):
    """While the other face speaks, the listener's lips move a little (its landmarks several times more than a
    still picture of the same faces gives) but its mouth stays closed: its opening stays below what it reaches
    while speaking, and the renderer kept it at 0."""
    still_rois = extract_face_rois(write_video(tmp_path / "still.mp4", held_frames(
        clips[0]["path"], 50)), LipRoiOptions(detect_every=1))  # the clip's first frame held: the same faces, still
    still_motion = max(np.nanmean(np.nanstd(still_rois.mouth_landmarks[f], axis=0)) for f in range(still_rois.faces))
    for one in clips:
        truth, rois, side = one["truth"], one["rois"], one["side"]
        for face, target in enumerate(one["matched"]):
            listening = truth.speaking[1 - target] & ~truth.speaking[target]
            if listening.sum() < 10:
                continue
            landmarks = rois.mouth_landmarks[face][listening]
            motion = np.nanmean(np.nanstd(landmarks, axis=0))
            assert motion > 3 * still_motion and motion > 0.15, (motion, still_motion)
            opening = mouth_opening(rois.mouth_landmarks[face])
            assert np.nanpercentile(opening[listening], 95) < np.nanpercentile(opening[truth.speaking[target]], 75)
            rendered_open = np.asarray(side["mouth_open"][target])
            rendered_spread = np.asarray(side["mouth_spread"][target])
            quiet = listening & ~np.convolve(truth.speaking[target], np.ones(13), "same").astype(bool)
            assert (rendered_open[quiet] == 0).all() and rendered_spread[quiet].std() > 0.02


def test_blinks_close_the_eyes_and_leave_the_mouth():
    face = next(f for f in load_faces(None) if f.source == "biden.jpg#0")
    rig = build_rig(face.photo, face.points, 224, face.source)
    open_eyes = MouthAnimator(rig).mouth_frame(0.0, 0.0)
    shut = open_eyes.copy()
    close_eyes(shut, rig, 1.0)
    changed = np.abs(shut.astype(int) - open_eyes).max(axis=2) > 10
    ys, xs = np.nonzero(changed)
    eyes_y = rig.eyes[..., 1]
    assert changed.sum() > 50 and ys.min() >= eyes_y.min() - 0.5 * rig.mouth_width
    assert ys.max() < rig.mouth_centre[1] - 0.3 * rig.mouth_width  # nothing near the mouth
    track = blink_track(250, np.random.default_rng(0))
    starts = np.flatnonzero((track > 0) & (np.r_[0, track[:-1]] == 0))
    assert len(starts) >= 1 and (np.diff(starts) >= 2 * 25 - len(BLINK_SHAPE)).all() and track.max() == 1.0


def test_side_by_side_centres_and_even_sides():
    a, b = np.full((2, 101, 60, 3), 50, np.uint8), np.full((2, 120, 81, 3), 200, np.uint8)
    joined = side_by_side([a, b])
    assert joined.shape == (2, 120, 140, 3)
    (x0, y0, x1, y1), (u0, v0, u1, v1) = tile_boxes([a, b])
    assert (x0, y0, x1, y1) == (0, 9, 60, 110) and (u0, v0, u1, v1) == (60, 0, 140, 120)
    assert (joined[:, y0:y1, x0:x1] == 50).all() and (joined[:, :y0, x0:x1] == 0).all()


def test_bad_conversation_options_give_one_clear_error(synth_corpus, tmp_path):
    with pytest.raises(OptionError, match="faces-per-clip 1"):
        ConversationOptions(faces_per_clip=1)
    with pytest.raises(OptionError, match="--splits"):
        ConversationOptions(splits=("dev",))
    result = avsr_main("synth", tmp_path / "out", "--from", synth_corpus.folder)
    assert result.returncode != 0 and "--faces-per-clip" in result.stderr
    result = avsr_main("synth", tmp_path / "out", "--faces-per-clip", "3", "--from", synth_corpus.folder, "--splits",
                       "test")  # two test speakers
    assert result.returncode != 0 and "no split of test has 3 speakers" in result.stderr
    assert len([line for line in result.stderr.splitlines() if "error" in line]) == 1
