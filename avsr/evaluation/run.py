"""``avsr evaluate`` as a library call: options checked up front, raw manifests prepared on the fly,
the decoder built once, the sweep run (with a compared model, its paired comparison), and its tables
written or printed."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

from avsr.data.manifest import read_jsonl
from avsr.errors import OptionError
from avsr.evaluation.compare import PairedRow, paired_rows, write_paired
from avsr.evaluation.options import EvaluateOptions
from avsr.evaluation.reading import model_decoder
from avsr.evaluation.speakers import evaluate_speakers, has_speaker_truth
from avsr.evaluation.sweep import SweepRow, read_as, speaker_cells, speaker_columns, sweep, write_results
from avsr.io.vad import VadOptions
from avsr.preprocessing import DETECT_EVERY, ROI_STYLES


@dataclass
class Evaluation:
    """What :func:`evaluate` measured: the sweep's rows, and each of them against the compared
    model's row of the same condition (empty without a compared model)."""

    rows: list[SweepRow]
    paired: list[PairedRow] = field(default_factory=list)


def prepared_manifest(manifest: str | Path, cache_dir: str | Path, detect_every: int = DETECT_EVERY,
                      progress: bool = True, roi_style: str = ROI_STYLES[0]) -> Path:
    """``manifest`` itself if it is prepared (``features`` per line); a raw one (``id, video, text``, as
    ``avsr synth`` writes) is prepared into ``cache_dir`` first, its crops cut in ``roi_style`` (re-runs reuse
    what is current), and its failures are reported on stderr."""
    from avsr.data.prepare import prepare_manifest
    from avsr.io.lip_roi import LipRoiOptions
    from avsr.io.results import Status

    records = read_jsonl(manifest)
    if not records or "features" in records[0]:
        return Path(manifest)
    target, summary = prepare_manifest(manifest, cache_dir, LipRoiOptions(detect_every=detect_every,
                                                                          roi_style=roi_style), progress=progress)
    for result in summary:
        if result.status is Status.FAILED:
            print(f"warning: left out of the evaluation: {result.error}", file=sys.stderr)
    return target


def video_style(networks: dict[str, torch.nn.Module], modes: tuple[str, ...]) -> str | None:
    """The ROI style the models that read the lips in ``modes`` read (None when none does).

    Raises:
        OptionError: models that read crops of different styles.
    """
    styles = {name: network.preprocessing.roi_style for name, network in networks.items()
              if any(mode in network.modes for mode in modes if mode != "audio")}
    if len(set(styles.values())) > 1:
        named = "; ".join(f"{name} reads {style}" for name, style in styles.items())
        raise OptionError(f"the models read mouth crops of different ROI styles ({named}); evaluate them in separate "
                          "runs, each on a manifest prepared with its --roi-style")
    return next(iter(styles.values()), None)


def check_roi_style(manifest: str | Path, networks: dict[str, torch.nn.Module], modes: tuple[str, ...]) -> None:
    """Refuse a prepared manifest whose crops were cut in another ROI style than a model reading the lips reads
    (a model of the auto-avsr style fed this package's crops reads junk, and no error would say why)."""
    from avsr.data.manifest import ManifestError, roi_style

    wanted = video_style(networks, modes)
    cut = roi_style(manifest, read_jsonl(manifest))
    if wanted is not None and cut != wanted:
        name = next(name for name, network in networks.items() if network.preprocessing.roi_style == wanted)
        raise ManifestError(f"{manifest}: its mouth crops were cut in the {cut} ROI style, and {name} reads "
                            f"{wanted} crops; prepare the source manifest again with avsr prepare manifest SOURCE "
                            f"OUT_DIR --roi-style {wanted} (or avsr prepare RECIPE ... --roi-style {wanted})")


def _parts(model) -> tuple[torch.nn.Module, object]:
    """A network and its tokenizer (None: characters) from a network or a :class:`~avsr.models.loader.LoadedModel`."""
    return (model.network, model.tokenizer) if hasattr(model, "network") else (model, None)


def evaluate(models: dict, manifest: str | Path, options: EvaluateOptions = EvaluateOptions(),
             progress: bool = False, compare: tuple | None = None) -> Evaluation:
    """The sweep's rows (see :func:`~avsr.evaluation.sweep.sweep`) of ``models`` (name: network, or a
    :class:`~avsr.models.loader.LoadedModel`, whose tokenizer and decoder are then its own) and,
    with ``compare`` (name, network or loaded model), of that model too, each other model's rows paired with its
    (:func:`~avsr.evaluation.compare.paired_rows`). With ``output_dir`` the results, plots,
    ``utterance.png`` and, with ``compare``, ``compare.csv`` / ``compare.md`` are written there.

    Raises:
        ManifestError: a prepared manifest whose crops were cut in another ROI style than the models read.
        OptionError: options the models cannot run (a decoder, a beam).
    """
    if len(models) > 1 and not options.output_dir:
        raise OptionError("several models need -o DIR (a sweep)")
    if compare is not None and compare[0] in models:
        raise OptionError(f"--compare {compare[0]}: has the name of a model under evaluation; give it another")
    parts = {name: _parts(model) for name, model in (models | dict([compare] if compare else [])).items()}
    networks = {name: network for name, (network, _) in parts.items()}
    decoders = {name: model_decoder(network, tokenizer, options.decoder, options.beam_size, options.lexicon)
                for name, (network, tokenizer) in parts.items()}
    style = video_style(networks, options.modes)
    out = Path(options.output_dir) if options.output_dir else None
    if has_speaker_truth(manifest):  # several faces: read as avsr transcribe reads them, scored for the speaker too
        rows = evaluate_speakers(parts, manifest, options, progress)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            for earlier in (out / "utterance.png", out / "compare.csv", out / "compare.md"):  # an earlier sweep's
                earlier.unlink(missing_ok=True)
            write_results(rows, out)
        paired = paired_rows(rows, compare[0], options.seed) if compare else []
        if out is not None and compare:
            write_paired(paired, out)
        return Evaluation(rows, paired)
    cache = (out / "prepared") if out else Path(manifest).with_name(f"{Path(manifest).stem}_prepared")
    manifest = prepared_manifest(manifest, cache, options.detect_every, progress, style or ROI_STYLES[0])
    check_roi_style(manifest, networks, options.modes)
    figure = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        figure = out / "utterance.png"
        for earlier in (figure, out / "compare.csv", out / "compare.md"):  # an earlier sweep's
            earlier.unlink(missing_ok=True)
    rows = sweep(networks, str(manifest), list(options.snrs), list(options.noises), list(options.modes), options.seed,
                 progress=progress, figure_path=figure, offsets_ms=list(options.av_offsets_ms),
                 av_sync=options.av_sync, perturbation=options.perturbation, decoders=decoders,
                 vad=VadOptions() if options.vad else None)
    paired = paired_rows(rows, compare[0], options.seed) if compare else []
    if out is not None:
        write_results(rows, out)
        if compare:
            write_paired(paired, out)
    return Evaluation(rows, paired)


def format_table(rows: list[SweepRow]) -> str:
    """One model's rows as the plain table ``avsr evaluate`` prints without ``-o``."""
    offsets, speakers = any(r.av_offset_ms for r in rows), speaker_columns(rows)
    lines = [f"{'SNR dB':>7}  " + (f"{'offset ms':>9}  " if offsets else "") +
             f"{'mode':<6}{'WER %':>8}{'CER %':>8}{'utts':>6}{'audio weight':>14}  read as" +
             (f"{'':<3}{'speaker frames %':>16}{'in speech %':>13}{'speaker mAP %':>15}" if speakers else "")]
    for r in rows:
        weight = "" if r.mean_audio_weight is None else f"{r.mean_audio_weight:.3f}"
        label = "clean" if r.snr_db is None else f"{r.snr_db:g}"
        offset = f"{r.av_offset_ms:>+9d}  " if offsets else ""
        read = f"{read_as(r):<10}" + "".join(f"{cell:>{width}}" for cell, width in zip(speaker_cells(r), (16, 13, 15))) \
            if speakers else read_as(r)
        lines.append(f"{label:>7}  {offset}{r.mode:<6}{100 * r.wer:>8.2f}{100 * r.cer:>8.2f}{r.utterances:>6}"
                     f"{weight:>14}  {read}")
    return "\n".join(lines) + "\n"
