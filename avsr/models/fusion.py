"""Fusing the audio and video streams: a per-frame reliability gate, or concat / sum baselines."""

from __future__ import annotations

import torch
from torch import nn

from avsr.models.audio_encoder import MEL_HOP
from avsr.models.conformer import padding_mask

CUE_DIM = 3  # audio SNR estimate, audio spectral flatness, face_found


def reliability_cues(logmel: torch.Tensor, audio_lengths: torch.Tensor, face_found: torch.Tensor) -> torch.Tensor:
    """Explicit per-frame reliability signals ``(B, T, 3)`` at 25 Hz.

    Args:
        logmel: ``(B, 4T, n_mels)`` log-mel energies; audio_lengths: ``(B,)`` in samples.
        face_found: ``(B, T)`` bool.

    The SNR estimate is the frame's log energy above the utterance's noise floor (its 10th
    percentile over valid frames), in units of 10 dB; flatness is the spectral flatness of the mel
    spectrum (1 for white noise, near 0 for voiced speech). Both are computed over valid frames
    only, so they do not change under padding.
    """
    frames_100hz = audio_lengths // MEL_HOP
    pad = padding_mask(frames_100hz, logmel.shape[1])  # (B, 4T)
    energy_db = 10 / torch.log(torch.tensor(10.0)) * torch.logsumexp(logmel, dim=2)  # (B, 4T)
    ordered = energy_db.masked_fill(pad, float("inf")).sort(dim=1).values
    floor = ordered.gather(1, (0.1 * (frames_100hz - 1).clamp(min=0)).long()[:, None])  # (B, 1)
    snr = ((energy_db - floor) / 10).masked_fill(pad, 0.0)
    flatness = torch.exp(logmel.mean(dim=2) - torch.logsumexp(logmel, dim=2) + torch.log(
        torch.tensor(float(logmel.shape[2])))).masked_fill(pad, 0.0)
    frames = face_found.shape[1]
    pool = lambda x: x[:, : 4 * frames].reshape(x.shape[0], frames, 4).mean(dim=2)  # 100 Hz -> 25 Hz
    return torch.stack([pool(snr), pool(flatness), face_found.float()], dim=2)


class ReliabilityGate(nn.Module):
    """Per-frame softmax weights over {audio, video} from both streams' features and the cues.

    ``fused = w_audio * A(audio) + w_video * V(video)``, returned with ``w_audio`` ``(B, T)``.
    Frames without a face (``face_found`` false) get ``w_video = 0``; elsewhere the weights are
    learned (e.g. away from audio drowned in noise).

    With ``unit_streams`` each projected stream is scaled to unit RMS per frame (a layer norm without
    gain) before the weighting. Without it the projections can grow one stream's scale, and the same
    mixture is then reached with any weight: the weight stops saying how much each stream counts.
    """

    def __init__(self, dim: int, hidden: int = 64, unit_streams: bool = False) -> None:
        super().__init__()
        self.unit_streams = unit_streams
        self.audio_norm, self.video_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.scorer = nn.Sequential(nn.Linear(2 * dim + CUE_DIM, hidden), nn.GELU(), nn.Linear(hidden, 2))
        self.audio_proj, self.video_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, audio: torch.Tensor, video: torch.Tensor, cues: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """audio, video ``(B, T, D)``; cues ``(B, T, 3)``. Returns fused ``(B, T, D)`` and
        ``w_audio`` ``(B, T)``."""
        a, v = self.audio_norm(audio), self.video_norm(video)
        scores = self.scorer(torch.cat([a, v, cues], dim=2))  # (B, T, 2)
        # Where no face was found there is no video to trust: its weight is 0 by construction.
        no_face = (cues[..., 2] < 0.5)[..., None] & torch.tensor([False, True], device=scores.device)
        weights = torch.softmax(scores.masked_fill(no_face, float("-inf")), dim=2)
        a, v = self.audio_proj(a), self.video_proj(v)
        if self.unit_streams:
            a, v = nn.functional.layer_norm(a, a.shape[-1:]), nn.functional.layer_norm(v, v.shape[-1:])
        fused = weights[..., :1] * a + weights[..., 1:] * v
        return fused, weights[..., 0]


class ConcatFusion(nn.Module):
    """Concatenate the streams and mix them with an MLP (as auto_avsr's fusion)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mix = nn.Sequential(nn.Linear(2 * dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, audio, video, cues):
        return self.mix(torch.cat([audio, video], dim=2)), None


class SumFusion(nn.Module):
    """Add the projected streams with fixed equal weights."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.audio_proj, self.video_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, audio, video, cues):
        return 0.5 * (self.audio_proj(audio) + self.video_proj(video)), None
