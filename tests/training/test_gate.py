"""The reliability gate, on a model trained for a short while inside the test: it turns away from
audio drowned in noise and towards audio when the face is gone."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch

from avsr.data.augment import AugmentOptions
from avsr.data.dataset import AVDataset, collate
from avsr.data.noise import mix_at_snr, white_noise
from avsr.data.prepare import prepare_manifest
from avsr.io.lip_roi import LipRoiOptions
from avsr.models.av_model import ModelConfig
from avsr.synth.corpus import SynthOptions, synthesize_corpus
from avsr.training.data_module import AVDataModule
from avsr.training.lightning_module import AVSRLightning


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gate")
    synthesize_corpus(folder / "corpus", SynthOptions(num_utterances=60, speakers=6, test_speakers=1, val_speakers=1,
                                                      seed=3), progress=False)
    for split in ("train", "val"):
        prepare_manifest(folder / "corpus" / f"{split}.jsonl", folder / "prepared", LipRoiOptions(detect_every=2),
                         progress=False)
    L.seed_everything(0)
    module = AVSRLightning(ModelConfig(dim=64, num_heads=4, ffn_dim=128, audio_layers=1, video_layers=1,
                                       video_channels=(8, 16, 32)), learning_rate=3e-3, warmup_steps=20)
    augment = AugmentOptions(noise_prob=0.5, snr_db_range=(-10.0, 20.0), noise_types=("white",),
                             drop_video_prob=0.25, drop_audio_prob=0.0)
    data = AVDataModule([str(folder / "prepared" / "train.jsonl")], [str(folder / "prepared" / "val.jsonl")],
                        max_frames=400, augment=augment)
    trainer = L.Trainer(max_steps=400, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, num_sanity_val_steps=0, limit_val_batches=0,
                        use_distributed_sampler=False)
    trainer.fit(module, data)
    return module.model.eval(), AVDataset(str(folder / "prepared" / "val.jsonl"))


def mean_audio_weight(model, items) -> float:
    batch = collate(items)
    with torch.no_grad():
        out = model(batch.audio, batch.audio_lengths, batch.video, batch.video_lengths, batch.face_found)
    valid = torch.arange(out.audio_weight.shape[1])[None] < out.lengths[:, None]
    return float(out.audio_weight[valid].mean())


@pytest.mark.slow
def test_gate_follows_reliability(trained):
    model, dataset = trained
    clean = [dataset[i] for i in range(len(dataset))]
    rng = np.random.default_rng(0)
    noisy = [item | {"audio": mix_at_snr(item["audio"], white_noise(len(item["audio"]), rng), -10.0)} for item in clean]
    faceless = [item | {"video": np.zeros_like(item["video"]), "face_found": np.zeros_like(item["face_found"])}
                for item in clean]
    weights = {name: mean_audio_weight(model, items) for name, items in
               (("clean", clean), ("noisy", noisy), ("faceless", faceless))}
    assert weights["noisy"] < weights["clean"] - 0.02, weights
    assert weights["faceless"] > weights["clean"] + 0.02, weights
