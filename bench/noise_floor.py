"""The synthetic corpus's recording floor against real recordings: digital silence and the gate's SNR cue.

    python bench/noise_floor.py [--utterances 12] [--speech DIR] [--figure bench/figures/noise_floor_cue.png]

Makes the same small corpus twice (``avsr synth``, seed 0), without and with the per-speaker
recording floor, decodes the audio of every mp4 as the pipeline does, and compares it with real
read speech (LibriVox clips in ``../shared/media/speech``):

- the share of samples that are exactly zero (no microphone records digital silence);
- the noise floor (10th percentile of 10 ms frame energy, dB full scale);
- the gate's SNR cue per 25 Hz frame (energy above the utterance's floor, in 10 dB units, as
  :func:`avsr.models.fusion.reliability_cues` computes it): its 10th, 50th and 90th percentiles.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from avsr.io.media import load_media
from avsr.models.audio_encoder import LogMel
from avsr.models.fusion import reliability_cues
from avsr.preprocessing import SAMPLES_PER_FRAME
from avsr.synth.corpus import SynthOptions, synthesize_corpus

SHARED_SPEECH = Path(__file__).resolve().parents[2] / "shared" / "media" / "speech"


def measure(audio: np.ndarray, logmel: LogMel) -> dict:
    frames = len(audio) // SAMPLES_PER_FRAME
    audio = audio[: frames * SAMPLES_PER_FRAME].astype(np.float32)
    samples = torch.from_numpy(audio)[None]
    with torch.no_grad():
        mel = logmel(samples)
        cue = reliability_cues(mel, torch.tensor([len(audio)]), torch.ones(1, frames, dtype=torch.bool))[0, :, 0]
    power = (audio[: len(audio) // 160 * 160].reshape(-1, 160).astype(np.float64) ** 2).mean(axis=1)
    return {"zeros": float(np.mean(audio == 0)), "floor_dbfs": float(10 * np.log10(np.percentile(power, 10) + 1e-20)),
            "cue": cue.numpy()}


def summarise(name: str, clips: list[dict]) -> str:
    cue = np.concatenate([c["cue"] for c in clips])
    p10, p50, p90 = np.percentile(cue, [10, 50, 90])
    zeros = 100 * np.mean([c["zeros"] for c in clips])
    floor = np.median([c["floor_dbfs"] for c in clips])
    return f"{name:<26}{len(clips):>6}{zeros:>15.2f}{floor:>13.1f}{p10:>9.2f}{p50:>7.2f}{p90:>7.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utterances", type=int, default=12)
    parser.add_argument("--speech", default=str(SHARED_SPEECH), help="folder of real speech recordings (.wav)")
    parser.add_argument("--figure", default=None, help="also draw the cue's histograms into this PNG")
    args = parser.parse_args()
    logmel = LogMel()
    groups: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, floor in (("synthetic, digital silence", False), ("synthetic, recording floor", True)):
            out = Path(tmp) / label.split(",")[1].strip().replace(" ", "_")
            splits = synthesize_corpus(out, SynthOptions(num_utterances=args.utterances, speakers=6, test_speakers=1,
                                                         recording_floor=floor), progress=False)
            records = [r for rows in splits.values() for r in rows]
            groups[label] = [measure(load_media(out / r["video"], video=False).audio, logmel) for r in records]
    real = sorted(Path(args.speech).glob("*.wav"))
    if real:
        groups["LibriVox (real)"] = [measure(load_media(path, video=False).audio, logmel) for path in real]
    print(f"{'audio':<26}{'clips':>6}{'zero samples %':>15}{'floor dBFS':>13}{'cue p10':>9}{'p50':>7}{'p90':>7}")
    for name, clips in groups.items():
        print(summarise(name, clips))
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axis = plt.subplots(figsize=(7, 3.5))
        bins = np.linspace(-0.5, 12, 60)
        for name, clips in groups.items():
            axis.hist(np.concatenate([c["cue"] for c in clips]), bins=bins, density=True, histtype="step", label=name)
        axis.set_xlabel("SNR cue: frame energy above the utterance's floor (x10 dB)")
        axis.set_ylabel("density")
        axis.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(args.figure, dpi=120)
        print(f"figure -> {args.figure}")


if __name__ == "__main__":
    main()
