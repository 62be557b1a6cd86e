"""Figures of the noise experiments: WER and gate weight against SNR for a sweep, and one
utterance seen by the model (spectrogram, mouth crops, the gate's audio weight over time)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from avsr.io.vad import audio_speech_probability, speech_regions
from avsr.data.dataset import collate
from avsr.preprocessing import FRAME_S, SAMPLE_RATE
from avsr.data.tokenizer import CharTokenizer
from avsr.decoding.greedy import greedy_decode


LINE_STYLES = {"av": "-", "audio": "--", "video": ":"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _style(colour: int, mode: str) -> dict:
    return {"color": f"C{colour % 10}", "linestyle": LINE_STYLES[mode], "marker": "o", "markersize": 4}


def _wer_line(axis, xs: list, line: list, label: str, colour: int, mode: str) -> None:
    """WER % of sweep rows ``line`` at ``xs`` with its 95 % band."""
    style = _style(colour, mode)
    axis.plot(xs, [100 * r.wer for r in line], label=label, **style)
    axis.fill_between(xs, [100 * r.wer_low for r in line], [100 * r.wer_high for r in line], color=style["color"],
                      alpha=0.15)


def sweep_plots(rows: list, out_dir: Path) -> list[Path]:
    """``wer_vs_snr.png`` (WER with its 95 % band per model and mode, a panel per noise) and
    ``gate_vs_snr.png`` (mean audio weight of gated models) from :class:`SweepRow` rows at offset 0;
    ``wer_vs_offset.png`` too when the sweep has an offset axis."""
    plt = _pyplot()
    paths = _offset_plot(plt, rows, out_dir) if len({r.av_offset_ms for r in rows}) > 1 else []
    rows = [r for r in rows if r.av_offset_ms == 0]
    noises = sorted({r.noise for r in rows if r.noise != "clean"})
    snrs = sorted({r.snr_db for r in rows if r.snr_db is not None})
    x_clean = (max(snrs) + 10) if snrs else 0.0  # "clean" drawn right of the highest SNR
    for kind in ("wer", "gate"):
        figure, axes = plt.subplots(1, max(len(noises), 1), figsize=(5 * max(len(noises), 1), 4), squeeze=False)
        for axis, noise in zip(axes[0], noises or ["clean"]):
            for colour, model in enumerate(dict.fromkeys(r.model for r in rows)):
                for mode in dict.fromkeys(r.mode for r in rows):
                    if kind == "gate" and mode != "av":
                        continue
                    line = sorted((r for r in rows
                                   if r.model == model and r.mode == mode and r.noise in (noise, "clean")),
                                  key=lambda r: x_clean if r.snr_db is None else r.snr_db)
                    if not line or (kind == "gate" and line[0].mean_audio_weight is None):
                        continue  # a mode the model does not run; a fusion without weights
                    xs = [x_clean if r.snr_db is None else r.snr_db for r in line]
                    if kind == "wer":  # colour: the model; line: the mode (av solid, audio dashed, video dotted)
                        _wer_line(axis, xs, line, f"{model} {mode}", colour, mode)
                    else:
                        axis.plot(xs, [r.mean_audio_weight for r in line], label=model, **_style(colour, mode))
            ticks = snrs + ([x_clean] if any(r.snr_db is None for r in rows) else [])
            axis.set_xticks(ticks, [f"{t:g}" for t in snrs] + ["clean"] * (len(ticks) - len(snrs)))
            axis.set_title(f"{noise} noise")
            axis.set_xlabel("SNR dB, measured on the speech")
            axis.set_ylabel("WER %" if kind == "wer" else "mean audio weight of the gate")
            axis.grid(alpha=0.3)
            axis.legend(fontsize=8)
        figure.tight_layout()
        path = out_dir / f"{kind}_vs_snr.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        paths.append(path)
    return paths


def attention_matrix(band: np.ndarray) -> np.ndarray:
    """``(T, 2W + 1)`` attention over each frame's window -> ``(T, T)``: row t holds audio frame t's
    weight on every video frame (0 outside its window)."""
    frames, span = band.shape
    window = (span - 1) // 2
    matrix = np.zeros((frames, frames), band.dtype)
    for j in range(span):
        rows = np.arange(max(0, window - j), min(frames, frames + window - j))
        matrix[rows, rows + j - window] = band[rows, j]
    return matrix


def _offset_plot(plt, rows: list, out_dir: Path) -> list[Path]:
    """WER against the audio-video offset, a panel per noise condition (clean, then each noise and
    SNR), a line per model and mode; audio mode (the same at every offset) as a flat line."""
    conditions = list(dict.fromkeys((r.noise, r.snr_db) for r in rows))
    offsets = sorted({r.av_offset_ms for r in rows})
    figure, axes = plt.subplots(1, len(conditions), figsize=(5 * len(conditions), 4), squeeze=False)
    for axis, (noise, snr) in zip(axes[0], conditions):
        for colour, model in enumerate(dict.fromkeys(r.model for r in rows)):
            for mode in dict.fromkeys(r.mode for r in rows):
                line = sorted((r for r in rows if (r.model, r.mode, r.noise, r.snr_db) == (model, mode, noise, snr)),
                              key=lambda r: r.av_offset_ms)
                if not line:
                    continue
                if mode == "audio":  # its input does not move with the video
                    line = [line[0]] * 2
                    xs = [offsets[0], offsets[-1]]
                else:
                    xs = [r.av_offset_ms for r in line]
                _wer_line(axis, xs, line, f"{model} {mode}", colour, mode)
        axis.set_xticks(offsets)
        axis.set_title("clean" if snr is None else f"{noise} noise, {snr:g} dB")
        axis.set_xlabel("audio-video offset, ms (positive: the video lags)")
        axis.set_ylabel("WER %")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    path = out_dir / "wer_vs_offset.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return [path]


@torch.no_grad()
def utterance_figure(model, clean: dict, noisy: dict, noisy_label: str, path: str | Path,
                     strip_frames: int = 12) -> Path:
    """One utterance through ``model`` (AV mode), clean and noisy: the two log-mel spectrograms,
    a strip of ``strip_frames`` mouth crops evenly spaced in time, and the gate's audio weight per
    frame for both (absent for fusions without weights). Items are evaluation items of
    :class:`~avsr.data.dataset.AVDataset`."""
    plt = _pyplot()
    import librosa

    model.eval()
    weights, heard, attention = {}, {}, {}
    for label, item in (("clean", clean), (noisy_label, noisy)):
        batch = collate([item], model.preprocessing)
        out = model(batch.audio, batch.audio_lengths, batch.video, batch.video_lengths, batch.face_found, "av")
        heard[label] = greedy_decode(out.log_probs, out.lengths, CharTokenizer())[0]
        if out.audio_weight is not None:
            weights[label] = out.audio_weight[0, : int(out.lengths[0])].numpy()
        if out.attention is not None:
            attention[label] = attention_matrix(out.attention[0, : int(out.lengths[0])].numpy())
    video = np.asarray(clean["video"])
    frames = len(video)
    picks = np.linspace(0, frames - 1, min(strip_frames, frames)).round().astype(int)
    rows = 4 + bool(attention)
    figure, axes = plt.subplots(rows, 1, figsize=(10, 8.5 + 3 * bool(attention)),
                                gridspec_kw={"height_ratios": [1.2, 2, 2, 1.6, 3][:rows]})
    axes[0].imshow(np.concatenate([video[i] for i in picks], axis=1), cmap="gray", aspect="equal")
    axes[0].set_xticks((np.arange(len(picks)) + 0.5) * video.shape[2], [f"{i * FRAME_S:.2f}" for i in picks],
                       fontsize=7)
    axes[0].set_yticks([])
    axes[0].set_title(f"{clean['id']}: \"{clean['text']}\" — mouth crops (s)", fontsize=9)
    duration = frames * FRAME_S
    for axis, (label, item) in zip(axes[1:3], (("clean", clean), (noisy_label, noisy))):
        mel = librosa.feature.melspectrogram(y=np.asarray(item["audio"], np.float32), sr=SAMPLE_RATE, n_fft=400,
                                             hop_length=SAMPLE_RATE // 100, n_mels=80)
        axis.imshow(librosa.power_to_db(mel, ref=np.max, top_db=80), origin="lower", aspect="auto", cmap="magma",
                    extent=(0, duration, 0, 80))
        axis.set_ylabel("mel bin")
        axis.set_title(f"log-mel spectrogram, {label} — model heard \"{heard[label]}\"", fontsize=9)
    for number, (start, stop) in enumerate(speech_regions(audio_speech_probability(np.asarray(clean["audio"])))):
        axes[3].axvspan(start * FRAME_S, stop * FRAME_S, color="#50c878", alpha=0.15,
                        label="speech region (clean audio)" if number == 0 else None)
    for label, weight in weights.items():
        axes[3].plot((np.arange(len(weight)) + 0.5) * FRAME_S, weight, label=label)
    axes[3].set_ylim(0, 1)
    axes[3].set_xlim(0, duration)
    axes[3].set_xlabel("time (s)")
    axes[3].set_ylabel("audio weight")
    axes[3].set_title("the gate's audio weight per frame (1 = audio only, 0 = lips only)"
                      if weights else "this fusion has no per-frame weights", fontsize=9)
    axes[3].grid(alpha=0.3)
    if weights or axes[3].patches:
        axes[3].legend(fontsize=8)
    if attention:  # xattn: which video frames each audio frame looked at, in the noisy condition
        label = noisy_label if noisy_label in attention else "clean"
        axes[4].imshow(attention[label].T, origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=1,
                       extent=(0, duration, 0, duration))
        axes[4].plot([0, duration], [0, duration], color="white", linewidth=0.6, linestyle=":")
        axes[4].set_xlabel("audio time (s)")
        axes[4].set_ylabel("video time (s)")
        axes[4].set_title(f"cross-modal attention, {label}: audio frames (x) over video frames (y); dotted: in sync",
                          fontsize=9)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
