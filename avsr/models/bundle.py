"""Inference bundles: weights + model config + tokenizer in one file that loads without pickled code.

A bundle is a ``torch.save`` of plain containers (dicts, lists, strings, numbers, tensors), so
``torch.load(..., weights_only=True)`` reads it; a file that needs any other Python object is
refused rather than executed. It names its model family and carries the model's
:class:`~avsr.preprocessing.Preprocessing` (bundles made before either existed load as the gated
CTC model, with the values those models were trained with).

:func:`save_bundle` writes one; :func:`avsr.models.loader.load_model` reads it (and checkpoints and
ONNX graphs). The loader's names are importable from here too.
"""

from __future__ import annotations

from pathlib import Path

import torch

from avsr.data.tokenizer import CharTokenizer
from avsr.files import atomic_path
from avsr.models.av_model import AVSRModel
from avsr.models.loader import (BUNDLE_FORMAT, DEFAULT_FAMILY, EMBEDDED_MODELS, BundleError, LoadedModel, load_bundle,
                                load_model, model_id)

__all__ = ["BUNDLE_FORMAT", "EMBEDDED_MODELS", "BundleError", "LoadedModel", "load_bundle", "load_model", "model_id",
           "save_bundle"]


def save_bundle(path: str | Path, model: AVSRModel, tokenizer=CharTokenizer(), metadata: dict | None = None,
                half: bool = False) -> Path:
    """Write ``model`` (of any family: the gated CTC model, or an :class:`~avsr.models.e2e_network.E2ENetwork`)
    and its tokenizer (characters, or a SentencePiece model) as a bundle, atomically. ``half`` stores float
    weights as float16."""
    path = Path(path)
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in model.state_dict().items()}
    config = model.saved_config() if hasattr(model, "saved_config") else model.config.to_dict()
    stored = tokenizer.to_dict() if hasattr(tokenizer, "to_dict") else tokenizer.characters
    payload = {"format": BUNDLE_FORMAT, "family": getattr(model, "family", DEFAULT_FAMILY), "config": config,
               "tokenizer": stored, "preprocessing": model.preprocessing.to_dict(), "state_dict": state,
               "metadata": {k: str(v) for k, v in (metadata or {}).items()}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path
