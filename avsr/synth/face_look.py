"""How a speaker's copy of a face photo differs from the photo (:class:`FaceLook`), and the painting
that gives a face frame its look: lighting and skin tone, the mouth's width and lips, lip colour and
facial hair. :func:`~avsr.synth.face_rig.build_rig` applies them once per speaker, before the rig's
displacement fields are made, so the mouth's motion carries the look with it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from avsr.errors import OptionError
from avsr.synth import VARIETY_KINDS


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
            raise OptionError(f"unknown face variety {sorted(unknown)}; choose from {', '.join(VARIETY_KINDS)}")
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


def shade(image: np.ndarray, oval: np.ndarray, look: FaceLook) -> np.ndarray:
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


def scale_mouth(image: np.ndarray, lips: np.ndarray, centre: np.ndarray, down: np.ndarray, width: float,
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


def colour_lips(image: np.ndarray, lips: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Recolour the lips towards ``colour`` (RGB), keeping their shading."""
    mask = _lip_mask(image.shape, lips)
    if mask.sum() < 1:
        return image
    mean = (image.reshape(-1, 3).astype(np.float32) * mask.reshape(-1, 1)).sum(axis=0) / mask.sum()
    recoloured = image * (colour / np.maximum(mean, 1.0))
    alpha = 0.8 * mask[..., None]
    return np.clip(image * (1 - alpha) + recoloured * alpha, 0, 255).astype(np.uint8)


def grow_hair(image: np.ndarray, lips: np.ndarray, oval: np.ndarray, down: np.ndarray, width: float,
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
