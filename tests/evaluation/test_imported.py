"""``avsr evaluate`` of an imported auto_avsr bundle (the random recipe weights of tests/fixtures/auto_avsr) on
clips of the shared test corpus prepared in the auto-avsr ROI style: the prepared manifest records its style, a
manifest of another style is refused in one line that says how to prepare it, the model's own tokenizer and
decoder give the words, and clips with a lead-in are read through the speech regions ``avsr transcribe`` finds."""

from __future__ import annotations

import csv
import json
import math
import re

import numpy as np
import pytest
import torch

from avsr.evaluation.reading import JointDecoder, model_decoder, reading
from avsr.evaluation.sweep import load_items, score
from avsr.io.vad import VadOptions
from avsr.models.loader import load_model
from avsr.preprocessing import VIDEO_FPS
from tests.conftest import avsr_main, one_line, subset_manifest
from tests.models.auto_avsr_fixtures import reference_state_dict


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict:
    """The vsr and asr recipe checkpoints imported with ``avsr import auto-avsr``: their bundles by kind."""
    folder = tmp_path_factory.mktemp("imported")
    out = {}
    for kind in ("vsr", "asr"):
        torch.save(reference_state_dict(kind), folder / f"{kind}.pth")
        result = avsr_main("import", "auto-avsr", folder / f"{kind}.pth", "-o", folder / f"{kind}.pt")
        assert result.returncode == 0, result.stderr
        out[kind] = folder / f"{kind}.pt"
    return out


@pytest.fixture(scope="module")
def clips(synth_corpus, tmp_path_factory) -> dict:
    """One clip of each test speaker as avsr synth wrote it (``raw``), prepared with ``avsr prepare manifest`` in
    the default style (``default``) and in the auto-avsr style (``auto``)."""
    folder = tmp_path_factory.mktemp("evaluate_imported")
    raw = subset_manifest(folder / "raw" / "test.jsonl", synth_corpus.folder / "test.jsonl", count=1, per_speaker=True)
    out = {"raw": raw}
    for name, style in (("default", "avsr"), ("auto", "auto-avsr")):
        result = avsr_main("prepare", "manifest", raw, folder / name, "--roi-style", style, "--detect-every", "2",
                           "--quiet")
        assert result.returncode == 0, result.stderr
        out[name] = folder / name / "test.jsonl"
    return out


def test_prepared_manifests_and_features_record_their_roi_style(clips):
    for name, style in (("default", "avsr"), ("auto", "auto-avsr")):
        lines = [json.loads(line) for line in clips[name].read_text().splitlines()]
        assert len(lines) == 2 and {line["roi_style"] for line in lines} == {style}
        with np.load(clips[name].parent / lines[0]["features"]) as features:
            assert str(features["meta_roi_style"]) == style
    default, auto = (load_items(str(clips[name]))[0][0]["video"] for name in ("default", "auto"))
    assert default.shape == auto.shape and np.abs(default.astype(int) - auto.astype(int)).mean() > 5  # other crops


def test_a_manifest_of_another_roi_style_is_refused_in_one_line_naming_it_and_the_fix(clips, bundles, tmp_path):
    refused = avsr_main("evaluate", "--model", bundles["vsr"], "--manifest", clips["default"])
    line = one_line(refused, 2, str(clips["default"]), "avsr ROI style", "--roi-style auto-avsr", "avsr prepare")
    assert "vsr reads auto-avsr" in line
    old = tmp_path / "old.jsonl"  # a manifest prepared before the style was recorded reads as the default style
    old.write_text("".join(json.dumps({k: v for k, v in json.loads(line).items() if k != "roi_style"} |
                                      {"features": str(clips["default"].parent / json.loads(line)["features"])}) + "\n"
                           for line in clips["default"].read_text().splitlines()))
    one_line(avsr_main("evaluate", "--model", bundles["vsr"], "--manifest", old), 2, str(old), "--roi-style auto-avsr")
    assert avsr_main("evaluate", "--manifest", old, "--modes", "audio").returncode == 0  # the embedded model's style
    # The audio model reads no crops: any style will do.
    assert avsr_main("evaluate", "--model", bundles["asr"], "--manifest", old).returncode == 0


def test_an_imported_model_is_evaluated_in_the_modes_it_reads_with_its_own_tokenizer(clips, bundles, tmp_path):
    for kind, mode in (("vsr", "video"), ("asr", "audio")):
        out = tmp_path / kind
        result = avsr_main("evaluate", "--model", bundles[kind], "--manifest", clips["auto"], "-o", out)
        assert result.returncode == 0, result.stderr
        [row] = list(csv.DictReader((out / "results.csv").open()))  # the other modes are not the model's
        assert (row["model"], row["mode"], row["utterances"], row["segmentation"]) == (kind, mode, "2", "whole")
        assert 0.0 <= float(row["wer"]) < math.inf and float(row["wer_low"]) <= float(row["wer"])
        assert f"| {kind} | {mode} | clean |" in (out / "results.md").read_text()
        refused = avsr_main("evaluate", "--model", bundles[kind], "--manifest", clips["auto"], "--modes", "av")
        one_line(refused, 2, "no model can run the modes asked for (av)", f"{kind} runs {mode}")
    one_line(avsr_main("evaluate", "--model", bundles["asr"], "--manifest", clips["auto"], "--decoder", "ctc",
                       "--beam-size", "4"), 2, "--beam-size 4 with --decoder ctc")
    one_line(avsr_main("evaluate", "--manifest", clips["default"], "--decoder", "joint"), 2, "no attention decoder")
    # The same command with the project's own model on its own crops reads the clips.
    own = avsr_main("evaluate", "--manifest", clips["default"], "--modes", "audio", "av")
    assert own.returncode == 0, own.stderr
    rows = [line.split() for line in own.stdout.splitlines()[1:]]
    assert [row[1] for row in rows] == ["audio", "av"] and all(float(row[2]) <= 20.0 for row in rows), own.stdout


def test_the_hypotheses_come_from_the_models_tokenizer_and_decoder(clips, bundles):
    loaded = load_model(bundles["asr"])
    items = load_items(str(clips["auto"]), loaded.network.preprocessing)[0]
    joint = model_decoder(loaded.network, loaded.tokenizer)
    assert isinstance(joint, JointDecoder) and joint.options.beam_size == 40
    for decoder in (joint, model_decoder(loaded.network, loaded.tokenizer, "ctc")):
        texts, weight = score(loaded.network, items, "audio", decoder)
        assert len(texts) == 2 and weight is None
        assert all(text == text.lower() and "\u2581" not in text for text in texts)  # words, as references are


def test_a_lead_in_is_read_through_the_speech_regions_transcribe_finds(clips, tmp_path):
    args = ["evaluate", "--manifest", clips["default"], "--modes", "audio", "video", "--lead-in-s", "2",
            "--trail-s", "1", "--room-tone-dbfs", "-60"]
    segmented, whole = avsr_main(*args, "-o", tmp_path / "vad"), avsr_main(*args, "--no-vad", "-o", tmp_path / "off")
    assert segmented.returncode == 0 and whole.returncode == 0, segmented.stderr + whole.stderr
    rows = {name: {r["mode"]: r for r in csv.DictReader((tmp_path / name / "results.csv").open())}
            for name in ("vad", "off")}
    for mode in ("audio", "video"):
        assert (rows["vad"][mode]["segmentation"], rows["vad"][mode]["segmented"]) == ("vad", "2")
        assert (rows["off"][mode]["segmentation"], rows["off"][mode]["segmented"]) == ("whole", "0")
    assert "| vad 2/2 |" in (tmp_path / "vad" / "results.md").read_text()
    assert float(rows["vad"]["audio"]["wer"]) <= float(rows["off"]["audio"]["wer"])
    assert float(rows["vad"]["audio"]["wer"]) <= 0.2


def test_a_clip_longer_than_the_model_reads_is_cut_at_its_pauses(clips, bundles):
    network = load_model(bundles["asr"]).network
    items = load_items(str(clips["auto"]), network.preprocessing)[0]
    long = [{key: np.concatenate([item[key] for item in items]) if key in ("video", "face_found", "audio") else
             items[0][key] for key in items[0]}]  # two utterances one after the other
    frames = len(long[0]["video"])
    network.max_input_s = 0.6 * frames / VIDEO_FPS  # shorter than both together, longer than each
    read = reading(long, "audio", network, VadOptions(), padded=False)
    assert read.segmentation == "vad" and read.segmented == 1 and len(read.spans[0]) >= 2
    assert all(b - a <= round(network.max_input_s * VIDEO_FPS) for a, b in read.spans[0])
    first = len(items[0]["video"])  # the cut lies near where the first utterance ends, not inside a word of either
    assert any(abs(b - first) <= 0.4 * VIDEO_FPS for a, b in read.spans[0][:-1]), (read.spans, first)
    assert reading(items, "audio", network, VadOptions(), padded=False).segmented == 0  # short clips: read whole
    off = reading(long, "audio", network, None, padded=False)  # --no-vad: still cut, at the least speech-like frames
    assert off.segmentation == "split" and sum(b - a for a, b in off.spans[0]) == frames


def test_decoder_options_are_refused_in_one_line_before_any_work(bundles, tmp_path):
    from avsr.errors import OptionError
    from avsr.evaluation.options import EvaluateOptions

    for bad, message in [(dict(decoder="beam"), "--decoder beam: use auto, ctc, joint"),
                         (dict(beam_size=101), "--beam-size 101: use 1 (greedy) to 100")]:
        with pytest.raises(OptionError, match=re.escape(message)):
            EvaluateOptions(**bad)
    loaded = load_model(bundles["vsr"])
    words = tmp_path / "words.txt"
    words.write_text("bin\nblue\n")
    with pytest.raises(OptionError, match="--lexicon applies to CTC beam search"):
        model_decoder(loaded.network, loaded.tokenizer, lexicon=str(words))
