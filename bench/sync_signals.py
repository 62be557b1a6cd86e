"""Which reading of the mouth gives the best audio-video offset estimate, at which landmark stride.

    python -m bench.sync_signals MANIFEST.jsonl [--clips 20] [--offsets-ms -200 -120 -40 0 40 120 200]

For the first ``--clips`` clips of a raw manifest (taken evenly over its speakers, as
``python -m bench.av_sync`` does) and every offset, a copy is written with the picture moved against the
sound (:func:`avsr.io.writer.write_offset_copy`) and decoded once with the landmarker on every frame
and once on every 3rd. The offset is then estimated (:func:`avsr.inference.sync.estimate_offset`)
from three mouth signals:

- ``opening``: inner-lip height over mouth width from the landmarks (:func:`mouth_opening`); at
  stride 3 interpolated between landmark frames;
- ``pixels``: the crops' first principal component over the mouth box (:func:`mouth_signal`), what
  ``avsr transcribe`` reads;
- ``both``: the pixels' estimate, with its confidence set to 0 where the opening's estimate is more
  than a frame away from it.

Printed per signal and stride: the median absolute error, the share within 40 ms and beyond 80 ms,
and for each confidence threshold (``SYNC_MIN_CONFIDENCE`` is the one transcription acts on) the
share of copies with a confident estimate and the share with a confident estimate beyond 80 ms. No
model runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from avsr.inference.sync import estimate_offset, mouth_opening, mouth_signal
from avsr.inference.sync import SYNC_MIN_CONFIDENCE
from avsr.io.lip_roi import LipRoiOptions, extract_lip_roi
from avsr.io.media import read_audio_into
from avsr.io.writer import write_offset_copy
from avsr.preprocessing import SAMPLES_PER_FRAME
from bench.common import pick_clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--offsets-ms", type=int, nargs="+", default=[-200, -120, -40, 0, 40, 120, 200])
    parser.add_argument("--strides", type=int, nargs="+", default=[1, 3], help="landmarker strides to decode with")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[SYNC_MIN_CONFIDENCE, 0.15, 0.2])
    args = parser.parse_args()
    rows = {}  # (signal, stride) -> [(|error| ms, confidence)]
    with tempfile.TemporaryDirectory() as work:
        for clip in pick_clips(args.manifest, args.clips):
            for offset in args.offsets_ms:
                path = write_offset_copy(args.manifest.parent / clip["video"], Path(work) / "copy.mp4", offset // 40)
                for stride in args.strides:
                    roi = extract_lip_roi(path, LipRoiOptions(detect_every=stride))
                    audio, _ = read_audio_into(path, len(roi.face_found) * SAMPLES_PER_FRAME)
                    opening = mouth_opening(roi.mouth_landmarks)
                    estimates = {signal: estimate_offset(values, audio) for signal, values in (
                        ("opening", opening), ("pixels", mouth_signal(roi.roi, roi.face_found, opening)))}
                    # both: the pixels' estimate, acted on only where the opening's agrees within a frame
                    pixels, other = estimates["pixels"], estimates["opening"]
                    agree = pixels is not None and other is not None and abs(pixels.offset_ms - other.offset_ms) <= 40
                    estimates["both"] = (pixels if pixels is None or agree
                                         else dataclasses.replace(pixels, confidence=0.0))
                    for signal, estimate in estimates.items():
                        rows.setdefault((signal, stride), []).append(
                            (np.inf, 0.0) if estimate is None
                            else (abs(estimate.offset_ms - offset), estimate.confidence))
    print(f"{args.clips} clips of {args.manifest} x offsets {args.offsets_ms} ms")
    print(f"{'signal':>8} {'stride':>6} {'median |error| ms':>17} {'within 40 ms':>13} {'beyond 80 ms':>13}   "
          + "   ".join(f"confidence >= {t:g}: acted on / wrong" for t in args.thresholds))
    for (signal, stride), values in sorted(rows.items()):
        error, confidence = np.array(values).T
        acted = "   ".join(f"{100 * np.mean(confidence >= t):>17.0f}% / "
                           f"{100 * np.mean((error > 80) & (confidence >= t)):>4.1f}%"
                           for t in args.thresholds)
        print(f"{signal:>8} {stride:>6} {np.median(error):>17.1f} {100 * np.mean(error <= 40):>12.0f}% "
              f"{100 * np.mean(error > 80):>12.0f}%   {acted}")


if __name__ == "__main__":
    main()
