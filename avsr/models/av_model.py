"""The audio-visual CTC model: two encoders, a fusion (reliability gate by default), a shared
encoder and a CTC head, with auxiliary per-stream CTC heads. Presets (:data:`PRESETS`): :func:`tiny`,
:func:`base`, or ``ModelConfig(preset=...)`` with some sizes of one's own."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
from torch import nn

from avsr.errors import AvsrError
from avsr.models.audio_encoder import AudioEncoder, frames_from_samples
from avsr.models.conformer import Conformer
from avsr.models.e2e_encoder import REL_POS_VARIANTS
from avsr.models.fusion import ConcatFusion, CrossAttentionGate, ReliabilityGate, SumFusion, reliability_cues
from avsr.models.imported_encoders import ImportedAudioEncoder, ImportedVideoEncoder, stream_config
from avsr.models.video_encoder import VideoEncoder
from avsr.preprocessing import Preprocessing

MODES = ("av", "audio", "video")
MODALITIES = MODES  # what a model is built for: both streams, or one of them alone
FUSIONS = {"gate": ReliabilityGate, "xattn": CrossAttentionGate, "concat": ConcatFusion, "sum": SumFusion}
# What the streams' encoders are (ModelConfig.encoders): "avsr", this package's own (log-mel and convolutions for
# the audio, a light ResNet for the lips, then Conformer layers), or "auto-avsr", those of auto_avsr's published
# models (avsr.models.imported_encoders: ResNet-18 frontends on the crops and on the raw waveform, Conformer blocks
# with relative positions), filled from their checkpoints by `avsr import auto-avsr --audio ASR --video VSR`.
ENCODERS = ("avsr", "auto-avsr")


# The named sizes of ModelConfig's ``preset`` (see :func:`tiny` and :func:`base`): the only place they are written.
# ``auto-avsr``: the gate on auto_avsr's published encoders (768 wide, 12 heads, 12 blocks of 3072 feed-forward
# units and kernel 31 per stream, as `avsr import auto-avsr --audio --video` reads them from the LRS3 zoo's
# checkpoints); its video_channels are unused (the encoders' ResNet-18 has fixed widths).
PRESETS: dict[str, dict] = {
    "tiny": {"dim": 144, "num_heads": 4, "ffn_dim": 576, "kernel_size": 15, "audio_layers": 2, "video_layers": 2,
             "fusion_layers": 1, "video_channels": (16, 32, 64), "encoders": "avsr"},
    "base": {"dim": 512, "num_heads": 8, "ffn_dim": 2048, "kernel_size": 31, "audio_layers": 12, "video_layers": 12,
             "fusion_layers": 2, "video_channels": (64, 128, 256, 512), "encoders": "avsr"},
    "auto-avsr": {"dim": 768, "num_heads": 12, "ffn_dim": 3072, "kernel_size": 31, "audio_layers": 12,
                  "video_layers": 12, "fusion_layers": 2, "video_channels": (64, 128, 256, 512),
                  "encoders": "auto-avsr"},
}


class ModelConfigError(AvsrError, ValueError):
    """Model settings this version cannot build: a value out of range, or a retired option turned on."""


# Options measured negative and removed on 2026-12-07, each with the value that meant "off" (its
# default); their measurements are in docs/history/ (2026-11-26 to 2026-12-02). A saved config that has
# one off still loads. Those of ModelConfig:
RETIRED_OPTIONS: dict[str, object] = {"gate_unit_streams": False, "gate_posterior_cues": False,
                                      "gate_agreement_cue": False}
# ... and those of the training module, in a checkpoint's hyper_parameters (align_teacher's loss weight,
# align_weight, means nothing without it and is dropped whatever its value):
RETIRED_TRAINING_OPTIONS: dict[str, object] = {"align_teacher": None, "gate_supervision": 0.0}


def drop_retired(saved: dict, source: str, retired: dict[str, object] = RETIRED_OPTIONS) -> dict:
    """``saved`` (settings read from a bundle, checkpoint or export) without the ``retired`` options
    that are at their off value.

    Raises:
        ModelConfigError: one of them is on (this version no longer has the code it needs).
    """
    on = [name for name, off in retired.items() if name in saved and saved[name] != off]
    if on:
        raise ModelConfigError(f"{source}: {on[0]}={saved[on[0]]!r}, an option retired on 2026-12-07 (measured "
                               f"negative) that this version cannot run; retrain without {on[0]}")
    return {key: value for key, value in saved.items() if key not in retired}


def model_config(saved: dict, source: str) -> "ModelConfig":
    """The :class:`ModelConfig` of settings saved by any version (``ModelConfig.to_dict``), ``source``
    naming the file in errors: what every loader of a saved model builds it from."""
    return ModelConfig(**drop_retired(saved, source))


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of an :class:`AVSRModel`.

    Each size left unset (None) is taken from ``preset`` (:data:`PRESETS`; ``tiny`` when no preset is
    named); a size that is set wins over the preset's. Once built, every size is a number: ``to_dict``
    (what bundles and checkpoints store) holds the numbers, not the preset's name, so a saved model
    does not depend on the presets staying as they are. ``preset`` does not take part in equality.
    """

    vocab_size: int = 29  # CTC blank + characters
    dim: int | None = None  # width of every stream
    num_heads: int | None = None
    ffn_dim: int | None = None
    kernel_size: int | None = None  # Conformer depthwise convolution
    audio_layers: int | None = None
    video_layers: int | None = None
    fusion_layers: int | None = None  # shared Conformer layers after fusion
    video_channels: tuple[int, ...] | None = None  # ResNet stage widths of the video trunk
    fusion: str = "gate"  # gate | xattn (the gate over locally cross-attending streams) | concat | sum
    xattn_window: int = 8  # xattn: frames each way a stream looks into the other (8 = 320 ms)
    xattn_align: bool = False  # xattn: the gate reads the video moved into the audio's time by the attention
    gate_mix: str = "sum"  # gate / xattn: add the weighted streams (sum), concatenate them into an MLP (concat);
    # gate only: weigh the two heads' CTC log-posteriors instead (posterior: decision fusion, see fusion.py)
    dropout: float = 0.1
    modalities: str = "av"  # av; audio (ASR) or video (VSR): one encoder and its CTC head alone
    video_pool: int = 1  # side of the spatial grid kept at the end of the video trunk (1: global average)
    video_downsample: int = 1  # crops average-pooled by this factor before the video stem
    encoders: str | None = None  # avsr | auto-avsr (ENCODERS): whose stream encoders; auto-avsr: dim, num_heads,
    # ffn_dim, kernel_size, audio_layers and video_layers are theirs, and the fusion works at their width
    encoder_rel_pos: str = "latest"  # auto-avsr encoders: their relative-position attention (latest | legacy)
    preset: str | None = field(default=None, compare=False)  # tiny | base: fills the sizes left unset

    def __post_init__(self) -> None:
        if self.preset is not None and self.preset not in PRESETS:
            raise ModelConfigError(f"preset={self.preset!r}; use one of {', '.join(PRESETS)}")
        for name, value in PRESETS[self.preset or "tiny"].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        object.__setattr__(self, "video_channels", tuple(self.video_channels))  # a list from YAML or a checkpoint
        if self.modalities not in MODALITIES:
            raise ModelConfigError(f"modalities={self.modalities!r}; use one of {', '.join(MODALITIES)}")
        if self.video_pool < 1 or self.video_downsample < 1:
            raise ModelConfigError(f"video_pool={self.video_pool} and video_downsample={self.video_downsample} must "
                                   "be >= 1")
        if self.xattn_window < 0:
            raise ModelConfigError(f"xattn_window={self.xattn_window} must be 0 or more (frames each way)")
        if self.xattn_align and self.fusion != "xattn":
            raise ModelConfigError(f"xattn_align moves the video by the cross-attention; fusion={self.fusion!r} has "
                                   "none: use fusion xattn")
        if self.fusion not in FUSIONS:
            raise ModelConfigError(f"fusion={self.fusion!r}; use one of {', '.join(FUSIONS)}")
        if self.gate_mix not in ReliabilityGate.MIXES:
            raise ModelConfigError(f"gate_mix={self.gate_mix!r}; use one of {', '.join(ReliabilityGate.MIXES)}")
        if self.gate_mix != "sum" and self.fusion not in ("gate", "xattn"):
            raise ModelConfigError(f"gate_mix sets how a gate weighs the streams; fusion={self.fusion!r} has no gate")
        if self.gate_mix == "posterior" and self.fusion != "gate":
            raise ModelConfigError(f"gate_mix='posterior' weighs the heads of the streams as they enter the fusion; "
                                   f"fusion={self.fusion!r} changes the streams first: use fusion gate")
        if self.dim % self.num_heads:
            raise ModelConfigError(f"dim={self.dim} must be divisible by num_heads={self.num_heads}")
        if self.encoders not in ENCODERS:
            raise ModelConfigError(f"encoders={self.encoders!r}; use one of {', '.join(ENCODERS)}")
        if self.encoder_rel_pos not in REL_POS_VARIANTS:
            raise ModelConfigError(f"encoder_rel_pos={self.encoder_rel_pos!r}; use one of "
                                   f"{', '.join(REL_POS_VARIANTS)}")
        if self.encoders == "auto-avsr" and (self.video_pool, self.video_downsample) != (1, 1):
            raise ModelConfigError(f"video_pool={self.video_pool} and video_downsample={self.video_downsample} shape "
                                   "avsr's own video encoder; auto-avsr encoders read 88x88 crops to one 512 vector "
                                   "per frame: leave both at 1")
        if self.encoders == "auto-avsr" and self.kernel_size % 2 == 0:
            raise ModelConfigError(f"kernel_size={self.kernel_size} must be odd for auto-avsr encoders")

    def to_dict(self) -> dict:
        """Every field as a number (lists for tuples), without ``preset``: what bundles and checkpoints store."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "preset"}
        return values | {"video_channels": list(self.video_channels)}


@dataclass
class ModelOutput:
    """log_probs ``(B, T, V)`` with lengths ``(B,)``; ``audio_weight`` ``(B, T)`` (gate only);
    per-stream log probs for the auxiliary CTC losses (``video_log_probs`` is None in audio mode);
    ``attention`` ``(B, T, 2W + 1)``: each audio frame's attention over the video frames t - W .. t + W
    (``xattn`` in av mode only; see :func:`avsr.models.fusion.attention_summary`)."""

    log_probs: torch.Tensor
    lengths: torch.Tensor
    audio_weight: torch.Tensor | None
    audio_log_probs: torch.Tensor
    video_log_probs: torch.Tensor | None
    attention: torch.Tensor | None = None


class AVSRModel(nn.Module):
    """The network; ``preprocessing`` is how its input must be prepared (saved in its bundle, read by
    every caller that feeds it)."""

    def __init__(self, config: ModelConfig, preprocessing: Preprocessing = Preprocessing()) -> None:
        super().__init__()
        preprocessing.check_runnable()
        self.config, self.preprocessing = config, preprocessing
        c = config
        imported = c.encoders == "auto-avsr"
        if c.modalities != "video":
            self.audio_encoder = (ImportedAudioEncoder(_stream_config("audio", c)) if imported else
                                  AudioEncoder(c.dim, c.audio_layers, c.num_heads, c.ffn_dim, kernel_size=c.kernel_size,
                                               dropout=c.dropout))
        if c.modalities == "audio":
            self.audio_head = nn.Linear(c.dim, c.vocab_size)
            return
        self.video_encoder = (ImportedVideoEncoder(_stream_config("video", c)) if imported else
                              VideoEncoder(c.dim, c.video_channels, c.video_layers, c.num_heads, c.ffn_dim,
                                           kernel_size=c.kernel_size, dropout=c.dropout, pool=c.video_pool,
                                           downsample=c.video_downsample))
        if c.modalities == "video":
            self.video_head = nn.Linear(c.dim, c.vocab_size)
            return
        if c.fusion == "gate":
            self.fusion = ReliabilityGate(c.dim, mix=c.gate_mix)
        elif c.fusion == "xattn":
            self.fusion = CrossAttentionGate(c.dim, c.num_heads, c.xattn_window, mix=c.gate_mix, align=c.xattn_align)
        else:
            self.fusion = FUSIONS[c.fusion](c.dim)
        if c.gate_mix != "posterior":  # (posterior: the heads' posteriors are fused, nothing follows the gate)
            self.shared = Conformer(c.dim, c.num_heads, c.ffn_dim, c.fusion_layers, c.kernel_size, c.dropout)
            self.head = nn.Linear(c.dim, c.vocab_size)  # (creation order kept: it fixes the seeded initialisation)
        self.audio_head = nn.Linear(c.dim, c.vocab_size)
        self.video_head = nn.Linear(c.dim, c.vocab_size)

    @property
    def modes(self) -> tuple[str, ...]:
        """The modes this model can run: all three, or its one stream for an audio- or video-only model."""
        return MODES if self.config.modalities == "av" else (self.config.modalities,)

    def forward(self, audio: torch.Tensor, audio_lengths: torch.Tensor, video: torch.Tensor,
                video_lengths: torch.Tensor, face_found: torch.Tensor, mode: str = "av") -> ModelOutput:
        """
        Args:
            audio: 16 kHz samples ``(B, N)`` with ``audio_lengths`` ``(B,)`` = 640 x frames.
            video: normalised mouth crops ``(B, T, H, W)`` with ``video_lengths`` ``(B,)``.
            face_found: ``(B, T)`` bool.
            mode: ``av`` (fused through the gate), ``audio`` or ``video`` (that stream alone, read by its
                own auxiliary CTC head).
        """
        if mode not in self.modes:
            raise ValueError(f"mode={mode!r}; this model runs {', '.join(self.modes)}")
        frames = video.shape[1]
        lengths = torch.minimum(frames_from_samples(audio_lengths), video_lengths)
        audio_log_probs = audio_features = None
        if mode != "video":
            audio_features, _, logmel = self.audio_encoder(audio, audio_lengths)  # (B, T, D)
            audio_features = nn.functional.pad(audio_features, (0, 0, 0, max(frames - audio_features.shape[1], 0)))
            audio_features = audio_features[:, :frames]
            audio_log_probs = nn.functional.log_softmax(self.audio_head(audio_features).float(), dim=-1)
        if mode == "audio":
            # One stream alone is read by its own CTC head (trained beside the fused one); the
            # gate's weight is then 1 for that stream by definition.
            weight = torch.ones(audio_features.shape[:2], device=audio.device)
            return ModelOutput(audio_log_probs, lengths, weight, audio_log_probs, None)
        video_features = self.video_encoder(video, video_lengths)  # (B, T, D)
        video_log_probs = nn.functional.log_softmax(self.video_head(video_features).float(), dim=-1)
        if mode == "video":
            weight = torch.zeros(video_features.shape[:2], device=video.device)
            return ModelOutput(video_log_probs, lengths, weight, None, video_log_probs)
        cues = reliability_cues(logmel, audio_lengths, face_found)
        valid = torch.arange(frames, device=video.device)[None] < lengths[:, None]
        if self.config.gate_mix == "posterior":  # stream exponents on the heads' own posteriors
            weights = self.fusion.stream_weights(audio_features, video_features, cues).float()
            pooled = weights[..., :1] * audio_log_probs + weights[..., 1:] * video_log_probs
            return ModelOutput(nn.functional.log_softmax(pooled, dim=-1), lengths, weights[..., 0], audio_log_probs,
                               video_log_probs)
        fused, audio_weight, attention = self.fusion(audio_features, video_features, cues, valid)
        shared = self.shared(fused, lengths)
        log_probs = nn.functional.log_softmax(self.head(shared).float(), dim=-1)
        return ModelOutput(log_probs, lengths, audio_weight, audio_log_probs, video_log_probs, attention)


def _stream_config(modality: str, c: ModelConfig):
    """The sizes of an auto-avsr stream encoder of ``c``."""
    layers = c.audio_layers if modality == "audio" else c.video_layers
    return stream_config(modality, c.dim, c.num_heads, c.ffn_dim, layers, c.kernel_size, c.encoder_rel_pos, c.dropout)


def tiny(fusion: str = "gate", vocab_size: int = 29) -> ModelConfig:
    """CPU-trainable (< 5 M parameters; a light video trunk of 16-64 channels)."""
    return ModelConfig(vocab_size=vocab_size, fusion=fusion, preset="tiny")


def base(fusion: str = "gate", vocab_size: int = 29) -> ModelConfig:
    """GPU, LRS3-scale; widths close to auto_avsr's (d=768 there, 12 layers per encoder)."""
    return ModelConfig(vocab_size=vocab_size, fusion=fusion, preset="base")
