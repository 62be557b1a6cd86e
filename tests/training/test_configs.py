"""The training configs: every file parses (the stage recipes on their base, the ablation layered on
synth_grid_tiny.yaml), and the model's size presets: the ``*_base.yaml`` configs name the ``base``
preset instead of copying its numbers, a size a config sets wins, and what is saved (the configuration
beside the logs, checkpoints, bundles) names every size. Parsed in-process with the project's
LightningCLI, without building a model or reading data."""

from __future__ import annotations

import functools
import re
import runpy
import sys
import warnings
from dataclasses import replace
from pathlib import Path
from unittest import mock

import pytest
import torch
import yaml

from avsr.models.av_model import PRESETS, AVSRModel, ModelConfig, base, tiny
from avsr.models.bundle import load_bundle, load_model, save_bundle
from avsr.train import AVSRCLI
from avsr.training.lightning_module import AVSRLightning

ROOT = Path(__file__).resolve().parents[2]
BASE_CONFIGS = sorted((ROOT / "configs").glob("*_base.yaml"))
LRS3_STAGES = sorted((ROOT / "configs" / "stages").glob("lrs3_*.yaml"))
SYNTH = ROOT / "configs" / "synth_grid_tiny.yaml"
SMALL = {"dim": 32, "num_heads": 2, "ffn_dim": 64, "audio_layers": 1, "video_layers": 1, "video_channels": (8, 16)}


class _ParseOnly(AVSRCLI):
    """The training CLI up to the resolved configuration: nothing is built, no data is read."""

    def instantiate_classes(self) -> None:
        pass


def parse(*args: str) -> _ParseOnly:
    with mock.patch.object(sys, "argv", ["train.py"]):  # the arguments are these, not pytest's
        return _ParseOnly([*args, "--seed_everything=false"], run=False)  # (and this test process is not seeded)


@functools.cache
def _parser():
    return parse("--config", str(SYNTH)).parser


def printed(*configs: Path) -> dict:
    """What ``train.py fit --config A --config B ... --print_config`` prints (the sizes a preset fills in
    left null), parsed in-process: nothing is seeded, built or read."""
    parser = _parser()
    config = parser.parse_args([a for c in configs for a in ("--config", str(c))])
    return yaml.safe_load(parser.dump(config, skip_unset=False))  # as --print_config dumps it


def resolved_model(cli: _ParseOnly) -> ModelConfig:
    return ModelConfig(**cli.config.model.model.as_dict())


def model_section(path: Path) -> dict:
    return yaml.safe_load(path.read_text())["model"]["model"]


@pytest.mark.parametrize("config", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_config_files_parse(config):
    given = printed(config)
    assert given["model"]["model"] is not None and given["data"]["train_manifests"]


@pytest.mark.parametrize("stage", sorted((ROOT / "configs" / "stages").glob("*.yaml")), ids=lambda p: p.name)
def test_stage_configs_parse_on_their_base(stage):
    """The three-stage recipes (synthetic corpus and LRS3), each on its base config."""
    base = ROOT / "configs" / ("lrs3_base.yaml" if stage.name.startswith("lrs3") else "synth_grid_tiny.yaml")
    if stage.stem.endswith("_tune"):  # a fine-tune, on top of the configs its header's command names
        layered = re.findall(r"--config (configs/\S+\.yaml)", stage.read_text().split("\ntrainer:")[0])
        assert layered[-1] == f"configs/stages/{stage.name}" and len(layered) > 2, "the header's command"
        resolved = printed(*(ROOT / path for path in layered))["model"]
        assert resolved["init"]["model"] and not resolved["init"]["audio"] and not resolved["init"]["video"]
        return
    resolved = printed(base, stage)["model"]
    if "av" in stage.stem.split("_"):
        assert resolved["init"]["audio"] and resolved["init"]["video"] and resolved["model"]["modalities"] == "av"
    else:
        assert resolved["model"]["modalities"] == stage.stem.split("_")[-1]


def test_the_package_entry_point_prints_the_config(capsys):
    """``python -m avsr.train fit ... --print_config``, run as that command runs it, prints what is parsed above."""
    stage = ROOT / "configs" / "stages" / "av.yaml"
    argv = ["avsr.train", "fit", "--config", str(SYNTH), "--config", str(stage), "--print_config"]
    with mock.patch.object(sys, "argv", argv), warnings.catch_warnings(), pytest.raises(SystemExit) as exit:
        warnings.simplefilter("ignore", RuntimeWarning)  # runpy: avsr.train is already imported by this module
        runpy.run_module("avsr.train", run_name="__main__")
    assert exit.value.code in (0, None)
    out = yaml.safe_load(capsys.readouterr().out)
    fit_only = {"ckpt_path", "weights_only"}  # arguments of the fit subcommand itself
    assert {k: v for k, v in out.items() if k not in fit_only} == printed(SYNTH, stage)


@pytest.mark.parametrize("ablation", sorted((ROOT / "configs" / "ablation").glob("*.yaml")), ids=lambda p: p.name)
def test_ablation_configs_change_only_the_fusion(ablation):
    """Each ablation config layered on synth_grid_tiny.yaml: same data, schedule and seed, its own fusion, and
    a budget of 10 epochs counted in steps instead of the wall-clock cap."""
    base = printed(SYNTH)
    layered = printed(SYNTH, ablation)
    assert layered["data"] == base["data"] and layered["seed_everything"] == base["seed_everything"] == 0
    assert layered["trainer"]["max_epochs"] == base["trainer"]["max_epochs"] and layered["trainer"]["max_time"] is None
    stops = [c for c in layered["trainer"]["callbacks"] if c["class_path"].endswith("StopAfterEpochs")]
    assert [c["init_args"]["epochs"] for c in stops] == [10]
    assert layered["trainer"]["default_root_dir"] == f"outputs/ablation/{ablation.stem}"
    changed = {k for k, v in layered["model"]["model"].items() if base["model"]["model"].get(k) != v}
    expected = {"gate": set(), "concat": {"fusion"}, "sum": {"fusion"}, "xattn": {"fusion"},
                "audio": {"modalities", "audio_layers"}}
    assert changed == expected[ablation.stem]


def test_there_are_five_base_configs():
    assert [p.name for p in BASE_CONFIGS] == ["grid_base.yaml", "lrs2_base.yaml", "lrs3_base.yaml", "lrw_base.yaml",
                                              "vox2_lrs3_base.yaml"]


@pytest.mark.parametrize("config", BASE_CONFIGS, ids=lambda p: p.name)
def test_base_config_names_the_preset_instead_of_copying_its_numbers(config):
    given = model_section(config)
    assert given["preset"] == "base"
    assert not set(given) & set(PRESETS["base"]), "a size copied from the preset; name only what differs"


@pytest.mark.parametrize("config", BASE_CONFIGS, ids=lambda p: p.name)
def test_base_config_resolves_to_the_base_preset(config):
    given = model_section(config)
    cli = parse("--config", str(config))
    expected = replace(base(given.get("fusion", "gate")), modalities=given.get("modalities", "av"))
    assert resolved_model(cli) == expected
    # What SaveConfigCallback writes beside the logs and the checkpoint's hyperparameters are made of: numbers.
    saved = yaml.safe_load(cli.parser.dump(cli.config))["model"]["model"]
    assert saved == expected.to_dict() | {"preset": "base"}


@pytest.mark.parametrize("config", BASE_CONFIGS, ids=lambda p: p.name)
def test_a_size_on_the_command_line_wins_over_the_preset(config):
    model = resolved_model(parse("--config", str(config), "--model.model.dim", "256"))
    assert model.dim == 256
    assert replace(model, dim=base().dim) == replace(base(model.fusion), modalities=model.modalities)


def test_a_size_in_a_later_config_file_wins_over_the_preset(tmp_path):
    override = tmp_path / "four_heads.yaml"
    override.write_text(yaml.safe_dump({"model": {"model": {"num_heads": 4, "video_channels": [32, 64]}}}))
    model = resolved_model(parse("--config", str(ROOT / "configs" / "lrs3_base.yaml"), "--config", str(override)))
    assert model == replace(base(), num_heads=4, video_channels=(32, 64))


@pytest.mark.parametrize("stage", LRS3_STAGES, ids=lambda p: p.name)
def test_lrs3_stage_keeps_the_base_preset_and_changes_only_its_own_fields(stage):
    model = resolved_model(parse("--config", str(ROOT / "configs" / "lrs3_base.yaml"), "--config", str(stage)))
    assert model == replace(base(), **model_section(stage))


def test_a_config_without_a_preset_is_tiny():
    model = resolved_model(parse("--config", str(ROOT / "configs" / "synth_grid_tiny.yaml")))
    assert model == tiny() and model.to_dict() == tiny().to_dict()


def test_model_config_fills_only_the_unset_sizes_from_its_preset():
    config = ModelConfig(preset="base", dim=256, fusion="concat")
    assert config.dim == 256 and config.fusion == "concat"
    assert replace(config, dim=512, fusion="gate") == base()
    assert ModelConfig() == tiny() and ModelConfig().video_channels == PRESETS["tiny"]["video_channels"]
    assert ModelConfig(video_channels=[8, 16]).video_channels == (8, 16)  # a list from YAML becomes a tuple
    with pytest.raises(ValueError, match="preset='huge'; use one of tiny, base, auto-avsr"):
        ModelConfig(preset="huge")


def test_a_saved_config_holds_every_size_and_no_preset_name():
    saved = ModelConfig(preset="base", dim=256).to_dict()
    assert "preset" not in saved and None not in saved.values()
    assert ModelConfig(**saved) == ModelConfig(preset="base", dim=256)  # read back as a config made before presets


def test_checkpoint_hyperparameters_hold_the_resolved_sizes():
    module = AVSRLightning(model=ModelConfig(preset="tiny", **SMALL))
    assert module.hparams.model == ModelConfig(**SMALL).to_dict()
    # A checkpoint written before presets stores a full dict without one; it builds the same network.
    old = dict(module.hparams.model)
    assert AVSRLightning(model=old).model.config == module.model.config
    assert AVSRLightning().hparams.model == tiny().to_dict()


def test_a_checkpoint_of_the_training_cli_holds_the_resolved_sizes_and_loads(tmp_path):
    small = tmp_path / "small_base.yaml"  # kernel_size and fusion_layers from base, the other sizes small
    small.write_text(yaml.safe_dump({"model": {"model": {"preset": "base", **SMALL, "video_channels": [8, 16]}},
                                     "trainer": {"default_root_dir": str(tmp_path)}}))
    with mock.patch.object(sys, "argv", ["train.py"]):
        cli = AVSRCLI(["--config", str(ROOT / "configs" / "synth_grid_tiny.yaml"), "--config", str(small),
                       "--seed_everything=false"], run=False)
    expected = ModelConfig(preset="base", **SMALL)
    assert cli.model.model.config == expected and expected.kernel_size == PRESETS["base"]["kernel_size"]
    cli.trainer.strategy.connect(cli.model)
    cli.trainer.save_checkpoint(tmp_path / "last.ckpt")
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)["hyper_parameters"]["model"]
    assert saved == expected.to_dict()
    assert AVSRLightning.load_from_checkpoint(tmp_path / "last.ckpt", map_location="cpu").model.config == expected


def test_bundle_of_a_preset_model_holds_the_numbers(tmp_path):
    model = AVSRModel(ModelConfig(preset="tiny", **SMALL))
    path = save_bundle(tmp_path / "small.pt", model)
    stored = torch.load(path, weights_only=True)["config"]
    assert stored == model.config.to_dict() and "preset" not in stored
    assert load_bundle(path)[0].config == model.config


def test_an_embedded_bundle_made_before_presets_still_loads():
    network = load_model("synth-grid-tiny").network
    assert network.config.dim == PRESETS["tiny"]["dim"] and network.config.preset is None
