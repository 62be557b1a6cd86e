"""The installed ``avsr`` console script on real files: outputs, cache, failures, exit codes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from tests.conftest import CARPHONE

AVSR = [str(Path(sys.executable).with_name("avsr"))]


def run_avsr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(AVSR + list(args), capture_output=True, text=True, timeout=300)


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


def test_lip_roi_rejects_bad_options_in_one_line(tmp_path):
    result = run_avsr("lip-roi", str(CARPHONE), "-o", str(tmp_path), "--detect-every", "0")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--detect-every: 0 must be 1 or more" in result.stderr


def test_help_lists_the_commands():
    result = run_avsr("--help")
    assert result.returncode == 0 and "lip-roi" in result.stdout
