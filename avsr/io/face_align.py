"""A face's landmark track turned into crop transforms (steps 2-4 of :mod:`avsr.io.lip_roi`).

Gaps in the track are filled, the stable points (eye corners, nose) are smoothed over time and
mapped onto a canonical frontal face by a similarity transform, and the crop is centred on the
mouth in that frame, smoothed over a wider window. Pure numpy on arrays of points; no frames.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy.ndimage import gaussian_filter1d

from avsr.io.face_mesh import LIPS_OUTER, LIPS_SLICE, STABLE_SLICE
from avsr.io.roi_options import LipRoiOptions

# Canonical frontal face: the STABLE points (right eye outer, right eye inner, left eye inner, left
# eye outer, nose bridge, nose tip) in units of the outer-eye-corner distance, origin between the
# outer eye corners, y down. Mean of MediaPipe landmarks on the four frontal portraits in
# shared/media/faces, made left-right symmetric.
CANONICAL_STABLE = np.array(
    [[-0.5, 0.0], [-0.198, 0.018], [0.198, 0.018], [0.5, 0.0], [0.0, -0.045], [0.0, 0.463]], np.float32
)
# Mouth-corner distance of the same faces in those units (0.70-0.86 across the four).
CANONICAL_MOUTH_WIDTH = 0.727
LIPS_OUTER_COUNT = len(LIPS_OUTER)
# Distance between the eye centres (midpoints of each eye's two corners) in the same units.
CANONICAL_EYE_CENTRE_DISTANCE = float(np.linalg.norm(CANONICAL_STABLE[2:4].mean(0) - CANONICAL_STABLE[0:2].mean(0)))


def fill_gaps(points: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate missing frames of a landmark track.

    Args:
        points: ``(T, P, 2)`` with NaN rows where no landmarks were obtained.
        max_gap: the longest run of missing frames to fill (ends of the clip: held, not interpolated).

    Returns:
        ``(filled, found)``: filled points ``(T, P, 2)`` (NaN where still missing) and ``(T,) bool``.
    """
    valid = ~np.isnan(points[:, 0, 0])
    filled = points.copy()
    found = valid.copy()
    known = np.flatnonzero(valid)
    if len(known) == 0:
        return filled, found
    # Interior gaps.
    for left, right in zip(known[:-1], known[1:]):
        gap = right - left - 1
        if 0 < gap <= max_gap:
            weights = (np.arange(1, gap + 1) / (gap + 1))[:, None, None]
            filled[left + 1 : right] = (1 - weights) * points[left] + weights * points[right]
            found[left + 1 : right] = True
    # Leading and trailing runs: hold the nearest detection.
    if known[0] <= max_gap:
        filled[: known[0]] = points[known[0]]
        found[: known[0]] = True
    if len(points) - 1 - known[-1] <= max_gap:
        filled[known[-1] + 1 :] = points[known[-1]]
        found[known[-1] + 1 :] = True
    return filled, found


def true_runs(mask: np.ndarray) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of each run of True in a 1-D bool array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    yield from zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))


def smooth_track(points: np.ndarray, found: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-smooth ``(T, P, 2)`` points over time within each run of found frames."""
    smoothed = points.copy()
    if sigma <= 0:
        return smoothed
    for start, stop in true_runs(found):
        smoothed[start:stop] = gaussian_filter1d(points[start:stop], sigma, axis=0, mode="nearest")
    return smoothed


def similarity_transforms(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares similarity transforms (rotation, uniform scale, translation), no reflection.

    Args:
        source: points per frame ``(T, N, 2)``.
        target: the points they should land on ``(N, 2)``.

    Returns:
        Affine matrices ``(T, 2, 3)`` mapping source to target coordinates.
    """
    z = source[..., 0] + 1j * source[..., 1]  # (T, N)
    w = target[:, 0] + 1j * target[:, 1]  # (N,)
    z_mean, w_mean = z.mean(axis=1, keepdims=True), w.mean()
    zc, wc = z - z_mean, w - w_mean
    a = (np.conj(zc) * wc).sum(axis=1) / (np.abs(zc) ** 2).sum(axis=1)  # (T,) = scale * e^{i angle}
    shift = w_mean - a * z_mean[:, 0]
    matrices = np.empty((len(source), 2, 3), np.float64)
    matrices[:, 0] = np.stack([a.real, -a.imag, shift.real], axis=1)
    matrices[:, 1] = np.stack([a.imag, a.real, shift.imag], axis=1)
    return matrices


def apply_affine(matrices: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map ``(T, P, 2)`` points with ``(T, 2, 3)`` matrices."""
    return np.einsum("tij,tpj->tpi", matrices[:, :, :2], points) + matrices[:, None, :, 2]


def crop_transforms(track: np.ndarray, found: np.ndarray, options: LipRoiOptions) -> np.ndarray:
    """Image-to-crop affine matrices ``(T, 2, 3)`` from a gap-filled kept-point track ``(T, P, 2)``.

    Frames where ``found`` is False get NaN matrices.
    """
    transforms = np.full((len(track), 2, 3), np.nan)
    if not found.any():
        return transforms
    smoothed = smooth_track(track, found, options.smooth_sigma_frames)
    to_canonical = np.full((len(track), 2, 3), np.nan)
    to_canonical[found] = similarity_transforms(smoothed[found][:, STABLE_SLICE], CANONICAL_STABLE)
    # The mouth centre in the canonical face frame moves slowly with head pitch and fast with the
    # jaw; a wide temporal smoothing follows the first and damps the second.
    outer_lips = smoothed[:, LIPS_SLICE][:, :LIPS_OUTER_COUNT]
    centres = apply_affine(to_canonical, outer_lips).mean(axis=1)  # (T, 2)
    mouth_centre = smooth_track(centres[:, None], found, options.mouth_smooth_sigma_frames)[:, 0]  # (T, 2)
    scale = options.mouth_width_fraction * options.crop_size / CANONICAL_MOUTH_WIDTH
    transforms = to_canonical * scale
    transforms[:, :, 2] += (options.crop_size - 1) / 2 - scale * mouth_centre
    return transforms
