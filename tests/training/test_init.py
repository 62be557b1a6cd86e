"""Where training starts: the weights of stream models or of a whole model (``model.init``), and
checkpoints of every version read back (older argument layouts, retired options off or refused)."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path
from unittest import mock

import pytest
import torch
import yaml

from avsr.errors import AvsrError
from avsr.models.av_model import RETIRED_OPTIONS, AVSRModel, ModelConfig, ModelConfigError
from avsr.models.bundle import load_bundle, save_bundle
from avsr.preprocessing import Preprocessing
from avsr.train import AVSRCLI
from avsr.training.init import InitOptions, load_stream_model
from avsr.training.lightning_module import AVSRLightning
from avsr.training.losses import LossOptions

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"dim": 32, "num_heads": 2, "ffn_dim": 64, "audio_layers": 1, "video_layers": 1, "video_channels": (8, 16)}


def stream_bundle(path: Path, modalities: str, seed: int, **sizes) -> Path:
    torch.manual_seed(seed)
    return save_bundle(path, AVSRModel(ModelConfig(**(SMALL | {"modalities": modalities} | sizes))))


def test_av_training_starts_from_stream_models_and_refuses_ones_that_do_not_fit(tmp_path):
    audio = stream_bundle(tmp_path / "audio.pt", "audio", seed=1)
    video = stream_bundle(tmp_path / "video.pt", "video", seed=2)
    config = ModelConfig(**SMALL)
    module = AVSRLightning(config, init=InitOptions(audio=str(audio), video=str(video)))
    module.setup("fit")
    state = module.model.state_dict()
    for path, prefixes in ((audio, ("audio_encoder.", "audio_head.")), (video, ("video_encoder.", "video_head."))):
        source = load_bundle(path)[0].state_dict()
        copied = [k for k in source if k.startswith(prefixes)]
        assert copied and all(torch.equal(state[k], source[k]) for k in copied)
    assert module._frozen == []  # nothing held without freeze_streams_steps

    with pytest.raises(ValueError, match=r"video\.pt: a video model has no audio stream"):
        AVSRLightning(config, init=InitOptions(audio=str(video))).setup("fit")
    wide = stream_bundle(tmp_path / "wide.pt", "video", seed=3, video_channels=(8, 24))
    with pytest.raises(ValueError, match=r"wide\.pt: its video stream does not fit this model .*\(8, 24|24"):
        AVSRLightning(config, init=InitOptions(video=str(wide))).setup("fit")
    with pytest.raises(ValueError, match=r"video\.pt: its video stream was trained on crops prepared as"):
        AVSRLightning(config, preprocessing=Preprocessing(crop_size=80),
                      init=InitOptions(video=str(video))).setup("fit")
    with pytest.raises(ValueError, match=r"init\.video=.*video\.pt: this audio model has no video stream"):
        AVSRLightning(ModelConfig(**SMALL, modalities="audio"), init=InitOptions(video=str(video))).setup("fit")
    with pytest.raises(ValueError, match="freeze_streams_steps=-1 must be 0 or more"):
        InitOptions(freeze_streams_steps=-1)


def test_fine_tuning_starts_from_every_weight_of_a_model_with_the_same_settings(tmp_path):
    config = ModelConfig(**SMALL, fusion="xattn", xattn_window=2)
    trained = stream_bundle(tmp_path / "trained.pt", "av", seed=4, fusion="xattn", xattn_window=2)
    module = AVSRLightning(config, init=InitOptions(model=str(trained), freeze_streams_steps=5))
    module.setup("fit")
    source = load_bundle(trained)[0].state_dict()
    assert all(torch.equal(module.model.state_dict()[k], v) for k, v in source.items())
    assert module._frozen == ["audio_encoder", "video_encoder"]

    with pytest.raises(ValueError, match=r"trained\.pt: that model is not this one \(fusion='xattn' there, 'gate' here"):
        AVSRLightning(ModelConfig(**SMALL), init=InitOptions(model=str(trained))).setup("fit")
    with pytest.raises(ValueError, match=r"trained\.pt: it was trained on crops prepared as"):
        AVSRLightning(config, preprocessing=Preprocessing(crop_size=80),
                      init=InitOptions(model=str(trained))).setup("fit")


def test_a_fine_tune_may_normalise_the_crops_otherwise_and_says_so(tmp_path, capsys):
    """Crops cut the same way but normalised otherwise (video_norm): the weights are copied and the
    change is printed, so a fine-tune can move a model to another normalisation."""
    config = ModelConfig(**SMALL)
    trained = stream_bundle(tmp_path / "trained.pt", "av", seed=4)
    module = AVSRLightning(config, preprocessing=Preprocessing(video_norm="utterance_moving"),
                           init=InitOptions(model=str(trained)))
    module.setup("fit")
    source = load_bundle(trained)[0].state_dict()
    assert all(torch.equal(module.model.state_dict()[k], v) for k, v in source.items())
    assert module.model.preprocessing.video_norm == "utterance_moving"
    warning = capsys.readouterr().err
    assert "trained.pt: it was trained with video_norm=global" in warning and "video_norm=utterance_moving" in warning


def cli_checkpoint(tmp_path: Path) -> Path:
    """A checkpoint written by the training CLI (seeded weights, nothing trained), with some losses and
    a starting point set so that their layout in the checkpoint is exercised."""
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump({"model": {"model": SMALL | {"video_channels": [8, 16]},
                                                "losses": {"gate_snr_supervision": 0.5, "video_aux_weight": 0.2},
                                                "init": {"audio": "audio.pt", "freeze_streams_steps": 7}},
                                      "trainer": {"default_root_dir": str(tmp_path)}}))
    with mock.patch.object(sys, "argv", ["train.py"]):
        cli = AVSRCLI(["--config", str(ROOT / "configs" / "synth_grid_tiny.yaml"), "--config", str(config),
                       "--seed_everything=0"], run=False)
    cli.trainer.strategy.connect(cli.model)
    cli.trainer.save_checkpoint(tmp_path / "new.ckpt")
    return tmp_path / "new.ckpt"


def as_before(hparams: dict, **values) -> dict:
    """``hyper_parameters`` as checkpoints stored them before 2026-12-07: one flat list of arguments,
    with the retired ones (off unless ``values`` say otherwise)."""
    init = hparams["init"]
    return ({"model": hparams["model"] | dict.fromkeys(RETIRED_OPTIONS, False), "learning_rate": 0.002,
             "weight_decay": 0.01, "warmup_steps": 200, **hparams["losses"], "preprocessing": hparams["preprocessing"],
             "init_audio": init["audio"], "init_video": init["video"], "align_teacher": None, "align_weight": 0.5,
             "freeze_streams_steps": init["freeze_streams_steps"], "gate_supervision": 0.0, "init_model": init["model"],
             "_instantiator": "lightning.pytorch.cli.instantiate_module"} | values)


def test_an_old_checkpoint_loads_with_its_retired_options_off_and_is_refused_with_one_on(tmp_path):
    new = cli_checkpoint(tmp_path)
    checkpoint = torch.load(new, weights_only=True)  # plain data: the groups are stored as dicts
    hparams = checkpoint["hyper_parameters"]
    assert hparams["losses"] == asdict(LossOptions(gate_snr_supervision=0.5, video_aux_weight=0.2))
    assert hparams["init"] == asdict(InitOptions(audio="audio.pt", freeze_streams_steps=7))
    current = AVSRLightning.load_from_checkpoint(new)

    def old_checkpoint(name: str, **values) -> Path:
        torch.save(checkpoint | {"hyper_parameters": as_before(hparams, **values)}, tmp_path / name)
        return tmp_path / name

    old = AVSRLightning.load_from_checkpoint(old_checkpoint("old.ckpt"))
    assert old.model.config == current.model.config == ModelConfig(**SMALL)
    assert old.losses == current.losses and old.init == current.init and old.preprocessing == current.preprocessing
    assert all(torch.equal(v, current.state_dict()[k]) for k, v in old.state_dict().items())
    stream = load_stream_model(tmp_path / "old.ckpt")  # what init.audio / init.video / init.model read
    assert all(torch.equal(v, current.model.state_dict()[k]) for k, v in stream.state_dict().items())

    refused = {"gate_supervision": ("on.ckpt: gate_supervision=0.5, an option retired", {"gate_supervision": 0.5}),
               "align_teacher": ("on.ckpt: align_teacher='audio.pt', an option retired", {"align_teacher": "audio.pt"}),
               "gate_agreement_cue": ("on.ckpt: gate_agreement_cue=True, an option retired",
                                      {"model": as_before(hparams)["model"] | {"gate_agreement_cue": True}})}
    for option, (message, values) in refused.items():
        path = old_checkpoint("on.ckpt", **values)
        with pytest.raises(ModelConfigError) as error:
            AVSRLightning.load_from_checkpoint(path)
        assert str(error.value).startswith(f"{tmp_path}/{message}") and "\n" not in str(error.value), option
    with pytest.raises(AvsrError, match="on.ckpt: gate_agreement_cue=True, an option retired"):
        load_stream_model(path)  # the model itself cannot be built
