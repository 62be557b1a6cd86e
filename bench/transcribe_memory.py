"""Where the memory of transcribing a long file goes: peak resident memory per stage, per length.

    python -m bench.transcribe_memory [--minutes 10 30] [--clips 8] [--no-trim]

Makes long files as ``python -m bench.transcribe_speed --only-hour`` does (the synthetic clips joined over
and over) and transcribes each in a process of its own, the way ``avsr transcribe`` does with its
defaults (one worker: everything in one process). Before each stage the kernel's peak-RSS counter
is reset (``/proc/self/clear_refs``, Linux), so each row is that stage's own peak: what it holds
at its worst, on top of what the stages before it left. A stage whose peak grows with the file's
length is what keeps memory from being bounded. ``--no-trim``: the control, with the lip-ROI stage's
``release_free_heap`` (glibc ``malloc_trim``) turned off.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from bench.common import ROOT, bench_command, make_clips, make_long_file, status_mb


def measure_stages(path: str, trim: bool = True) -> dict[str, tuple[float, float]]:
    """``{stage: (RSS at its start, its peak RSS)}`` in MB, transcribing ``path`` in this process."""
    import avsr.inference.transcribe as transcribe_module
    import avsr.io.lip_roi

    if not trim:
        avsr.io.lip_roi.release_free_heap = lambda: None
    from avsr.inference.batch import _recognise
    from avsr.inference.prepare import prepare_input
    from avsr.inference.transcribe import Transcriber, TranscribeOptions

    stages: dict[str, tuple[float, float]] = {}
    current = [None, 0.0]

    def start(stage: str) -> None:
        finish()
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        current[:] = [stage, status_mb("VmRSS")]

    def finish() -> None:
        if current[0] is not None:
            stages[current[0]] = (current[1], status_mb("VmHWM"))
            current[0] = None

    def staged(stage: str, function):
        def run(*args, **kwargs):
            start(stage)
            try:
                return function(*args, **kwargs)
            finally:
                start("decode, align, write")

        return run

    start("import, load model")
    import avsr

    model = avsr.load_model("synth-grid-tiny")
    options = TranscribeOptions()
    transcriber = Transcriber(model.network, model.tokenizer, model.id, options)
    transcriber._sync = staged("sync estimate", transcriber._sync)
    transcribe_module.pause_cuts = staged("pause cuts", transcribe_module.pause_cuts)
    transcriber._forward = staged("model windows", transcriber._forward)
    start("prepare (lip ROIs, audio)")
    prepared = prepare_input(path, options.detect_every, options.crop_memory_mb, options.audio_memory_mb)
    start("decode, align, write")
    with tempfile.TemporaryDirectory() as out, open(Path(out) / "ledger", "w") as ledger:
        result = _recognise(transcriber, prepared, Path(out) / "long", ("txt", "json", "srt", "vtt"), ledger)
    finish()
    prepared.close()
    assert result.status == "done", result.error
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0, 30.0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--no-trim", action="store_true", help="the control: freed heap not given back")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # the child process: one file
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure_stages(args.measure, trim=not args.no_trim)))
        return
    columns = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = make_clips(tmp / "clips", args.clips)
        for minutes in args.minutes:
            path = tmp / f"long{minutes:g}.mp4"
            make_long_file(clips, path, minutes)
            command = bench_command("transcribe_memory", "--measure", path, *["--no-trim"] * args.no_trim)
            result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
            assert result.returncode == 0, result.stderr[-2000:]
            columns[minutes] = json.loads(result.stdout.strip().splitlines()[-1])
            path.unlink()
    print(f"{'stage (peak RSS MB; RSS at its start)':<40}" + "".join(f"{f'{m:g} min':>18}" for m in columns))
    for stage in next(iter(columns.values())):
        cells = "".join(f"{f'{c[stage][1]:.0f} ({c[stage][0]:.0f})':>18}" for c in columns.values())
        print(f"{stage:<40}{cells}")
    if len(columns) > 1:
        (m0, c0), (m1, c1) = list(columns.items())[0], list(columns.items())[-1]
        print("\ngrowth of each stage's peak, MB per minute of input:")
        for stage in c0:
            print(f"  {stage:<38}{(c1[stage][1] - c0[stage][1]) / (m1 - m0):>8.2f}")


if __name__ == "__main__":
    main()
