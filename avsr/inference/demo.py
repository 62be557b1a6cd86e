"""``avsr demo``: make a few synthetic clips and transcribe them with the embedded model, so a fresh
install shows the whole pipeline (media, lip ROIs, the AV model, decoding, outputs) in one command."""

from __future__ import annotations

from pathlib import Path

from avsr.inference.batch import transcribe_batch
from avsr.inference.transcribe import TranscribeOptions
from avsr.io.results import Status
from avsr.models.loader import load_model
from avsr.synth.corpus import SynthOptions, synthesize_corpus
from avsr.text import word_error_rate as corpus_wer


def run_demo(out_dir: str | Path, clips: int = 4, seed: int = 2026, model: str = "synth-grid-tiny",
             options: TranscribeOptions = TranscribeOptions(), progress: bool = True) -> list[dict]:
    """Synthesize ``clips`` GRID utterances into ``out_dir/clips`` and transcribe them into
    ``out_dir/transcripts``; returns one row per clip: video, truth, hypothesis, status."""
    out_dir = Path(out_dir)
    # The demo's speakers show their photos as they are (no identity variety, which is for training).
    records = synthesize_corpus(out_dir / "clips", SynthOptions(num_utterances=clips, speakers=3, test_speakers=1,
                                                                val_speakers=1, seed=seed, face_variety=()),
                                progress=progress)
    records = [r for split in ("test", "val", "train") for r in records[split]]
    paths = [out_dir / "clips" / r["video"] for r in records]
    summary = transcribe_batch(paths, load_model(model), out_dir / "transcripts", options=options, progress=progress)
    rows = []
    for record, path, result in zip(records, paths, summary):
        text = None
        if result.status is not Status.FAILED:
            text = (out_dir / "transcripts" / f"{path.stem}.txt").read_text().strip()
        rows.append({"video": str(path), "truth": record["text"], "hypothesis": text, "status": result.status,
                     "error": result.error})
    return rows


def word_error_rate(rows: list[dict]) -> float:
    """The corpus WER (:func:`avsr.text.word_error_rate`) of the clips that were transcribed; 1.0 if none was."""
    done = [r for r in rows if r["hypothesis"] is not None]
    return corpus_wer([r["truth"] for r in done], [r["hypothesis"] for r in done]) if done else 1.0
