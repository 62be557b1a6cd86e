"""The bench shelf: every script imports against today's package and says how it is run
(``python -m bench.<name>`` from the repository root), and the set-up they share does what it says.
The benches themselves measure; they are not pass/fail tests."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.stem for p in (ROOT / "bench").glob("*.py") if p.stem not in ("__init__", "common"))


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_bench_imports_and_its_docstring_shows_how_to_run_it(name):
    module = importlib.import_module(f"bench.{name}")
    assert callable(module.main)
    assert f"-m bench.{name}" in module.__doc__
    source = (ROOT / "bench" / f"{name}.py").read_text()
    assert "sys.path" not in source and "python bench/" not in source


def test_the_shelf_holds_at_most_14_scripts():
    assert len(SCRIPTS) <= 14, f"{len(SCRIPTS)} scripts in bench/: merge one into the bench it belongs with"


def test_the_peer_jobs_import_nothing_of_the_project_so_they_run_in_the_peers_environment():
    probe = "import sys, bench.peer; print(sorted({m.split('.')[0] for m in sys.modules} & {'avsr', 'torch', 'cv2'}))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(("name", "argv", "field", "value"), [
    ("av_sync", ["m.jsonl"], "clips", 40),
    ("av_sync", ["m.jsonl", "--mouth-signals"], "clips", 20),
    ("train_throughput", ["--config", "c.yaml"], "steps", 30),
    ("train_throughput", ["--compare", "fusions"], "steps", 12),
    ("train_throughput", ["--compare", "video-frontend"], "repeats", 5),
])
def test_a_merged_bench_keeps_each_modes_own_defaults(monkeypatch, name, argv, field, value):
    monkeypatch.setattr(sys, "argv", [name, *argv])
    assert getattr(importlib.import_module(f"bench.{name}").arguments(), field) == value


@pytest.mark.parametrize("argv", [[], ["--compare", "fusions", "--config", "c.yaml"],
                                  ["--compare", "video-frontend", "--", "--trainer.precision", "bf16-mixed"]])
def test_train_throughput_refuses_a_config_with_compare_and_needs_one_without(monkeypatch, argv):
    from bench.train_throughput import arguments

    monkeypatch.setattr(sys, "argv", ["train_throughput", *argv])
    with pytest.raises(SystemExit) as exit_:
        arguments()
    assert exit_.value.code == 2


def test_a_bench_runs_as_a_module_from_the_repository_root():
    result = subprocess.run([sys.executable, "-m", "bench.cli_startup", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "How long ``avsr --help``" in result.stdout


def test_pick_clips_takes_the_speakers_in_turn(tmp_path):
    from bench.common import pick_clips

    manifest = tmp_path / "test.jsonl"
    rows = [{"id": f"{speaker}_{i}", "speaker": speaker} for speaker, i in
            (("s1", 0), ("s1", 1), ("s1", 2), ("s2", 0), ("s2", 1))]
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert [r["id"] for r in pick_clips(manifest, 4)] == ["s1_0", "s2_0", "s1_1", "s2_1"]
    assert [r["id"] for r in pick_clips(manifest, 9)] == ["s1_0", "s2_0", "s1_1", "s2_1", "s1_2"]


def test_the_scaled_clip_is_the_real_sequence_at_the_size_asked_for(carphone_frames, tmp_path):
    from avsr.io.media import load_media
    from bench.common import scaled_clip

    path = scaled_clip(carphone_frames[:10], 320, 180, tmp_path / "clip.mp4")
    video = load_media(path, audio=False, fps=30000 / 1001).video
    assert video.shape == (30, 180, 320, 3)  # forwards, backwards, forwards
    assert abs(float(video[0].mean()) - float(video[19].mean())) < 3  # the first frame comes back reversed
