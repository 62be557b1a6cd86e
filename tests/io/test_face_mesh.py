"""MediaPipe's set-up lines are silenced on file descriptor 2 without losing the program's own messages; a
landmarker is reused across clips only where that changes no point."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from avsr.io.face_mesh import KEPT_POINTS, FaceMeshTracker, borrowed_tracker, close_idle_trackers
from tests.conftest import MULTI_FACE

SCRIPT = """
import os, sys, threading
from avsr.io.face_mesh import _native_stderr_silenced, keep_python_stderr
if sys.argv[1] == "kept":
    keep_python_stderr()
first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
def first():
    with _native_stderr_silenced():
        first_in.set()
        second_in.wait(10)
    first_out.set()
def second():  # enters after the first and leaves after it, as two prefetch threads making landmarkers may
    first_in.wait(10)
    with _native_stderr_silenced():
        second_in.set()
        first_out.wait(10)
        os.write(2, b"native line\\n")
        print("message while silenced", file=sys.stderr)
threads = [threading.Thread(target=first), threading.Thread(target=second)]
[t.start() for t in threads]
[t.join() for t in threads]
os.write(2, b"native after\\n")
print("message after", file=sys.stderr)
"""


def run(mode: str) -> str:
    return subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60,
                          check=True).stderr


def test_descriptor_2_comes_back_when_the_last_of_two_overlapping_threads_leaves():
    err = run("plain")
    assert "native line" not in err and "message while silenced" not in err  # silenced, Python's writes too
    assert "native after" in err and "message after" in err  # restored, not left on /dev/null


def test_python_messages_written_while_another_thread_silences_native_code_are_kept():
    err = run("kept")
    assert "native line" not in err and "message while silenced" in err
    assert "native after" in err and "message after" in err


def _points(tracker, frames: np.ndarray) -> np.ndarray:
    """The followed face's points on every 3rd frame (NaN where none), timestamps from the clip's 0."""
    out = np.full((len(frames[::3]), len(KEPT_POINTS), 2), np.nan, np.float32)
    for row, frame in enumerate(frames[::3]):
        found = tracker.track(frame, row * 120)
        if found is not None:
            out[row] = found
    return out


@pytest.fixture
def empty_pool():
    """No landmarker left by other tests, and none left for them, even when the test fails."""
    close_idle_trackers()
    yield
    close_idle_trackers()


def test_a_landmarker_left_by_one_clip_gives_the_next_the_points_of_a_new_one(carphone_frames, empty_pool):
    # The first clip shows four faces: MediaPipe then tracks them and stops detecting. Unless the
    # reused landmarker is shown a blank frame first, it carries them into the next clip (checked: the
    # points then differ).
    photo = cv2.cvtColor(cv2.imread(str(MULTI_FACE)), cv2.COLOR_BGR2RGB)
    group = np.repeat(cv2.resize(photo[150:500, 250:850], (640, 360), interpolation=cv2.INTER_AREA)[None], 9, axis=0)
    close_idle_trackers()
    with borrowed_tracker(detect_max_side=320) as tracker:
        _points(tracker, group)
        assert len(tracker.detect_faces(group[0], 400)) == 4
    with borrowed_tracker(detect_max_side=320) as again:
        assert again is tracker  # reused, not made anew
        reused = _points(again, carphone_frames)
    with FaceMeshTracker(detect_max_side=320) as new:
        expected = _points(new, carphone_frames)
    assert np.isfinite(expected).all()
    np.testing.assert_array_equal(reused, expected)
    # MediaPipe smooths one face's points over time, and a blank frame does not clear that (the points
    # differed by up to 1.4 pixels): with max_faces=1 a landmarker is never reused.
    with borrowed_tracker(max_faces=1) as single:
        pass
    with borrowed_tracker(max_faces=1) as other_single:
        assert other_single is not single
    close_idle_trackers()


def test_a_landmarker_is_closed_not_kept_when_its_clip_fails(empty_pool):
    with pytest.raises(RuntimeError), borrowed_tracker() as tracker:
        raise RuntimeError("the clip failed")
    assert tracker._landmarker is None  # closed
    with borrowed_tracker() as next_one:
        assert next_one is not tracker
