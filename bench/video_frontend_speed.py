"""Cost of the video front end per training step, by input size and spatial pooling, in one run.

    python -m bench.video_frontend_speed [--batch 16] [--frames 75] [--repeats 5]

Times forward + backward + AdamW step of the `tiny` model's video encoder (3-D stem, ResNet trunk,
Conformer) on one batch of random crops (batch x frames, the size `max_frames: 1200` gives), median
of the repeats after one warm-up; the first row is the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from avsr.models.av_model import ModelConfig
from avsr.models.video_encoder import VideoEncoder


def step_seconds(encoder: VideoEncoder, video: torch.Tensor, lengths: torch.Tensor, repeats: int) -> float:
    optimizer = torch.optim.AdamW(encoder.parameters())
    times = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        encoder(video, lengths).float().pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=75)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    c = ModelConfig()
    video = torch.randn(args.batch, args.frames, 88, 88)
    lengths = torch.full((args.batch,), args.frames)
    settings = [("88x88 input, global pool (before)", 1, 1), ("88x88 input, 3x3 grid", 1, 3),
                ("44x44 input, global pool", 2, 1), ("44x44 input, 3x3 grid (stages/video.yaml)", 2, 3)]
    print(f"video encoder, batch {args.batch} x {args.frames} frames, {torch.get_num_threads()} threads, "
          f"median of {args.repeats}")
    print(f"{'setting':<44}{'s/step':>8}{'speed-up':>12}{'parameters':>12}")
    baseline = None
    for name, downsample, pool in settings:
        encoder = VideoEncoder(c.dim, c.video_channels, c.video_layers, c.num_heads, c.ffn_dim, c.kernel_size,
                               c.dropout, pool=pool, downsample=downsample)
        seconds = step_seconds(encoder, video, lengths, args.repeats)
        baseline = baseline or seconds
        params = sum(p.numel() for p in encoder.parameters())
        print(f"{name:<44}{seconds:>8.2f}{baseline / seconds:>12.2f}{params:>12,}")


if __name__ == "__main__":
    main()
