"""``avsr import auto-avsr``: a checkpoint of auto_avsr's model zoo (github.com/mpc001/auto_avsr: the ``vsr_*`` and
``asr_*`` files of its LRS3 models, and the audio-visual ``avsr_*`` file of its v1.0.0 release) as an avsr bundle
of the ``auto-avsr`` family (:mod:`avsr.models.e2e_network`), with the SentencePiece tokenizer inside.

The checkpoint is read with ``torch.load(weights_only=True)``: no pickled code runs.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import torch

from avsr.data.spm_tokenizer import SentencePieceTokenizer, parse_units
from avsr.errors import AvsrError
from avsr.models.bundle import save_bundle
from avsr.models.e2e import CheckpointLayoutError, convert_auto_avsr
from avsr.models.e2e_network import Decoding, E2ENetwork, auto_avsr_preprocessing

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "auto_avsr"


class CheckpointFileError(AvsrError, ValueError):
    """A file that cannot be read as a PyTorch checkpoint (missing, truncated, not one, or holding code)."""


def auto_avsr_tokenizer() -> SentencePieceTokenizer:
    """auto_avsr's unigram 5000 SentencePiece model and units (shipped in avsr/assets/auto_avsr, Apache-2.0)."""
    model = gzip.decompress((ASSETS / "unigram5000.model.gz").read_bytes())
    units = gzip.decompress((ASSETS / "unigram5000_units.txt.gz").read_bytes()).decode("utf-8")
    return SentencePieceTokenizer(model, tuple(parse_units(units, "auto_avsr's units list")))


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
    digest = hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()
    save_bundle(output, network, tokenizer, half=half,
                metadata={"source": Path(checkpoint).name, "source_sha256": digest, "rel_pos": rel_pos,
                          "imported_from": "auto_avsr (github.com/mpc001/auto_avsr)"})
    return network.eval()
