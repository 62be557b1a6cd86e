"""Lip ROIs for many files: parallel workers, a content-hash cache, and per-file failure reports."""

from __future__ import annotations

import hashlib
import json
import time
import zipfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from avsr.files import file_sha256, output_names
from avsr.io.inputs import check_outputs_spare_inputs, ensure_output_dir
from avsr.io.face_rois import extract_face_rois
from avsr.io.lip_roi import LipRoiOptions
from avsr.io.preview import save_contact_sheet
from avsr.io.results import FileResult, Reason, Status
from avsr.parallel import run_jobs

# Bump when the crops computed for the same file and options change.
ROI_FORMAT_VERSION = "1"


def cache_key(path: str | Path, options: LipRoiOptions, every_face: bool = False) -> str:
    """Content hash of the file plus every option that changes the crops (``every_face``: the crops of
    every face, :func:`~avsr.io.face_rois.extract_face_rois`, as ``avsr lip-roi`` writes them)."""
    settings = asdict(options)
    if every_face:
        settings["faces"] = "every"
    if options.roi_style == LipRoiOptions.roi_style:  # caches made before there were styles stay current
        del settings["roi_style"]
    if options.landmarker_model is not None:
        settings["landmarker_model"] = file_sha256(options.landmarker_model)
    text = json.dumps({"file": file_sha256(path), "options": settings, "format": ROI_FORMAT_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def stored_key(npz_path: Path) -> str | None:
    """The cache key inside an existing output, or ``None`` if absent or unreadable: a damaged file
    (truncated, not a zip, a failed member's checksum) is stale and gets rebuilt, never blamed on
    the input."""
    try:
        with zipfile.ZipFile(npz_path) as archive:  # every member's checksum, streamed
            if archive.testzip() is not None:
                return None
        with np.load(npz_path) as data:
            return str(data["meta_cache_key"]) if "meta_cache_key" in data.files else None
    except Exception:  # zipfile.BadZipFile, EOFError, OSError, ValueError, ...
        return None


def foreign_output(output: Path, preview: bool) -> str | None:
    """Why an input's outputs must not be written without ``--overwrite``: a file there that avsr lip-roi did
    not write; or ``None``. A crop file of avsr's is its own, and so is a damaged zip (a crop file cut short
    by a copy): both are rebuilt."""
    npz_ours = output.exists() and (stored_key(output) is not None or _damaged_zip(output))
    for existing in [output] + [output.with_suffix(".png")] * preview:
        if existing.exists() and not npz_ours:
            return (f"{existing} exists and was not written by avsr lip-roi; pass --overwrite to replace it, or "
                    "choose another -o")
    return None


def _damaged_zip(path: Path) -> bool:
    """A file that starts as a zip does and cannot be read whole as one."""
    try:
        with path.open("rb") as handle:
            if handle.read(4) != b"PK\x03\x04":
                return False
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is not None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        return True


def _process_one(path: Path, output: Path, options: LipRoiOptions, preview: bool, overwrite: bool) -> FileResult:
    started = time.perf_counter()
    try:
        key = cache_key(path, options, every_face=True) if path.is_file() else ""
        if key and not overwrite and output.exists() and stored_key(output) == key:
            return FileResult(str(path), Status.SKIPPED, output=str(output), seconds=time.perf_counter() - started)
        refusal = None if overwrite else foreign_output(output, preview)
        if refusal:
            return FileResult.failed(path, refusal, Reason.OUTPUT_EXISTS, seconds=time.perf_counter() - started)
        rois = extract_face_rois(path, options)
        rois.save(output, cache_key=key, source=str(path), roi_style=options.roi_style)
        if preview:
            save_contact_sheet([rois.face(face) for face in range(rois.faces)], output.with_suffix(".png"))
    except Exception as error:  # one file's failure, expected or not, must not end the batch
        return FileResult.failed(path, error, seconds=time.perf_counter() - started)
    return FileResult(str(path), Status.DONE, output=str(output), frames=len(rois),
                      face_found_rate=float(rois.face_found.any(axis=0).mean()), seconds=time.perf_counter() - started)


def run_lip_roi(
    paths: list[Path],
    out_dir: str | Path,
    options: LipRoiOptions = LipRoiOptions(),
    workers: int = 1,
    preview: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> list[FileResult]:
    """Write ``out_dir/<stem>.npz`` (and ``<stem>.png`` with ``preview``) for each input: the crops of
    every face (:class:`~avsr.io.face_rois.FaceRois`; one face in :class:`~avsr.io.lip_roi.LipRoi`'s shapes).

    Inputs whose output holds the same cache key (file content + options) are skipped. A failing
    input is reported in its :class:`~avsr.io.results.FileResult` (reason and one-line error) and
    never stops the others. Results follow the order of ``paths``.

    Raises:
        OutputError: ``out_dir`` cannot take outputs, or an output would replace one of ``paths``; nothing
            is written then.
    """
    out_dir = ensure_output_dir(out_dir)
    outputs = [out_dir / f"{name}.npz" for name in output_names(paths)]
    check_outputs_spare_inputs(outputs + [out.with_suffix(".png") for out in outputs], paths)
    jobs = [(path, output, options, preview, overwrite) for path, output in zip(paths, outputs)]
    return run_jobs(_process_one, jobs, workers, _crashed, progress=progress)


def _crashed(job: tuple) -> FileResult:
    return FileResult.crashed(job[0])
