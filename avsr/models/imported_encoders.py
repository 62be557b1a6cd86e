"""The auto_avsr family's stream encoders (:class:`~avsr.models.e2e.StreamEncoder`: a ResNet-18 frontend, a
projection from 512 to D and Conformer blocks with relative positions) behind the interface of the gated model's
own encoders, so that :class:`~avsr.models.av_model.AVSRModel` can fuse them (``ModelConfig.encoders``
``auto-avsr``; :func:`avsr.models.auto_avsr_import.import_auto_avsr_av` fills them from a published VSR and
ASR checkpoint).

- :class:`ImportedVideoEncoder`: normalised mouth crops ``(B, T, 88, 88)`` -> ``(B, T, D)``, as the VSR models read
  them; padded frames are zeroed first, so a clip gives the same output alone and in a padded batch.
- :class:`ImportedAudioEncoder`: the raw 16 kHz waveform ``(B, N)``, standardised over each clip as the ASR models
  were fed (:func:`~avsr.models.e2e_network.layer_norm_waveform`), -> ``(B, T, D)``; it also returns the
  log-mel frames (:class:`~avsr.models.audio_encoder.LogMel`, no weights) that the gate's reliability cues are
  computed from, as the gated model's own audio encoder does.
"""

from __future__ import annotations

import torch

from avsr.models.audio_encoder import LogMel
from avsr.models.conformer import padding_mask
from avsr.models.e2e import E2EConfig, StreamEncoder
from avsr.models.e2e_network import layer_norm_waveform
from avsr.preprocessing import SAMPLES_PER_FRAME


def stream_config(modality: str, dim: int, heads: int, ffn_dim: int, blocks: int, kernel_size: int,
                  rel_pos: str, dropout: float) -> E2EConfig:
    """The :class:`E2EConfig` of one imported stream encoder (the decoder's sizes are not used)."""
    return E2EConfig(modality=modality, dim=dim, heads=heads, ffn_dim=ffn_dim, blocks=blocks, kernel_size=kernel_size,
                     rel_pos=rel_pos, decoder_heads=heads, dropout=dropout)


class ImportedVideoEncoder(StreamEncoder):
    """A VSR model's encoder (see the module's docstring)."""

    def __init__(self, config: E2EConfig) -> None:
        super().__init__("video", config)

    def forward(self, video: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """video ``(B, T, H, W)`` normalised crops, lengths ``(B,)`` frames -> ``(B, T, D)``."""
        video = video.masked_fill(padding_mask(lengths, video.shape[1])[..., None, None], 0.0)
        return super().forward(video, lengths)


class ImportedAudioEncoder(StreamEncoder):
    """An ASR model's encoder (see the module's docstring)."""

    def __init__(self, config: E2EConfig, n_mels: int = 80) -> None:
        super().__init__("audio", config)
        self.logmel = LogMel(n_mels)

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """audio ``(B, N)`` 16 kHz samples, lengths ``(B,)`` in samples -> features ``(B, T, D)`` (T = N // 640: the
        frontend drops the samples of a last partial frame), frame lengths ``(B,)`` and log-mel ``(B, N // 160,
        n_mels)`` of the waveform as given (for the reliability cues)."""
        frames = torch.div(lengths, SAMPLES_PER_FRAME, rounding_mode="floor")
        features = super().forward(layer_norm_waveform(audio, lengths), frames)
        return features, frames, self.logmel(audio)
