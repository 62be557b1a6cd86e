"""How the lip-ROI stage's peak memory grows per minute of video, as ``avsr transcribe`` runs it.

    python bench/lip_roi_growth.py [--minutes 5 10] [--clips 8] [--detect-every 1]

(``bench/lip_roi_memory.py`` is the stage's absolute peak on 640x360 clips with the frame cache
on and off, at ``lip-roi``'s defaults; this one is the growth between lengths, crops spooled and
landmarks on every frame as in transcription, on the synthetic clips of the transcribe benches.)

Makes long files as ``bench/transcribe_speed.py --only-hour`` does (the synthetic clips joined over
and over) and runs :func:`avsr.io.lip_roi.extract_lip_roi` on each in a fresh process, crops
spooled to disk (as ``avsr transcribe`` spools a long file's crops), landmarks on every frame by
default (``avsr transcribe``'s stride). Prints, per length, the process's resident memory before
the stage and its peak during it (kernel's VmHWM), then the growth per minute between the lengths:
what keeps the stage from running in bounded memory. To compare two versions of the library, run
it with each on ``PYTHONPATH`` one after the other.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transcribe_speed import make_clips, make_hour  # noqa: E402

# Run in a child: import the stage, reset the peak counter, cut the crops, print "RSS-before peak" in MB.
CHILD = """
import sys
from pathlib import Path
from avsr.io.lip_roi import LipRoiOptions, extract_lip_roi

def mb(field):
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field + ":"))
    return int(line.split()[1]) / 1024

before = mb("VmRSS")
Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
roi = extract_lip_roi(sys.argv[1], LipRoiOptions(detect_every=int(sys.argv[2])), spool_above_mb=1)
print(before, mb("VmHWM"), len(roi.face_found))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[5.0, 10.0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--detect-every", type=int, default=1)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = make_clips(tmp / "clips", args.clips)
        print(f"{'minutes':>8}{'frames':>8}{'RSS before MB':>15}{'peak MB':>9}{'stage MB':>10}")
        for minutes in args.minutes:
            path = tmp / f"long{minutes:g}.mp4"
            make_hour(clips, path, minutes)
            done = subprocess.run([sys.executable, "-c", CHILD, str(path), str(args.detect_every)],
                                  capture_output=True, text=True)
            assert done.returncode == 0, done.stderr[-2000:]
            before, peak, frames = map(float, done.stdout.split()[-3:])
            path.unlink()
            rows.append((frames / 1500, peak - before))
            print(f"{minutes:>8g}{frames:>8.0f}{before:>15.0f}{peak:>9.0f}{peak - before:>10.0f}", flush=True)
    for (m0, s0), (m1, s1) in zip(rows, rows[1:]):
        print(f"growth {m0:.1f} -> {m1:.1f} min: {(s1 - s0) / (m1 - m0):.2f} MB per minute of video")


if __name__ == "__main__":
    main()
