"""Is model A really better than model B? Relative WER gain with a paired bootstrap interval.

    python bench/paired_wer.py A B [--manifest data/synth_grid_prepared/test.jsonl] [--mode av]
        [--b-mode video] [--b-manifest OTHER.jsonl] [--noise babble] [--snr-db clean 0 -5 -10] [--seed 0]

``avsr evaluate`` gives each model's WER with its own 95 % interval. Two models scored on the same
utterances are not independent, so whether A's lead over B is more than chance is read from a
*paired* bootstrap: each round resamples utterances and scores both models on the same draw
(:func:`avsr.evaluation.sweep.paired_gain`). For each condition (noise mixed as ``avsr evaluate``
mixes it, same seed) this prints both WERs, the gain ``1 - WER_A / WER_B`` (0.20 = A is 20 % better)
with its interval, and each model's video-mode WER (its video head, the same in every condition):
where A's fusion leans on the lips, A's AV WER cannot go far below its video head, which bounds
the gain A can show.

A and B are bundles (``avsr export``) or Lightning checkpoints of this project; they may be the same
model read in two modes (``--b-mode``), e.g. ``A A --b-mode video``: is the fusion below its own
video head? Or one model read on two preparations of the same utterances (``--b-manifest``), e.g. the
test set's crops cut at two landmarker strides: ``A A --b-manifest stride6/test.jsonl``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from avsr.decoding.greedy import greedy_decode
from avsr.evaluation.sweep import NoiseSource, load_items, noisy_items, paired_gain, score, utterance_errors

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attention_probe import load_network  # noqa: E402  (a bundle or a checkpoint, as that probe loads them)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--manifest", default="data/synth_grid_prepared/test.jsonl")
    parser.add_argument("--mode", default="av", choices=["av", "audio", "video"])
    parser.add_argument("--b-mode", choices=["av", "audio", "video"], help="B's mode (default: --mode)")
    parser.add_argument("--b-manifest", help="B's prepared manifest: the same utterances prepared otherwise "
                        "(default: --manifest)")
    parser.add_argument("--noise", default="babble", help="white, babble or NAME=DIR")
    parser.add_argument("--snr-db", nargs="+", default=["clean", "0", "-5", "-10"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    modes = (args.mode, args.b_mode or args.mode)

    networks = [load_network(path).eval() for path in (args.a, args.b)]
    if networks[0].preprocessing != networks[1].preprocessing:
        raise SystemExit(f"{args.a} and {args.b} read crops prepared differently; compare models of one preparation")
    items, speakers = load_items(args.manifest, networks[0].preprocessing)
    b_items = items
    if args.b_manifest:
        b_items = load_items(args.b_manifest, networks[1].preprocessing)[0]
        if [item["id"] for item in b_items] != [item["id"] for item in items]:
            raise SystemExit(f"{args.b_manifest} does not hold {args.manifest}'s utterances in its order; "
                             "prepare the same source manifest")
    references = [item["text"] for item in items]
    words = np.array([len(text.split()) for text in references])
    source = NoiseSource(args.noise, [item["audio"] for item in items], speakers)
    names = [Path(path).name for path in (args.a, args.b)]
    video = []
    for network, its in zip(networks, (items, b_items)):
        hypotheses = score(network, its, "video", greedy_decode)[0] if "video" in network.modes else None
        video.append(f"{100 * utterance_errors(references, hypotheses).sum() / words.sum():.1f}"
                     if hypotheses is not None else "-")
    print(f"A = {names[0]}, B = {names[1]}; {len(items)} utterances of {args.manifest}"
          f"{' / ' + args.b_manifest if args.b_manifest else ''}, mode {modes[0]}"
          f"{' / ' + modes[1] if modes[1] != modes[0] else ''}, "
          f"greedy; video heads: A {video[0]} %, B {video[1]} %")
    print(f"{'condition':<16}{'A WER %':>9}{'B WER %':>9}{'gain %':>9}{'95 % CI':>16}")
    for snr in args.snr_db:
        level = None if snr == "clean" else float(snr)
        noisy = [noisy_items(its, source, level, args.seed)[0] for its in (items, b_items)]
        errors = [utterance_errors(references, score(network, its, mode, greedy_decode)[0])
                  for network, its, mode in zip(networks, noisy, modes)]
        gain, low, high = paired_gain(errors[0], errors[1], args.seed)
        label = "clean" if level is None else f"{args.noise} {level:g} dB"
        print(f"{label:<16}{100 * errors[0].sum() / words.sum():>9.1f}{100 * errors[1].sum() / words.sum():>9.1f}"
              f"{100 * gain:>9.1f}{f'{100 * low:.1f} … {100 * high:.1f}':>16}", flush=True)


if __name__ == "__main__":
    main()
