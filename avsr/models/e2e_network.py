"""An :class:`~avsr.models.e2e.E2EModel` as the transcriber reads a network: what the model reads (``modes``),
how it was fed (``preprocessing``), and one forward over padded windows of mouth crops and audio.

The auto_avsr family was trained on whole utterances of up to about 20 s (``max_input_s``): a file is read one
speech region at a time (:mod:`avsr.inference.regions`), each at most that long, and decoded by joint
CTC/attention beam search over the region's encoder output (:mod:`avsr.decoding.joint`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from avsr.errors import OptionError
from avsr.models.e2e import E2EConfig, E2EModel
from avsr.preprocessing import Preprocessing

MAX_INPUT_S = 20.0  # the longest utterance the published models were trained on, about (auto_avsr's LRS3 recipes)
MODES = {"video": ("video",), "audio": ("audio",), "av": ("av",)}  # what a model of each modality reads
FAMILY = "auto-avsr"  # the family's name in a bundle


@dataclass(frozen=True)
class Decoding:
    """How the family's authors decode: joint CTC/attention beam search (:mod:`avsr.decoding.joint`), with the
    beam, the CTC weight (the decoder's is 1 minus it) and a bonus per token; no language model."""

    beam_size: int = 40
    ctc_weight: float = 0.1
    length_bonus: float = 0.0


def auto_avsr_preprocessing() -> Preprocessing:
    """How the published models were fed: auto_avsr's mouth crops (96 px, grey), the centre 88, standardised with
    mean 0.421 and std 0.165; the waveform normalised per utterance (done by :class:`E2ENetwork`)."""
    return Preprocessing(roi_style="auto-avsr", crop_size=88, video_norm="global")


@dataclass
class E2ENetworkOutput:
    """log_probs ``(B, T, V)`` of the CTC head and encoder_out ``(B, T, D)``, with lengths ``(B,)``. The family
    has no gate and no cross-attention: ``audio_weight`` and ``attention`` are None."""

    log_probs: torch.Tensor
    lengths: torch.Tensor
    encoder_out: torch.Tensor
    audio_weight: None = None
    attention: None = None


class E2ENetwork(nn.Module):
    """The auto_avsr family behind the transcriber's interface (see the module's docstring)."""

    family = FAMILY
    reads_utterances = True  # one speech region per window, never cut at the pauses inside it

    def __init__(self, config: E2EConfig, preprocessing: Preprocessing, decoding: Decoding = Decoding(),
                 max_input_s: float = MAX_INPUT_S) -> None:
        super().__init__()
        self.config, self.preprocessing, self.decoding, self.max_input_s = config, preprocessing, decoding, max_input_s
        self.modes = MODES[config.modality]
        self.model = E2EModel(config)

    @property
    def decoder(self) -> nn.Module:
        """The attention decoder (:class:`~avsr.models.e2e_decoder.TransformerDecoder`)."""
        return self.model.decoder

    def saved_config(self) -> dict:
        """What a bundle stores to build this network again (:func:`auto_avsr_network`)."""
        return {"model": self.config.to_dict(), "decoding": asdict(self.decoding), "max_input_s": self.max_input_s}

    def forward(self, audio: torch.Tensor, audio_lengths: torch.Tensor, video: torch.Tensor,
                video_lengths: torch.Tensor, face_found: torch.Tensor | None = None,
                mode: str | None = None) -> E2ENetworkOutput:
        """
        Args:
            audio: 16 kHz samples ``(B, N)`` with ``audio_lengths`` ``(B,)``; each row is normalised here over
                its valid samples (zero mean, unit variance: the reference's layer norm over the clip).
            video: normalised mouth crops ``(B, T, 88, 88)`` (``preprocessing.normalise_video``) with
                ``video_lengths`` ``(B,)``.
            face_found, mode: what the transcriber passes every network; this family reads its own modality.
        """
        modality = self.config.modality
        heard = layer_norm_waveform(audio, audio_lengths) if modality != "video" else None
        seen = video if modality != "audio" else None
        out = self.model(heard, audio_lengths if heard is not None else None, seen,
                         video_lengths if seen is not None else None)
        return E2ENetworkOutput(out.log_probs, out.lengths, out.encoder_out)


def auto_avsr_network(saved: dict, preprocessing: Preprocessing, source: str) -> E2ENetwork:
    """The family's entry for :data:`avsr.models.loader.FAMILIES`: the network of a bundle's saved config."""
    try:
        return E2ENetwork(E2EConfig(**saved["model"]), preprocessing, Decoding(**saved.get("decoding", {})),
                          float(saved.get("max_input_s", MAX_INPUT_S)))
    except (KeyError, TypeError) as error:
        raise OptionError(f"{source}: a {FAMILY} bundle whose config cannot be read ({error}); import the "
                          "checkpoint again with avsr import auto-avsr") from None


def layer_norm_waveform(audio: torch.Tensor, lengths: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Each row ``(B, N)`` standardised over its first ``lengths`` samples (how the family's audio encoders were
    fed: the reference's layer norm over the clip); the padding stays 0."""
    valid = torch.arange(audio.shape[1], device=audio.device)[None] < lengths[:, None]  # (B, N)
    count = valid.sum(dim=1, keepdim=True).clamp(min=1)
    mean = (audio * valid).sum(dim=1, keepdim=True) / count
    variance = ((audio - mean).square() * valid).sum(dim=1, keepdim=True) / count
    return ((audio - mean) / (variance + eps).sqrt()).masked_fill(~valid, 0.0)
