"""Batches of files (avsr.inference.batch): bad files reported one by one with no partial output,
a killed batch resumed, files prepared ahead or alone giving the same transcripts."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from avsr.inference.prepare import prepare_input
from avsr.inference.transcribe import TranscribeOptions, Transcriber
from avsr.io.media import load_media
from avsr.io.writer import write_video
from tests.conftest import AVSR, CARPHONE, wait_for
from tests.inference.conftest import run_cli


@pytest.mark.slow
def test_a_bad_batch_reports_every_file_and_leaves_no_partial_output(corpus, tmp_path):
    batch = tmp_path / "batch"
    batch.mkdir()
    good = [batch / "good1.mp4", batch / "good2.mp4"]
    for clip, target in zip(corpus, good):
        target.write_bytes(clip["video"].read_bytes())
    (batch / "empty.mp4").write_bytes(b"")
    (batch / "notes.mp4").write_text("this is a text file\n")
    (batch / "truncated.mp4").write_bytes(corpus[2]["video"].read_bytes()[:20000])
    (batch / "no_audio.mp4").write_bytes(CARPHONE.read_bytes())  # a face, no audio track
    speech = load_media(corpus[3]["video"])
    write_video(batch / "no_face.mp4", np.full_like(speech.video, 90), audio=speech.audio)  # audio, no face
    out = tmp_path / "out"
    result = run_cli(str(batch), "-o", str(out), "--workers", "2")
    assert result.returncode == 1, result.stderr
    summary = {Path(r["input"]).name: r for r in map(json.loads, (out / "transcribe_summary.jsonl").read_text().splitlines())}
    assert len(summary) == 7
    for name in ("good1.mp4", "good2.mp4", "no_audio.mp4", "no_face.mp4"):
        assert summary[name]["status"] == "done", summary[name]
    assert summary["no_audio.mp4"]["mode"] == "video" and "no audio track" in summary["no_audio.mp4"]["warnings"][0]
    assert summary["no_face.mp4"]["mode"] == "audio" and "no face" in summary["no_face.mp4"]["warnings"][0]
    assert summary["good1.mp4"]["mode"] == "av"
    assert "reason" not in summary["good1.mp4"]
    expected = {"empty.mp4": ("empty", "empty"), "notes.mp4": ("text file", "not_media"),
                "truncated.mp4": ("corrupt or truncated", "corrupt")}
    for name, (words, reason) in expected.items():
        assert summary[name]["status"] == "failed" and words in summary[name]["error"], summary[name]
        assert summary[name]["reason"] == reason, summary[name]
        assert str(batch / name) in summary[name]["error"]
        assert not list(out.glob(Path(name).stem + ".*")), f"{name} left outputs"
    assert f"failed: {batch / 'empty.mp4'}" in result.stderr
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [".avsr_outputs.jsonl"], \
        "temporary files left behind (the ledger of outputs stays: it says which files avsr wrote)"
    for name in ("good1", "good2", "no_audio", "no_face"):
        assert {p.suffix for p in out.glob(name + ".*")} == {".txt", ".json", ".srt", ".vtt"}


@pytest.mark.slow
def test_a_killed_batch_resumes_without_redoing_finished_files(corpus, tmp_path):
    batch = tmp_path / "batch"
    batch.mkdir()
    for index, clip in enumerate(corpus):
        (batch / f"clip{index}.mp4").write_bytes(clip["video"].read_bytes())
    out = tmp_path / "out"
    process = subprocess.Popen([AVSR, "transcribe", str(batch), "-o", str(out), "-f", "txt,srt", "--quiet"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = out / ".transcribe_summary.jsonl.partial"
    wait_for(lambda: partial.exists() and len(partial.read_text().splitlines()) >= 3, 300, "three files transcribed")
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = {p.stem: p.stat().st_mtime_ns for p in out.glob("*.json")}
    assert 3 <= len(finished) < len(corpus), "the batch was not stopped mid-way"
    result = run_cli(str(batch), "-o", str(out), "-f", "txt,srt", "--quiet")
    assert result.returncode == 0, result.stderr
    summary = [json.loads(line) for line in (out / "transcribe_summary.jsonl").read_text().splitlines()]
    assert sorted(r["status"] for r in summary) == sorted(["skipped"] * len(finished) + ["done"] * (len(corpus) - len(finished)))
    for stem, mtime in finished.items():
        assert (out / f"{stem}.json").stat().st_mtime_ns == mtime, f"{stem} was recomputed"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"clip{i}.{ext}" for i in range(len(corpus)) for ext in ("json", "srt", "txt")]
        + ["transcribe_summary.jsonl", ".avsr_outputs.jsonl"])
    # A third run with another model id (or --overwrite) redoes everything.
    again = run_cli(str(batch), "-o", str(out), "-f", "txt", "--quiet", "--overwrite")
    assert again.returncode == 0 and f"{len(corpus)} transcribed" in again.stdout


def test_a_batch_prepared_two_files_ahead_writes_what_one_file_at_a_time_writes(corpus, model, tmp_path):
    """``transcribe_batch(prefetch=2)``: the next two clips are decoded and their lips cut in threads
    while the model reads the current one; the transcripts and gate weights are those of the batch
    that prepares one file at a time (``prefetch=0``)."""
    from avsr.inference.batch import transcribe_batch

    clips = [clip["video"] for clip in corpus[:4]]
    outputs = {}
    for prefetch in (0, 2):
        summary = transcribe_batch(clips, model, tmp_path / str(prefetch), prefetch=prefetch, progress=False)
        assert [r.status for r in summary] == ["done"] * 4
        outputs[prefetch] = [json.loads((tmp_path / str(prefetch) / f"{Path(c).stem}.json").read_text())
                             for c in clips]
    assert [o["text"] for o in outputs[2]] == [o["text"] for o in outputs[0]]
    assert [o["audio_weight"] for o in outputs[2]] == [o["audio_weight"] for o in outputs[0]]


def test_a_file_prepared_alone_gets_a_landmarker_per_core_and_the_same_transcript(corpus, model, tmp_path,
                                                                                  monkeypatch):
    """A batch of one file cuts its lips with ``landmarkers_per_file(1)`` landmarkers taking the calls
    in turn (one per core, at most 4); its transcript and gate weights are those of one landmarker."""
    from avsr.inference.batch import transcribe_batch
    from avsr.io.face_mesh import FaceMeshTracker
    from avsr.parallel import landmarkers_per_file

    clip = corpus[0]["video"]
    used = set()
    detect = FaceMeshTracker.detect_faces
    with monkeypatch.context() as patched:
        patched.setattr(FaceMeshTracker, "detect_faces",
                        lambda self, *args, **kwargs: used.add(id(self)) or detect(self, *args, **kwargs))
        summary = transcribe_batch([clip], model, tmp_path, progress=False)
    assert [r.status for r in summary] == ["done"] and len(used) == landmarkers_per_file(1)
    written = json.loads((tmp_path / f"{Path(clip).stem}.json").read_text())
    alone = prepare_input(clip, landmarkers=1)
    expected = Transcriber(model.network, model.tokenizer, model.id, TranscribeOptions()).recognise(alone)
    assert written["text"] == expected.text
    assert written["audio_weight"] == [round(w, 3) if w == w else None for w in expected.audio_weight]  # null: not read
