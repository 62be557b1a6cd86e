"""The installed ``avsr`` console script on real files: outputs, cache, failures, exit codes."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import srt

from tests.conftest import CARPHONE, SPEECH

AVSR = [str(Path(sys.executable).with_name("avsr"))]


def run_avsr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(AVSR + list(args), capture_output=True, text=True, timeout=300)


HEAVY = ("torch", "lightning", "mediapipe", "cv2", "av", "librosa", "numpy")


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["transcribe", "--help"], ["evaluate", "--help"],
                                  ["synth", "--help"], ["lip-roi", "--help"], ["prepare", "lrs3", "--help"],
                                  ["export", "--help"], ["render", "--help"], ["transcribe"],
                                  ["lip-roi", "x.mp4", "-o", "out", "--workers", "0"], ["no-such-command"]])
def test_help_and_usage_errors_import_no_heavy_library(args):
    # The console script's own entry point, in a fresh interpreter; which modules it loaded is read at exit.
    probe = ("import atexit, sys\n"
             f"atexit.register(lambda: sys.stderr.write('LOADED ' + ' '.join(m for m in {HEAVY!r} if m in sys.modules)))\n"
             "from avsr.cli import main\n"
             f"sys.argv = ['avsr'] + {args!r}\n"
             "sys.exit(main())\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode in (0, 2), result.stderr
    assert result.stdout or "error:" in result.stderr  # it did answer
    assert result.stderr.rsplit("LOADED", 1)[1].split() == [], result.stderr


def test_workers_default_to_the_cores_but_not_more_than_the_inputs():
    import os

    from avsr.cli import default_workers

    cores = len(os.sched_getaffinity(0))
    assert default_workers(None, 1) == 1  # one file: prepared in the process itself, no worker started
    assert default_workers(None, 1000) == default_workers(None) == cores
    assert default_workers(3, 1) == 3  # what the user asked for


@pytest.mark.slow
def test_lip_roi_finishes_good_files_and_reports_bad_ones(tmp_path):
    videos = tmp_path / "videos"
    (videos / "sub").mkdir(parents=True)
    shutil.copy(CARPHONE, videos / "sub" / "talk.mp4")
    (videos / "notes.mp4").write_text("not a video")
    (videos / "empty.mov").write_bytes(b"")
    out = tmp_path / "rois"

    first = run_avsr("lip-roi", str(videos), "-o", str(out), "--preview", "--workers", "2", "--quiet")
    assert first.returncode == 1
    assert "1 done, 0 skipped (cache current), 2 failed" in first.stdout
    assert f"{videos / 'notes.mp4'}: is a text file" in first.stderr
    assert f"{videos / 'empty.mov'}: file is empty" in first.stderr
    assert "W0000" not in first.stderr and "INFO:" not in first.stderr  # MediaPipe's set-up lines
    with np.load(out / "talk.npz") as data:
        assert {"roi", "face_found", "timestamps_s", "mouth_landmarks", "fps"} <= set(data.files)
        assert data["roi"].shape == (100, 96, 96) and float(data["fps"]) == 25.0
        assert data["face_found"].mean() >= 0.98
    sheet = cv2.imread(str(out / "talk.png"))
    assert sheet is not None and sheet.shape[0] >= 96 and sheet.std() > 10
    assert not list(out.glob(".*tmp*")), "no temporary files left behind"

    again = run_avsr("lip-roi", str(videos / "sub" / "talk.mp4"), "-o", str(out), "--quiet")
    assert again.returncode == 0 and "0 done, 1 skipped" in again.stdout

    changed = run_avsr("lip-roi", str(videos / "sub" / "talk.mp4"), "-o", str(out), "--quiet", "--detect-every", "2")
    assert changed.returncode == 0 and "1 done, 0 skipped" in changed.stdout


@pytest.mark.slow
def test_lip_roi_rejects_bad_options_in_one_line(tmp_path):
    result = run_avsr("lip-roi", str(CARPHONE), "-o", str(tmp_path), "--detect-every", "0")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "--detect-every: 0: out of range; use a whole number from 1 to 13" in result.stderr


def test_transcribe_reads_real_speech_without_video(tmp_path):
    """A real recording with no video track (LibriVox, 2.99 s): transcribed from the audio alone, with a
    warning saying so, the input untouched, and text, timings and subtitles that agree with each other.
    (The embedded model knows only the synthetic GRID words, so the words themselves are not checked.)"""
    before = SPEECH.read_bytes()
    out = tmp_path / "out"
    result = run_avsr("transcribe", str(SPEECH), "-o", str(out), "-f", "json,txt,srt", "--quiet")
    assert result.returncode == 0, result.stderr
    record = json.loads((out / f"{SPEECH.stem}.json").read_text())
    [warning] = record["warnings"]
    assert "no video track" in warning and "audio mode" in warning
    [summary] = [json.loads(line) for line in (out / "transcribe_summary.jsonl").read_text().splitlines()]
    assert summary["status"] == "done" and summary["mode"] == "audio" and summary["warnings"] == [warning]
    assert record["mode"] == "audio" and record["face_found_rate"] == 0.0
    assert record["input_sha256"] == hashlib.sha256(before).hexdigest()
    assert record["duration_s"] == pytest.approx(2.99, abs=0.04)
    # No lips: all audio where the model read (null elsewhere: outside the speech regions, and the quiet a chunk
    # starts with, up to 40 ms before its first loud or heard frame).
    weights = record["audio_weight"]
    assert len(weights) == round(record["duration_s"] * 25) and set(weights) <= {1.0, None}
    regions = [(round(a * 25), round(b * 25)) for a, b in record["speech_regions"]]
    inside = [any(a <= t < b for a, b in regions) for t in range(len(weights))]
    read = [w == 1.0 for w in weights]
    assert all(i for r, i in zip(read, inside) if r) and all(read[b - 1] for _, b in regions)
    assert sum(read) > 0.7 * len(weights)
    words = record["words"]
    assert words == [w for segment in record["segments"] for w in segment["words"]]
    assert words and " ".join(w["word"] for w in words) == record["text"]
    assert all(0 <= w["start_s"] < w["end_s"] <= record["duration_s"] + 1e-6 for w in words)
    assert [w["start_s"] for w in words] == sorted(w["start_s"] for w in words)
    assert (out / f"{SPEECH.stem}.txt").read_text().strip() == record["text"]
    cues = list(srt.parse((out / f"{SPEECH.stem}.srt").read_text()))
    assert " ".join(cue.content for cue in cues) == record["text"]
    assert cues[0].start.total_seconds() == pytest.approx(words[0]["start_s"], abs=1e-3)
    assert SPEECH.read_bytes() == before
