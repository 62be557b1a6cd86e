"""How far the mouth crops of each ROI style sit from auto_avsr's own preparation of the same clip.

    python -m bench.roi_geometry [--reference-crops PEER_GOLDEN/video_crops_rgb96.npy]

The reference is auto_avsr's MediaPipe preparation (182b628; mediapipe 0.10.14's face detection, run
unmodified) of tests/fixtures/carphone_pristine.mp4, a clip none of the styles was tuned on: for
each of its 120 frames, where its 96x96 crop lies in the frame
(tests/fixtures/auto_avsr/video_crop_geometry.json.gz; how it was made: the README there).

Ours: :func:`~avsr.io.lip_roi.extract_lip_roi` on the same decoded frames at the clip's own rate
(frame i against frame i), for each style and landmark stride (every frame, and every 3rd, the
default), and through the file as ``avsr lip-roi`` reads it (25 fps, each crop against the
reference's frame at the same time). Per frame, the similarity that takes our crop's square onto
the reference's: its shift at the centre (source pixels, and pixels of the reference's 96-pixel
crop) and its scale. Printed: the medians over the frames, and the 90th percentile of the shift.
Issue 33's target for ``auto-avsr``: within 2 px and 3 % in scale.

``--reference-crops``: the reference's own first 32 crops (RGB, 32x96x96x3; not in the repository,
they are 0.9 MB) for an image fit too: OpenCV's ECC affine registration of each of our crops onto the
reference's grey crop (0.299 R + 0.587 G + 0.114 B), its shift at the centre in crop pixels and its
scale, and the mean absolute grey-level difference of the crops as cut.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import numpy as np

from avsr.io.lip_roi import LipRoiOptions, crop_corners, extract_lip_roi
from avsr.preprocessing import ROI_STYLES, VIDEO_FPS
from bench.common import CARPHONE, ROOT

GOLDEN = ROOT / "tests" / "fixtures" / "auto_avsr" / "video_crop_geometry.json.gz"
REFERENCE_CROP = 96  # side of the reference's crops in its aligned frame


def reference_corners(path: Path = GOLDEN) -> np.ndarray:
    """The reference's crop squares in source pixels ``(T, 4, 2)``, one per frame of the clip."""
    with gzip.open(path, "rt") as file:
        return np.array([frame["crop_corners_src"] for frame in json.load(file)["frames"]])


def best_fit(corners: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the similarity that takes one square ``(T, 4, 2)`` onto the other: the distance
    between their centres ``(T,)`` (pixels) and the ratio of their sides ``(T,)``."""
    shift = np.linalg.norm(corners.mean(axis=1) - reference.mean(axis=1), axis=1)
    side = np.linalg.norm(np.diff(corners, axis=1), axis=2).mean(axis=1)
    reference_side = np.linalg.norm(np.diff(reference, axis=1), axis=2).mean(axis=1)
    return shift, side / reference_side


def read_frames(path: Path) -> tuple[np.ndarray, float]:
    """Every decoded frame at the file's own rate ``(T, H, W, 3) uint8`` (RGB, as the reference reads
    them: PyAV's rgb24) and that rate."""
    import av

    with av.open(str(path)) as container:
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
        return frames, float(container.streams.video[0].average_rate)


def frames_at_25_fps(count: int, source_frames: int, source_fps: float) -> np.ndarray:
    """For each 25 fps frame, the source frame shown at its time (the nearest, as the decoder resamples)."""
    return np.minimum(np.round(np.arange(count) / VIDEO_FPS * source_fps).astype(int), source_frames - 1)


def image_fit(ours: np.ndarray, reference_rgb: np.ndarray) -> tuple[float, float, float]:
    """Median shift at the centre (crop pixels) and median |scale - 1| of ECC affine fits of our grey
    crops ``(T, S, S)`` onto the reference's RGB crops ``(T, S, S, 3)``, and the mean absolute difference."""
    import cv2

    shifts, scales = [], []
    centre = np.full(2, (reference_rgb.shape[1] - 1) / 2)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 200, 1e-6)
    grey = np.stack([cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) for crop in reference_rgb]).astype(np.float32)
    for mine, theirs in zip(ours.astype(np.float32), grey):
        _, warp = cv2.findTransformECC(theirs, mine, np.eye(2, 3, dtype=np.float32), cv2.MOTION_AFFINE, criteria,
                                       None, 5)
        shifts.append(np.linalg.norm(warp[:, :2] @ centre + warp[:, 2] - centre))
        scales.append(np.sqrt(abs(np.linalg.det(warp[:, :2]))))
    difference = float(np.abs(ours.astype(np.float32) - grey).mean())
    return float(np.median(shifts)), float(np.median(np.abs(np.array(scales) - 1))), difference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference-crops", type=Path, default=None, metavar="NPY",
                        help="the reference's first crops, RGB (T, 96, 96, 3) uint8, for the image fit")
    args = parser.parse_args()
    reference = reference_corners()
    frames, fps = read_frames(CARPHONE)
    reference_crops = None if args.reference_crops is None else np.load(args.reference_crops)
    print(f"{CARPHONE.name}: {len(frames)} frames against auto_avsr's MediaPipe preparation; medians over frames")
    header = f"{'style':<10}{'input':<16}{'stride':>7}{'shift px':>10}{'crop px':>9}{'p90 px':>8}{'scale %':>9}"
    print(header + ("   image fit: crop px, scale %, |grey diff|" if reference_crops is not None else ""))
    for style in ROI_STYLES:
        for source, stride in (("frames", 1), ("frames", 3), ("file, 25 fps", 3)):
            options = LipRoiOptions(roi_style=style, detect_every=stride)
            roi = extract_lip_roi(frames if source == "frames" else CARPHONE, options)
            theirs = reference if source == "frames" else reference[frames_at_25_fps(len(roi), len(reference), fps)]
            shift, scale = best_fit(crop_corners(roi.transforms, options.crop_size), theirs)
            crop_px = shift * REFERENCE_CROP / np.linalg.norm(theirs[:, 1] - theirs[:, 0], axis=1)
            line = (f"{style:<10}{source:<16}{stride:>7}{np.median(shift):>10.2f}{np.median(crop_px):>9.2f}"
                    f"{np.percentile(shift, 90):>8.2f}{100 * np.median(np.abs(scale - 1)):>9.2f}")
            if reference_crops is not None and source == "frames":
                image_shift, image_scale, difference = image_fit(roi.roi[: len(reference_crops)], reference_crops)
                line += f"   {image_shift:>9.2f}{100 * image_scale:>9.2f}{difference:>9.1f}"
            print(line)


if __name__ == "__main__":
    main()
