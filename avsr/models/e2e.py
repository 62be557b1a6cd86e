"""The auto_avsr model family (Ma et al., 2023, "Auto-AVSR"): ResNet-18 frontends, Conformer
encoders, a CTC head and a Transformer decoder, as published with the LRS3 model zoo of
github.com/mpc001/auto_avsr.

- :class:`E2EConfig`: the sizes; :func:`e2e_base` builds the published size (768 wide, 12 Conformer
  blocks, 6 decoder blocks, 250 M parameters for video).
- :class:`E2EModel`: one stream (``video``: mouth crops, ``audio``: the waveform) or both (``av``: two
  encoders whose outputs are concatenated per frame and mixed by :class:`FusionMLP`).
- :func:`convert_auto_avsr` turns a checkpoint of the reference (any of its three layouts, see
  :func:`checkpoint_layout`) into an :class:`E2EConfig` and a state dict of :class:`E2EModel`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch
from torch import nn

from avsr.errors import AvsrError, OptionError
from avsr.models.e2e_decoder import TransformerDecoder
from avsr.models.e2e_encoder import REL_POS_VARIANTS, ConformerEncoder
from avsr.models.resnet import FEATURE_DIM, AudioResNet, VideoResNet
from avsr.preprocessing import SAMPLES_PER_FRAME

MODALITIES = ("video", "audio", "av")


@dataclass(frozen=True)
class E2EConfig:
    """Sizes of an :class:`E2EModel`; the defaults are the published models' (auto_avsr's LRS3 zoo)."""

    modality: str = "video"  # video | audio | av (both encoders and a fusion MLP)
    vocab_size: int = 5049  # blank 0, the units, sos = eos = vocab_size - 1
    dim: int = 768  # width of the encoders and the decoder
    heads: int = 12  # encoder attention heads
    ffn_dim: int = 3072  # encoder feed-forward width
    blocks: int = 12  # Conformer blocks per encoder
    kernel_size: int = 31  # depthwise convolution of the Conformer blocks, frames
    rel_pos: str = "latest"  # relative-position variant (see avsr.models.e2e_encoder): latest | legacy
    decoder_heads: int = 12  # not readable from a checkpoint; the reference uses the encoder's
    decoder_ffn_dim: int = 3072
    decoder_blocks: int = 6
    fusion_dim: int = 8192  # av: hidden width of the fusion MLP
    dropout: float = 0.1  # training only

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise OptionError(f"modality={self.modality!r}; use one of {', '.join(MODALITIES)}")
        if self.rel_pos not in REL_POS_VARIANTS:
            raise OptionError(f"rel_pos={self.rel_pos!r}; use one of {', '.join(REL_POS_VARIANTS)}")
        sizes = ("vocab_size", "dim", "heads", "ffn_dim", "blocks", "kernel_size", "decoder_heads", "decoder_ffn_dim",
                 "decoder_blocks", "fusion_dim")
        for name in sizes:
            if getattr(self, name) < 1:
                raise OptionError(f"{name}={getattr(self, name)} must be 1 or more")
        for name in ("heads", "decoder_heads"):
            if self.dim % getattr(self, name):
                raise OptionError(f"dim={self.dim} must be divisible by {name}={getattr(self, name)}")
        if self.kernel_size % 2 == 0:
            raise OptionError(f"kernel_size={self.kernel_size} must be odd to keep 'same' padding")

    @property
    def eos(self) -> int:
        """The id that starts and ends every hypothesis of the decoder (sos = eos, the last id)."""
        return self.vocab_size - 1

    def to_dict(self) -> dict:
        """Every field as a plain value: what a bundle stores."""
        return asdict(self)


@dataclass
class E2EOutput:
    """encoder_out ``(B, T, D)`` (what the decoder attends to) with lengths ``(B,)``, and the CTC
    head's log-probabilities ``(B, T, V)`` (float32)."""

    encoder_out: torch.Tensor
    lengths: torch.Tensor
    log_probs: torch.Tensor


class StreamEncoder(nn.Module):
    """One stream: its ResNet frontend, a projection from 512 to D and a Conformer encoder, giving
    ``(B, T, D)`` at 25 frames per second."""

    def __init__(self, modality: str, config: E2EConfig) -> None:
        super().__init__()
        c = config
        self.frontend = VideoResNet() if modality == "video" else AudioResNet()
        self.proj = nn.Linear(FEATURE_DIM, c.dim)
        self.encoder = ConformerEncoder(c.dim, c.heads, c.ffn_dim, c.blocks, c.kernel_size, c.rel_pos, c.dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """x: mouth crops ``(B, T, H, W)`` or samples ``(B, N)``; lengths ``(B,)`` in frames -> ``(B, T, D)``."""
        return self.encoder(self.proj(self.frontend(x)), lengths)


class FusionMLP(nn.Module):
    """Per frame: Linear (in -> hidden), BatchNorm over the hidden channels, ReLU, Linear (hidden -> out)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.norm = nn.BatchNorm1d(hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, in)`` -> ``(B, T, out)``."""
        h = self.norm(self.fc1(x).transpose(1, 2)).transpose(1, 2)  # (B, T, hidden)
        return self.fc2(torch.relu(h))


class E2EModel(nn.Module):
    """Encoder(s), CTC head and attention decoder of the auto_avsr family (see the module's docstring).

    Padded frames are left out of the encoders' attention and convolutions, so a clip gives the same
    output alone and in a padded batch, except near the end of a padded waveform, where the audio
    frontend's convolutions see the padding (video frames padded with zeros are exact).
    """

    def __init__(self, config: E2EConfig) -> None:
        super().__init__()
        c = self.config = config
        self.video_stream = StreamEncoder("video", c) if c.modality in ("video", "av") else None
        self.audio_stream = StreamEncoder("audio", c) if c.modality in ("audio", "av") else None
        self.fusion = FusionMLP(2 * c.dim, c.fusion_dim, c.dim) if c.modality == "av" else None
        self.ctc = nn.Linear(c.dim, c.vocab_size)
        self.decoder = TransformerDecoder(c.vocab_size, c.dim, c.decoder_heads, c.decoder_ffn_dim, c.decoder_blocks)

    def encode(self, audio: torch.Tensor | None, audio_lengths: torch.Tensor | None, video: torch.Tensor | None,
               video_lengths: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(encoder_out (B, T, D), lengths (B,))`` of the streams the model reads (the others may be None).

        Both streams (``av``) are first cut to the frames they share: T = min(video frames, samples // 640).
        """
        c = self.config
        if c.modality != "audio" and video is None or c.modality != "video" and audio is None:
            raise ValueError(f"a model of modality {c.modality!r} needs "
                             f"{'audio and video' if c.modality == 'av' else c.modality}")
        if c.modality == "video":
            return self.video_stream(video, video_lengths), _lengths(video_lengths, video)
        audio_frames = _lengths(None if audio_lengths is None else audio_lengths // SAMPLES_PER_FRAME, audio,
                                audio.shape[1] // SAMPLES_PER_FRAME)
        if c.modality == "audio":
            return self.audio_stream(audio, audio_frames), audio_frames
        frames = min(video.shape[1], audio.shape[1] // SAMPLES_PER_FRAME)
        lengths = torch.minimum(_lengths(video_lengths, video), audio_frames).clamp(max=frames)
        video_out = self.video_stream(video[:, :frames], lengths)  # (B, T, D)
        audio_out = self.audio_stream(audio[:, :frames * SAMPLES_PER_FRAME], lengths)  # (B, T, D)
        return self.fusion(torch.cat([video_out, audio_out], dim=-1)), lengths  # (B, T, D)

    def forward(self, audio: torch.Tensor | None, audio_lengths: torch.Tensor | None, video: torch.Tensor | None,
                video_lengths: torch.Tensor | None) -> E2EOutput:
        """
        Args:
            audio: 16 kHz samples ``(B, N)``, normalised over each clip (zero mean, unit variance), with
                ``audio_lengths`` ``(B,)`` in samples; None for a video model.
            video: grey mouth crops ``(B, T, 88, 88)``, normalised, with ``video_lengths`` ``(B,)``;
                None for an audio model. Lengths may be None when nothing is padded.
        """
        encoder_out, lengths = self.encode(audio, audio_lengths, video, video_lengths)
        log_probs = nn.functional.log_softmax(self.ctc(encoder_out).float(), dim=-1)  # (B, T, V)
        return E2EOutput(encoder_out, lengths, log_probs)


def _lengths(lengths: torch.Tensor | None, x: torch.Tensor, frames: int | None = None) -> torch.Tensor:
    """``lengths``, or, when None, ``(B,)`` full lengths of the batch ``x``: ``frames`` or its second size."""
    if lengths is not None:
        return lengths
    return torch.full((x.shape[0],), x.shape[1] if frames is None else frames, dtype=torch.long, device=x.device)


def e2e_base(modality: str = "video", vocab_size: int = 5049, rel_pos: str = "latest") -> E2EModel:
    """The published size: 768 wide, 12 heads, 12 Conformer blocks of 3072 feed-forward units and kernel
    31, a 6-block decoder and, for ``av``, a fusion MLP of 8192 (video 250 M parameters, audio 243 M, av 444 M)."""
    return E2EModel(E2EConfig(modality=modality, vocab_size=vocab_size, rel_pos=rel_pos))



# --- Reading auto_avsr checkpoints ---------------------------------------------------------------------------

class CheckpointLayoutError(AvsrError, ValueError):
    """A state dict that is not an auto_avsr E2E model of a layout this version reads; the message names
    what differs (a key, a shape)."""


# The reference's names -> ours: the frontends' by key prefix, the encoder's one dotted part at a time; the
# decoder (avsr.models.e2e_decoder) keeps the reference's names but for its token embedding (embed.0 -> embed).
FRONTEND_NAMES = {"video": (("frontend3D.0.", "stem_conv."), ("frontend3D.1.", "stem_norm."), ("trunk.", "trunk.")),
                  "audio": (("trunk.conv1.", "stem_conv."), ("trunk.bn1.", "stem_norm."), ("trunk.", "trunk."))}
ENCODER_NAMES = {"encoders": "blocks", "after_norm": "final_norm", "norm_ff_macaron": "macaron_norm",
                 "feed_forward_macaron": "macaron_ff", "norm_mha": "attn_norm", "self_attn": "attn",
                 "norm_conv": "conv_norm", "conv_module": "conv", "norm_ff": "ff_norm", "feed_forward": "ff",
                 "norm_final": "out_norm", "w_1": "linear1", "w_2": "linear2", "pointwise_cov1": "pointwise_in",
                 "depthwise_conv": "depthwise", "pointwise_cov2": "pointwise_out"}


@dataclass(frozen=True)
class Layout:
    """A checkpoint layout: its name (for messages), modality, and for each stream the key prefixes of its
    frontend, its 512 -> D projection and its encoder."""

    name: str
    modality: str
    streams: dict[str, tuple[str, str, str]]


def checkpoint_layout(state_dict: Mapping[str, torch.Tensor]) -> Layout:
    """The layout of a reference state dict: the model zoo's (``frontend.``, ``proj_encoder.``,
    ``encoder.``; auto_avsr since 2025-01), v1.0.0's (frontend and projection inside the encoder:
    ``encoder.frontend.``, ``encoder.embed.0.``) or v1.0.0's audio-visual one (``encoder.`` video,
    ``aux_encoder.`` audio, ``fusion.``).

    Raises:
        CheckpointLayoutError: any other layout.
    """
    if "proj_decoder.weight" in state_dict:
        raise CheckpointLayoutError("an auto_avsr model with proj_decoder.weight (a decoder narrower than its "
                                    "encoder), which no published model has and avsr does not read")
    if "aux_encoder.embed.0.weight" in state_dict:
        for prefix, modality in (("encoder.frontend.", "video"), ("aux_encoder.frontend.", "audio")):
            if _frontend_modality(state_dict, prefix) != modality:
                raise CheckpointLayoutError(f"an audio-visual auto_avsr v1.0.0 state dict needs a {modality} frontend "
                                            f"under {prefix}")
        return Layout("auto_avsr v1.0.0 audio-visual", "av",
                      {"video": ("encoder.frontend.", "encoder.embed.0.", "encoder."),
                       "audio": ("aux_encoder.frontend.", "aux_encoder.embed.0.", "aux_encoder.")})
    for name, prefixes in (("auto_avsr", ("frontend.", "proj_encoder.", "encoder.")),
                           ("auto_avsr v1.0.0", ("encoder.frontend.", "encoder.embed.0.", "encoder."))):
        if prefixes[1] + "weight" in state_dict:
            modality = _frontend_modality(state_dict, prefixes[0])
            return Layout(name, modality, {modality: prefixes})
    starts = sorted({key.split(".")[0] + "." for key in state_dict})
    raise CheckpointLayoutError(f"not an auto_avsr E2E state dict: it has no proj_encoder.weight (model zoo) or "
                                f"encoder.embed.0.weight (v1.0.0); its keys start {', '.join(starts[:6])}")


def _frontend_modality(state_dict: Mapping[str, torch.Tensor], prefix: str) -> str:
    """video (a Conv3d stem under ``prefix``) or audio (a Conv1d stem)."""
    for modality, ((stem, _), *_) in FRONTEND_NAMES.items():
        if prefix + stem + "weight" in state_dict:
            return modality
    raise CheckpointLayoutError(f"an auto_avsr state dict without a frontend: no {prefix}frontend3D.0.weight "
                                f"(video) or {prefix}trunk.conv1.weight (audio)")


def _state_dict_of(checkpoint: object) -> dict[str, torch.Tensor]:
    """The state dict of a zoo file, or of a Lightning checkpoint of auto_avsr's training (``model.`` keys)."""
    if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("state_dict"), Mapping):
        checkpoint = {key.removeprefix("model."): value for key, value in checkpoint["state_dict"].items()}
    if not isinstance(checkpoint, Mapping) or not checkpoint:
        what = "an empty" if isinstance(checkpoint, Mapping) else "a"
        raise CheckpointLayoutError(f"not a state dict ({what} {type(checkpoint).__name__}, not a dict of tensors)")
    for key, value in checkpoint.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointLayoutError(f"not a state dict: {key!r} holds a {type(value).__name__}, not a tensor")
    return dict(checkpoint)


def e2e_config_from_state_dict(state_dict: Mapping[str, torch.Tensor], rel_pos: str = "latest",
                               decoder_heads: int | None = None) -> E2EConfig:
    """The sizes of a reference state dict (any :func:`checkpoint_layout`), read from its shapes: width from
    the projection, encoder heads from ``pos_bias_u`` (heads x width/heads), feed-forward widths, block counts,
    kernel from the depthwise convolution, vocabulary from the CTC head, the fusion's width.

    Two things no shape tells are arguments: ``rel_pos`` (auto_avsr's own code always uses ``latest``) and
    ``decoder_heads`` (None: the encoder's, as the reference builds every published model).
    """
    state_dict = _state_dict_of(state_dict)
    layout = checkpoint_layout(state_dict)
    _, proj, encoder = next(iter(layout.streams.values()))  # av: the video stream; checked against the audio later

    def shape(key: str) -> tuple[int, ...]:
        if key not in state_dict:
            raise CheckpointLayoutError(f"an {layout.name} state dict without {key}")
        return tuple(state_dict[key].shape)

    dim, features = shape(proj + "weight")
    if features != FEATURE_DIM:
        raise CheckpointLayoutError(f"{proj}weight has shape {dim}x{features}; the ResNet frontend gives {FEATURE_DIM}")
    heads = shape(encoder + "encoders.0.self_attn.pos_bias_u")[0]
    sizes = dict(vocab_size=shape("ctc.ctc_lo.weight")[0], dim=dim, heads=heads,
                 ffn_dim=shape(encoder + "encoders.0.feed_forward.w_1.weight")[0],
                 blocks=_count(state_dict, encoder + "encoders."),
                 kernel_size=shape(encoder + "encoders.0.conv_module.depthwise_conv.weight")[-1],
                 decoder_heads=decoder_heads or heads,
                 decoder_ffn_dim=shape("decoder.decoders.0.feed_forward.w_1.weight")[0],
                 decoder_blocks=_count(state_dict, "decoder.decoders."))
    if layout.modality == "av":
        sizes["fusion_dim"] = shape("fusion.fc1.weight")[0]
    return E2EConfig(modality=layout.modality, rel_pos=rel_pos, **sizes)


def _count(state_dict: Mapping[str, torch.Tensor], prefix: str) -> int:
    """How many numbered blocks ``prefix<N>.`` the keys hold (the highest N + 1)."""
    numbers = [int(key[len(prefix):].split(".")[0]) for key in state_dict if key.startswith(prefix)]
    return max(numbers, default=-1) + 1


def _rename(key: str, layout: Layout, to_reference: bool = False) -> str | None:
    """A reference key as :class:`E2EModel` names it (or, ``to_reference``, back); None for a key the layout
    does not have."""
    parts = [("ctc.ctc_lo.", "ctc.", ()), ("fusion.bn1.", "fusion.norm.", ()), ("fusion.", "fusion.", ()),
             ("decoder.embed.0.", "decoder.embed.", ()), ("decoder.", "decoder.", ())]
    for modality, (frontend, proj, encoder) in layout.streams.items():
        ours = f"{modality}_stream."
        parts[:0] = [(frontend, ours + "frontend.", FRONTEND_NAMES[modality]), (proj, ours + "proj.", ()),
                     (encoder, ours + "encoder.", ENCODER_NAMES)]
    for reference, ours, names in parts:
        old, new = (ours, reference) if to_reference else (reference, ours)
        if key.startswith(old):
            rest = key[len(old):]
            if isinstance(names, dict):  # one dotted part at a time
                table = {b: a for a, b in names.items()} if to_reference else names
                return new + ".".join(table.get(part, part) for part in rest.split("."))
            for a, b in names:  # by prefix
                if rest.startswith(b if to_reference else a):
                    return new + (a if to_reference else b) + rest[len(b if to_reference else a):]
            return None if names else new + rest
    return None


def convert_auto_avsr(checkpoint: object, rel_pos: str = "latest",
                      decoder_heads: int | None = None) -> tuple[E2EConfig, dict[str, torch.Tensor]]:
    """An auto_avsr checkpoint (a zoo ``.pth`` as ``torch.load`` gives it: the model zoo's layout,
    v1.0.0's, or v1.0.0's audio-visual model) as ``(config, state dict of E2EModel(config))``, checked
    key by key and shape by shape. ``rel_pos`` and ``decoder_heads``: see :func:`e2e_config_from_state_dict`.

    Raises:
        CheckpointLayoutError: not a state dict, another layout, a missing or unexpected key, a wrong shape.
    """
    state_dict = _state_dict_of(checkpoint)
    config = e2e_config_from_state_dict(state_dict, rel_pos, decoder_heads)
    layout = checkpoint_layout(state_dict)
    converted = {}
    for key, value in state_dict.items():
        name = _rename(key, layout)
        if name is None:
            raise CheckpointLayoutError(f"an {layout.name} state dict with an unexpected key {key}")
        converted[name] = value
    with torch.device("meta"):
        expected = E2EModel(config).state_dict()
    size = f"{config.dim} wide, {config.blocks} blocks, {config.vocab_size} tokens"
    for name, tensor in expected.items():
        if name not in converted and name.endswith("num_batches_tracked"):  # counts training steps only
            converted[name] = torch.zeros((), dtype=torch.long)
        elif name not in converted:
            raise CheckpointLayoutError(f"an {layout.name} state dict ({size}) without {_rename(name, layout, True)}")
        elif converted[name].shape != tensor.shape:
            raise CheckpointLayoutError(f"{_rename(name, layout, True)} has shape {_shape(converted[name])} where an "
                                        f"{layout.name} model {size} has {_shape(tensor)}")
    unexpected = [name for name in converted if name not in expected]
    if unexpected:
        raise CheckpointLayoutError(f"an {layout.name} state dict ({size}) with an unexpected key "
                                    f"{_rename(unexpected[0], layout, True)}" + (f" and {len(unexpected) - 1} more"
                                                                                 if len(unexpected) > 1 else ""))
    return config, {name: converted[name] for name in expected}


def _shape(tensor: torch.Tensor) -> str:
    return "x".join(map(str, tensor.shape)) or "() (a scalar)"
