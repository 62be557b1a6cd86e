"""What each kind of identity variety in ``avsr synth`` does to how well unseen faces can be read.

    python bench/face_variety.py runs/face_variety [--utterances 700] [--kinds none skin ... all]

For each setting (no variety, each kind of ``avsr synth --face-variety`` alone, all of them) the
script makes the same corpus (seed, speakers, sentences, voices; only the training speakers' looks
differ: validation and test speakers show their photos as they are), prepares its lip crops, and
runs the visual-information probe (``bench/visual_probe.py``): a ridge read-out of the mouth shape,
fitted on the training faces and scored on the unseen test faces. More variety among training faces
should make a read-out that carries over to new faces; the probe says whether it does, in minutes.

The validation and test clips are identical in every setting, so they are made and prepared once
and linked into the other settings' folders.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from visual_probe import TARGETS, probe  # noqa: E402

from avsr.data.prepare import prepare_manifest  # noqa: E402
from avsr.io.lip_roi import LipRoiOptions  # noqa: E402
from avsr.synth import VARIETY_KINDS  # noqa: E402
from avsr.synth.corpus import SynthOptions, synthesize_corpus  # noqa: E402

HELD_OUT = ("val", "test")


def run_setting(root: Path, name: str, kinds: tuple[str, ...], args: argparse.Namespace, first: Path | None) -> dict:
    """Make, prepare and probe one setting's corpus in ``root/name``; reuse held-out clips of ``first``."""
    corpus, prepared = root / name / "corpus", root / name / "prepared"
    if first is not None:  # the held-out speakers' clips do not depend on the setting: link them
        for split in HELD_OUT:
            source = first / "corpus" / split
            if source.is_dir() and not (corpus / split).exists():
                shutil.copytree(source, corpus / split, copy_function=os.link)
    options = SynthOptions(num_utterances=args.utterances, speakers=args.speakers, test_speakers=2, val_speakers=1,
                           seed=args.seed, face_variety=kinds, workers=args.workers)
    started = time.perf_counter()
    synthesize_corpus(corpus, options, progress=False)
    synth_s = time.perf_counter() - started
    roi = LipRoiOptions(detect_every=2)
    for split in ("train", *HELD_OUT):
        prepare_manifest(corpus / f"{split}.jsonl", prepared, roi, workers=args.workers, progress=False)
    prepare_s = time.perf_counter() - started - synth_s
    result = probe(corpus, prepared, args.train_utterances)
    result.update(synth_s=synth_s, prepare_s=prepare_s)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", help="working folder (corpora and crops of every setting; reused when rerun)")
    parser.add_argument("--utterances", type=int, default=700)
    parser.add_argument("--speakers", type=int, default=26)
    parser.add_argument("--train-utterances", type=int, default=600, help="training utterances the probe fits on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kinds", nargs="+", default=["none", *VARIETY_KINDS, "all"],
                        choices=["none", *VARIETY_KINDS, "all"], help="settings to run (default: every one)")
    args = parser.parse_args()
    root = Path(args.out_dir)
    print(f"{args.utterances} utterances, {args.speakers} speakers (2 test, 1 val), seed {args.seed}; "
          f"probe fitted on {args.train_utterances} training utterances, scored on the test faces")
    header = f"{'training faces get':<14} {'R² open':>8} {'R² spread':>10}"
    rows, first = [], None
    for name in args.kinds:
        kinds = () if name == "none" else VARIETY_KINDS if name == "all" else (name,)
        result = run_setting(root, name, kinds, args, first)
        first = first or root / name
        speakers = result["per_speaker"]
        if not rows:
            header += "".join(f" {s + ' ' + t.split('_')[1]:>12}" for s in speakers for t in TARGETS) + "   minutes"
            print(header)
        row = (f"{name:<14} {result['r2']['mouth_open']:>8.3f} {result['r2']['mouth_spread']:>10.3f}"
               + "".join(f" {speakers[s][t]:>12.3f}" for s in speakers for t in TARGETS)
               + f"   {(result['synth_s'] + result['prepare_s']) / 60:7.1f}")
        rows.append(row)
        print(row, flush=True)


if __name__ == "__main__":
    main()
