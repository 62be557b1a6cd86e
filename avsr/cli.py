"""The ``avsr`` command. Each subcommand parses its arguments and calls one library function."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import avsr
from avsr.parallel import MAX_PREFETCH, usable_cores
from avsr.preprocessing import DETECT_EVERY, DETECT_MAX_SIDE, TRANSCRIBE_DETECT_EVERY

if TYPE_CHECKING:
    from avsr.io.results import FileResult

LIP_ROI_EXAMPLES = """examples:
  avsr lip-roi talk.mp4 -o rois/ --preview
  avsr lip-roi videos/ '*.mov' @more.txt -o rois/ --detect-every 1   # landmarks on every frame
"""


DETECT_EVERY_HELP = (f"run the face landmarker on every K-th frame and interpolate between (default {DETECT_EVERY}; "
                     "1: every frame, slower, crops nearly the same)")


TRANSCRIBE_DETECT_EVERY_HELP = (f"run the face landmarker on every K-th frame and interpolate between (default "
                                f"{TRANSCRIBE_DETECT_EVERY}; 3: the crops follow a moving head more closely, "
                                "about 1.4x the CPU time)")
WORKERS_HELP = "parallel worker processes (default: one per CPU core, at most one per input)"


# Measured on 2 cores (RESULTS.md, eighth session of 2026-12-01): on 20 short clips 2 workers took 10.7 s, one
# worker with the next file prepared in a thread (the default) 8.2 s; the workers' first file came after 4.7 s.
TRANSCRIBE_WORKERS = 1


def default_workers(asked: int | None, inputs: int | None = None) -> int:
    """``--workers`` as given, else one per CPU core this process may use (at most one per input: a
    single file is prepared in this process, without starting a worker)."""
    if asked is not None:
        return asked
    cores = usable_cores()
    return max(1, min(cores, inputs or cores))


class OneLineParser(argparse.ArgumentParser):
    """Usage errors in one line (``avsr transcribe: error: ...``) with exit code 2, no usage dump."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def _whole_number(text: str, minimum: int) -> int:
    """A whole number >= ``minimum``, or an argparse error saying what is wrong."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{value} must be {minimum} or more")
    return value


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number >= 0."""
    return _whole_number(text, 0)


def check_device(device: str) -> str:
    """``device`` if this machine has it; otherwise a ValueError naming what it has."""
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise ValueError(f"--device {device}: not a device name; use cpu or cuda") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: this machine has no CUDA GPU (or torch has no CUDA); use --device cpu")
    index = torch.device(device).index
    if kind == "cuda" and index is not None and index >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s), numbered from 0")
    return device


def _one_line_warnings() -> None:
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"


def _report(summary: list[FileResult], done_word: str, target: str, current: str = "current") -> int:
    """Print each failure and a count line for a batch's :class:`~avsr.io.results.FileResult` list;
    the exit code."""
    from avsr.io.results import Status

    failed = [r for r in summary if r.status is Status.FAILED]
    for result in failed:
        print(f"failed: {result.error}", file=sys.stderr)
    done = sum(r.status is Status.DONE for r in summary)
    skipped = sum(r.status is Status.SKIPPED for r in summary)
    print(f"{done} {done_word}, {skipped} skipped ({current}), {len(failed)} failed -> {target}")
    return 1 if failed else 0


def _add_lip_roi(subparsers) -> None:
    parser = subparsers.add_parser(
        "lip-roi", help="cut 25 fps mouth crops (96x96 grayscale) from videos into .npz files",
        description="Track the face with MediaPipe, align it and cut a steady mouth crop per 25 fps frame. "
        "Writes OUT_DIR/<stem>.npz with arrays roi, face_found, timestamps_s, mouth_landmarks, fps.",
        epilog=LIP_ROI_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="VIDEO", help="files, folders (recursive), globs or @list.txt")
    parser.add_argument("-o", "--output-dir", required=True, help="folder for the .npz (and .png) outputs")
    parser.add_argument("--detect-every", type=positive_int, default=DETECT_EVERY, metavar="K",
                        help=DETECT_EVERY_HELP)
    parser.add_argument("--detect-max-side", type=int, default=DETECT_MAX_SIDE, metavar="PX",
                        help=f"downscale frames to this longer side for face detection; crops are cut from the full "
                        f"frame (default {DETECT_MAX_SIDE}; 0: full size)")
    parser.add_argument("--workers", type=positive_int, default=None, help=WORKERS_HELP)
    parser.add_argument("--preview", action="store_true", help="also write <stem>.png, a contact sheet of the crops")
    parser.add_argument("--overwrite", action="store_true", help="recompute even when the cached output is current")
    parser.add_argument("--landmarker-model", default=None, metavar="TASK",
                        help="another MediaPipe face_landmarker.task (default: the bundled one)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run_lip_roi)


def _run_lip_roi(args: argparse.Namespace) -> int:
    from avsr.io.inputs import OutputError, check_outputs_spare_inputs, ensure_output_dir, expand_inputs
    from avsr.io.lip_roi import LipRoiOptions
    from avsr.files import output_names
    from avsr.io.roi_batch import run_lip_roi

    from avsr.io.face_mesh import ModelFileError, check_model

    try:
        options = LipRoiOptions(detect_every=args.detect_every, detect_max_side=args.detect_max_side or None,
                                landmarker_model=args.landmarker_model)
        if args.landmarker_model:
            check_model(args.landmarker_model)
    except (ValueError, ModelFileError) as error:
        print(f"avsr lip-roi: error: {error}", file=sys.stderr)
        return 2
    paths = expand_inputs(args.inputs)
    if not paths:
        print("avsr lip-roi: error: no media files found in the inputs given", file=sys.stderr)
        return 2
    names = output_names(paths)
    ensure_output_dir(args.output_dir)
    try:
        check_outputs_spare_inputs([Path(args.output_dir) / f"{n}.{ext}" for n in names for ext in ("npz", "png")],
                                   paths)
    except OutputError as error:
        print(f"avsr lip-roi: error: {error}", file=sys.stderr)
        return 2
    results = run_lip_roi(paths, args.output_dir, options, workers=default_workers(args.workers, len(paths)), preview=args.preview,
                          overwrite=args.overwrite, progress=not args.quiet)
    return _report(results, "done", args.output_dir, current="cache current")


SYNTH_EXAMPLES = """examples:
  avsr synth corpus/ --num-utterances 200 --speakers 6 --test-speakers 2
  avsr synth corpus/ --text-file sentences.txt --faces my_photos/ --voices en-us en-gb-x-rp --workers 2
"""


def _add_synth(subparsers) -> None:
    from avsr.synth import ENGLISH_VOICES, VARIETY_KINDS

    parser = subparsers.add_parser(
        "synth", help="make a synthetic audio-visual speech corpus (real faces, espeak-ng speech)",
        description="Animate the mouths of real face photos from espeak-ng's phoneme timings and write mp4 "
        "files with 16 kHz speech, JSONL manifests per split and word/phone timings per utterance.",
        epilog=SYNTH_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", metavar="OUT_DIR")
    parser.add_argument("--num-utterances", type=int, default=200)
    parser.add_argument("--speakers", type=int, default=6)
    parser.add_argument("--test-speakers", type=int, default=1, help="speakers held out for test (default 1)")
    parser.add_argument("--val-speakers", type=int, default=1, help="speakers held out for validation (default 1)")
    parser.add_argument("--faces", default=None, metavar="DIR", help="folder of face photos (default: bundled photos)")
    parser.add_argument("--voices", nargs="+", default=list(ENGLISH_VOICES), metavar="VOICE",
                        help=f"espeak-ng voices to draw from (default: {' '.join(ENGLISH_VOICES)})")
    text = parser.add_mutually_exclusive_group()
    text.add_argument("--grammar", choices=["grid"], default="grid", help="sentence grammar (default grid)")
    text.add_argument("--text-file", default=None, metavar="F", help="sentences, one per line (open vocabulary)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frame-size", type=int, default=224, metavar="PX", help="square frame side (default 224)")
    parser.add_argument("--workers", type=positive_int, default=1)
    parser.add_argument("--no-recording-floor", dest="recording_floor", action="store_false",
                        help="leave the synthesiser's silence as digital zero (by default every speaker gets room "
                        "tone 35-60 dB below the speech)")
    parser.add_argument("--face-variety", nargs="+", default=list(VARIETY_KINDS), choices=[*VARIETY_KINDS, "none"],
                        metavar="KIND", help="identity variety given to training speakers' faces: "
                        f"{', '.join(VARIETY_KINDS)}, or none (default: all)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from avsr.synth.corpus import SynthOptions, synthesize_corpus
    from avsr.synth.face_rig import FaceImageError
    from avsr.synth.text import TextError
    from avsr.synth.tts import VoiceError

    try:
        options = SynthOptions(num_utterances=args.num_utterances, speakers=args.speakers,
                               test_speakers=args.test_speakers, val_speakers=args.val_speakers, faces_dir=args.faces,
                               voices=tuple(args.voices), text_file=args.text_file, seed=args.seed,
                               frame_size=args.frame_size, workers=args.workers, recording_floor=args.recording_floor,
                               face_variety=tuple(k for k in args.face_variety if k != "none"))
        splits = synthesize_corpus(args.output_dir, options, progress=not args.quiet)
    except (FaceImageError, TextError, VoiceError, ValueError) as error:
        print(f"avsr synth: error: {error}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{len(rows)} {split}" for split, rows in splits.items())
    hours = sum(r["duration_s"] for rows in splits.values() for r in rows) / 3600
    print(f"{counts} utterances ({hours * 60:.1f} min) -> {args.output_dir}")
    return 0


def _add_prepare(subparsers) -> None:
    parser = subparsers.add_parser("prepare", help="prepare data for training (lip ROIs + 16 kHz audio cache)")
    recipes = parser.add_subparsers(title="recipes", metavar="RECIPE", required=True)
    manifest = recipes.add_parser(
        "manifest", help="any JSONL manifest of {id, video, text[, audio]}",
        description="Cut lip ROIs and extract 16 kHz audio for every line; write OUT_DIR/features/<id>.npz, "
        "the prepared manifest OUT_DIR/<name>.jsonl and OUT_DIR/prepare_summary.jsonl. Re-running skips "
        "utterances whose features are current.")
    manifest.add_argument("manifest", metavar="MANIFEST.jsonl")
    manifest.add_argument("output_dir", metavar="OUT_DIR")
    manifest.add_argument("--workers", type=positive_int, default=None, help=WORKERS_HELP)
    manifest.add_argument("--detect-every", type=positive_int, default=DETECT_EVERY, metavar="K", help=DETECT_EVERY_HELP)
    manifest.add_argument("--overwrite", action="store_true", help="recompute features even when they are current")
    manifest.add_argument("--quiet", action="store_true")
    manifest.set_defaults(handler=_run_prepare_manifest)
    from avsr.data.recipes import RECIPES, RecipeOptions

    for name, (_, splits, description) in RECIPES.items():
        recipe = recipes.add_parser(
            name, help=description,
            description=f"{description}. Writes OUT_DIR/features/<id>.npz, OUT_DIR/<split>.jsonl (prepared manifests "
            "for training), prepare_summary.jsonl (failures listed, the rest completes) and stats.json. Re-running "
            "skips current files; --shard I/N prepares every N-th source file into OUT_DIR/shards/ for a job array, "
            "joined by `avsr prepare merge OUT_DIR`. Layouts: data/README.md.")
        recipe.add_argument("root", metavar="ROOT", help="the dataset's folder as unpacked from its archives")
        recipe.add_argument("output_dir", metavar="OUT_DIR")
        recipe.add_argument("--splits", nargs="+", default=list(splits), choices=list(splits),
                            help=f"default: all ({' '.join(splits)})")
        recipe.add_argument("--workers", type=positive_int, default=None, help=WORKERS_HELP)
        recipe.add_argument("--shard", default=None, metavar="I/N", help="prepare shard I of N (0-based)")
        recipe.add_argument("--detect-every", type=positive_int, default=DETECT_EVERY, metavar="K", help=DETECT_EVERY_HELP)
        if name in ("lrs2", "lrs3"):
            recipe.add_argument("--max-segment-s", type=float, default=RecipeOptions.max_segment_s, metavar="S",
                                help="cut clips whose word timings run longer into pieces of at most S seconds at "
                                "word boundaries (default 15)")
        if name == "lrs3":
            recipe.add_argument("--val-ids", default=None, metavar="FILE",
                                help="trainval clips to hold out as a val split, '<speaker_id>/<nnnnn>' per line "
                                "(e.g. AV-HuBERT's lrs3-valid.id); without it validate on test, as auto_avsr does")
        if name == "grid":
            recipe.add_argument("--grid-split", default=RecipeOptions.grid_split, choices=["unseen", "overlapped"],
                                help="unseen: speakers s1 s2 s20 s22 are the test set (default); overlapped: 255 "
                                "sentences per speaker")
        if name == "vox2":
            recipe.add_argument("--labels", required=True, metavar="FILE",
                                help="transcripts, '<path><TAB><text>' per line (path relative to ROOT)")
        recipe.add_argument("--quiet", action="store_true")
        recipe.set_defaults(handler=_run_prepare_recipe, recipe=name)
    merge = recipes.add_parser("merge", help="join the shards of a sharded `avsr prepare RECIPE` run",
                               description="Join OUT_DIR/shards/I-of-N/ into OUT_DIR/<split>.jsonl, "
                               "prepare_summary.jsonl and stats.json, as an unsharded run writes them.")
    merge.add_argument("output_dir", metavar="OUT_DIR")
    merge.set_defaults(handler=_run_prepare_merge)


def _run_prepare_manifest(args: argparse.Namespace) -> int:
    from avsr.data.manifest import ManifestError
    from avsr.data.prepare import prepare_manifest
    from avsr.io.lip_roi import LipRoiOptions

    from avsr.io.inputs import ensure_output_dir

    try:
        ensure_output_dir(args.output_dir, option="OUT_DIR")
        target, summary = prepare_manifest(args.manifest, args.output_dir, LipRoiOptions(detect_every=args.detect_every),
                                           workers=default_workers(args.workers), progress=not args.quiet,
                                           overwrite=args.overwrite)
    except (ManifestError, ValueError) as error:
        print(f"avsr prepare manifest: error: {error}", file=sys.stderr)
        return 2
    return _report(summary, "done", str(target))


def _print_stats(stats: dict) -> None:
    for split, row in stats["splits"].items():
        print(f"{split:>10}: {row['utterances']} utterances, {row['hours']:.3f} h, vocabulary {row['vocabulary']}, "
              f"face found in {100 * row['face_found_rate']:.1f}% of frames")


def _run_prepare_recipe(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from avsr.data.recipes import RECIPES, RecipeError, RecipeOptions, parse_shard, prepare_recipe
    from avsr.io.lip_roi import LipRoiOptions

    discover = RECIPES[args.recipe][0]
    try:
        shard = parse_shard(args.shard) if args.shard else None
        # Each recipe's parser has the options that apply to it; the others keep their defaults.
        options = RecipeOptions(**{f.name: getattr(args, f.name) for f in fields(RecipeOptions) if hasattr(args, f.name)})
        discovery = discover(args.root, tuple(args.splits), options)
        stats, summary = prepare_recipe(discovery, args.output_dir, LipRoiOptions(detect_every=args.detect_every),
                                        default_workers(args.workers), shard, progress=not args.quiet)
    except (RecipeError, ValueError) as error:
        print(f"avsr prepare {args.recipe}: error: {error}", file=sys.stderr)
        return 2
    _print_stats(stats)
    where = args.output_dir if shard is None else f"{args.output_dir}/shards/{shard[0]}-of-{shard[1]}"
    return _report(summary, "done", where)


def _run_prepare_merge(args: argparse.Namespace) -> int:
    from avsr.data.manifest import ManifestError
    from avsr.data.recipes import RecipeError, merge_shards

    try:
        stats, summary = merge_shards(args.output_dir)
    except (RecipeError, ManifestError, ValueError) as error:
        print(f"avsr prepare merge: error: {error}", file=sys.stderr)
        return 2
    _print_stats(stats)
    print(f"merged {len(summary)} summary lines ({stats['failed']} failed) -> {args.output_dir}")
    return 0


def _add_export(subparsers) -> None:
    parser = subparsers.add_parser("export", help="turn a training checkpoint into an inference bundle, or a model "
                                   "into ONNX graphs",
                                   description="Write the model of a Lightning checkpoint as a bundle (weights, "
                                   "model config, tokenizer) that loads with torch.load(weights_only=True); or, with an "
                                   "OUT ending in .onnx, export a checkpoint or bundle as ONNX graphs for ONNX Runtime "
                                   "(one per mode the model runs: OUT, and OUT's stem.audio.onnx / .video.onnx beside "
                                   "it for an AV model; dynamic batch and time axes; needs pip install 'avsr[onnx]').")
    parser.add_argument("checkpoint", metavar="CKPT_OR_BUNDLE")
    parser.add_argument("output", metavar="OUT", help="BUNDLE.pt, or MODEL.onnx")
    parser.add_argument("--half", action="store_true", help="store weights as float16 (half the size; bundles only)")
    parser.add_argument("--note", default="", help="free text stored in the output's metadata")
    parser.set_defaults(handler=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from avsr.io.inputs import OutputError, check_outputs_spare_inputs
    from avsr.models.bundle import BundleError, load_bundle, save_bundle

    onnx = args.output.endswith(".onnx")
    if onnx and args.half:
        print("avsr export: error: --half applies to bundles; ONNX graphs are exported in float32", file=sys.stderr)
        return 2
    try:
        check_outputs_spare_inputs([args.output], [args.checkpoint], option="OUT")
    except OutputError as error:
        print(f"avsr export: error: {error}", file=sys.stderr)
        return 2
    source = Path(args.checkpoint)
    if not source.is_file():
        print(f"avsr export: error: {source}: checkpoint not found; check the path", file=sys.stderr)
        return 2
    try:
        if onnx and not source.name.endswith(".ckpt"):
            model, tokenizer, _ = load_bundle(source)
        else:
            model, tokenizer = _checkpoint_model(source)
    except BundleError as error:
        print(f"avsr export: error: {error}", file=sys.stderr)
        return 2
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
        print(f"avsr export: error: {error}", file=sys.stderr)
        return 2
    for mode, path in paths.items():
        print(f"{mode} graph -> {path}")
    return 0


def _checkpoint_model(path: Path):
    """The network and tokenizer of a training checkpoint; BundleError for a file that is not one."""
    from avsr.models.bundle import BundleError
    from avsr.training.lightning_module import AVSRLightning

    try:
        module = AVSRLightning.load_from_checkpoint(path, map_location="cpu")
    except Exception as error:  # text, a foreign checkpoint, a damaged pickle: all the user's to fix
        raise BundleError(f"{path}: not a training checkpoint of avsr ({error.__class__.__name__}); pass a .ckpt "
                          "written by python train.py fit") from None
    return module.model, module.tokenizer


def _add_evaluate(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="WER/CER of model bundles on a prepared manifest, per mode, noise and SNR",
        description="Decode a prepared manifest in each mode, clean and with noise mixed at each SNR, and print "
        "WER and CER; with -o, a sweep over several models and noises written as tables and plots.")
    parser.add_argument("--model", nargs="+", default=["synth-grid-tiny"], metavar="BUNDLE",
                        help="bundle files (or their .onnx exports), or the embedded 'synth-grid-tiny' (default; trained on the synthetic "
                        "corpus only: it will not transcribe real people)")
    parser.add_argument("--manifest", required=True, metavar="MANIFEST.jsonl",
                        help="a prepared manifest (avsr prepare manifest), or a raw one (id, video, text per line, as "
                        "avsr synth writes), which is prepared first into DIR/prepared (with -o) or "
                        "<manifest>_prepared/ beside it, and reused when current")
    parser.add_argument("--detect-every", type=positive_int, default=DETECT_EVERY, metavar="K",
                        help=f"landmarker stride when a raw manifest is prepared (default {DETECT_EVERY})")
    parser.add_argument("--modes", nargs="+", default=["av", "audio", "video"], choices=["av", "audio", "video"])
    parser.add_argument("--snr-db", nargs="+", default=["clean"], metavar="SNR",
                        help="SNRs in dB measured on the speech, or 'clean' (default: clean)")
    parser.add_argument("--av-offset-ms", nargs="+", type=int, default=[0], metavar="MS",
                        help="shift the video against the audio by each offset (positive: the video lags; multiples "
                        "of 40 ms, one frame), combined with every SNR and noise: an offset axis in the sweep and "
                        "wer_vs_offset.png (default 0)")
    parser.add_argument("--av-sync", default="off", choices=["off", "attention"],
                        help="attention: before an xattn model's av rows are scored, undo each utterance's offset as "
                        "its cross-attention reads it (as avsr transcribe does for a model taught where the lips are); "
                        "off: score the shifted video as it is (default)")
    parser.add_argument("--beam-size", type=positive_int, default=1, metavar="N", help="1 = greedy (default)")
    parser.add_argument("--lexicon", default=None, metavar="FILE",
                        help="words allowed in the output (word list or manifest .jsonl); needs --beam-size > 1")
    parser.add_argument("--noise", nargs="+", default=["white"], metavar="NOISE",
                        help="white, babble (other speakers of the manifest) and/or NAME=DIR (a folder "
                        "of noise recordings, e.g. music=musan/music); default white")
    parser.add_argument("--seed", type=int, default=0, help="seeds the noise of every utterance (default 0)")
    parser.add_argument("-o", "--output-dir", default=None, metavar="DIR",
                        help="run a sweep over models x modes x noises x SNRs and write results.csv, results.md "
                        "(WER with bootstrap 95%% intervals, achieved SNR, gate weight), PNG plots and one utterance's "
                        "spectrogram / mouth crops / gate weight (utterance.png) here")
    parser.set_defaults(handler=_run_evaluate)


def _model_name(name: str) -> str:
    """A bundle's label in tables: the file's stem, or the embedded model's name."""
    return os.path.splitext(os.path.basename(name))[0]


def _run_evaluate(args: argparse.Namespace) -> int:
    from avsr.evaluation.run import EvaluateOptions, evaluate, format_table, parse_snrs
    from avsr.models.bundle import BundleError, load_model

    try:
        options = EvaluateOptions(snrs=parse_snrs(args.snr_db), noises=tuple(args.noise), modes=tuple(args.modes),
                                  seed=args.seed, beam_size=args.beam_size, lexicon=args.lexicon,
                                  output_dir=args.output_dir, detect_every=args.detect_every,
                                  av_offsets_ms=tuple(args.av_offset_ms), av_sync=args.av_sync)
        models = {_model_name(name): load_model(name).network for name in args.model}
        rows = evaluate(models, args.manifest, options, progress=bool(args.output_dir))
    except (ValueError, BundleError, OSError) as error:
        print(f"avsr evaluate: error: {error}", file=sys.stderr)
        return 2
    if args.output_dir:
        out = Path(args.output_dir)
        print((out / "results.md").read_text(), end="")
        print(f"wrote {out}/results.csv, results.md, plots" + (", utterance.png" if (out / "utterance.png").exists()
                                                                else ""))
        return 0
    print(format_table(rows), end="")
    return 0


TRANSCRIBE_EXAMPLES = """examples:
  avsr transcribe talk.mp4                                  # talk.txt/.json/.srt/.vtt here
  avsr transcribe videos/ '*.mov' @list.txt -o out/ -f srt,json --workers 2
  avsr transcribe clips/ --beam-size 16 --lexicon words.txt --lm words.arpa -o out/
Re-running the same command skips inputs already transcribed with the same model.
"""


def _add_transcribe(subparsers) -> None:
    from avsr.inference.outputs import FORMATS

    parser = subparsers.add_parser(
        "transcribe", help="transcribe video (or audio) files: text, word timings, subtitles",
        description="Transcribe every input with an AV model: mouth crops and audio are prepared in worker "
        "processes, the model reads them window by window, and OUT_DIR/<stem>.txt|json|srt|vtt are written "
        "atomically, with OUT_DIR/transcribe_summary.jsonl listing every input. The default model, "
        "synth-grid-tiny, is trained on the synthetic corpus only: it will not transcribe real people.",
        epilog=TRANSCRIBE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders (recursive), globs or @list.txt")
    parser.add_argument("--model", default="synth-grid-tiny", metavar="BUNDLE",
                        help="a bundle file from `avsr export`, its .onnx export, or the embedded 'synth-grid-tiny' (default)")
    parser.add_argument("-o", "--output-dir", default=".", help="folder for the outputs (default: here)")
    parser.add_argument("-f", "--formats", default="all", metavar="LIST",
                        help=f"comma-separated {','.join(FORMATS)}, or all (default); the .json is always written")
    parser.add_argument("--mode", default="auto", choices=["auto", "av", "audio", "video"],
                        help="auto (default): lips and audio, or the one a file has")
    parser.add_argument("--beam-size", type=positive_int, default=1, metavar="N", help="1 = greedy (default); e.g. 16")
    parser.add_argument("--lexicon", default=None, metavar="FILE",
                        help="words allowed in the output: a word list, one per line, or a manifest .jsonl")
    parser.add_argument("--lm", default=None, metavar="ARPA", help="KenLM language model (.arpa or binary)")
    parser.add_argument("--lm-weight", type=float, default=2.0)
    parser.add_argument("--workers", type=positive_int, default=TRANSCRIBE_WORKERS,
                        help=f"worker processes preparing inputs (default {TRANSCRIBE_WORKERS}, which prepares the next "
                        "file in a thread meanwhile; on 2 cores 2 workers were slower; bench/transcribe_speed.py)")
    parser.add_argument("--prefetch", type=non_negative_int, default=None, metavar="N",
                        help="with one worker, files prepared ahead in threads while the model reads the current one "
                        f"(default: one per CPU core, at most {MAX_PREFETCH}; 0: one file at a time, which holds "
                        "one file's inputs in memory instead of N + 1)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--backend", default=None, choices=["torch", "onnx"],
                        help="torch (bundles), or onnx: ONNX Runtime on graphs from `avsr export MODEL model.onnx` "
                        "(pip install 'avsr[onnx]'); default: onnx for a .onnx --model, else torch")
    parser.add_argument("--batch-size", type=positive_int, default=4, metavar="N", help="30 s windows per forward pass")
    parser.add_argument("--detect-every", type=positive_int, default=TRANSCRIBE_DETECT_EVERY, metavar="K",
                        help=TRANSCRIBE_DETECT_EVERY_HELP)
    parser.add_argument("--av-sync", default="auto", choices=["auto", "off"],
                        help="each file's audio-video offset is estimated (mouth opening against the speech "
                        "envelope) and written to its .json as av_offset_ms; beyond 80 ms it is a warning, and auto "
                        "(default) moves the video back by it before recognition")
    parser.add_argument("--attention", action="store_true",
                        help="write an xattn model's attention per frame to the .json (attended offset, peak)")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo inputs whose outputs are current, and replace files of the same name that avsr "
                        "did not write for them")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no transcripts printed")
    parser.set_defaults(handler=_run_transcribe)


def _run_transcribe(args: argparse.Namespace) -> int:
    from avsr.decoding.beam import LexiconError
    from avsr.inference.batch import SUMMARY_NAME, BusyError, transcribe_batch
    from avsr.inference.outputs import FORMATS
    from avsr.inference.transcribe import TranscribeOptions
    from avsr.io.inputs import OutputError, check_outputs_spare_inputs, ensure_output_dir, expand_inputs
    from avsr.files import output_names
    from avsr.models.bundle import BundleError, load_model

    formats = FORMATS if args.formats == "all" else tuple(f.strip() for f in args.formats.split(",") if f.strip())
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        print(f"avsr transcribe: error: unknown format {', '.join(unknown)}; use {','.join(FORMATS)} or all",
              file=sys.stderr)
        return 2
    try:
        options = TranscribeOptions(mode=args.mode, beam_size=args.beam_size, lexicon=args.lexicon, lm=args.lm,
                                    lm_weight=args.lm_weight, batch_size=args.batch_size,
                                    detect_every=args.detect_every, av_sync=args.av_sync, attention=args.attention)
        check_device(args.device)
        model = load_model(args.model, args.device, args.backend)
        if options.mode not in ("auto",) + model.network.modes:
            raise ValueError(f"--mode {options.mode}: {args.model} runs {', '.join(model.network.modes)} (or auto)")
    except (ValueError, BundleError) as error:
        print(f"avsr transcribe: error: {error}", file=sys.stderr)
        return 2
    paths = expand_inputs(args.inputs)
    if not paths:
        print("avsr transcribe: error: no media files found in the inputs given", file=sys.stderr)
        return 2
    out_dir = ensure_output_dir(args.output_dir)
    outputs = [out_dir / f"{name}.{fmt}" for name in output_names(paths) for fmt in set(formats) | {"json"}]
    try:
        check_outputs_spare_inputs(outputs + [out_dir / SUMMARY_NAME], paths)
    except OutputError as error:
        print(f"avsr transcribe: error: {error}", file=sys.stderr)
        return 2
    try:
        summary = transcribe_batch(paths, model, args.output_dir, formats, options, args.workers, args.device,
                                   args.overwrite, progress=not args.quiet, prefetch=args.prefetch)
    except (LexiconError, BusyError) as error:
        print(f"avsr transcribe: error: {error}", file=sys.stderr)
        return 2
    return _report(summary, "transcribed", f"{args.output_dir} (summary: {SUMMARY_NAME})")


def _add_render(subparsers) -> None:
    parser = subparsers.add_parser(
        "render", help="draw the mouth box, the gate's audio/lip weights (and an xattn model's attended offset) and the "
        "transcript onto a video",
        description="Transcribe VIDEO and write OUT (mp4, 25 fps, the input's audio): every frame with the mouth "
        "crop the model read, a bar of the gate's weight on audio (orange) and on the lips (blue), and the words "
        "spoken so far.")
    parser.add_argument("video", metavar="VIDEO")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.mp4")
    parser.add_argument("--model", default="synth-grid-tiny", metavar="BUNDLE",
                        help="a bundle file from `avsr export`, its .onnx export, or the embedded 'synth-grid-tiny' (default)")
    parser.add_argument("--mode", default="auto", choices=["auto", "av", "audio", "video"])
    parser.add_argument("--beam-size", type=positive_int, default=1, metavar="N", help="1 = greedy (default)")
    parser.add_argument("--detect-every", type=positive_int, default=TRANSCRIBE_DETECT_EVERY, metavar="K",
                        help=TRANSCRIBE_DETECT_EVERY_HELP)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.set_defaults(handler=_run_render)


def _run_render(args: argparse.Namespace) -> int:
    from avsr.inference.render import render
    from avsr.inference.transcribe import TranscribeOptions, Transcriber
    from avsr.io.inputs import check_outputs_spare_inputs, ensure_output_dir
    from avsr.io.media import MediaError
    from avsr.models.bundle import BundleError, load_model

    try:
        check_outputs_spare_inputs([args.output], [args.video])
        ensure_output_dir(Path(args.output).parent, option="-o's folder")
        check_device(args.device)
        model = load_model(args.model, args.device)
        transcriber = Transcriber(model.network, model.tokenizer, model.id,
                                  TranscribeOptions(mode=args.mode, beam_size=args.beam_size,
                                                    detect_every=args.detect_every, attention=True), args.device)
        transcript = render(args.video, args.output, transcriber)
    except (ValueError, BundleError, MediaError) as error:
        print(f"avsr render: error: {error}", file=sys.stderr)
        return 2 if not isinstance(error, MediaError) else 1
    print(f"{args.output}: {transcript.text}")
    return 0


def _add_demo(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="make a few synthetic clips and transcribe them with the embedded model",
        description="Synthesize a few GRID sentences spoken by animated real faces (espeak-ng speech), transcribe "
        "them with the embedded synth-grid-tiny model and print each transcript beside the truth. The model was "
        "trained on synthetic data only; `avsr transcribe --model` takes a real one.")
    parser.add_argument("-o", "--output-dir", default="avsr-demo", help="folder for the clips and transcripts")
    parser.add_argument("--clips", type=int, default=4, help="how many clips (default 4)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--beam-size", type=positive_int, default=1, metavar="N", help="1 = greedy (default)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from avsr.inference.demo import run_demo, word_error_rate
    from avsr.inference.transcribe import TranscribeOptions

    rows = run_demo(args.output_dir, args.clips, args.seed, options=TranscribeOptions(beam_size=args.beam_size),
                    progress=not args.quiet)
    for row in rows:
        print(f"{row['video']}\n  truth:      {row['truth']}\n  transcript: {row['hypothesis'] or row['error']}")
    print(f"WER {100 * word_error_rate(rows):.1f} % over {len(rows)} clips; outputs in {args.output_dir}/transcripts "
          "(.txt .json .srt .vtt)")
    return 0 if all(r["status"] != "failed" for r in rows) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="avsr", description="Audio-visual speech recognition toolkit.")
    parser.add_argument("--version", action="version", version=f"avsr {avsr.__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _add_lip_roi(subparsers)
    _add_synth(subparsers)
    _add_prepare(subparsers)
    _add_export(subparsers)
    _add_evaluate(subparsers)
    _add_transcribe(subparsers)
    _add_render(subparsers)
    _add_demo(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from avsr.io.inputs import InputListError, OutputError

    _one_line_warnings()
    args = build_parser().parse_args(argv)
    from avsr.io.face_mesh import keep_python_stderr

    keep_python_stderr()  # MediaPipe's set-up lines are silenced on descriptor 2, not our messages
    command = f"avsr {(argv or sys.argv[1:] or ['?'])[0]}"
    try:
        return args.handler(args)
    except (InputListError, OutputError) as error:
        print(f"{command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{command}: interrupted; finished outputs are kept, and running the same command again resumes "
              "where it stopped", file=sys.stderr)
        return 130
    except OSError as error:  # a full disk, a folder that vanished...
        where = f"{error.filename}: " if error.filename else ""
        print(f"{command}: error: {where}{error.strerror or error}; free space or fix the folder, then run the "
              "same command again", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
