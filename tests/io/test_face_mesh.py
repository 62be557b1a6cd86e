"""MediaPipe's set-up lines are silenced on file descriptor 2 without losing the program's own messages."""

from __future__ import annotations

import subprocess
import sys

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
