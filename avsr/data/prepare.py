"""``avsr prepare manifest``: lip ROIs and 16 kHz audio for every utterance of a manifest.

Input manifest lines: ``{"id", "video", "text"[, "audio"]}`` (other fields are kept). Output, in
``OUT_DIR``: ``features/<id>.npz`` (``roi (T, 96, 96) uint8``, ``face_found (T,)``, ``audio
(640 T,) int16``, ``meta_roi_style``), the prepared manifest ``<name>.jsonl`` (``id, text, features,
num_frames, duration_s, roi_style`` + kept fields; ``roi_style``: how the crops were cut,
``LipRoiOptions.roi_style``, which ``avsr evaluate`` checks against a model's preprocessing) and
``prepare_summary.jsonl`` (one :class:`~avsr.io.results.FileResult`
per input: status; reason and error, or frames and timing).
Re-running skips utterances whose features are current (same media content and options).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avsr.data.manifest import check_ids, check_texts, read_jsonl, resolve, write_jsonl
from avsr.data.tokenizer import CHARACTERS
from avsr.io.inputs import OutputError, check_outputs_spare_inputs
from avsr.io.lip_roi import LipRoiOptions, extract_lip_roi
from avsr.io.media import MediaError, check_file, load_media
from avsr.io.results import FileResult, Reason, Status
from avsr.files import atomic_path, file_sha256
from avsr.io.roi_batch import cache_key, foreign_output, stored_key
from avsr.parallel import run_jobs
from avsr.preprocessing import SAMPLES_PER_FRAME, VIDEO_FPS

FEATURES_FORMAT = "1"
# prepare_summary.jsonl names FileResult.input "video" and FileResult.frames "num_frames", as manifests do.
SUMMARY_KEYS = {"input": "video", "frames": "num_frames"}


def _key(video: Path, audio: Path | None, options: LipRoiOptions) -> str:
    """The lip-ROI cache key of the video (content + options), plus the separate audio file's hash."""
    parts = {"roi": cache_key(video, options), "audio": file_sha256(audio) if audio else None,
             "format": FEATURES_FORMAT}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Piece:
    """One utterance to store from a source file: frames ``[start_frame, end_frame)`` (25 fps;
    ``end_frame`` None: to the end) written to ``output``."""

    id: str
    output: Path
    start_frame: int = 0
    end_frame: int | None = None


def _piece_key(key: str, piece: Piece) -> str:
    if piece.start_frame == 0 and piece.end_frame is None:
        return key  # a whole file keeps the key of caches made before pieces existed
    return hashlib.sha256(f"{key}:{piece.start_frame}:{piece.end_frame}".encode()).hexdigest()


def _save_features(path: Path, roi: np.ndarray, found: np.ndarray, samples: np.ndarray, key: str,
                   roi_style: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype(np.int16)
    with atomic_path(path) as tmp:
        np.savez(tmp, roi=roi, face_found=found, audio=pcm, meta_cache_key=np.array(key),
                 meta_roi_style=np.array(roi_style))


def prepare_source(video: Path, audio: Path | None, pieces: list[Piece], options: LipRoiOptions,
                   overwrite: bool = False) -> list[FileResult]:
    """Lip ROIs and 16 kHz audio of one source file, stored as one ``.npz`` per piece. Pieces whose
    file holds the current cache key are skipped (unless ``overwrite``); a file that does not load is
    stale and rebuilt. Returns one result per piece (``done``, ``skipped``, or ``failed`` with its reason
    and a one-line error naming the file)."""
    started = time.perf_counter()
    try:
        for path in (video, audio) if audio else (video,):
            check_file(path)  # a missing or empty file fails with its reason, before it is hashed
        key = _key(video, audio, options)
        keys = [_piece_key(key, piece) for piece in pieces]
        todo = [(p, k) for p, k in zip(pieces, keys)
                if overwrite or not (p.output.exists() and stored_key(p.output) == k)]
        errors = {}  # piece id -> a bad cut of that piece alone (the rest of the file is still stored)
        written = {}  # piece id -> its face_found, for the pieces stored now
        if todo:
            roi = extract_lip_roi(video, options)
            samples = load_media(audio or video, video=False).audio
            if samples is None:
                raise MediaError(audio or video, Reason.NO_AUDIO,
                                 "has no audio track; add an \"audio\" field to the line")
            samples = np.pad(samples, (0, max(len(roi) * SAMPLES_PER_FRAME - len(samples), 0)))
            for piece, piece_key in todo:
                start, stop = piece.start_frame, len(roi) if piece.end_frame is None else min(piece.end_frame, len(roi))
                if stop <= start:
                    errors[piece.id] = (f"piece {piece.id} (frames {start}-{stop}) lies outside the "
                                        f"{len(roi)}-frame video; check its label timings")
                    continue
                written[piece.id] = roi.face_found[start:stop]
                _save_features(piece.output, roi.roi[start:stop], written[piece.id],
                               samples[start * SAMPLES_PER_FRAME: stop * SAMPLES_PER_FRAME], piece_key,
                               options.roi_style)
        seconds = (time.perf_counter() - started) / max(len(pieces), 1)
        results = []
        for piece in pieces:
            if piece.id in errors:
                results.append(FileResult.failed(video, errors[piece.id], Reason.BAD_LABEL, id=piece.id))
                continue
            found = written.get(piece.id)
            if found is None:  # current from an earlier run
                with np.load(piece.output) as data:
                    found = data["face_found"]
            status = Status.DONE if piece.id in written else Status.SKIPPED
            results.append(FileResult(str(video), status, id=piece.id, frames=len(found),
                                      face_found_rate=float(found.mean()), seconds=seconds))
        return results
    except Exception as error:  # one file's failure, expected or not, must not end the batch
        return [FileResult.failed(video, error, id=piece.id) for piece in pieces]


def crashed_source(job: tuple) -> list[FileResult]:
    """The results of a :func:`prepare_source` job whose worker process died."""
    video, pieces = job[0], job[2]
    return [FileResult.crashed(video, id=piece.id) for piece in pieces]


PREPARED_KEYS = ("id", "features", "num_frames")  # on every line of a prepared manifest


def jsonl_with(path: Path, keys: tuple[str, ...]) -> bool:
    """Whether every line of ``path`` is a JSON object with ``keys`` (as avsr prepare writes its files)."""
    try:
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError):
        return False
    return all(isinstance(line, dict) and all(key in line for key in keys) for line in lines)


def refuse_foreign_outputs(manifests: list[Path], summary: Path, features: list[Path]) -> None:
    """Refuse, before any work, to write over a file avsr prepare did not write: prepared manifests (every
    line with its features), a summary (every line with its status) and feature files (avsr's crops, or a
    damaged zip: a cache, rebuilt) are its own.

    Raises:
        OutputError: naming the first such file and the fix (``--overwrite``, or another OUT_DIR).
    """
    for path, keys in [(manifest, PREPARED_KEYS) for manifest in manifests] + [(summary, ("status",))]:
        if (path.exists() or path.is_symlink()) and not jsonl_with(path, keys):
            raise OutputError(f"{path}: exists and was not written by avsr prepare; pass --overwrite to replace it, "
                              "or choose another OUT_DIR")
    for path in features:
        if path.exists() and foreign_output(path, preview=False):
            raise OutputError(f"{path}: exists and was not written by avsr prepare; pass --overwrite to replace it, "
                              "or choose another OUT_DIR")


def prepare_manifest(manifest: str | Path, out_dir: str | Path, options: LipRoiOptions = LipRoiOptions(),
                     workers: int = 1, progress: bool = True,
                     overwrite: bool = False) -> tuple[Path, list[FileResult]]:
    """Prepare every line of ``manifest``; returns the prepared manifest's path and the summary. Its text is
    written normalised (:func:`avsr.text.normalise`: lower case, hyphens to spaces, punctuation dropped).

    Raises:
        ManifestError: unreadable lines, ids that repeat or leave ``out_dir``, or text that is empty or holds
            characters the character tokenizer cannot encode once normalised (checked first, ``file:line``).
        OutputError: an output would replace an input (e.g. ``out_dir`` is the manifest's folder), or (without
            ``overwrite``) a file avsr prepare did not write.
    """
    records = read_jsonl(manifest, required=("id", "video", "text"))
    check_ids(manifest, records)
    # The text as training reads it: normalised (avsr.text.normalise), never empty, in the characters of the
    # character tokenizer (a-z, space, apostrophe), each line checked before any work.
    texts = check_texts(manifest, records, CHARACTERS, normalised=True)
    records = [record | {"text": text} for record, text in zip(records, texts)]
    out_dir = Path(out_dir)
    target = out_dir / Path(manifest).name
    jobs = []
    for record in records:
        audio = resolve(manifest, record["audio"]) if record.get("audio") else None
        jobs.append((resolve(manifest, record["video"]), audio,
                     [Piece(record["id"], out_dir / "features" / f"{record['id']}.npz")], options, overwrite))
    check_outputs_spare_inputs([target, out_dir / "prepare_summary.jsonl"] + [job[2][0].output for job in jobs],
                               [manifest] + [job[0] for job in jobs] + [job[1] for job in jobs if job[1]],
                               option="OUT_DIR")
    if not overwrite:
        refuse_foreign_outputs([target], out_dir / "prepare_summary.jsonl", [job[2][0].output for job in jobs])
    (out_dir / "features").mkdir(parents=True, exist_ok=True)
    summary = [results[0] for results in run_jobs(prepare_source, jobs, workers, crashed_source, progress=progress,
                                                  unit="utt")]
    prepared = []
    for record, result in zip(records, summary):
        if result.status is Status.FAILED:
            continue
        kept = {k: v for k, v in record.items() if k not in ("video", "audio")}
        prepared.append(kept | {"features": f"features/{record['id']}.npz", "num_frames": result.frames,
                                "duration_s": result.frames / VIDEO_FPS, "roi_style": options.roi_style})
    write_jsonl(target, prepared)
    write_jsonl(out_dir / "prepare_summary.jsonl", [r.to_json(SUMMARY_KEYS) for r in summary])
    return target, summary
