"""Several faces in ``avsr transcribe`` (issue 35, items 3 and 4): the speaking face is read, and each word
says whose it is. Synthetic clips of the shared test corpus composed side by side, as in test_speaker.py."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from avsr.inference.outputs import render, subtitle_cues
from avsr.inference.prepare import prepare_input
from avsr.inference.speaker import HOLD_S
from avsr.io.face_align import true_runs
from avsr.inference.transcribe import TranscribeOptions, Transcriber
from avsr.io.media import load_media
from avsr.io.writer import write_video
from avsr.preprocessing import SAMPLES_PER_FRAME
from avsr.synth.conversation import held_frames, side_by_side
from avsr.text import word_error_rate
from tests.conftest import avsr_main


def _held(clip: dict, frames: int, scale: float = 1.0) -> np.ndarray:
    return held_frames(clip["video"], frames, scale)


def _side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    return side_by_side([left, right])


@pytest.fixture(scope="module")
def faces_media(synth_corpus, tmp_path_factory) -> dict:
    """Clips A and B (two test speakers) alone and composed, written as files:
    ``single`` A alone; ``beside`` A beside a larger silent face (B's, held); ``turns`` A speaks on the
    left while B's face holds still on the right, then B speaks while A holds, audio A then B;
    ``nobody`` both faces held over room tone. Also each clip's left half width (``split``)."""
    folder = tmp_path_factory.mktemp("faces")
    test = synth_corpus.split("test")
    a = test[0]
    b = next(clip for clip in test if clip["speaker"] != a["speaker"])
    media_a, media_b = load_media(a["video"]), load_media(b["video"])
    ta, tb = len(media_a.video), len(media_b.video)
    audio_a = media_a.audio[: ta * SAMPLES_PER_FRAME]
    clips = {"single": (media_a.video, audio_a),
             "beside": (_side_by_side(media_a.video, _held(b, ta, 1.4)), audio_a)}
    left = np.concatenate([media_a.video, np.repeat(media_a.video[-1:], tb, axis=0)])
    right = np.concatenate([_held(b, ta), media_b.video])
    clips["turns"] = (_side_by_side(left, right),
                      np.concatenate([audio_a, media_b.audio[: tb * SAMPLES_PER_FRAME]]))
    rng = np.random.default_rng(0)
    clips["nobody"] = (_side_by_side(_held(a, 50), _held(b, 50)),
                       (0.003 * rng.standard_normal(50 * SAMPLES_PER_FRAME)).astype(np.float32))
    paths = {name: write_video(folder / f"{name}.mp4", frames, audio=audio) for name, (frames, audio) in clips.items()}
    words_b = [{**w, "start_s": w["start_s"] + ta / 25, "end_s": w["end_s"] + ta / 25} for w in b["words"]]
    return {"paths": paths, "a": a, "b": b, "split": media_a.video.shape[2],
            "turn_words": [(w, "left") for w in a["words"]] + [(w, "right") for w in words_b]}


@pytest.fixture(scope="module")
def transcripts(faces_media, model) -> dict:
    transcriber = Transcriber(model.network, model.tokenizer, model.id, TranscribeOptions())
    out = {name: transcriber(path) for name, path in faces_media["paths"].items() if name in ("single", "beside")}
    for name in ("turns", "nobody"):  # what was read is checked too
        out[f"{name}_prepared"] = prepare_input(faces_media["paths"][name])
        out[name] = transcriber.recognise(out[f"{name}_prepared"])
    one_face = Transcriber(model.network, model.tokenizer, model.id, TranscribeOptions(every_face=False))
    out["single_one_face"] = one_face(faces_media["paths"]["single"])
    return out


def _side(face: dict | None, split: int) -> str | None:
    if face is None:
        return None
    x0, _, x1, _ = face["box"]
    return "left" if (x0 + x1) / 2 < split else "right"


def test_a_single_face_file_gives_the_outputs_of_the_single_face_path(transcripts):
    """Tracking every face changes nothing where there is one: the same .json, byte for byte (the
    seconds each stage took aside), and every word on face 0."""
    every, one = (replace(transcripts[name], timings_s={}) for name in ("single", "single_one_face"))
    assert render(every, "json") == render(one, "json")
    words = json.loads(render(every, "json"))["words"]
    assert words and all(w["face"]["id"] == 0 and len(w["face"]["box"]) == 4 for w in words)
    assert "[face" not in render(every, "srt")


def test_the_speaking_face_is_read_beside_a_larger_silent_one(faces_media, transcripts):
    truth = faces_media["a"]["text"]
    beside, single = transcripts["beside"], transcripts["single"]
    wer_beside, wer_single = word_error_rate([truth], [beside.text]), word_error_rate([truth], [single.text])
    print(f"WER one face {wer_single:.3f}, beside a larger silent face {wer_beside:.3f}")
    assert wer_beside <= wer_single + 0.05, (truth, beside.text, single.text)
    faces = [w.face for w in beside.words]
    assert faces and all(_side(face, faces_media["split"]) == "left" for face in faces), faces
    assert len({face["id"] for face in faces}) == 1
    assert all(_side(s.face, faces_media["split"]) == "left" for s in beside.segments)


def test_the_crops_read_follow_the_speaking_face(faces_media, transcripts):
    """Frame by frame, the model reads the speaking face's crops, and nobody's where nobody speaks (but through
    a short pause, where it reads the speaker's still face)."""
    prepared = transcripts["turns_prepared"]
    assert prepared.face_boxes.shape[:2] == (2, prepared.frames)
    centres = np.nanmean(prepared.face_boxes[:, :, [0, 2]], axis=(1, 2))
    left = int(np.argmin(centres))
    assert centres[left] < faces_media["split"] < centres[1 - left]
    ids = prepared.face_ids
    assert prepared.face_found[ids >= 0].all()
    held = prepared.face_found & (ids < 0)
    assert all(stop - start <= HOLD_S * 25 for start, stop in true_runs(held))
    for (word, side) in faces_media["turn_words"]:  # the middle of each spoken word
        frame = int((word["start_s"] + word["end_s"]) / 2 * 25)
        assert ids[frame] == (left if side == "left" else 1 - left), (word, side, ids[frame])
    assert (prepared.roi[~prepared.face_found] == 0).all()
    assert not transcripts["nobody_prepared"].face_found.any()


def test_two_speakers_taking_turns_each_word_on_its_face(faces_media, transcripts):
    turns, truth = transcripts["turns"], faces_media["turn_words"]
    right = 0
    for word in turns.words:  # the true word it overlaps most says whose it is
        overlap = [min(word.end_s, w["end_s"]) - max(word.start_s, w["start_s"]) for w, _ in truth]
        right += _side(word.face, faces_media["split"]) == truth[int(np.argmax(overlap))][1]
    share = right / max(len(turns.words), 1)
    reference = f"{faces_media['a']['text']} {faces_media['b']['text']}"
    print(f"turns: {right}/{len(turns.words)} words on their face ({share:.1%}); "
          f"WER {word_error_rate([reference], [turns.text]):.3f}")
    assert len(turns.words) >= 0.8 * len(truth) and share >= 0.95
    cues = subtitle_cues(turns)
    srt = render(turns, "srt")
    changes = [cue.face for cue in cues]
    expected = 1 + sum(x != y for x, y in zip(changes, changes[1:]))
    assert srt.count("[face ") == expected >= 2, srt
    assert render(turns, "vtt").count("[face ") == expected


def test_nobody_speaking_gives_no_words(transcripts):
    assert transcripts["nobody"].words == [] and transcripts["nobody"].text == ""



def test_from_the_lips_alone_the_speaking_face_is_read(faces_media, model):
    """Lips alone (video mode), where the face read is all there is: beside a larger silent face, the
    speaker's words as from its clip alone (the largest face read gives nothing); taking turns, each
    speaker's words (the first face read throughout gives the first speaker's alone)."""
    paths, a, b = faces_media["paths"], faces_media["a"]["text"], faces_media["b"]["text"]

    def wer(every_face: bool, name: str, truth: str) -> float:
        transcriber = Transcriber(model.network, model.tokenizer, model.id,
                                  TranscribeOptions(mode="video", every_face=every_face))
        return word_error_rate([truth], [transcriber(paths[name]).text])

    single, beside, beside_one = wer(True, "single", a), wer(True, "beside", a), wer(False, "beside", a)
    turns, turns_one = wer(True, "turns", f"{a} {b}"), wer(False, "turns", f"{a} {b}")
    print(f"lips alone: WER one face {single:.3f}, beside a larger silent face {beside:.3f} (largest face read: "
          f"{beside_one:.3f}), turns {turns:.3f} (first face read: {turns_one:.3f})")
    assert beside <= single + 0.05 and beside_one >= 0.5
    assert turns <= 0.35 and turns < turns_one


def test_render_boxes_every_face_and_highlights_the_speaker(faces_media, transcripts):
    """``avsr render``'s frame: a box on each face, the speaking one's in SPEAKER_COLOUR, the other's in
    FACE_COLOUR, and the running transcript labelled with the faces."""
    from avsr.inference.render import FACE_COLOUR, SPEAKER_COLOUR, draw_frame, spoken_text

    prepared, turns = transcripts["turns_prepared"], transcripts["turns"]
    frames = load_media(faces_media["paths"]["turns"], audio=False).video
    for word, _ in faces_media["turn_words"][1:2] + faces_media["turn_words"][-2:-1]:  # one word of each speaker
        frame = int((word["start_s"] + word["end_s"]) / 2 * 25)
        drawn = draw_frame(frames[frame], frame, prepared, turns).astype(float)
        speaking = int(prepared.face_ids[frame])
        for face, colour in ((speaking, SPEAKER_COLOUR), (1 - speaking, FACE_COLOUR)):
            x0, y0, x1, y1 = np.round(prepared.face_boxes[face, frame]).astype(int)
            edge = drawn[y0 - 1: y0 + 2, (x0 + x1) // 2 - 3: (x0 + x1) // 2 + 4].reshape(-1, 3)
            assert np.linalg.norm(edge - colour, axis=1).min() < 40, (face, colour)
    text = spoken_text(turns, turns.duration_s, 500)
    assert text.startswith("[face ") and text.count("[face ") == 2, text


def test_the_command_names_the_faces_and_reads_the_largest_with_largest_face(faces_media, tmp_path):
    turns = faces_media["paths"]["turns"]
    for flag, out in (((), tmp_path / "every"), (("--largest-face",), tmp_path / "largest")):
        result = avsr_main("transcribe", turns, "-o", out, "--quiet", *flag)
        assert result.returncode == 0, result.stderr[-2000:]
    largest = (tmp_path / "largest" / "turns.srt").read_text()
    assert (tmp_path / "every" / "turns.srt").read_text().count("[face ") >= 2 and "[face" not in largest
    words = json.loads((tmp_path / "largest" / "turns.json").read_text())["words"]
    assert {w["face"]["id"] for w in words if w["face"]} == {0}


def test_each_word_takes_the_face_read_in_most_of_its_frames_with_that_faces_box():
    """``face_at``: the face read in most of a word's frames, its box at the middle frame (or the nearest
    frame of the word where it was found), None where no face was read; a video moved back by ``shift``
    frames takes its boxes that much later."""
    from avsr.inference.transcript import face_at

    ids = np.array([-1] * 10 + [0] * 10 + [1] * 10)
    boxes = np.full((2, 30, 4), np.nan, np.float32)
    boxes[0, 10:20] = [1, 2, 3, 4]
    boxes[1, :] = np.arange(30)[:, None] + np.array([0, 0, 10, 10])
    assert face_at(ids, boxes, 0.0, 0.4) is None  # frames 0-9: nobody read
    assert face_at(ids, boxes, 0.3, 0.7) == {"id": 0, "box": [1, 2, 3, 4]}  # frames 7-17: face 0 most
    assert face_at(ids, boxes, 0.64, 1.2) == {"id": 1, "box": [23, 23, 33, 33]}  # frames 16-29, middle 23
    assert face_at(ids, boxes, 0.64, 1.2, shift=3)["box"][0] == 26
    assert face_at(ids, boxes, 0.64, 1.2, face=0) == {"id": 0, "box": [1, 2, 3, 4]}  # nearest found: frame 19
    assert face_at(None, None, 0.0, 1.0) is None


def test_cues_part_where_the_face_changes_and_say_whose_they_are():
    from avsr.inference.transcript import Segment, Transcript, Word

    def transcript(faces: list[int | None]) -> Transcript:
        words = [Word(f"w{i}", 0.3 * i, 0.3 * i + 0.25, 0.9, None if f is None else {"id": f, "box": [0, 0, 1, 1]})
                 for i, f in enumerate(faces)]
        return Transcript("x.mp4", "", [Segment(0.0, words[-1].end_s, "", words)], "av", "m", "", 3.0, 1.0, [])

    cues = subtitle_cues(transcript([0, 0, 1, 1, None, 1, 0]))
    assert [c.text for c in cues] == ["[face 0] w0 w1", "[face 1] w2 w3 w4 w5", "[face 0] w6"]
    one = subtitle_cues(transcript([0, 0, None, 0]))
    assert [c.text for c in one] == ["w0 w1 w2 w3"]  # one face: no labels, no cuts (as before)
    words = json.loads(render(transcript([None, 1]), "json"))["words"]
    assert words[0]["face"] is None and words[1]["face"] == {"id": 1, "box": [0, 0, 1, 1]}
