"""``avsr transcribe`` over many files: worker processes decode and cut lip ROIs, this process runs
the model, and every input ends up either transcribed (all its outputs written atomically) or
reported in ``transcribe_summary.jsonl`` with its reason and error (one
:class:`~avsr.io.results.FileResult` per line). A re-run skips inputs whose outputs already
hold the same input hash and model id, so a killed batch resumes where it stopped.

Nothing that avsr did not write is replaced: each output set is entered in ``OUT_DIR/.avsr_outputs.jsonl``
(its name and input hash) before it is written, and a file of the same name that is not entered
there for the same input (a user's own ``talk.txt``, or the transcript of another ``talk.mp4`` from
an earlier run) makes that input fail with a one-line reason, unless ``overwrite``. One run at a
time writes into a folder (a lock file); the summary keeps the lines of earlier runs' other inputs.
"""

from __future__ import annotations

import fcntl
import json
import sys
import threading
import time
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TextIO

from avsr.errors import AvsrError
from avsr.data.manifest import write_jsonl
from avsr.inference.outputs import FORMATS, segment_lines, write_outputs
from avsr.inference.prepare import PreparedInput, prepare_input
from avsr.inference.transcribe import TranscribeOptions, Transcriber
from avsr.io.inputs import OutputError, check_outputs_spare_inputs, ensure_output_dir
from avsr.io.results import FileResult, Reason, Status
from avsr.files import file_sha256, name_too_long, output_names
from avsr.models.loader import LoadedModel
from avsr.parallel import default_prefetch, imap_jobs, landmarkers_per_file, model_threads

SUMMARY_NAME = "transcribe_summary.jsonl"
LEDGER_NAME = ".avsr_outputs.jsonl"
LOCK_NAME = ".avsr.lock"
SUMMARY_KEYS = {"output": "outputs"}  # the summary's name for FileResult.output (a "<stem>.*" pattern)


class BusyError(AvsrError, ValueError):
    """Another run is writing into the same output folder."""


@contextmanager
def folder_lock(out_dir: Path, command: str = "avsr transcribe"):
    """Hold ``out_dir``'s lock for the block, or raise :class:`BusyError` at once if another run has it."""
    lock = out_dir / LOCK_NAME
    handle = lock.open("a")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BusyError(f"{out_dir}: another {command} is writing into this folder; wait for it to finish or "
                            "choose another -o") from None
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)  # still held: no other run can be between its open and its lock
    finally:
        handle.close()


def read_ledger(out_dir: Path) -> dict[str, str]:
    """Output name -> the input hash it was written for (the latest entry wins)."""
    written = {}
    try:
        lines = (out_dir / LEDGER_NAME).read_text(encoding="utf-8").splitlines()
    except OSError:
        return written
    for line in lines:
        try:
            entry = json.loads(line)
            written[entry["name"]] = entry["input_sha256"]
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a crash
    return written


def foreign_output(path: Path, stem: Path, formats: tuple[str, ...], ledger: dict[str, str],
                   sha256: str) -> str | None:
    """Why ``path`` (content hash ``sha256``) must not have its outputs written: an existing file avsr
    did not write for this input; or ``None``."""
    existing = [stem.with_name(f"{stem.name}.{fmt}") for fmt in formats]
    existing = [p for p in existing if p.exists()]
    if not existing:
        return None
    if ledger.get(stem.name) == sha256:
        return None
    if stem.name in ledger:
        return (f"{path}: {existing[0]} holds the transcript of another input of the same name; choose another -o, "
                "or pass --overwrite to replace it")
    if transcript_record(stem).get("input_sha256") == sha256:  # outputs of an avsr that kept no ledger
        return None
    return f"{path}: {existing[0]} exists and was not written by avsr for this input; pass --overwrite to replace it"


def transcript_record(stem: Path) -> dict:
    """The ``<stem>.json`` transcript avsr wrote, or ``{}`` if it is missing or not one."""
    try:
        record = json.loads(stem.with_name(f"{stem.name}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def merge_summary(out_dir: Path, results: list[FileResult]) -> list[dict]:
    """The summary's lines: the earlier runs' lines of other inputs (as they are), then this run's."""
    ours = {r.input for r in results}
    try:
        lines = (out_dir / SUMMARY_NAME).read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("input") not in ours:
            kept.append(record)
    return kept + [r.to_json(SUMMARY_KEYS) for r in results]


def _check_summary_is_ours(path: Path, overwrite: bool) -> None:
    """Refuse, before any work, a ``transcribe_summary.jsonl`` that avsr transcribe did not write (a line that is
    not a JSON object with ``input`` and ``status``): the summary is rewritten at the end of every run."""
    if overwrite:
        return
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        return
    except (OSError, UnicodeDecodeError):
        lines = [""]
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not (isinstance(record, dict) and "input" in record and "status" in record):
            raise OutputError(f"{path}: exists and was not written by avsr transcribe; move it away, choose another "
                              "-o, or give --overwrite")


def _prepare_job(path: Path, detect_every: int, roi_style: str, crop_memory_mb: float | None,
                 audio_memory_mb: float | None, landmarkers: int = 1, cancel: threading.Event | None = None,
                 reader: Transcriber | None = None, every_face: bool = True) -> PreparedInput | FileResult:
    """Worker side: the decoded input, or the failure that explains why it cannot be used."""
    try:
        return prepare_input(path, detect_every, crop_memory_mb, audio_memory_mb, cancel, landmarkers, reader,
                             roi_style, every_face)
    except Exception as error:  # one file's failure, expected or not, must not end the batch
        return FileResult.failed(path, error)


def _close(result: PreparedInput | FileResult) -> None:
    """A prepared input the batch will not read (it stopped early): its temporary files go."""
    if isinstance(result, PreparedInput):
        result.close()


def _crashed(job: tuple) -> FileResult:
    return FileResult.crashed(job[0])


def is_current(stem: Path, formats: tuple[str, ...], model_id: str, sha256: str) -> bool:
    """The outputs at ``stem`` exist in every format (``json`` among them) and were made from content
    with hash ``sha256`` by the same model."""
    if not all(stem.with_name(f"{stem.name}.{fmt}").exists() for fmt in formats):
        return False
    record = transcript_record(stem)
    return record.get("model_id") == model_id and record.get("input_sha256") == sha256


def transcribe_batch(paths: list[Path], model: LoadedModel, out_dir: str | Path, formats: tuple[str, ...] = FORMATS,
                     options: TranscribeOptions = TranscribeOptions(), workers: int = 1, device: str = "cpu",
                     overwrite: bool = False, progress: bool = True, prefetch: int | None = None,
                     echo: bool = False) -> list[FileResult]:
    """Transcribe ``paths`` into ``out_dir`` (``<stem>.<fmt>`` per input); returns one result per input, in order
    (``extra`` of a done one: ``mode``, ``duration_s``, ``prepare_s``, ``recognise_s``, ``warnings``).
    ``echo``: print each file's name and its segments, ``[start --> end] text``, as it finishes (above the
    progress bar, each warning on a line of its own).

    ``prefetch`` (one worker): the next files, that many (None: :func:`~avsr.parallel.default_prefetch`; 0: none),
    are decoded and their lip ROIs cut in threads while the model reads the current one. MediaPipe's
    landmarker keeps one core busy per file, and the model takes the cores left (docs/history/2026-12-01.md,
    3cb86a0…622ea5f). ``prefetch + 1`` files' inputs are then held at once, so the memory that
    ``options.crop_memory_mb`` and ``audio_memory_mb`` allow a file's crops and audio is taken that
    many times at most. If the batch stops early (Ctrl-C), the threads are told to stop and waited
    for. While the batch runs, numpy's BLAS uses one thread and torch the cores the preparations
    leave (:func:`~avsr.parallel.model_threads`).

    Raises:
        OutputError: ``out_dir`` cannot take outputs, or an output would replace one of ``paths``; nothing
            is written then."""
    out_dir = ensure_output_dir(out_dir)
    outputs = [out_dir / f"{name}.{fmt}" for name in output_names(paths) for fmt in set(formats) | {"json"}]
    check_outputs_spare_inputs(outputs + [out_dir / SUMMARY_NAME, out_dir / LEDGER_NAME], paths)
    _check_summary_is_ours(out_dir / SUMMARY_NAME, overwrite)
    with folder_lock(out_dir):
        return _transcribe_locked(paths, model, out_dir, formats, options, workers, device, overwrite, progress,
                                  prefetch, echo)


def _transcribe_locked(paths, model, out_dir, formats, options, workers, device, overwrite, progress, prefetch,
                       echo):
    formats = tuple(dict.fromkeys(formats + ("json",)))  # the .json marks a finished input
    transcriber = Transcriber(model.network, model.tokenizer, model.id, options, device)
    stems = [out_dir / name for name in output_names(paths)]
    summary, todo = _triage(paths, stems, formats, model.id, read_ledger(out_dir), overwrite)
    partial = out_dir / f".{SUMMARY_NAME}.partial"  # what a killed run got through
    try:
        _run_todo(paths, out_dir, formats, options, workers, prefetch, echo, progress, transcriber, model, stems,
                  summary, todo, partial)
    finally:  # also when stopped (Ctrl-C, SIGTERM) or a write failed: the summary says what was done
        write_jsonl(out_dir / SUMMARY_NAME, merge_summary(out_dir, [r for r in summary if r is not None]))
        partial.unlink(missing_ok=True)
    return summary


def _run_todo(paths, out_dir, formats, options, workers, prefetch, echo, progress, transcriber, model, stems, summary,
              todo, partial) -> None:
    """Transcribe the inputs at ``todo``, each result put in ``summary`` and logged to ``partial`` as it comes."""
    from tqdm import tqdm

    with tqdm(total=len(paths), initial=len(paths) - len(todo), unit="file", disable=not progress,
              dynamic_ncols=True) as bar, partial.open("a", encoding="utf-8") as log, \
            (out_dir / LEDGER_NAME).open("a", encoding="utf-8") as entries:
        prefetch = default_prefetch() if prefetch is None else int(prefetch)
        threaded = prefetch > 0 and workers <= 1  # the jobs run in threads of this process, which can tell them to stop
        cancel = threading.Event() if threaded else None
        # The cores are shared among the files prepared at once: one long file gets a landmarker per core.
        at_once = workers if workers > 1 else min(prefetch, len(todo)) if threaded else 1
        # In this process, the model reads a file's windows while the rest of the file is cut (EarlyForward).
        reader = transcriber.reader if workers <= 1 else None
        jobs = [(paths[i], options.detect_every, model.network.preprocessing.roi_style, options.crop_memory_mb,
                 options.audio_memory_mb, landmarkers_per_file(at_once))
                + ((cancel, reader) if workers <= 1 else (None, None)) + (options.every_face,)
                for i in todo]
        if workers > 1:  # preparations running beside the model
            beside = workers
        elif threaded:  # (a single file is prepared before the model runs)
            beside = min(prefetch, max(len(jobs) - 1, 0))
        else:
            beside = 0
        results = imap_jobs(_prepare_job, jobs, workers, _crashed, prefetch=prefetch, discard=_close, cancel=cancel)
        with model_threads(beside), closing(results):
            for job, result in results:
                index = todo[job]
                if isinstance(result, PreparedInput):
                    prepared = result
                    try:
                        result, lines = _recognise(transcriber, prepared, stems[index], formats, entries)
                    finally:
                        prepared.close()  # the temporary file of a long input's crops
                    if echo and result.status is Status.DONE:
                        bar.write("\n".join([f"{paths[index]}"] + (lines or ["(no speech)"])))
                for note in dict.fromkeys(result.extra.get("warnings", [])):
                    bar.write(f"warning: {paths[index]}: {note}", file=sys.stderr)
                summary[index] = result
                log.write(json.dumps(result.to_json(SUMMARY_KEYS)) + "\n")
                log.flush()
                bar.update()


def _triage(paths: list[Path], stems: list[Path], formats: tuple[str, ...], model_id: str, ledger: dict[str, str],
            overwrite: bool) -> tuple[list[FileResult | None], list[int]]:
    """Per input, the result it already has (its outputs are another input's: failed; current: skipped)
    or None, and the indices of the inputs to transcribe."""
    summary: list[FileResult | None] = [None] * len(paths)
    todo = []
    for index, (path, stem) in enumerate(zip(paths, stems)):
        if problem := name_too_long(f"{stem}.{max(formats, key=len)}"):
            summary[index] = FileResult.failed(path, f"{path}: {problem}", Reason.INVALID)
            continue
        # The input is hashed (once) only where outputs of its name already exist.
        exists = any(stem.with_name(f"{stem.name}.{fmt}").exists() for fmt in formats)
        sha256 = file_sha256(path) if exists and path.is_file() else ""
        refusal = None if overwrite or not exists else foreign_output(path, stem, formats, ledger, sha256)
        if refusal:
            summary[index] = FileResult.failed(path, refusal, Reason.OUTPUT_EXISTS)
        elif not overwrite and exists and is_current(stem, formats, model_id, sha256):
            summary[index] = FileResult(str(path), Status.SKIPPED, output=str(stem) + ".*")
        else:
            todo.append(index)
    return summary, todo


def _recognise(transcriber: Transcriber, prepared: PreparedInput, stem: Path, formats: tuple[str, ...],
               ledger: TextIO) -> tuple[FileResult, list[str]]:
    """Transcribe one decoded input and write its outputs (entered in the open ``ledger`` first); the
    result, and the transcript's lines for the terminal."""
    started = time.perf_counter()
    try:
        transcript = transcriber.recognise(prepared)
        ledger.write(json.dumps({"name": stem.name, "input_sha256": prepared.sha256}) + "\n")
        ledger.flush()
        write_outputs(transcript, stem, formats)
    except Exception as error:  # a model/decoder failure on one file must not end the batch
        return FileResult.failed(prepared.path, error), []
    return FileResult(prepared.path, Status.DONE, output=str(stem) + ".*",
                      extra={"mode": transcript.mode, "duration_s": transcript.duration_s,
                             "prepare_s": round(prepared.prepare_s, 3),
                             "recognise_s": round(time.perf_counter() - started, 3),
                             "warnings": transcript.warnings}), segment_lines(transcript)
