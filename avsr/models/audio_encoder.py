"""Audio front end: log-mel features, convolutional subsampling to the video rate, Conformer."""

from __future__ import annotations

import math

import torch
import torchaudio
from torch import nn

from avsr.models.conformer import Conformer, padding_mask
from avsr.preprocessing import SAMPLE_RATE, SAMPLES_PER_FRAME

MEL_HOP = SAMPLE_RATE // 100  # 10 ms


def frames_from_samples(lengths: torch.Tensor) -> torch.Tensor:
    """Number of 25 Hz frames for audio lengths in samples (16 kHz)."""
    return torch.div(lengths + SAMPLES_PER_FRAME - 1, SAMPLES_PER_FRAME, rounding_mode="floor")


class LogMel(nn.Module):
    """``(B, N)`` 16 kHz samples -> ``(B, 4T, n_mels)`` log-mel frames at 100 Hz (T = N / 640).

    Frames are centred with zero padding (not reflection), so the frames of a sample are the same
    alone and followed by a batch's zero padding.
    """

    N_FFT = 400

    def __init__(self, n_mels: int = 80) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(sample_rate=SAMPLE_RATE, n_fft=self.N_FFT, hop_length=MEL_HOP,
                                                        n_mels=n_mels, center=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        frames = audio.shape[1] // MEL_HOP
        audio = nn.functional.pad(audio.float(), (self.N_FFT // 2, self.N_FFT // 2))
        with torch.autocast(device_type=audio.device.type, enabled=False):
            mel = self.mel(audio)  # (B, n_mels, N / 160 + 1)
        return torch.log(mel + 1e-6).transpose(1, 2)[:, :frames]  # (B, 4T, n_mels)


class ConvLogMel(LogMel):
    """:class:`LogMel`'s features computed by one strided convolution with the Hann-windowed DFT
    basis instead of ``torch.stft``: the same numbers (log-mel within 3e-4 of LogMel's on real clips)
    from the operators every exporter and runtime implement exactly. ONNX Runtime's STFT operator
    is less exact (log-mel off by up to 0.05 on the same clips), so :func:`avsr.models.onnx.export_onnx`
    exports this one.

    ``ConvLogMel.like(logmel)`` takes the window and filter bank of a loaded model's front end (a
    float16 bundle holds them rounded, and the copy must compute what the model computes).
    """

    def __init__(self, n_mels: int = 80) -> None:
        super().__init__(n_mels)
        self._set_basis()

    @classmethod
    def like(cls, logmel: LogMel) -> "ConvLogMel":
        copy = cls(logmel.mel.n_mels)
        copy.mel.load_state_dict(logmel.mel.state_dict())
        copy._set_basis()
        return copy.to(logmel.mel.mel_scale.fb.device)

    def _set_basis(self) -> None:
        n = self.N_FFT
        k = torch.arange(n // 2 + 1, dtype=torch.float64)[:, None]
        t = torch.arange(n, dtype=torch.float64)[None]
        window = self.mel.spectrogram.window.double()
        angle = 2 * math.pi * k * t / n
        basis = torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window]).float()[:, None]
        self.register_buffer("basis", basis, persistent=False)  # (2 (n/2 + 1), 1, n): real, imaginary rows

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        frames = audio.shape[1] // MEL_HOP
        audio = nn.functional.pad(audio.float(), (self.N_FFT // 2, self.N_FFT // 2))
        spectrum = nn.functional.conv1d(audio[:, None], self.basis, stride=MEL_HOP)  # (B, 2 (n/2 + 1), N / 160 + 1)
        bins = self.N_FFT // 2 + 1
        power = spectrum[:, :bins] ** 2 + spectrum[:, bins:] ** 2
        mel = torch.matmul(power.transpose(1, 2), self.mel.mel_scale.fb)  # (B, N / 160 + 1, n_mels)
        return torch.log(mel + 1e-6)[:, :frames]


class AudioEncoder(nn.Module):
    """Log-mel -> two stride-2 convolutions (100 Hz -> 25 Hz) -> Conformer.

    Args:
        dim: model width D. n_mels: mel bins. num_layers, num_heads, ffn_dim, kernel_size: Conformer.
    """

    def __init__(self, dim: int, num_layers: int, num_heads: int, ffn_dim: int, n_mels: int = 80,
                 kernel_size: int = 15, dropout: float = 0.1) -> None:
        super().__init__()
        self.logmel = LogMel(n_mels)
        self.norm = nn.LayerNorm(n_mels)
        self.conv1 = nn.Conv2d(1, dim // 4, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(dim // 4, dim // 4, 3, stride=2, padding=1)
        self.project = nn.Linear(dim // 4 * ((n_mels + 3) // 4), dim)
        self.conformer = Conformer(dim, num_heads, ffn_dim, num_layers, kernel_size, dropout)

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Args:
            audio: 16 kHz samples ``(B, N)``; lengths: ``(B,)`` valid samples, multiples of 640.

        Returns:
            features ``(B, T, D)``, frame lengths ``(B,)``, and log-mel ``(B, 4T, n_mels)`` (for the
            reliability cues).
        """
        frames = frames_from_samples(lengths)
        logmel = self.logmel(audio)  # (B, 4T, n_mels)
        x = self.norm(logmel).masked_fill(padding_mask(lengths // MEL_HOP, logmel.shape[1])[..., None], 0.0)
        x = nn.functional.gelu(self.conv1(x.unsqueeze(1)))  # (B, C, 2T, n_mels / 2)
        x = x.masked_fill(padding_mask(2 * frames, x.shape[2])[:, None, :, None], 0.0)
        x = nn.functional.gelu(self.conv2(x))  # (B, C, T, n_mels / 4)
        x = self.project(x.permute(0, 2, 1, 3).flatten(2))  # (B, T, D)
        return self.conformer(x, frames), frames, logmel
