"""``avsr prepare manifest``: lip ROIs and 16 kHz audio for every utterance of a manifest.

Input manifest lines: ``{"id", "video", "text"[, "audio"]}`` (other fields are kept). Output, in
``OUT_DIR``: ``features/<id>.npz`` (``roi (T, 96, 96) uint8``, ``face_found (T,)``, ``audio
(640 T,) int16``), the prepared manifest ``<name>.jsonl`` (``id, text, features, num_frames,
duration_s`` + kept fields) and ``prepare_summary.jsonl`` (one line per input: status, error).
Re-running skips utterances whose features are current (same media content and options).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from avsr.data.manifest import read_jsonl, resolve, write_jsonl
from avsr.io.lip_roi import LipRoiOptions, extract_lip_roi
from avsr.io.media import MediaError, load_media
from avsr.io.roi_batch import cache_key, file_sha256, stored_key
from avsr.parallel import run_jobs

SAMPLES_PER_FRAME = 640
FEATURES_FORMAT = "1"


def _key(video: Path, audio: Path | None, options: LipRoiOptions) -> str:
    """The lip-ROI cache key of the video (content + options), plus the separate audio file's hash."""
    parts = {"roi": cache_key(video, options), "audio": file_sha256(audio) if audio else None,
             "format": FEATURES_FORMAT}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _prepare_one(record: dict, video: Path, audio: Path | None, output: Path, options: LipRoiOptions) -> dict:
    started = time.perf_counter()
    status = {"id": record["id"], "video": str(video)}
    try:
        key = _key(video, audio, options)
        if not (output.exists() and stored_key(output) == key):
            roi = extract_lip_roi(video, options)
            samples = load_media(audio or video, video=False).audio
            if samples is None:
                raise MediaError(audio or video, "no_audio", "has no audio track; add an \"audio\" field to the line")
            samples = np.pad(samples, (0, max(len(roi) * SAMPLES_PER_FRAME - len(samples), 0)))
            samples = samples[: len(roi) * SAMPLES_PER_FRAME]
            pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype(np.int16)
            tmp = output.with_name(f".{output.name}.tmp.npz")
            np.savez(tmp, roi=roi.roi, face_found=roi.face_found, audio=pcm, meta_cache_key=np.array(key))
            tmp.replace(output)
            status["status"] = "done"
        else:
            status["status"] = "skipped"
        with np.load(output) as data:
            frames, found = len(data["face_found"]), float(data["face_found"].mean())
        return status | {"num_frames": frames, "face_found_rate": found, "seconds": time.perf_counter() - started}
    except (MediaError, OSError, ValueError) as error:
        return status | {"status": "failed", "error": str(error) if str(video) in str(error) else f"{video}: {error}"}
    except Exception as error:  # one utterance's unexpected failure must not end the batch
        return status | {"status": "failed", "error": f"{video}: {error.__class__.__name__}: {error}"}


def prepare_manifest(manifest: str | Path, out_dir: str | Path, options: LipRoiOptions = LipRoiOptions(),
                     workers: int = 1, progress: bool = True) -> tuple[Path, list[dict]]:
    """Prepare every line of ``manifest``; returns the prepared manifest's path and the summary."""
    records = read_jsonl(manifest, required=("id", "video", "text"))
    out_dir = Path(out_dir)
    (out_dir / "features").mkdir(parents=True, exist_ok=True)
    jobs = []
    for record in records:
        audio = resolve(manifest, record["audio"]) if record.get("audio") else None
        jobs.append((record, resolve(manifest, record["video"]), audio, out_dir / "features" / f"{record['id']}.npz",
                     options))
    crashed = lambda job: {"id": job[0]["id"], "video": str(job[1]), "status": "failed",
                           "error": f"{job[1]}: the worker process crashed on this file; re-encode it"}
    summary = run_jobs(_prepare_one, jobs, workers, crashed, progress=progress, unit="utt")
    prepared = []
    for record, result in zip(records, summary):
        if result["status"] == "failed":
            continue
        kept = {k: v for k, v in record.items() if k not in ("video", "audio")}
        prepared.append(kept | {"features": f"features/{record['id']}.npz", "num_frames": result["num_frames"],
                                "duration_s": result["num_frames"] / 25})
    target = out_dir / Path(manifest).name
    write_jsonl(target, prepared)
    write_jsonl(out_dir / "prepare_summary.jsonl", summary)
    return target, summary
