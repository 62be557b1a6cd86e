"""Animate the mouth of a real face photo: a smooth image warp driven by mouth parameters.

A :class:`FaceRig` is built once per photo: the face is located with the project's landmarker,
cropped to a square frame, given the speaker's :class:`~avsr.synth.face_look.FaceLook` (skin tone
and lighting, the face's aspect, mouth width, lip thickness and colour, facial hair, the inside of
the mouth), and displacement fields are prepared around the mouth. Each video frame then (1) warps the jaw and
lower lip down and the lip corners out or in, (2) darkens the opening between the lips in
proportion to its height, with a hint of teeth, and (3) moves the head a little. Only the two mouth
parameters (``open``, ``spread``) drive it, so only visemic information reaches the picture.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from avsr.errors import AvsrError
from avsr.io.face_mesh import LIPS_SLICE, OVAL_SLICE, STABLE_SLICE, FaceMeshTracker, face_size
from avsr.synth.face_look import FaceLook, colour_lips, grow_hair, scale_mouth, shade

class FaceImageError(AvsrError, ValueError):
    """A face photo that cannot be read or shows no usable face."""


@dataclass
class FaceRig:
    """A face photo prepared for animation.

    Attributes:
        image: the square face frame ``(S, S, 3) uint8`` (RGB).
        lips: the 40 lip points (outer then inner contour) in frame pixels ``(40, 2)``.
        mouth_centre: ``(2,)``; mouth_width: corner-to-corner distance in pixels.
        down: unit vector pointing from the eyes to the mouth ``(2,)``.
        source: the photo's file name and face index, for the manifest.
        eyes: each eye's two corners in frame pixels ``(2, 2, 2)`` (the blinks'; None: no blinks).
    """

    image: np.ndarray
    lips: np.ndarray
    mouth_centre: np.ndarray
    mouth_width: float
    down: np.ndarray
    source: str
    look: FaceLook = field(default_factory=lambda: FaceLook())
    eyes: np.ndarray | None = None

    @property
    def size(self) -> int:
        return self.image.shape[0]


def read_photo(path: str | Path) -> np.ndarray:
    """RGB ``(H, W, 3) uint8`` of an image file, or :class:`FaceImageError`."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FaceImageError(f"{path}: cannot be read as an image; pass a JPEG or PNG photo")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def find_faces(photo: np.ndarray, min_face_px: int = 60) -> list[np.ndarray]:
    """Kept landmark points ``(P, 2)`` of every face in a photo, left to right.

    MediaPipe's short-range detector misses small faces in wide shots, so the photo is also
    searched in overlapping zoomed tiles; duplicates are merged.
    """
    height, width = photo.shape[:2]
    # Zoomed tiles first: where a face is found twice, the more detailed mesh is kept.
    tile_w, tile_h = int(width * 0.6), int(height * 0.6)
    windows = [(x, y, tile_w, tile_h) for y in (0, height - tile_h) for x in (0, (width - tile_w) // 2, width - tile_w)]
    windows.append((0, 0, width, height))
    faces: list[tuple[np.ndarray, np.ndarray]] = []  # (box, points)
    for x, y, w, h in windows:
        with FaceMeshTracker(max_faces=8) as tracker:  # fresh tracker: each window is a new image
            found = tracker.detect_faces(np.ascontiguousarray(photo[y:y + h, x:x + w]), 0)
        for points in found:
            low, high = points[OVAL_SLICE].min(axis=0), points[OVAL_SLICE].max(axis=0)
            margin = 0.02 * max(w, h)
            if face_size(points) < min_face_px or (low < margin).any() or (high > np.array([w, h]) - margin).any():
                continue  # too small, or cut by the window edge (its mesh is unreliable)
            box = np.concatenate([low + [x, y], high + [x, y]])
            if all(_overlap(box, other) < 0.3 for other, _ in faces):
                faces.append((box, points + np.array([x, y], np.float32)))
    return [points for box, points in sorted(faces, key=lambda f: float(f[0][0]))]


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boxes ``(x0, y0, x1, y1)``."""
    inter = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None).prod()
    union = (a[2:] - a[:2]).prod() + (b[2:] - b[:2]).prod() - inter
    return float(inter / union) if union > 0 else 0.0


def build_rig(photo: np.ndarray, points: np.ndarray, frame_size: int = 224, source: str = "",
              look: FaceLook = FaceLook()) -> FaceRig:
    """Crop a square frame around one face (``points`` from :func:`find_faces`), give it ``look``, set up the rig."""
    oval = points[OVAL_SLICE]
    centre = (oval.min(axis=0) + oval.max(axis=0)) / 2
    side = 1.6 * float(np.ptp(oval, axis=0).max()) / look.zoom
    scale = frame_size / side
    # Photo to frame: the face centre lands in the frame centre (mirrored if asked), stretched to
    # the look's aspect at constant area.
    sign = -1.0 if look.mirror else 1.0
    sx, sy = sign * scale * np.sqrt(look.aspect), scale / np.sqrt(look.aspect)
    matrix = np.array([[sx, 0, frame_size / 2 - sx * centre[0]],
                       [0, sy, frame_size / 2 - sy * centre[1]]], np.float32)
    image = cv2.warpAffine(photo, matrix, (frame_size, frame_size),
                           flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    moved = points @ matrix[:, :2].T + matrix[:, 2]
    image = shade(image, moved[OVAL_SLICE], look)
    lips = moved[LIPS_SLICE]
    stable = moved[STABLE_SLICE]
    eyes_mid = (stable[0] + stable[3]) / 2
    mouth_centre = lips[:20].mean(axis=0)
    down = ((mouth_centre - eyes_mid) / np.linalg.norm(mouth_centre - eyes_mid)).astype(np.float32)
    width = float(np.linalg.norm(lips[0] - lips[10]))
    if (look.mouth_width, look.lip_thickness) != (1.0, 1.0):
        image, lips = scale_mouth(image, lips, mouth_centre, down, width, look.mouth_width, look.lip_thickness)
        mouth_centre = lips[:20].mean(axis=0)
        width = float(np.linalg.norm(lips[0] - lips[10]))
    if look.lip_colour is not None:
        image = colour_lips(image, lips, np.array(look.lip_colour, np.float32))
    if look.hair != "none" and look.hair_density > 0:
        image = grow_hair(image, lips, moved[OVAL_SLICE], down, width, look)
    return FaceRig(image=image, lips=lips, mouth_centre=mouth_centre, mouth_width=width, down=down,
                   source=source, look=look, eyes=stable[:4].reshape(2, 2, 2).astype(np.float32))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class MouthAnimator:
    """Renders frames of one rig for given mouth parameters (``open``, ``spread``).

    The forward displacement of a point is linear in the parameters:
    ``d(p) = open * (jaw(p) + lift(p)) + spread * corners(p)``, with fields fixed per rig, so a
    frame costs one remap, one polygon fill and one affine warp.
    """

    JAW_DROP = 0.30  # lower-lip travel at open = 1, in mouth widths
    LIP_LIFT = 0.05  # upper-lip lift at open = 1
    CORNER_PULL = 0.13  # corner travel at |spread| = 1

    def __init__(self, rig: FaceRig) -> None:
        self.rig = rig
        size = rig.size
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
        self._grid = np.stack([xs, ys], axis=-1)  # (S, S, 2)
        self._open_field, self._spread_field, close = self._fields(self._grid)  # (S, S, 2) each
        self._base_map = self._grid - close
        # The inner contour: lower lip 0-10 (corners 0 and 10, half on each lip), upper lip 11-19.
        self._inner_below = np.r_[0.5, np.ones(9), 0.5, np.zeros(9)].astype(np.float32)

    def _fields(self, points: np.ndarray, below: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Displacements at ``points`` ``(..., 2)``: per unit ``open``, per unit ``spread``, and the
        constant one that closes the photo's own lip gap (so ``open = 0`` means lips together).

        ``below`` (0..1 per point) says which lip a point belongs to (1: the lower one, which the
        jaw carries). By default it is read from the point's position; points on a closed photo's
        lip line are ambiguous there and must say.
        """
        rig = self.rig
        down = rig.down
        right = np.array([down[1], -down[0]], np.float32)
        width = rig.mouth_width
        inner = (rig.lips[20:] - rig.mouth_centre) / width
        inner_x, inner_y = inner @ right, inner @ down  # (20,) lower lip 0-10, upper 10-19 (+ corner 0)
        rel = points - rig.mouth_centre
        x, y = rel @ right / width, rel @ down / width  # face coordinates, in mouth widths
        # The inner contours of the two lips as functions of x, to close the photo's own gap exactly.
        upper = np.r_[10:20, 0]
        order_u, order_l = np.argsort(inner_x[upper]), np.argsort(inner_x[0:11])
        upper_y = np.interp(x, inner_x[upper][order_u], inner_y[upper][order_u])
        lower_y = np.interp(x, inner_x[0:11][order_l], inner_y[0:11][order_l])
        photo_gap = np.maximum(lower_y - upper_y, 0.0)
        if below is None:
            below = _sigmoid(np.clip((y - upper_y - 0.005) / 0.02, -50, 50))
        jaw = below * np.exp(-x**2 / (2 * 0.4**2)) * np.exp(-np.maximum(y - 1.2, 0) ** 2 / (2 * 0.3**2))
        lift = (1 - below) * np.exp(-x**2 / (2 * 0.45**2) - (y - upper_y) ** 2 / (2 * 0.18**2))
        corners = np.sign(x) * np.exp(-(np.abs(x) - 0.5) ** 2 / (2 * 0.16**2) - (y - upper_y) ** 2 / (2 * 0.2**2))
        open_field = (self.JAW_DROP * jaw - self.LIP_LIFT * lift)[..., None] * down * width
        spread_field = (self.CORNER_PULL * corners)[..., None] * right * width
        close_field = (-photo_gap * below)[..., None] * down * width
        return open_field.astype(np.float32), spread_field.astype(np.float32), close_field.astype(np.float32)

    def mouth_frame(self, open_: float, spread: float) -> np.ndarray:
        """The face with the mouth at these parameters, before head motion: ``(S, S, 3) uint8``."""
        maps = self._base_map - (open_ * self._open_field + spread * self._spread_field)  # backward map
        frame = cv2.remap(self.rig.image, maps[..., 0], maps[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        self._darken_opening(frame, open_, spread)
        return frame

    def _darken_opening(self, frame: np.ndarray, open_: float, spread: float) -> None:
        inner = self.rig.lips[20:]
        open_at, spread_at, close_at = self._fields(inner, self._inner_below)
        moved = inner + close_at + open_ * open_at + spread * spread_at  # (20, 2): lower lip 0-10, upper 10-19
        gap = float((moved[5] - moved[15]) @ self.rig.down)  # lower-centre below upper-centre
        alpha = np.clip((gap - 0.5) / 3.0, 0.0, 1.0) * 0.95
        if alpha <= 0:
            return
        mask = np.zeros(frame.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round(moved * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        upper = moved[10:].tolist() + [moved[0].tolist()]
        teeth_height = min(0.25 * gap, 0.08 * self.rig.mouth_width)
        band = np.array(upper + [[x, y + teeth_height] for x, y in reversed(upper)], np.float32)
        teeth = np.zeros_like(mask)
        cv2.fillPoly(teeth, [np.round(band * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        inside = cv2.GaussianBlur(mask, (3, 3), 0).astype(np.float32)[..., None] / 255 * alpha
        look = self.rig.look
        teeth_show = np.clip(gap / (0.15 * self.rig.mouth_width) - 0.5, 0.0, 0.6) * look.teeth_show
        teeth_alpha = (np.minimum(teeth, mask).astype(np.float32)[..., None] / 255) * min(teeth_show, 0.9) * alpha
        colour = ((1 - teeth_alpha) * np.array(look.mouth_inside, np.float32)
                  + teeth_alpha * np.array(look.teeth, np.float32))
        frame[:] = np.clip(frame * (1 - inside) + colour * inside, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class HeadMotion:
    """Small head movement and lighting change over a clip, drawn from a seed."""

    drift_px: float
    drift_hz: float
    roll_deg: float
    jitter_px: float
    gain: float
    gain_wobble: float
    phase: float
    noise_seed: int

    @classmethod
    def random(cls, rng: np.random.Generator) -> "HeadMotion":
        return cls(drift_px=rng.uniform(0.5, 2.5), drift_hz=rng.uniform(0.1, 0.4), roll_deg=rng.uniform(0.3, 1.5),
                   jitter_px=rng.uniform(0.1, 0.35), gain=rng.uniform(0.88, 1.1), gain_wobble=rng.uniform(0.0, 0.05),
                   phase=rng.uniform(0, 2 * np.pi), noise_seed=int(rng.integers(2**31)))

    def _noise(self, stream: int, frame_count: int, scale: float) -> np.ndarray:
        """Per-frame noise whose first frames do not depend on the clip's length."""
        return np.random.default_rng([self.noise_seed, stream]).normal(0, scale, frame_count)

    def matrices(self, frame_count: int, size: int, fps: float = 25.0) -> np.ndarray:
        """Affine matrices ``(T, 2, 3)`` moving the frame about its centre."""
        t = np.arange(frame_count) / fps
        wave = 2 * np.pi * self.drift_hz * t + self.phase
        dx = self.drift_px * np.sin(wave) + self._noise(0, frame_count, self.jitter_px)
        dy = 0.6 * self.drift_px * np.sin(1.7 * wave + 1.0) + self._noise(1, frame_count, self.jitter_px)
        roll = self.roll_deg * np.sin(0.8 * wave + 2.0)
        centre = (size / 2, size / 2)
        out = np.stack([cv2.getRotationMatrix2D(centre, float(r), 1.0) for r in roll])
        out[:, 0, 2] += dx
        out[:, 1, 2] += dy
        return out.astype(np.float32)

    def gains(self, frame_count: int, fps: float = 25.0) -> np.ndarray:
        """Brightness gain per frame ``(T,)``."""
        t = np.arange(frame_count) / fps
        wobble = 1 + self.gain_wobble * np.sin(2 * np.pi * 0.3 * t + self.phase)
        return self.gain * wobble + self._noise(2, frame_count, 0.004)


BLINK_SHAPE = (0.45, 0.9, 1.0, 0.75, 0.4, 0.12)  # the eyelids' closure over a blink's frames at 25 fps (240 ms)


def blink_track(frame_count: int, rng: np.random.Generator, fps: float = 25.0,
                every_s: tuple[float, float] = (2.0, 6.0)) -> np.ndarray:
    """The eyelids' closure per frame ``(T,)`` in 0..1: blinks of :data:`BLINK_SHAPE`, the first within
    ``every_s[1]`` seconds and each next one ``every_s`` seconds (drawn uniformly) after the last."""
    closure = np.zeros(frame_count, np.float32)
    at_s = float(rng.uniform(0.0, every_s[1]))
    while (start := int(at_s * fps)) < frame_count:
        shape = np.asarray(BLINK_SHAPE[: frame_count - start], np.float32)
        closure[start:start + len(shape)] = np.maximum(closure[start:start + len(shape)], shape)
        at_s += float(rng.uniform(*every_s))
    return closure


def close_eyes(frame: np.ndarray, rig: FaceRig, closure: float) -> None:
    """Lower the upper eyelids of ``frame`` (the rig's face before head motion, ``(S, S, 3) uint8``) over the eyes
    by ``closure`` (0 open, 1 shut), in place: the skin just above each eye is drawn down to the lid's edge,
    with a dark line of lashes along it. Nothing without the rig's eye corners."""
    if rig.eyes is None or closure <= 0.02:
        return
    size = frame.shape[0]
    for corner_a, corner_b in rig.eyes:
        centre, width = (corner_a + corner_b) / 2, float(np.linalg.norm(corner_b - corner_a))
        if width < 2:
            continue
        along = (corner_b - corner_a) / width
        normal = rig.down - float(rig.down @ along) * along  # towards the mouth, across the eye
        normal = normal / np.linalg.norm(normal)
        half = 0.2 * width  # the eye's half opening
        u = np.linspace(-0.55, 0.55, 15) * width
        arc = np.sqrt(np.clip(1 - (u / (0.55 * width)) ** 2, 0, 1))
        top, bottom = -(1.25 * arc + 0.1) * half, 0.75 * arc * half
        edge = top + closure * (bottom - top)
        upper = centre + u[:, None] * along + top[:, None] * normal  # (15, 2)
        lid = centre + u[:, None] * along + edge[:, None] * normal
        above = np.round(centre - 2.2 * half * normal).astype(int)
        reach = max(2, int(0.12 * width))
        patch = frame[max(above[1] - reach, 0): above[1] + reach + 1, max(above[0] - reach, 0): above[0] + reach + 1]
        if patch.size == 0:
            continue
        skin = patch.reshape(-1, 3).mean(axis=0) * 0.93  # the lid a shade darker than the brow's skin
        x0, y0 = np.clip(np.floor(np.minimum(upper.min(0), lid.min(0))).astype(int) - 3, 0, size)
        x1, y1 = np.clip(np.ceil(np.maximum(upper.max(0), lid.max(0))).astype(int) + 4, 0, size)
        box = frame[y0:y1, x0:x1]
        offset = np.array([x0, y0], np.float32)
        mask = np.zeros(box.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round((np.concatenate([upper, lid[::-1]]) - offset) * 16).astype(np.int32)], 255,
                     cv2.LINE_AA, shift=4)
        lashes = np.zeros_like(mask)
        cv2.polylines(lashes, [np.round((lid - offset) * 16).astype(np.int32)], False, 255,
                      max(1, round(width / 14)), cv2.LINE_AA, shift=4)
        cover = cv2.GaussianBlur(mask, (3, 3), 0).astype(np.float32)[..., None] / 255
        dark = lashes.astype(np.float32)[..., None] / 255 * min(1.0, 1.5 * closure)
        painted = box * (1 - cover) + skin * cover
        box[:] = np.clip(painted * (1 - dark) + np.array([35, 25, 25], np.float32) * dark, 0, 255).astype(np.uint8)


def render_clip(animator: MouthAnimator, mouth: np.ndarray, motion: HeadMotion,
                blinks: np.ndarray | None = None) -> np.ndarray:
    """Frames ``(T, S, S, 3) uint8`` for mouth parameters ``(T, 2)`` (open, spread); ``blinks``: the eyelids'
    closure per frame ``(T,)`` (:func:`blink_track`; None: the eyes stay open)."""
    size = animator.rig.size
    matrices = motion.matrices(len(mouth), size)
    gains = motion.gains(len(mouth))
    frames = np.empty((len(mouth), size, size, 3), np.uint8)
    for t, (open_, spread) in enumerate(mouth):
        face = animator.mouth_frame(float(open_), float(spread))
        if blinks is not None:
            close_eyes(face, animator.rig, float(blinks[t]))
        moved = cv2.warpAffine(face, matrices[t], (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        frames[t] = cv2.convertScaleAbs(moved, alpha=float(gains[t]))
    return frames
