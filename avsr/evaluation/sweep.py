"""Noise-robustness sweeps: WER of models x modes x noise types x SNRs (x audio-video offsets), with
bootstrap confidence intervals, the gate's mean audio weight, and the SNR actually reached, as CSV,
Markdown and plots.

Noise is mixed per utterance from a generator seeded by (seed, noise type, utterance index), so the
same seed gives the same noisy inputs and the same table. Babble is the sum of several other
utterances of the manifest by other speakers; ``music=DIR`` (or any ``name=DIR``) draws recordings
from a folder (MUSAN-style).
"""

from __future__ import annotations

import csv
import io
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from avsr.data.augment import frame_snr_db, shift_video
from avsr.data.dataset import AVDataset, collate
from avsr.data.manifest import ManifestError
from avsr.preprocessing import Preprocessing
from avsr.files import write_text_atomic
from avsr.data.noise import NoiseFolder, babble, babble_talkers, measured_snr_db, mix_at_snr, white_noise
from avsr.decoding.greedy import greedy_decode
from avsr.errors import OptionError
from avsr.evaluation.figures import sweep_plots, utterance_figure
from avsr.evaluation.options import Perturbation, offset_frames
from avsr.evaluation.perturb import with_face_gaps, with_lead_in
from avsr.evaluation.reading import reading
from avsr.inference.chunks import quiet_lacking, tail_frames
from avsr.inference.options import TranscribeOptions
from avsr.inference.sync import attention_offset, frames_to_undo
from avsr.io.vad import VadOptions
from avsr.text import char_error_rate, normalise, word_error_rate, word_errors

BABBLE_TALKERS = 4


@dataclass
class SweepRow:
    model: str
    mode: str
    noise: str  # "clean", "white", "babble" or a folder's name
    snr_db: float | None  # requested; None when clean
    achieved_snr_db: float | None  # mean over utterances, measured on the speech
    wer: float
    wer_low: float  # bootstrap 95 % interval
    wer_high: float
    cer: float
    utterances: int
    mean_audio_weight: float | None
    av_offset_ms: int = 0  # the video shifted against the audio (positive: the video lags)
    av_sync: str = "off"  # attention: each utterance's offset, read from the model's attention, undone first
    segmentation: str = "whole"  # whole clips; vad: speech regions (as avsr transcribe); split: at the longest input
    segmented: int = 0  # utterances read through their speech regions (or split) rather than whole
    errors: tuple[int, ...] = field(default=(), repr=False)  # word edits per utterance, in the manifest's order
    # Clips with several faces and speaker truth (avsr.evaluation.speakers), rows that read a face; else None:
    speaker_accuracy: float | None = None  # share of frames whose face read is the one speaking (-1: nobody)
    speaker_speech_accuracy: float | None = None  # the same over the frames where someone speaks
    speaker_map: float | None = None  # average precision of "speaking" over (face, frame) pairs, as AVA's mAP


SPEAKER_COLUMNS = ("speaker_accuracy", "speaker_speech_accuracy", "speaker_map")  # only in tables of such rows


def speaker_columns(rows: list[SweepRow]) -> bool:
    """Whether the tables of ``rows`` carry the active-speaker columns (some row was scored for the speaker)."""
    return any(r.speaker_accuracy is not None for r in rows)


def speaker_cells(row: SweepRow) -> tuple[str, str, str]:
    """Frame accuracy (all frames / speech frames) and mAP of a row in per cent, blank where not scored."""
    return tuple("" if value is None else f"{100 * value:.1f}"
                 for value in (row.speaker_accuracy, row.speaker_speech_accuracy, row.speaker_map))


class NoiseSource:
    """Noise for utterance ``index`` of a test set: ``white``, ``babble`` or ``name=DIR``.

    ``audios`` and ``speakers`` are the clean test set's, so babble never loads anything again.
    """

    def __init__(self, spec: str, audios: list[np.ndarray], speakers: list[str]) -> None:
        self.name, _, folder = spec.partition("=")
        if self.name not in ("white", "babble") and not folder:
            raise OptionError(f"noise {spec!r}; use white, babble or NAME=DIR (a folder of noise recordings)")
        if self.name == "babble" and len(set(speakers)) < 2:
            raise OptionError("babble needs utterances of at least two speakers in the manifest (its \"speaker\" "
                             "field): the talkers in the background are never the target's speaker")
        self.folder = NoiseFolder(folder) if folder else None
        self.audios, self.speakers = audios, speakers

    def __call__(self, index: int, length: int, rng: np.random.Generator) -> np.ndarray:
        if self.name == "white":
            return white_noise(length, rng)
        if self.folder is not None:
            return self.folder.sample(length, rng)
        picks = babble_talkers(index, self.speakers, BABBLE_TALKERS, rng)
        return babble([self.audios[i] for i in picks], length, rng)


def shifted_items(items: list[dict], offset_ms: int) -> list[dict]:
    """``items`` with each video moved ``offset_ms`` later against its audio (see
    :func:`~avsr.data.augment.shift_video`)."""
    frames = offset_frames(offset_ms)
    if frames == 0:
        return items
    return [item | dict(zip(("video", "face_found"), shift_video(item["video"], item["face_found"], frames)),
                        av_offset=item.get("av_offset", 0) + frames)
            for item in items]


def load_items(manifest: str, preprocessing: Preprocessing = Preprocessing()) -> tuple[list[dict], list[str]]:
    """Every utterance of a prepared manifest as evaluation items (centre crops), and its speakers."""
    dataset = AVDataset(manifest, preprocessing=preprocessing, normalise_text=True)  # as the references are
    if len(dataset) == 0:
        raise ManifestError(f"{manifest}: holds no utterance; nothing to evaluate (was every line of its source "
                            "manifest a failure? see prepare_summary.jsonl)")
    return [dataset[i] for i in range(len(dataset))], dataset.speakers


def noisy_items(items: list[dict], source: NoiseSource | None, snr_db: float | None,
                seed: int) -> tuple[list[dict], list[float]]:
    """``items`` with noise mixed at ``snr_db`` (``None``: unchanged), and the SNR each one reached."""
    if source is None or snr_db is None:
        return items, []
    noisy, achieved = [], []
    for index, item in enumerate(items):
        rng = np.random.default_rng([seed, zlib.crc32(source.name.encode()), index])
        audio = mix_at_snr(item["audio"], source(index, len(item["audio"]), rng), snr_db)
        achieved.append(measured_snr_db(item["audio"], audio))
        step = len(item["audio"]) // max(len(item["video"]), 1)
        noisy.append(item | {"audio": audio, "frame_snr": frame_snr_db(item["audio"], audio, step)})
    return noisy, achieved


def bootstrap_wer(errors: np.ndarray, words: np.ndarray, seed: int, rounds: int = 1000) -> tuple[float, float]:
    """95 % interval of the corpus WER by resampling utterances (``errors``/``words`` per utterance)."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(errors), (rounds, len(errors)))
    rates = errors[picks].sum(axis=1) / np.maximum(words[picks].sum(axis=1), 1)
    return float(np.percentile(rates, 2.5)), float(np.percentile(rates, 97.5))


def stretches(items: list[dict], spans: list[list[tuple[int, int]] | None],
              tail: int = 0) -> tuple[list[dict], list[int]]:
    """The pieces of ``items`` a model reads (``spans[i]``: frame ranges of item i, None: all of it) and the item
    each piece belongs to. Each piece ends with ``tail`` frames of quiet, what it lacks added
    (:func:`~avsr.inference.chunks.quiet_lacking`: digital silence, the last crop held), as ``avsr transcribe``
    reads each chunk."""
    pieces, owners = [], []
    for index, (item, ranges) in enumerate(zip(items, spans)):
        if ranges is None:
            pieces.append(item)
            owners.append(index)
            continue
        step = len(item["audio"]) // max(len(item["video"]), 1)
        for start, stop in ranges:
            added = quiet_lacking(item["audio"][start * step: stop * step], tail) if tail else 0
            held = ((0, added),)
            piece = item | {"video": np.pad(item["video"][start:stop], held + ((0, 0),) * (item["video"].ndim - 1),
                                            mode="edge"),
                            "face_found": np.pad(np.asarray(item["face_found"][start:stop]), held, mode="edge"),
                            "audio": np.pad(item["audio"][start * step: stop * step], (0, added * step))}
            if item.get("frame_snr") is not None:
                piece["frame_snr"] = np.pad(np.asarray(item["frame_snr"][start:stop]), held, mode="edge")
            pieces.append(piece)
            owners.append(index)
    return pieces, owners


@torch.no_grad()
def score(model, items: list[dict], mode: str, decoder: Callable, batch_size: int = 16,
          av_sync: str = "off",
          spans: list[list[tuple[int, int]] | None] | None = None) -> tuple[list[str], float | None]:
    """Hypotheses of ``items`` in ``mode`` and the gate's mean audio weight (None without one).

    ``decoder``: ``(log_probs, lengths) -> texts``, or, with ``needs_encoder`` set
    (:class:`~avsr.evaluation.reading.JointDecoder`), ``(log_probs, lengths, encoder_out) -> texts``. The texts
    are normalised (:func:`~avsr.text.normalise`) as the references are, whatever the model's tokenizer writes.
    ``spans``: the frame ranges read of each item (:func:`~avsr.evaluation.reading.reading`; None: whole items);
    an item's hypothesis is the texts of its ranges in order, and nothing where it has none.

    ``av_sync="attention"``: an ``xattn`` model is run on each batch, each utterance's offset is read
    from where its audio frames looked (:func:`~avsr.inference.sync.attention_offset`), and where it
    is sure and beyond 80 ms (:func:`~avsr.inference.sync.frames_to_undo`, as ``avsr transcribe``
    decides) the video is moved back by it and the batch is run again. Other models and modes are
    scored as they are.
    """
    def run(chunk: list[dict]):
        batch = collate(chunk, model.preprocessing)
        return batch, model(batch.audio, batch.audio_lengths, batch.video, batch.video_lengths, batch.face_found, mode)

    whole = items
    tail = tail_frames(model, TranscribeOptions().tail_s)
    items, owners = stretches(items, spans, tail) if spans is not None else (items, list(range(len(items))))
    hypotheses, weights = [], []
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        batch, out = run(chunk)
        if av_sync == "attention" and out.attention is not None:
            shifts = [frames_to_undo(attention_offset(out.attention[row, :frames].float().numpy(),
                                                      batch.face_found[row, :frames].numpy()))
                      for row, frames in enumerate(out.lengths.tolist())]
            if any(shifts):
                _, out = run([item | dict(zip(("video", "face_found"),
                                              shift_video(item["video"], item["face_found"], -shift)))
                              for item, shift in zip(chunk, shifts)])
        if getattr(decoder, "needs_encoder", False):
            hypotheses += decoder(out.log_probs, out.lengths, out.encoder_out)
        else:
            hypotheses += decoder(out.log_probs, out.lengths)
        if mode == "av" and out.audio_weight is not None:  # concat and sum fusion have no weights
            valid = torch.arange(out.audio_weight.shape[1])[None] < out.lengths[:, None]
            weights.append(out.audio_weight[valid])
    texts = [[] for _ in whole]
    for owner, text in zip(owners, hypotheses):
        texts[owner].append(text)
    return [normalise(" ".join(parts)) for parts in texts], float(torch.cat(weights).mean()) if weights else None


def utterance_errors(references: list[str], hypotheses: list[str]) -> np.ndarray:
    """Word edits (substitutions + deletions + insertions) of each hypothesis against its reference."""
    return np.array([word_errors(r, h) for r, h in zip(references, hypotheses)])


def sweep(models: dict[str, torch.nn.Module], manifest: str, snrs: list[float | None], noises: list[str],
          modes: list[str], seed: int = 0, decoder: Callable = greedy_decode,
          progress: bool = True, figure_path: str | Path | None = None,
          offsets_ms: list[int] = (0,), av_sync: str = "off",
          perturbation: Perturbation = Perturbation(), decoders: dict[str, Callable] | None = None,
          vad: VadOptions | None = VadOptions()) -> list[SweepRow]:
    """One row per model x mode x noise x SNR x offset (clean first, once per model x mode; modes a
    model cannot run, such as ``av`` for an audio-only model, are skipped, and so is ``audio`` mode at
    a non-zero offset, where its input is the same; ``video`` mode, whose input is the same under every
    noise, is scored once per offset and its row repeated). The manifest's features are read once; each
    condition mixes its noise into them, then shifts the video by each offset.

    ``av_sync``: ``attention`` undoes each utterance's offset as the model's attention reads it
    before its ``av`` rows are scored (see :func:`score`); ``off``: as it is.

    ``perturbation``: its lead-in and trail lengthen every utterance before the noise is mixed in;
    its face gaps are cut after the video is shifted (:mod:`avsr.evaluation.perturb`).

    ``decoders``: a model's own decoder by its name (:func:`~avsr.evaluation.reading.model_decoder`; the others
    run ``decoder``). ``vad``: how a clip longer than a model reads, or given a lead-in or trail, is cut into
    the speech regions it reads (:func:`~avsr.evaluation.reading.reading`; None: read whole unless too long);
    each row says which (``segmentation``, ``segmented``).

    ``figure_path``: also draw :func:`~avsr.evaluation.figures.utterance_figure` for the first
    utterance, clean and at the lowest SNR of the first noise, with the first model that runs ``av``.
    """
    from tqdm import tqdm

    runs = _runs(models, modes)
    for offset in offsets_ms:
        offset_frames(offset)  # refused before any work
    clean, speakers = load_items(manifest, next(iter(models.values())).preprocessing)
    references = [normalise(item["text"]) for item in clean]
    sources = {noise: NoiseSource(noise, [item["audio"] for item in clean], speakers) for noise in noises}
    clean = with_lead_in(clean, perturbation, seed)
    padded = bool(perturbation.lead_in_frames or perturbation.trail_frames)
    conditions = [("clean", None)] if None in snrs else []
    conditions += [(noise, snr) for noise in noises for snr in snrs if snr is not None]
    jobs = {offset: [(name, mode) for name in models for mode in runs[name] if not (offset and mode == "audio")]
            for offset in offsets_ms}
    rows, video_runs = [], {}
    with tqdm(total=len(conditions) * sum(map(len, jobs.values())), unit="run", disable=not progress) as bar:
        for noise, snr in conditions:
            noisy, achieved = noisy_items(clean, sources.get(noise), snr, seed)
            label = sources[noise].name if noise in sources else "clean"
            achieved = float(np.mean(achieved)) if achieved else None
            for offset in offsets_ms:
                items = with_face_gaps(shifted_items(noisy, offset), perturbation)  # one copy of the set at a time
                for name, mode in jobs[offset]:  # an audio-only model runs audio mode alone
                    if mode == "video" and (name, offset) in video_runs:  # it reads no audio: same under every noise
                        hypotheses, weight, read = video_runs[name, offset]
                    else:
                        read = reading(items, mode, models[name], vad, padded)
                        hypotheses, weight = score(models[name].eval(), items, mode,
                                                   (decoders or {}).get(name, decoder), av_sync=av_sync,
                                                   spans=read.spans)
                        if mode == "video":
                            video_runs[name, offset] = hypotheses, weight, read
                    synced = av_sync if mode == "av" and getattr(models[name].config, "fusion", None) == "xattn" \
                        else "off"
                    rows.append(_scored(references, hypotheses, seed, model=name, mode=mode, noise=label,
                                        snr_db=snr, achieved_snr_db=achieved, mean_audio_weight=weight,
                                        av_offset_ms=offset, av_sync=synced, segmentation=read.segmentation,
                                        segmented=read.segmented))
                    bar.update()
    if figure_path is not None:
        _utterance_figure(models, clean, sources, noises, snrs, seed, figure_path)
    return rows


def _runs(models: dict[str, torch.nn.Module], modes: list[str]) -> dict[str, list[str]]:
    """The modes each model runs of those asked for; an OptionError for models that cannot be
    evaluated together or run none of them."""
    specs = {(m.preprocessing.roi_size, m.preprocessing.crop_size) for m in models.values()}
    if len(specs) > 1:
        raise OptionError(f"the models see crops of different sizes ({sorted(specs)} as roi, crop); evaluate them "
                          "in separate runs")
    runs = {name: [mode for mode in modes if mode in model.modes] for name, model in models.items()}
    if not any(runs.values()):
        can = "; ".join(f"{name} runs {', '.join(model.modes)}" for name, model in models.items())
        raise OptionError(f"no model can run the modes asked for ({', '.join(modes)}): {can}")
    return runs


def _scored(references: list[str], hypotheses: list[str], seed: int, **condition) -> SweepRow:
    """The row of a condition (``model``, ``mode``, ``noise``...) with the scores of its ``hypotheses``:
    WER, its bootstrap interval, CER and each utterance's word edits."""
    errors = utterance_errors(references, hypotheses)
    low, high = bootstrap_wer(errors, np.array([len(text.split()) for text in references]), seed)
    return SweepRow(**condition, wer=word_error_rate(references, hypotheses), wer_low=low, wer_high=high,
                    cer=char_error_rate(references, hypotheses), utterances=len(references),
                    errors=tuple(int(e) for e in errors))


def _utterance_figure(models: dict, clean: list[dict], sources: dict, noises: list[str], snrs: list[float | None],
                      seed: int, path: str | Path) -> None:
    """:func:`~avsr.evaluation.figures.utterance_figure` of the first utterance, clean and at the lowest
    SNR of the first noise, with the first model that runs ``av`` (nothing without one, or without noise)."""
    av_models = [model for model in models.values() if "av" in model.modes]
    lowest = min((snr for snr in snrs if snr is not None), default=None)
    if av_models and noises and lowest is not None:
        noisy, _ = noisy_items(clean[:1], sources[noises[0]], lowest, seed)
        utterance_figure(av_models[0], clean[0], noisy[0], f"{sources[noises[0]].name} {lowest:g} dB", path)


def read_as(row: SweepRow) -> str:
    """How a row's utterances were read, for tables: ``whole``, or ``vad 3/6`` (3 of 6 through their speech
    regions), ``split 3/6`` (cut at the model's longest input, segmentation off)."""
    return "whole" if not row.segmented else f"{row.segmentation} {row.segmented}/{row.utterances}"


def write_results(rows: list[SweepRow], out_dir: str | Path) -> list[Path]:
    """``results.csv``, ``results.md``, ``wer_vs_snr.png`` and ``gate_vs_snr.png`` in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    speakers = speaker_columns(rows)
    columns = [f.name for f in fields(SweepRow) if f.name != "errors"  # per utterance: not a column
               and (speakers or f.name not in SPEAKER_COLUMNS)]
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else f"{v:.4f}" if isinstance(v, float) else v
                         for k, v in asdict(row).items()})
    csv_path = out_dir / "results.csv"
    write_text_atomic(csv_path, buffer.getvalue())
    offsets = any(r.av_offset_ms for r in rows)  # the offset column only in an offset sweep
    md = ["| model | mode | noise | SNR dB |" + (" offset ms |" if offsets else "") +
          " achieved | WER % | 95 % CI | CER % | utts | audio weight | read as |" +
          (" speaker frames % | in speech % | speaker mAP % |" if speakers else ""),
          "|---|---|---|---|" + ("---|" if offsets else "") + "---|---|---|---|---|---|---|" + "---|" * 3 * speakers]
    for r in rows:
        snr = "clean" if r.snr_db is None else f"{r.snr_db:g}"
        achieved = "" if r.achieved_snr_db is None else f"{r.achieved_snr_db:.2f}"
        weight = "" if r.mean_audio_weight is None else f"{r.mean_audio_weight:.3f}"
        mode = r.mode if r.av_sync == "off" else f"{r.mode}, {r.av_sync} sync"
        md.append(f"| {r.model} | {mode} | {r.noise} | {snr} |" + (f" {r.av_offset_ms:+d} |" if offsets else "") +
                  f" {achieved} | {100 * r.wer:.1f} | {100 * r.wer_low:.1f}–{100 * r.wer_high:.1f} | "
                  f"{100 * r.cer:.1f} | {r.utterances} | {weight} | {read_as(r)} |" +
                  ("".join(f" {cell} |" for cell in speaker_cells(r)) if speakers else ""))
    write_text_atomic(out_dir / "results.md", "\n".join(md) + "\n")
    return [csv_path, out_dir / "results.md", *sweep_plots(rows, out_dir)]
