"""``avsr evaluate`` as a library call: options checked up front, raw manifests prepared on the fly,
the decoder built once, the sweep run, and its table written or printed."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from avsr.data.manifest import read_jsonl
from avsr.decoding.beam import make_decoder
from avsr.evaluation.sweep import SweepRow, offset_frames, sweep, write_results
from avsr.preprocessing import DETECT_EVERY


@dataclass(frozen=True)
class EvaluateOptions:
    """What ``avsr evaluate`` runs. ``snrs``: dB values, ``None`` for clean. ``noises``: ``white``,
    ``babble`` or ``NAME=DIR``. ``output_dir``: write a sweep (tables, plots) there; without it one
    model's table is printed. ``detect_every``: landmarker stride when a raw manifest is prepared.
    ``av_offsets_ms``: the video shifted against the audio by each (positive: it lags), in whole
    25 fps frames (multiples of 40 ms). ``av_sync``: ``attention`` undoes each utterance's offset as
    an ``xattn`` model's attention reads it, before its ``av`` rows are scored (``off``: as it is)."""

    snrs: tuple[float | None, ...] = (None,)
    noises: tuple[str, ...] = ("white",)
    modes: tuple[str, ...] = ("av", "audio", "video")
    seed: int = 0
    beam_size: int = 1
    lexicon: str | None = None
    output_dir: str | None = None
    detect_every: int = DETECT_EVERY
    av_offsets_ms: tuple[int, ...] = (0,)
    av_sync: str = "off"

    def __post_init__(self) -> None:
        if self.av_sync not in ("off", "attention"):
            raise ValueError(f"--av-sync {self.av_sync}: use off or attention")
        for offset in self.av_offsets_ms:
            offset_frames(offset)
        for noise in self.noises:
            name, _, folder = noise.partition("=")
            if folder and not Path(folder).is_dir():
                raise ValueError(f"--noise {noise}: {folder} is not a folder; pass NAME=DIR with a folder of noise "
                                 "recordings")
            if not folder and name not in ("white", "babble"):
                raise ValueError(f"--noise {noise}: use white, babble or NAME=DIR")
        if self.beam_size < 1:
            raise ValueError(f"--beam-size {self.beam_size}: use 1 (greedy) or more")


def parse_snrs(values: list[str]) -> tuple[float | None, ...]:
    """``["clean", "0", "-5"]`` -> ``(None, 0.0, -5.0)``."""
    try:
        return tuple(None if value == "clean" else float(value) for value in values)
    except ValueError:
        raise ValueError(f"--snr-db takes numbers or 'clean', got {' '.join(values)}") from None


def prepared_manifest(manifest: str | Path, cache_dir: str | Path, detect_every: int = DETECT_EVERY,
                      progress: bool = True) -> Path:
    """``manifest`` itself if it is prepared (``features`` per line); a raw one (``id, video, text``, as
    ``avsr synth`` writes) is prepared into ``cache_dir`` first (re-runs reuse what is current), and
    its failures are reported on stderr."""
    from avsr.data.prepare import prepare_manifest
    from avsr.io.lip_roi import LipRoiOptions
    from avsr.io.results import Status

    records = read_jsonl(manifest)
    if not records or "features" in records[0]:
        return Path(manifest)
    target, summary = prepare_manifest(manifest, cache_dir, LipRoiOptions(detect_every=detect_every),
                                       progress=progress)
    for result in summary:
        if result.status is Status.FAILED:
            print(f"warning: left out of the evaluation: {result.error}", file=sys.stderr)
    return target


def evaluate(models: dict, manifest: str | Path, options: EvaluateOptions = EvaluateOptions(),
             progress: bool = False) -> list[SweepRow]:
    """Rows of the sweep (see :func:`~avsr.evaluation.sweep.sweep`); with ``output_dir`` the results,
    plots and ``utterance.png`` are written there too."""
    if len(models) > 1 and not options.output_dir:
        raise ValueError("several models need -o DIR (a sweep)")
    decoder = make_decoder(options.beam_size, options.lexicon)
    out = Path(options.output_dir) if options.output_dir else None
    cache = (out / "prepared") if out else Path(manifest).with_name(f"{Path(manifest).stem}_prepared")
    manifest = prepared_manifest(manifest, cache, options.detect_every, progress)
    figure = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        figure = out / "utterance.png"
        figure.unlink(missing_ok=True)  # an earlier sweep's
    rows = sweep(models, str(manifest), list(options.snrs), list(options.noises), list(options.modes), options.seed,
                 decoder, progress=progress, figure_path=figure, offsets_ms=list(options.av_offsets_ms),
                 av_sync=options.av_sync)
    if out is not None:
        write_results(rows, out)
    return rows


def format_table(rows: list[SweepRow]) -> str:
    """One model's rows as the plain table ``avsr evaluate`` prints without ``-o``."""
    offsets = any(r.av_offset_ms for r in rows)
    lines = [f"{'SNR dB':>7}  " + (f"{'offset ms':>9}  " if offsets else "") +
             f"{'mode':<6}{'WER %':>8}{'CER %':>8}{'utts':>6}{'audio weight':>14}"]
    for r in rows:
        weight = "" if r.mean_audio_weight is None else f"{r.mean_audio_weight:.3f}"
        label = "clean" if r.snr_db is None else f"{r.snr_db:g}"
        offset = f"{r.av_offset_ms:>+9d}  " if offsets else ""
        lines.append(f"{label:>7}  {offset}{r.mode:<6}{100 * r.wer:>8.2f}{100 * r.cer:>8.2f}{r.utterances:>6}"
                     f"{weight:>14}")
    return "\n".join(lines) + "\n"
