"""Lip-ROI throughput and steadiness: the old per-frame defaults vs. faster settings and today's defaults, in one run.

    python -m bench.lip_roi_speed [--repeats 3] [--files 6] [--only 1 7 8]
        [--peer AUTO_AVSR/preparation --peer-python SCRATCH_VENV/bin/python]

Per row: throughput, steadiness (the crop centre's frame-to-frame jitter) and drift (how far the
crop centre sits from the baseline row's, whose landmarks come from every full-size frame: the
error that sparser landmarks add where the head moves), both in % of the inter-ocular distance,
and the share of frames with a face.

Clips: the real carphone sequence (176x144) and 640x360 / 1280x720 clips made from its frames
(upscaled, padded by reflection, played forwards then backwards to 12 s at 29.97 fps). Frames/s
is end to end (decode + 25 fps resampling + landmarks + alignment + crop + .npz write), wall
clock over a batch of ``--files`` copies, median of ``--repeats`` runs, worker start-up included.
"frames/s" counts the 25 fps crops; "input f/s" counts the file's own frames (29.97 fps), the unit
of the peer's row. ``--only``: the settings to run, by their 1-based row number (the first is the
baseline and is always run).

``--peer``: auto_avsr's MediaPipe preparation, unmodified, timed by ``python -m bench.peer lip-roi`` in its
own interpreter (``--peer-python``, a scratch environment with the peer's ``mediapipe==0.10.14``)
on the same files, alternating with the settings within each round. Its time is in-process (decode
+ detection + crop; interpreter start-up and imports excluded), one process: compare it with the
"1 worker" rows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from avsr.io import face_track
from avsr.io.lip_roi import LipRoi, LipRoiOptions, crop_centres, steadiness_percent
from avsr.io.frames import _rotate
from avsr.io.media import load_media
from avsr.io.roi_batch import run_lip_roi
from bench.common import CARPHONE, ROOT, scaled_clip


# (options, workers, FFmpeg's gray conversion): the first row is the defaults before 2026-12-01,
# which converted every frame to gray with FFmpeg (now: the luma plane is read; see frame_to_gray).
SETTINGS = {
    "old defaults (every frame), 1 worker": (LipRoiOptions(detect_every=1, detect_max_side=None), 1, True),
    "every frame, 1 worker": (LipRoiOptions(detect_every=1, detect_max_side=None), 1, False),
    "every 2nd frame, 1 worker": (LipRoiOptions(detect_every=2, detect_max_side=None), 1, False),
    "every 3rd frame, 1 worker": (LipRoiOptions(detect_every=3, detect_max_side=None), 1, False),
    "every 3rd, detect at 320, 1 worker": (LipRoiOptions(detect_every=3, detect_max_side=320), 1, False),
    "every 3rd, 320, max 1 face, 1 worker": (LipRoiOptions(detect_every=3, detect_max_side=320, max_faces=1), 1, False),
    "defaults, up to 6th if still, 1 worker": (LipRoiOptions(detect_every_max=6), 1, False),
    "defaults, up to 12th if still, 1 worker": (LipRoiOptions(detect_every_max=12), 1, False),
    "defaults, 1 worker": (LipRoiOptions(), 1, False),
    "defaults, 2 workers": (LipRoiOptions(), 2, False),
    "every 4th, 320, 1 worker": (LipRoiOptions(detect_every=4), 1, False),
    "every 6th, 320, 1 worker": (LipRoiOptions(detect_every=6), 1, False),
}


@contextlib.contextmanager
def ffmpeg_gray(enabled: bool):
    """Frames converted to gray by FFmpeg, as before (in this process: 1-worker rows only)."""
    if not enabled:
        yield
        return
    fast = face_track.frame_to_gray
    face_track.frame_to_gray = lambda frame: _rotate(frame.to_ndarray(format="gray"), frame.rotation or 0)
    try:
        yield
    finally:
        face_track.frame_to_gray = fast


def input_frames(path: Path) -> int:
    """Frames the file holds at its own rate (decoded and counted)."""
    capture, count = cv2.VideoCapture(str(path)), 0
    while capture.grab():
        count += 1
    capture.release()
    return count


def run_peer(paths: list[Path], peer: Path, python: str) -> dict:
    """One timed pass of the peer's preparation over ``paths`` (``bench.peer lip-roi``), in the
    interpreter ``python`` with the peer's folder on its path."""
    done = subprocess.run([python, "-m", "bench.peer", "lip-roi", *map(str, paths)], capture_output=True, text=True,
                          cwd=ROOT, env=os.environ | {"PYTHONPATH": str(peer)})
    if done.returncode:
        raise RuntimeError(f"the peer's preparation failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def drift_percent(roi: LipRoi, options: LipRoiOptions, reference: LipRoi, reference_options: LipRoiOptions) -> float:
    """Median distance from each crop centre to the reference's (the landmarks of every frame), as %
    of the inter-ocular distance, over the frames both found: what steadiness cannot see, a crop
    that lags a moving head between sparser landmarker calls."""
    both = roi.face_found & reference.face_found
    centres, interocular = crop_centres(roi, options)
    truth = crop_centres(reference, reference_options)[0]
    distance = np.linalg.norm(centres[both[roi.face_found]] - truth[both[reference.face_found]], axis=1)
    return float(np.median(distance / interocular[both[roi.face_found]]) * 100)


def measure(paths: list[Path], out_dir: Path, repeats: int, settings: dict,
            peer: tuple[Path, str] | None = None) -> dict[str, dict]:
    """Each setting's median frames/s over ``repeats`` rounds (the settings alternate within a round,
    so a change in the machine's load reaches them all), steadiness and face-found rate; with
    ``peer``, the peer's row too (input frames/s and face-found rate; its steadiness is not read)."""
    rates: dict[str, list[float]] = {label: [] for label in settings}
    peer_rates, peer_found = [], 0.0
    results = {}
    for _ in range(repeats):
        if peer is not None:
            timed = run_peer(paths, *peer)
            peer_rates.append(timed["frames"] / timed["seconds"])
            peer_found = timed["found"] / timed["frames"]
        for index, (label, (options, workers, old_gray)) in enumerate(settings.items()):
            assert workers == 1 or not old_gray, "the old conversion is patched in this process only"
            with ffmpeg_gray(old_gray):
                started = time.perf_counter()
                done = run_lip_roi(paths, out_dir / f"setting{index}", options, workers=workers, overwrite=True,
                                   progress=False)
                rates[label].append(sum(r.frames for r in done) / (time.perf_counter() - started))
            assert all(r.status == "done" for r in done), [r.error for r in done]
            results[label] = done
    rows, reference = {}, None
    for label, (options, _, _) in settings.items():
        rois = [LipRoi.load(Path(r.output)) for r in results[label]]
        reference = reference or (rois[0], options)  # the first row: landmarks on every full-size frame
        rows[label] = {"fps": statistics.median(rates[label]), "frames": results[label][0].frames,
                       "steadiness": statistics.median(steadiness_percent(roi, options) for roi in rois),
                       "drift": drift_percent(rois[0], options, *reference),
                       "found": float(np.mean([roi.face_found.mean() for roi in rois]))}
    if peer is not None:
        rows["auto_avsr preparation (peer), 1 process"] = {"input_fps": statistics.median(peer_rates),
                                                          "found": peer_found}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--files", type=int, default=6, help="copies of each clip per batch")
    parser.add_argument("--only", type=int, nargs="+", metavar="ROW",
                        help=f"settings to run, 1-{len(SETTINGS)} in this order: {'; '.join(SETTINGS)}")
    parser.add_argument("--peer", type=Path, help="auto_avsr's preparation folder (commit 182b628)")
    parser.add_argument("--peer-python", help="the interpreter of the peer's scratch environment")
    args = parser.parse_args()
    if bool(args.peer) != bool(args.peer_python):
        parser.error("--peer and --peer-python go together")
    labels = list(SETTINGS)
    chosen = sorted({1, *(args.only or range(1, len(labels) + 1))})
    if chosen[-1] > len(labels) or chosen[0] < 1:
        parser.error(f"--only takes row numbers 1-{len(labels)}")
    settings = {labels[i - 1]: SETTINGS[labels[i - 1]] for i in chosen}
    peer = (args.peer.resolve(), args.peer_python) if args.peer else None
    source = load_media(CARPHONE, audio=False).video
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = {"carphone 176x144": CARPHONE,
                 "640x360": scaled_clip(source, 640, 360, tmp / "clip_640x360.mp4"),
                 "1280x720": scaled_clip(source, 1280, 720, tmp / "clip_1280x720.mp4")}
        for name, clip in clips.items():
            paths = []
            for i in range(args.files):
                copy = tmp / f"{clip.stem}_{i}{clip.suffix}"
                copy.write_bytes(clip.read_bytes())
                paths.append(copy)
            print(f"\n{name}: {args.files} files, median of {args.repeats} runs")
            print(f"{'setting':<42}{'frames/s':>9}{'input f/s':>10}{'x baseline':>11}{'x peer':>8}"
                  f"{'steadiness %IOD':>17}{'drift %IOD':>12}{'face found':>12}")
            rows = measure(paths, tmp / "out", args.repeats, settings, peer)
            per_output = input_frames(clip) / next(iter(rows.values()))["frames"]  # file frames per crop
            baseline = next(iter(rows.values()))["fps"] * per_output
            peer_fps = rows.get("auto_avsr preparation (peer), 1 process", {}).get("input_fps")
            for label, row in rows.items():
                fps = row.get("fps", float("nan"))
                input_fps = row.get("input_fps", fps * per_output)
                versus_peer = f"{input_fps / peer_fps:>8.2f}" if peer_fps else f"{'':>8}"
                print(f"{label:<42}{fps:>9.0f}{input_fps:>10.0f}{input_fps / baseline:>11.2f}{versus_peer}"
                      f"{row.get('steadiness', float('nan')):>17.2f}{row.get('drift', float('nan')):>12.2f}"
                      f"{row['found']:>12.1%}", flush=True)


if __name__ == "__main__":
    main()
