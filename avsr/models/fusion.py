"""Fusing the audio and video streams: a per-frame reliability gate, the gate over locally
cross-attending streams (``xattn``), or concat / sum baselines.

Every fusion takes ``(audio, video, cues, valid)`` (``(B, T, D)`` features at 25 Hz, the cues of
:func:`reliability_cues`, ``valid`` the frames inside each sample's length) and returns
``(fused, audio_weight, attention)``: the gate's per-frame audio weight (None for concat / sum) and,
for ``xattn``, each audio frame's attention over the video frames near it (else None).
"""

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

    ``mix="concat"`` (gated concatenation): the weighted streams are concatenated and mixed by an MLP,
    ``fused = MLP([w_audio * A, w_video * V])``, instead of added. The sum is a convex combination of
    two linear maps, so the layers after it cannot tell which stream a feature came from; the
    concatenation keeps them apart (as concat fusion does) while the gate still scales each one, and
    a frame without a face still gets exactly no video (its half is zero).

    ``mix="posterior"`` (decision fusion): the gate's weights are exponents on the two streams' own
    CTC posteriors instead of weights on their features, ``log p = w_audio * log p_audio + w_video *
    log p_video`` renormalised per frame (the reliability-weighted stream exponents of multi-stream
    HMM AVSR, Potamianos et al., Proc. IEEE 91(9), 2003). Nothing after the gate can make up for a
    weight: 1 reads the audio head alone, 0 the video head. :class:`~avsr.models.av_model.AVSRModel`
    then reads :meth:`stream_weights` only (this module has no projections).
    """

    MIXES = ("sum", "concat", "posterior")

    def __init__(self, dim: int, hidden: int = 64, mix: str = "sum") -> None:
        super().__init__()
        if mix not in self.MIXES:
            raise ValueError(f"mix={mix!r}; use one of {', '.join(self.MIXES)}")
        self.mix = mix
        self.audio_norm, self.video_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.scorer = nn.Sequential(nn.Linear(2 * dim + CUE_DIM, hidden), nn.GELU(), nn.Linear(hidden, 2))
        if mix == "posterior":
            return
        self.audio_proj, self.video_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        if mix == "concat":
            self.mixer = nn.Sequential(nn.Linear(2 * dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, audio: torch.Tensor, video: torch.Tensor, cues: torch.Tensor,
                valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, None]:
        """audio, video ``(B, T, D)``; cues ``(B, T, 3)`` (face_found third). Returns fused
        ``(B, T, D)``, ``w_audio`` ``(B, T)`` and None (no attention)."""
        if self.mix == "posterior":
            raise RuntimeError("a posterior-mix gate weighs the streams' CTC posteriors: call stream_weights")
        a, v = self.audio_norm(audio), self.video_norm(video)
        weights = self._weights(a, v, cues)
        a, v = self.audio_proj(a), self.video_proj(v)
        if self.mix == "concat":
            fused = self.mixer(torch.cat([weights[..., :1] * a, weights[..., 1:] * v], dim=2))
        else:
            fused = weights[..., :1] * a + weights[..., 1:] * v
        return fused, weights[..., 0], None

    def stream_weights(self, audio: torch.Tensor, video: torch.Tensor, cues: torch.Tensor) -> torch.Tensor:
        """``(B, T, 2)`` the per-frame softmax weights on {audio, video} (video 0 where no face was found)."""
        return self._weights(self.audio_norm(audio), self.video_norm(video), cues)

    def _weights(self, audio: torch.Tensor, video: torch.Tensor, cues: torch.Tensor) -> torch.Tensor:
        scores = self.scorer(torch.cat([audio, video, cues], dim=2))  # (B, T, 2)
        # Where no face was found there is no video to trust: its weight is 0 by construction.
        no_face = (cues[..., 2] < 0.5)[..., None] & torch.tensor([False, True], device=scores.device)
        return torch.softmax(scores.masked_fill(no_face, float("-inf")), dim=2)


class ConcatFusion(nn.Module):
    """Concatenate the streams and mix them with an MLP (as auto_avsr's fusion)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mix = nn.Sequential(nn.Linear(2 * dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, audio, video, cues, valid=None):
        return self.mix(torch.cat([audio, video], dim=2)), None, None


class SumFusion(nn.Module):
    """Add the projected streams with fixed equal weights."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.audio_proj, self.video_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, audio, video, cues, valid=None):
        return 0.5 * (self.audio_proj(audio) + self.video_proj(video)), None, None


def local_windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """``(B, T, D)`` -> ``(B, T, D, 2 * window + 1)``: for each frame t the frames t - window .. t + window
    (zeros beyond the ends), a strided view of the padded sequence."""
    return nn.functional.pad(x, (0, 0, window, window)).unfold(1, 2 * window + 1, 1)


class LocalCrossAttention(nn.Module):
    """Multi-head attention from each frame of one stream to the other stream's frames within
    ``±window`` frames, with a learned bias per head and relative offset.

    Keys outside the window, outside the sample or marked invalid (a video frame without a face)
    get no weight; a query whose whole window is invalid attends to nothing (output 0). Cost is
    linear in time: the keys of each query's window are a strided view of the padded key sequence.
    """

    def __init__(self, dim: int, num_heads: int, window: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.num_heads, self.window = num_heads, window
        self.norm_query, self.norm_memory = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.query, self.key_value, self.out = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
        self.position_bias = nn.Parameter(torch.zeros(num_heads, 2 * window + 1))

    def forward(self, query: torch.Tensor, memory: torch.Tensor,
                memory_valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """query, memory ``(B, T, D)``; memory_valid ``(B, T)`` bool. Returns the attended memory
        ``(B, T, D)`` and the attention ``(B, T, heads, 2 * window + 1)``, where index ``j`` is the
        memory frame ``t + j - window``."""
        batch, frames, dim = query.shape
        heads, span = self.num_heads, 2 * self.window + 1
        q = self.query(self.norm_query(query)).view(batch, frames, heads, dim // heads)
        keys, values = self.key_value(self.norm_memory(memory)).chunk(2, dim=2)
        keys = local_windows(keys, self.window).reshape(batch, frames, heads, dim // heads, span)
        values = local_windows(values, self.window).reshape(batch, frames, heads, dim // heads, span)
        allowed = nn.functional.pad(memory_valid, (self.window, self.window), value=False).unfold(1, span, 1)
        scores = torch.einsum("bthd,bthdk->bthk", q, keys) / (dim // heads) ** 0.5 + self.position_bias
        scores = scores.masked_fill(~allowed[:, :, None, :], float("-inf"))
        attention = torch.softmax(scores, dim=3)
        attention = torch.where(allowed[:, :, None, :], attention, torch.zeros_like(attention))  # all-masked rows: 0
        attended = torch.einsum("bthk,bthdk->bthd", attention, values).reshape(batch, frames, dim)
        return self.out(attended), attention


class CrossAttentionGate(nn.Module):
    """``xattn``: each stream first looks up the other within ``±window`` frames (audio -> video and
    video -> audio, :class:`LocalCrossAttention`, added to the stream), then the
    :class:`ReliabilityGate` weighs the two as before (no face: video weight 0).

    Frame-by-frame fusions read video frame t with audio frame t, the wrong lip frame when the
    streams are out of step; attention from audio frame t can find the lip frame that belongs to it.
    Returns the audio -> video attention averaged over heads, ``(B, T, 2 * window + 1)``.

    ``align``: the gate's video side is the video stream *moved into the audio's time* (each audio
    frame's average of the video frames in its window, weighted by its head-averaged attention)
    instead of video frame t plus what it looked up in the audio (no video -> audio attention then).
    Without it, the gate still reads video frame t itself, the wrong lip frame when out of step,
    however well the attention finds the right one. Measured with the attention taught where the
    lips are (docs/history/2026-12-01.md, beb0de2…4134df0): with it, clean WER held at 5.2-6.0 % from -200
    to +200 ms; in babble it was worse than the video head alone, so it is off by default.
    """

    def __init__(self, dim: int, num_heads: int, window: int, mix: str = "sum", align: bool = False) -> None:
        super().__init__()
        self.window, self.align = window, align
        self.audio_to_video = LocalCrossAttention(dim, num_heads, window)
        self.video_to_audio = None if align else LocalCrossAttention(dim, num_heads, window)
        self.gate = ReliabilityGate(dim, mix=mix)

    def forward(self, audio: torch.Tensor, video: torch.Tensor, cues: torch.Tensor,
                valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        face = valid & (cues[..., 2] > 0.5)
        from_video, attention = self.audio_to_video(audio, video, face)
        attention = attention.mean(dim=2)  # (B, T, 2W + 1)
        if self.align:
            video = torch.einsum("btk,btdk->btd", attention, local_windows(video, self.window))
        else:
            from_audio, _ = self.video_to_audio(video, audio, valid)
            video = video + from_audio
        fused, audio_weight, _ = self.gate(audio + from_video, video, cues)
        return fused, audio_weight, attention


def attention_summary(attention: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per frame, the offset (in frames; positive: a later video frame) that the audio attended to
    most, and how peaked that attention was (its largest weight, 1 = one frame only).

    Args:
        attention: ``(B, T, 2W + 1)`` from :class:`CrossAttentionGate` (rows of zeros where no
            video frame in the window had a face).
    """
    window = (attention.shape[-1] - 1) // 2
    peak, index = attention.max(dim=-1)
    return index - window, peak
