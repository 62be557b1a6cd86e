"""MediaPipe Face Landmarker (Tasks API) wrapped for video: model loading, face choice, tracking.

mediapipe >= 0.10.30 has no ``mp.solutions`` and no model inside the wheel, so the face landmarker
bundle ships with this package (``avsr/assets/face_landmarker.task``) and is hash-checked at load.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avsr.errors import AvsrError

# Silence MediaPipe's glog/TFLite chatter before the library is first imported.
os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / "assets" / "face_landmarker.task"
# Google's float16 face_landmarker bundle (Apache-2.0), as recorded in shared/models/README.md.
DEFAULT_MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"

# Indices into MediaPipe's 478-point face mesh (canonical face model topology).
RIGHT_EYE_OUTER, RIGHT_EYE_INNER, LEFT_EYE_INNER, LEFT_EYE_OUTER = 33, 133, 362, 263
NOSE_BRIDGE, NOSE_TIP = 168, 1
MOUTH_RIGHT_CORNER, MOUTH_LEFT_CORNER = 61, 291
LIPS_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
LIPS_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
             152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
STABLE = (RIGHT_EYE_OUTER, RIGHT_EYE_INNER, LEFT_EYE_INNER, LEFT_EYE_OUTER, NOSE_BRIDGE, NOSE_TIP)

# The subset of mesh points this package keeps per frame, and where each group sits in it.
KEPT_POINTS = STABLE + LIPS_OUTER + LIPS_INNER + FACE_OVAL
STABLE_SLICE = slice(0, len(STABLE))
LIPS_SLICE = slice(len(STABLE), len(STABLE) + len(LIPS_OUTER) + len(LIPS_INNER))
OVAL_SLICE = slice(LIPS_SLICE.stop, len(KEPT_POINTS))


class ModelFileError(AvsrError, ValueError):
    """The face landmarker model file is missing or not the expected bundle."""


def check_model(path: str | Path | None = None) -> Path:
    """Return the landmarker model path, verifying the vendored bundle's SHA-256.

    A user-supplied path is only checked for existence: it may be another valid bundle.
    """
    if path is None:
        path = DEFAULT_MODEL_PATH
        if not path.is_file():
            raise ModelFileError(f"{path}: vendored face landmarker missing; reinstall avsr")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != DEFAULT_MODEL_SHA256:
            raise ModelFileError(
                f"{path}: sha256 {digest[:12]}… is not the expected face_landmarker bundle "
                f"({DEFAULT_MODEL_SHA256[:12]}…); reinstall avsr or pass --landmarker-model"
            )
        return path
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: face landmarker model not found; pass an existing .task file")
    if not zipfile.is_zipfile(path):  # a .task bundle is a zip of the detector and landmark models
        raise ModelFileError(f"{path}: not a MediaPipe .task bundle; pass a face_landmarker.task file")
    return path


def face_size(points: np.ndarray) -> float:
    """Width of the face-oval bounding box in pixels, for kept points ``(P, 2)``."""
    oval = points[OVAL_SLICE]
    return float(np.ptp(oval[:, 0]))


def detection_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """``(width, height)`` scaled so the longer side is at most ``max_side`` (even numbers)."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


_SILENCE_LOCK = threading.Lock()
_silenced = 0  # threads inside _native_stderr_silenced
_saved_stderr_fd: int | None = None  # file descriptor 2 as it was before the first of them


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Discard what native code writes to file descriptor 2 (MediaPipe's glog/TFLite set-up lines).

    Those lines ignore GLOG_minloglevel in mediapipe 1.2.x. Several threads may make landmarkers at
    once (transcription's prefetch): descriptor 2 goes to /dev/null when the first enters and comes
    back when the last leaves. Whatever Python writes to ``sys.stderr`` meanwhile is lost too,
    unless it writes to a copy of descriptor 2 (:func:`keep_python_stderr`, as ``avsr`` does).
    """
    global _silenced, _saved_stderr_fd
    with _SILENCE_LOCK:
        if _silenced == 0:
            with contextlib.suppress(AttributeError, OSError, ValueError):
                sys.stderr.flush()
            try:
                saved = os.dup(2)
            except OSError:  # no descriptor 2: nothing to silence
                saved = None
            if saved is not None:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 2)
                os.close(devnull)
            _saved_stderr_fd = saved
        _silenced += 1
    try:
        yield
    finally:
        with _SILENCE_LOCK:
            _silenced -= 1
            if _silenced == 0 and _saved_stderr_fd is not None:
                os.dup2(_saved_stderr_fd, 2)
                os.close(_saved_stderr_fd)
                _saved_stderr_fd = None


def keep_python_stderr() -> None:
    """Point ``sys.stderr`` at a copy of file descriptor 2, so that Python's messages (errors,
    progress) still reach the terminal while another thread has descriptor 2 silenced
    (:func:`_native_stderr_silenced`). Nothing happens where ``sys.stderr`` is not descriptor 2
    (captured by a test, say)."""
    with contextlib.suppress(AttributeError, OSError, ValueError):
        if sys.stderr.fileno() == 2:
            sys.stderr.flush()
            sys.stderr = os.fdopen(os.dup(2), "w", buffering=1, encoding=sys.stderr.encoding,
                                   errors=sys.stderr.errors)


@dataclass
class _Target:
    center: np.ndarray  # (2,) pixels
    size: float  # face width in pixels


class FaceMeshTracker:
    """Run MediaPipe's FaceLandmarker in VIDEO mode and follow one face through a clip.

    The first detection picks the largest face; later frames keep the face nearest to the one
    followed so far (not whichever MediaPipe lists first). When the followed face has been missing
    for more than ``reacquire_after`` detection calls, the largest face is picked again.

    Args:
        model_path: a ``.task`` bundle; ``None`` uses the vendored, hash-checked one.
        max_faces: how many faces MediaPipe may return; > 1 so that the largest can be chosen.
        detect_max_side: downscale frames so their longer side is at most this before detection
            (``None``: full resolution). Landmarks come back in full-resolution pixels.
        min_confidence: MediaPipe's detection / presence / tracking confidence thresholds.
        reacquire_after: detection calls without the followed face before it is re-chosen.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        max_faces: int = 4,
        detect_max_side: int | None = None,
        min_confidence: float = 0.5,
        reacquire_after: int = 12,
    ) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(check_model(model_path))),
            running_mode=vision.RunningMode.VIDEO,
            num_faces=max_faces,
            min_face_detection_confidence=min_confidence,
            min_face_presence_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
        )
        with _native_stderr_silenced():
            self._landmarker = vision.FaceLandmarker.create_from_options(options)
        self._detect_max_side = detect_max_side
        self._reacquire_after = reacquire_after
        self._target: _Target | None = None
        self._misses = 0
        self._last_timestamp_ms = -1
        self._clip_start_ms = 0  # the landmarker's clock at the current clip's time 0 (see restart)
        self._calls = 0

    def __enter__(self) -> "FaceMeshTracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

    def detect_faces(self, frame: np.ndarray, timestamp_ms: int,
                     output_size: tuple[int, int] | None = None) -> list[np.ndarray]:
        """All faces in an RGB frame ``(H, W, 3) uint8`` as kept points ``(P, 2)`` in pixels.

        ``output_size`` ``(width, height)``: the size the points refer to when ``frame`` is a
        scaled-down copy of the real frame (default: ``frame``'s own size).
        """
        import mediapipe as mp

        height, width = frame.shape[:2]
        if output_size is not None:
            width, height = output_size
        image = frame
        if self._detect_max_side and max(image.shape[:2]) > self._detect_max_side:
            import cv2

            size = detection_size(image.shape[1], image.shape[0], self._detect_max_side)
            image = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        # VIDEO mode requires strictly increasing timestamps.
        timestamp_ms = max(self._clip_start_ms + timestamp_ms, self._last_timestamp_ms + 1)
        self._last_timestamp_ms = timestamp_ms
        mp_image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
        if self._calls == 0:  # the first inference prints more set-up lines
            with _native_stderr_silenced():
                result = self._landmarker.detect_for_video(mp_image, timestamp_ms)
        else:
            result = self._landmarker.detect_for_video(mp_image, timestamp_ms)
        self._calls += 1
        faces = []
        for landmarks in result.face_landmarks:
            points = np.array([(landmarks[i].x, landmarks[i].y) for i in KEPT_POINTS], np.float32)
            faces.append(points * np.array([width, height], np.float32))
        return faces

    def restart(self) -> None:
        """Start a new clip as a new tracker would: the face to follow is chosen anew, timestamps count
        from 0 again, and MediaPipe drops the faces it was tracking (it is shown a blank frame, 16 ms
        against 44 ms for a new landmarker; tests/io/test_face_mesh.py checks the points equal a new
        one's on real clips)."""
        self.detect_faces(np.zeros((64, 64, 3), np.uint8), 0)
        self._clip_start_ms = self._last_timestamp_ms + 1
        self._target, self._misses = None, 0

    def track(self, frame: np.ndarray, timestamp_ms: int,
              output_size: tuple[int, int] | None = None) -> np.ndarray | None:
        """Kept points ``(P, 2)`` of the followed face in this frame, or ``None`` if absent."""
        return self.follow(self.detect_faces(frame, timestamp_ms, output_size))

    def follow(self, faces: list[np.ndarray]) -> np.ndarray | None:
        """The followed face among the next frame's ``faces`` (:meth:`detect_faces`, possibly of another
        landmarker), or ``None`` if it is not among them."""
        chosen = self._choose(faces)
        if chosen is None:
            self._misses += 1
            if self._misses > self._reacquire_after:
                self._target = None
            return None
        self._misses = 0
        self._target = _Target(center=chosen[OVAL_SLICE].mean(axis=0), size=face_size(chosen))
        return chosen

    def _choose(self, faces: list[np.ndarray]) -> np.ndarray | None:
        if not faces:
            return None
        if self._target is None:
            return max(faces, key=face_size)
        distances = [np.linalg.norm(f[OVAL_SLICE].mean(axis=0) - self._target.center) for f in faces]
        best = int(np.argmin(distances))
        # A face whose centre jumped by more than half a face width is another person.
        return faces[best] if distances[best] < 0.5 * self._target.size else None


_POOL_LOCK = threading.Lock()
_idle: dict[tuple, list[FaceMeshTracker]] = {}  # landmarkers between clips, by their settings
_orphaned: list[dict] = []  # a forked child's copy of its parent's landmarkers: never used, never closed
MAX_IDLE_TRACKERS = 4  # landmarkers kept for later clips per setting (a batch prepares up to 4 files at once)


def _forget_parents_trackers() -> None:
    """In a forked child: the parent's landmarkers are not ours (MediaPipe's threads did not survive the
    fork, so even closing them could hang), and the lock may have been held by a parent thread."""
    global _POOL_LOCK, _idle
    _orphaned.append(_idle)
    _idle, _POOL_LOCK = {}, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parents_trackers)


@contextlib.contextmanager
def borrowed_tracker(model_path: str | Path | None = None, max_faces: int = 4, detect_max_side: int | None = None,
                     reacquire_after: int = 12) -> Iterator[FaceMeshTracker]:
    """A :class:`FaceMeshTracker` for one clip, taken from those earlier clips of this process left
    where possible, and left for the next clip afterwards (closed instead if the clip failed).

    Making a landmarker costs ~44 ms, a third of a 2-second clip's landmarks at every 3rd frame; a
    reused one is shown a blank frame first (:meth:`FaceMeshTracker.restart`), so that it tracks no
    face of the last clip into the next. With ``max_faces=1`` MediaPipe smooths the face's points
    over time, a blank frame does not clear that, and a landmarker is never reused.
    """
    key = (None if model_path is None else str(model_path), max_faces, detect_max_side, reacquire_after)
    reuse, tracker = max_faces > 1, None
    with _POOL_LOCK:
        if reuse and _idle.get(key):
            tracker = _idle[key].pop()
    pooled = tracker is not None
    if not pooled:
        tracker = FaceMeshTracker(model_path, max_faces, detect_max_side, reacquire_after=reacquire_after)
    try:
        if pooled:
            tracker.restart()
        yield tracker
    except BaseException:
        tracker.close()
        raise
    with _POOL_LOCK:
        kept = _idle.setdefault(key, [])
        if reuse and len(kept) < MAX_IDLE_TRACKERS:
            kept.append(tracker)
            return
    tracker.close()


@atexit.register
def close_idle_trackers() -> None:
    """Close the landmarkers kept for later clips (:func:`borrowed_tracker`); done at exit."""
    global _idle
    with _POOL_LOCK:
        trackers = [tracker for kept in _idle.values() for tracker in kept]
        _idle = {}
    for tracker in trackers:
        tracker.close()
