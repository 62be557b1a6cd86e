"""How far each speaker's lips move in the network's input, per split of a prepared corpus.

    python bench/motion_amplitude.py data/synth_grid_prepared [--per-speaker 15]

For each speaker, the RMS of the centre crop (``Preprocessing.crop_size``) after global
standardisation and the subtraction of each utterance's mean image (what ``video_norm: utterance``
feeds the network), averaged over up to ``--per-speaker`` utterances. A test face far below the
training speakers' range (a narrow mouth, a small face in the frame) is one the lip reader has never
seen move that little: ``video_norm: utterance_rms`` scales every utterance to ``motion_rms`` (0.26,
the median of the synthetic corpus's training speakers printed here).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from avsr.data.manifest import read_jsonl
from avsr.preprocessing import Preprocessing


def utterance_rms(features: Path, spec: Preprocessing) -> float | None:
    with np.load(features) as data:
        crops, found = data["roi"], data["face_found"].astype(bool)
    rows, columns = spec.crop_box()
    x = (crops[found][:, rows, columns].astype(np.float32) / 255 - spec.pixel_mean) / spec.pixel_std
    return float(np.sqrt(np.mean((x - x.mean(axis=0)) ** 2))) if len(x) > 1 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prepared", type=Path, help="folder of train/val/test.jsonl from avsr prepare manifest")
    parser.add_argument("--per-speaker", type=int, default=15)
    args = parser.parse_args()
    spec = Preprocessing()
    print(f"{'split':6} {'speaker':8} {'utts':>4} {'motion RMS':>10}")
    for split in ("train", "val", "test"):
        path = args.prepared / f"{split}.jsonl"
        if not path.exists():
            continue
        values = defaultdict(list)
        for record in read_jsonl(path, required=("id", "speaker", "features")):
            if len(values[record["speaker"]]) < args.per_speaker:
                rms = utterance_rms(args.prepared / record["features"], spec)
                if rms is not None:
                    values[record["speaker"]].append(rms)
        for speaker, rms in sorted(values.items()):
            print(f"{split:6} {speaker:8} {len(rms):4d} {np.mean(rms):10.3f}")
        means = [np.mean(v) for v in values.values()]
        print(f"{split:6} {'all':8} {'':>4} median {np.median(means):.3f}, range {min(means):.3f}-{max(means):.3f}")


if __name__ == "__main__":
    main()
