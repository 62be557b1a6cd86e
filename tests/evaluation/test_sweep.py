"""Noise sweeps (`avsr evaluate`) over the shared test corpus's two test speakers: the rows, the SNR each
condition reached, corpus WER with a bootstrap interval, seeded noise, tables and plots."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from avsr.data.augment import shift_video
from avsr.evaluation.figures import attention_matrix, utterance_figure
from avsr.evaluation.options import EvaluateOptions
from avsr.decoding.greedy import greedy_decode
from avsr.evaluation.sweep import (NoiseSource, bootstrap_wer, load_items, noisy_items, score, shifted_items, sweep,
                                   write_results)
from avsr.models.av_model import AVSRModel, ModelConfig
from tests.conftest import subset_manifest

AVSR = str(Path(sys.executable).with_name("avsr"))
SMALL = dict(dim=32, num_heads=2, ffn_dim=64, audio_layers=1, video_layers=1, video_channels=(8, 16))


@pytest.fixture(scope="module")
def test_set(synth_corpus, prepared_corpus, tmp_path_factory) -> dict[str, str]:
    """Three utterances of each test speaker: the prepared manifest (``manifest``), the same lines as
    avsr synth wrote them (``raw``, a test.jsonl), and the corpus's training manifest (``train``)."""
    folder = tmp_path_factory.mktemp("sweep")
    manifest = subset_manifest(folder / "prepared" / "test.jsonl", prepared_corpus / "test.jsonl", count=3,
                               per_speaker=True)
    ids = [json.loads(line)["id"] for line in manifest.read_text().splitlines()]
    raw = subset_manifest(folder / "raw" / "test.jsonl", synth_corpus.folder / "test.jsonl", ids=ids)
    return {"manifest": str(manifest), "raw": str(raw), "train": str(synth_corpus.folder / "train.jsonl")}


@pytest.fixture(scope="module")
def manifest(test_set) -> str:
    return test_set["manifest"]


def run_sweep(manifest: str, out: Path, seed: int) -> subprocess.CompletedProcess:
    return subprocess.run([AVSR, "evaluate", "--manifest", manifest, "--modes", "av", "audio", "--snr-db", "clean", "0",
                           "-5", "--noise", "white", "babble", "--seed", str(seed), "-o", str(out)],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
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


def test_rows_per_noise_and_snr_reach_their_snr_and_score_the_whole_set(manifest):
    """One row per condition and mode, clean first; each noisy row reached its SNR within 0.1 dB; the WER is
    the set's errors (substitutions, deletions and insertions) over its reference words, inside its
    interval. The hypotheses are scripted, so every row's errors are known."""
    references = [item["text"] for item in load_items(manifest)[0]]
    assert len(references) == 6 and all(len(r.split()) == 6 for r in references)
    scripted = [references[0],  # exact
                " ".join(references[1].split()[1:]),  # one deletion
                " ".join(["zero"] + references[2].split()[1:] + ["please"]),  # a substitution, an insertion
                "",  # all six deleted
                references[4],
                references[5] + " " + references[5]]  # six insertions

    def decoder(log_probs, lengths) -> list[str]:  # one batch of six per condition
        return scripted[: len(lengths)]

    torch.manual_seed(0)
    models = {"small": AVSRModel(ModelConfig(**SMALL))}
    rows = sweep(models, manifest, [None, 0.0, -5.0], ["white", "babble"], ["av", "audio"], seed=1,
                 decoder=decoder, progress=False)
    assert [(r.noise, r.snr_db, r.mode) for r in rows] == [("clean", None, "av"), ("clean", None, "audio")] + [
        (noise, snr, mode) for noise in ("white", "babble") for snr in (0.0, -5.0) for mode in ("av", "audio")]
    for row in rows:
        assert row.utterances == 6 and row.wer == pytest.approx(15 / 36)
        assert row.wer_low <= row.wer <= row.wer_high and row.wer_low < row.wer_high
        assert (row.achieved_snr_db is None) == (row.snr_db is None)
        if row.snr_db is not None:
            assert abs(row.achieved_snr_db - row.snr_db) < 0.1
        assert (row.mean_audio_weight is not None) == (row.mode == "av")
        if row.mode == "av":
            assert 0.0 < row.mean_audio_weight < 1.0
    # The noise of each utterance depends on the seed, the noise and the utterance alone: a sweep of one
    # condition repeats that condition's row of the whole sweep exactly.
    [again] = sweep(models, manifest, [-5.0], ["babble"], ["av"], seed=1, decoder=decoder, progress=False)
    assert again == rows[-2]


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


@pytest.mark.slow
def test_table_with_beam_search_and_a_lexicon(test_set):
    manifest, corpus_train = test_set["manifest"], test_set["train"]
    table = subprocess.run([AVSR, "evaluate", "--manifest", manifest, "--modes", "av", "--beam-size", "8",
                            "--lexicon", corpus_train], capture_output=True, text=True, timeout=600)
    assert table.returncode == 0, table.stderr[-2000:]
    [header, row] = table.stdout.splitlines()
    assert header.split()[:3] == ["SNR", "dB", "mode"] and row.split()[:2] == ["clean", "av"]
    assert 0 <= float(row.split()[2]) < 60
    refused = subprocess.run([AVSR, "evaluate", "--manifest", manifest, "--lexicon", corpus_train],
                             capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "needs beam search" in refused.stderr


def test_sweep_runs_fusions_without_weights_and_audio_only_models(manifest, tmp_path):
    """A concat model has no gate weights; an audio-only model runs its one mode. Both go through a
    sweep and its plots, and the utterance figure comes from the first model that reads the lips."""
    torch.manual_seed(0)
    models = {"concat": AVSRModel(ModelConfig(**SMALL, fusion="concat")),
              "audio-only": AVSRModel(ModelConfig(**SMALL, modalities="audio"))}
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


def test_an_offset_axis_shifts_the_video_by_whole_frames_and_combines_with_every_snr(manifest, tmp_path):
    torch.manual_seed(0)
    models = {"xattn": AVSRModel(ModelConfig(**SMALL, fusion="xattn")),
              "audio-only": AVSRModel(ModelConfig(**SMALL, modalities="audio"))}
    rows = sweep(models, manifest, [None, 0.0], ["babble"], ["av", "audio", "video"], progress=False,
                 offsets_ms=[-80, 0, 120])
    # Audio mode is the same at every offset, so it runs at offset 0 only.
    expected = [(noise, offset, name, mode) for noise in ("clean", "babble") for offset in (-80, 0, 120)
                for name, modes in (("xattn", ("av", "audio", "video")), ("audio-only", ("audio",)))
                for mode in modes if offset == 0 or mode != "audio"]
    assert [(r.noise, r.av_offset_ms, r.model, r.mode) for r in rows] == expected
    clean = {(r.model, r.mode, r.av_offset_ms): r for r in rows if r.noise == "clean"}
    # The shifted video is what is scored: shifted by 3 frames it reads differently from the aligned one.
    assert clean[("xattn", "av", 120)].mean_audio_weight != clean[("xattn", "av", 0)].mean_audio_weight
    # Video mode reads no audio, so it is scored once per offset and its row repeats under babble;
    # the premise checked on the model: noisy audio leaves its video-mode output as it was.
    babble = {(r.model, r.mode, r.av_offset_ms): r for r in rows if r.noise == "babble"}
    for offset in (-80, 0, 120):
        assert babble[("xattn", "video", offset)].wer == clean[("xattn", "video", offset)].wer
    items = load_items(manifest)[0]
    noisy = [item | {"audio": item["audio"] + np.random.default_rng(0).normal(0, 0.3, len(item["audio"])).astype(
        np.float32)} for item in items]
    model = models["xattn"].eval()
    assert score(model, noisy, "video", greedy_decode) == score(model, items, "video", greedy_decode)
    assert score(model, noisy, "av", greedy_decode)[1] != score(model, items, "av", greedy_decode)[1]
    late = shifted_items(items, 120)
    for item, moved in zip(items, late):
        expected_video, expected_face = shift_video(item["video"], item["face_found"], 3)
        np.testing.assert_array_equal(moved["video"], expected_video)
        np.testing.assert_array_equal(moved["face_found"], expected_face)
        assert not moved["face_found"][:3].any() and moved["audio"] is item["audio"]
        assert moved["av_offset"] == item["av_offset"] + 3  # the shift it made, as the training loss reads it
    paths = write_results(rows, tmp_path)
    assert tmp_path / "wer_vs_offset.png" in paths
    image = cv2.imread(str(tmp_path / "wer_vs_offset.png"))
    assert image is not None and image.shape[1] > 900 and image.std() > 5  # two panels: clean, babble 0 dB
    table = (tmp_path / "results.md").read_text().splitlines()
    assert "offset ms" in table[0] and "| +120 |" in table[-1]
    csv_rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert [int(r["av_offset_ms"]) for r in csv_rows] == [r.av_offset_ms for r in rows]
    with pytest.raises(ValueError, match="--av-offset-ms 30: not a whole number of 25 fps frames"):
        EvaluateOptions(av_offsets_ms=(0, 30))


def test_attention_sync_undoes_the_offset_the_embedded_models_attention_reads(manifest, tmp_path):
    """``--av-sync attention``: the embedded model (taught where the lips are) reads each shifted
    utterance's offset and the video is moved back before scoring; its errors fall to about the aligned
    clips'. Rows of other modes, and of a model without cross-attention, are scored as they are."""
    import avsr

    embedded = avsr.load_model("synth-grid-tiny").network
    torch.manual_seed(0)
    models = {"embedded": embedded, "gate": AVSRModel(ModelConfig(**SMALL), embedded.preprocessing)}
    rows = {s: sweep(models, manifest, [None], [], ["av", "video"], progress=False, offsets_ms=[0, 200], av_sync=s)
            for s in ("off", "attention")}
    errors = {s: {(r.model, r.mode, r.av_offset_ms): r.wer for r in rows[s]} for s in rows}
    assert [r.av_sync for r in rows["attention"]] == ["attention", "off", "off", "off"] * 2
    late, aligned = errors["attention"][("embedded", "av", 200)], errors["off"][("embedded", "av", 0)]
    assert late < errors["off"][("embedded", "av", 200)] and late <= aligned + 0.1
    for key in errors["off"]:
        if key[0] == "gate" or key[1] == "video" or key[2] == 0:  # nothing to undo: the same rows
            assert errors["attention"][key] == errors["off"][key], key
    write_results(rows["attention"], tmp_path)
    assert "| embedded | av, attention sync | clean |" in (tmp_path / "results.md").read_text()
    with pytest.raises(ValueError, match="--av-sync mouth: use off or attention"):
        EvaluateOptions(av_sync="mouth")


def test_the_utterance_figure_shows_the_attention_of_an_xattn_model(manifest, tmp_path):
    torch.manual_seed(0)
    items = load_items(manifest)[0]
    heights = {}
    for fusion in ("gate", "xattn"):
        model = AVSRModel(ModelConfig(**SMALL, fusion=fusion))
        image = cv2.imread(str(utterance_figure(model, items[0], items[0], "same", tmp_path / f"{fusion}.png")))
        heights[fusion] = image.shape[0]
    assert heights["xattn"] > heights["gate"] + 200  # the attention panel below the gate's


def test_the_attention_band_becomes_audio_by_video_frames():
    band = np.arange(1, 16, dtype=float).reshape(5, 3)  # window 1: frames t-1, t, t+1
    matrix = attention_matrix(band)
    assert matrix.shape == (5, 5)
    for t in range(5):
        for j, v in enumerate((t - 1, t, t + 1)):
            if 0 <= v < 5:
                assert matrix[t, v] == band[t, j]
    assert matrix[0, 2] == 0 and matrix[4, 0] == 0  # outside the window


def test_the_bootstrap_interval_holds_the_estimate_narrows_with_more_utterances_and_resamples_utterances():
    rng = np.random.default_rng(0)
    widths = []
    for count in (20, 200, 2000):
        words = np.full(count, 6)
        errors = rng.binomial(6, 0.25, count)
        low, high = bootstrap_wer(errors, words, seed=0)
        assert low <= errors.sum() / words.sum() <= high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2] > 0
    assert bootstrap_wer(errors, words, seed=3) == bootstrap_wer(errors, words, seed=3)  # seeded
    # Whole utterances are resampled: the same 50 errors in 300 words are certain when every utterance
    # has one, and uncertain when five utterances hold them all.
    even, clustered = np.ones(50, int), np.zeros(50, int)
    clustered[:5] = 10
    assert bootstrap_wer(even, np.full(50, 6), seed=0) == pytest.approx((50 / 300, 50 / 300))
    low, high = bootstrap_wer(clustered, np.full(50, 6), seed=0)
    assert low < 50 / 300 < high and high - low > 0.1
    assert bootstrap_wer(np.zeros(50, int), np.full(50, 6), seed=0) == (0.0, 0.0)


@pytest.mark.slow
def test_a_raw_manifest_is_prepared_on_the_fly_and_scores_as_the_prepared_one(test_set, tmp_path):
    """A user's manifest as avsr synth writes it (id, video, text) is prepared beside the output and
    evaluated; the result equals evaluating the prepared manifest (same crops: same stride)."""
    args = ["--modes", "av", "--snr-db", "clean", "--detect-every", "2"]
    direct = subprocess.run([AVSR, "evaluate", "--manifest", test_set["manifest"], *args], capture_output=True,
                            text=True, timeout=600)
    raw_run = subprocess.run([AVSR, "evaluate", "--manifest", test_set["raw"], *args, "-o", str(tmp_path / "out")],
                             capture_output=True, text=True, timeout=600)
    assert direct.returncode == 0 and raw_run.returncode == 0, raw_run.stderr[-2000:]
    assert (tmp_path / "out" / "prepared" / "test.jsonl").is_file()
    [row] = list(csv.DictReader((tmp_path / "out" / "results.csv").open()))
    assert abs(100 * float(row["wer"]) - float(direct.stdout.splitlines()[1].split()[2])) < 0.01
