"""What several benches share: the repository's own test clip, synthetic clips with their texts,
long files made of them, and clips picked per speaker. Nothing here is timed."""

from __future__ import annotations

import json
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CARPHONE = ROOT / "tests" / "fixtures" / "carphone_pristine.mp4"  # real, 176x144, 29.97 fps (see its ATTRIBUTION.md)
NTSC = Fraction(30000, 1001)


# Runs a command and prints its peak RSS (KiB): each long file is measured in a process of its own.
PEAK_RSS = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)")


def make_clips(folder: Path, count: int) -> tuple[list[Path], dict[str, str]]:
    """``count`` synthetic clips (``avsr synth``, 4 speakers, seed 5) in ``folder``, and their texts by
    file stem."""
    from avsr.synth.corpus import SynthOptions, synthesize_corpus

    records = synthesize_corpus(folder, SynthOptions(num_utterances=count, speakers=4, test_speakers=1,
                                                     val_speakers=1, seed=5), progress=False)
    records = [r for split in ("train", "val", "test") for r in records[split]]
    return [folder / r["video"] for r in records], {Path(r["video"]).stem: r["text"] for r in records}


def make_long_file(clips: list[Path], path: Path, minutes: float) -> float:
    """The clips joined, over and over, into one video of about ``minutes`` at ``path`` (frames are
    streamed, not held); its duration in seconds."""
    from avsr.io.media import load_media
    from avsr.io.writer import write_video

    media = [load_media(c) for c in clips]
    per_round = sum(len(m.video) for m in media)
    rounds = int(np.ceil(minutes * 60 * 25 / per_round))
    audio = np.concatenate([np.pad(m.audio, (0, max(len(m.video) * 640 - len(m.audio), 0)))[: len(m.video) * 640]
                            for m in media] * rounds)
    frames = (frame for _ in range(rounds) for m in media for frame in m.video)
    write_video(path, frames, audio=audio, quality_crf=28)
    return len(audio) / 16000


def scaled_clip(source_frames: np.ndarray, width: int, height: int, path: Path) -> Path:
    """Real frames ``(F, H, W, 3)`` (the carphone sequence) upscaled to ``height``, padded to ``width``
    by reflection, played forwards, backwards and forwards (360 frames = 12 s at 29.97 fps)."""
    import cv2

    from avsr.io.writer import write_video

    scale = height / source_frames.shape[1]
    resized = [cv2.resize(f, (round(f.shape[1] * scale), height), interpolation=cv2.INTER_CUBIC) for f in source_frames]
    pad = width - resized[0].shape[1]
    padded = np.stack([cv2.copyMakeBorder(f, 0, 0, pad // 2, pad - pad // 2, cv2.BORDER_REFLECT) for f in resized])
    looped = np.concatenate([padded, padded[::-1], padded])
    return write_video(path, looped, NTSC)


def pick_clips(manifest: Path, count: int) -> list[dict]:
    """The first ``count`` records of a manifest, taken in turn from each speaker."""
    records = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    by_speaker = defaultdict(list)
    for record in records:
        by_speaker[record.get("speaker", record["id"].split("_")[0])].append(record)
    picked = []
    while len(picked) < min(count, len(records)):
        for group in by_speaker.values():
            if group and len(picked) < count:
                picked.append(group.pop(0))
    return picked
