"""The one model loader: bundles, training checkpoints and model families through ``load_model``."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from avsr.errors import AvsrError
from avsr.models.av_model import AVSRModel, ModelConfig
from avsr.models.bundle import save_bundle
from avsr.models.loader import FAMILIES, BundleError, load_model
from avsr.models.onnx import OnnxError
from avsr.preprocessing import Preprocessing

SMALL = ModelConfig(dim=32, num_heads=2, ffn_dim=64, audio_layers=1, video_layers=1, fusion_layers=1,
                    video_channels=(8, 16))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A checkpoint written by Lightning itself, of a module built from Python (so its hyperparameters
    hold a Preprocessing object, not a dict as from a YAML config)."""
    import lightning as L

    from avsr.training.lightning_module import AVSRLightning

    path = tmp_path_factory.mktemp("ckpt") / "small.ckpt"
    module = AVSRLightning(model=SMALL, preprocessing=Preprocessing(crop_size=80, video_norm="utterance"))
    trainer = L.Trainer(logger=False, enable_checkpointing=False, accelerator="cpu", enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)
    return path, module.model


def test_a_training_checkpoint_loads_as_lightning_loads_it_without_lightning(checkpoint, monkeypatch):
    path, trained = checkpoint
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "avsr.training", "avsr.training.lightning_module"):
        monkeypatch.setitem(sys.modules, name, None)  # importing any of them now fails
    loaded = load_model(path)
    assert loaded.network.config == trained.config == SMALL
    assert loaded.network.preprocessing == trained.preprocessing == Preprocessing(crop_size=80, video_norm="utterance")
    ours, theirs = loaded.network.state_dict(), trained.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert not loaded.network.training and loaded.id.startswith("small@")


def test_a_bundle_names_its_family_and_a_new_family_is_one_entry(tmp_path, monkeypatch):
    path = save_bundle(tmp_path / "m.pt", AVSRModel(SMALL))
    assert torch.load(path, weights_only=True)["family"] == "avsr-ctc"
    assert load_model(path).network.config == SMALL

    class Scaler(nn.Module):  # a made-up family: one weight vector of the saved size
        def __init__(self, size: int) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(size))

    payload = {"format": "avsr-bundle-1", "family": "scaler", "config": {"size": 3}, "tokenizer": " ab",
               "state_dict": {"weight": torch.tensor([1.0, 2.0, 3.0])}, "metadata": {"note": "made up"}}
    torch.save(payload, tmp_path / "scaler.pt")
    with pytest.raises(BundleError, match=r"scaler.pt: a model of the family 'scaler'.*upgrade avsr"):
        load_model(tmp_path / "scaler.pt")
    monkeypatch.setitem(FAMILIES, "scaler", lambda config, preprocessing, source: Scaler(**config))
    loaded = load_model(tmp_path / "scaler.pt")
    assert isinstance(loaded.network, Scaler) and loaded.network.weight.tolist() == [1.0, 2.0, 3.0]
    assert loaded.tokenizer.vocab_size == 4 and loaded.metadata == {"note": "made up"}


def test_loader_errors_are_the_projects_errors(tmp_path):
    assert issubclass(BundleError, AvsrError) and issubclass(BundleError, ValueError)
    assert issubclass(OnnxError, AvsrError) and issubclass(OnnxError, ValueError)
    with pytest.raises(BundleError, match="missing.ckpt: checkpoint not found") as caught:
        load_model(tmp_path / "missing.ckpt")
    assert caught.value.exit_code == 2
    torch.save({"state_dict": {}}, tmp_path / "foreign.ckpt")  # a checkpoint, but not of this project
    with pytest.raises(BundleError, match="foreign.ckpt: not a training checkpoint of avsr"):
        load_model(tmp_path / "foreign.ckpt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(BundleError, match="other.pt: not an avsr bundle"):
        load_model(tmp_path / "other.pt")
