"""Training with Lightning on the shared synthetic test corpus (tests/conftest.py), and the embedded model
on speakers and sentences it never trained on."""

from __future__ import annotations

import dataclasses
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
from avsr.models.av_model import AVSRModel, ModelConfig
from avsr.models.bundle import load_bundle, save_bundle
from avsr.preprocessing import Preprocessing
from tests.conftest import subset_manifest

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

    import jiwer

    from avsr.decoding.greedy import greedy_decode

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
    corpus = jiwer.wer(references, hypotheses)
    assert logged[1] == pytest.approx(corpus, abs=1e-6) and logged[2] == pytest.approx(corpus, abs=1e-6)
    # The test can tell: the mean of the two processes' own rates differs from the corpus rate.
    per_process = [jiwer.wer([references[i] for b in batches[rank::2] for i in b],
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


def stream_bundle(path: Path, modalities: str, seed: int, **sizes) -> Path:
    torch.manual_seed(seed)
    config = ModelConfig(**({"dim": 32, "num_heads": 2, "ffn_dim": 64, "audio_layers": 1, "video_layers": 1,
                             "video_channels": (8, 16), "modalities": modalities} | sizes))
    return save_bundle(path, AVSRModel(config))


def test_av_training_starts_from_stream_models_and_refuses_ones_that_do_not_fit(tmp_path):
    from avsr.training.lightning_module import AVSRLightning

    audio = stream_bundle(tmp_path / "audio.pt", "audio", seed=1)
    video = stream_bundle(tmp_path / "video.pt", "video", seed=2)
    config = ModelConfig(dim=32, num_heads=2, ffn_dim=64, audio_layers=1, video_layers=1, video_channels=(8, 16))
    module = AVSRLightning(config, init_audio=str(audio), init_video=str(video))
    module.setup("fit")
    state = module.model.state_dict()
    for path, prefixes in ((audio, ("audio_encoder.", "audio_head.")), (video, ("video_encoder.", "video_head."))):
        source = load_bundle(path)[0].state_dict()
        copied = [k for k in source if k.startswith(prefixes)]
        assert copied and all(torch.equal(state[k], source[k]) for k in copied)

    with pytest.raises(ValueError, match=r"video\.pt: a video model has no audio stream"):
        AVSRLightning(config, init_audio=str(video)).setup("fit")
    wide = stream_bundle(tmp_path / "wide.pt", "video", seed=3, video_channels=(8, 24))
    with pytest.raises(ValueError, match=r"wide\.pt: its video stream does not fit this model .*\(8, 24|24"):
        AVSRLightning(config, init_video=str(wide)).setup("fit")
    with pytest.raises(ValueError, match=r"video\.pt: its video stream was trained on crops prepared as"):
        AVSRLightning(config, init_video=str(video), preprocessing=Preprocessing(video_norm="utterance")).setup("fit")


def test_fine_tuning_starts_from_every_weight_of_a_model_with_the_same_settings(tmp_path):
    from avsr.training.lightning_module import AVSRLightning

    config = ModelConfig(dim=32, num_heads=2, ffn_dim=64, audio_layers=1, video_layers=1, video_channels=(8, 16),
                         fusion="xattn", xattn_window=2)
    trained = stream_bundle(tmp_path / "trained.pt", "av", seed=4, fusion="xattn", xattn_window=2)
    module = AVSRLightning(config, init_model=str(trained), freeze_streams_steps=5)
    module.setup("fit")
    source = load_bundle(trained)[0].state_dict()
    assert all(torch.equal(module.model.state_dict()[k], v) for k, v in source.items())
    assert module._frozen == ["audio_encoder", "video_encoder"]

    with pytest.raises(ValueError, match=r"trained\.pt: that model is not this one \(fusion='xattn' there, 'gate' here"):
        AVSRLightning(ModelConfig(dim=32, num_heads=2, ffn_dim=64, audio_layers=1, video_layers=1,
                                  video_channels=(8, 16)), init_model=str(trained)).setup("fit")
    with pytest.raises(ValueError, match=r"trained\.pt: it was trained on crops prepared as"):
        AVSRLightning(config, init_model=str(trained), preprocessing=Preprocessing(video_norm="utterance")).setup("fit")


@pytest.mark.slow
def test_frozen_streams_stay_those_of_the_stream_models(tmp_path, prepared):
    audio = stream_bundle(tmp_path / "audio.pt", "audio", seed=1)
    video = stream_bundle(tmp_path / "video.pt", "video", seed=2)
    result = fit("--config", str(ROOT / "configs" / "synth_grid_tiny.yaml"), "--config",
                 str(small_config(tmp_path, prepared, max_steps=3)), "--model.init_audio", str(audio),
                 "--model.init_video", str(video), "--model.freeze_streams_steps", "10")
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
                 "--model.init_audio", str(audio), "--model.init_video", str(video),
                 "--model.freeze_streams_steps", "10")
    assert result.returncode == 0, result.stderr[-3000:]
    trained = torch.load(sorted((tmp_path / "run").rglob("last.ckpt"))[-1], map_location="cpu", weights_only=False)
    source = load_bundle(video)[0].state_dict()
    assert all(torch.equal(trained["state_dict"][f"model.{k}"], v) for k, v in source.items()
               if k.startswith("video_encoder."))


def test_alignment_distillation_trains_the_video_stream_on_the_transcript_forced_onto_the_audio(prepared_corpus):
    """``align_teacher``: each transcript forced onto the teacher's audio posteriors gives every frame
    a label; the path spells the transcript, the frame-wise loss reaches the video stream, and the
    teacher is not part of the model (nor of its checkpoints)."""
    from avsr.training.lightning_module import AVSRLightning

    embedded = Path(avsr.__file__).parent / "assets" / "synth-grid-tiny.pt"
    spec = Preprocessing(video_norm="utterance")
    module = AVSRLightning(ModelConfig(modalities="video", video_pool=3, video_downsample=2), preprocessing=spec,
                           align_teacher=str(embedded), align_weight=0.5)
    module.setup("fit")
    dataset = AVDataset(prepared_corpus / "train.jsonl", preprocessing=spec)
    batch = collate([dataset[i] for i in range(4)], spec)
    targets = module.alignment_targets(batch)
    tokenizer = CharTokenizer()
    for row, text in zip(targets.tolist(), batch.texts):
        path = [label for label in row if label >= 0]
        spelled = [p for i, p in enumerate(path) if p != tokenizer.blank and (i == 0 or p != path[i - 1])]
        assert tokenizer.decode(spelled) == text
    module.train()
    out = module.model(batch.audio, batch.audio_lengths, batch.video, batch.video_lengths, batch.face_found, "video")
    loss = module._align_loss(out, batch)
    assert loss > 0
    loss.backward()
    assert module.model.video_head.weight.grad.abs().sum() > 0
    assert not any("teacher" in name for name in module.state_dict())
    module.eval()
    assert module._align_loss(out, batch) == 0  # validation reads the CTC loss alone
    with pytest.raises(ValueError, match="trains the video stream, and this audio model has none"):
        AVSRLightning(ModelConfig(modalities="audio"), align_teacher=str(embedded)).setup("fit")


def gate_of(model: AVSRModel):
    """The reliability gate of a ``gate`` or ``xattn`` model (the latter's sits behind its attention)."""
    return getattr(model.fusion, "gate", model.fusion)


def test_gate_supervision_pulls_the_audio_weight_towards_the_stream_that_reads_better(prepared_corpus):
    """``gate_supervision``: the target is the video head's share of the two heads' CTC losses (so
    drowning the audio in noise lowers it), only frames with a face count, and the loss trains the
    gate's scorer towards it."""
    from avsr.data.noise import mix_at_snr, white_noise
    from avsr.training.lightning_module import AVSRLightning, reliability_target

    assert reliability_target(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 1.0])).tolist() == [0.5, 0.25]
    embedded = Path(avsr.__file__).parent / "assets" / "synth-grid-tiny.pt"
    trained, _, _ = load_bundle(embedded)
    spec = trained.preprocessing
    module = AVSRLightning(trained.config, preprocessing=spec, gate_supervision=1.0)
    module.model.load_state_dict(trained.state_dict())
    dataset = AVDataset(prepared_corpus / "val.jsonl", preprocessing=spec)
    items = [dataset[i] for i in range(3)]
    clean = collate(items, spec)
    rng = np.random.default_rng(0)
    noisy_items = [dict(item, audio=mix_at_snr(item["audio"], white_noise(len(item["audio"]), rng), -10.0).astype(np.float32))
                   for item in items]
    noisy = collate(noisy_items, spec)
    module.eval()
    targets = []
    for batch in (clean, noisy):
        with torch.no_grad():
            out = module.model(batch.audio, batch.audio_lengths, batch.video, batch.video_lengths, batch.face_found, "av")
        losses = [torch.nn.functional.ctc_loss(lp.transpose(0, 1), batch.targets, out.lengths, batch.target_lengths,
                                               reduction="none") for lp in (out.audio_log_probs, out.video_log_probs)]
        targets.append(reliability_target(*losses))
    # Noise moves the targets towards the lips (embedded model of 2026-12-01, second session: 0.66 / 0.76 /
    # 0.51 clean -> 0.44 / 0.68 / 0.29 at -10 dB; the xattn model embedded since: 0.65 / 0.84 / 0.60 ->
    # 0.49 / 0.90 / 0.27: its audio head reads the second clip better in the noise, a loss of 4.9 against 8.6).
    drop = targets[0] - targets[1]
    assert (drop > 0.05).sum() >= 2 and drop.mean() > 0.1, targets

    out = module.model(noisy.audio, noisy.audio_lengths, noisy.video, noisy.video_lengths, noisy.face_found, "av")
    loss = module._gate_loss(out, noisy)
    assert loss > 0
    loss.backward()
    assert gate_of(module.model).scorer[0].weight.grad.abs().sum() > 0
    assert module.model.head.weight.grad is None  # it trains the gate, not the recognisers
    no_face = dataclasses.replace(noisy, face_found=torch.zeros_like(noisy.face_found))
    assert module._gate_loss(out, no_face) == 0  # the weight of a frame without a face is fixed at 1
    off = AVSRLightning(trained.config, preprocessing=spec)
    assert off._gate_loss(out, noisy) == 0


def test_gate_snr_supervision_teaches_the_weight_to_follow_the_frames_snr(prepared_corpus):
    """``gate_snr_supervision``: the target falls with the frame's SNR through half the ceiling at the
    midpoint; frames without a face or a known SNR are left out; only the gate learns; and a few steps
    of this loss alone make the weight of noisy frames fall below that of the same frames clean."""
    from avsr.data.augment import AugmentOptions
    from avsr.training.lightning_module import AVSRLightning, snr_target

    target = snr_target(torch.tensor([-60.0, 0.0, 5.0, 10.0, 60.0]), 5.0, 3.0, 0.8)
    assert target[2] == pytest.approx(0.4) and target[0] < 1e-6 and target[-1] == pytest.approx(0.8)
    assert (target.diff() > 0).all()
    with pytest.raises(ValueError, match="gate_snr_width_db"):
        AVSRLightning(gate_snr_width_db=0.0)

    embedded = Path(avsr.__file__).parent / "assets" / "synth-grid-tiny.pt"
    trained, _, _ = load_bundle(embedded)
    spec = trained.preprocessing
    module = AVSRLightning(trained.config, preprocessing=spec, gate_snr_supervision=1.0)
    module.model.load_state_dict(trained.state_dict())
    quiet = dict(drop_audio_prob=0.0, drop_video_prob=0.0, blank_span_prob=0.0, time_mask_prob=0.0,
                 random_crop=False, flip_prob=0.0, noise_types=("white",))
    clean_set = AVDataset(prepared_corpus / "val.jsonl", preprocessing=spec, augment=AugmentOptions(noise_prob=0.0, **quiet))
    noisy_set = AVDataset(prepared_corpus / "val.jsonl", preprocessing=spec,
                          augment=AugmentOptions(noise_prob=1.0, snr_db_range=(-10.0, -10.0), **quiet))
    clean, noisy = (collate([dataset[i] for i in range(4)], spec) for dataset in (clean_set, noisy_set))
    inside = torch.arange(clean.frame_snr.shape[1])[None] < clean.video_lengths[:, None]
    assert (clean.frame_snr[inside] == 60).all() and noisy.frame_snr[inside].nanmedian() < 0

    def weights(batch):
        out = module.model(batch.audio, batch.audio_lengths, batch.video, batch.video_lengths, batch.face_found, "av")
        return out, out.audio_weight[batch.face_found].mean()

    module.eval()  # batch norm held: the loss, not the statistics, moves the weight
    out, _ = weights(noisy)
    loss = module._gate_snr_loss(out, noisy)
    assert loss > 0
    loss.backward()
    assert gate_of(module.model).scorer[0].weight.grad.abs().sum() > 0
    assert module.model.head.weight.grad is None  # it trains the gate, not the recognisers
    assert module._gate_snr_loss(out, dataclasses.replace(noisy, face_found=torch.zeros_like(noisy.face_found))) == 0
    assert module._gate_snr_loss(out, dataclasses.replace(noisy, frame_snr=torch.full_like(noisy.frame_snr, float("nan")))) == 0
    assert AVSRLightning(trained.config, preprocessing=spec)._gate_snr_loss(out, noisy) == 0

    torch.manual_seed(0)  # a scorer that has learned nothing yet: the loss alone must teach it
    for layer in gate_of(module.model).scorer:
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()
    with torch.no_grad():
        before = weights(clean)[1] - weights(noisy)[1]
    optimizer = torch.optim.Adam(gate_of(module.model).scorer.parameters(), lr=1e-2)
    for _ in range(15):
        for batch in (clean, noisy):
            optimizer.zero_grad()
            module._gate_snr_loss(weights(batch)[0], batch).backward()
            optimizer.step()
    with torch.no_grad():
        (_, clean_weight), (_, noisy_weight) = weights(clean), weights(noisy)
    assert clean_weight - noisy_weight > max(0.3, before + 0.2), (before, clean_weight, noisy_weight)


def test_sync_supervision_raises_the_attention_on_the_lip_frame_of_each_audio_frame(prepared_corpus):
    """``xattn_sync_supervision``: the batch carries the shift the offset augmentation made; the loss
    is 0 for attention all on the frame that shows the audio and log(2W + 1) for attention spread
    evenly; frames with nothing to find are left out; only the audio-to-video attention and the
    streams learn; and a few steps of it raise that attention."""
    from avsr.data.augment import AugmentOptions
    from avsr.training.lightning_module import AVSRLightning, sync_nll

    embedded = Path(avsr.__file__).parent / "assets" / "synth-grid-tiny.pt"
    trained, _, _ = load_bundle(embedded)
    spec = trained.preprocessing
    quiet = dict(drop_audio_prob=0.0, drop_video_prob=0.0, blank_span_prob=0.0, time_mask_prob=0.0, noise_prob=0.0,
                 random_crop=False, flip_prob=0.0, pad_prob=0.0, offset_prob=1.0, max_offset_frames=3)
    dataset = AVDataset(prepared_corpus / "val.jsonl", preprocessing=spec, augment=AugmentOptions(**quiet))
    batch = collate([dataset[(i, epoch)] for i in range(2) for epoch in range(3)], spec)
    assert len(set(batch.av_offset.tolist())) > 1 and (batch.av_offset.abs() <= 3).all()
    for found, frames, offset in zip(batch.face_found, batch.video_lengths, batch.av_offset.tolist()):
        missing = found[:offset] if offset > 0 else found[frames + offset:frames]  # shifted in from outside
        assert not missing.any() and found[:frames].sum() >= frames - abs(offset) - 2

    window, frames = 4, 12
    lengths, face = torch.tensor([frames, 9]), torch.ones(2, frames, dtype=torch.bool)
    offsets = torch.tensor([2, -1])
    exact = torch.zeros(2, frames, 2 * window + 1)
    exact[0, :, window + 2] = exact[1, :, window - 1] = 1
    assert sync_nll(exact, lengths, face, offsets) == pytest.approx(0.0, abs=1e-6)
    even = torch.full((2, frames, 2 * window + 1), 1 / (2 * window + 1))
    assert sync_nll(even, lengths, face, offsets) == pytest.approx(np.log(2 * window + 1), rel=1e-5)
    wrong = exact.roll(1, dims=2)
    assert sync_nll(wrong, lengths, face, offsets) > 10  # no weight on the right frame: a large loss
    assert sync_nll(wrong, lengths, torch.zeros_like(face), offsets) == 0  # no face to find anywhere
    assert sync_nll(wrong, lengths, face, torch.tensor([window + 1, -window - 1])) == 0  # outside the window
    first_only = torch.zeros_like(face)
    first_only[0, 2:4] = True  # faces in video frames 2 and 3 only: they show audio frames 0 and 1 of the first
    assert sync_nll(wrong, lengths, first_only, offsets) > 10
    half = exact * 0.5 + even * 0.5
    half[0, 2:] = half[1] = 0  # the frames with nothing to find do not count, whatever their attention
    assert sync_nll(half, lengths, first_only, offsets) == pytest.approx(
        -np.log(0.5 + 0.5 / (2 * window + 1)), rel=1e-5)

    module = AVSRLightning(trained.config, preprocessing=spec, xattn_sync_supervision=1.0)
    module.model.load_state_dict(trained.state_dict())
    module.eval()
    forward = lambda: module.model(batch.audio, batch.audio_lengths, batch.video, batch.video_lengths, batch.face_found,
                                   "av")
    out = forward()
    loss = module._sync_loss(out, batch)
    assert loss > 0
    loss.backward()
    assert module.model.fusion.audio_to_video.query.weight.grad.abs().sum() > 0
    assert module.model.head.weight.grad is None and module.model.fusion.gate.scorer[0].weight.grad is None
    assert AVSRLightning(trained.config, preprocessing=spec)._sync_loss(out, batch) == 0
    assert module._sync_loss(out, dataclasses.replace(batch, av_offset=None)) == 0

    optimizer = torch.optim.Adam(module.model.fusion.audio_to_video.parameters(), lr=1e-2)
    for _ in range(10):
        optimizer.zero_grad()
        module._sync_loss(forward(), batch).backward()
        optimizer.step()
    with torch.no_grad():
        after = module._sync_loss(forward(), batch)
    assert after < loss.detach() - 0.2, (float(loss), float(after))
