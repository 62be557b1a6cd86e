"""`avsr evaluate -o`: a noise sweep over a tiny synthetic test set, with the embedded model."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import cv2
import jiwer
import numpy as np
import pytest
import torch

from avsr.data.prepare import prepare_manifest
from avsr.evaluation.sweep import NoiseSource, load_items, noisy_items, sweep, write_results
from avsr.io.lip_roi import LipRoiOptions
from avsr.models.av_model import AVSRModel, ModelConfig
from avsr.synth.corpus import SynthOptions, synthesize_corpus

AVSR = str(Path(sys.executable).with_name("avsr"))


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("sweep")
    synthesize_corpus(folder / "corpus", SynthOptions(num_utterances=16, speakers=5, test_speakers=2, val_speakers=1,
                                                      seed=4), progress=False)
    target, _ = prepare_manifest(folder / "corpus" / "test.jsonl", folder / "prepared", LipRoiOptions(detect_every=2),
                                 progress=False)
    return str(target)


def run_sweep(manifest: str, out: Path, seed: int) -> subprocess.CompletedProcess:
    return subprocess.run([AVSR, "evaluate", "--manifest", manifest, "--modes", "av", "audio", "--snr-db", "clean", "0",
                           "-5", "--noise", "white", "babble", "--seed", str(seed), "-o", str(out)],
                          capture_output=True, text=True, timeout=600)


def test_sweep_writes_tables_and_plots_and_repeats_exactly(manifest, tmp_path):
    first = run_sweep(manifest, tmp_path / "a", seed=1)
    assert first.returncode == 0, first.stderr[-2000:]
    rows = list(csv.DictReader((tmp_path / "a" / "results.csv").open()))
    conditions = [(r["noise"], r["snr_db"], r["mode"]) for r in rows]
    assert conditions == [("clean", "", "av"), ("clean", "", "audio")] + [
        (noise, snr, mode) for noise in ("white", "babble") for snr in ("0.0000", "-5.0000") for mode in ("av", "audio")]
    for row in rows:
        assert float(row["wer_low"]) <= float(row["wer"]) <= float(row["wer_high"])
        if row["snr_db"]:
            assert abs(float(row["achieved_snr_db"]) - float(row["snr_db"])) < 0.1
        assert (row["mean_audio_weight"] != "") == (row["mode"] == "av")
    assert (tmp_path / "a" / "results.md").read_text().count("\n") == len(rows) + 2
    for name in ("wer_vs_snr.png", "gate_vs_snr.png", "utterance.png"):
        image = cv2.imread(str(tmp_path / "a" / name))
        assert image is not None and image.shape[0] > 200 and image.std() > 5
    again = run_sweep(manifest, tmp_path / "b", seed=1)
    assert again.returncode == 0
    assert (tmp_path / "a" / "results.csv").read_bytes() == (tmp_path / "b" / "results.csv").read_bytes()


def test_noise_is_seeded_per_utterance_and_babble_comes_from_other_speakers(manifest):
    items, speakers = load_items(manifest)
    audios = [item["audio"] for item in items]
    for noise in ("white", "babble"):
        source = NoiseSource(noise, audios, speakers)
        a, reached = noisy_items(items, source, 0.0, seed=1)
        b, _ = noisy_items(items, source, 0.0, seed=1)
        c, _ = noisy_items(items, source, 0.0, seed=2)
        assert all(np.array_equal(x["audio"], y["audio"]) for x, y in zip(a, b))
        assert not any(np.array_equal(x["audio"], z["audio"]) for x, z in zip(a, c))
        assert np.allclose(reached, 0.0, atol=0.1)
    assert len(set(speakers)) == 2
    with pytest.raises(ValueError, match="two speakers"):
        one = [s for s in speakers if s == speakers[0]]
        NoiseSource("babble", audios[: len(one)], one)


def test_table_with_beam_search_and_a_lexicon(manifest):
    corpus_train = Path(manifest).parents[1] / "corpus" / "train.jsonl"
    table = subprocess.run([AVSR, "evaluate", "--manifest", manifest, "--modes", "av", "--beam-size", "8",
                            "--lexicon", str(corpus_train)], capture_output=True, text=True, timeout=600)
    assert table.returncode == 0, table.stderr[-2000:]
    [header, row] = table.stdout.splitlines()
    assert header.split()[:3] == ["SNR", "dB", "mode"] and row.split()[:2] == ["clean", "av"]
    assert 0 <= float(row.split()[2]) < 60
    refused = subprocess.run([AVSR, "evaluate", "--manifest", manifest, "--lexicon", str(corpus_train)],
                             capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "needs beam search" in refused.stderr


def test_sweep_runs_fusions_without_weights_and_audio_only_models(manifest, tmp_path):
    """A concat model has no gate weights; an audio-only model runs its one mode. Both go through a
    sweep and its plots, and the utterance figure comes from the first model that reads the lips."""
    torch.manual_seed(0)
    small = dict(dim=32, num_heads=2, ffn_dim=64, audio_layers=1, video_layers=1, video_channels=(8, 16))
    models = {"concat": AVSRModel(ModelConfig(**small, fusion="concat")),
              "audio-only": AVSRModel(ModelConfig(**small, modalities="audio"))}
    rows = sweep(models, manifest, [None, 0.0], ["white"], ["av", "audio"], progress=False,
                 figure_path=tmp_path / "utterance.png")
    assert [(r.model, r.mode, r.noise) for r in rows] == [
        ("concat", "av", "clean"), ("concat", "audio", "clean"), ("audio-only", "audio", "clean"),
        ("concat", "av", "white"), ("concat", "audio", "white"), ("audio-only", "audio", "white")]
    assert all(r.mean_audio_weight is None for r in rows)
    paths = write_results(rows, tmp_path)
    for path in paths[2:] + [tmp_path / "utterance.png"]:
        image = cv2.imread(str(path))
        assert image is not None and image.std() > 5


def test_word_errors_agree_with_hand_counts_and_jiwer_and_the_interval_narrows_with_more_utterances():
    from avsr.evaluation.sweep import _edits, bootstrap_wer

    pairs = [("bin blue at f two now", "bin blue at f two now", 0),   # exact
             ("place red by g nine soon", "place red by nine soon", 1),  # one deletion
             ("set white in a one again", "set green in a one again please", 2),  # a substitution, an insertion
             ("lay green with b four please", "", 6)]  # all deleted
    for reference, hypothesis, errors in pairs:
        assert _edits(reference, hypothesis) == errors
    references, hypotheses = [p[0] for p in pairs], [p[1] for p in pairs]
    assert jiwer.wer(references, hypotheses) == pytest.approx(9 / 24)
    rng = np.random.default_rng(0)
    widths = []
    for count in (20, 200, 2000):
        words = np.full(count, 6)
        errors = rng.binomial(6, 0.25, count)
        low, high = bootstrap_wer(errors, words, seed=0)
        assert low <= errors.sum() / words.sum() <= high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2] > 0


def test_a_raw_manifest_is_prepared_on_the_fly_and_scores_as_the_prepared_one(manifest, tmp_path):
    """A user's manifest as avsr synth writes it (id, video, text) is prepared beside the output and
    evaluated; the result equals evaluating the prepared manifest (same crops: same stride)."""
    raw = Path(manifest).parents[1] / "corpus" / "test.jsonl"
    args = ["--modes", "av", "--snr-db", "clean", "--detect-every", "2"]
    direct = subprocess.run([AVSR, "evaluate", "--manifest", manifest, *args], capture_output=True, text=True,
                            timeout=600)
    raw_run = subprocess.run([AVSR, "evaluate", "--manifest", str(raw), *args, "-o", str(tmp_path / "out")],
                             capture_output=True, text=True, timeout=600)
    assert direct.returncode == 0 and raw_run.returncode == 0, raw_run.stderr[-2000:]
    assert (tmp_path / "out" / "prepared" / "test.jsonl").is_file()
    [row] = list(csv.DictReader((tmp_path / "out" / "results.csv").open()))
    assert abs(100 * float(row["wer"]) - float(direct.stdout.splitlines()[1].split()[2])) < 0.01
