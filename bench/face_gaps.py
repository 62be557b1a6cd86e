"""When the face is lost for a moment: AV WER with short gaps in the face track, per model.

    python bench/face_gaps.py MODEL [MODEL ...] [--manifest data/synth_grid_prepared/test.jsonl]
        [--clips 80] [--gap 5] [--noise babble --snr-db 0]

A landmarker loses a face for a few frames at a time (a hand, a turn, motion blur), and a video
shifted against its audio has frames at one end that show nothing. The model is told
(``face_found`` false; the video's weight is 0 there by construction), so with clean audio it
should read those frames at least as well as its audio head does. For each model (a bundle, or a
Lightning checkpoint of this project), the first ``--clips`` utterances of a prepared manifest are
read with the face removed (black frames, ``face_found`` false) in these patterns:

- ``none``: as prepared;
- ``start``, ``middle``, ``end``: one gap of ``--gap`` frames at the clip's start, middle or end;
- ``every 25``: a gap of ``--gap`` frames in every second (25 frames) of the clip;
- ``all``: no face at all (the model's audio alone, through the fusion).

Printed: AV WER per pattern, and the model's audio-mode WER (its audio head) as the reference a
lost face should not fall below. ``--noise``/``--snr-db`` mixes noise in first, as ``avsr
evaluate`` does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jiwer
import numpy as np

from avsr.decoding.greedy import greedy_decode
from avsr.evaluation.sweep import NoiseSource, load_items, noisy_items, score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attention_probe import load_network  # noqa: E402  (a bundle or a checkpoint, as that probe loads them)


def without_face(item: dict, frames: np.ndarray) -> dict:
    """``item`` with the face removed at ``frames`` (a boolean mask over its frames)."""
    video, found = item["video"].copy(), item["face_found"].copy()
    video[frames], found[frames] = 0, False
    return item | {"video": video, "face_found": found}


def gap_patterns(frames: int, gap: int) -> dict[str, np.ndarray]:
    """Boolean masks ``(frames,)`` of the frames without a face, per pattern."""
    index = np.arange(frames)
    middle = (frames - gap) // 2
    return {"none": np.zeros(frames, bool), "start": index < gap, "middle": (index >= middle) & (index < middle + gap),
            "end": index >= frames - gap, "every 25": index % 25 >= 25 - gap, "all": np.ones(frames, bool)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--manifest", default="data/synth_grid_prepared/test.jsonl")
    parser.add_argument("--clips", type=int, default=80)
    parser.add_argument("--gap", type=int, default=5, help="frames of each gap (default 5 = 200 ms)")
    parser.add_argument("--noise", help="white, babble or NAME=DIR, mixed in at --snr-db")
    parser.add_argument("--snr-db", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    names = list(gap_patterns(50, args.gap))
    print(f"{args.clips} utterances of {args.manifest}, " +
          (f"{args.noise} {args.snr_db:g} dB" if args.noise else "clean") + f", gaps of {args.gap} frames; AV WER %")
    print(f"{'model':<28}" + "".join(f"{name:>10}" for name in names) + f"{'audio':>10}")
    for path in args.models:
        network = load_network(path)
        items, speakers = load_items(args.manifest, network.preprocessing)
        if args.noise:  # babble from the whole test set, as the sweep draws it
            source = NoiseSource(args.noise, [item["audio"] for item in items], speakers)
            items = noisy_items(items, source, args.snr_db, args.seed)[0]
        items = items[: args.clips]
        references = [item["text"] for item in items]
        row = []
        for name in names:
            gapped = [without_face(item, gap_patterns(len(item["video"]), args.gap)[name]) for item in items]
            row.append(100 * jiwer.wer(references, score(network, gapped, "av", greedy_decode)[0]))
        audio = 100 * jiwer.wer(references, score(network, items, "audio", greedy_decode)[0])
        label = path.rsplit("/", 1)[-1]
        print(f"{label:<28}" + "".join(f"{wer:>10.1f}" for wer in row) + f"{audio:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
