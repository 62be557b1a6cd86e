"""``avsr import auto-avsr``: a checkpoint of auto_avsr's model zoo (github.com/mpc001/auto_avsr: the ``vsr_*`` and
``asr_*`` files of its LRS3 models, and the audio-visual ``avsr_*`` file of its v1.0.0 release) as an avsr bundle
of the ``auto-avsr`` family (:mod:`avsr.models.e2e_network`), with the SentencePiece tokenizer inside
(:func:`import_auto_avsr`); or an ASR and a VSR checkpoint as the encoders of this project's gated AV model
(:func:`import_auto_avsr_av`), to be trained with ``python train.py fit --config configs/lrs3_import_av.yaml``.

The checkpoint is read with ``torch.load(weights_only=True)``: no pickled code runs.
"""

from __future__ import annotations

from pathlib import Path

import torch

from avsr.data.spm_tokenizer import SentencePieceTokenizer
from avsr.data.tokenizers import auto_avsr_tokenizer
from avsr.errors import AvsrError
from avsr.files import file_sha256
from avsr.models.av_model import AVSRModel, ModelConfig
from avsr.models.bundle import save_bundle
from avsr.models.e2e import CheckpointLayoutError, E2EConfig, convert_auto_avsr
from avsr.models.e2e_network import Decoding, E2ENetwork, auto_avsr_preprocessing


class CheckpointFileError(AvsrError, ValueError):
    """A file that cannot be read as a PyTorch checkpoint (missing, truncated, not one, or holding code)."""


def read_checkpoint(path: str | Path) -> object:
    """What ``torch.load(path, weights_only=True)`` gives, or a one-line :class:`CheckpointFileError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointFileError(f"{path}: no such file; pass the .pth downloaded from auto_avsr's model zoo")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated zip, a text file, pickled code refused by weights_only
        reason = str(error).splitlines()[0][:160] if str(error) else error.__class__.__name__
        raise CheckpointFileError(f"{path}: not a readable PyTorch checkpoint ({reason}); download it again from "
                                  "auto_avsr's model zoo") from None


def import_auto_avsr(checkpoint: str | Path, output: str | Path, rel_pos: str = "latest",
                     decoder_heads: int | None = None, tokenizer: SentencePieceTokenizer | None = None,
                     decoding: Decoding = Decoding(), half: bool = False) -> E2ENetwork:
    """Convert ``checkpoint`` into the bundle ``output`` (written atomically) and return its network.

    Args:
        rel_pos: the relative-position variant the checkpoint was trained with (auto_avsr's zoo: ``latest``;
            see :mod:`avsr.models.e2e_encoder`); a state dict cannot tell.
        decoder_heads: the decoder's attention heads (a state dict cannot tell; default: the encoder's, as in
            every published model).
        tokenizer: default auto_avsr's unigram 5000 model (:func:`auto_avsr_tokenizer`).

    Raises:
        CheckpointFileError: the file cannot be read. CheckpointLayoutError: not a state dict of this family
            (one line naming what differs). TokenizerError: a vocabulary the tokenizer's units do not fit.
    """
    payload = read_checkpoint(checkpoint)
    tokenizer = tokenizer or auto_avsr_tokenizer()
    try:
        config, state_dict = convert_auto_avsr(payload, rel_pos, decoder_heads)
    except CheckpointLayoutError as error:
        raise CheckpointLayoutError(f"{checkpoint}: {error}") from None
    tokenizer.check_vocab_size(config.vocab_size, str(checkpoint))
    network = E2ENetwork(config, auto_avsr_preprocessing(), decoding)
    network.model.load_state_dict(state_dict)
    digest = file_sha256(checkpoint)
    save_bundle(output, network, tokenizer, half=half,
                metadata={"source": Path(checkpoint).name, "source_sha256": digest, "rel_pos": rel_pos,
                          "imported_from": "auto_avsr (github.com/mpc001/auto_avsr)"})
    return network.eval()


# The streams of the gated model that an imported checkpoint fills: E2EModel's names -> AVSRModel's.
AV_NAMES = {"audio": (("audio_stream.", "audio_encoder."), ("ctc.", "audio_head.")),
            "video": (("video_stream.", "video_encoder."), ("ctc.", "video_head."))}
WHAT = {"audio": "an ASR (asr_*.pth)", "video": "a VSR (vsr_*.pth)"}


def import_auto_avsr_av(audio: str | Path, video: str | Path, output: str | Path, fusion: str = "gate",
                        rel_pos: str = "latest", fusion_layers: int | None = None, half: bool = False,
                        seed: int = 0) -> AVSRModel:
    """The gated AV model (:class:`~avsr.models.av_model.AVSRModel`, ``encoders="auto-avsr"``, ``fusion`` gate or
    xattn) on the encoders of an ASR checkpoint (``audio``) and a VSR checkpoint (``video``) of auto_avsr, written
    as the bundle ``output`` (atomically) and returned.

    Each stream's encoder (frontend, projection, Conformer blocks) and CTC head start as the checkpoint's; the
    attention decoders are left out (the gated model is read by CTC). The fusion, the shared layers after it and
    the fused CTC head start at random (seeded by ``seed``) and are what training teaches first
    (``configs/lrs3_import_av.yaml``). The bundle carries auto_avsr's SentencePiece tokenizer (the units both
    heads emit) and its preprocessing (auto_avsr's crops; the waveform standardised per clip inside the model).

    Raises:
        CheckpointFileError: a file cannot be read. CheckpointLayoutError: not a state dict of the family, a
            checkpoint of the other stream (or of both), or two checkpoints of different sizes (the gate adds the
            streams frame by frame: one width, heads, feed-forward and kernel). TokenizerError: a vocabulary the
            tokenizer's units do not fit.
    """
    sources = {"audio": Path(audio), "video": Path(video)}
    configs, states = {}, {}
    for stream, path in sources.items():
        option = f"--{stream} {path}"
        payload = read_checkpoint(path)
        try:
            config, state_dict = convert_auto_avsr(payload, rel_pos)
        except CheckpointLayoutError as error:
            raise CheckpointLayoutError(f"{option}: {error}") from None
        if config.modality != stream:
            kind = "an audio-visual" if config.modality == "av" else WHAT[config.modality].split(" (")[0]
            raise CheckpointLayoutError(f"{option}: {kind} model's checkpoint; --{stream} takes {WHAT[stream]} "
                                        "checkpoint of auto_avsr's model zoo")
        configs[stream], states[stream] = config, state_dict
    a, v = configs["audio"], configs["video"]
    for name in ("dim", "heads", "ffn_dim", "kernel_size", "vocab_size"):
        if getattr(a, name) != getattr(v, name):
            raise CheckpointLayoutError(f"--audio {sources['audio']} has {name} {getattr(a, name)} and --video "
                                        f"{sources['video']} {getattr(v, name)}: the gate adds the two streams frame "
                                        f"by frame; import an ASR and a VSR checkpoint of the same size")
    tokenizer = auto_avsr_tokenizer()
    tokenizer.check_vocab_size(a.vocab_size, str(sources["audio"]))
    config = av_model_config(a, v, fusion, fusion_layers)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AVSRModel(config, auto_avsr_preprocessing())
    imported = {}
    for stream, names in AV_NAMES.items():
        for key, value in states[stream].items():
            for ours, theirs in names:
                if key.startswith(ours):
                    imported[theirs + key[len(ours):]] = value
    missing, unexpected = model.load_state_dict(imported, strict=False)
    assert not unexpected, unexpected  # the names above are the model's
    assert not [k for k in missing if k.startswith(("audio_encoder.", "video_encoder.")) and ".logmel." not in k]
    metadata = {"imported_from": "auto_avsr (github.com/mpc001/auto_avsr)", "rel_pos": rel_pos}
    for stream, path in sources.items():
        digest = file_sha256(path)
        metadata |= {f"{stream}_source": path.name, f"{stream}_source_sha256": digest}
    save_bundle(output, model, tokenizer, metadata=metadata, half=half)
    return model.eval()


def av_model_config(audio: E2EConfig, video: E2EConfig, fusion: str = "gate",
                    fusion_layers: int | None = None) -> ModelConfig:
    """The gated model's sizes on two imported encoders of one width: the ``auto-avsr`` preset's, with the
    encoders' own (so that a training config naming that preset fits a bundle of the published sizes)."""
    return ModelConfig(preset="auto-avsr", vocab_size=audio.vocab_size, dim=audio.dim, num_heads=audio.heads,
                       ffn_dim=audio.ffn_dim, kernel_size=audio.kernel_size, audio_layers=audio.blocks,
                       video_layers=video.blocks, fusion_layers=fusion_layers, fusion=fusion,
                       encoder_rel_pos=audio.rel_pos, dropout=audio.dropout)
