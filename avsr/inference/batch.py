"""``avsr transcribe`` over many files: worker processes decode and cut lip ROIs, this process runs
the model, and every input ends up either transcribed (all its outputs written atomically) or
reported in ``transcribe_summary.jsonl`` with its error. A re-run skips inputs whose outputs already
hold the same input hash and model id, so a killed batch resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from avsr.data.manifest import write_jsonl
from avsr.inference.outputs import FORMATS, write_outputs
from avsr.inference.transcribe import PreparedInput, TranscribeOptions, Transcriber, prepare_input
from avsr.io.media import MediaError
from avsr.io.roi_batch import file_sha256, output_names
from avsr.models.bundle import LoadedModel
from avsr.parallel import imap_jobs

SUMMARY_NAME = "transcribe_summary.jsonl"


def _prepare_job(path: Path, detect_every: int) -> PreparedInput | str:
    """Worker side: the decoded input, or the one-line error that explains why it cannot be used."""
    try:
        return prepare_input(path, detect_every)
    except (MediaError, OSError, ValueError) as error:
        return str(error) if str(path) in str(error) else f"{path}: {error}"
    except Exception as error:  # one file's unexpected failure must not end the batch
        return f"{path}: {error.__class__.__name__}: {error}"


def _crashed(job: tuple) -> str:
    return f"{job[0]}: the worker process crashed on this file (a decoder or MediaPipe fault); re-encode it"


def is_current(path: Path, stem: Path, formats: tuple[str, ...], model_id: str) -> bool:
    """The outputs of ``path`` exist in every format (``json`` among them) and were made from the same
    content by the same model."""
    if not all(stem.with_name(f"{stem.name}.{fmt}").exists() for fmt in formats):
        return False
    try:
        record = json.loads(stem.with_name(f"{stem.name}.json").read_text(encoding="utf-8"))
        return record["model_id"] == model_id and record["input_sha256"] == file_sha256(path)
    except (OSError, ValueError, KeyError):
        return False


def transcribe_batch(paths: list[Path], model: LoadedModel, out_dir: str | Path, formats: tuple[str, ...] = FORMATS,
                     options: TranscribeOptions = TranscribeOptions(), workers: int = 1, device: str = "cpu",
                     overwrite: bool = False, progress: bool = True) -> list[dict]:
    """Transcribe ``paths`` into ``out_dir`` (``<stem>.<fmt>`` per input); returns the summary records."""
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    formats = tuple(dict.fromkeys(formats + ("json",)))  # the .json marks a finished input
    transcriber = Transcriber(model.network, model.tokenizer, model.id, options, device)
    stems = [out_dir / name for name in output_names(paths)]
    summary: list[dict | None] = [None] * len(paths)
    todo = []
    for index, (path, stem) in enumerate(zip(paths, stems)):
        if not overwrite and is_current(path, stem, formats, model.id):
            summary[index] = {"input": str(path), "status": "skipped", "outputs": str(stem) + ".*"}
        else:
            todo.append(index)
    partial = out_dir / f".{SUMMARY_NAME}.partial"  # what a killed run got through
    with tqdm(total=len(paths), initial=len(paths) - len(todo), unit="file", disable=not progress,
              dynamic_ncols=True) as bar, partial.open("a", encoding="utf-8") as log:
        jobs = [(paths[i], options.detect_every) for i in todo]
        for job, result in imap_jobs(_prepare_job, jobs, workers, _crashed):
            index = todo[job]
            record = {"input": str(paths[index])}
            if isinstance(result, str):
                record |= {"status": "failed", "error": result}
            else:
                started = time.perf_counter()
                try:
                    transcript = transcriber.recognise(result)
                    write_outputs(transcript, stems[index], formats)
                    record |= {"status": "done", "mode": transcript.mode, "duration_s": transcript.duration_s,
                               "prepare_s": round(result.prepare_s, 3),
                               "recognise_s": round(time.perf_counter() - started, 3),
                               "outputs": str(stems[index]) + ".*", "warnings": transcript.warnings}
                    for note in transcript.warnings:
                        bar.write(f"warning: {paths[index]}: {note}")
                except Exception as error:  # a model/decoder failure on one file must not end the batch
                    record |= {"status": "failed", "error": f"{paths[index]}: {error.__class__.__name__}: {error}"}
            summary[index] = record
            log.write(json.dumps(record) + "\n")
            log.flush()
            bar.update()
    write_jsonl(out_dir / SUMMARY_NAME, summary)
    partial.unlink()
    return summary
