"""Lip-ROI throughput and steadiness: the old per-frame defaults vs. faster settings and today's defaults, in one run.

    python bench/lip_roi_speed.py [--repeats 3] [--files 6]

Clips: the real carphone sequence (176x144) and 640x360 / 1280x720 clips made from its frames
(upscaled, padded by reflection, played forwards then backwards to 12 s at 29.97 fps). Frames/s
is end to end (decode + 25 fps resampling + landmarks + alignment + crop + .npz write), wall
clock over a batch of ``--files`` copies, median of ``--repeats`` runs, worker start-up included.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from avsr.io import lip_roi
from avsr.io.lip_roi import LipRoi, LipRoiOptions, steadiness_percent
from avsr.io.media import _rotate, load_media
from avsr.io.roi_batch import run_lip_roi
from avsr.io.writer import write_video

CARPHONE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "carphone_pristine.mp4"
NTSC = Fraction(30000, 1001)

# (options, workers, FFmpeg's gray conversion): the first row is the defaults before 2026-12-01,
# which converted every frame to gray with FFmpeg (now: the luma plane is read; see frame_to_gray).
SETTINGS = {
    "old defaults (every frame), 1 worker": (LipRoiOptions(detect_every=1, detect_max_side=None), 1, True),
    "every frame, 1 worker": (LipRoiOptions(detect_every=1, detect_max_side=None), 1, False),
    "every 2nd frame, 1 worker": (LipRoiOptions(detect_every=2, detect_max_side=None), 1, False),
    "every 3rd frame, 1 worker": (LipRoiOptions(detect_every=3, detect_max_side=None), 1, False),
    "every 3rd, detect at 320, 1 worker": (LipRoiOptions(detect_every=3, detect_max_side=320), 1, False),
    "every 3rd, 320, max 1 face, 1 worker": (LipRoiOptions(detect_every=3, detect_max_side=320, max_faces=1), 1, False),
    "defaults, 1 worker": (LipRoiOptions(), 1, False),
    "defaults, 2 workers": (LipRoiOptions(), 2, False),
}


@contextlib.contextmanager
def ffmpeg_gray(enabled: bool):
    """Frames converted to gray by FFmpeg, as before (in this process: 1-worker rows only)."""
    if not enabled:
        yield
        return
    fast = lip_roi.frame_to_gray
    lip_roi.frame_to_gray = lambda frame: _rotate(frame.to_ndarray(format="gray"), frame.rotation or 0)
    try:
        yield
    finally:
        lip_roi.frame_to_gray = fast


def make_clip(source_frames: np.ndarray, width: int, height: int, path: Path) -> Path:
    """Upscale real frames to ``height``, pad to ``width`` by reflection, loop to 12 s."""
    scale = height / source_frames.shape[1]
    resized = [cv2.resize(f, (round(f.shape[1] * scale), height), interpolation=cv2.INTER_CUBIC) for f in source_frames]
    pad = width - resized[0].shape[1]
    padded = np.stack([cv2.copyMakeBorder(f, 0, 0, pad // 2, pad - pad // 2, cv2.BORDER_REFLECT) for f in resized])
    looped = np.concatenate([padded, padded[::-1], padded])  # 360 frames = 12 s at 29.97 fps
    return write_video(path, looped, NTSC)


def measure(paths: list[Path], out_dir: Path, repeats: int) -> dict[str, dict]:
    """Each setting's median frames/s over ``repeats`` rounds (the settings alternate within a round,
    so a change in the machine's load reaches them all), steadiness and face-found rate."""
    rates: dict[str, list[float]] = {label: [] for label in SETTINGS}
    results = {}
    for _ in range(repeats):
        for index, (label, (options, workers, old_gray)) in enumerate(SETTINGS.items()):
            assert workers == 1 or not old_gray, "the old conversion is patched in this process only"
            with ffmpeg_gray(old_gray):
                started = time.perf_counter()
                done = run_lip_roi(paths, out_dir / f"setting{index}", options, workers=workers, overwrite=True,
                                   progress=False)
                rates[label].append(sum(r.frames for r in done) / (time.perf_counter() - started))
            assert all(r.status == "done" for r in done), [r.error for r in done]
            results[label] = done
    rows = {}
    for label, (options, _, _) in SETTINGS.items():
        rois = [LipRoi.load(Path(r.output)) for r in results[label]]
        rows[label] = {"fps": statistics.median(rates[label]),
                       "steadiness": statistics.median(steadiness_percent(roi, options) for roi in rois),
                       "found": float(np.mean([roi.face_found.mean() for roi in rois]))}
    return rows


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
            print(f"{'setting':<40}{'frames/s':>10}{'x baseline':>12}{'steadiness %IOD':>17}{'face found':>12}")
            rows = measure(paths, tmp / "out", args.repeats)
            baseline = next(iter(rows.values()))["fps"]
            for label, row in rows.items():
                print(f"{label:<40}{row['fps']:>10.0f}{row['fps'] / baseline:>12.2f}"
                      f"{row['steadiness']:>17.2f}{row['found']:>12.1%}", flush=True)


if __name__ == "__main__":
    main()
