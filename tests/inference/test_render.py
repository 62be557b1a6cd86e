"""`avsr render` on a synthetic clip: every frame drawn, the bar follows the gate, the box sits on the mouth."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

import avsr
from avsr.inference.render import AUDIO_COLOUR, BOX_COLOUR, VIDEO_COLOUR, bar_split, mouth_box, panel_height
from avsr.inference.prepare import prepare_input
from avsr.inference.transcribe import TranscribeOptions, Transcriber
from avsr.io.frames import frame_to_rgb
from avsr.io.media import iter_video_frames
from avsr.io.writer import write_video
from tests.conftest import avsr_main

AVSR = str(Path(sys.executable).with_name("avsr"))


@pytest.fixture(scope="module")
def clip(synth_corpus) -> Path:
    return synth_corpus.split("test")[0]["video"]


@pytest.mark.slow
def test_render_draws_the_gate_weight_mouth_box_and_keeps_the_audio(clip, tmp_path):
    out = tmp_path / "rendered.mp4"
    result = subprocess.run([AVSR, "render", str(clip), "-o", str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    source = [frame_to_rgb(f) for f in iter_video_frames(clip)]
    drawn = [frame_to_rgb(f) for f in iter_video_frames(out)]
    height, width = source[0].shape[:2]
    assert len(drawn) == len(source)
    assert drawn[0].shape == (height + panel_height(width), width, 3)
    with av.open(str(out)) as container:
        assert container.streams.audio and float(container.streams.audio[0].duration *
                                                 container.streams.audio[0].time_base) > 0.9 * len(source) * 0.04

    model = avsr.load_model("synth-grid-tiny")
    prepared = prepare_input(clip)
    transcript = Transcriber(model.network, model.tokenizer, model.id, TranscribeOptions()).recognise(prepared)
    assert transcript.text and transcript.text.split()[0] in result.stdout
    panel = panel_height(width)
    row = height + panel // 8 + 1  # the top of the weight bar, above its label
    for index in (5, len(drawn) // 2, len(drawn) - 5):
        line = drawn[index][row].astype(float)
        is_audio = (np.linalg.norm(line - AUDIO_COLOUR, axis=1) < np.linalg.norm(line - VIDEO_COLOUR, axis=1))
        measured = int(np.argmin(is_audio)) if not is_audio.all() else width
        assert abs(measured - bar_split(width, transcript.audio_weight[index])) <= 4
        # The mouth box: the midpoint of its top edge is drawn in the box colour.
        box = mouth_box(prepared.transforms[index])
        x, y = np.round((box[0] + box[1]) / 2).astype(int)
        patch = drawn[index][y - 2:y + 3, x - 2:x + 3].reshape(-1, 3).astype(float)
        assert np.linalg.norm(patch - BOX_COLOUR, axis=1).min() < 60
        assert np.abs(source[index][y - 2:y + 3, x - 2:x + 3].astype(float) - BOX_COLOUR).sum(axis=2).min() > 60
    # The running transcript grows: the last frame's text line holds more ink than the first's.
    text_rows = slice(height + panel // 2 + 2, height + panel)
    ink = [int((frame[text_rows] > 128).sum()) for frame in (drawn[0], drawn[-1])]
    assert ink[1] > 1.5 * ink[0] + 50


def test_render_refuses_audio_only_input_without_leaving_a_file(tmp_path):
    audio = tmp_path / "speech.wav"
    write_video(audio, None, audio=np.zeros(16_000, np.float32), audio_codec="pcm_s16le")
    out = tmp_path / "out.mp4"
    result = avsr_main("render", audio, "-o", out)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "speech.wav" in result.stderr and "no video" in result.stderr
    assert list(tmp_path.iterdir()) == [audio]


def test_the_bar_label_names_the_attended_lip_frame_of_an_xattn_model(clip):
    from dataclasses import replace

    from avsr.inference.render import draw_frame

    model = avsr.load_model("synth-grid-tiny")
    prepared = prepare_input(clip)
    plain = Transcriber(model.network, model.tokenizer, model.id, TranscribeOptions()).recognise(prepared)
    frames = len(plain.audio_weight)
    attended = replace(plain, attention_offset_frames=[3] * frames, attention_peak=[0.8] * frames)
    image = np.zeros((224, 224, 3), np.uint8)
    panel = panel_height(224)
    label_rows = slice(224 + panel // 8, 224 + panel // 2 - panel // 16)
    ink = [int((draw_frame(image, 10, prepared, t)[label_rows] > 200).sum()) for t in (plain, attended)]
    assert ink[1] > ink[0] + 50  # "| lips at +120 ms (0.80)" after the weights
