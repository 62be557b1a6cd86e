"""The gate on imported auto_avsr encoders end to end: two small checkpoints of the family in the model zoo's format
(the recipe weights of tests/fixtures/auto_avsr: 64 wide, 2 Conformer blocks, the full ResNet-18 frontends) become
one AV bundle (``avsr import auto-avsr --audio --video``), which ``python train.py fit --config
configs/lrs3_import_av.yaml`` trains on the synthetic corpus, prepared with auto_avsr's crops: with the encoders
frozen (they come out bit for bit the imported ones, the fusion and heads move) or fine-tuned (they move too); the
checkpoint exports to a bundle that transcribes a clip."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from avsr.data.spm_tokenizer import SentencePieceTokenizer
from avsr.models.loader import load_model
from tests.conftest import AVSR, avsr_main, subset_manifest
from tests.models.auto_avsr_fixtures import reference_state_dict
from tests.training.test_training import ROOT, fit

CONFIG = ROOT / "configs" / "lrs3_import_av.yaml"
# The recipe checkpoints' sizes (tests/fixtures/auto_avsr/manifest.json), set over the config's auto-avsr preset.
SMALL = {"dim": 64, "num_heads": 4, "ffn_dim": 128, "audio_layers": 2, "video_layers": 2}
ENCODERS = ("model.audio_encoder.", "model.video_encoder.")
TRAINED = ("model.fusion.", "model.shared.", "model.head.", "model.audio_head.", "model.video_head.")


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    """The ASR and VSR recipe checkpoints saved as the zoo's .pth files, imported as one gated AV bundle."""
    folder = tmp_path_factory.mktemp("import_av")
    for kind in ("asr", "vsr"):
        torch.save(reference_state_dict(kind), folder / f"{kind}.pth")
    result = avsr_main("import", "auto-avsr", "--audio", folder / "asr.pth", "--video", folder / "vsr.pth",
                       "-o", folder / "av.pt")
    assert result.returncode == 0, result.stderr
    return folder / "av.pt"


@pytest.fixture(scope="module")
def prepared_auto_avsr(synth_corpus, tmp_path_factory) -> Path:
    """Two utterances of each training speaker and three of the validation speaker, prepared with auto_avsr's
    crops (``--roi-style auto-avsr``, as the config's comment prepares LRS3)."""
    from avsr.data.prepare import prepare_manifest
    from avsr.io.lip_roi import LipRoiOptions

    folder = tmp_path_factory.mktemp("prepared_auto_avsr")
    subset_manifest(folder / "train_clips.jsonl", synth_corpus.folder / "train.jsonl", count=2, per_speaker=True)
    subset_manifest(folder / "val_clips.jsonl", synth_corpus.folder / "val.jsonl", count=3)
    for split in ("train", "val"):
        prepare_manifest(folder / f"{split}_clips.jsonl", folder / "out", LipRoiOptions(detect_every=2,
                                                                                      roi_style="auto-avsr"),
                         progress=False)
    return folder / "out"


def run_config(tmp_path: Path, prepared: Path, bundle: Path, freeze: bool) -> Path:
    """The config's settings at the recipe checkpoints' sizes, on the CPU, for one epoch (2 optimizer steps)."""
    config = {
        "trainer": {"accelerator": "cpu", "precision": "32-true", "max_epochs": 1, "max_steps": 3,
                    "default_root_dir": str(tmp_path / "run"), "enable_progress_bar": False},
        "model": {"model": SMALL, "init": {"model": str(bundle), "freeze_encoders": freeze}, "warmup_steps": 1},
        "data": {"train_manifests": [str(prepared / "train_clips.jsonl")],
                 "val_manifests": [str(prepared / "val_clips.jsonl")], "max_frames": 200, "num_workers": 0},
    }
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def trained_against_imported(tmp_path: Path, prepared: Path, bundle: Path, freeze: bool) -> tuple[dict, dict, Path]:
    """Fit, and return the last checkpoint's weights, the bundle's (both named as the checkpoint names them) and
    the checkpoint's path."""
    result = fit("--config", str(CONFIG), "--config", str(run_config(tmp_path, prepared, bundle, freeze)))
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = sorted((tmp_path / "run").rglob("last.ckpt"))[-1]
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert saved["global_step"] >= 2 and saved["hyper_parameters"]["tokenizer"] == "auto-avsr"
    start = {f"model.{k}": v for k, v in load_model(bundle).network.state_dict().items()}
    assert saved["state_dict"].keys() == start.keys()
    return saved["state_dict"], start, checkpoint


@pytest.mark.slow
def test_frozen_encoders_stay_the_imported_ones_while_the_gate_learns_and_the_result_transcribes(
        tmp_path, prepared_auto_avsr, imported, synth_corpus):
    trained, start, checkpoint = trained_against_imported(tmp_path, prepared_auto_avsr, imported, freeze=True)
    for key, value in trained.items():
        if key.startswith(ENCODERS):  # weights and batch-norm statistics alike
            assert torch.equal(value, start[key]), key
    for prefix in TRAINED:
        assert any(not torch.equal(v, start[k]) for k, v in trained.items() if k.startswith(prefix)), prefix

    exported = subprocess.run([AVSR, "export", str(checkpoint), str(tmp_path / "trained.pt")], capture_output=True,
                              text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr[-2000:]
    loaded = load_model(tmp_path / "trained.pt")
    assert isinstance(loaded.tokenizer, SentencePieceTokenizer) and loaded.tokenizer.vocab_size == 5049
    assert loaded.network.config.encoders == "auto-avsr" and loaded.network.preprocessing.roi_style == "auto-avsr"
    clip = synth_corpus.split("val")[0]["video"]
    out = tmp_path / "transcripts"
    done = subprocess.run([AVSR, "transcribe", str(clip), "--model", str(tmp_path / "trained.pt"), "-o", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    transcript = json.loads(next(out.glob("*.json")).read_text())
    assert transcript["mode"] == "av" and transcript["model_id"].startswith("trained@")


@pytest.mark.slow
def test_fine_tuning_everything_moves_the_imported_encoders(tmp_path, prepared_auto_avsr, imported):
    trained, start, _ = trained_against_imported(tmp_path, prepared_auto_avsr, imported, freeze=False)
    for prefix in (*ENCODERS, *TRAINED):
        assert any(not torch.equal(v, start[k]) for k, v in trained.items() if k.startswith(prefix)), prefix
