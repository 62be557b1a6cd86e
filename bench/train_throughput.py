"""Training throughput of a config: steps/s, utterances/s, how long the model waits for data, and
what one data-loading worker delivers; or, with ``--compare``, the step cost of each fusion or of
the video front end's input sizes, on random batches.

    python -m bench.train_throughput --config configs/synth_grid_tiny.yaml [--config more.yaml]
        [--steps 30] [--warmup 5] [--loader-batches 20] [-- --trainer.precision bf16-mixed ...]
    python -m bench.train_throughput --compare fusions [--preset tiny]
        [--fusions gate xattn xattn+align concat sum] [--steps 12] [--batch 16] [--frames 75]
    python -m bench.train_throughput --compare video-frontend [--batch 16] [--frames 75] [--repeats 5]

A config (the default): it is built as ``train.py fit`` builds it (arguments after ``--`` are passed
on) and trained for ``--warmup`` + ``--steps`` steps without validation or checkpoints. A callback
times each step from the moment the previous one ended: the share before the batch arrives is the
wait for the data loader, the rest is forward, backward and the optimiser. Then the loader alone
(one worker, the same augmentation) is timed over ``--loader-batches`` batches. On a GPU,
``nvidia-smi``'s utilisation is sampled during the timed steps.

``--compare fusions``: the training step cost of each fusion at a preset size, in one process. One
random batch (``--batch`` clips of ``--frames`` 25 Hz frames, 88x88 crops as the stage configs feed
them: pooled 3x3, downsampled 2x) goes through forward, CTC loss, backward and an AdamW step,
``--steps`` times per fusion after two warm-up steps; the fusions take turns step by step, so a busy
machine slows them alike. Printed: the median step time of each and its ratio to the first fusion.
``xattn+align`` is ``xattn`` with ``xattn_align`` (the gate reads the video moved by the attention).

``--compare video-frontend``: the cost of the video front end per training step, by input size and
spatial pooling. Times forward + backward + AdamW step of the ``tiny`` model's video encoder (3-D
stem, ResNet trunk, Conformer) on one batch of random crops (batch x frames, the size
``max_frames: 1200`` gives), median of ``--repeats`` after one warm-up; the first row is the baseline.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import threading
import time

import lightning as L
import torch

from avsr.models.av_model import AVSRModel, ModelConfig
from avsr.models.video_encoder import VideoEncoder
from avsr.train import AVSRCLI


class StepTimer(L.Callback):
    """Per training step: seconds waiting for the batch, seconds computing it, and its utterances."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.waits, self.computes, self.utterances = warmup, [], [], []
        self._ended = self._started = None

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self._started = time.perf_counter()
        if self._ended is not None and trainer.global_step >= self.warmup:
            self.waits.append(self._started - self._ended)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self._ended = time.perf_counter()
        if trainer.global_step > self.warmup:
            self.computes.append(self._ended - self._started)
            self.utterances.append(len(batch.audio_lengths))


def gpu_utilisation(stop: threading.Event, samples: list[float]) -> None:
    while not stop.wait(0.5):
        result = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                capture_output=True, text=True)
        if result.returncode == 0 and result.stdout.strip():
            samples.append(float(result.stdout.split()[0]))


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compare", choices=["fusions", "video-frontend"], default=None,
                        help="instead of a config: the step cost of each fusion, or of the video front end's settings")
    parser.add_argument("--config", action="append", help="the config to train (without --compare)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 30; 12 with --compare fusions)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--loader-batches", type=int, default=20)
    parser.add_argument("--preset", default="tiny", help="with --compare fusions: the model size")
    parser.add_argument("--fusions", nargs="+", default=["gate", "xattn", "xattn+align", "concat", "sum"],
                        help="with --compare fusions: the fusions, the first the baseline")
    parser.add_argument("--batch", type=int, default=16, help="with --compare: clips per random batch")
    parser.add_argument("--frames", type=int, default=75, help="with --compare: 25 Hz frames per clip")
    parser.add_argument("--repeats", type=int, default=5, help="with --compare video-frontend: timed steps")
    parser.add_argument("rest", nargs="*", help="more train.py arguments, after --")
    args = parser.parse_args()
    if args.compare is None and not args.config:
        parser.error("--config is required (or --compare fusions|video-frontend)")
    if args.compare is not None and (args.config or args.rest):
        parser.error("--compare runs on random batches: no --config and no train.py arguments")
    if args.steps is None:
        args.steps = 12 if args.compare == "fusions" else 30
    return args


def fit_timed(args: argparse.Namespace, timer: StepTimer, scratch: str) -> tuple[AVSRCLI, float, list[float]]:
    """The config trained for ``--warmup`` + ``--steps`` steps: its CLI, the fit's wall seconds and
    the GPU utilisation samples."""
    argv = [a for config in args.config for a in ("--config", config)] + [
        "--trainer.max_steps", str(args.warmup + args.steps), "--trainer.max_time", "null",
        "--trainer.max_epochs", "-1", "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
        "--trainer.logger", "false", "--trainer.enable_checkpointing", "false", "--trainer.callbacks", "null",
        "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", scratch, *args.rest]
    cli = AVSRCLI(argv, run=False)
    cli.trainer.callbacks.append(timer)
    stop, samples = threading.Event(), []
    if torch.cuda.is_available() and shutil.which("nvidia-smi"):
        threading.Thread(target=gpu_utilisation, args=(stop, samples), daemon=True).start()
    started = time.perf_counter()
    cli.trainer.fit(cli.model, cli.datamodule)
    wall = time.perf_counter() - started
    stop.set()
    return cli, wall, samples


def loader_speed(datamodule, batches_to_time: int) -> tuple[float, int]:
    """Seconds one loader worker takes for ``batches_to_time`` training batches (after its start-up),
    and their utterances."""
    loader = datamodule._loader(datamodule.train_set, shuffle=True)
    loader = torch.utils.data.DataLoader(loader.dataset, batch_sampler=loader.batch_sampler,
                                         collate_fn=loader.collate_fn, num_workers=1)
    batches = iter(loader)
    next(batches)  # the worker's start-up
    utterances = 0
    begun = time.perf_counter()
    for _, batch in zip(range(batches_to_time), batches):
        utterances += len(batch.audio_lengths)
    return time.perf_counter() - begun, utterances


def config_throughput(args: argparse.Namespace) -> None:
    timer = StepTimer(args.warmup)
    with tempfile.TemporaryDirectory() as scratch:
        cli, wall, samples = fit_timed(args, timer, scratch)
        datamodule = cli.datamodule
        loader_times, utterances = loader_speed(datamodule, args.loader_batches)
    steps = len(timer.computes)
    step_s = [w + c for w, c in zip(timer.waits, timer.computes)]
    total = sum(step_s)
    print(f"config {' + '.join(args.config)} {' '.join(args.rest)}".rstrip())
    print(f"device {cli.trainer.strategy.root_device}, precision {cli.trainer.precision}, "
          f"{torch.get_num_threads()} threads, data workers {datamodule.hparams.num_workers}")
    print(f"steps timed            {steps} (after {args.warmup} warm-up; fit wall {wall:.1f} s)")
    print(f"steps/s                {steps / total:.3f}   (median step {statistics.median(step_s):.3f} s)")
    print(f"utterances/s           {sum(timer.utterances) / total:.2f}")
    print(f"waiting for data       {100 * sum(timer.waits) / total:.1f} % of step time")
    print(f"one loader worker      {args.loader_batches / loader_times:.2f} batches/s, {utterances / loader_times:.1f} "
          "utterances/s")
    if samples:
        print(f"GPU utilisation        median {statistics.median(samples):.0f} % ({len(samples)} samples)")


def random_batch(batch: int, frames: int, seed: int = 0):
    """A training batch of noise: audio, its lengths, 88x88 crops, their lengths, face flags, targets."""
    generator = torch.Generator().manual_seed(seed)
    audio = 0.1 * torch.randn(batch, frames * 640, generator=generator)
    video = torch.randn(batch, frames, 88, 88, generator=generator)
    lengths = torch.full((batch,), frames)
    targets = torch.randint(1, 29, (batch, frames // 4), generator=generator)
    return audio, lengths * 640, video, lengths, torch.ones(batch, frames, dtype=torch.bool), targets


def fusion_step(model: AVSRModel, optimiser: torch.optim.Optimizer, batch) -> float:
    """Seconds of one forward, CTC loss, backward and optimiser step."""
    audio, audio_lengths, video, video_lengths, face, targets = batch
    started = time.perf_counter()
    out = model(audio, audio_lengths, video, video_lengths, face)
    loss = torch.nn.functional.ctc_loss(out.log_probs.transpose(0, 1), targets, out.lengths,
                                        torch.full((len(targets),), targets.shape[1]))
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    return time.perf_counter() - started


def compare_fusions(args: argparse.Namespace) -> None:
    batch = random_batch(args.batch, args.frames)
    runs = {}
    for fusion in args.fusions:
        torch.manual_seed(0)
        name, _, option = fusion.partition("+")
        model = AVSRModel(ModelConfig(preset=args.preset, fusion=name, xattn_align=option == "align", video_pool=3,
                                      video_downsample=2)).train()
        runs[fusion] = (model, torch.optim.AdamW(model.parameters(), 1e-3), [])
    for _ in range(2):  # warm-up
        for model, optimiser, _ in runs.values():
            fusion_step(model, optimiser, batch)
    for _ in range(args.steps):
        for model, optimiser, times in runs.values():
            times.append(fusion_step(model, optimiser, batch))
    print(f"{args.preset}, batch {args.batch} x {args.frames} frames, {torch.get_num_threads()} threads, "
          f"median of {args.steps} steps")
    first = statistics.median(runs[args.fusions[0]][2])
    for fusion, (model, _, times) in runs.items():
        parameters = sum(p.numel() for p in model.fusion.parameters())
        median = statistics.median(times)
        print(f"{fusion:11s} {median:7.3f} s/step  {median / first:5.2f}x {args.fusions[0]}  "
              f"(fusion parameters {parameters:,})")


def video_step_seconds(encoder: VideoEncoder, video: torch.Tensor, lengths: torch.Tensor, repeats: int) -> float:
    """Median seconds of the encoder's forward, backward and AdamW step over ``repeats`` after one warm-up."""
    optimizer = torch.optim.AdamW(encoder.parameters())
    times = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        encoder(video, lengths).float().pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def compare_video_frontend(args: argparse.Namespace) -> None:
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
        seconds = video_step_seconds(encoder, video, lengths, args.repeats)
        baseline = baseline or seconds
        params = sum(p.numel() for p in encoder.parameters())
        print(f"{name:<44}{seconds:>8.2f}{baseline / seconds:>12.2f}{params:>12,}")


def main() -> None:
    args = arguments()
    {None: config_throughput, "fusions": compare_fusions, "video-frontend": compare_video_frontend}[args.compare](args)


if __name__ == "__main__":
    main()
