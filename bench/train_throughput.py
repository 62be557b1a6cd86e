"""Training throughput of a config: steps/s, utterances/s, how long the model waits for data, and
what one data-loading worker delivers.

    python -m bench.train_throughput --config configs/synth_grid_tiny.yaml [--config more.yaml]
        [--steps 30] [--warmup 5] [--loader-batches 20] [-- --trainer.precision bf16-mixed ...]

The config is built as ``train.py fit`` builds it (arguments after ``--`` are passed on) and trained
for ``--warmup`` + ``--steps`` steps without validation or checkpoints. A callback times each step
from the moment the previous one ended: the share before the batch arrives is the wait for the
data loader, the rest is forward, backward and the optimiser. Then the loader alone (one worker,
the same augmentation) is timed over ``--loader-batches`` batches. On a GPU, ``nvidia-smi``'s
utilisation is sampled during the timed steps.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", action="append", required=True)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--loader-batches", type=int, default=20)
    parser.add_argument("rest", nargs="*", help="more train.py arguments, after --")
    args = parser.parse_args()
    timer = StepTimer(args.warmup)
    with tempfile.TemporaryDirectory() as scratch:
        argv = [a for config in args.config for a in ("--config", config)] + [
            "--trainer.max_steps", str(args.warmup + args.steps), "--trainer.max_time", "null",
            "--trainer.max_epochs", "-1", "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
            "--trainer.logger", "false", "--trainer.enable_checkpointing", "false", "--trainer.callbacks", "null",
            "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", scratch, *args.rest]
        cli = AVSRCLI(argv, run=False)
        cli.trainer.callbacks.append(timer)
        stop, samples = threading.Event(), []
        watcher = None
        if torch.cuda.is_available() and shutil.which("nvidia-smi"):
            watcher = threading.Thread(target=gpu_utilisation, args=(stop, samples), daemon=True)
            watcher.start()
        started = time.perf_counter()
        cli.trainer.fit(cli.model, cli.datamodule)
        wall = time.perf_counter() - started
        stop.set()
        datamodule = cli.datamodule
        loader = datamodule._loader(datamodule.train_set, shuffle=True)
        loader = torch.utils.data.DataLoader(loader.dataset, batch_sampler=loader.batch_sampler,
                                             collate_fn=loader.collate_fn, num_workers=1)
        batches = iter(loader)
        next(batches)  # the worker's start-up
        utterances = 0
        begun = time.perf_counter()
        for _, batch in zip(range(args.loader_batches), batches):
            utterances += len(batch.audio_lengths)
        loader_times = time.perf_counter() - begun
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


if __name__ == "__main__":
    main()
