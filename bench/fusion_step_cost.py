"""The training step cost of each fusion at a preset size, in one process.

    python -m bench.fusion_step_cost [--preset tiny] [--fusions gate xattn xattn+align concat sum] [--steps 12]
        [--batch 16] [--frames 75]

One random batch (``--batch`` clips of ``--frames`` 25 Hz frames, 88x88 crops as the stage configs
feed them: pooled 3x3, downsampled 2x) goes through forward, CTC loss, backward and an AdamW step,
``--steps`` times per fusion after two warm-up steps; the fusions take turns step by step, so a busy
machine slows them alike. Printed: the median step time of each and its ratio to the first fusion.
``xattn+align`` is ``xattn`` with ``xattn_align`` (the gate reads the video moved by the attention).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from avsr.models.av_model import AVSRModel, ModelConfig


def make_batch(batch: int, frames: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    audio = 0.1 * torch.randn(batch, frames * 640, generator=generator)
    video = torch.randn(batch, frames, 88, 88, generator=generator)
    lengths = torch.full((batch,), frames)
    targets = torch.randint(1, 29, (batch, frames // 4), generator=generator)
    return audio, lengths * 640, video, lengths, torch.ones(batch, frames, dtype=torch.bool), targets


def step(model: AVSRModel, optimiser: torch.optim.Optimizer, batch) -> float:
    audio, audio_lengths, video, video_lengths, face, targets = batch
    started = time.perf_counter()
    out = model(audio, audio_lengths, video, video_lengths, face)
    loss = torch.nn.functional.ctc_loss(out.log_probs.transpose(0, 1), targets, out.lengths,
                                        torch.full((len(targets),), targets.shape[1]))
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--fusions", nargs="+", default=["gate", "xattn", "xattn+align", "concat", "sum"])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=75)
    args = parser.parse_args()
    batch = make_batch(args.batch, args.frames)
    runs = {}
    for fusion in args.fusions:
        torch.manual_seed(0)
        name, _, option = fusion.partition("+")
        model = AVSRModel(ModelConfig(preset=args.preset, fusion=name, xattn_align=option == "align", video_pool=3,
                                      video_downsample=2)).train()
        runs[fusion] = (model, torch.optim.AdamW(model.parameters(), 1e-3), [])
    for _ in range(2):  # warm-up
        for model, optimiser, _ in runs.values():
            step(model, optimiser, batch)
    for _ in range(args.steps):
        for model, optimiser, times in runs.values():
            times.append(step(model, optimiser, batch))
    print(f"{args.preset}, batch {args.batch} x {args.frames} frames, {torch.get_num_threads()} threads, "
          f"median of {args.steps} steps")
    first = statistics.median(runs[args.fusions[0]][2])
    for fusion, (model, _, times) in runs.items():
        parameters = sum(p.numel() for p in model.fusion.parameters())
        median = statistics.median(times)
        print(f"{fusion:11s} {median:7.3f} s/step  {median / first:5.2f}x {args.fusions[0]}  "
              f"(fusion parameters {parameters:,})")


if __name__ == "__main__":
    main()
