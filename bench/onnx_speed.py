"""Model forward on the CPU: PyTorch against ONNX Runtime on the same model, in one process.

    python -m bench.onnx_speed [--model synth-grid-tiny] [--onnx model.onnx] [--shapes 1x75 4x750]
        [--runs 10] [--threads N]

The model (a bundle, or the embedded one) is exported with ``avsr.models.onnx.export_onnx`` into a
temporary folder unless ``--onnx`` names its export. For each mode and each input shape
(``BATCHxFRAMES``: 1x75 is one 3 s clip; 4x750 is what ``avsr transcribe`` feeds by default, four
30 s windows), one random input goes through both backends ``--runs`` times after a warm-up run, the
two taking turns so that a busy machine slows them alike. Printed: median milliseconds of each, the
speed-up (PyTorch / ONNX Runtime), and the largest log-prob difference on that input.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from avsr.models.loader import load_model
from avsr.models.onnx import OnnxNetwork, export_onnx


def make_input(batch: int, frames: int, crop: int, step: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.full((batch,), frames)
    return (0.1 * torch.randn(batch, frames * step, generator=generator), lengths * step,
            torch.randn(batch, frames, crop, crop, generator=generator), lengths,
            torch.ones(batch, frames, dtype=torch.bool))


def timed(run) -> tuple[float, object]:
    started = time.perf_counter()
    out = run()
    return time.perf_counter() - started, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="synth-grid-tiny")
    parser.add_argument("--onnx", default=None, help="its export (default: export it now, into a temporary folder)")
    parser.add_argument("--shapes", nargs="+", default=["1x75", "4x750"], metavar="BxT")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="both backends (default: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_model(args.model)
    model, spec = loaded.network, loaded.network.preprocessing
    with tempfile.TemporaryDirectory() as folder:
        path = args.onnx
        if path is None:
            started = time.perf_counter()
            path = export_onnx(model, Path(folder) / "model.onnx", loaded.tokenizer)[model.modes[0]]
            print(f"export: {time.perf_counter() - started:.1f} s for {len(model.modes)} graph(s)")
        network = OnnxNetwork(path, threads=torch.get_num_threads())
        print(f"model {loaded.id}, {torch.get_num_threads()} threads, median of {args.runs} runs")
        print(f"{'mode':6s} {'input':>8s} {'torch ms':>10s} {'onnx ms':>10s} {'speed-up':>9s} {'max |dlogp|':>12s}")
        for mode in model.modes:
            for shape in args.shapes:
                batch, frames = (int(x) for x in shape.split("x"))
                inputs = make_input(batch, frames, spec.crop_size, spec.samples_per_frame)
                times = {"torch": [], "onnx": []}
                with torch.inference_mode():
                    for run in range(args.runs + 1):
                        t_torch, ref = timed(lambda: model(*inputs, mode))
                        t_onnx, got = timed(lambda: network(*inputs, mode))
                        if run:  # the first run of each is a warm-up
                            times["torch"].append(t_torch)
                            times["onnx"].append(t_onnx)
                a, b = (1000 * statistics.median(times[k]) for k in ("torch", "onnx"))
                difference = float((ref.log_probs - got.log_probs).abs().max())
                print(f"{mode:6s} {shape:>8s} {a:10.1f} {b:10.1f} {a / b:9.2f} {difference:12.2e}")


if __name__ == "__main__":
    main()
