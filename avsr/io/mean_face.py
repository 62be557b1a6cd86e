"""The ``auto-avsr`` ROI style: auto_avsr's mouth-crop geometry from this package's face landmarks.

auto_avsr (github.com/mpc001/auto_avsr, preparation/detectors/mediapipe at 182b628) prepares a clip so:
four face-detection keypoints per frame (right eye, left eye, nose tip, mouth centre; whole pixels),
each averaged over the frames up to 6 either side (fewer at the clip's ends) and moved back to the
frame's own centroid; a 4-degree-of-freedom similarity (OpenCV's ``estimateAffinePartial2D``, least
median of squares) onto the same four points of its mean face in a 256x256 frame; and there a 96x96
box around the mouth-centre keypoint, its corner rounded to whole pixels. This module computes that
transform per frame, so that :mod:`avsr.io.lip_roi` cuts the box straight from the frame in one warp.

The four keypoints are taken from the face mesh (MediaPipe's landmarker): each eye's at the middle of
its two corners, the nose's at the mesh's nose tip, the mouth's halfway between the middles of the
outer upper and lower lip, each moved by the offset at which the reference's detector (mediapipe
0.10.14 ``solutions.face_detection``) puts its keypoint, in the face's own frame
(:data:`KEYPOINT_OFFSETS`). Measured on the six faces of shared/media/faces that both find (the
median), not on any clip the style is checked against. Before the offsets, the keypoints lay a median
0.04-0.07 of the outer eye-corner distance away; other nose and mouth points of the mesh were
further off, and the iris centres no nearer than the eye corners. Pure numpy and OpenCV on points.
"""

from __future__ import annotations

import cv2
import numpy as np

from avsr.io.face_align import CANONICAL_STABLE, similarity_transforms, true_runs
from avsr.io.face_mesh import (KEPT_POINTS, LEFT_EYE_INNER, LEFT_EYE_OUTER, NOSE_TIP, RIGHT_EYE_INNER,
                               RIGHT_EYE_OUTER, STABLE_SLICE)

ALIGNED_SIZE = 256  # side of the reference's aligned face frame, pixels
# The right eye, left eye, nose and mouth of auto_avsr's mean face in that frame: the means of points
# 36-41, 42-47, 31-35 and 48-67 of preparation/detectors/mediapipe/20words_mean_face.npy (68 x 2,
# MD5 ada7359b793f3406d90fb0fcf2dde069), as its VideoProcess.get_stable_reference takes them.
MEAN_FACE_POINTS = np.array([[102.0739430570659, 94.27230352389712], [156.3613054162131, 93.57815605186966],
                             [129.00373787023733, 135.90343028603127], [129.31337322587925, 157.82299634918854]])
MOUTH = 3  # the keypoint the crop is centred on
SMOOTH_RADIUS = 6  # frames averaged on either side of each (VideoProcess's window_margin 12, halved)
# Each keypoint as a mean of mesh points (indices into the 478-point mesh), in MEAN_FACE_POINTS' order.
UPPER_LIP_MIDDLE, LOWER_LIP_MIDDLE = 0, 17  # the outer lip contour's middle points
KEYPOINT_MESH_POINTS = ((RIGHT_EYE_OUTER, RIGHT_EYE_INNER), (LEFT_EYE_INNER, LEFT_EYE_OUTER), (NOSE_TIP,),
                        (UPPER_LIP_MIDDLE, LOWER_LIP_MIDDLE))
_ROWS = [[KEPT_POINTS.index(point) for point in group] for group in KEYPOINT_MESH_POINTS]
# Where the detector puts each keypoint from those mesh points, in units of the outer eye-corner distance
# of face_align's canonical face (x to the face's left eye, y down): the median over the six faces above.
# The detector's eye keypoints lie 5 % further apart than the eye corners' middles, and its nose and
# mouth keypoints towards the face's left eye. On carphone_pristine.mp4 these offsets took the crops
# from 1.5 to 1.3 px and from 2.8 to 1.2 % in scale off the reference's (python -m bench.roi_geometry).
KEYPOINT_OFFSETS = np.array([[-0.0026, 0.0201], [0.0336, 0.0002], [0.0376, 0.0047], [0.0192, 0.0152]])
# The detector's keypoints are truncated to whole pixels (int(x * width)): on average half a pixel
# towards the origin, which also puts them in OpenCV's convention (a pixel's centre at its index).
TRUNCATION_PX = 0.5


def keypoints(track: np.ndarray) -> np.ndarray:
    """The four keypoints ``(T, 4, 2)`` (pixels, OpenCV's convention) of kept mesh points ``(T, P, 2)``
    (NaN rows stay NaN)."""
    points = np.stack([track[:, rows].mean(axis=1) for rows in _ROWS], axis=1)
    face = np.isfinite(points).all(axis=(1, 2))
    to_canonical = similarity_transforms(track[face][:, STABLE_SLICE], CANONICAL_STABLE)  # (F, 2, 3)
    a, b = to_canonical[:, 0, 0], to_canonical[:, 1, 0]  # its scale times the cosine and sine of its angle
    from_canonical = np.stack([np.stack([a, b], -1), np.stack([-b, a], -1)], 1) / (a * a + b * b)[:, None, None]
    points[face] += np.einsum("fij,kj->fki", from_canonical, KEYPOINT_OFFSETS)  # (F, 4, 2) pixels
    return points - TRUNCATION_PX


def window_mean(points: np.ndarray, found: np.ndarray, radius: int = SMOOTH_RADIUS) -> np.ndarray:
    """Each found frame's points ``(T, K, 2)`` averaged over the frames up to ``radius`` either side
    (as many on both sides, fewer near the ends of its run of found frames), then moved so that their
    centroid is the frame's own: the smoothing steadies rotation and scale, never position."""
    smoothed = points.copy()
    for start, stop in true_runs(found):
        for frame in range(start, stop):  # each window summed afresh: the same values in any piece of a clip
            reach = min(radius, frame - start, stop - 1 - frame)
            mean = points[frame - reach: frame + reach + 1].mean(axis=0)  # (K, 2)
            smoothed[frame] = mean + points[frame].mean(axis=0) - mean.mean(axis=0)
    return smoothed


def to_mean_face(points: np.ndarray) -> np.ndarray:
    """The similarity ``(2, 3)`` taking one frame's four keypoints ``(4, 2)`` onto the mean face, by least
    median of squares as the reference fits it (least squares where OpenCV finds none)."""
    matrix, _ = cv2.estimateAffinePartial2D(points.astype(np.float64), MEAN_FACE_POINTS, method=cv2.LMEDS)
    return matrix if matrix is not None else similarity_transforms(points[None], MEAN_FACE_POINTS)[0]


def mean_face_transforms(track: np.ndarray, found: np.ndarray, crop_size: int) -> np.ndarray:
    """Image-to-crop affine matrices ``(T, 2, 3)`` of the ``auto-avsr`` style from a gap-filled kept-point
    track ``(T, P, 2)``; NaN where ``found`` is False (see :func:`keypoint_transforms`)."""
    return keypoint_transforms(keypoints(track), found, crop_size)


def keypoint_transforms(points: np.ndarray, found: np.ndarray, crop_size: int) -> np.ndarray:
    """Image-to-crop affine matrices ``(T, 2, 3)`` from the four keypoints per frame ``(T, 4, 2)``: the
    smoothed points' similarity onto the mean face, shifted so that the ``crop_size`` box around the
    mouth keypoint (its corner rounded, and clipped to the aligned frame as the reference clips it)
    starts at the crop's origin. NaN where ``found`` is False."""
    transforms = np.full((len(points), 2, 3), np.nan)
    smoothed = window_mean(points, found)
    half = crop_size // 2
    for frame in np.flatnonzero(found):
        matrix = to_mean_face(smoothed[frame])
        mouth = matrix[:, :2] @ smoothed[frame, MOUTH] + matrix[:, 2]
        transforms[frame] = matrix
        transforms[frame, :, 2] -= np.round(np.clip(mouth - half, 0, ALIGNED_SIZE))
    return transforms
