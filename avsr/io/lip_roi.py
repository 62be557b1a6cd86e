"""Mouth regions of interest: track the face, align it, cut a steady grayscale crop per frame.

The pipeline per clip (25 fps):

1. MediaPipe's face landmarker runs on every ``detect_every``-th frame (optionally less often
   while the head holds still, ``detect_every_max``) and follows one face (the largest at first,
   then the same one; :class:`~avsr.io.face_mesh.FaceMeshTracker`).
2. Gaps in the landmark track up to ``max_gap_frames`` are filled by linear interpolation;
   longer gaps are marked ``face_found = False`` and their crops are zeroed.
3. The stable points (eye corners, nose) are smoothed over time and a similarity transform maps
   them onto a canonical frontal face, so head roll and scale are removed.
4. The crop is centred on the mouth position in that canonical frame, smoothed over a wider
   window, so it follows the head and slow changes (pitch) but not each opening of the jaw.

Steps 3-4 are the ``avsr`` ROI style, the default. The ``auto-avsr`` style (``LipRoiOptions.roi_style``)
instead cuts the crops auto_avsr's MediaPipe preparation feeds its published models, from the same
landmarks: its mean-face alignment and mouth box (:mod:`avsr.io.mean_face`), grey levels weighed
from RGB, black outside the frame.

Step 1 is :mod:`avsr.io.face_track`, steps 2-4 work on the points alone (:mod:`avsr.io.face_align`);
this module puts them together and cuts the crops. The options of every step are
:class:`~avsr.io.roi_options.LipRoiOptions` (also importable from here).

Each frame is decoded once. Crops are cut in pieces (:func:`iter_lip_roi`) as soon as the track
has run far enough past them for steps 2-4 to be final, so the frames held at any time are a few
seconds' worth, whatever the clip's length.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import cv2
import numpy as np

from avsr.files import atomic_path
from avsr.io.face_align import (CANONICAL_EYE_CENTRE_DISTANCE, CANONICAL_MOUTH_WIDTH, apply_affine, crop_transforms,
                                fill_gaps)
from avsr.io.face_ids import face_box
from avsr.io.face_mesh import KEPT_POINTS, LIPS_SLICE
from avsr.io.face_track import tracked_frames
from avsr.io.mean_face import MEAN_FACE_POINTS, SMOOTH_RADIUS, mean_face_transforms
from avsr.io.media import probe_video
from avsr.io.roi_options import LipRoiOptions
from avsr.io.spool import FrameSpool
from avsr.parallel import Cancelled
from avsr.preprocessing import VIDEO_FPS


@dataclass
class LipRoi:
    """Mouth crops of one clip at ``fps`` frames per second.

    Attributes:
        roi: grayscale crops ``(T, S, S) uint8``; all zero where ``face_found`` is False.
        face_found: ``(T,) bool``.
        mouth_landmarks: 40 lip points (outer then inner contour) in crop pixels ``(T, 40, 2)``;
            NaN where no face was found.
        timestamps_s: start time of each frame ``(T,) float64``.
        transforms: image-to-crop affine matrices ``(T, 2, 3) float32``; NaN where no face.
        fps: frames per second (25).
        boxes: the face's box ``[x0, y0, x1, y1]`` in image pixels ``(T, 4) float32`` (the face oval's,
            gap-filled as the crops are); NaN where no face. None in files written before 2026-12-07.
    """

    roi: np.ndarray
    face_found: np.ndarray
    mouth_landmarks: np.ndarray
    timestamps_s: np.ndarray
    transforms: np.ndarray
    fps: float = VIDEO_FPS
    boxes: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.roi)

    def save(self, path: str | os.PathLike, **metadata: str) -> None:
        """Write an ``.npz`` atomically (temporary file + rename); ``metadata`` is stored as strings."""
        path = Path(path)
        extra = {f"meta_{k}": np.array(v) for k, v in metadata.items()}
        with atomic_path(path) as tmp:
            np.savez_compressed(tmp, **{k: np.asarray(v) for k, v in asdict(self).items() if v is not None}, **extra)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LipRoi":
        """A file of several faces (:mod:`avsr.io.face_rois`) gives the face found in the most frames."""
        names = {field.name for field in fields(cls)}
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files if k in names} | {"fps": float(data["fps"])}
        if arrays["roi"].ndim == 4:  # (F, T, S, S)
            face = int(np.argmax(arrays["face_found"].sum(axis=1)))
            arrays |= {k: arrays[k][face] for k in ("roi", "face_found", "mouth_landmarks", "transforms", "boxes")}
        return cls(**arrays)


def _smoothing_reach(sigma: float) -> int:
    """Frames a Gaussian smoothing of ``sigma`` frames reads on each side (scipy truncates at 4 sigma)."""
    return int(4.0 * sigma + 0.5) if sigma > 0 else 0


def stream_margin(options: LipRoiOptions) -> int:
    """Frames of landmark track needed past a frame (and before it) for its crop to be final: a gap
    is filled from the detection after it (up to ``max_gap_frames + 1`` frames on), then the head's
    and the mouth's smoothings each read their reach on both sides, one after the other (the
    ``auto-avsr`` style: its one window, :data:`~avsr.io.mean_face.SMOOTH_RADIUS` frames)."""
    if options.roi_style == "auto-avsr":
        return options.max_gap_frames + 1 + SMOOTH_RADIUS
    return (options.max_gap_frames + 1 + _smoothing_reach(options.smooth_sigma_frames)
            + _smoothing_reach(options.mouth_smooth_sigma_frames))


def roi_transforms(track: np.ndarray, found: np.ndarray, options: LipRoiOptions) -> np.ndarray:
    """Image-to-crop affine matrices ``(T, 2, 3)`` of ``options.roi_style`` from a gap-filled kept-point
    track ``(T, P, 2)``; NaN where ``found`` is False."""
    if options.roi_style == "auto-avsr":
        return mean_face_transforms(track, found, options.crop_size)
    return crop_transforms(track, found, options)


PIECE_FRAMES = 100  # crops cut at a time by iter_lip_roi (4 s; with the margins, ~180 frames held)


def iter_lip_roi(source: str | os.PathLike | np.ndarray, options: LipRoiOptions = LipRoiOptions(),
                 piece_frames: int = PIECE_FRAMES, cancel: threading.Event | None = None,
                 landmarkers: int = 1) -> Iterator[LipRoi]:
    """The mouth crops of a clip in consecutive pieces of ``piece_frames`` frames (the last one
    shorter), each cut as soon as the landmark track has reached :func:`stream_margin` frames past
    it. Together they are exactly :func:`extract_lip_roi`'s result (a piece's ``timestamps_s`` say
    where it sits), from one decoding pass, and the frames held at any time are those of one piece
    and two margins, whatever the clip's length.

    Why exact: a crop depends on the gap-filled, twice-smoothed track within the margin around its
    frame only, so each piece is computed from the track of the piece and a margin on either side.

    ``cancel``: checked at every frame; once set, :class:`~avsr.parallel.Cancelled` is raised and the
    landmarker closed (so does stopping the iteration early). ``landmarkers``: face landmarkers taking
    the calls in turn, in threads (for one long file on several cores; the same crops as one
    landmarker with one face in view, see :func:`~avsr.io.face_track.tracked_frames`).
    """
    for faces in iter_face_pieces(source, options, piece_frames, cancel, landmarkers):
        yield faces[0]


def iter_face_pieces(source: str | os.PathLike | np.ndarray, options: LipRoiOptions = LipRoiOptions(),
                     piece_frames: int = PIECE_FRAMES, cancel: threading.Event | None = None,
                     landmarkers: int = 1, every_face: bool = False) -> Iterator[list[LipRoi]]:
    """:func:`iter_lip_roi`'s pieces, per face: the crops of each face id given up to the piece's end
    (and its margin). Without ``every_face``: one face, the one followed
    (the largest at first); with it, every face the landmarker finds, by id
    (:class:`~avsr.io.face_ids.FaceIdTracker`; a piece may have fewer ids than a later one)."""
    if piece_frames < 1:
        raise ValueError(f"piece_frames={piece_frames} must be >= 1")
    if landmarkers < 1:
        raise ValueError(f"landmarkers={landmarkers} must be >= 1 (one landmarker per core at most helps)")
    margin, size = stream_margin(options), options.crop_size
    # Outside the frame: its edge repeated, or black as auto_avsr's warp leaves it.
    border = cv2.BORDER_CONSTANT if options.roi_style == "auto-avsr" else cv2.BORDER_REPLICATE
    points: list[np.ndarray] = []  # the track from frame max(0, first - margin) on, (K, P, 2) a frame
    grays: list[np.ndarray] = []  # the frames from `first` on, not cut yet
    first = 0

    def cut_face(track: np.ndarray, lo: int, stop: int) -> LipRoi:
        """One face's crops of frames ``first .. stop`` from its track ``(T, P, 2)`` from frame ``lo``."""
        track, found = fill_gaps(track, options.max_gap_frames)
        transforms = roi_transforms(track, found, options)[first - lo: stop - lo]
        track, found = track[first - lo: stop - lo], found[first - lo: stop - lo]
        crops = np.zeros((stop - first, size, size), np.uint8)
        for row in np.flatnonzero(found):
            crops[row] = cv2.warpAffine(grays[row], transforms[row], (size, size), flags=cv2.INTER_LINEAR,
                                        borderMode=border)
        return LipRoi(roi=crops, face_found=found,
                      mouth_landmarks=apply_affine(transforms, track[:, LIPS_SLICE]).astype(np.float32),
                      timestamps_s=np.arange(first, stop) / VIDEO_FPS, transforms=transforms.astype(np.float32),
                      boxes=face_box(track).astype(np.float32))

    def cut(stop: int, ends: bool) -> list[LipRoi]:
        """Crops of frames ``first .. stop``; ``ends``: the clip ends with the last tracked frame."""
        lo = max(0, first - margin)
        hi = lo + len(points) if ends else stop + margin
        window = points[: hi - lo]
        if not every_face:
            tracks = np.stack(window)  # (T, 1, P, 2)
        else:
            faces = max(1, max(len(p) for p in window))  # one, never found, before the first face
            tracks = np.full((len(window), faces, *window[0].shape[1:]), np.nan, np.float32)
            for row, frame_points in enumerate(window):
                tracks[row, :len(frame_points)] = frame_points
        return [cut_face(tracks[:, face], lo, stop) for face in range(tracks.shape[1])]

    def advance() -> None:
        nonlocal first
        before = max(0, first - margin)
        first += piece_frames
        del grays[:piece_frames], points[: max(0, first - margin) - before]  # what no later piece reads

    # Closing the iteration early (or an error) closes the landmarkers; a clip that ends leaves them
    # for the next (avsr.io.face_mesh.borrowed_tracker).
    with contextlib.closing(tracked_frames(source, options, landmarkers, every_face)) as tracked:
        for frame_points, gray in tracked:
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"{source}: stopped before its lip ROIs were cut")
            points.append(frame_points if every_face else frame_points[None])
            grays.append(gray)
            if max(0, first - margin) + len(points) >= first + piece_frames + margin:
                yield cut(first + piece_frames, ends=False)
                advance()
    while grays:  # the clip has ended: the rest, its track complete
        yield cut(first + len(grays[:piece_frames]), ends=True)
        advance()


def release_free_heap() -> None:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim``; elsewhere nothing).

    Cutting leaves many small blocks freed (frames held between detection and cutting, per-frame
    landmark rows); the allocator keeps them for reuse, so a process's memory stays at the stage's
    peak. Measured after ``prepare_input``: 254 MB returned for a 2-minute file (its frames had been
    cached by the two-pass stage of then), 64 MB for a 10-minute one (docs/history/2026-12-01.md, 23ef921…3ab4d05)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl, Windows): nothing to do
        pass


PREALLOCATED_FRAMES = 25 * 3600  # the most crops extract_lip_roi makes room for before the first piece (830 MB)


def header_frames(probe: tuple[float, int, int] | None) -> int:
    """25 fps frames of a video by its header (:func:`~avsr.io.media.probe_video`; 0 without a duration)."""
    return int(np.ceil(probe[0] * VIDEO_FPS)) + 1 if probe is not None and probe[0] > 0 else 0


def expected_frames(source: str | os.PathLike | np.ndarray) -> int:
    """25 fps frames of ``source``: its length, or for a file its header's duration (0 without one)."""
    return len(source) if isinstance(source, np.ndarray) else header_frames(probe_video(source))


def extract_lip_roi(source: str | os.PathLike | np.ndarray, options: LipRoiOptions = LipRoiOptions(),
                    spool_above_mb: float | None = None, cancel: threading.Event | None = None,
                    landmarkers: int = 1, on_piece: Callable[[LipRoi], None] | None = None,
                    frames_hint: int | None = None, other_faces: list[list[LipRoi]] | None = None) -> LipRoi:
    """Find, align and cut the mouth in every 25 fps frame of a clip (:func:`iter_lip_roi`'s pieces
    put together).

    Args:
        source: a media file (decoded and resampled to 25 fps) or RGB frames ``(T, H, W, 3) uint8``
            already at 25 fps.
        options: see :class:`LipRoiOptions`.
        spool_above_mb: once the crops take more memory than this, they are written to a temporary
            file as they are cut, and ``roi`` is a :class:`~avsr.io.spool.FrameSpool` read by ranges
            (None: always an array in memory).
        cancel, landmarkers: see :func:`iter_lip_roi`.
        on_piece: called with each piece of crops as it is cut (its arrays are not changed afterwards),
            for a reader that starts on the crops before the clip is done.
        frames_hint: the clip's length in frames as its header gives it (:func:`header_frames`), where
            the caller has probed it already (None: the header is read here).
        other_faces: a list to track every face in (``every_face`` of :func:`iter_face_pieces`): the result is
            face id 0's crops (with one face in view, those of the single-face track), and the pieces of each
            further id ``k`` are appended to ``other_faces[k - 1]`` (kept in memory; from the piece where the
            id first appears).

    Raises:
        MediaError: ``source`` is a file that cannot be read or has no video stream.
        Cancelled: ``cancel`` was set.
    """
    if isinstance(source, np.ndarray) and (source.ndim != 4 or source.shape[-1] != 3 or len(source) == 0):
        raise ValueError(f"frames must be (T, H, W, 3) uint8 with T > 0, got shape {source.shape}")
    size = options.crop_size
    limit = None if spool_above_mb is None else spool_above_mb * 2**20
    # The crops go straight into one array sized from the header (its pages are taken as they are
    # written, and it grows if the header fell short), or, once past the limit, into a spool.
    first_size = min(expected_frames(source) if frames_hint is None else frames_hint, PREALLOCATED_FRAMES)
    if limit is not None:
        first_size = min(first_size, int(limit) // (size * size) + PIECE_FRAMES)
    roi: np.ndarray | FrameSpool = np.empty((first_size, size, size), np.uint8)
    pieces: list[LipRoi] = []
    count = 0
    try:
        pieces_of_face = iter_lip_roi(source, options, cancel=cancel, landmarkers=landmarkers) if other_faces is None \
            else _first_face(iter_face_pieces(source, options, cancel=cancel, landmarkers=landmarkers, every_face=True),
                             other_faces)
        for piece in pieces_of_face:
            if on_piece is not None:
                on_piece(replace(piece))
            if isinstance(roi, np.ndarray) and limit is not None and (count + len(piece)) * size * size > limit:
                spooled = FrameSpool(0, size, size, growable=True)
                spooled.write(roi[:count])
                roi = spooled
            if isinstance(roi, FrameSpool):
                roi.write(piece.roi)
            else:
                if count + len(piece) > len(roi):
                    grown = np.empty((max(2 * len(roi), count + len(piece)), size, size), np.uint8)
                    grown[:count] = roi[:count]
                    roi = grown
                roi[count: count + len(piece)] = piece.roi
            count += len(piece)
            piece.roi = None
            pieces.append(piece)
    except BaseException:  # a file that fails half-way (or is cancelled) leaves no spool behind
        if isinstance(roi, FrameSpool):
            roi.close()
        raise
    if isinstance(roi, np.ndarray):
        roi = roi[:count]
    release_free_heap()

    def joined(field: str, shape: tuple, dtype) -> np.ndarray:
        parts = [getattr(p, field) for p in pieces]
        return np.concatenate(parts) if parts else np.zeros((0, *shape), dtype)

    return LipRoi(
        roi=roi,
        face_found=joined("face_found", (), bool),
        mouth_landmarks=joined("mouth_landmarks", (len(KEPT_POINTS[LIPS_SLICE]), 2), np.float32),
        timestamps_s=joined("timestamps_s", (), np.float64),
        transforms=joined("transforms", (2, 3), np.float32),
        boxes=joined("boxes", (4,), np.float32),
    )


def _first_face(pieces: Iterator[list[LipRoi]], others: list[list[LipRoi]]) -> Iterator[LipRoi]:
    """Face 0 of each piece; the pieces of the further faces go in ``others`` by id."""
    for faces in pieces:
        for face_id, face in enumerate(faces[1:]):
            if face_id == len(others):
                others.append([])
            others[face_id].append(face)
        yield faces[0]


def crop_corners(transforms: np.ndarray, crop_size: int) -> np.ndarray:
    """Where each crop lies in its frame: the corners of its square, top-left, top-right, bottom-right,
    bottom-left, in image pixels ``(T, 4, 2)`` (OpenCV's convention, a pixel's centre at its index;
    NaN where no face), from image-to-crop matrices ``(T, 2, 3)`` (:attr:`LipRoi.transforms`)."""
    linear, shift = transforms[:, :, :2].astype(np.float64), transforms[:, :, 2].astype(np.float64)
    found = np.isfinite(transforms).all(axis=(1, 2))
    corners = np.full((len(transforms), 4, 2), np.nan)
    box = np.array([[0, 0], [crop_size, 0], [crop_size, crop_size], [0, crop_size]], np.float64)
    inverse = np.linalg.inv(linear[found])  # (F, 2, 2)
    corners[found] = np.einsum("fij,fpj->fpi", inverse, box[None] - shift[found][:, None])
    return corners


def crop_centres(lip_roi: LipRoi, options: LipRoiOptions = LipRoiOptions()) -> tuple[np.ndarray, np.ndarray]:
    """Where each found frame's crop centre sits in the image ``(F, 2)`` (pixels), and the
    inter-ocular distance there ``(F,)`` (pixels, between the eye centres of the canonical face at the
    frame's scale). ``options`` must be those the crops were cut with (they fix the crop scale)."""
    matrices = lip_roi.transforms[lip_roi.face_found].astype(np.float64)
    linear, shift = matrices[:, :, :2], matrices[:, :, 2]
    centre = np.full(2, (lip_roi.roi.shape[1] - 1) / 2)
    centres = np.einsum("tij,tj->ti", np.linalg.inv(linear), centre - shift)
    scale = np.sqrt(np.abs(np.linalg.det(linear)))  # crop pixels per image pixel
    if options.roi_style == "auto-avsr":  # crop pixels are the mean face's
        return centres, float(np.linalg.norm(MEAN_FACE_POINTS[1] - MEAN_FACE_POINTS[0])) / scale
    crop_px_per_unit = options.crop_size * options.mouth_width_fraction / CANONICAL_MOUTH_WIDTH
    return centres, crop_px_per_unit * CANONICAL_EYE_CENTRE_DISTANCE / scale


def steadiness_percent(lip_roi: LipRoi, options: LipRoiOptions = LipRoiOptions()) -> float:
    """Median second difference of the crop centre (image pixels) as % of the inter-ocular distance
    (:func:`crop_centres`), over consecutive found frames. Lower is steadier; NaN if fewer than three.
    ``options`` must be those the crops were cut with.
    """
    found = lip_roi.face_found
    if found.sum() < 3:
        return float("nan")
    centres, interocular = crop_centres(lip_roi, options)
    index = np.flatnonzero(found)
    consecutive = (index[2:] - index[:-2]) == 2
    second = np.linalg.norm(centres[2:] - 2 * centres[1:-1] + centres[:-2], axis=1)
    return float(np.median((second / interocular[1:-1])[consecutive]) * 100)
