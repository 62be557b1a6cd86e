"""The bench scripts that judge data rather than speed: they run on a small corpus and print figures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus(synth_corpus, prepared_corpus) -> tuple[Path, Path]:
    return synth_corpus.folder, prepared_corpus


def probe(corpus: tuple[Path, Path], *args: str) -> dict[str, float]:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "visual_probe.py"), *map(str, corpus), *args],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    # The summary lines ("  R² mouth_open 0.760"), not the per-speaker ones after them.
    return {name: float(value) for name, value in re.findall(r"^ +R² (\w+) +(-?[0-9.]+)$", result.stdout, re.MULTILINE)}


def test_visual_probe_reads_the_mouth_of_unseen_faces_from_the_crops(corpus):
    scores = probe(corpus)
    assert set(scores) == {"mouth_open", "mouth_spread"}
    assert scores["mouth_open"] > 0.3  # the crops of a face never seen in training show its mouth opening
    control = probe(corpus, "--no-mean")
    assert control["mouth_open"] < scores["mouth_open"]  # identity left in the pixels hides the mouth


def test_motion_amplitude_prints_each_speakers_motion_and_the_gain_control(corpus):
    prepared = corpus[1]
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "motion_amplitude.py"), str(prepared)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    motion = {(split, speaker): float(rms) for split, speaker, rms in
              re.findall(r"^(train|val|test) +(s\d+) +\d+ +([0-9.]+)$", result.stdout, re.MULTILINE)}
    assert {split for split, _ in motion} == {"train", "val", "test"} and len(motion) == 6
    assert all(0.05 < rms < 1.0 for rms in motion.values())  # lips that move, in standardised grey levels
    control = subprocess.run([sys.executable, str(ROOT / "bench" / "motion_amplitude.py"), str(prepared), "--model",
                              "synth-grid-tiny", "--gains", "1", "4", "--rms"], capture_output=True, text=True,
                             timeout=300)
    assert control.returncode == 0, control.stderr[-2000:]
    rows = {label: float(wer) for label, wer in re.findall(r"^(gain \S+|utterance_rms \S+) +all ([0-9.]+)",
                                                           control.stdout, re.MULTILINE)}
    assert set(rows) == {"gain 1", "gain 4", "utterance_rms 0.26"}
    assert rows["gain 4"] != rows["gain 1"]  # the gain reaches the model's input


def test_face_gaps_scores_the_clips_as_evaluate_does_and_with_the_face_removed(corpus):
    """``bench/face_gaps.py``: its "none" column is the AV WER ``avsr evaluate`` scores on the same clips;
    removing the face everywhere leaves the model its audio, which it still reads."""
    import jiwer

    import avsr
    from avsr.decoding.greedy import greedy_decode
    from avsr.evaluation.sweep import load_items, score

    manifest = corpus[1] / "test.jsonl"
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "face_gaps.py"), "synth-grid-tiny", "--manifest",
                             str(manifest), "--clips", "6"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    header = re.search(r"^model +(.+)$", result.stdout, re.MULTILINE).group(1).split()
    assert header == ["none", "start", "middle", "end", "every", "25", "all", "audio"]
    row = re.search(r"^synth-grid-tiny((?: +[0-9.]+){7})$", result.stdout, re.MULTILINE)
    row = [float(x) for x in row.group(1).split()]
    network = avsr.load_model("synth-grid-tiny").network
    items = load_items(str(manifest), network.preprocessing)[0][:6]
    references = [item["text"] for item in items]
    for column, mode in ((0, "av"), (6, "audio")):
        expected = 100 * jiwer.wer(references, score(network, items, mode, greedy_decode)[0])
        assert row[column] == pytest.approx(expected, abs=0.05)
    assert row[5] < 50  # no face at all: the audio carries the clips


def test_paired_wer_scores_both_sides_as_evaluate_does(corpus):
    """``bench/paired_wer.py`` with one model read in two modes: the B column is the model's video
    head in every condition (it hears no noise), the A column its AV WER, and the gain is 1 - A / B."""
    import jiwer

    import avsr
    from avsr.decoding.greedy import greedy_decode
    from avsr.evaluation.sweep import load_items, score

    manifest = corpus[1] / "test.jsonl"
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "paired_wer.py"), "synth-grid-tiny",
                             "synth-grid-tiny", "--b-mode", "video", "--manifest", str(manifest), "--snr-db", "clean",
                             "0"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    video = float(re.search(r"video heads: A ([0-9.]+) %", result.stdout).group(1))
    rows = {label: tuple(map(float, values)) for label, *values in
            re.findall(r"^(clean|babble 0 dB) +([0-9.]+) +([0-9.]+) +(-?[0-9.]+) +(-?[0-9.]+) … (-?[0-9.]+)$",
                       result.stdout, re.MULTILINE)}
    assert set(rows) == {"clean", "babble 0 dB"}
    network = avsr.load_model("synth-grid-tiny").network
    items = load_items(str(manifest), network.preprocessing)[0]
    clean = 100 * jiwer.wer([item["text"] for item in items], score(network, items, "av", greedy_decode)[0])
    assert rows["clean"][0] == pytest.approx(clean, abs=0.05)
    for a, b, gain, low, high in rows.values():
        assert b == video
        assert low <= gain <= high
        if b:
            assert gain == pytest.approx(100 * (1 - a / b), abs=1.0)  # from figures printed to 0.1


def test_paired_wer_reads_b_from_another_preparation_of_the_same_utterances(corpus):
    """``--b-manifest``: B is scored on its own manifest (here the same one: every gain is 0), and a
    manifest that does not hold the same utterances in the same order is refused in one line."""
    manifest = corpus[1] / "test.jsonl"
    command = [sys.executable, str(ROOT / "bench" / "paired_wer.py"), "synth-grid-tiny", "synth-grid-tiny",
               "--manifest", str(manifest), "--snr-db", "0"]
    result = subprocess.run(command + ["--b-manifest", str(manifest)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    a, b, gain = re.search(r"^babble 0 dB +([0-9.]+) +([0-9.]+) +(-?[0-9.]+)", result.stdout, re.MULTILINE).groups()
    assert a == b and float(gain) == 0.0
    reordered = manifest.with_name("test_reordered.jsonl")
    reordered.write_text("".join(reversed(manifest.read_text().splitlines(keepends=True))))
    try:
        refused = subprocess.run(command + ["--b-manifest", str(reordered)], capture_output=True, text=True,
                                 timeout=300)
    finally:
        reordered.unlink()
    assert refused.returncode != 0 and "does not hold" in refused.stderr and "Traceback" not in refused.stderr


def test_lead_in_lengthens_each_clip_with_quiet_sound_and_a_held_crop_and_scores_it(corpus):
    """``bench/lead_in.py``: 0 frames is ``avsr evaluate``'s AV scoring of the clips; a lead-in of n
    frames adds n frames of the clip's quietest sound and its first crop held (or its last, at the end)."""
    import importlib.util

    import jiwer

    import avsr
    from avsr.decoding.greedy import greedy_decode
    from avsr.evaluation.sweep import load_items, score
    from avsr.io.writer import quietest_stretch

    spec = importlib.util.spec_from_file_location("lead_in", ROOT / "bench" / "lead_in.py")
    lead_in = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lead_in)
    manifest = corpus[1] / "test.jsonl"
    network = avsr.load_model("synth-grid-tiny").network
    items = load_items(str(manifest), network.preprocessing)[0]
    item = items[0]
    longer = lead_in.with_lead_in(item, 3)
    assert len(longer["video"]) == len(item["video"]) + 3 and len(longer["audio"]) == len(item["audio"]) + 3 * 640
    assert (longer["video"][:4] == item["video"][0]).all() and (longer["video"][3:] == item["video"]).all()
    np.testing.assert_array_equal(longer["audio"][: 3 * 640], quietest_stretch(item["audio"], 3))
    assert np.abs(longer["audio"][: 3 * 640]).max() < np.abs(item["audio"]).max() / 4  # quiet, not speech
    trailing = lead_in.with_lead_in(item, 2, at="end", digital_zero=True)
    assert (trailing["video"][-3:] == item["video"][-1]).all() and not trailing["audio"][-2 * 640:].any()

    result = subprocess.run([sys.executable, str(ROOT / "bench" / "lead_in.py"), "synth-grid-tiny", "--manifest",
                             str(manifest), "--frames", "0", "3"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {mode: [float(x) for x in values.split()] for mode, values in
            re.findall(r"^synth-grid-tiny +(av|audio|video)((?: +[0-9.]+){2})$", result.stdout, re.MULTILINE)}
    assert set(rows) == {"av", "audio", "video"}
    references = [i["text"] for i in items]
    for mode, row in rows.items():
        assert row[0] == pytest.approx(100 * jiwer.wer(references, score(network, items, mode, greedy_decode)[0]),
                                       abs=0.05)
