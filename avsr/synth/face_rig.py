"""Animate the mouth of a real face photo: a smooth image warp driven by mouth parameters.

A :class:`FaceRig` is built once per photo: the face is located with the project's landmarker,
cropped to a square frame, given the speaker's :class:`FaceLook` (skin tone and lighting, the
face's aspect, mouth width, lip thickness and colour, facial hair, the inside of the mouth), and
displacement fields are prepared around the mouth. Each video frame then (1) warps the jaw and
lower lip down and the lip corners out or in, (2) darkens the opening between the lips in
proportion to its height, with a hint of teeth, and (3) moves the head a little. Only the two mouth
parameters (``open``, ``spread``) drive it, so only visemic information reaches the picture.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from avsr.io.face_mesh import LIPS_SLICE, OVAL_SLICE, STABLE_SLICE, FaceMeshTracker, face_size
from avsr.synth import VARIETY_KINDS

class FaceImageError(ValueError):
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
    """

    image: np.ndarray
    lips: np.ndarray
    mouth_centre: np.ndarray
    mouth_width: float
    down: np.ndarray
    source: str
    look: FaceLook = field(default_factory=lambda: FaceLook())

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


@dataclass(frozen=True)
class FaceLook:
    """How a speaker's copy of a face differs from the photo. The defaults leave the photo as it is."""

    mirror: bool = False
    zoom: float = 1.0  # > 1: the face fills more of the frame
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)  # RGB gains (lighting colour)
    # "skin": skin tone (gain on the face, < 1 darker and warmer) and a lighting gradient across the
    # frame (gain change from the centre to the right / bottom edge).
    skin: float = 1.0
    light: tuple[float, float] = (0.0, 0.0)
    aspect: float = 1.0  # "aspect": face width / height against the photo's
    mouth_width: float = 1.0  # "mouth_width": corner-to-corner distance against the photo's
    lip_thickness: float = 1.0  # "lips": lip height against the photo's, and their colour (None: the photo's)
    lip_colour: tuple[int, int, int] | None = None
    hair: str = "none"  # "hair": none | moustache | beard (with moustache)
    hair_colour: tuple[int, int, int] = (40, 30, 25)
    hair_density: float = 0.0  # 0..1, fraction of the region covered by strands
    hair_seed: int = 0  # where the strands fall
    mouth_inside: tuple[int, int, int] = (38, 14, 17)  # "teeth": RGB of the mouth's inside, of the teeth,
    teeth: tuple[int, int, int] = (205, 198, 188)  # and how much of them an opening shows (1: as before)
    teeth_show: float = 1.0

    def vary(self, rng: np.random.Generator, kinds: tuple[str, ...] = VARIETY_KINDS) -> FaceLook:
        """This look with the named kinds of :data:`VARIETY_KINDS` drawn at random.

        Every kind takes its draws from ``rng`` whether chosen or not, so the draws of one kind do
        not depend on which others are on (an ablation changes only what it names).
        """
        unknown = set(kinds) - set(VARIETY_KINDS)
        if unknown:
            raise ValueError(f"unknown face variety {sorted(unknown)}; choose from {', '.join(VARIETY_KINDS)}")
        skin = float(rng.uniform(0.5, 1.2))
        light = (float(rng.uniform(-0.3, 0.3)), float(rng.uniform(-0.2, 0.2)))
        aspect = float(rng.uniform(0.86, 1.16))
        width = float(rng.uniform(0.82, 1.2))
        thickness = float(rng.uniform(0.75, 1.35))
        lip = np.array([rng.uniform(150, 215), rng.uniform(60, 120), rng.uniform(60, 115)]) * rng.uniform(0.5, 1.05)
        hair = ("none", "moustache", "beard")[int(rng.choice(3, p=[0.4, 0.3, 0.3]))]
        hair_colour = [(30, 22, 18), (60, 40, 28), (110, 80, 50), (150, 145, 140), (175, 140, 90)][int(rng.integers(5))]
        density = float(rng.uniform(0.35, 0.85))
        hair_seed = int(rng.integers(2**31))
        inside = (int(rng.uniform(20, 75)), int(rng.uniform(5, 30)), int(rng.uniform(8, 35)))
        teeth = int(rng.uniform(165, 235))
        teeth_rgb = (teeth, int(teeth * rng.uniform(0.9, 0.99)), int(teeth * rng.uniform(0.78, 0.95)))
        teeth_show = float(rng.uniform(0.2, 1.4))
        changes: dict = {}
        if "skin" in kinds:
            changes.update(skin=round(skin, 3), light=tuple(round(v, 3) for v in light))
        if "aspect" in kinds:
            changes.update(aspect=round(aspect, 3))
        if "mouth_width" in kinds:
            changes.update(mouth_width=round(width, 3))
        if "lips" in kinds:
            changes.update(lip_thickness=round(thickness, 3), lip_colour=tuple(int(v) for v in lip))
        if "hair" in kinds:
            changes.update(hair=hair, hair_colour=hair_colour,
                           hair_density=round(density, 3) if hair != "none" else 0.0, hair_seed=hair_seed)
        if "teeth" in kinds:
            changes.update(mouth_inside=inside, teeth=teeth_rgb, teeth_show=round(teeth_show, 3))
        return replace(self, **changes)


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
    image = _shade(image, moved[OVAL_SLICE], look)
    lips = moved[LIPS_SLICE]
    stable = moved[STABLE_SLICE]
    eyes_mid = (stable[0] + stable[3]) / 2
    mouth_centre = lips[:20].mean(axis=0)
    down = ((mouth_centre - eyes_mid) / np.linalg.norm(mouth_centre - eyes_mid)).astype(np.float32)
    width = float(np.linalg.norm(lips[0] - lips[10]))
    if (look.mouth_width, look.lip_thickness) != (1.0, 1.0):
        image, lips = _scale_mouth(image, lips, mouth_centre, down, width, look.mouth_width, look.lip_thickness)
        mouth_centre = lips[:20].mean(axis=0)
        width = float(np.linalg.norm(lips[0] - lips[10]))
    if look.lip_colour is not None:
        image = _colour_lips(image, lips, np.array(look.lip_colour, np.float32))
    if look.hair != "none" and look.hair_density > 0:
        image = _grow_hair(image, lips, moved[OVAL_SLICE], down, width, look)
    return FaceRig(image=image, lips=lips, mouth_centre=mouth_centre, mouth_width=width, down=down,
                   source=source, look=look)


def _shade(image: np.ndarray, oval: np.ndarray, look: FaceLook) -> np.ndarray:
    """Lighting colour (``tint``), skin tone on the face (``skin``) and a lighting gradient (``light``)."""
    if look.tint == (1.0, 1.0, 1.0) and look.skin == 1.0 and look.light == (0.0, 0.0):
        return image
    size = image.shape[0]
    gain = np.ones((size, size, 3), np.float32) * np.array(look.tint, np.float32)
    if look.skin != 1.0:
        # Darker skin is also warmer: blue falls faster than red.
        skin_gain = look.skin ** np.array([1.0, 1.15, 1.35], np.float32)
        mask = np.zeros((size, size), np.uint8)
        cv2.fillConvexPoly(mask, cv2.convexHull(np.round(oval).astype(np.int32)), 255)
        mask = cv2.GaussianBlur(mask, (0, 0), size / 40).astype(np.float32)[..., None] / 255
        gain *= 1 + mask * (skin_gain - 1)
    if look.light != (0.0, 0.0):
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / (size / 2) - 1  # -1 .. 1 across the frame
        gain *= np.clip(1 + look.light[0] * xs + look.light[1] * ys, 0.2, None)[..., None]
    return np.clip(image * gain, 0, 255).astype(np.uint8)


def _scale_mouth(image: np.ndarray, lips: np.ndarray, centre: np.ndarray, down: np.ndarray, width: float,
                 widen: float, thicken: float) -> tuple[np.ndarray, np.ndarray]:
    """Stretch the mouth region about its centre: ``widen`` along the lips, ``thicken`` across them.

    The stretch fades out with distance (a Gaussian window in mouth widths), so the nose and chin
    stay where they were. Returns the image and the lip points moved with it.
    """
    right = np.array([down[1], -down[0]], np.float32)
    gains = np.array([widen - 1, thicken - 1], np.float32)

    def forward(points: np.ndarray) -> np.ndarray:  # (..., 2) -> where the stretch takes them
        rel = points - centre
        u, v = rel @ right / width, rel @ down / width
        window = np.exp(-u**2 / (2 * 0.6**2) - v**2 / (2 * 0.4**2))
        return (centre + (u * (1 + window * gains[0]))[..., None] * right * width
                + (v * (1 + window * gains[1]))[..., None] * down * width)

    def backward(points: np.ndarray) -> np.ndarray:  # approximately the inverse of forward
        rel = points - centre
        u, v = rel @ right / width, rel @ down / width
        window = np.exp(-u**2 / (2 * 0.6**2) - v**2 / (2 * 0.4**2))
        return (centre + (u / (1 + window * gains[0]))[..., None] * right * width
                + (v / (1 + window * gains[1]))[..., None] * down * width)

    size = image.shape[0]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    source = backward(np.stack([xs, ys], axis=-1)).astype(np.float32)
    warped = cv2.remap(image, source[..., 0], source[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return warped, forward(lips).astype(np.float32)


def _lip_mask(shape: tuple[int, ...], lips: np.ndarray) -> np.ndarray:
    """Float mask ``(H, W)`` of the lips: inside the outer contour, outside the inner one."""
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(lips[:20] * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    cv2.fillPoly(mask, [np.round(lips[20:] * 16).astype(np.int32)], 0, cv2.LINE_AA, shift=4)
    return cv2.GaussianBlur(mask, (3, 3), 0).astype(np.float32) / 255


def _colour_lips(image: np.ndarray, lips: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Recolour the lips towards ``colour`` (RGB), keeping their shading."""
    mask = _lip_mask(image.shape, lips)
    if mask.sum() < 1:
        return image
    mean = (image.reshape(-1, 3).astype(np.float32) * mask.reshape(-1, 1)).sum(axis=0) / mask.sum()
    recoloured = image * (colour / np.maximum(mean, 1.0))
    alpha = 0.8 * mask[..., None]
    return np.clip(image * (1 - alpha) + recoloured * alpha, 0, 255).astype(np.uint8)


def _grow_hair(image: np.ndarray, lips: np.ndarray, oval: np.ndarray, down: np.ndarray, width: float,
               look: FaceLook) -> np.ndarray:
    """Paint a moustache (above the upper lip) or a beard (moustache, around the mouth and the chin).

    Strands are short vertical streaks of noise, seeded by the look, drawn into the photo before
    the rig's fields are made, so the jaw warp moves the beard with the chin.
    """
    size = image.shape[0]
    right = np.array([down[1], -down[0]], np.float32)
    centre = lips[:20].mean(axis=0)
    top = float(((lips[:20] - centre) @ down).min())  # the upper lip's top, in pixels along `down`
    angle = float(np.degrees(np.arctan2(right[1], right[0])))
    region = np.zeros((size, size), np.uint8)

    def ellipse(offset: float, half_width: float, half_height: float) -> None:
        c = centre + down * offset
        at = (round(float(c[0])), round(float(c[1])))
        cv2.ellipse(region, at, (int(half_width), int(half_height)), angle, 0, 360, 255, -1)

    ellipse(top - 0.12 * width, 0.62 * width, 0.14 * width)  # moustache
    if look.hair == "beard":
        ellipse(0.55 * width, 0.95 * width, 0.75 * width)
        ellipse(0.1 * width, 0.72 * width, 0.35 * width)  # the cheeks beside the mouth
    lips_area = np.zeros_like(region)
    cv2.fillPoly(lips_area, [np.round(lips[:20]).astype(np.int32)], 255)
    lips_area = cv2.dilate(lips_area, np.ones((3, 3), np.uint8), iterations=max(1, int(0.04 * width)))
    face = np.zeros_like(region)
    cv2.fillConvexPoly(face, cv2.convexHull(np.round(oval).astype(np.int32)), 255)
    region = cv2.GaussianBlur(np.minimum(np.minimum(region, face), 255 - lips_area), (0, 0), max(1.0, 0.04 * width))
    noise = np.random.default_rng(look.hair_seed).random((size, size)).astype(np.float32)
    strands = cv2.GaussianBlur(noise, (1, 0), sigmaX=0.6, sigmaY=max(1.0, 0.025 * width))  # vertical streaks
    strands = (strands - strands.mean()) / (strands.std() + 1e-6)
    threshold = float(np.quantile(strands, 1 - look.hair_density))
    cover = np.clip((strands - threshold) * 1.5 + 0.5, 0, 1) * region.astype(np.float32) / 255 * 0.9
    colour = np.array(look.hair_colour, np.float32)
    return np.clip(image * (1 - cover[..., None]) + colour * cover[..., None], 0, 255).astype(np.uint8)


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


def render_clip(animator: MouthAnimator, mouth: np.ndarray, motion: HeadMotion) -> np.ndarray:
    """Frames ``(T, S, S, 3) uint8`` for mouth parameters ``(T, 2)`` (open, spread)."""
    size = animator.rig.size
    matrices = motion.matrices(len(mouth), size)
    gains = motion.gains(len(mouth))
    frames = np.empty((len(mouth), size, size, 3), np.uint8)
    for t, (open_, spread) in enumerate(mouth):
        face = animator.mouth_frame(float(open_), float(spread))
        moved = cv2.warpAffine(face, matrices[t], (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        frames[t] = cv2.convertScaleAbs(moved, alpha=float(gains[t]))
    return frames
