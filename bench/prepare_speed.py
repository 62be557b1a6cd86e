"""Dataset-recipe throughput: clips per minute of `avsr prepare lrs3` with 1 and 2 workers and
landmarks on every frame or every 2nd, in one run (the first setting is the baseline).

    python -m bench.prepare_speed [--clips 40]

The clips are synthetic GRID sentences (224x224, ~2 s, `avsr synth`) laid out as an LRS3
``trainval/`` tree with label files; each setting prepares them into a fresh folder, end to end:
discovery, decoding, landmarks, crops, 16 kHz audio, .npz writing, manifests and statistics.
LRS3's own clips are 224x224 too, and ~3-4 s long on average in trainval.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from avsr.data.recipes import RecipeOptions, prepare_recipe
from avsr.data.recipes.lrs import discover_lrs3
from avsr.io.lip_roi import LipRoiOptions
from avsr.synth.corpus import SynthOptions, synthesize_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        records = synthesize_corpus(tmp / "synth", SynthOptions(num_utterances=args.clips, speakers=6,
                                                                test_speakers=1, workers=2), progress=False)
        seconds_of_video = 0.0
        for record in records["train"] + records["val"] + records["test"]:
            target = tmp / "lrs3" / "trainval" / record["speaker"] / f"{record['id'].split('_')[-1]}.mp4"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(tmp / "synth" / record["video"], target)
            target.with_suffix(".txt").write_text(f"Text:  {record['text'].upper()}\nConf:  4\n")
            seconds_of_video += record["duration_s"]
        discovery = discover_lrs3(tmp / "lrs3", ("trainval",), RecipeOptions())
        print(f"{len(discovery.sources)} clips, {seconds_of_video / len(discovery.sources):.2f} s each on average")
        print(f"{'setting':<34}{'seconds':>9}{'clips/min':>11}{'x baseline':>12}{'hours of video/h':>18}")
        baseline = None
        for workers, every in ((1, 1), (2, 1), (1, 2), (2, 2)):
            out = tmp / f"out_{workers}_{every}"
            started = time.perf_counter()
            stats, summary = prepare_recipe(discovery, out, LipRoiOptions(detect_every=every), workers, progress=False)
            seconds = time.perf_counter() - started
            assert all(s.status == "done" for s in summary), [s.error for s in summary if s.status != "done"][:1]
            rate = len(summary) / seconds * 60
            baseline = baseline or rate
            label = f"{workers} worker{'s' if workers > 1 else ''}, landmarks every {every}"
            print(f"{label:<34}{seconds:>9.1f}{rate:>11.0f}{rate / baseline:>12.2f}{seconds_of_video / seconds:>18.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
