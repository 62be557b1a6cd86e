"""The one door to a trained model: :func:`load_model` reads an embedded model by name, a bundle
(``avsr export``, :func:`~avsr.models.bundle.save_bundle`), a Lightning checkpoint of
``python train.py fit`` (``.ckpt``) or the ONNX graphs of ``avsr export MODEL model.onnx``, and
returns a :class:`LoadedModel`.

A bundle or checkpoint is read with ``torch.load(weights_only=True)`` (no pickled code runs) into
a :class:`SavedModel` by the first of :data:`READERS` that knows its contents; the network is then
built by its family's entry in :data:`FAMILIES` and given the weights. Another model family is one
more entry there (a function from the saved config and preprocessing to an ``nn.Module``, like a
preset factory); another kind of file (another project's checkpoint) is one more reader.
"""

from __future__ import annotations

import pathlib
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from avsr.data.tokenizer import CharTokenizer
from avsr.data.tokenizers import named_tokenizer
from avsr.errors import AvsrError
from avsr.files import file_sha256
from avsr.models.av_model import AVSRModel, model_config
from avsr.models.e2e_network import FAMILY as E2E_FAMILY
from avsr.models.e2e_network import auto_avsr_network
from avsr.preprocessing import Preprocessing

BUNDLE_FORMAT = "avsr-bundle-1"
DEFAULT_FAMILY = "avsr-ctc"  # the family of a file that names none (every file made before families were named)
BACKENDS = ("torch", "onnx")
EMBEDDED_MODELS = {
    # Trained on the synthetic GRID corpus only (see RESULTS.md): it will not transcribe real people.
    "synth-grid-tiny": Path(__file__).resolve().parent.parent / "assets" / "synth-grid-tiny.pt",
}


class BundleError(AvsrError, ValueError):
    """A file that is not a usable avsr model (bundle or checkpoint), or a backend that cannot run it."""


@dataclass
class LoadedModel:
    """A model ready for inference: ``network`` (eval mode), its tokenizer and metadata, and ``id``
    (``<name>@<first 12 hex digits of the file's SHA-256>``, recorded in every transcript)."""

    network: nn.Module
    tokenizer: CharTokenizer
    metadata: dict
    id: str


@dataclass
class SavedModel:
    """A model as a file holds it, before its network is built: what every reader gives."""

    family: str
    config: dict  # the family's constructor arguments as saved (plain values)
    preprocessing: dict | None  # Preprocessing.to_dict(); None: the spec of models made before it existed
    state_dict: dict[str, torch.Tensor]
    tokenizer: str | dict | None = None  # a CharTokenizer's characters, a SentencePieceTokenizer's dict; None: default
    metadata: dict = field(default_factory=dict)
    kind: str = "bundle"  # what the file is, for messages: bundle | checkpoint


def avsr_ctc(config: dict, preprocessing: Preprocessing, source: str) -> AVSRModel:
    """The reliability-gated audio-visual CTC model (:class:`~avsr.models.av_model.AVSRModel`) of the
    settings a file saved (``source`` names it in errors)."""
    return AVSRModel(model_config(config, source), preprocessing)


# Each family: (saved config, preprocessing, source) -> the untrained network.
FAMILIES: dict[str, Callable[[dict, Preprocessing, str], nn.Module]] = {DEFAULT_FAMILY: avsr_ctc,
                                                                        E2E_FAMILY: auto_avsr_network}
# Families whose networks hold nothing a file does not (no tensor made at construction, as the tiny model's
# spectrogram basis): built on the meta device and given the file's tensors.
BUILT_EMPTY = {E2E_FAMILY}


def bundle_contents(payload) -> SavedModel | None:
    """A bundle's parts (:func:`~avsr.models.bundle.save_bundle`); None for anything else."""
    if not isinstance(payload, dict) or payload.get("format") != BUNDLE_FORMAT:
        return None
    return SavedModel(payload.get("family", DEFAULT_FAMILY), payload.get("config"), payload.get("preprocessing"),
                      payload.get("state_dict", {}), payload.get("tokenizer"), payload.get("metadata", {}))


def checkpoint_contents(payload) -> SavedModel | None:
    """A Lightning checkpoint of :class:`~avsr.training.lightning_module.AVSRLightning`: the sizes and
    preprocessing in its ``hyper_parameters``, the network's weights under ``model.`` in its
    ``state_dict`` (read here without Lightning); None for anything else."""
    if not isinstance(payload, dict) or not {"pytorch-lightning_version", "hyper_parameters"} <= payload.keys():
        return None
    hparams = payload["hyper_parameters"]
    spec = hparams.get("preprocessing")
    weights = {k.removeprefix("model."): v for k, v in payload.get("state_dict", {}).items() if k.startswith("model.")}
    name = hparams.get("tokenizer", "characters")  # a name of avsr.data.tokenizers.TOKENIZERS
    tokenizer = None if name == "characters" else named_tokenizer(name, "the checkpoint's tokenizer").to_dict()
    return SavedModel(DEFAULT_FAMILY, dict(hparams.get("model") or {}),  # None: the tiny preset's sizes
                      spec.to_dict() if isinstance(spec, Preprocessing) else spec, weights, tokenizer,
                      kind="checkpoint")


READERS: tuple[Callable[[object], SavedModel | None], ...] = (bundle_contents, checkpoint_contents)
# Plain objects a checkpoint's hyperparameters may hold besides containers: allowed by torch.load(weights_only=True).
SAFE_GLOBALS = [Preprocessing, pathlib.PosixPath, pathlib.WindowsPath]


def _is_checkpoint_path(path: Path) -> bool:
    return path.suffix == ".ckpt"


def read_saved(path: Path) -> SavedModel:
    """The :class:`SavedModel` in a bundle or checkpoint file; :class:`BundleError` for anything else."""
    checkpoint = _is_checkpoint_path(path)
    if not path.is_file():
        raise BundleError(f"{path}: {'checkpoint' if checkpoint else 'model bundle'} not found; check the path")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # weights_only refuses pickled code with an UnpicklingError
        damage = _damage(path, error)
        if damage:
            raise BundleError(f"{path}: the {'checkpoint' if checkpoint else 'model bundle'} is damaged ({damage}); "
                              "copy or download it again") from None
        if checkpoint:
            raise BundleError(f"{path}: not a training checkpoint of avsr ({error.__class__.__name__}); pass a "
                              ".ckpt written by python train.py fit") from None
        raise BundleError(f"{path}: not a safe avsr bundle ({error.__class__.__name__}); bundles hold only "
                          "weights and plain data — re-export it with avsr.models.bundle.save_bundle") from None
    for reader in READERS:
        saved = reader(payload)
        if saved is not None:
            return saved
    found = payload.get("format") if isinstance(payload, dict) else "?"
    if checkpoint:
        raise BundleError(f"{path}: not a training checkpoint of avsr (no hyper_parameters); pass a .ckpt written "
                          "by python train.py fit")
    raise BundleError(f"{path}: not an avsr bundle (format {found}); export one from a training checkpoint with "
                      "avsr export")


def _damage(path: Path, error: Exception) -> str | None:
    """What is wrong with a file ``torch.load`` could not read, if it was one ``torch.save`` wrote (a zip
    archive) that lost bytes: "truncated" without its directory (which a zip keeps at its end); else None."""
    if isinstance(error, pickle.UnpicklingError):  # read whole, but holds what weights_only refuses
        return None
    with path.open("rb") as handle:
        if handle.read(4) != b"PK\x03\x04":
            return None
    return "truncated" if not zipfile.is_zipfile(path) else f"{error.__class__.__name__}, unreadable entries"


def build_network(saved: SavedModel, path: Path) -> nn.Module:
    """The network of ``saved``'s family with its weights (float32), in eval mode."""
    if saved.family not in FAMILIES:
        raise BundleError(f"{path}: a model of the family {saved.family!r}, which this version of avsr does not "
                          f"know (it knows {', '.join(FAMILIES)}); upgrade avsr")
    try:
        network = _with_weights(saved, path)
    except AvsrError as error:  # a reason of the family's own (a retired option on, crops this version cannot cut)
        if str(error).startswith(f"{path}:"):
            raise
        raise BundleError(f"{path}: {error}") from None
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        reason = str(error).splitlines()[0] if str(error) else error.__class__.__name__
        fix = ("pass a .ckpt written by python train.py fit" if saved.kind == "checkpoint"
               else "re-export it with avsr export from its checkpoint")
        raise BundleError(f"{path}: a damaged or mismatched avsr {saved.kind} ({reason}); {fix}") from None
    return network.eval()


def _with_weights(saved: SavedModel, path: Path) -> nn.Module:
    """The network of ``saved`` with the file's weights (float32). A family of :data:`BUILT_EMPTY` is built
    without weights of its own (on the meta device) and given the file's tensors as they are: one copy of the
    weights in memory, not two (an imported 250 M model took 1 GB more, RESULTS.md)."""
    build, spec = FAMILIES[saved.family], Preprocessing.from_dict(saved.preprocessing)
    weights = {k: v.float() if v.is_floating_point() else v for k, v in saved.state_dict.items()}
    if saved.family not in BUILT_EMPTY:
        network = build(saved.config, spec, str(path))
        network.load_state_dict(weights)
        return network
    with torch.device("meta"):
        network = build(saved.config, spec, str(path))
    network.load_state_dict(weights, assign=True)
    return network


def load_model(name_or_path: str | Path, device: str = "cpu", backend: str | None = None) -> LoadedModel:
    """A model by name (``"synth-grid-tiny"``, :data:`EMBEDDED_MODELS`) or path: a bundle, a training
    checkpoint (``.ckpt``), or, with ``backend="onnx"`` (the default for a path ending in ``.onnx``),
    graphs from ``avsr export MODEL model.onnx`` run by ONNX Runtime (:class:`avsr.models.onnx.OnnxNetwork`).

    Raises:
        BundleError: a file that is missing or not a usable model, or a backend that cannot run it.
        avsr.models.onnx.OnnxError: an ONNX file that is not an avsr export, or no ONNX Runtime.
    """
    path = EMBEDDED_MODELS.get(str(name_or_path), Path(name_or_path))
    is_onnx = path.suffix == ".onnx"
    backend = backend or ("onnx" if is_onnx else "torch")
    if backend not in BACKENDS:
        raise BundleError(f"backend={backend!r}; use one of {', '.join(BACKENDS)}")
    if backend == "onnx" and not is_onnx:
        raise BundleError(f"{name_or_path}: the onnx backend runs exported graphs: avsr export {name_or_path} "
                          "model.onnx, then pass model.onnx")
    if backend == "torch" and is_onnx:
        raise BundleError(f"{path}: an ONNX graph runs on the onnx backend (--backend onnx), or pass the bundle it "
                          "was exported from")
    if backend == "onnx":
        from avsr.models.onnx import OnnxNetwork  # ONNX Runtime is an optional extra

        network = OnnxNetwork(path).to(device)
        return LoadedModel(network, CharTokenizer(network.info["tokenizer"]), network.info["metadata"], model_id(path))
    saved = read_saved(path)
    network = build_network(saved, path)
    return LoadedModel(network.to(device), make_tokenizer(saved.tokenizer, network, path), saved.metadata,
                       model_id(path))


def make_tokenizer(stored: str | dict | None, network: nn.Module, path: Path):
    """The tokenizer a file stored (characters, or a SentencePiece model with its units), checked against the
    network's output size."""
    if isinstance(stored, dict):
        from avsr.data.spm_tokenizer import SentencePieceTokenizer  # sentencepiece is loaded only for such models

        try:
            tokenizer = SentencePieceTokenizer.from_dict(stored)
            tokenizer.check_vocab_size(network.config.vocab_size, str(path))
        except AvsrError as error:
            raise BundleError(f"{path}: {error}") from None
        return tokenizer
    tokenizer = CharTokenizer() if stored is None else CharTokenizer(stored)
    vocab_size = getattr(getattr(network, "config", None), "vocab_size", None)
    if isinstance(vocab_size, int) and tokenizer.vocab_size != vocab_size:  # else every file would fail on its own
        raise BundleError(f"{path}: its tokenizer has {len(tokenizer.characters)} characters (+ blank: "
                          f"{tokenizer.vocab_size} tokens) but its network outputs {vocab_size}; the file is damaged "
                          "or mismatched: re-export it with avsr export from its checkpoint")
    return tokenizer


def load_bundle(path: str | Path, device: str = "cpu") -> tuple[nn.Module, CharTokenizer, dict]:
    """``(network in eval mode, tokenizer, metadata)`` of a bundle or checkpoint: :func:`load_model`'s parts."""
    loaded = load_model(path, device, backend="torch")
    return loaded.network, loaded.tokenizer, loaded.metadata


def model_id(path: str | Path) -> str:
    """``<stem>@<first 12 hex digits of the file's SHA-256>``: what transcripts record of their model."""
    return f"{Path(path).stem}@{file_sha256(path)[:12]}"  # read in blocks: a bundle can be a gigabyte
