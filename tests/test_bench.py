"""The bench scripts that judge data rather than speed: they run on a small corpus and print figures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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
