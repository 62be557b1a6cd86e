"""Training with Lightning on the shared synthetic test corpus (tests/conftest.py), and the embedded model
on speakers and sentences it never trained on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import avsr

from avsr.data.dataset import AVDataset, BucketBatchSampler, collate
from avsr.data.manifest import read_jsonl
from avsr.data.tokenizer import CharTokenizer
from avsr.models.bundle import load_bundle
from tests.conftest import subset_manifest
from tests.training.test_init import stream_bundle

ROOT = Path(__file__).resolve().parents[2]
AVSR = str(Path(sys.executable).with_name("avsr"))


@pytest.fixture(scope="module")
def prepared(prepared_corpus, tmp_path_factory) -> Path:
    """A folder with train.jsonl (two utterances of each of the three training speakers) and val.jsonl
    (three of the validation speaker's), cut from the shared test corpus's prepared manifests."""
    folder = tmp_path_factory.mktemp("prepared")
    subset_manifest(folder / "train.jsonl", prepared_corpus / "train.jsonl", count=2, per_speaker=True)
    subset_manifest(folder / "val.jsonl", prepared_corpus / "val.jsonl", count=3)
    return folder


def small_config(tmp_path: Path, prepared: Path, **trainer) -> Path:
    config = {
        "trainer": {"max_epochs": 1, "default_root_dir": str(tmp_path / "run"), "enable_progress_bar": False,
                    "log_every_n_steps": 1} | trainer,
        "model": {"model": {"dim": 32, "num_heads": 2, "ffn_dim": 64, "audio_layers": 1, "video_layers": 1,
                            "video_channels": [8, 16]}},
        "data": {"train_manifests": [str(prepared / "train.jsonl")], "val_manifests": [str(prepared / "val.jsonl")],
                 "max_frames": 200, "num_workers": 0},
    }
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def fit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "train.py"), "fit", *args], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)


@pytest.mark.slow
def test_fit_saves_config_checkpoint_and_exports_a_bundle(tmp_path, prepared):
    result = fit("--config", str(ROOT / "configs" / "synth_grid_tiny.yaml"), "--config", str(small_config(tmp_path, prepared)))
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoints = sorted((tmp_path / "run").rglob("*.ckpt"))
    assert checkpoints and list((tmp_path / "run").rglob("config.yaml"))
    saved = torch.load(checkpoints[-1], map_location="cpu", weights_only=False)
    assert saved["hyper_parameters"]["model"]["dim"] == 32  # the resolved config travels in the checkpoint

    exported = subprocess.run([AVSR, "export", str(checkpoints[-1]), str(tmp_path / "model.pt")], capture_output=True,
                              text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr[-2000:]
    model, _, _ = load_bundle(tmp_path / "model.pt")
    from avsr.training.lightning_module import AVSRLightning

    module = AVSRLightning.load_from_checkpoint(checkpoints[-1], map_location="cpu").eval()
    batch = collate([AVDataset(str(prepared / "val.jsonl"))[i] for i in range(2)])
    args = (batch.audio, batch.audio_lengths, batch.video, batch.video_lengths, batch.face_found)
    with torch.no_grad():
        torch.testing.assert_close(model(*args).log_probs, module.model(*args).log_probs)

    evaluated = subprocess.run([AVSR, "evaluate", "--model", str(tmp_path / "model.pt"), "--manifest",
                                str(prepared / "val.jsonl"), "--modes", "av", "audio", "--snr-db", "clean", "0"],
                               capture_output=True, text=True, timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    rows = [line.split() for line in evaluated.stdout.splitlines()[1:]]
    assert [(r[0], r[1]) for r in rows] == [("clean", "av"), ("clean", "audio"), ("0", "av"), ("0", "audio")]

    resumed = fit("--config", str(ROOT / "configs" / "synth_grid_tiny.yaml"), "--config",
                  str(small_config(tmp_path, prepared)), "--trainer.max_epochs", "2", "--ckpt_path", str(checkpoints[-1]))
    assert resumed.returncode == 0, resumed.stderr[-3000:]


# The corpus the embedded model was trained on (RESULTS.md, configs/synth_grid_tiny.yaml): avsr synth seed 0,
# 2,000 utterances, 26 speakers, s24 validation and s25-s26 test, their faces never seen in training.
EMBEDDED_TRAINING_CORPUS = {"num_utterances": 2000, "speakers": 26, "test_speakers": 2, "val_speakers": 1, "seed": 0}


def test_embedded_model_reads_speakers_and_sentences_it_never_saw(synth_corpus, prepared_corpus, tmp_path):
    """The embedded model on the shared test corpus's validation and test speakers: faces that its training
    corpus kept out of training, voices drawn anew, and sentences that were not among its training ones."""
    from avsr.evaluation.sweep import sweep
    from avsr.synth.corpus import SynthOptions, load_faces, make_jobs, make_speakers

    model = avsr.load_model("synth-grid-tiny")
    assert "synthetic data only" in model.metadata["note"] and model.id.startswith("synth-grid-tiny@")
    options = SynthOptions(**EMBEDDED_TRAINING_CORPUS)
    trained_speakers = make_speakers(options, load_faces(None))
    assert {s.face for s in trained_speakers if s.split == "test"} == {"biden.jpg#0", "multi_face.jpg#1"}  # RESULTS.md
    seen_faces = {s.face for s in trained_speakers if s.split == "train"}
    seen_texts = {job.text for job in make_jobs(options, trained_speakers) if job.speaker.split == "train"}
    faces = {s["id"]: s["face"] for s in json.loads((synth_corpus.folder / "speakers.json").read_text())}
    held_out = synth_corpus.split("val") + synth_corpus.split("test")
    assert len(held_out) == 12 and len({c["speaker"] for c in held_out}) == 3
    assert not {faces[c["speaker"]] for c in held_out} & seen_faces
    assert not {c["text"] for c in held_out} & seen_texts

    manifest = subset_manifest(tmp_path / "held_out.jsonl", *(prepared_corpus / f"{s}.jsonl" for s in ("val", "test")))
    [result] = sweep({"embedded": model.network}, str(manifest), [None], [], ["av"], progress=False)
    assert result.utterances == 12 and result.wer < 0.3 and result.cer < 0.15, result


@pytest.mark.slow
def test_ddp_with_two_cpu_processes(tmp_path, prepared):
    """Two training processes, each recording its own trainer's view (tests/training/record_ranks.py): a DDP
    strategy in a process group of two, ranks 0 and 1, each epoch's utterances split between them."""
    record = {"class_path": "tests.training.record_ranks.RecordRanks", "init_args": {"folder": str(tmp_path / "ranks")}}
    result = fit("--config", str(ROOT / "configs" / "synth_grid_tiny.yaml"), "--config",
                 str(small_config(tmp_path, prepared, strategy="ddp", devices=2, max_steps=3, callbacks=[record])))
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads(path.read_text()) for path in sorted((tmp_path / "ranks").glob("rank*.json"))]
    assert [r["global_rank"] for r in ranks] == [0, 1]
    assert all(r["strategy"] == "DDPStrategy" and r["world_size"] == r["process_group_size"] == 2 for r in ranks), ranks
    assert len(ranks[0]["batches"]) == len(ranks[1]["batches"]) >= 1, ranks  # DDP steps in lockstep
    utterances = {row["id"] for row in read_jsonl(prepared / "train.jsonl")}
    for epoch in {b["epoch"] for r in ranks for b in r["batches"]}:
        ids = [{i for b in r["batches"] if b["epoch"] == epoch for i in b["ids"]} for r in ranks]
        assert not ids[0] & ids[1] and ids[0] | ids[1] == utterances, ids  # each process reads its own share


VALIDATE_SCRIPT = """
import sys, lightning as L, torch, avsr
from avsr.training.data_module import AVDataModule
from avsr.training.lightning_module import AVSRLightning

devices, manifest = int(sys.argv[1]), sys.argv[2]
embedded = avsr.load_model("synth-grid-tiny").network
module = AVSRLightning(embedded.config)
module.model.load_state_dict(embedded.state_dict())
data = AVDataModule([manifest], [manifest], max_frames=100)
trainer = L.Trainer(accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto", logger=False,
                    enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False)
[metrics] = trainer.validate(module, data, verbose=False)
if trainer.global_rank == 0:
    print("VAL_WER", metrics["val/wer"])
"""


@pytest.mark.slow
def test_validation_wer_under_ddp_is_the_corpus_wer(tmp_path, prepared):
    """Two processes each score half of the validation batches; the logged WER must be the corpus WER
    of all of them (errors and words summed), not the mean of the two processes' rates."""
    import re

    from avsr.decoding.greedy import greedy_decode
    from avsr.text import word_error_rate

    script = tmp_path / "validate.py"
    script.write_text(VALIDATE_SCRIPT)
    # The first process's references are cut to their first two words, so that the two processes'
    # rates and word counts differ and the mean of their rates is not the corpus rate.
    rows = read_jsonl(prepared / "train.jsonl", required=("id", "text", "features", "num_frames"))
    batches = BucketBatchSampler([int(r["num_frames"]) for r in rows], 100, shuffle=False)._batches()
    first = {i for batch in batches[0::2] for i in batch}
    rows = [r | {"features": str(prepared / r["features"]), "text": " ".join(r["text"].split()[:2 if i in first else 6])}
            for i, r in enumerate(rows)]
    manifest = str(tmp_path / "cut.jsonl")
    Path(manifest).write_text("".join(json.dumps(r) + "\n" for r in rows))
    logged = {}
    for devices in (1, 2):
        result = subprocess.run([sys.executable, str(script), str(devices), manifest], capture_output=True, text=True,
                                timeout=600, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        logged[devices] = float(re.search(r"VAL_WER ([0-9.]+)", result.stdout).group(1))

    model = avsr.load_model("synth-grid-tiny").network
    dataset = AVDataset(manifest)
    references, hypotheses = [], []
    for index in range(len(dataset)):  # max_frames=100 makes one utterance per batch
        batch = collate([dataset[index]])
        with torch.no_grad():
            out = model(batch.audio, batch.audio_lengths, batch.video, batch.video_lengths, batch.face_found)
        hypotheses += greedy_decode(out.log_probs, out.lengths, CharTokenizer())
        references += batch.texts
    corpus = word_error_rate(references, hypotheses)
    assert logged[1] == pytest.approx(corpus, abs=1e-6) and logged[2] == pytest.approx(corpus, abs=1e-6)
    # The test can tell: the mean of the two processes' own rates differs from the corpus rate.
    per_process = [word_error_rate([references[i] for b in batches[rank::2] for i in b],
                             [hypotheses[i] for b in batches[rank::2] for i in b]) for rank in (0, 1)]
    assert abs(np.mean(per_process) - corpus) > 1e-3


@pytest.mark.slow
def test_audio_only_model_trains_stops_after_its_epoch_budget_and_evaluates_audio_alone(tmp_path, prepared):
    """The ablation's audio-only baseline end to end, with the step budget of StopAfterEpochs: one
    epoch of a three-epoch schedule, then export and a sweep that skips the modes it cannot run."""
    stop = {"class_path": "avsr.training.callbacks.StopAfterEpochs", "init_args": {"epochs": 1}}
    config = small_config(tmp_path, prepared, max_epochs=3, callbacks=[stop])
    result = fit("--config", str(ROOT / "configs" / "synth_grid_tiny.yaml"), "--config", str(config),
                 "--model.model.modalities", "audio")
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = next((tmp_path / "run").rglob("*.ckpt"))  # the callbacks given replace the ModelCheckpoint
    last = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert last["epoch"] == 0 and last["hyper_parameters"]["model"]["modalities"] == "audio"
    assert not any(k.startswith("model.video") for k in last["state_dict"])
    exported = subprocess.run([AVSR, "export", str(checkpoint),
                               str(tmp_path / "audio.pt")], capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr[-2000:]
    swept = subprocess.run([AVSR, "evaluate", "--model", str(tmp_path / "audio.pt"), "--manifest",
                            str(prepared / "val.jsonl"), "--modes", "av", "audio", "video", "--snr-db", "clean"],
                           capture_output=True, text=True, timeout=300)
    assert swept.returncode == 0, swept.stderr[-2000:]
    assert [line.split()[:2] for line in swept.stdout.splitlines()[1:]] == [["clean", "audio"]]


@pytest.mark.slow
def test_video_only_model_trains_exports_evaluates_and_transcribes_video_alone(tmp_path, prepared, synth_corpus):
    """A lip-reading model end to end: trained with per-utterance normalisation (kept in its bundle),
    evaluated on the video rows only, transcribing with --mode video, and refusing av and audio."""
    config = small_config(tmp_path, prepared, max_steps=4)
    result = fit("--config", str(ROOT / "configs" / "synth_grid_tiny.yaml"), "--config", str(config),
                 "--config", str(ROOT / "configs" / "stages" / "video.yaml"), "--trainer.max_steps", "4",
                 "--trainer.default_root_dir", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = sorted((tmp_path / "run").rglob("last.ckpt"))[-1]
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert {k.split(".")[1] for k in saved["state_dict"]} == {"video_encoder", "video_head"}
    exported = subprocess.run([AVSR, "export", str(checkpoint), str(tmp_path / "video.pt")], capture_output=True,
                              text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr[-2000:]
    model, _, _ = load_bundle(tmp_path / "video.pt")
    assert model.modes == ("video",) and model.preprocessing.video_norm == "utterance_rms"

    swept = subprocess.run([AVSR, "evaluate", "--model", str(tmp_path / "video.pt"), "--manifest",
                            str(prepared / "val.jsonl"), "--modes", "av", "audio", "video", "--snr-db", "clean", "0"],
                           capture_output=True, text=True, timeout=300)
    assert swept.returncode == 0, swept.stderr[-2000:]
    assert [line.split()[:2] for line in swept.stdout.splitlines()[1:]] == [["clean", "video"], ["0", "video"]]
    refused = subprocess.run([AVSR, "evaluate", "--model", str(tmp_path / "video.pt"), "--manifest",
                              str(prepared / "val.jsonl"), "--modes", "av", "audio"], capture_output=True, text=True,
                             timeout=300)
    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0 and "runs video" in refused.stderr

    clip = str(synth_corpus.split("val")[0]["video"])
    out = tmp_path / "transcripts"
    done = subprocess.run([AVSR, "transcribe", clip, "--model", str(tmp_path / "video.pt"), "--mode", "video",
                           "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(next(out.glob("*.json")).read_text())["mode"] == "video"
    for mode in ("av", "audio"):
        bad = subprocess.run([AVSR, "transcribe", clip, "--model", str(tmp_path / "video.pt"), "--mode", mode,
                              "-o", str(tmp_path / mode)], capture_output=True, text=True, timeout=300)
        assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "runs video" in bad.stderr, bad.stderr


@pytest.mark.slow
def test_frozen_streams_stay_those_of_the_stream_models(tmp_path, prepared):
    audio = stream_bundle(tmp_path / "audio.pt", "audio", seed=1)
    video = stream_bundle(tmp_path / "video.pt", "video", seed=2)
    result = fit("--config", str(ROOT / "configs" / "synth_grid_tiny.yaml"), "--config",
                 str(small_config(tmp_path, prepared, max_steps=3)), "--model.init.audio", str(audio),
                 "--model.init.video", str(video), "--model.init.freeze_streams_steps", "10")
    assert result.returncode == 0, result.stderr[-3000:]
    trained = torch.load(sorted((tmp_path / "run").rglob("last.ckpt"))[-1], map_location="cpu", weights_only=False)
    for path, prefix in ((audio, "audio_encoder."), (video, "video_encoder.")):
        source = load_bundle(path)[0].state_dict()
        for key, value in source.items():
            if key.startswith(prefix):
                assert torch.equal(trained["state_dict"][f"model.{key}"], value), key
    assert trained["global_step"] >= 2  # optimizer steps were taken while the streams were frozen


@pytest.mark.slow
def test_held_streams_under_ddp(tmp_path, prepared):
    """Streams held at learning rate 0 train under 2-process DDP (toggling requires_grad after DDP has
    wrapped the model is not allowed by its reducer) and come out as the stream models."""
    audio = stream_bundle(tmp_path / "audio.pt", "audio", seed=1)
    video = stream_bundle(tmp_path / "video.pt", "video", seed=2)
    result = fit("--config", str(ROOT / "configs" / "synth_grid_tiny.yaml"), "--config",
                 str(small_config(tmp_path, prepared, strategy="ddp", devices=2, max_steps=2)),
                 "--model.init.audio", str(audio), "--model.init.video", str(video),
                 "--model.init.freeze_streams_steps", "10")
    assert result.returncode == 0, result.stderr[-3000:]
    trained = torch.load(sorted((tmp_path / "run").rglob("last.ckpt"))[-1], map_location="cpu", weights_only=False)
    source = load_bundle(video)[0].state_dict()
    assert all(torch.equal(trained["state_dict"][f"model.{k}"], v) for k, v in source.items()
               if k.startswith("video_encoder."))
