"""Speed and memory of ``avsr transcribe`` on this machine, in one run.

Prints:
  * real-time factor (wall time / audio duration, end to end: decoding, lip ROIs, model, decoding
    of the CTC output, writing all four outputs) and WER over synthetic clips, one worker unless
    said: the defaults before 2026-12-01 (landmarks on every full-size frame), those of 4cf318e
    (2026-12-01; the baseline of the run: landmarks on every 3rd frame, one file
    at a time, thread pools as they come, a landmarker made per file), those of 622ea5f (the
    next files, one per core, prepared in threads while the model reads the current one; numpy's
    BLAS on one thread and torch on the cores the preparations leave,
    ``avsr.parallel.model_threads``), today's defaults (landmarks on every 6th frame; the lip-ROI
    column "12-02": landmarkers reused across files, a landmarker per core for a file prepared
    alone, one RGB reformatter per stream; "before": none of these), the stride of 6 alone, the
    lip-ROI changes alone, reuse switched off, no prefetch (with and without the lip-ROI changes),
    one file ahead, the thread pools as they come, two workers, landmarks on every frame, the model
    reading a file's windows while the rest is still being cut (``avsr.inference.stream``; off on the
    CPU by default), beam search, and greedy with the model run by ONNX Runtime (when the [onnx]
    extra is installed); per row also the per-file
    prepare and recognise seconds summed over the files (as each file's process timed them) and
    the seconds to the first file written;
  * peak resident memory and RTF of ``avsr transcribe`` (defaults) on a one-hour video made by
    concatenating the clips; ``--hour-minutes 10 60`` measures files of several lengths, each in its
    own process, so that memory can be compared across lengths; ``--early-rounds 3`` also measures
    each long file with and without the model reading while the file is cut, alternating, each run
    in a process of its own.

    python -m bench.transcribe_speed [--clips 20] [--hour-minutes 60 ...] [--skip-hour | --only-hour]
                                      [--early-rounds N]

Run it on an otherwise idle machine: it measures wall time.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

import avsr
from avsr.cli import TRANSCRIBE_WORKERS
from avsr.inference.batch import transcribe_batch
from avsr.inference.transcribe import TranscribeOptions
from avsr.parallel import default_prefetch
from avsr.io.media import load_media
from avsr.text import word_error_rate
from bench.common import PEAK_RSS, make_clips, make_long_file


def timed_batch(paths, model, out: Path, options: TranscribeOptions, workers: int,
                prefetch: int | None = None) -> float:
    started = time.perf_counter()
    summary = transcribe_batch(paths, model, out, options=options, workers=workers, overwrite=True, progress=False,
                               prefetch=prefetch)
    assert all(r.status == "done" for r in summary), [r.error for r in summary if r.status != "done"]
    return time.perf_counter() - started


def stage_seconds(out: Path, started_at: float) -> tuple[float, float, float]:
    """Summed per-file ``prepare`` and ``recognise`` seconds of the ``.json`` files in ``out`` (as
    each file's own process timed them), and the seconds from the batch's start to the first file
    written: with workers, start-up shows in the last, contention between them in the first two."""
    files = list(out.glob("*.json"))
    timings = [json.loads(f.read_text())["timings_s"] for f in files]
    first = min(f.stat().st_mtime for f in files) - started_at
    return sum(t["prepare"] for t in timings), sum(t["recognise"] for t in timings), first


@contextlib.contextmanager
def old_lip_roi_defaults():
    """The lip-ROI stage as before 2026-12-01 (in this process): landmarks on the full-size frame and
    every frame converted to gray by FFmpeg (now: detection at 320 px and the luma plane read)."""
    import avsr.inference.prepare as prepare_module
    import avsr.io.face_track as face_track
    from avsr.io.lip_roi import LipRoiOptions
    from avsr.io.frames import _rotate

    saved = prepare_module.LipRoiOptions, face_track.frame_to_gray
    prepare_module.LipRoiOptions = functools.partial(LipRoiOptions, detect_max_side=None)
    face_track.frame_to_gray = lambda frame: _rotate(frame.to_ndarray(format="gray"), frame.rotation or 0)
    try:
        yield
    finally:
        prepare_module.LipRoiOptions, face_track.frame_to_gray = saved


@contextlib.contextmanager
def landmarker_per_clip():
    """A new face landmarker for every clip (before 2026-12-02; now one is reused,
    ``avsr.io.face_mesh.borrowed_tracker``)."""
    import avsr.io.face_mesh as face_mesh

    saved = face_mesh.MAX_IDLE_TRACKERS
    face_mesh.close_idle_trackers()
    face_mesh.MAX_IDLE_TRACKERS = 0
    try:
        yield
    finally:
        face_mesh.MAX_IDLE_TRACKERS = saved


@contextlib.contextmanager
def lip_roi_before_12_02():
    """The lip-ROI stage of transcription as before 2026-12-02 (in this process), but for the stride:
    a new landmarker per clip, one landmarker per file (now a file prepared alone gets one per core),
    and FFmpeg's scaler set up for every RGB frame (now one reformatter per stream)."""
    import avsr.inference.batch as batch_module
    import avsr.io.face_track as face_track

    saved = batch_module.landmarkers_per_file, face_track.VideoReformatter
    batch_module.landmarkers_per_file = lambda files_at_once: 1
    face_track.VideoReformatter = lambda: None  # frame_to_rgb without a kept reformatter
    try:
        with landmarker_per_clip():
            yield
    finally:
        batch_module.landmarkers_per_file, face_track.VideoReformatter = saved


@contextlib.contextmanager
def thread_pools_as_they_were():
    """No thread-pool policy (before 3cb86a0…622ea5f, 2026-12-01): numpy's BLAS and torch on all
    their threads beside the preparation (now: ``avsr.parallel.model_threads``)."""
    import avsr.inference.batch as batch_module

    saved = batch_module.model_threads
    batch_module.model_threads = lambda beside: contextlib.nullcontext()
    try:
        yield
    finally:
        batch_module.model_threads = saved


def clip_figures(clips: list[Path], seconds: float, model, tmp: Path, references: dict[str, str]) -> None:
    timed_batch(clips[:2], model, tmp / "warm", TranscribeOptions(), 1)  # MediaPipe and torch warm-up
    workers = TRANSCRIBE_WORKERS  # what `avsr transcribe` starts by default
    print(f"{'decoding':<34}{'landmarks':>10}{'workers':>8}{'prefetch':>9}{'pools':>7}{'lip-ROI':>10}{'wall s':>9}"
          f"{'RTF':>8}{'WER %':>7}{'prepare s':>11}{'recognise s':>12}{'first s':>9}")

    def row(name: str, options: TranscribeOptions, count: int, network=model, prefetch: int | None = None,
            pools: bool = True, today: bool = True, reuse: bool = True) -> None:
        """``today``: with the lip-ROI changes of 19a37f3…f5889b5 (landmarkers reused, several per file prepared
        alone, one RGB reformatter per stream); ``reuse`` alone switches the first off."""
        started_at = time.time()
        with contextlib.ExitStack() as stack:
            if not pools:
                stack.enter_context(thread_pools_as_they_were())
            if not today:
                stack.enter_context(lip_roi_before_12_02())
            elif not reuse:
                stack.enter_context(landmarker_per_clip())
            wall = timed_batch(clips, network, tmp / "out", options, count, prefetch)
        every = "every" if options.detect_every == 1 else f"1 in {options.detect_every}"
        prepare, recognise, first = stage_seconds(tmp / "out", started_at)
        ahead = "-" if count > 1 or prefetch == 0 else str(default_prefetch() if prefetch is None else prefetch)
        lip_roi = "12-02" if today and reuse else "no reuse" if today else "before"
        print(f"{name:<34}{every:>10}{count:>8}{ahead:>9}{'set' if pools else 'as is':>7}{lip_roi:>10}"
              f"{wall:>9.2f}{wall / seconds:>8.3f}{word_error(tmp / 'out', references):>7.1f}"
              f"{prepare:>11.2f}{recognise:>12.2f}{first:>9.2f}", flush=True)

    before = TranscribeOptions(read_while_cutting=False)  # earlier defaults, whatever today's become
    with old_lip_roi_defaults():  # the defaults before 2026-12-01
        row("greedy, old defaults", replace(before, detect_every=1), 1, prefetch=0, pools=False, today=False)
    row("greedy, defaults of 12-01", replace(before, detect_every=3), 1, prefetch=0, pools=False,
        today=False)  # the run's baseline
    row("greedy, defaults of 12-01 (late)", replace(before, detect_every=3), workers, today=False)
    row("greedy, defaults", TranscribeOptions(), workers)
    row("greedy, read while cutting", TranscribeOptions(read_while_cutting=True), workers)
    row("greedy", TranscribeOptions(), workers, today=False)
    row("greedy", TranscribeOptions(detect_every=3), workers)
    row("greedy", TranscribeOptions(), workers, reuse=False)
    row("greedy", TranscribeOptions(), 1, prefetch=0)
    row("greedy", TranscribeOptions(), 1, prefetch=0, today=False)
    row("greedy", TranscribeOptions(), 1, prefetch=1)
    row("greedy", TranscribeOptions(), 1, pools=False)
    row("greedy", TranscribeOptions(), 2)
    row("greedy", TranscribeOptions(detect_every=1), workers)
    row("beam 16", TranscribeOptions(beam_size=16), workers)
    row("beam 16 + lexicon", TranscribeOptions(beam_size=16, lexicon=str(tmp / "clips" / "train.jsonl")), workers)
    from avsr.models.onnx import OnnxError, export_onnx

    try:  # the same model run by ONNX Runtime (the [onnx] extra)
        import onnxruntime  # noqa: F401

        export_onnx(model.network, tmp / "model.onnx", model.tokenizer)
        onnx_model = avsr.load_model(tmp / "model.onnx")
    except (ImportError, OnnxError) as error:
        print(f"(onnx backend not measured: {error})")
    else:
        row("greedy, onnx backend", TranscribeOptions(), workers, onnx_model)


def word_error(out: Path, references: dict[str, str]) -> float:
    """WER (%) of the transcripts in ``out`` against the clips' texts."""
    stems = sorted(references)
    hypotheses = [json.loads((out / f"{stem}.json").read_text())["text"] for stem in stems]
    return 100 * word_error_rate([references[stem] for stem in stems], hypotheses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--hour-minutes", type=float, nargs="+", default=[60.0])
    parser.add_argument("--skip-hour", action="store_true")
    parser.add_argument("--only-hour", action="store_true", help="measure the long file only")
    parser.add_argument("--early-rounds", type=int, default=0,
                        help="also time each long file N times with and without reading while cutting, each run in "
                        "a process of its own")
    args = parser.parse_args()
    model = avsr.load_model("synth-grid-tiny")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips, references = make_clips(tmp / "clips", args.clips)
        seconds = sum(load_media(c, video=False).duration_s for c in clips)
        print(f"{len(clips)} synthetic clips, {seconds:.1f} s of speech, 224x224, model {model.id}")
        if not args.only_hour:
            clip_figures(clips, seconds, model, tmp, references)
        if args.skip_hour:
            return
        for minutes in args.hour_minutes:
            long_file_figures(clips, minutes, tmp, args.early_rounds)




# One batch of one file in a process of its own: wall seconds (after loading the model) and peak RSS (KiB), read
# from VmHWM: Linux's ru_maxrss of a process keeps the RSS its parent had when it was forked (1.7 GB here).
EARLY_RUN = ("import sys, time; from pathlib import Path; import avsr; "
             "from avsr.inference.batch import transcribe_batch; "
             "from avsr.inference.transcribe import TranscribeOptions; "
             "model = avsr.load_model('synth-grid-tiny'); started = time.perf_counter(); "
             "options = TranscribeOptions(read_while_cutting=sys.argv[3] == 'on'); "
             "[r] = transcribe_batch([Path(sys.argv[1])], model, sys.argv[2], options=options, overwrite=True, "
             "progress=False); assert r.status == 'done', r.error; "
             "peak = [line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')][0]; "
             "print(time.perf_counter() - started, peak)")


def reading_while_cutting(path: Path, duration: float, rounds: int, tmp: Path) -> None:
    """``avsr transcribe``'s batch on one long file, the model reading windows while the file is cut
    and not (the default on the CPU), each run in a process of its own, alternating, ``rounds`` times
    each: medians of wall time and peak RSS, and the ratio of the times."""
    runs: dict[str, list[tuple[float, float]]] = {"on": [], "off": []}
    texts = set()
    for _ in range(rounds):
        for setting in ("off", "on"):
            out = tmp / f"early_{setting}"
            result = subprocess.run([sys.executable, "-c", EARLY_RUN, str(path), str(out), setting],
                                    capture_output=True, text=True)
            assert result.returncode == 0, result.stderr[-2000:]
            wall, peak_kib = map(float, result.stdout.split()[-2:])
            runs[setting].append((wall, peak_kib / 1024))
            texts.add((out / f"{path.stem}.txt").read_text())
            print(f"  read while cutting {setting:<3}: {wall:.1f} s, peak RSS {peak_kib / 1024:.0f} MB", flush=True)
    (on, on_mb), (off, off_mb) = (np.median(runs[s], axis=0) for s in ("on", "off"))
    print(f"one file of {duration / 60:.1f} min, medians of {rounds}: read while cutting {on:.1f} s "
          f"(RTF {on / duration:.3f}, {on_mb:.0f} MB), not {off:.1f} s (RTF {off / duration:.3f}, {off_mb:.0f} MB): "
          f"{off / on:.2f}x; {'the same transcript' if len(texts) == 1 else 'TRANSCRIPTS DIFFER'}", flush=True)


def long_file_figures(clips: list[Path], minutes: float, tmp: Path, rounds: int = 0) -> None:
    hour = tmp / f"long{minutes:g}.mp4"
    duration = make_long_file(clips, hour, minutes)
    if rounds:
        reading_while_cutting(hour, duration, rounds, tmp)
    out = tmp / f"long{minutes:g}_out"
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", PEAK_RSS, str(Path(sys.executable).with_name("avsr")), "transcribe",
                             str(hour), "-o", str(out), "--quiet"], capture_output=True, text=True)
    wall = time.perf_counter() - started
    assert result.returncode == 0, result.stderr[-2000:]
    peak_mb = int(result.stdout.split()[-1]) / 1024
    words = len((out / f"{hour.stem}.txt").read_text().split())
    hour.unlink()
    print(f"\none file of {duration / 60:.1f} min: {wall:.0f} s wall (RTF {wall / duration:.3f}), "
          f"peak RSS {peak_mb:.0f} MB, {words} words", flush=True)


if __name__ == "__main__":
    main()
