"""Does an ``xattn`` model's attention find the lip frame? Where its audio frames look, per offset.

    python bench/attention_probe.py MODEL [MODEL ...] [--manifest data/synth_grid_prepared/test.jsonl]
        [--clips 40] [--offsets-ms -200 -120 -40 0 40 120 200] [--noise babble --snr-db 0]

For each model (a bundle, or a Lightning checkpoint of this project) and each offset, the first
``--clips`` utterances of a prepared manifest have their video moved against the audio by that
offset (positive: the video lags; :func:`avsr.evaluation.sweep.shifted_items`), the model runs in
av mode, and every audio frame that had a face in its window votes for the video frame it
attended to most (:func:`avsr.models.fusion.attention_summary`). Printed per offset: the median
vote, the share of votes on the true offset (and within a frame of it), the attention's mean peak
weight, the gate's mean audio weight, and the median error of the per-utterance offset estimate read
from the attention (:func:`avsr.inference.sync.attention_offset`) with its median agreement and the
share of utterances whose agreement lets ``avsr transcribe`` use it
(:data:`avsr.inference.sync.ATTENTION_MIN_AGREEMENT`; the others fall back to the mouth). A model
whose attention finds the lips puts its votes on the offset; one whose attention does not, spreads
them over the window whatever the offset.
``--noise``/``--snr-db``: the audio mixed with that noise first, as ``avsr evaluate`` mixes it
(the audio frames are the attention's queries).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from avsr.data.dataset import collate
from avsr.evaluation.sweep import NoiseSource, load_items, noisy_items, offset_frames, shifted_items
from avsr.models.bundle import load_model
from avsr.inference.sync import attention_offset
from avsr.models.fusion import attention_summary


def load_network(path: str):
    if path.endswith(".ckpt"):
        from avsr.training.init import load_stream_model

        return load_stream_model(path).eval()
    return load_model(path).network


@torch.no_grad()
def votes(network, items: list[dict], batch_size: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """Per voting frame: the attended offset (frames), the attention's peak weight, the audio weight;
    and per utterance the offset estimate read from its attention (:func:`attention_offset`)."""
    offsets, peaks, weights, estimates = [], [], [], []
    for start in range(0, len(items), batch_size):
        batch = collate(items[start:start + batch_size], network.preprocessing)
        out = network(batch.audio, batch.audio_lengths, batch.video, batch.video_lengths, batch.face_found, "av")
        if out.attention is None:
            raise SystemExit("this model has no cross-attention (fusion xattn); nothing to probe")
        attended, peak = attention_summary(out.attention)
        for row in range(len(batch.ids)):
            frames = int(out.lengths[row])
            voting = out.attention[row, :frames].sum(dim=-1) > 0
            offsets.append(attended[row, :frames][voting].numpy())
            peaks.append(peak[row, :frames][voting].numpy())
            weights.append(out.audio_weight[row, :frames][voting].float().numpy())
            estimates.append(attention_offset(out.attention[row, :frames].numpy(), batch.face_found[row, :frames].numpy()))
    return np.concatenate(offsets), np.concatenate(peaks), np.concatenate(weights), estimates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--manifest", default="data/synth_grid_prepared/test.jsonl")
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--offsets-ms", type=int, nargs="+", default=[-200, -120, -40, 0, 40, 120, 200])
    parser.add_argument("--noise", help="white, babble or NAME=DIR, mixed in at --snr-db")
    parser.add_argument("--snr-db", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    shifts = {offset: offset_frames(offset) for offset in args.offsets_ms}  # refused before any work
    for path in args.models:
        network = load_network(path)
        items, speakers = load_items(args.manifest, network.preprocessing)
        if args.noise:  # the noise source draws babble from the whole test set, as the sweep does
            source = NoiseSource(args.noise, [item["audio"] for item in items], speakers)
            items = noisy_items(items, source, args.snr_db, args.seed)[0]
        items = items[: args.clips]
        condition = f"{args.noise} {args.snr_db:g} dB" if args.noise else "clean"
        print(f"{path}: {len(items)} utterances of {args.manifest}, {condition}")
        print(f"{'offset ms':>9} {'median vote':>12} {'on offset %':>12} {'within 1 %':>11} {'peak':>6} {'audio w':>8}"
              f"  {'utterance estimate: median |error| ms':>37} {'agreement':>10} {'used %':>7}")
        for offset, shift in shifts.items():
            attended, peak, weight, estimates = votes(network, shifted_items(items, offset))
            found = [e for e in estimates if e is not None]
            error = np.median([abs(e.offset_ms - offset) for e in found]) if found else float("nan")
            agreement = np.median([e.confidence for e in found]) if found else float("nan")
            used = sum(e.sure for e in found) / len(estimates)
            print(f"{offset:>+9d} {np.median(attended):>+12.1f} {100 * np.mean(attended == shift):>12.1f} "
                  f"{100 * np.mean(np.abs(attended - shift) <= 1):>11.1f} {peak.mean():>6.2f} {weight.mean():>8.3f}"
                  f"  {error:>37.1f} {agreement:>10.2f} {100 * used:>7.0f}", flush=True)


if __name__ == "__main__":
    main()
