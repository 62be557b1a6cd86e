"""Synthetic corpus throughput: utterances per second with 1 and 2 workers, in one run.

    python -m bench.synth_speed [--utterances 100]

Each run makes a fresh GRID corpus (6 speakers, the bundled faces, seed 0) in a temporary
folder, end to end: face set-up, espeak-ng, visemes, rendering, H.264/AAC encoding, manifests.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from avsr.synth.corpus import SynthOptions, synthesize_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utterances", type=int, default=100)
    args = parser.parse_args()
    print(f"{'workers':>8}{'utterances':>12}{'seconds':>10}{'utt/s':>8}{'audio min/min':>15}{'2,000 utts (min)':>18}")
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            options = SynthOptions(num_utterances=args.utterances, speakers=6, test_speakers=1, workers=workers)
            started = time.perf_counter()
            splits = synthesize_corpus(Path(tmp), options, progress=False)
            seconds = time.perf_counter() - started
        audio_s = sum(r["duration_s"] for rows in splits.values() for r in rows)
        rate = args.utterances / seconds
        print(f"{workers:>8}{args.utterances:>12}{seconds:>10.1f}{rate:>8.1f}{audio_s / seconds:>15.1f}"
              f"{2000 / rate / 60:>18.1f}", flush=True)


if __name__ == "__main__":
    main()
