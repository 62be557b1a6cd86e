"""Lip-ROI throughput and steadiness: the old per-frame defaults vs. faster settings and today's defaults, in one run.

    python bench/lip_roi_speed.py [--repeats 3] [--files 6]

Clips: the real carphone sequence (176x144) and 640x360 / 1280x720 clips made from its frames
(upscaled, padded by reflection, played forwards then backwards to 12 s at 29.97 fps). Frames/s
is end to end (decode + 25 fps resampling + landmarks + alignment + crop + .npz write), wall
clock over a batch of ``--files`` copies, median of ``--repeats`` runs, worker start-up included.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from avsr.io.lip_roi import LipRoi, LipRoiOptions, steadiness_percent
from avsr.io.media import load_media
from avsr.io.roi_batch import run_lip_roi
from avsr.io.writer import write_video

CARPHONE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "carphone_pristine.mp4"
NTSC = Fraction(30000, 1001)

PER_FRAME = LipRoiOptions(detect_every=1, detect_max_side=None)  # the defaults before 2026-12-01: the baseline
SETTINGS = {
    "every frame (old default), 1 worker": (PER_FRAME, 1),
    "every 2nd frame, 1 worker": (LipRoiOptions(detect_every=2, detect_max_side=None), 1),
    "every 3rd frame, 1 worker": (LipRoiOptions(detect_every=3, detect_max_side=None), 1),
    "every 3rd, detect at 320, 1 worker": (LipRoiOptions(detect_every=3, detect_max_side=320), 1),
    "every 3rd, 320, max 1 face, 1 worker": (LipRoiOptions(detect_every=3, detect_max_side=320, max_faces=1), 1),
    "defaults, 1 worker": (LipRoiOptions(), 1),
    "defaults, 2 workers": (LipRoiOptions(), 2),
}


def make_clip(source_frames: np.ndarray, width: int, height: int, path: Path) -> Path:
    """Upscale real frames to ``height``, pad to ``width`` by reflection, loop to 12 s."""
    scale = height / source_frames.shape[1]
    resized = [cv2.resize(f, (round(f.shape[1] * scale), height), interpolation=cv2.INTER_CUBIC) for f in source_frames]
    pad = width - resized[0].shape[1]
    padded = np.stack([cv2.copyMakeBorder(f, 0, 0, pad // 2, pad - pad // 2, cv2.BORDER_REFLECT) for f in resized])
    looped = np.concatenate([padded, padded[::-1], padded])  # 360 frames = 12 s at 29.97 fps
    return write_video(path, looped, NTSC)


def measure(paths: list[Path], options: LipRoiOptions, workers: int, out_dir: Path, repeats: int) -> dict:
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        results = run_lip_roi(paths, out_dir, options, workers=workers, overwrite=True, progress=False)
        elapsed = time.perf_counter() - started
        assert all(r.status == "done" for r in results), [r.error for r in results]
        rates.append(sum(r.frames for r in results) / elapsed)
    rois = [LipRoi.load(Path(r.output)) for r in results]
    return {
        "fps": statistics.median(rates),
        "steadiness": statistics.median(steadiness_percent(roi, options) for roi in rois),
        "found": float(np.mean([roi.face_found.mean() for roi in rois])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--files", type=int, default=6, help="copies of each clip per batch")
    args = parser.parse_args()
    source = load_media(CARPHONE, audio=False).video
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = {"carphone 176x144": CARPHONE,
                 "640x360": make_clip(source, 640, 360, tmp / "clip_640x360.mp4"),
                 "1280x720": make_clip(source, 1280, 720, tmp / "clip_1280x720.mp4")}
        for name, clip in clips.items():
            paths = []
            for i in range(args.files):
                copy = tmp / f"{clip.stem}_{i}{clip.suffix}"
                copy.write_bytes(clip.read_bytes())
                paths.append(copy)
            print(f"\n{name}: {args.files} files, median of {args.repeats} runs")
            print(f"{'setting':<36}{'frames/s':>10}{'x baseline':>12}{'steadiness %IOD':>17}{'face found':>12}")
            baseline = None
            for label, (options, workers) in SETTINGS.items():
                row = measure(paths, options, workers, tmp / "out", args.repeats)
                baseline = baseline or row["fps"]
                print(f"{label:<36}{row['fps']:>10.0f}{row['fps'] / baseline:>12.2f}"
                      f"{row['steadiness']:>17.2f}{row['found']:>12.1%}", flush=True)


if __name__ == "__main__":
    main()
