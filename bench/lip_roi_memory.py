"""Peak memory of the lip-ROI stage on long 640x360 videos, each run in a fresh process.

    python -m bench.lip_roi_memory [--minutes 0.33 2 10]

Each clip is the real carphone sequence upscaled to 640x360 and looped (29.97 fps). The peak
resident set size of a child process that imports avsr and extracts the ROIs is printed (VmHWM),
with the crops kept in memory and with them written to a temporary file beyond 32 MB (as ``avsr
transcribe`` does), after a baseline of the interpreter with the imports alone. The stage itself
holds a few seconds of frames at a time (``avsr.io.lip_roi.iter_lip_roi``), so the spooled rows
should not grow with the clip's length.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from avsr.io.media import load_media
from avsr.io.writer import write_video
from bench.common import CARPHONE, scaled_clip

# VmHWM (peak RSS of this address space) rather than ru_maxrss, which keeps the peak of the
# forked parent from before exec.
PEAK_KB = "int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])"
CHILD = f"""
import sys, time
from avsr.io.lip_roi import LipRoiOptions, extract_lip_roi
started = time.perf_counter()
spool = None if sys.argv[2] == "none" else float(sys.argv[2])
roi = extract_lip_roi(sys.argv[1], LipRoiOptions(detect_every=3), spool_above_mb=spool)
print(len(roi), time.perf_counter() - started, {PEAK_KB})
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1 / 3, 2, 10])
    args = parser.parse_args()
    source = load_media(CARPHONE, audio=False).video
    with tempfile.TemporaryDirectory() as tmp:
        base = scaled_clip(source, 640, 360, Path(tmp) / "base.mp4")
        base_frames = load_media(base, audio=False, fps=30000 / 1001).video
        baseline = subprocess.run([sys.executable, "-c", f"import avsr.io.lip_roi; print({PEAK_KB})"],
                                  capture_output=True, text=True, check=True)
        print(f"python + imports alone: {int(baseline.stdout) / 1024:.0f} MB peak RSS")
        print(f"{'clip':<20}{'frames':>8}{'crops':>14}{'seconds':>9}{'peak RSS MB':>13}")
        for minutes in args.minutes:
            repeats = int(np.ceil(minutes * 60 * 30000 / 1001 / len(base_frames)))
            path = Path(tmp) / f"long_{minutes:g}min.mp4"
            write_video(path, (f for _ in range(repeats) for f in base_frames), Fraction(30000, 1001))
            for spool, label in (("none", "in memory"), ("32", "spooled")):
                out = subprocess.run([sys.executable, "-c", CHILD, str(path), spool],
                                     capture_output=True, text=True, check=True).stdout.split()
                frames, seconds, peak_kb = int(out[0]), float(out[1]), int(out[2])
                print(f"{f'{minutes:g} min 640x360':<20}{frames:>8}{label:>14}{seconds:>9.1f}"
                      f"{peak_kb / 1024:>13.0f}", flush=True)
            path.unlink()


if __name__ == "__main__":
    main()
