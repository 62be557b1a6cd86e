"""Bad input, as a demanding new user gives it: never lose a user's file, never mislabel data, never
answer with a traceback. Each case checks the exit code, one line naming the file or option, no
traceback, inputs byte-identical afterwards, and no partial or temporary files left."""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import synth_clips

AVSR = str(Path(sys.executable).with_name("avsr"))
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[dict]:
    return synth_clips(tmp_path_factory.mktemp("clips"), num_utterances=6, speakers=4, seed=21)


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([AVSR, *map(str, args)], capture_output=True, text=True, timeout=600, cwd=cwd)


def digest(folder: Path) -> dict[str, str]:
    """Content hash of every file under ``folder`` (to show inputs are untouched)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp" in p.name or p.name.endswith(".partial")]


def one_line(result: subprocess.CompletedProcess, code: int, *names: str) -> str:
    """The single stderr line of a refused command, checked for its exit code and the names given."""
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith(("W0000", "I0000"))]
    assert result.returncode == code, result.stderr[-2000:]
    assert "Traceback" not in result.stderr + result.stdout
    assert len(lines) == 1, lines
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def copy_clip(clip: dict, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(clip["video"], folder / name))


def test_render_refuses_to_write_over_its_input(clips, tmp_path):
    video = copy_clip(clips[0], tmp_path / "in", "x.mp4")
    before = digest(tmp_path / "in")
    one_line(run("render", video, "-o", video), 2, str(video), "-o")
    linked = tmp_path / "in" / "link.mp4"
    linked.symlink_to(video)
    one_line(run("render", video, "-o", linked), 2, "link.mp4")
    assert digest(tmp_path / "in") == before | {"link.mp4": before["x.mp4"]}


def test_commands_refuse_outputs_that_are_inputs(clips, tmp_path):
    """lip-roi, transcribe and export: an output path that names an input is refused before anything
    is written."""
    folder = tmp_path / "in"
    video = copy_clip(clips[0], folder, "talk.mp4")
    npz = folder / "talk.npz"  # an input whose name a lip-roi output would take
    npz.write_bytes(video.read_bytes())
    before = digest(folder)
    one_line(run("lip-roi", npz, "-o", folder), 2, "talk.npz")
    text = folder / "talk.json"
    shutil.copy(video, text)  # a (strangely named) media input that transcribe's .json would replace
    before = digest(folder)
    one_line(run("transcribe", text, "-o", folder), 2, "talk.json")
    checkpoint = folder / "model.ckpt"
    checkpoint.write_bytes(b"not really")
    one_line(run("export", checkpoint, checkpoint), 2, "model.ckpt")
    assert digest(folder) == before | {"model.ckpt": hashlib.sha256(b"not really").hexdigest()}
    assert leftovers(tmp_path) == []


def manifest_of(clips: list[dict], path: Path, ids: list[str]) -> Path:
    path.write_text("".join(json.dumps({"id": i, "video": str(c["video"]), "text": c["text"]}) + "\n"
                            for i, c in zip(ids, clips)))
    return path


@pytest.mark.parametrize("ids, problem", [
    (["a", "b", "a"], "line 3: id 'a' repeats line 1"),
    (["a", "b", "./a"], "line 3: id './a' repeats line 1"),
    (["a", "../escape"], "line 2: id '../escape' leaves the output folder"),
    (["a", "/tmp/abs"], "line 2: id '/tmp/abs' leaves the output folder"),
])
def test_prepare_refuses_ids_that_would_mislabel_or_misplace_features(clips, tmp_path, ids, problem):
    manifest = manifest_of(clips, tmp_path / "m.jsonl", ids)
    line = one_line(run("prepare", "manifest", manifest, tmp_path / "out"), 2, "m.jsonl", problem)
    assert "unique" in line
    assert not (tmp_path / "out" / "features").exists() and not (tmp_path.parent / "escape.npz").exists()


def test_prepare_refuses_to_write_its_manifest_over_the_input_manifest(clips, tmp_path):
    manifest = manifest_of(clips, tmp_path / "train.jsonl", ["a", "b"])
    before = manifest.read_bytes()
    one_line(run("prepare", "manifest", manifest, tmp_path), 2, "train.jsonl", "OUT_DIR")
    assert manifest.read_bytes() == before


def faststart_cut(source: Path, target: Path, share: float) -> Path:
    """A copy of ``source`` (its clips repeated to 3.6 s) with the index in front, cut to ``share`` of its
    bytes: it opens, and decodes its first part as if that were all."""
    import av

    from avsr.io.media import load_media
    from avsr.io.writer import write_video

    media = load_media(source)
    frames = np.concatenate([media.video] * 4)[:91]
    audio = np.concatenate([media.audio] * 4)[: 91 * 640]
    write_video(target.with_suffix(".plain.mp4"), frames, 25, audio, 16_000)
    whole = target.with_suffix(".whole.mp4")
    with av.open(str(target.with_suffix(".plain.mp4"))) as inp, \
            av.open(str(whole), "w", options={"movflags": "faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    data = whole.read_bytes()
    target.write_bytes(data[: int(len(data) * share)])
    return target


def test_a_truncated_file_fails_instead_of_transcribing_its_first_second(clips, tmp_path):
    (tmp_path / "in").mkdir()
    cut = faststart_cut(clips[0]["video"], tmp_path / "in" / "cut.mp4", 0.3)
    for args in (("transcribe", cut, "-o", tmp_path / "t", "--quiet"),
                 ("lip-roi", cut, "-o", tmp_path / "r", "--quiet")):
        line = one_line(run(*args), 1, "cut.mp4", "truncated", "the 3.64 s its header states")
        assert line.startswith("failed:")
    assert not list((tmp_path / "t").glob("cut.*")) and not list((tmp_path / "r").glob("cut.*"))


def test_transcribe_never_replaces_files_it_did_not_write(clips, tmp_path):
    """A user's own talk.txt beside talk.mp4 survives; an earlier run's transcript of another talk.mp4 in
    the same -o is kept with its summary line; --overwrite replaces both on request."""
    folder, out = tmp_path / "in", tmp_path / "in"  # outputs beside the inputs, as users often do
    video = copy_clip(clips[0], folder, "talk.mp4")
    mine = folder / "talk.txt"
    mine.write_text("my own notes\n")
    line = one_line(run("transcribe", video, "-o", out, "--quiet"), 1, "talk.txt", "--overwrite")
    assert mine.read_text() == "my own notes\n" and not (folder / "talk.json").exists()

    mine.unlink()
    assert run("transcribe", video, "-o", out, "--quiet").returncode == 0
    first = (out / "talk.json").read_bytes()
    assert run("transcribe", video, "-o", out, "--quiet").returncode == 0  # its own outputs: skipped, fine
    other = copy_clip(clips[1], tmp_path / "other", "talk.mp4")
    line = one_line(run("transcribe", other, "-o", out, "--quiet"), 1, str(other), "another input")
    assert (out / "talk.json").read_bytes() == first
    summary = [json.loads(x) for x in (out / "transcribe_summary.jsonl").read_text().splitlines()]
    assert {(r["input"], r["status"]) for r in summary} == {(str(video), "skipped"), (str(other), "failed")}

    assert run("transcribe", other, "-o", out, "--quiet", "--overwrite").returncode == 0
    assert json.loads((out / "talk.json").read_text())["input_sha256"] == hashlib.sha256(other.read_bytes()).hexdigest()
    assert leftovers(tmp_path) == []


def test_two_runs_into_one_folder_refuse_the_second(clips, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with (out / ".avsr.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # a run in progress
        one_line(run("transcribe", clips[0]["video"], "-o", out, "--quiet"), 2, str(out), "another avsr transcribe")
    assert not list(out.glob("*.json"))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_damaged_cache_is_rebuilt_not_blamed_on_the_video(clips, tmp_path):
    video = clips[0]["video"]
    assert run("lip-roi", video, "-o", tmp_path / "rois", "--quiet").returncode == 0
    [npz] = (tmp_path / "rois").glob("*.npz")
    truncate(npz)
    again = run("lip-roi", video, "-o", tmp_path / "rois", "--quiet")
    assert again.returncode == 0 and again.stdout.startswith("1 done"), again.stdout + again.stderr
    np.load(npz)["roi"]  # whole again

    manifest = manifest_of(clips[:2], tmp_path / "m.jsonl", ["a", "b"])
    assert run("prepare", "manifest", manifest, tmp_path / "prep", "--quiet").returncode == 0
    truncate(tmp_path / "prep" / "features" / "a.npz")
    again = run("prepare", "manifest", manifest, tmp_path / "prep", "--quiet")
    assert again.returncode == 0 and again.stdout.startswith("1 done, 1 skipped"), again.stdout + again.stderr
    forced = run("prepare", "manifest", manifest, tmp_path / "prep", "--quiet", "--overwrite")
    assert forced.returncode == 0 and forced.stdout.startswith("2 done"), forced.stdout


def test_training_and_evaluation_name_a_damaged_feature_file(clips, tmp_path):
    manifest = manifest_of(clips[:3], tmp_path / "m.jsonl", ["a", "b", "c"])
    assert run("prepare", "manifest", manifest, tmp_path / "prep", "--quiet").returncode == 0
    damaged = tmp_path / "prep" / "features" / "b.npz"
    truncate(damaged)
    prepared = tmp_path / "prep" / "m.jsonl"
    one_line(run("evaluate", "--manifest", prepared, "--modes", "audio", "--snr-db", "clean"), 2, str(damaged),
             "damaged feature file")
    config = tmp_path / "tiny.yaml"
    config.write_text(json.dumps({
        "trainer": {"max_steps": 2, "default_root_dir": str(tmp_path / "run"), "enable_progress_bar": False,
                    "logger": False},
        "model": {"model": {"dim": 32, "num_heads": 2, "ffn_dim": 64, "audio_layers": 1, "video_layers": 1,
                            "video_channels": [8, 16]}},
        "data": {"train_manifests": [str(prepared)], "val_manifests": [str(prepared)], "max_frames": 200}}))
    trained = subprocess.run([sys.executable, str(ROOT / "train.py"), "fit", "--config",
                              str(ROOT / "configs" / "synth_grid_tiny.yaml"), "--config", str(config)],
                             capture_output=True, text=True, timeout=600)
    assert trained.returncode == 1, trained.stderr[-2000:]
    last = [line for line in trained.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("train: error: ") and str(damaged) in last and "damaged feature file" in last
