"""Time a peer's lip-ROI preparation, unmodified, in its own interpreter (``python -m bench.lip_roi_speed --peer``
runs it).

    PYTHONPATH=PEER_PREPARATION_DIR PEER_PYTHON -m bench.peer_lip_roi CLIP [CLIP ...]

PEER_PREPARATION_DIR is the ``preparation`` folder of an auto_avsr checkout (the baseline: commit
182b628, with ``mediapipe==0.10.14``, ``scikit-image`` and ``opencv-python`` in a scratch
environment). Nothing of the peer is copied here: its ``LandmarksDetector`` and ``VideoProcess``
are imported from that folder (on ``PYTHONPATH``) and called as its ``AVSRDataLoader`` calls them,
inside this script's own timing loop. Only numpy and OpenCV are imported besides the peer (no avsr), so the
script runs in the peer's environment.

Timed, per batch of clips in one process: the detector's construction, then for each clip the
decode (OpenCV, RGB frames at the file's own rate, as the peer's loader reads them), the face
detection and the crop. Prints one JSON line: input frames, seconds, and frames with a detection.
"""

from __future__ import annotations

import json
import sys
import time

import cv2
import numpy as np


def read_rgb(path: str) -> np.ndarray:
    capture = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return np.stack(frames)


def main() -> None:
    clips = sys.argv[1:]
    try:
        from detectors.mediapipe.detector import LandmarksDetector  # the peer's own modules
        from detectors.mediapipe.video_process import VideoProcess
    except ModuleNotFoundError as error:
        raise SystemExit(f"{error}: put auto_avsr's preparation folder on PYTHONPATH") from None

    started = time.perf_counter()
    detector, process = LandmarksDetector(), VideoProcess(convert_gray=True)
    frames = found = 0
    for clip in clips:
        video = read_rgb(clip)
        landmarks = detector(video)
        crops = process(video, landmarks)
        assert crops is not None and len(crops) == len(video), f"{clip}: the peer cut no crops"
        frames += len(video)
        found += sum(lm is not None for lm in landmarks)
    print(json.dumps({"frames": frames, "seconds": time.perf_counter() - started, "found": found}))


if __name__ == "__main__":
    main()
