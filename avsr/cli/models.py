"""``avsr export`` and ``avsr evaluate``: models into bundles and ONNX graphs, and their error rates."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from avsr.cli.common import DETECT_EVERY_K, SEED, Number, usage_error
from avsr.errors import OptionError


def add_export(subparsers) -> None:
    parser = subparsers.add_parser("export", help="turn a training checkpoint into an inference bundle, or a model "
                                   "into ONNX graphs",
                                   description="Write the model of a Lightning checkpoint as a bundle (weights, "
                                   "model config, tokenizer) that loads with torch.load(weights_only=True); or, with "
                                   "an OUT ending in .onnx, export a checkpoint or bundle as ONNX graphs for ONNX "
                                   "Runtime (one per mode the model runs: OUT, and OUT's stem.audio.onnx / .video.onnx "
                                   "beside it for an AV model; dynamic batch and time axes; needs pip install "
                                   "'avsr[onnx]').")
    parser.add_argument("checkpoint", metavar="CKPT_OR_BUNDLE")
    parser.add_argument("output", metavar="OUT", help="BUNDLE.pt, or MODEL.onnx")
    parser.add_argument("--half", action="store_true", help="store weights as float16 (half the size; bundles only)")
    parser.add_argument("--note", default="", help="free text stored in the output's metadata")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing files of the output's names (OUT, and an ONNX export's side graphs)")
    parser.set_defaults(handler=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from avsr.io.inputs import OutputError, check_outputs_spare_inputs
    from avsr.models.bundle import save_bundle
    from avsr.models.loader import BundleError, load_model

    onnx = args.output.endswith(".onnx")
    if onnx and args.half:
        return usage_error("avsr export", "--half applies to bundles; ONNX graphs are exported in float32")
    try:
        check_outputs_spare_inputs([args.output], [args.checkpoint], option="OUT")
    except OutputError as error:
        return usage_error("avsr export", error)
    source = Path(args.checkpoint)
    if not source.is_file():
        return usage_error("avsr export", f"{source}: checkpoint not found; check the path")
    try:
        loaded = load_model(source, backend="torch")  # a training checkpoint, or a bundle
    except BundleError as error:
        return usage_error("avsr export", error)
    model, tokenizer = loaded.network, loaded.tokenizer
    if not args.overwrite:
        from avsr.models.onnx import graph_paths  # the side graphs' names (no onnx import)

        targets = list(graph_paths(args.output, model.modes).values()) if onnx else [Path(args.output)]
        existing = [path for path in targets if path.exists() or path.is_symlink()]
        if existing:
            return usage_error("avsr export", f"{existing[0]}: exists"
                               + (f" (an ONNX export of {len(model.modes)} graphs writes {', '.join(map(str, targets))})"
                                  if onnx and len(targets) > 1 else "")
                               + "; pass --overwrite to replace it, or choose another OUT")
    if not onnx:
        save_bundle(args.output, model, tokenizer, {"checkpoint": args.checkpoint, "note": args.note}, half=args.half)
        print(f"bundle -> {args.output}")
        return 0
    from avsr.models.onnx import OnnxError, export_onnx, graph_paths

    try:
        check_outputs_spare_inputs(list(graph_paths(args.output, model.modes).values()), [args.checkpoint],
                                   option="OUT")
        paths = export_onnx(model, args.output, tokenizer, {"source": args.checkpoint, "note": args.note})
    except (OutputError, OnnxError) as error:
        return usage_error("avsr export", error)
    for mode, path in paths.items():
        print(f"{mode} graph -> {path}")
    return 0


def add_evaluate(subparsers) -> None:
    from avsr.evaluation.options import (FACE_GAP_PLACES, MAX_FACE_GAP_S, MAX_OFFSET_MS, MAX_PAD_S, ROOM_TONE_DBFS,
                                         SNR_DB_RANGE, EvaluateOptions, Perturbation)
    from avsr.inference.options import MAX_BEAM

    defaults, perturb = EvaluateOptions(), Perturbation()
    parser = subparsers.add_parser(
        "evaluate", help="WER/CER of model bundles on a prepared manifest, per mode, noise and SNR",
        description="Decode a prepared manifest in each mode, clean and with noise mixed at each SNR, and print "
        "WER and CER; with -o, a sweep over several models and noises written as tables and plots. --compare "
        "scores a second model on the same utterances and pairs its rows with each model's.")
    parser.add_argument("--model", nargs="+", default=["synth-grid-tiny"], metavar="BUNDLE",
                        help="bundle files (or their .onnx exports), or the embedded 'synth-grid-tiny' (default; "
                        "trained on the synthetic "
                        "corpus only: it will not transcribe real people)")
    parser.add_argument("--compare", default=None, metavar="BUNDLE",
                        help="a second model scored on the same utterances, noise and perturbations; each --model row "
                        "is paired with its row of the same condition: the relative WER gain 1 - WER / its WER "
                        "(0.2: 20%% fewer word errors) with a paired bootstrap 95%% interval (compare.md with -o)")
    parser.add_argument("--manifest", required=True, metavar="MANIFEST.jsonl",
                        help="a prepared manifest (avsr prepare manifest), or a raw one (id, video, text per line, as "
                        "avsr synth writes), which is prepared first into DIR/prepared (with -o) or "
                        "<manifest>_prepared/ beside it, and reused when current")
    parser.add_argument("--detect-every", type=DETECT_EVERY_K, default=defaults.detect_every, metavar="K",
                        help=f"landmarker stride when a raw manifest is prepared (default {defaults.detect_every})")
    parser.add_argument("--modes", nargs="+", default=list(defaults.modes), choices=["av", "audio", "video"])
    parser.add_argument("--snr-db", nargs="+", metavar="SNR", type=Number(float, *SNR_DB_RANGE, {"clean": "clean"},
                                                                          unit=" dB"),
                        default=["clean" if snr is None else f"{snr:g}" for snr in defaults.snrs],
                        help="SNRs in dB measured on the speech, or 'clean' (default: clean)")
    parser.add_argument("--av-offset-ms", nargs="+", type=Number(int, -MAX_OFFSET_MS, MAX_OFFSET_MS, unit=" ms"),
                        default=list(defaults.av_offsets_ms), metavar="MS",
                        help="shift the video against the audio by each offset (positive: the video lags; multiples "
                        "of 40 ms, one frame), combined with every SNR and noise: an offset axis in the sweep and "
                        "wer_vs_offset.png (default 0)")
    parser.add_argument("--av-sync", default=defaults.av_sync, choices=["off", "attention"],
                        help="attention: before an xattn model's av rows are scored, undo each utterance's offset as "
                        "its cross-attention reads it (as avsr transcribe does for a model taught where the lips are); "
                        "off: score the shifted video as it is (default)")
    _add_perturbations(parser, perturb, FACE_GAP_PLACES, MAX_FACE_GAP_S, MAX_PAD_S, ROOM_TONE_DBFS)
    parser.add_argument("--beam-size", type=Number(int, 1, MAX_BEAM), default=defaults.beam_size, metavar="N",
                        help="CTC: 1 = greedy (the default); joint: the model's beam (40) unless given")
    parser.add_argument("--decoder", default=defaults.decoder, choices=["auto", "ctc", "joint"],
                        help="auto: the model's own (CTC for avsr's models, joint CTC/attention beam search for an "
                        "imported auto_avsr model, as avsr transcribe decodes); ctc; joint (default auto)")
    parser.add_argument("--no-vad", dest="vad", action="store_false",
                        help="read every clip whole, as avsr transcribe --no-vad does; by default a clip longer than "
                        "the model reads, or given a lead-in or trail, is read through its speech regions as avsr "
                        "transcribe reads a file (the tables' 'read as' column says which)")
    parser.add_argument("--lexicon", default=defaults.lexicon, metavar="FILE",
                        help="words allowed in the output (word list or manifest .jsonl); needs --beam-size > 1")
    parser.add_argument("--noise", nargs="+", default=list(defaults.noises), metavar="NOISE",
                        help="white, babble (other speakers of the manifest) and/or NAME=DIR (a folder "
                        "of noise recordings, e.g. music=musan/music); default white")
    parser.add_argument("--seed", type=SEED, default=defaults.seed,
                        help=f"seeds the noise of every utterance (default {defaults.seed})")
    parser.add_argument("-o", "--output-dir", default=defaults.output_dir, metavar="DIR",
                        help="run a sweep over models x modes x noises x SNRs and write results.csv, results.md "
                        "(WER with bootstrap 95%% intervals, achieved SNR, gate weight), PNG plots and one utterance's "
                        "spectrogram / mouth crops / gate weight (utterance.png) here")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace tables and plots of those names in -o DIR that avsr evaluate did not write")
    parser.set_defaults(handler=_run_evaluate)


def _add_perturbations(parser: argparse.ArgumentParser, perturb, places: tuple[str, ...], max_gap_s: float,
                       max_pad_s: float, room_tone: tuple[float, float]) -> None:
    """The options that make every utterance harder: face gaps, a lead-in and a trail."""
    parser.add_argument("--face-gap-s", type=Number(float, 0, max_gap_s), default=perturb.face_gap_s, metavar="S",
                        help="remove the face (black crops, no face found) for S seconds, whole 40 ms frames up to 1, "
                        f"at --face-gap-at (default {perturb.face_gap_s:g}: none)")
    parser.add_argument("--face-gap-at", default=perturb.face_gap_at, choices=places,
                        help="where the face gap is: the clip's start, middle or end, or the end of every second "
                        f"(default {perturb.face_gap_at})")
    parser.add_argument("--lead-in-s", type=Number(float, 0, max_pad_s), default=perturb.lead_in_s, metavar="S",
                        help="lengthen each clip by S seconds at its start (whole 40 ms frames, up to 5): the "
                        f"first crop held, the sound room tone (default {perturb.lead_in_s:g})")
    parser.add_argument("--trail-s", type=Number(float, 0, max_pad_s), default=perturb.trail_s, metavar="S",
                        help=f"the same after the speech, the last crop held (default {perturb.trail_s:g})")
    parser.add_argument("--room-tone-dbfs", default=None, metavar="DB|clip|zero",
                        type=Number(float, *room_tone, {"clip": "clip", "zero": "zero"}, unit=" dBFS"),
                        help="the lead-in's and trail's sound: pink noise at DB dBFS RMS (-100 to -20), clip (the "
                        "clip's own quietest stretch, as an offset copy is padded; default) or zero (digital silence)")


def _model_name(name: str) -> str:
    """A bundle's label in tables: the file's stem, or the embedded model's name."""
    return os.path.splitext(os.path.basename(name))[0]


# What a sweep writes into -o DIR (avsr.evaluation.sweep, figures, compare).
EVALUATE_OUTPUTS = ("results.csv", "results.md", "wer_vs_snr.png", "gate_vs_snr.png", "wer_vs_offset.png",
                    "utterance.png", "compare.csv", "compare.md")


def _foreign_evaluate_output(out: Path) -> Path | None:
    """The first of a sweep's file names in ``out`` that avsr evaluate did not write, or None: its files are
    those beside a results.csv whose header is a sweep's (model, mode, noise, ...)."""
    existing = [out / name for name in EVALUATE_OUTPUTS if (out / name).exists() or (out / name).is_symlink()]
    try:
        header = (out / "results.csv").read_text(encoding="utf-8").split("\n", 1)[0].split(",")
    except (OSError, UnicodeDecodeError):
        header = []
    return existing[0] if existing and header[:3] != ["model", "mode", "noise"] else None


def _unique(values: list, option: str) -> list:
    """``values`` without repeats (the first kept), with a note on stderr naming those dropped."""
    kept = list(dict.fromkeys(values))
    if len(kept) < len(values):
        repeats = sorted({f"{v:g}" if isinstance(v, float) else str(v) for v in values if values.count(v) > 1})
        print(f"note: {option} {' '.join(repeats)} given more than once; each is run once", file=sys.stderr)
    return kept


def _run_evaluate(args: argparse.Namespace) -> int:
    from avsr.evaluation.compare import format_paired
    from avsr.evaluation.options import EvaluateOptions, Perturbation, parse_room_tone, parse_snrs
    from avsr.evaluation.run import evaluate, format_table
    from avsr.models.loader import load_model

    if args.output_dir and not args.overwrite and (foreign := _foreign_evaluate_output(Path(args.output_dir))):
        from avsr.io.inputs import OutputError

        raise OutputError(f"{foreign}: exists and was not written by avsr evaluate; pass --overwrite to replace it, or "
                          "choose another -o")
    for option in ("model", "modes", "snr_db", "noise", "av_offset_ms"):
        setattr(args, option, _unique(getattr(args, option), f"--{option.replace('_', '-')}"))
    labels = {}
    for name in args.model:
        if labels.setdefault(_model_name(name), name) != name:
            raise OptionError(f"--model {labels[_model_name(name)]} {name}: two models labelled "
                              f"{_model_name(name)}; rename one of the files")
    room_tone = Perturbation.room_tone_dbfs if args.room_tone_dbfs is None else parse_room_tone(args.room_tone_dbfs)
    perturbation = Perturbation(face_gap_s=args.face_gap_s, face_gap_at=args.face_gap_at,
                                lead_in_s=args.lead_in_s, trail_s=args.trail_s, room_tone_dbfs=room_tone)
    options = EvaluateOptions(snrs=parse_snrs(args.snr_db), noises=tuple(args.noise), modes=tuple(args.modes),
                              seed=args.seed, beam_size=args.beam_size, lexicon=args.lexicon,
                              output_dir=args.output_dir, detect_every=args.detect_every,
                              av_offsets_ms=tuple(args.av_offset_ms), av_sync=args.av_sync,
                              perturbation=perturbation, decoder=args.decoder, vad=args.vad)
    models = {_model_name(name): load_model(name) for name in args.model}  # each with its tokenizer and decoder
    compare = None
    if args.compare:
        label = _model_name(args.compare)
        compare = (f"{label} (compared)" if label in models else label, load_model(args.compare))
    result = evaluate(models, args.manifest, options, progress=bool(args.output_dir), compare=compare)
    if perturbation.describe():
        print(perturbation.describe())
    if args.output_dir:
        out = Path(args.output_dir)
        print((out / "results.md").read_text(), end="")
        if compare:
            print("\n" + (out / "compare.md").read_text(), end="")
        written = ["results.csv", "results.md", "plots"] + ["utterance.png"] * (out / "utterance.png").exists()
        print(f"wrote {out}/" + ", ".join(written + ["compare.csv", "compare.md"] * bool(compare)))
        return 0
    print(format_table([row for row in result.rows if compare is None or row.model != compare[0]]), end="")
    if compare:
        print("\n" + format_paired(result.paired), end="")
    return 0
