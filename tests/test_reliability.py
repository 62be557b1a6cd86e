"""Bad input, as a demanding new user gives it: never lose a user's file, never mislabel data, never
answer with a traceback. Each case checks the exit code, one line naming the file or option, no
traceback, inputs byte-identical afterwards, and no partial or temporary files left.

Commands refused before any work starts run the console script's own function in this process
(``avsr_main``, tests/conftest.py), which spares each the command's start-up (seconds on a busy
machine); commands that do work run the installed ``avsr`` in a process of its own (marked slow).
"""

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

from tests.conftest import avsr_main, one_line, wait_for

AVSR = str(Path(sys.executable).with_name("avsr"))
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def clips(synth_corpus) -> list[dict]:
    """Six clips of the shared test corpus, one by each speaker."""
    return synth_corpus.first(6)


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([AVSR, *map(str, args)], capture_output=True, text=True, timeout=600, cwd=cwd)


def digest(folder: Path) -> dict[str, str]:
    """Content hash of every file under ``folder`` (to show inputs are untouched)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp" in p.name or p.name.endswith(".partial")]


def copy_clip(clip: dict, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(clip["video"], folder / name))


def test_render_refuses_to_write_over_its_input(clips, tmp_path):
    video = copy_clip(clips[0], tmp_path / "in", "x.mp4")
    before = digest(tmp_path / "in")
    one_line(avsr_main("render", video, "-o", video), 2, str(video), "-o")
    linked = tmp_path / "in" / "link.mp4"
    linked.symlink_to(video)
    one_line(avsr_main("render", video, "-o", linked), 2, "link.mp4")
    assert digest(tmp_path / "in") == before | {"link.mp4": before["x.mp4"]}


def test_commands_refuse_outputs_that_are_inputs(clips, tmp_path):
    """lip-roi, transcribe and export: an output path that names an input is refused before anything
    is written."""
    folder = tmp_path / "in"
    video = copy_clip(clips[0], folder, "talk.mp4")
    npz = folder / "talk.npz"  # an input whose name a lip-roi output would take
    npz.write_bytes(video.read_bytes())
    before = digest(folder)
    one_line(avsr_main("lip-roi", npz, "-o", folder), 2, "talk.npz")
    text = folder / "talk.json"
    shutil.copy(video, text)  # a (strangely named) media input that transcribe's .json would replace
    before = digest(folder)
    one_line(avsr_main("transcribe", text, "-o", folder), 2, "talk.json")
    checkpoint = folder / "model.ckpt"
    checkpoint.write_bytes(b"not really")
    one_line(avsr_main("export", checkpoint, checkpoint), 2, "model.ckpt")
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
    line = one_line(avsr_main("prepare", "manifest", manifest, tmp_path / "out"), 2, "m.jsonl", problem)
    assert "unique" in line
    assert not (tmp_path / "out" / "features").exists() and not (tmp_path.parent / "escape.npz").exists()


def test_prepare_refuses_to_write_its_manifest_over_the_input_manifest(clips, tmp_path):
    manifest = manifest_of(clips, tmp_path / "train.jsonl", ["a", "b"])
    before = manifest.read_bytes()
    one_line(avsr_main("prepare", "manifest", manifest, tmp_path), 2, "train.jsonl", "OUT_DIR")
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


@pytest.mark.slow
def test_a_truncated_file_fails_instead_of_transcribing_its_first_second(clips, tmp_path):
    (tmp_path / "in").mkdir()
    cut = faststart_cut(clips[0]["video"], tmp_path / "in" / "cut.mp4", 0.3)
    for args in (("transcribe", cut, "-o", tmp_path / "t", "--quiet"),
                 ("lip-roi", cut, "-o", tmp_path / "r", "--quiet")):
        line = one_line(run(*args), 1, "cut.mp4", "truncated", "the 3.64 s its header states")
        assert line.startswith("failed:")
    assert not list((tmp_path / "t").glob("cut.*")) and not list((tmp_path / "r").glob("cut.*"))


@pytest.mark.slow
def test_transcribe_never_replaces_files_it_did_not_write(clips, tmp_path):
    """A user's own talk.txt beside talk.mp4 survives; an earlier run's transcript of another talk.mp4 in
    the same -o is kept with its summary line; --overwrite replaces both on request."""
    folder, out = tmp_path / "in", tmp_path / "in"  # outputs beside the inputs, as users often do
    video = copy_clip(clips[0], folder, "talk.mp4")
    mine = folder / "talk.txt"
    mine.write_text("my own notes\n")
    one_line(run("transcribe", video, "-o", out, "--quiet"), 1, "talk.txt", "--overwrite")
    assert mine.read_text() == "my own notes\n" and not (folder / "talk.json").exists()

    mine.unlink()
    assert run("transcribe", video, "-o", out, "--quiet").returncode == 0
    first = (out / "talk.json").read_bytes()
    assert run("transcribe", video, "-o", out, "--quiet").returncode == 0  # its own outputs: skipped, fine
    other = copy_clip(clips[1], tmp_path / "other", "talk.mp4")
    one_line(run("transcribe", other, "-o", out, "--quiet"), 1, str(other), "another input")
    assert (out / "talk.json").read_bytes() == first
    summary = [json.loads(x) for x in (out / "transcribe_summary.jsonl").read_text().splitlines()]
    assert {(r["input"], r["status"], r.get("reason")) for r in summary} == {(str(video), "skipped", None),
                                                                            (str(other), "failed", "output_exists")}

    assert run("transcribe", other, "-o", out, "--quiet", "--overwrite").returncode == 0
    assert json.loads((out / "talk.json").read_text())["input_sha256"] == hashlib.sha256(other.read_bytes()).hexdigest()
    assert leftovers(tmp_path) == []


def test_two_runs_into_one_folder_refuse_the_second(clips, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with (out / ".avsr.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # a run in progress
        one_line(avsr_main("transcribe", clips[0]["video"], "-o", out, "--quiet"), 2, str(out),
                 "another avsr transcribe")
    assert not list(out.glob("*.json"))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.slow
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


@pytest.mark.slow
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


def test_list_files_that_cannot_be_read_get_one_line(tmp_path):
    folder_list = tmp_path / "folder.txt"
    folder_list.mkdir()
    loop = tmp_path / "loop.txt"
    loop.write_text(f"@{loop}\n")
    binary = tmp_path / "latin1.txt"
    binary.write_bytes("caf\xe9.mp4\n".encode("latin-1"))
    for name, problem in ((tmp_path / "missing.txt", "not found"), (folder_list, "is a folder"),
                          (loop, "includes itself"), (binary, "not UTF-8")):
        for command in ("lip-roi", "transcribe"):
            one_line(avsr_main(command, f"@{name}", "-o", tmp_path / "out"), 2, str(name), problem)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_output_folders_that_cannot_be_folders_get_one_line(clips, tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    for out, problem in ((a_file, "is a file"), (a_file / "sub", "under a file")):
        for args in (("lip-roi", clips[0]["video"], "-o", out), ("transcribe", clips[0]["video"], "-o", out),
                     ("prepare", "manifest", manifest_of(clips[:1], tmp_path / "m.jsonl", ["a"]), out)):
            one_line(avsr_main(*args), 2, str(out), problem)
    assert a_file.read_text() == "x"


@pytest.mark.parametrize("args, names", [
    (("lip-roi", "x.mp4", "-o", "out", "--detect-every", "0"), ["--detect-every", "0: out of range; use a whole number from 1 to 13"]),
    (("transcribe", "x.mp4", "--batch-size", "0"), ["--batch-size"]),
    (("transcribe", "x.mp4", "--workers", "two"), ["--workers", "'two': use a whole number from 1 to 256"]),
    (("evaluate", "--manifest", "m.jsonl", "--beam-size", "0"), ["--beam-size"]),
    (("transcribe", "x.mp4", "--device", "cuda"), ["--device cuda", "no CUDA GPU"]),
    (("transcribe", "x.mp4", "--device", "gpu7"), ["--device gpu7", "not a device name"]),
    (("lip-roi", "x.mp4", "-o", "out", "--landmarker-model", "missing.task"), ["missing.task", "not found"]),
    (("lip-roi", "x.mp4", "-o", "out", "--landmarker-model", "README.md"), ["README.md", "not a MediaPipe .task"]),
    (("evaluate", "--manifest", "m.jsonl", "--noise", "music=no/such/dir"), ["music=no/such/dir", "not a folder"]),
])
def test_options_are_checked_once_before_any_file_is_touched(tmp_path, args, names):
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    one_line(avsr_main(*args, cwd=tmp_path), 2, *names)
    assert not (tmp_path / "out").exists()


def test_export_and_bundles_that_are_not_what_they_claim(tmp_path):
    import torch

    from avsr.models.bundle import EMBEDDED_MODELS

    text = tmp_path / "notes.ckpt"
    text.write_text("hello")
    one_line(avsr_main("export", tmp_path / "missing.ckpt", tmp_path / "m.pt"), 2, "missing.ckpt", "not found")
    one_line(avsr_main("export", text, tmp_path / "m.pt"), 2, "notes.ckpt", "not a training checkpoint")
    payload = torch.load(EMBEDDED_MODELS["synth-grid-tiny"], weights_only=True)
    broken = {
        "extra_key.pt": payload | {"config": payload["config"] | {"colour": "blue"}},
        "wrong_size.pt": payload | {"config": payload["config"] | {"dim": 96}},
        "no_weights.pt": payload | {"state_dict": {}},
        "no_config.pt": {k: v for k, v in payload.items() if k != "config"},
    }
    for name, content in broken.items():
        torch.save(content, tmp_path / name)
        one_line(avsr_main("transcribe", "x.mp4", "--model", tmp_path / name, "-o", tmp_path / "out"), 2, name,
                 "re-export it")


def test_an_empty_manifest_is_an_error_not_a_perfect_score(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    one_line(avsr_main("evaluate", "--manifest", empty, "--modes", "audio"), 2, "empty.jsonl", "holds no utterance")


@pytest.mark.slow
def test_training_on_an_empty_manifest_is_an_error(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    trained = subprocess.run([sys.executable, str(ROOT / "train.py"), "fit", "--config",
                              str(ROOT / "configs" / "synth_grid_tiny.yaml"), "--data.train_manifests", f"[{empty}]",
                              "--data.val_manifests", f"[{empty}]", "--trainer.logger", "false"],
                             capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert trained.returncode == 1 and "Traceback" not in trained.stderr
    last = [line for line in trained.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("train: error: ") and "empty.jsonl" in last and "no utterance" in last


@pytest.mark.slow
def test_damaged_weights_a_one_frame_clip_and_two_audio_tracks(clips, tmp_path):
    """NaN weights fail the file (never a transcript with bare NaN in its JSON); a 1-frame clip is too
    short to hold a word; of two audio tracks the transcript says which one it used."""
    import av
    import torch

    from avsr.io.media import load_media
    from avsr.io.writer import write_video
    from avsr.models.bundle import EMBEDDED_MODELS

    payload = torch.load(EMBEDDED_MODELS["synth-grid-tiny"], weights_only=True)
    payload["state_dict"] = {k: v.fill_(float("nan")) if v.is_floating_point() else v
                             for k, v in payload["state_dict"].items()}
    torch.save(payload, tmp_path / "nan.pt")
    line = one_line(run("transcribe", clips[0]["video"], "--model", tmp_path / "nan.pt", "-o", tmp_path / "a",
                        "--quiet"), 1, clips[0]["video"].name, "NaN")
    assert "weights are damaged" in line and not list((tmp_path / "a").glob("*.json"))

    media = load_media(clips[0]["video"])
    write_video(tmp_path / "one.mp4", media.video[:1], 25, media.audio[:640], 16_000)
    one_line(run("transcribe", tmp_path / "one.mp4", "-o", tmp_path / "b", "--quiet"), 1, "one.mp4", "too short")

    two = tmp_path / "two.mp4"
    with av.open(str(clips[0]["video"])) as inp, av.open(str(two), "w") as out:
        video = out.add_stream_from_template(inp.streams.video[0])
        tracks = [out.add_stream_from_template(inp.streams.audio[0]) for _ in range(2)]
        for packet in inp.demux():
            if packet.dts is None:
                continue
            if packet.stream.type == "video":
                packet.stream = video
                out.mux(packet)
            else:
                for track in tracks:
                    copy = av.Packet(bytes(packet))
                    copy.pts, copy.dts, copy.time_base, copy.stream = packet.pts, packet.dts, packet.time_base, track
                    out.mux(copy)
    assert run("transcribe", two, "-o", tmp_path / "c", "--quiet").returncode == 0
    warnings = json.loads((tmp_path / "c" / "two.json").read_text())["warnings"]
    assert any("has 2 audio tracks" in w and "using the first" in w for w in warnings), warnings


def processes_with(marker: str) -> list[int]:
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_ctrl_c_says_how_to_resume_and_killed_runs_leave_no_workers(clips, tmp_path):
    import os
    import signal
    import uuid

    folder = tmp_path / "in"
    for i in range(12):
        copy_clip(clips[i % len(clips)], folder, f"clip{i}.mp4")
    marker = f"AVSR_TEST_{uuid.uuid4().hex}"
    env = os.environ | {marker: "1"}
    # Ctrl-C as a terminal sends it, also when this test run was started in the background (a shell then
    # starts it with SIGINT ignored, and the child would inherit that).
    process = subprocess.Popen([AVSR, "transcribe", folder, "-o", tmp_path / "out", "--quiet"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    partial = tmp_path / "out" / ".transcribe_summary.jsonl.partial"
    # interrupt mid-way: two files done, ten to go
    wait_for(lambda: partial.exists() and partial.read_text().count("\n") >= 2, 300, "two files transcribed")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("W0000", "I0000"))]
    assert process.returncode == 130 and len(lines) == 1 and "Traceback" not in err, err[-2000:]
    assert "interrupted" in lines[0] and "resumes" in lines[0]
    assert leftovers(tmp_path / "out") == [] or all(p.name.endswith(".partial") for p in leftovers(tmp_path / "out"))

    process = subprocess.Popen([AVSR, "transcribe", folder, "-o", tmp_path / "out2", "--quiet", "--workers", "2",
                                "--overwrite"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: len(processes_with(marker)) >= 3, 60, "the CLI and its two workers", interval_s=0.5)
    done = tmp_path / "out2" / ".transcribe_summary.jsonl.partial"
    wait_for(lambda: done.exists() and done.read_text().count("\n") >= 1, 300, "the workers' first file")
    process.kill()
    process.wait()
    wait_for(lambda: not processes_with(marker), 30, "the workers to end with the killed CLI", interval_s=0.5)


# Issue 37, items 3-7: valid files are not called broken, faults leave a clean state, bad bundles are named
# for what they are, messages name the file or option and the fix, and the file system's limits.

def uneven_copies(clip: dict, folder: Path) -> dict[str, Path]:
    """``clip`` written again with 3 s more audio than video (long_audio.mp4), 3 s more video than audio
    (short_audio.mp4), and as an .mkv whose audio track holds no packet (silent_track.mkv)."""
    import av

    from avsr.io.media import load_media
    from avsr.io.writer import write_video

    folder.mkdir(parents=True, exist_ok=True)
    media = load_media(clip["video"])
    video, audio = media.video, media.audio
    write_video(folder / "long_audio.mp4", video, 25, np.concatenate([audio, np.zeros(3 * 16_000, np.float32)]))
    write_video(folder / "short_audio.mp4", np.concatenate([video, np.repeat(video[-1:], 75, 0)]), 25, audio)
    with av.open(str(folder / "silent_track.mkv"), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.height, stream.width, stream.pix_fmt = *video.shape[1:3], "yuv420p"
        track = out.add_stream("aac", rate=16_000)
        track.layout = "mono"  # an audio track to which no packet is ever written
        for index, rgb in enumerate(video):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return {path.name: path for path in folder.iterdir()}


@pytest.mark.slow
def test_audio_and_video_of_different_lengths_are_read_where_both_are(clips, tmp_path):
    files = uneven_copies(clips[0], tmp_path / "in")
    before = digest(tmp_path / "in")
    result = run("transcribe", tmp_path / "in", "-o", tmp_path / "t", "--quiet")
    assert result.returncode == 0, result.stderr[-2000:]
    notes = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    for name, (audio_s, video_s) in {"long_audio": (5.08, 2.08), "short_audio": (2.08, 5.08)}.items():
        transcript = json.loads((tmp_path / "t" / f"{name}.json").read_text())
        assert transcript["text"] == clips[0]["text"] and transcript["mode"] == "av"
        assert transcript["duration_s"] == pytest.approx(2.08, abs=0.05)  # the overlap
        said = f"its audio ({audio_s:.2f} s) and video ({video_s:.2f} s) differ in length"
        assert any(name in line and said in line for line in notes), notes
        assert transcript["warnings"] == [f"{said}; transcribing the 2.08 s they share"]
    silent = json.loads((tmp_path / "t" / "silent_track.json").read_text())  # no audio, not "corrupt"
    assert silent["mode"] == "video" and silent["text"] == clips[0]["text"], silent
    roi = run("lip-roi", tmp_path / "in", "-o", tmp_path / "r", "--quiet")  # reads no audio: refuses none for it
    assert roi.returncode == 0 and roi.stdout.startswith("3 done"), roi.stdout + roi.stderr
    assert {len(np.load(p)["roi"]) for p in (tmp_path / "r").glob("*.npz")} == {52, 127}
    assert digest(tmp_path / "in") == before and leftovers(tmp_path) == [] and sorted(files) == sorted(before)


def limited_file_size(limit_bytes: int):
    """For ``preexec_fn``: no file of the process may grow past ``limit_bytes``, as on a full disk; a write
    past it fails with EFBIG (SIGXFSZ ignored, so that it comes as an OSError, not a kill)."""
    import resource
    import signal

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return limit


@pytest.mark.slow
def test_a_write_that_fails_mid_batch_leaves_no_partial_outputs(clips, tmp_path):
    """A batch whose second file's transcript cannot be written (RLIMIT_FSIZE: each file may hold 500 bytes more
    than the first clip's largest output, the .json of the clip twice as long needs more, as a disk that fills up
    mid-batch would refuse it): that file fails
    with one line naming the file it could not write, none of its outputs stay, the first file's do, and the
    summary is finalised."""
    from avsr.io.media import load_media
    from avsr.io.writer import write_video

    (tmp_path / "in").mkdir()
    short = copy_clip(clips[0], tmp_path / "in", "a_short.mp4")
    first, second = load_media(clips[0]["video"]), load_media(clips[1]["video"])
    long = write_video(tmp_path / "in" / "b_long.mp4", np.concatenate([first.video, second.video]), 25,
                       np.concatenate([first.audio, second.audio]))
    before = digest(tmp_path / "in")
    sizes = tmp_path / "sizes"  # the short clip's largest output, written without a limit, sets the limit
    assert subprocess.run([AVSR, "transcribe", short, "-o", sizes, "--quiet"], capture_output=True).returncode == 0
    limit = max(p.stat().st_size for p in sizes.glob("a_short.*")) + 500
    shutil.rmtree(sizes)
    out = tmp_path / "out"
    result = subprocess.run([AVSR, "transcribe", short, long, "-o", out, "--quiet"], capture_output=True, text=True,
                            timeout=600, preexec_fn=limited_file_size(limit))
    line = one_line(result, 1, "b_long.mp4", str(out / "b_long.json"), "File too large", "free space")
    assert line.startswith("failed:") and "Errno" not in line
    assert json.loads((out / "a_short.json").read_text())["text"] == clips[0]["text"]
    assert sorted(p.name for p in out.iterdir()) == [".avsr_outputs.jsonl", "a_short.json", "a_short.srt",
                                                     "a_short.txt", "a_short.vtt", "transcribe_summary.jsonl"]
    summary = [json.loads(x) for x in (out / "transcribe_summary.jsonl").read_text().splitlines()]
    assert [(r["input"], r["status"], r.get("reason")) for r in summary] == [(str(short), "done", None),
                                                                           (str(long), "failed", "io_error")]
    assert digest(tmp_path / "in") == before and leftovers(tmp_path) == []


@pytest.mark.slow
def test_sigterm_stops_a_batch_as_ctrl_c_does(clips, tmp_path):
    """Containers, SLURM and systemd stop a job with SIGTERM: the summary is finalised with the files done, the
    lock goes, the one line says how to resume, and running the command again does the rest."""
    import signal

    folder = tmp_path / "in"
    for i in range(6):
        copy_clip(clips[i], folder, f"clip{i}.mp4")
    before = digest(folder)
    out = tmp_path / "out"
    process = subprocess.Popen([AVSR, "transcribe", folder, "-o", out, "--quiet"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    partial = out / ".transcribe_summary.jsonl.partial"
    wait_for(lambda: partial.exists() and partial.read_text().count("\n") >= 2, 300, "two files transcribed")
    process.send_signal(signal.SIGTERM)
    stopped = subprocess.CompletedProcess(process.args, *((process.wait(120),) + process.communicate()))
    line = one_line(stopped, 143, "terminated", "running the same command again resumes")
    assert line.startswith("avsr transcribe: terminated")
    done = [json.loads(x) for x in (out / "transcribe_summary.jsonl").read_text().splitlines()]
    assert len(done) >= 2 and {r["status"] for r in done} == {"done"}
    assert not partial.exists() and not (out / ".avsr.lock").exists() and leftovers(tmp_path) == []
    again = run("transcribe", folder, "-o", out, "--quiet")
    assert again.returncode == 0 and f"{len(done)} skipped" in again.stdout, again.stdout + again.stderr
    assert sorted(p.name for p in out.glob("*.json")) == [f"clip{i}.json" for i in range(6)]
    assert digest(folder) == before


def test_bundles_are_named_for_what_is_wrong_with_them(clips, tmp_path):
    """A bundle cut short is damaged (truncated), not "not a safe bundle"; one whose tokenizer is shorter than
    its network's outputs is refused when it is loaded, before any file is read."""
    import torch

    from avsr.models.bundle import EMBEDDED_MODELS

    data = EMBEDDED_MODELS["synth-grid-tiny"].read_bytes()
    for share in (0.5, 0.99):
        (tmp_path / f"cut{share}.pt").write_bytes(data[: int(len(data) * share)])
        line = one_line(avsr_main("transcribe", clips[0]["video"], "--model", tmp_path / f"cut{share}.pt", "-o",
                                  tmp_path / "out"), 2, f"cut{share}.pt", "damaged (truncated)", "download it again")
        assert "not a safe" not in line
    payload = torch.load(EMBEDDED_MODELS["synth-grid-tiny"], weights_only=True)
    torch.save(payload | {"tokenizer": payload["tokenizer"][:-3]}, tmp_path / "short.pt")
    one_line(avsr_main("transcribe", clips[0]["video"], "--model", tmp_path / "short.pt", "-o", tmp_path / "out"), 2,
             "short.pt", "tokenizer has 25 characters", "outputs 29", "re-export it")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert leftovers(tmp_path) == []


def test_messages_name_the_file_or_option_and_the_fix(clips, tmp_path):
    """Issue 37, item 6: each of these is refused in one line naming its file or option and the fix."""
    video = copy_clip(clips[0], tmp_path / "in", "talk.mp4")
    dashed = copy_clip(clips[0], tmp_path / "in", "-x.mp4")
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(("{" + f'"id": "a", "video": "{video}", "text": "caf\xe9"' + "}\n").encode("latin-1"))
    (tmp_path / "taken").mkdir()
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    before = digest(tmp_path)
    cases = [
        (("evaluate", "--manifest", latin, "--modes", "audio"), ["latin.jsonl:1", "not UTF-8", "iconv"]),
        (("prepare", "manifest", latin, tmp_path / "prep"), ["latin.jsonl:1", "not UTF-8", "iconv"]),
        (("render", video, "-o", tmp_path / "taken"), ["taken", "-o is a folder", "talk.render.mp4"]),
        (("synth", a_file, "--num-utterances", "12"), ["a_file", "OUT_DIR is a file", "name a folder"]),
        (("transcribe", dashed.name), ["-x.mp4", "avsr transcribe -- -x.mp4"]),
        (("transcribe", video, dashed.name), ["-x.mp4", "avsr transcribe -- -x.mp4"]),
        (("transcribe", video, "--bem-size", "3"), ["--bem-size", "did you mean --beam-size?"]),
        (("lip-roi", video, "-o", tmp_path / "r", "--qiet"), ["--qiet", "did you mean --quiet?"]),
        (("transcribe", video, "--detect-every", "1000000"), ["--detect-every", "1000000", "from 1 to"]),
        (("lip-roi", video, "-o", tmp_path / "r", "--detect-max-side", "-5"), ["--detect-max-side", "-5", "or 0"]),
    ]
    for args, names in cases:
        line = one_line(avsr_main(*args, cwd=tmp_path / "in"), 2, *names)
        assert "max_gap_frames" not in line and "or None" not in line and "Errno" not in line, line
    assert digest(tmp_path) == before and leftovers(tmp_path) == []
    assert not list(tmp_path.glob("prep/**/*.*")) and not (tmp_path / "r").exists()


@pytest.mark.slow
def test_names_near_the_file_systems_limit_and_deep_output_paths(clips, tmp_path):
    """Issue 37, item 7: an input whose outputs' names fit in 255 bytes works (their temporary names are
    shortened), also into a 3400-byte deep -o; one whose output name cannot be made fails alone, in one
    line, without a raw errno."""
    folder = tmp_path / "in"
    fits = copy_clip(clips[0], folder, "a" * 250 + ".mp4")  # a250.json is 255 bytes
    over = copy_clip(clips[0], folder, "b" * 252 + ".ts")  # b252.json and b252.npz: 257 and 256 bytes
    before = digest(folder)
    deep = tmp_path.joinpath(*["d" * 200] * 17)  # 3400 bytes: with a 255-byte name, within PATH_MAX (4096)
    result = run("transcribe", folder, "-o", deep, "--quiet")
    line = one_line(result, 1, str(over), "is 257 bytes", "limit of 255", "shorter name")
    assert line.startswith("failed:") and "Errno" not in line
    assert json.loads((deep / ("a" * 250 + ".json")).read_text())["text"] == clips[0]["text"]
    assert sorted(p.name[:3] for p in deep.iterdir()) == [".av", "aaa", "aaa", "aaa", "aaa", "tra"]
    roi = run("lip-roi", folder, "-o", tmp_path / "r", "--quiet")
    line = one_line(roi, 1, str(over), "File name too long", "shorter name")
    assert "Errno" not in line and [p.name for p in (tmp_path / "r").iterdir()] == ["a" * 250 + ".npz"]
    assert digest(folder) == before and fits.exists() and leftovers(tmp_path) == []


# issue 37 item 4: temporary folders. Each command runs in one folder, <TMPDIR>/avsr-<pid>-<random> (avsr.tmp), that
# holds the temporary files of the run and of its child processes (ONNX Runtime's .ses, the synthesiser's library
# copy, spooled crops); it is removed at exit, and swept by the next command when a kill left it.

def run_in(tmp: Path, *args: str, **popen) -> subprocess.CompletedProcess | subprocess.Popen:
    """``avsr ARGS`` with ``TMPDIR`` at ``tmp``: run to its end, or started (``popen``: Popen's arguments)."""
    import os

    tmp.mkdir(exist_ok=True)
    env = os.environ | {"TMPDIR": str(tmp)}
    if popen:
        return subprocess.Popen([AVSR, *map(str, args)], env=env, **popen)
    return subprocess.run([AVSR, *map(str, args)], capture_output=True, text=True, timeout=600, env=env)


SYNTH_TWO = ("--num-utterances", "2", "--speakers", "2", "--test-speakers", "1", "--val-speakers", "0", "--quiet")


@pytest.mark.slow
def test_commands_leave_no_temporary_files(tmp_path):
    """A command whose voice activity detector runs through ONNX Runtime (which writes a .ses file into TMPDIR
    when imported), and a synthesis whose two workers each copy espeak-ng's library into a temporary folder,
    leave TMPDIR as they found it."""
    from tests.conftest import SPEECH

    tmp = tmp_path / "tmp"
    result = run_in(tmp, "transcribe", SPEECH, "-o", tmp_path / "t", "--quiet")
    assert result.returncode == 0 and json.loads((tmp_path / "t" / f"{SPEECH.stem}.json").read_text())["text"]
    assert list(tmp.iterdir()) == []
    result = run_in(tmp, "synth", tmp_path / "s", *SYNTH_TWO, "--workers", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(list((tmp_path / "s").rglob("*.mp4"))) == 2 and list(tmp.iterdir()) == []


@pytest.mark.slow
def test_a_killed_commands_folder_is_swept_by_the_next_and_a_live_ones_is_kept(tmp_path):
    import os
    import signal

    from avsr.tmp import MARKER, start_time

    tmp = tmp_path / "tmp"
    process = run_in(tmp, "synth", tmp_path / "s", *SYNTH_TWO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = wait_for(lambda: next(tmp.glob(f"avsr-{process.pid}-*/{MARKER}"), None), 120, "the run's folder")
    process.send_signal(signal.SIGKILL)
    process.wait(60)
    killed = marker.parent
    assert killed.is_dir() and marker.read_text().split()[0] == str(process.pid)
    # Folders of this (live) process: one with its marker, one made before its marker; one whose pid was
    # recycled (the marker's start time is not the process's); a folder of another program.
    me = os.getpid()
    live, unmarked, recycled, other = (tmp / f"avsr-{me}-live", tmp / f"avsr-{me}-unmarked", tmp / f"avsr-{me}-old",
                                       tmp / "avsr-espeak-other")
    for folder in (live, unmarked, recycled, other):
        folder.mkdir()
        (folder / "held").write_text("x")
    (live / MARKER).write_text(f"{me} {start_time(me)}\n")
    (recycled / MARKER).write_text(f"{me} 1\n")

    result = run_in(tmp, "transcribe", tmp_path / "missing.mp4", "-o", tmp_path / "t", "--quiet")
    assert result.returncode != 0 and "missing.mp4" in result.stderr
    assert sorted(p.name for p in tmp.iterdir()) == sorted([live.name, unmarked.name, other.name])
    assert all((folder / "held").exists() for folder in (live, unmarked, other))


def test_an_interruption_landing_in_a_finaliser_is_not_dropped(tmp_path):
    """A SIGTERM or Ctrl-C handled while the main thread runs a __del__ would be printed with a traceback and
    dropped, and the command would go on (Python drops exceptions raised in finalisers): it stops the command."""
    import signal

    script = tmp_path / "finaliser.py"
    script.write_text('''import os, signal, sys, time
from avsr.cli import _sigterm_as_interrupt

class Finaliser:
    def __del__(self):
        os.kill(os.getpid(), getattr(signal, sys.argv[1]))
        for _ in range(100000):  # the handler runs here, inside __del__
            pass

try:
    with _sigterm_as_interrupt():
        Finaliser()  # dropped at once: the signal lands in its __del__
        for _ in range(1000):
            time.sleep(0.01)
        print("not stopped")
except KeyboardInterrupt as stop:
    print("stopped by", type(stop).__name__)
''')
    for name, stopped in (("SIGTERM", "Terminated"), ("SIGINT", "KeyboardInterrupt")):
        result = subprocess.run([sys.executable, script, name], capture_output=True, text=True, timeout=120,
                                cwd=ROOT, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        assert result.stdout.strip() == f"stopped by {stopped}" and result.stderr == "", result.stdout + result.stderr


def test_the_synthesiser_outlives_a_runs_temporary_folder(monkeypatch):
    """The synthesiser's library copy, made in a run's folder, goes with it; a later run (the command called
    twice in one process) makes a new copy, and the speech is the same."""
    from avsr.synth.tts import Synthesizer
    from avsr.tmp import run_folder

    monkeypatch.setattr(Synthesizer, "_instance", None)  # made afresh in the run (the process's one is put back)
    with run_folder() as folder:
        first = Synthesizer().synthesize("bin blue at f two now")
        assert Path(Synthesizer()._library_path).is_relative_to(folder)
    assert not folder.exists()
    with run_folder() as folder:
        again = Synthesizer().synthesize("bin blue at f two now")
        assert Path(Synthesizer()._library_path).is_relative_to(folder)
    assert np.array_equal(first.audio, again.audio)
