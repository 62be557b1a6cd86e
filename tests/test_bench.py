"""The bench scripts that judge data rather than speed: they run on a small corpus and print figures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from avsr.data.prepare import prepare_manifest
from avsr.io.lip_roi import LipRoiOptions
from avsr.synth.corpus import SynthOptions, synthesize_corpus

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("probe")
    synthesize_corpus(folder / "corpus", SynthOptions(num_utterances=24, speakers=6, test_speakers=1, val_speakers=1,
                                                      seed=5), progress=False)
    for split in ("train", "val", "test"):
        prepare_manifest(folder / "corpus" / f"{split}.jsonl", folder / "prepared", LipRoiOptions(detect_every=2),
                         progress=False)
    return folder / "corpus", folder / "prepared"


def probe(corpus: tuple[Path, Path], *args: str) -> dict[str, float]:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "visual_probe.py"), *map(str, corpus), *args],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return {name: float(value) for name, value in re.findall(r"R² (\w+)\s+(-?[0-9.]+)", result.stdout)}


def test_visual_probe_reads_the_mouth_of_unseen_faces_from_the_crops(corpus):
    scores = probe(corpus)
    assert set(scores) == {"mouth_open", "mouth_spread"}
    assert scores["mouth_open"] > 0.3  # the crops of a face never seen in training show its mouth opening
    control = probe(corpus, "--no-mean")
    assert control["mouth_open"] < scores["mouth_open"]  # identity left in the pixels hides the mouth
