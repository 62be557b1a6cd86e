"""Mouth crops of every face in a clip, one track per face id (:class:`FaceRois`), as ``avsr lip-roi``
writes them.

The faces are those of :func:`~avsr.io.lip_roi.iter_face_pieces` with ``every_face``: each id from
:class:`~avsr.io.face_ids.FaceIdTracker` (in order of first appearance) gets its own crops, cut as the
single-face track's are. A file of one face is written with :class:`~avsr.io.lip_roi.LipRoi`'s arrays
and shapes (``roi (T, S, S)``), so that readers of single-face files read it; a file of several faces
has a leading face axis on every per-face array (``roi (F, T, S, S)``).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avsr.files import atomic_path
from avsr.io.face_mesh import KEPT_POINTS, LIPS_SLICE
from avsr.io.lip_roi import LipRoi, iter_face_pieces, release_free_heap
from avsr.io.roi_options import LipRoiOptions
from avsr.preprocessing import VIDEO_FPS

PER_FACE = ("roi", "face_found", "mouth_landmarks", "transforms", "boxes")  # arrays with a face axis


@dataclass
class FaceRois:
    """Mouth crops of every face of one clip at ``fps`` frames per second, by face id.

    Attributes:
        roi: grayscale crops ``(F, T, S, S) uint8``; all zero where ``face_found`` is False.
        face_found: ``(F, T) bool``.
        mouth_landmarks: 40 lip points in crop pixels ``(F, T, 40, 2)``; NaN where not found.
        transforms: image-to-crop affine matrices ``(F, T, 2, 3) float32``; NaN where not found.
        boxes: each face's box ``[x0, y0, x1, y1]`` in image pixels ``(F, T, 4) float32``; NaN where not
            found (and in single-face files written before 2026-12-07).
        timestamps_s: start time of each frame ``(T,) float64``.
        fps: frames per second (25).
    """

    roi: np.ndarray
    face_found: np.ndarray
    mouth_landmarks: np.ndarray
    transforms: np.ndarray
    boxes: np.ndarray
    timestamps_s: np.ndarray
    fps: float = VIDEO_FPS

    def __len__(self) -> int:
        return len(self.timestamps_s)

    @property
    def faces(self) -> int:
        return len(self.roi)

    def face(self, face_id: int) -> LipRoi:
        """One face's crops, as the single-face pipeline gives them."""
        return LipRoi(roi=self.roi[face_id], face_found=self.face_found[face_id],
                      mouth_landmarks=self.mouth_landmarks[face_id], timestamps_s=self.timestamps_s,
                      transforms=self.transforms[face_id], fps=self.fps, boxes=self.boxes[face_id])

    @classmethod
    def from_faces(cls, faces: list[LipRoi]) -> "FaceRois":
        """Faces of the same frames, in id order."""
        return cls(**{name: np.stack([getattr(face, name) for face in faces]) for name in PER_FACE},
                   timestamps_s=faces[0].timestamps_s, fps=faces[0].fps)

    def save(self, path: str | os.PathLike, **metadata: str) -> None:
        """Write an ``.npz`` atomically: one face as :meth:`LipRoi.save` does (``roi (T, S, S)``), several
        with the face axis first; ``metadata`` is stored as strings."""
        if self.faces == 1:
            self.face(0).save(path, **metadata)
            return
        arrays = {name: getattr(self, name) for name in PER_FACE}
        arrays |= {"timestamps_s": self.timestamps_s, "fps": np.asarray(self.fps)}
        with atomic_path(Path(path)) as tmp:
            np.savez_compressed(tmp, **arrays, **{f"meta_{k}": np.array(v) for k, v in metadata.items()})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FaceRois":
        """Every face of a file :meth:`save` or :meth:`LipRoi.save` wrote."""
        with np.load(path) as data:
            if data["roi"].ndim == 4:
                return cls(**{name: data[name] for name in PER_FACE}, timestamps_s=data["timestamps_s"],
                           fps=float(data["fps"]))
        single = LipRoi.load(path)
        if single.boxes is None:
            single.boxes = np.full((len(single), 4), np.nan, np.float32)
        return cls.from_faces([single])


def _empty_face(frames: int, crop_size: int, start: int) -> LipRoi:
    """A face not in view in ``frames`` frames from frame ``start``."""
    nan = np.float32(np.nan)
    return LipRoi(roi=np.zeros((frames, crop_size, crop_size), np.uint8), face_found=np.zeros(frames, bool),
                  mouth_landmarks=np.full((frames, len(KEPT_POINTS[LIPS_SLICE]), 2), nan),
                  timestamps_s=np.arange(start, start + frames) / VIDEO_FPS, transforms=np.full((frames, 2, 3), nan),
                  boxes=np.full((frames, 4), nan))


def extract_face_rois(source: str | os.PathLike | np.ndarray, options: LipRoiOptions = LipRoiOptions(),
                      cancel: threading.Event | None = None, landmarkers: int = 1) -> FaceRois:
    """The mouth crops of every face in a clip (up to ``options.max_faces`` at a time), one track per id.

    A face found in fewer than ``options.detect_every + 1`` frames (that is, by one landmarker call
    only) is taken for a false detection and left out, and the ids left are numbered 0, 1, ... in
    order of first appearance. A clip without a face gives one face, never found (as
    :func:`~avsr.io.lip_roi.extract_lip_roi` does).

    Args: as :func:`~avsr.io.lip_roi.extract_lip_roi`'s ``source``, ``options``, ``cancel``,
    ``landmarkers``.
    """
    if isinstance(source, np.ndarray) and (source.ndim != 4 or source.shape[-1] != 3 or len(source) == 0):
        raise ValueError(f"frames must be (T, H, W, 3) uint8 with T > 0, got shape {source.shape}")
    pieces = list(iter_face_pieces(source, options, cancel=cancel, landmarkers=landmarkers, every_face=True))
    count = max((len(piece) for piece in pieces), default=0)
    faces = []
    for face_id in range(count):
        parts, start = [], 0
        for piece in pieces:
            frames = len(piece[0])  # every piece has a face 0, if only one never found
            parts.append(piece[face_id] if face_id < len(piece) else _empty_face(frames, options.crop_size, start))
            start += frames
        face = LipRoi(**{name: np.concatenate([getattr(part, name) for part in parts])
                         for name in PER_FACE + ("timestamps_s",)})
        if face.face_found.sum() >= options.detect_every + 1:
            faces.append(face)
    release_free_heap()
    if not faces:
        frames = sum(len(piece[0]) for piece in pieces)
        faces = [_empty_face(frames, options.crop_size, 0)]
    return FaceRois.from_faces(faces)


def faces_of_pieces(first: LipRoi, others: list[list[LipRoi]],
                    options: LipRoiOptions = LipRoiOptions()) -> list[LipRoi]:
    """Every face of a clip as whole tracks over ``first``'s frames: ``first`` (face id 0, as
    :func:`~avsr.io.lip_roi.extract_lip_roi` returned it) and the pieces it put in ``other_faces``, each
    id's frames before it appeared not found. As in :func:`extract_face_rois`, a face found in fewer
    than ``options.detect_every + 1`` frames is left out (the ids left keep their order)."""
    frames, faces = len(first), [first]
    for pieces in others:
        start = int(round(pieces[0].timestamps_s[0] * VIDEO_FPS)) if len(pieces[0]) else 0
        parts = ([_empty_face(start, options.crop_size, 0)] if start else []) + pieces
        faces.append(LipRoi(**{name: np.concatenate([getattr(part, name) for part in parts])[:frames]
                               for name in PER_FACE + ("timestamps_s",)}))
    return [face for face in faces if face.face_found.sum() >= options.detect_every + 1]
