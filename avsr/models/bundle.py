"""Inference bundles: weights + model config + tokenizer in one file that loads without pickled code.

A bundle is a ``torch.save`` of plain containers (dicts, lists, strings, numbers, tensors), so
``torch.load(..., weights_only=True)`` reads it; a file that needs any other Python object is
refused rather than executed. It carries the model's :class:`~avsr.preprocessing.Preprocessing`
(bundles made before it existed load with the values those models were trained with).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from avsr.data.tokenizer import CharTokenizer
from avsr.files import atomic_path
from avsr.models.av_model import AVSRModel, ModelConfigError, model_config
from avsr.preprocessing import Preprocessing, PreprocessingError

BUNDLE_FORMAT = "avsr-bundle-1"


class BundleError(ValueError):
    """A file that is not a usable avsr bundle."""


def save_bundle(path: str | Path, model: AVSRModel, tokenizer: CharTokenizer = CharTokenizer(),
                metadata: dict | None = None, half: bool = False) -> Path:
    """Write ``model`` as a bundle (atomically). ``half`` stores float weights as float16."""
    path = Path(path)
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in model.state_dict().items()}
    payload = {"format": BUNDLE_FORMAT, "config": model.config.to_dict(), "tokenizer": tokenizer.characters,
               "preprocessing": model.preprocessing.to_dict(), "state_dict": state,
               "metadata": {k: str(v) for k, v in (metadata or {}).items()}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_bundle(path: str | Path, device: str = "cpu") -> tuple[AVSRModel, CharTokenizer, dict]:
    """``(model in eval mode, tokenizer, metadata)``; :class:`BundleError` for anything else."""
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"{path}: model bundle not found; check the path")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # weights_only refuses pickled code with an UnpicklingError
        raise BundleError(f"{path}: not a safe avsr bundle ({error.__class__.__name__}); bundles hold only "
                          "weights and plain data — re-export it with avsr.models.bundle.save_bundle") from None
    if not isinstance(payload, dict) or payload.get("format") != BUNDLE_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else "?"
        raise BundleError(f"{path}: not an avsr bundle (format {found}); a Lightning checkpoint is converted with "
                          "`avsr export`")
    try:
        model = AVSRModel(model_config(dict(payload["config"]), str(path)),
                          Preprocessing.from_dict(payload.get("preprocessing")))
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()})
    except PreprocessingError as error:
        raise BundleError(f"{path}: {error}") from None
    except ModelConfigError as error:  # a retired option on: its own one-line reason
        if str(error).startswith(f"{path}:"):
            raise
        raise BundleError(f"{path}: {error}") from None
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        reason = str(error).splitlines()[0] if str(error) else error.__class__.__name__
        raise BundleError(f"{path}: a damaged or mismatched avsr bundle ({reason}); re-export it with avsr export "
                          "from its checkpoint") from None
    return model.to(device).eval(), CharTokenizer(payload["tokenizer"]), payload.get("metadata", {})


EMBEDDED_MODELS = {
    # Trained on the synthetic GRID corpus only (see RESULTS.md): it will not transcribe real people.
    "synth-grid-tiny": Path(__file__).resolve().parent.parent / "assets" / "synth-grid-tiny.pt",
}


@dataclass
class LoadedModel:
    """A model ready for inference: ``network`` (eval mode), its tokenizer and metadata, and ``id``
    (``<name>@<first 12 hex digits of the bundle's SHA-256>``, recorded in every transcript)."""

    network: AVSRModel
    tokenizer: CharTokenizer
    metadata: dict
    id: str


BACKENDS = ("torch", "onnx")


def load_model(name_or_path: str | Path, device: str = "cpu", backend: str | None = None) -> LoadedModel:
    """A bundled model by name (``"synth-grid-tiny"``) or a bundle file by path; or, with
    ``backend="onnx"`` (the default for a path ending in ``.onnx``), graphs from ``avsr export MODEL
    model.onnx`` run by ONNX Runtime (:class:`avsr.models.onnx.OnnxNetwork`)."""
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
        from avsr.models.onnx import load_onnx

        return load_onnx(path, device)
    network, tokenizer, metadata = load_bundle(path, device)
    return LoadedModel(network, tokenizer, metadata, model_id(path))


def model_id(path: str | Path) -> str:
    """``<stem>@<first 12 hex digits of the file's SHA-256>``: what transcripts record of their model."""
    return f"{Path(path).stem}@{hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]}"
