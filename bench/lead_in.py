"""Does a model read a clip worse when its speech starts later? AV WER with a lead-in added.

    python bench/lead_in.py MODEL [MODEL ...] [--manifest data/synth_grid_prepared/test.jsonl]
        [--frames 0 1 2 3 4 5 8 12] [--at start|end] [--digital-zero] [--noise babble --snr-db 0]

Real recordings start and end at any distance from the speech; the synthetic clips start theirs
about 13 ms in. For each model (a bundle, or a Lightning checkpoint of this project) and each
length, every utterance of a prepared manifest is lengthened by that many 25 fps frames at its
start (or ``--at end``): the sound is the clip's own quietest stretch of that length (as
``avsr.io.writer.write_offset_copy`` pads an offset copy; ``--digital-zero``: zeros, as the
training pads are), and the first (last) crop is held over it. Printed: WER per length in each of
the model's modes (AV, and its audio and video heads).

The synthetic clips end 242-429 ms after their speech, so a quiet stretch longer than about 6
frames takes in the end of their last word: use ``--digital-zero`` for longer lead-ins there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jiwer
import numpy as np

from avsr.decoding.greedy import greedy_decode
from avsr.evaluation.sweep import NoiseSource, load_items, noisy_items, score
from avsr.io.writer import quietest_stretch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attention_probe import load_network  # noqa: E402  (a bundle or a checkpoint, as that probe loads them)


def with_lead_in(item: dict, frames: int, at: str = "start", digital_zero: bool = False) -> dict:
    """``item`` lengthened by ``frames`` frames of quiet sound and a held crop at its ``at`` end."""
    if frames == 0:
        return item
    quiet = quietest_stretch(item["audio"], frames) * (0.0 if digital_zero else 1.0)
    edge = slice(None, 1) if at == "start" else slice(-1, None)
    held = np.repeat(item["video"][edge], frames, 0), np.repeat(item["face_found"][edge], frames)
    parts = {"audio": (quiet.astype(item["audio"].dtype), item["audio"]), "video": (held[0], item["video"]),
             "face_found": (held[1], item["face_found"])}
    return item | {key: np.concatenate(pair if at == "start" else pair[::-1]) for key, pair in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--manifest", default="data/synth_grid_prepared/test.jsonl")
    parser.add_argument("--frames", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5, 8, 12])
    parser.add_argument("--at", choices=["start", "end"], default="start")
    parser.add_argument("--digital-zero", action="store_true", help="zeros for the added sound (as training pads)")
    parser.add_argument("--noise", help="white, babble or NAME=DIR, mixed in at --snr-db before the lead-in")
    parser.add_argument("--snr-db", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{args.manifest}, " + (f"{args.noise} {args.snr_db:g} dB" if args.noise else "clean") +
          f", lead-in at the {args.at}" + (" (digital zero)" if args.digital_zero else "") +
          "; WER % per lead-in length (frames)")
    print(f"{'model':<28}{'mode':<7}" + "".join(f"{n:>7}" for n in args.frames))
    for path in args.models:
        network = load_network(path).eval()
        items, speakers = load_items(args.manifest, network.preprocessing)
        if args.noise:
            source = NoiseSource(args.noise, [item["audio"] for item in items], speakers)
            items = noisy_items(items, source, args.snr_db, args.seed)[0]
        references = [item["text"] for item in items]
        label = path.rsplit("/", 1)[-1]
        for mode in [m for m in ("av", "audio", "video") if m in network.modes]:
            row = []
            for frames in args.frames:
                lengthened = [with_lead_in(item, frames, args.at, args.digital_zero) for item in items]
                row.append(100 * jiwer.wer(references, score(network, lengthened, mode, greedy_decode)[0]))
            print(f"{label:<28}{mode:<7}" + "".join(f"{x:>7.1f}" for x in row), flush=True)


if __name__ == "__main__":
    main()
