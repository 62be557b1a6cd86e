"""How far each speaker's lips move in the network's input, per split of a prepared corpus; and,
with ``--model``, what a gain on that motion does to a lip reader's WER per speaker.

    python bench/motion_amplitude.py data/synth_grid_prepared [--per-speaker 15]
    python bench/motion_amplitude.py data/synth_grid_prepared --model video.pt --gains 1 1.5 2 2.5 [--rms]

For each speaker, the RMS of the network's input under ``video_norm: utterance`` (the centre crop,
globally standardised, each utterance's mean image subtracted: ``Preprocessing.normalise_video``),
averaged over up to ``--per-speaker`` utterances. A test face far below the training speakers' range
(a narrow mouth, a small face in the frame) is one the lip reader has never seen move that little:
``video_norm: utterance_rms`` scales every utterance to ``motion_rms`` (0.26, the median of the
synthetic corpus's training speakers printed here).

``--model``: the control. The model's video mode on the test split with its input multiplied by each
gain (``pixel_std / gain``; after mean subtraction this scales the motion), WER overall and per
speaker; ``--rms [MOTION_RMS ...]`` adds rows with ``video_norm: utterance_rms`` (default 0.26).
The gain rows read the crops with ``video_norm: utterance`` whatever the model was trained with:
a ``utterance_rms`` model's own normalisation would scale the motion back and undo any gain.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections import defaultdict
from pathlib import Path

import jiwer
import numpy as np
import torch

from avsr.data.manifest import read_jsonl
from avsr.preprocessing import Preprocessing


def utterance_rms(features: Path, spec: Preprocessing) -> float | None:
    with np.load(features) as data:
        crops, found = data["roi"], data["face_found"].astype(bool)
    if found.sum() < 2:
        return None
    rows, columns = spec.crop_box()
    video = torch.from_numpy(np.ascontiguousarray(crops[found][None, :, rows, columns]))
    x = spec.normalise_video(video, torch.ones(video.shape[:2], dtype=torch.bool), torch.tensor([video.shape[1]]))
    return float(x.square().mean().sqrt())


def speaker_motion(prepared: Path, per_speaker: int) -> None:
    spec = Preprocessing(video_norm="utterance")
    print(f"{'split':6} {'speaker':8} {'utts':>4} {'motion RMS':>10}")
    for split in ("train", "val", "test"):
        path = prepared / f"{split}.jsonl"
        if not path.exists():
            continue
        values = defaultdict(list)
        for record in read_jsonl(path, required=("id", "speaker", "features")):
            if len(values[record["speaker"]]) < per_speaker:
                rms = utterance_rms(prepared / record["features"], spec)
                if rms is not None:
                    values[record["speaker"]].append(rms)
        for speaker, rms in sorted(values.items()):
            print(f"{split:6} {speaker:8} {len(rms):4d} {np.mean(rms):10.3f}")
        means = [np.mean(v) for v in values.values()]
        print(f"{split:6} {'all':8} {'':>4} median {np.median(means):.3f}, range {min(means):.3f}-{max(means):.3f}")


def gain_control(prepared: Path, model_path: str, gains: list[float], motion_rms: list[float]) -> None:
    from avsr.evaluation.sweep import load_items, score
    from avsr.models.bundle import load_model
    from avsr.decoding.greedy import greedy_decode

    model = load_model(model_path)
    network, base = model.network, model.network.preprocessing
    manifest = prepared / "test.jsonl"
    speakers = [r["speaker"] for r in read_jsonl(manifest, required=("id", "speaker"))]
    items = load_items(str(manifest), base)[0]
    settings = [(f"gain {g:g}", dataclasses.replace(base, video_norm="utterance", pixel_std=base.pixel_std / g))
                for g in gains]
    settings += [(f"utterance_rms {rms:g}", dataclasses.replace(base, video_norm="utterance_rms", motion_rms=rms))
                 for rms in motion_rms]
    for label, spec in settings:
        network.preprocessing = spec
        hypotheses = score(network, items, "video", lambda lp, n: greedy_decode(lp, n, model.tokenizer))[0]
        counts = defaultdict(lambda: [0, 0])
        for item, speaker, hypothesis in zip(items, speakers, hypotheses):
            out = jiwer.process_words(item["text"], hypothesis)
            for key in ("all", speaker):
                counts[key][0] += out.substitutions + out.deletions + out.insertions
                counts[key][1] += len(item["text"].split())
        print(f"{label:22}", "  ".join(f"{k} {100 * e / n:.1f}" for k, (e, n) in sorted(counts.items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prepared", type=Path, help="folder of train/val/test.jsonl from avsr prepare manifest")
    parser.add_argument("--per-speaker", type=int, default=15)
    parser.add_argument("--model", help="a video-capable bundle: run the gain control on the test split")
    parser.add_argument("--gains", type=float, nargs="+", default=[1.0, 1.5, 2.0, 2.5])
    parser.add_argument("--rms", type=float, nargs="*", metavar="MOTION_RMS",
                        help="with --model: also utterance_rms at test time, at these motion_rms (none given: 0.26)")
    args = parser.parse_args()
    if args.model:
        torch.set_num_threads(2)
        rms = [] if args.rms is None else (args.rms or [Preprocessing.motion_rms])
        gain_control(args.prepared, args.model, args.gains, rms)
    else:
        speaker_motion(args.prepared, args.per_speaker)


if __name__ == "__main__":
    main()
