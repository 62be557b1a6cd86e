"""``avsr evaluate --compare``: a second model scored on the same utterances, each condition paired with
it, and the paired bootstrap's statistics."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from avsr.evaluation.compare import format_paired, paired_gain, paired_rows, write_paired
from avsr.evaluation.sweep import sweep
from avsr.models.av_model import AVSRModel, ModelConfig
from tests.conftest import avsr_main, subset_manifest

SMALL = dict(dim=32, num_heads=2, ffn_dim=64, audio_layers=1, video_layers=1, video_channels=(8, 16))


@pytest.fixture(scope="module")
def manifest(prepared_corpus, tmp_path_factory) -> str:
    """Three utterances of each test speaker, prepared."""
    return str(subset_manifest(tmp_path_factory.mktemp("compare") / "test.jsonl", prepared_corpus / "test.jsonl",
                               count=3, per_speaker=True))


def test_the_paired_gain_is_one_minus_the_wer_ratio_and_its_interval_follows_the_per_utterance_difference():
    rng = np.random.default_rng(0)
    b = rng.binomial(6, 0.3, 200)
    assert paired_gain(b, b, seed=0) == (0.0, 0.0, 0.0)  # the same system: no gain, no doubt
    half = b // 2
    gain, low, high = paired_gain(half, b, seed=0)
    assert gain == pytest.approx(1 - half.sum() / b.sum()) and 0 < low <= gain <= high
    # The same gain twice: A one error better on half the utterances, or two better on half and one
    # worse on the other half. Pairing makes the first certain and leaves the second in more doubt.
    b = np.full(200, 2)
    steady, noisy = b.copy(), b.copy()
    steady[:100] -= 1
    noisy[:100] -= 2
    noisy[100:] += 1
    g1, low1, high1 = paired_gain(steady, b, seed=0)
    g2, low2, high2 = paired_gain(noisy, b, seed=0)
    assert g1 == g2 == pytest.approx(0.25)
    assert 0 < low1 and high1 - low1 < high2 - low2
    assert paired_gain(noisy, b, seed=4) == paired_gain(noisy, b, seed=4)  # seeded
    # B without an error: no relative gain; draws where B has none are left out of the interval.
    assert np.isnan(paired_gain(np.zeros(50, int), np.zeros(50, int), seed=0)).all()
    rare = np.zeros(200, int)
    rare[0] = 1
    gain, low, high = paired_gain(np.zeros(200, int), rare, seed=0)
    assert gain == low == high == 1.0


def test_each_row_is_paired_with_the_compared_models_row_of_its_condition(manifest, tmp_path):
    """The embedded model against an untrained one of the same preprocessing: each pair holds both rows'
    WERs and the gain their per-utterance errors give; a mode the compared model cannot run has no pair."""
    import avsr

    embedded = avsr.load_model("synth-grid-tiny").network
    torch.manual_seed(0)
    models = {"embedded": embedded, "untrained": AVSRModel(ModelConfig(**SMALL), embedded.preprocessing),
              "ears": AVSRModel(ModelConfig(**SMALL, modalities="audio"), embedded.preprocessing)}
    rows = sweep(models, manifest, [0.0], ["babble"], ["av", "audio"], seed=2, progress=False)
    paired = paired_rows(rows, "untrained", seed=2)
    by_condition = {(r.model, r.mode, r.noise): r for r in rows}
    assert [(p.model, p.mode) for p in paired] == [("embedded", "av"), ("embedded", "audio"), ("ears", "audio")]
    for pair in paired:
        a, b = by_condition[pair.model, pair.mode, "babble"], by_condition["untrained", pair.mode, "babble"]
        assert (pair.wer, pair.compared_wer, pair.utterances) == (a.wer, b.wer, 6)
        assert pair.gain == pytest.approx(1 - sum(a.errors) / sum(b.errors))
        assert pair.gain_low <= pair.gain <= pair.gain_high
        assert pair.compared_with == "untrained" and (pair.noise, pair.snr_db) == ("babble", 0.0)
    assert paired[0].gain > 0.5  # the trained model makes far fewer errors than an untrained one
    write_paired(paired, tmp_path)
    table = (tmp_path / "compare.md").read_text()
    assert table == format_paired(paired) and table.count("\n") == len(paired) + 2
    written = list(csv.DictReader((tmp_path / "compare.csv").open()))
    assert [float(r["gain"]) for r in written] == [round(p.gain, 4) for p in paired]


def test_a_model_compared_with_itself_gains_nothing_with_no_doubt(manifest):
    result = avsr_main("evaluate", "--manifest", manifest, "--modes", "av", "--snr-db", "clean", "-5", "--noise",
                       "babble", "--compare", "synth-grid-tiny")
    assert result.returncode == 0, result.stderr[-2000:]
    pairs = [[cell.strip() for cell in line.split("|")[1:-1]] for line in result.stdout.splitlines()
             if "(compared)" in line]
    assert [pair[:5] for pair in pairs] == [["synth-grid-tiny", "synth-grid-tiny (compared)", "av", noise, snr]
                                            for noise, snr in (("clean", "clean"), ("babble", "-5"))]
    for *_, wer, its_wer, gain, interval, utterances in pairs:
        assert wer == its_wer and utterances == "6"
        if float(its_wer):  # a relative gain needs errors to be relative to
            assert (gain, interval) == ("0.0", "0.0 … 0.0")
    assert float(pairs[-1][6]) > 0  # babble at -5 dB gives the comparison errors to compare
