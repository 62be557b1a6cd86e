"""The face landmark track of a clip (step 1 of :mod:`avsr.io.lip_roi`): each 25 fps frame decoded
once, MediaPipe's landmarker on every ``detect_every``-th frame in threads of its own, and per frame
the followed face's points (NaN where it did not run or found no face) with the grayscale frame.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from avsr.io.face_ids import FaceIdTracker
from avsr.io.face_mesh import KEPT_POINTS, borrowed_tracker, detection_size
from avsr.io.frames import frame_to_gray, frame_to_rgb
from avsr.io.media import iter_video_frames
from avsr.io.roi_options import LipRoiOptions
from avsr.preprocessing import VIDEO_FPS


class _Frame:
    """One 25 fps frame, converted on demand: grayscale for the crop, RGB only for detection.

    The grayscale is the decoder's luma, or with ``gray_reformatter`` (a stream's second one, at full
    size) 0.299 R + 0.587 G + 0.114 B of the frame's RGB, as auto_avsr computes it (about one grey
    level darker on the carphone clip, up to five)."""

    def __init__(self, source: np.ndarray | av.VideoFrame, reformatter: VideoReformatter | None = None,
                 gray_reformatter: VideoReformatter | None = None) -> None:
        self._source = source
        self._reformatter = reformatter  # the stream's, shared by its frames (see frame_to_rgb)
        self._gray_reformatter = gray_reformatter
        self._gray: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        if isinstance(self._source, np.ndarray):
            return self._source.shape[1], self._source.shape[0]
        return self.gray().shape[1], self.gray().shape[0]  # after display rotation

    def gray(self) -> np.ndarray:
        if self._gray is None:
            if isinstance(self._source, np.ndarray):
                self._gray = cv2.cvtColor(self._source, cv2.COLOR_RGB2GRAY)
            elif self._gray_reformatter is not None:
                rgb = frame_to_rgb(self._source, reformatter=self._gray_reformatter)
                self._gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            else:
                self._gray = frame_to_gray(self._source)
        return self._gray

    def rgb(self, max_side: int | None) -> np.ndarray:
        if isinstance(self._source, np.ndarray):
            return self._source  # the tracker downscales arrays itself
        frame = self._source
        width, height = detection_size(frame.width, frame.height, max_side)  # scaled in the decoder
        return frame_to_rgb(frame, width, height, self._reformatter)


def _frames(source: str | os.PathLike | np.ndarray, rgb_gray: bool = False) -> Iterator[_Frame]:
    """``rgb_gray``: the grayscale weighed from RGB (see :class:`_Frame`) instead of the luma."""
    if isinstance(source, np.ndarray):
        for image in source:
            yield _Frame(image)
        return
    previous, wrapped, reformatter = None, None, VideoReformatter()
    gray_reformatter = VideoReformatter() if rgb_gray else None
    for frame in iter_video_frames(source):
        if frame is not previous:  # a source frame repeated by 25 fps resampling is converted once
            previous, wrapped = frame, _Frame(frame, reformatter, gray_reformatter)
        yield wrapped


def _next_stride(options: LipRoiOptions, stride: int, points: np.ndarray | None, previous: np.ndarray | None,
                 frames: int) -> int:
    """:meth:`LipRoiOptions.next_stride` for one face ``(P, 2)``, or for faces by id ``(K, P, 2)``: the
    shortest of those found in both calls."""
    if points is None or previous is None or points.ndim == 2:
        return options.next_stride(stride, points, previous, frames)
    strides = [options.next_stride(stride, now, before, frames) for now, before in zip(points, previous)
               if not (np.isnan(now[0, 0]) or np.isnan(before[0, 0]))]
    return min(strides, default=options.detect_every)


def tracked_frames(source, options: LipRoiOptions, landmarkers: int = 1,
                   every_face: bool = False) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per 25 fps frame, in order: the kept face points ``(P, 2)`` (NaN where the landmarker did not
    run or found no face) and the grayscale frame.

    ``every_face``: instead, every face by its id (:class:`~avsr.io.face_ids.FaceIdTracker`): points
    ``(K, P, 2)`` for the ``K`` ids given up to a landmarker call's frame (NaN for an id not found
    there), ``(0, P, 2)`` for the frames between calls.

    The landmarker runs in threads of its own and its results are taken in order, so the face
    followed is chosen as if it were called in line. With a fixed stride the next call's frame is
    known before a result comes back, so the frames up to it are decoded and converted here while
    the landmarker works (MediaPipe keeps one core busy, docs/history/2026-12-01.md, 3cb86a0…622ea5f),
    and ``landmarkers`` > 1 landmarkers take the calls in turn, that many at once. With one face in
    view their points are those of one landmarker, byte for byte (tests/io/test_lip_roi.py): MediaPipe
    then finds the face afresh in every frame. With several, MediaPipe also carries faces from a
    landmarker's previous call, which is further back, and the points may differ. A stride that grows
    (``detect_every_max``) waits for each result, and ``max_faces=1`` (MediaPipe then smooths the
    face over its frames) uses one landmarker.
    """
    if options.detect_every_max is not None or options.max_faces == 1:
        landmarkers = 1
    missing = np.full((len(KEPT_POINTS), 2), np.nan, np.float32)
    ids = FaceIdTracker(options.max_gap_frames) if every_face else None
    if every_face:
        missing = np.full((0, len(KEPT_POINTS), 2), np.nan, np.float32)
    reacquire = max(1, options.max_gap_frames // options.longest_stride)
    with contextlib.ExitStack() as stack:  # on leaving: the calls in flight end, then the landmarkers go back
        trackers = [stack.enter_context(borrowed_tracker(options.landmarker_model, options.max_faces,
                                                         options.detect_max_side, reacquire))
                    for _ in range(landmarkers)]
        caller = stack.enter_context(ThreadPoolExecutor(landmarkers, thread_name_prefix="avsr-landmarker"))
        follower = trackers[0]  # keeps which face is followed
        stride, due, previous, previous_index, calls = options.detect_every, 0, None, 0, 0
        # One entry per landmarker call not taken in yet: its result, and (index, gray) of its frame and
        # of the frames after it up to the next call.
        pending: deque[tuple[Future, list[tuple[int, np.ndarray]]]] = deque()

        def settle() -> list[tuple[np.ndarray, np.ndarray]]:
            """The oldest call's frames with their points, once it has returned; a stride that grows
            sets the next call's frame from its result."""
            nonlocal stride, due, previous, previous_index
            call, held = pending.popleft()
            ready = [(missing, gray) for _, gray in held]
            index = held[0][0]
            points = follower.follow(call.result()) if ids is None else ids.follow(call.result(), index)
            if ids is not None and np.isnan(points[:, 0, 0]).all():
                points = None  # no face found: the frame is as those between calls
            stride = _next_stride(options, stride, points, previous, index - previous_index)
            if options.detect_every_max is not None:
                due = index + stride
            if points is not None:
                previous, previous_index = points, index
                ready[0] = (points, ready[0][1])
            else:
                previous = None  # the next found face starts the stride again
            return ready

        for index, frame in enumerate(_frames(source, rgb_gray=options.roi_style == "auto-avsr")):
            if index != due:
                if pending:
                    pending[-1][1].append((index, frame.gray()))
                else:  # every call has been taken in (a stride that grows): nothing to wait for
                    yield missing, frame.gray()
                continue
            rgb = frame.rgb(options.detect_max_side)
            ready = []
            while len(pending) >= landmarkers:  # every landmarker busy: wait for the oldest call
                ready += settle()
            tracker = trackers[calls % landmarkers]  # in turn: a landmarker's next call waits for its last
            calls += 1
            pending.append((caller.submit(tracker.detect_faces, rgb, round(index * 1000 / VIDEO_FPS),
                                          output_size=frame.size), [(index, frame.gray())]))
            if options.detect_every_max is None:
                due = index + options.detect_every
            else:
                ready += settle()
            yield from ready
        while pending:
            yield from settle()
