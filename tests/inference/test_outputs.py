"""Transcripts written by the command (avsr.inference.outputs): subtitles that independent parsers
read, agreeing with the JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
import srt
import webvtt

from avsr.io.media import load_media
from avsr.io.writer import write_video
from tests.inference.conftest import run_cli


@pytest.mark.slow
def test_subtitles_parse_with_independent_parsers_and_agree_with_the_json(corpus, model, tmp_path):
    long_clip = tmp_path / "three.mp4"  # three utterances in a row: several segments and cues
    media = [load_media(c["video"]) for c in corpus[:3]]
    write_video(long_clip, np.concatenate([m.video for m in media]), audio=np.concatenate(
        [np.pad(m.audio, (0, len(m.video) * 640 - len(m.audio)))[: len(m.video) * 640] for m in media]))
    result = run_cli(str(long_clip), "-o", str(tmp_path / "out"), "--quiet")
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "out" / "three.json").read_text())
    words = record["words"]
    subs = list(srt.parse((tmp_path / "out" / "three.srt").read_text()))
    vtt = list(webvtt.read(str(tmp_path / "out" / "three.vtt")))
    assert len(subs) == len(vtt) >= 2
    assert " ".join(s.content for s in subs) == " ".join(c.text for c in vtt) == record["text"]
    for sub, cue in zip(subs, vtt):
        assert sub.start.total_seconds() == pytest.approx(_seconds(cue.start), abs=1e-3)
        assert sub.end.total_seconds() == pytest.approx(_seconds(cue.end), abs=1e-3)
        # Each cue starts with a word of the JSON, at that word's time.
        assert any(w["word"] == sub.content.split()[0] and abs(w["start_s"] - sub.start.total_seconds()) < 1e-3
                   for w in words), sub
    assert record["duration_s"] == pytest.approx(sum(len(m.video) for m in media) / 25)
    # The third utterance's words are placed in the third utterance's time.
    third_start = sum(len(m.video) for m in media[:2]) / 25
    assert words[-1]["end_s"] > third_start


def _seconds(clock: str) -> float:
    hours, minutes, seconds = clock.split(":")
    return 3600 * int(hours) + 60 * int(minutes) + float(seconds)
