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
