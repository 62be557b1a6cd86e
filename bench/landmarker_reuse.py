"""What reusing the face landmarker across files saves: ``prepare_input`` over short synthetic clips,
one file after another, with a landmarker made per file (as before 2026-12-02) and with one reused
(``avsr.io.face_mesh.borrowed_tracker``, the default), alternating, in one run.

    python bench/landmarker_reuse.py [--clips 20] [--rounds 4] [--detect-every 6]

Prints per setting the median wall and CPU seconds (this process, all threads) over the rounds, and
their ratio. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import avsr.io.face_mesh as face_mesh
from avsr.inference.prepare import prepare_input
from avsr.preprocessing import TRANSCRIBE_DETECT_EVERY

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transcribe_speed import make_clips  # noqa: E402  (the same clips as the transcription bench)


def prepare_all(paths: list[Path], detect_every: int) -> tuple[float, float]:
    """Wall and CPU seconds to prepare ``paths`` one after another."""
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for path in paths:
        prepare_input(path, detect_every).close()
    after = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter() - started, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--detect-every", type=int, default=TRANSCRIBE_DETECT_EVERY)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths, _ = make_clips(Path(tmp), args.clips)
        prepare_all(paths[:2], args.detect_every)  # MediaPipe's first landmarker prints and loads more
        kept = face_mesh.MAX_IDLE_TRACKERS
        figures: dict[str, list[tuple[float, float]]] = {"a landmarker per file": [], "one reused": []}
        for _ in range(args.rounds):
            for label in figures:
                face_mesh.close_idle_trackers()
                face_mesh.MAX_IDLE_TRACKERS = kept if label == "one reused" else 0
                figures[label].append(prepare_all(paths, args.detect_every))
        face_mesh.MAX_IDLE_TRACKERS = kept
    print(f"{len(paths)} clips, landmarks on 1 frame in {args.detect_every}, median of {args.rounds} rounds")
    print(f"{'setting':<24}{'wall s':>8}{'CPU s':>8}{'x wall':>8}{'x CPU':>8}")
    base = None
    for label, runs in figures.items():
        wall, cpu = statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)
        base = base or (wall, cpu)
        print(f"{label:<24}{wall:>8.2f}{cpu:>8.2f}{base[0] / wall:>8.2f}{base[1] / cpu:>8.2f}")


if __name__ == "__main__":
    main()
