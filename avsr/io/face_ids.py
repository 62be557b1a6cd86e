"""Every face in view, each with an id that holds across frames and short losses.

:class:`FaceIdTracker` takes each landmarker call's faces (:meth:`~avsr.io.face_mesh.FaceMeshTracker.detect_faces`)
and assigns them to the tracks it keeps: the cost of a pair is the distance from the track's predicted
face centre to the face's centre, in face widths, and the pairs are chosen together (the Hungarian
assignment, scipy's ``linear_sum_assignment``; greedily by cost where scipy is missing). A track not seen
for more than ``max_gap_frames`` frames ends, as the single-face track's gaps longer than that are no
face (:func:`~avsr.io.face_align.fill_gaps`); a face no track takes starts a new id. Ids count from 0 in
order of first appearance, and faces first seen in the same call are numbered largest first, so that
id 0 of a clip that opens on several faces is the face the single-face track follows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avsr.io.face_mesh import KEPT_POINTS, OVAL_SLICE, face_size

# A face may be found this many face widths (at least) from where its track predicts it: half a width,
# as the single-face tracker allows (FaceMeshTracker._choose), and more the longer it was lost.
GATE_WIDTHS = 0.5
GATE_WIDTHS_PER_LOST_FRAME = 0.05
VELOCITY_FRAMES = 6  # a face found again within this many frames: its velocity is averaged with the last one


@dataclass
class _Track:
    face_id: int
    centre: np.ndarray  # (2,) pixels: the face oval's mean point
    velocity: np.ndarray  # (2,) pixels per frame
    size: float  # face width, pixels
    last_index: int  # the frame it was last found in


def face_centre(points: np.ndarray) -> np.ndarray:
    """The mean of the face-oval points of kept points ``(P, 2)``: ``(2,)`` pixels."""
    return points[OVAL_SLICE].mean(axis=0)


def face_box(points: np.ndarray) -> np.ndarray:
    """``[x0, y0, x1, y1]`` of the face oval, for kept points ``(..., P, 2)``: ``(..., 4)`` pixels
    (NaN where the points are)."""
    oval = points[..., OVAL_SLICE, :]
    return np.concatenate([oval.min(axis=-2), oval.max(axis=-2)], axis=-1)


def assign(cost: np.ndarray) -> list[tuple[int, int]]:
    """Row-column pairs of finite ``cost`` ``(R, C)`` with the least total (Hungarian, or greedy
    without scipy); an infinite cost is a pair not allowed."""
    if cost.size == 0:
        return []
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:
        pairs, taken_rows, taken_cols = [], set(), set()
        for flat in np.argsort(cost, axis=None):
            row, col = np.unravel_index(flat, cost.shape)
            if np.isfinite(cost[row, col]) and row not in taken_rows and col not in taken_cols:
                pairs.append((int(row), int(col)))
                taken_rows.add(row)
                taken_cols.add(col)
        return pairs
    finite = np.isfinite(cost)
    big = (cost[finite].max() + 1) * (cost.size + 1) if finite.any() else 1.0
    rows, cols = linear_sum_assignment(np.where(finite, cost, big))
    return [(int(r), int(c)) for r, c in zip(rows, cols) if finite[r, c]]


class FaceIdTracker:
    """Ids for the faces of one clip's landmarker calls, taken in frame order.

    Args:
        max_gap_frames: a track not found for more frames than this ends; a face found later is new.
    """

    def __init__(self, max_gap_frames: int) -> None:
        self._max_gap = max_gap_frames
        self._tracks: list[_Track] = []  # alive
        self.count = 0  # ids given so far

    def follow(self, faces: list[np.ndarray], index: int) -> np.ndarray:
        """The faces of frame ``index`` by id: kept points ``(count, P, 2)``, NaN for an id not found
        there (``count`` after this call: every id given so far)."""
        self._tracks = [t for t in self._tracks if index - t.last_index - 1 <= self._max_gap]
        centres = [face_centre(face) for face in faces]
        cost = np.full((len(self._tracks), len(faces)), np.inf)
        for row, track in enumerate(self._tracks):
            lost = index - track.last_index
            # Where its motion goes on, or (a face that left and came back) where it was last seen.
            predicted = (track.centre + track.velocity * lost, track.centre)
            gate = GATE_WIDTHS + GATE_WIDTHS_PER_LOST_FRAME * max(lost - 1, 0)
            for col, centre in enumerate(centres):
                widths = min(float(np.linalg.norm(centre - p)) for p in predicted) / max(track.size, 1.0)
                if widths < gate:
                    cost[row, col] = widths
        found: dict[int, np.ndarray] = {}
        taken = set()
        for row, col in assign(cost):
            track, taken = self._tracks[row], taken | {col}
            frames = index - track.last_index
            step = (centres[col] - track.centre) / frames
            track.velocity = 0.5 * (track.velocity + step) if frames <= VELOCITY_FRAMES else step
            track.centre, track.size, track.last_index = centres[col], face_size(faces[col]), index
            found[track.face_id] = faces[col]
        for col in sorted(set(range(len(faces))) - taken, key=lambda c: -face_size(faces[c])):
            self._tracks.append(_Track(self.count, centres[col], np.zeros(2), face_size(faces[col]), index))
            found[self.count] = faces[col]
            self.count += 1
        points = np.full((self.count, len(KEPT_POINTS), 2), np.nan, np.float32)
        for face_id, face in found.items():
            points[face_id] = face
        return points
