"""The training losses: CTC on the fused stream plus auxiliary per-stream CTC (AV models), or CTC on
the one stream of an audio-only or video-only model; and two optional losses that teach the fusion
what the recipe knows: each frame's SNR (the gate) and each clip's audio-video offset (the attention).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from avsr.data.dataset import Batch
from avsr.errors import OptionError
from avsr.models.av_model import ModelOutput


@dataclass(frozen=True)
class LossOptions:
    """The weights and shapes of the training losses (``model.losses`` in a training config).

    Args:
        aux_weight: weight of each auxiliary CTC loss (audio stream, video stream) of an AV model.
        video_aux_weight: weight of the video stream's auxiliary loss, if other than ``aux_weight``.
        gate_snr_supervision: weight of a loss that teaches the gate (``gate``, ``xattn``) from the
            condition of each frame, which the recipe knows because it mixed the noise in: every
            frame with a face and a known SNR (``Batch.frame_snr``) is pulled towards
            :func:`snr_target` of its SNR (binary cross-entropy). Real datasets allow it wherever
            noise is added in training. 0: off.
        gate_snr_midpoint_db, gate_snr_width_db, gate_snr_ceiling: the shape of :func:`snr_target`.
        xattn_sync_supervision: weight of a loss that teaches ``xattn``'s audio-to-video attention
            where each audio frame's lip frame is: the offset augmentation moved the video by a
            known number of frames (``Batch.av_offset``), and the attention's weight on that frame
            is raised (:func:`sync_nll`). Without it nothing tells the attention to find the right
            frame (its peak offset did not follow a shift: docs/history/2026-12-01.md, beb0de2…4134df0). Real
            datasets allow it wherever their clips are in sync (LRS2/LRS3 were filtered with
            SyncNet) and offsets are added in training. 0: off.
    """

    aux_weight: float = 0.3
    video_aux_weight: float | None = None
    gate_snr_supervision: float = 0.0
    gate_snr_midpoint_db: float = 5.0
    gate_snr_width_db: float = 3.0
    gate_snr_ceiling: float = 0.8
    xattn_sync_supervision: float = 0.0

    def __post_init__(self) -> None:
        if self.gate_snr_width_db <= 0 or not 0 < self.gate_snr_ceiling <= 1:
            raise OptionError(f"gate_snr_width_db={self.gate_snr_width_db} must be > 0 and "
                              f"gate_snr_ceiling={self.gate_snr_ceiling} in (0, 1]")


def ctc(log_probs: torch.Tensor, out: ModelOutput, batch: Batch, blank: int) -> torch.Tensor:
    """Mean CTC loss of ``log_probs`` ``(B, T, V)`` (over ``out.lengths``) against the batch's transcripts."""
    return torch.nn.functional.ctc_loss(log_probs.transpose(0, 1), batch.targets, out.lengths, batch.target_lengths,
                                        blank=blank, zero_infinity=True)


def training_loss(out: ModelOutput, batch: Batch, options: LossOptions, modalities: str, blank: int) -> torch.Tensor:
    """The loss of one batch: CTC on the model's output; for an AV model (``modalities`` ``av``) plus
    the weighted auxiliary CTC of each stream and the supervision losses that are on."""
    loss = ctc(out.log_probs, out, batch, blank)
    if modalities != "av":  # an audio-only or video-only model: its one CTC head
        return loss
    video_weight = options.aux_weight if options.video_aux_weight is None else options.video_aux_weight
    aux = (options.aux_weight * ctc(out.audio_log_probs, out, batch, blank)
           + video_weight * ctc(out.video_log_probs, out, batch, blank))
    return loss + aux + gate_snr_loss(out, batch, options) + sync_loss(out, batch, options)


def snr_target(snr_db: torch.Tensor, midpoint_db: float, width_db: float, ceiling: float) -> torch.Tensor:
    """The audio weight the gate is taught for a frame of SNR ``snr_db`` (``gate_snr_supervision``):
    ``ceiling * sigmoid((snr_db - midpoint_db) / width_db)``. It falls from ``ceiling`` (clean
    audio; below 1, so that clean frames still read the lips) through ``ceiling / 2`` at
    ``midpoint_db`` (choose where the two streams read equally well) towards 0 (no speech left in
    the audio)."""
    return ceiling * torch.sigmoid((snr_db.float() - midpoint_db) / width_db)


def gate_bce(out: ModelOutput, batch: Batch, target: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
    """Mean binary cross-entropy of the gate's audio weight against ``target`` ``(B, T)`` over the
    frames inside each utterance that have a face (a frame without one has its weight fixed at 1)
    and, if given, ``known`` ``(B, T)``."""
    frames = out.audio_weight.shape[1]
    valid = torch.arange(frames, device=out.audio_weight.device)[None] < out.lengths[:, None]
    valid = valid & batch.face_found[:, :frames].bool().to(valid.device)
    if known is not None:
        valid = valid & known
    weight = out.audio_weight.float().clamp(1e-6, 1 - 1e-6)
    bce = torch.nn.functional.binary_cross_entropy(weight, target, reduction="none")
    return (bce * valid).sum() / valid.sum().clamp(min=1)


def gate_snr_loss(out: ModelOutput, batch: Batch, options: LossOptions) -> torch.Tensor:
    """``gate_snr_supervision`` x the binary cross-entropy of the gate's audio weight against
    :func:`snr_target` of each frame's SNR, on frames with a face and a known SNR; 0 when off,
    without a gate, or for a batch without SNRs."""
    if not options.gate_snr_supervision or out.audio_weight is None or batch.frame_snr is None:
        return out.log_probs.new_zeros(())
    snr = batch.frame_snr[:, :out.audio_weight.shape[1]].to(out.audio_weight.device)
    target = snr_target(torch.nan_to_num(snr), options.gate_snr_midpoint_db, options.gate_snr_width_db,
                        options.gate_snr_ceiling)
    return options.gate_snr_supervision * gate_bce(out, batch, target, torch.isfinite(snr))


def sync_nll(attention: torch.Tensor, lengths: torch.Tensor, face_found: torch.Tensor,
             av_offset: torch.Tensor) -> torch.Tensor:
    """Mean negative log of the attention each audio frame pays to the video frame that shows it.

    Args:
        attention: ``(B, T, 2W + 1)`` from ``xattn`` (index ``j``: video frame ``t + j - W``).
        lengths: ``(B,)`` frames in each utterance; face_found ``(B, T)``.
        av_offset: ``(B,)`` frames each video was moved later (:class:`~avsr.data.augment.Augmenter`),
            so audio frame ``t`` is shown by video frame ``t + av_offset``.

    Only frames inside the utterance whose target video frame is inside it, within the window and
    has a face count (the others have nothing to find)."""
    batch, frames, span = attention.shape
    window = (span - 1) // 2
    offset = av_offset.to(attention.device)[:, None]  # (B, 1)
    time = torch.arange(frames, device=attention.device)[None]  # (1, T)
    shown = time + offset  # the video frame that shows audio frame t
    inside = (time < lengths[:, None]) & (shown >= 0) & (shown < lengths[:, None]) & (offset.abs() <= window)
    found = torch.gather(face_found.bool().to(attention.device), 1, shown.clamp(0, frames - 1))
    known = inside & found
    index = (offset + window).clamp(0, span - 1).expand(batch, frames)[..., None]
    picked = torch.gather(attention.float(), 2, index)[..., 0]
    return -(picked.clamp(min=1e-6).log() * known).sum() / known.sum().clamp(min=1)


def sync_loss(out: ModelOutput, batch: Batch, options: LossOptions) -> torch.Tensor:
    """``xattn_sync_supervision`` x :func:`sync_nll` of the audio-to-video attention; 0 when off,
    without cross-attention, or for a batch without offsets."""
    weight = options.xattn_sync_supervision
    if not weight or out.attention is None or batch.av_offset is None:
        return out.log_probs.new_zeros(())
    return weight * sync_nll(out.attention, out.lengths, batch.face_found, batch.av_offset)
