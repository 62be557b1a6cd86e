"""Which reading of the mouth gives the best audio-video offset estimate, at which landmark stride.

    python bench/sync_signals.py MANIFEST.jsonl [--clips 20] [--offsets-ms -200 -120 -40 0 40 120 200]

For the first ``--clips`` clips of a raw manifest (taken evenly over its speakers, as
``bench/av_sync.py`` does) and every offset, a copy is written with the picture moved against the
sound (:func:`avsr.io.writer.write_offset_copy`) and decoded once with the landmarker on every frame
and once on every 3rd. The offset is then estimated (:func:`avsr.inference.sync.estimate_offset`)
from three mouth signals:

- ``opening``: inner-lip height over mouth width from the landmarks (:func:`mouth_opening`); at
  stride 3 interpolated between landmark frames;
- ``pixels``: the crops' first principal component over the mouth box (:func:`mouth_signal`), what
  ``avsr transcribe`` reads.

Printed per signal and stride: the median absolute error, the share within 40 ms and beyond 80 ms,
and the share of confident estimates (``SYNC_MIN_CONFIDENCE``, which transcription acts on) beyond
80 ms. No model runs.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from av_sync import pick_clips
from avsr.inference.sync import estimate_offset, mouth_opening, mouth_signal
from avsr.inference.transcribe import SYNC_MIN_CONFIDENCE
from avsr.io.lip_roi import LipRoiOptions, extract_lip_roi
from avsr.io.media import read_audio_into
from avsr.io.writer import write_offset_copy
from avsr.preprocessing import SAMPLES_PER_FRAME


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--offsets-ms", type=int, nargs="+", default=[-200, -120, -40, 0, 40, 120, 200])
    args = parser.parse_args()
    rows = {}  # (signal, stride) -> [(|error| ms, confidence)]
    with tempfile.TemporaryDirectory() as work:
        for clip in pick_clips(args.manifest, args.clips):
            for offset in args.offsets_ms:
                path = write_offset_copy(args.manifest.parent / clip["video"], Path(work) / "copy.mp4", offset // 40)
                for stride in (1, 3):
                    roi = extract_lip_roi(path, LipRoiOptions(detect_every=stride))
                    audio, _ = read_audio_into(path, len(roi.face_found) * SAMPLES_PER_FRAME)
                    opening = mouth_opening(roi.mouth_landmarks)
                    for signal, values in (("opening", opening), ("pixels", mouth_signal(roi.roi, roi.face_found, opening))):
                        estimate = estimate_offset(values, audio)
                        rows.setdefault((signal, stride), []).append(
                            (np.inf, 0.0) if estimate is None else (abs(estimate.offset_ms - offset), estimate.confidence))
    print(f"{args.clips} clips of {args.manifest} x offsets {args.offsets_ms} ms")
    print(f"{'signal':>8} {'stride':>6} {'median |error| ms':>17} {'within 40 ms':>13} {'beyond 80 ms':>13} "
          f"{'confident and beyond 80 ms':>27}")
    for (signal, stride), values in sorted(rows.items()):
        error, confidence = np.array(values).T
        print(f"{signal:>8} {stride:>6} {np.median(error):>17.1f} {100 * np.mean(error <= 40):>12.0f}% "
              f"{100 * np.mean(error > 80):>12.0f}% {100 * np.mean((error > 80) & (confidence >= SYNC_MIN_CONFIDENCE)):>26.1f}%")


if __name__ == "__main__":
    main()
