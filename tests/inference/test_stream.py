"""The model reading a file's windows while the file is still being cut (avsr.inference.stream)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

import avsr
from avsr.inference.chunks import chunk_plan
from avsr.inference.prepare import prepare_input
from avsr.inference.regions import find_regions, inside, speech_probability
from avsr.inference.transcribe import TranscribeOptions, Transcriber
from avsr.io.media import load_media
from avsr.io.writer import write_video

# Windows of 2 s read one at a time: a 12-clip recording of ~22 s has many, settled long before its end.
OPTIONS = TranscribeOptions(window_s=2.0, overlap_s=0.4, batch_size=1)


@pytest.fixture(scope="module")
def model():
    return avsr.load_model("synth-grid-tiny")


@pytest.fixture(scope="module")
def joined(synth_corpus, tmp_path_factory):
    """Twelve clips of the shared test corpus one after the other, in one file with its audio."""
    media = [load_media(c["video"]) for c in synth_corpus.first(12)]
    frames = np.concatenate([m.video for m in media])
    audio = np.concatenate([np.pad(m.audio, (0, len(m.video) * 640 - len(m.audio)))[: len(m.video) * 640]
                            for m in media])
    return write_video(tmp_path_factory.mktemp("stream") / "joined.mp4", frames, audio=audio)


def groups_of(transcriber: Transcriber, prepared) -> list[tuple]:
    """The groups of windows recognition runs for ``prepared`` (av mode, no offset undone)."""
    o, spec = transcriber.options, transcriber.model.preprocessing
    probability = speech_probability("av", prepared.audio, prepared.has_audio, prepared.mouth_signal,
                                     prepared.face_found)
    cuts, spans = transcriber._plan(prepared, "av", find_regions(probability, o.vad_options), probability)
    plan = [window for window in chunk_plan(prepared.frames, cuts, round(o.window_s * spec.fps),
                                            round(o.overlap_s * spec.fps)) if inside(window, spans)]
    return [tuple(plan[i: i + o.batch_size]) for i in range(0, len(plan), o.batch_size)]


def test_windows_read_while_cutting_are_those_recognition_runs_and_give_its_transcript(model, joined):
    """The early reading guessed the plan right on a real recording (every group it ran is one that
    recognition runs), read most of it before the file was cut, and the transcript and gate weights
    are exactly those of a file prepared without it."""
    transcriber = Transcriber(model.network, model.tokenizer, model.id, OPTIONS)
    streamed, plain = prepare_input(joined, reader=transcriber), prepare_input(joined)
    assert plain.early is None and streamed.early_mode == "av"
    groups = groups_of(transcriber, streamed)
    assert set(streamed.early) <= set(groups)
    assert len(streamed.early) >= len(groups) // 2, f"{len(streamed.early)} of {len(groups)} groups read early"
    np.testing.assert_array_equal(streamed.roi, plain.roi)
    np.testing.assert_array_equal(streamed.audio, plain.audio)
    ours, theirs = transcriber.recognise(streamed), transcriber.recognise(plain)
    assert ours.text == theirs.text and ours.text
    np.testing.assert_array_equal(ours.audio_weight, theirs.audio_weight)  # NaN (not read) in both alike


def test_a_batch_reads_while_cutting_when_asked_and_writes_the_same(model, joined, tmp_path, monkeypatch):
    """``transcribe_batch`` hands its transcriber to the preparation when ``read_while_cutting`` is on
    (the default only for a model on a GPU), and the model reads windows early; the outputs are those
    of a batch without it."""
    import avsr.inference.prepare as prepare_module
    from avsr.inference.batch import transcribe_batch
    from avsr.inference.stream import EarlyForward

    made = []

    class Recorded(EarlyForward):  # the real reader, kept to look at
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(prepare_module, "EarlyForward", Recorded)
    assert Transcriber(model.network, model.tokenizer, model.id).reader is None  # on the CPU
    outputs = {}
    for early in (False, True):
        options = replace(OPTIONS, read_while_cutting=early)
        [result] = transcribe_batch([joined], model, tmp_path / str(early), options=options, progress=False)
        assert result.status == "done" and len(made) == int(early)
        record = json.loads((tmp_path / str(early) / f"{joined.stem}.json").read_text())
        outputs[early] = (record["text"], record["audio_weight"])
    assert outputs[True] == outputs[False]
    assert len(made) == 1 and made[0].outputs


def test_recognition_takes_the_early_outputs_only_for_the_mode_they_were_read_in(model, joined):
    """Outputs read early are used (spoiling them spoils the transcript), and not when the file is
    recognised in another mode than the one they were read in."""
    transcriber = Transcriber(model.network, model.tokenizer, model.id, OPTIONS)
    prepared = prepare_input(joined, reader=transcriber)
    right = transcriber.recognise(prepared)
    for kept in prepared.early.values():
        for log_probs, *_ in kept:
            log_probs.copy_(torch.log_softmax(torch.zeros_like(log_probs), -1))  # nothing but ties
    assert transcriber.recognise(prepared).text != right.text
    video = Transcriber(model.network, model.tokenizer, model.id, replace(OPTIONS, mode="video"))
    assert video.recognise(prepared).text == video.recognise(prepare_input(joined)).text


def test_a_header_shorter_than_the_video_gets_its_audio_read_again(model, joined, monkeypatch):
    """The audio is read before the video, at the length the header gives; a video that runs longer
    gets the whole audio all the same (read again), and the early reading stops where the audio read
    first ends."""
    import avsr.inference.prepare as prepare_module

    monkeypatch.setattr(prepare_module, "header_frames", lambda probe: 10)  # 0.4 s (+ 1 s read)
    transcriber = Transcriber(model.network, model.tokenizer, model.id, OPTIONS)
    short = prepare_input(joined, reader=transcriber)
    monkeypatch.undo()
    plain = prepare_input(joined)
    np.testing.assert_array_equal(short.audio, plain.audio)
    assert all(stop <= 35 for group in short.early for _, stop, _, _ in group)
    assert transcriber.recognise(short).text == transcriber.recognise(plain).text
