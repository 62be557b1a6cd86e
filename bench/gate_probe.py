"""Can a gate tell clean frames from noisy ones? A linear probe on what the gate reads, beside the
gate's own weight.

    python bench/gate_probe.py data/synth_grid_prepared/test.jsonl --model synth-grid-tiny post900.pt \
        [--noise babble] [--snr-db 0 -5 -10] [--seed 0]

Every utterance of the manifest is run through each model (``av`` mode) clean and with the noise
mixed at each SNR (as ``avsr evaluate`` mixes it). The input of the gate's scorer is captured per
frame (both streams' normalised features and the cues: SNR above the floor, flatness, face found,
plus any optional cue the model has). A logistic regression learns "clean or noisy" from it on the
even-numbered utterances and is scored on the odd ones, once on the whole input and once on the
cues alone. Printed: the held-out AUC of each probe and the AUC of the gate's own audio weight
(clean frames should get more), over all frames and over speech frames (the clean envelope within
20 dB of its 95th percentile), where the background talkers overlap the speaker.

A probe near 1 with a gate weight near 0.5 says the information is in the gate's input and the
training does not make the weight use it. A probe near 0.5 says the cues cannot separate the two.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from avsr.data.dataset import collate
from avsr.evaluation.sweep import NoiseSource, load_items, noisy_items
from avsr.inference.sync import speech_envelope
from avsr.models.bundle import load_model


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a positive frame scores above a negative one."""
    ranks = np.empty(len(scores))
    ranks[np.argsort(scores, kind="stable")] = np.arange(1, len(scores) + 1)
    count = positive.sum()
    return float((ranks[positive].sum() - count * (count + 1) / 2) / (count * (len(scores) - count)))


def gate_inputs(model, items: list[dict], batch_size: int = 16) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per utterance, the gate scorer's input ``(T, F)`` and the audio weight ``(T,)``."""
    fusion = model.fusion.gate if hasattr(model.fusion, "gate") else model.fusion
    captured = []
    hook = fusion.scorer.register_forward_hook(lambda module, args, out: captured.append(args[0].detach()))
    inputs, weights = [], []
    try:
        for start in range(0, len(items), batch_size):
            batch = collate(items[start: start + batch_size], model.preprocessing)
            captured.clear()
            with torch.no_grad():
                out = model(batch.audio, batch.audio_lengths, batch.video, batch.video_lengths, batch.face_found, "av")
            for row, length in enumerate(out.lengths.tolist()):
                inputs.append(captured[-1][row, :length].float().numpy())
                weights.append(out.audio_weight[row, :length].float().numpy())
    finally:
        hook.remove()
    return inputs, weights


def probe_auc(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> np.ndarray:
    """Held-out scores of an L2-regularised logistic regression (standardised inputs, LBFGS)."""
    mean, std = train_x.mean(axis=0), train_x.std(axis=0) + 1e-6
    x = torch.tensor((train_x - mean) / std, dtype=torch.float64)
    y = torch.tensor(train_y, dtype=torch.float64)
    w = torch.zeros(x.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")

    def loss():
        optimiser.zero_grad()
        value = torch.nn.functional.binary_cross_entropy_with_logits(x @ w[:-1] + w[-1], y) + 1e-3 * (w[:-1] ** 2).sum()
        value.backward()
        return value
    optimiser.step(loss)
    return ((test_x - mean) / std).astype(np.float64) @ w[:-1].detach().numpy() + w[-1].item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("manifest")
    parser.add_argument("--model", nargs="+", required=True)
    parser.add_argument("--noise", default="babble")
    parser.add_argument("--snr-db", type=float, nargs="+", default=[0.0, -5.0, -10.0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{'model':<18}{'SNR dB':>7}{'frames':>8}  AUC: {'probe, all':>11}{'probe, cues':>12}{'gate weight':>12}"
          f"   on speech frames: {'probe':>6}{'cues':>6}{'weight':>7}")
    for name in args.model:
        model = load_model(name).network.eval()
        items, speakers = load_items(args.manifest, model.preprocessing)
        speech = [speech_envelope(item["audio"]) for item in items]
        speech = [level > np.percentile(level, 95) - 20 for level in speech]
        clean_x, clean_w = gate_inputs(model, items)
        source = NoiseSource(args.noise, [item["audio"] for item in items], speakers)
        cues = slice(2 * model.config.dim, None)  # the scorer reads [audio, video, cues]
        for snr in args.snr_db:
            noisy_x, noisy_w = gate_inputs(model, noisy_items(items, source, snr, args.seed)[0])

            def stack(indices):
                x = np.concatenate([clean_x[i] for i in indices] + [noisy_x[i] for i in indices])
                w = np.concatenate([clean_w[i] for i in indices] + [noisy_w[i] for i in indices])
                y = np.concatenate([np.ones(len(clean_x[i]), bool) for i in indices]
                                   + [np.zeros(len(noisy_x[i]), bool) for i in indices])
                s = np.concatenate([speech[i][: len(clean_x[i])] for i in indices] * 2)
                return x, w, y, s
            train, test = stack(range(0, len(items), 2)), stack(range(1, len(items), 2))
            whole = probe_auc(train[0], train[2], test[0], test[2])
            only_cues = probe_auc(train[0][:, cues], train[2], test[0][:, cues], test[2])
            _, weight, label, on_speech = test
            figures = [auc(v[m], label[m]) for m in (np.ones_like(label), on_speech) for v in (whole, only_cues, weight)]
            print(f"{name:<18}{snr:>7g}{len(label):>8}       {figures[0]:>11.3f}{figures[1]:>12.3f}{figures[2]:>12.3f}"
                  f"                     {figures[3]:>6.3f}{figures[4]:>6.3f}{figures[5]:>7.3f}", flush=True)


if __name__ == "__main__":
    main()
