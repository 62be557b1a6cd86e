"""``avsr lip-roi``, ``avsr synth`` and ``avsr prepare``: media and corpora into training data."""

from __future__ import annotations

import argparse

from avsr.cli.common import (DETECT_EVERY_K, SEED, WORKERS, WORKERS_HELP, Number, default_workers, report,
                              usage_error)
from avsr.errors import OptionError
from avsr.io.roi_options import LipRoiOptions
from avsr.preprocessing import DETECT_EVERY, DETECT_MAX_SIDE, ROI_STYLES

DETECT_EVERY_HELP = (f"run the face landmarker on every K-th frame and interpolate between (default {DETECT_EVERY}; "
                     "1: every frame, slower, crops nearly the same)")

LIP_ROI_EXAMPLES = """examples:
  avsr lip-roi talk.mp4 -o rois/ --preview
  avsr lip-roi videos/ '*.mov' @more.txt -o rois/ --detect-every 1   # landmarks on every frame
  avsr lip-roi talk.mp4 -o rois/ --roi-style auto-avsr   # crops as auto_avsr's published models read them
"""


def add_lip_roi(subparsers) -> None:
    parser = subparsers.add_parser(
        "lip-roi", help="cut 25 fps mouth crops (96x96 grayscale) from videos into .npz files",
        description="Track the face with MediaPipe, align it and cut a steady mouth crop per 25 fps frame. "
        "Writes OUT_DIR/<stem>.npz with arrays roi, face_found, timestamps_s, mouth_landmarks, boxes, fps; with several "
        "faces in view, one track per face id (roi (F, T, 96, 96), face_found (F, T), boxes (F, T, 4) ...).",
        epilog=LIP_ROI_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="VIDEO", help="files, folders (recursive), globs or @list.txt")
    parser.add_argument("-o", "--output-dir", required=True, help="folder for the .npz (and .png) outputs")
    parser.add_argument("--detect-every", type=DETECT_EVERY_K, default=DETECT_EVERY, metavar="K",
                        help=DETECT_EVERY_HELP)
    parser.add_argument("--detect-max-side", type=Number(int, 64, 8192, {"0": 0}), default=DETECT_MAX_SIDE,
                        metavar="PX",
                        help=f"downscale frames to this longer side for face detection; crops are cut from the full "
                        f"frame (default {DETECT_MAX_SIDE}; 0: full size)")
    parser.add_argument("--max-faces", type=Number(int, 1, 16), default=LipRoiOptions.max_faces, metavar="N",
                        help="follow up to N faces at a time, each with its own crops and id "
                        f"(default {LipRoiOptions.max_faces})")
    _add_roi_style(parser)
    parser.add_argument("--workers", type=WORKERS, default=None, help=WORKERS_HELP)
    parser.add_argument("--preview", action="store_true", help="also write <stem>.png, a contact sheet of the crops")
    parser.add_argument("--overwrite", action="store_true", help="recompute even when the cached output is current")
    parser.add_argument("--landmarker-model", default=None, metavar="TASK",
                        help="another MediaPipe face_landmarker.task (default: the bundled one)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run_lip_roi)


def _add_roi_style(parser: argparse.ArgumentParser, prepared: bool = False) -> None:
    parser.add_argument("--roi-style", choices=ROI_STYLES, default=LipRoiOptions.roi_style,
                        help=f"where the crop sits and how large: {ROI_STYLES[0]} (the mouth centred, its width a "
                        "fixed share of the crop) or auto-avsr (auto_avsr's mean-face alignment, for its models) "
                        f"(default {LipRoiOptions.roi_style})" + ("; recorded in the prepared manifest, and avsr "
                                                                 "evaluate checks it against the model's" if prepared
                                                                 else ""))


def _run_lip_roi(args: argparse.Namespace) -> int:
    from avsr.io.inputs import expand_inputs
    from avsr.io.roi_batch import run_lip_roi

    from avsr.io.face_mesh import check_model

    options = LipRoiOptions(detect_every=args.detect_every, detect_max_side=args.detect_max_side or None,
                            landmarker_model=args.landmarker_model, roi_style=args.roi_style,
                            max_faces=args.max_faces)
    if args.landmarker_model:
        check_model(args.landmarker_model)
    paths = expand_inputs(args.inputs)
    if not paths:
        return usage_error("avsr lip-roi", "no media files found in the inputs given")
    results = run_lip_roi(paths, args.output_dir, options, workers=default_workers(args.workers, len(paths)),
                          preview=args.preview,
                          overwrite=args.overwrite, progress=not args.quiet)
    return report(results, "done", args.output_dir, current="cache current")


SYNTH_EXAMPLES = """examples:
  avsr synth corpus/ --num-utterances 200 --speakers 6 --test-speakers 2
  avsr synth corpus/ --text-file sentences.txt --faces my_photos/ --voices en-us en-gb-x-rp --workers 2
  avsr synth talks/ --faces-per-clip 2 --from corpus/ --splits test   # conversations of corpus/'s test speakers
"""


def add_synth(subparsers) -> None:
    from avsr.synth import ENGLISH_VOICES, VARIETY_KINDS
    from avsr.synth.options import MAX_FACES_PER_CLIP, MAX_FRAME_SIZE, SPLITS, SynthOptions

    parser = subparsers.add_parser(
        "synth", help="make a synthetic audio-visual speech corpus (real faces, espeak-ng speech)",
        description="Animate the mouths of real face photos from espeak-ng's phoneme timings and write mp4 "
        "files with 16 kHz speech, JSONL manifests per split and word/phone timings per utterance.",
        epilog=SYNTH_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", metavar="OUT_DIR")
    parser.add_argument("--num-utterances", type=Number(int, 1, 1_000_000), default=SynthOptions.num_utterances)
    parser.add_argument("--speakers", type=Number(int, 1, 10_000), default=SynthOptions.speakers)
    parser.add_argument("--test-speakers", type=Number(int, 0, 10_000), default=SynthOptions.test_speakers,
                        help="speakers held out for test (default %(default)s)")
    parser.add_argument("--val-speakers", type=Number(int, 0, 10_000), default=SynthOptions.val_speakers,
                        help="speakers held out for validation (default %(default)s)")
    parser.add_argument("--faces", default=None, metavar="DIR", help="folder of face photos (default: bundled photos)")
    parser.add_argument("--voices", nargs="+", default=list(SynthOptions.voices), metavar="VOICE",
                        help=f"espeak-ng voices to draw from (default: {' '.join(ENGLISH_VOICES)})")
    text = parser.add_mutually_exclusive_group()
    text.add_argument("--grammar", choices=["grid"], default="grid", help="sentence grammar (default grid)")
    text.add_argument("--text-file", default=None, metavar="F", help="sentences, one per line (open vocabulary)")
    parser.add_argument("--seed", type=SEED, default=SynthOptions.seed)
    parser.add_argument("--frame-size", type=Number(int, 96, MAX_FRAME_SIZE), default=SynthOptions.frame_size,
                        metavar="PX",
                        help="square frame side (default %(default)s)")
    parser.add_argument("--workers", type=WORKERS, default=SynthOptions.workers)
    parser.add_argument("--no-recording-floor", dest="recording_floor", action="store_false",
                        help="leave the synthesiser's silence as digital zero (by default every speaker gets room "
                        "tone 35-60 dB below the speech)")
    parser.add_argument("--face-variety", nargs="+", default=list(SynthOptions.face_variety),
                        choices=[*VARIETY_KINDS, "none"],
                        metavar="KIND", help="identity variety given to training speakers' faces: "
                        f"{', '.join(VARIETY_KINDS)}, or none (default: all)")
    parser.add_argument("--faces-per-clip", type=Number(int, 1, MAX_FACES_PER_CLIP), default=1, metavar="N",
                        help="N > 1: conversations: N speakers of a split side by side in each clip, taking turns "
                        "(pauses, now and then an overlap; listeners blink and move), with who speaks in each frame "
                        "and whose each word is in its side file; the utterances are made in OUT_DIR/utterances "
                        "(or taken from --from) (default 1: one speaker per clip)")
    parser.add_argument("--from", dest="source", default=None, metavar="DIR",
                        help="with --faces-per-clip: compose the utterances of a corpus avsr synth made in DIR (its "
                        "speakers, their faces and looks) rather than making new ones")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=list(SPLITS), metavar="SPLIT",
                        help="with --faces-per-clip: the splits made into conversations (default: all)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace manifests (<split>.jsonl) and a speakers.json in OUT_DIR that avsr synth did "
                        "not write")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from pathlib import Path

    from avsr.synth.corpus import SynthOptions, synthesize_corpus
    from avsr.synth.options import ConversationOptions, SPLITS

    conversations = None
    if args.faces_per_clip > 1:
        conversations = ConversationOptions(faces_per_clip=args.faces_per_clip, splits=tuple(args.splits),
                                            seed=args.seed, workers=args.workers)
    elif args.source or tuple(args.splits) != SPLITS:
        raise OptionError(f"{'--from' if args.source else '--splits'} composes conversations; give it with "
                          "--faces-per-clip 2 (or more)")
    if conversations and args.source:
        return _compose(args, Path(args.source), conversations)
    options = SynthOptions(num_utterances=args.num_utterances, speakers=args.speakers,
                           test_speakers=args.test_speakers, val_speakers=args.val_speakers, faces_dir=args.faces,
                           voices=tuple(args.voices), text_file=args.text_file, seed=args.seed,
                           frame_size=args.frame_size, workers=args.workers, recording_floor=args.recording_floor,
                           face_variety=tuple(k for k in args.face_variety if k != "none"))
    if options.empty_splits:
        raise OptionError(f"--num-utterances {options.num_utterances} with --speakers {options.speakers}: the "
                          f"{' and '.join(options.empty_splits)} speakers would get no utterance (the speakers take "
                          "turns, held-out ones last); raise --num-utterances to at least --speakers")
    target = Path(args.output_dir) / "utterances" if conversations else Path(args.output_dir)
    splits = synthesize_corpus(target, options, progress=not args.quiet, overwrite=args.overwrite)
    counts = ", ".join(f"{len(rows)} {split}" for split, rows in splits.items())
    hours = sum(r["duration_s"] for rows in splits.values() for r in rows) / 3600
    print(f"{counts} utterances ({hours * 60:.1f} min) -> {target}")
    return _compose(args, target, conversations) if conversations else 0


def _compose(args: argparse.Namespace, source, options) -> int:
    from avsr.synth.conversation import compose_conversations

    splits = compose_conversations(source, args.output_dir, options, faces_dir=args.faces, progress=not args.quiet,
                                   overwrite=args.overwrite)
    counts = ", ".join(f"{len(rows)} {split}" for split, rows in splits.items())
    minutes = sum(r["duration_s"] for rows in splits.values() for r in rows) / 60
    print(f"{counts} conversations of {options.faces_per_clip} faces ({minutes:.1f} min) -> {args.output_dir}")
    return 0


def add_prepare(subparsers) -> None:
    parser = subparsers.add_parser("prepare", help="prepare data for training (lip ROIs + 16 kHz audio cache)")
    recipes = parser.add_subparsers(title="recipes", metavar="RECIPE", required=True)
    manifest = recipes.add_parser(
        "manifest", help="any JSONL manifest of {id, video, text[, audio]}",
        description="Cut lip ROIs and extract 16 kHz audio for every line; write OUT_DIR/features/<id>.npz, "
        "the prepared manifest OUT_DIR/<name>.jsonl and OUT_DIR/prepare_summary.jsonl. Re-running skips "
        "utterances whose features are current.")
    manifest.add_argument("manifest", metavar="MANIFEST.jsonl")
    manifest.add_argument("output_dir", metavar="OUT_DIR")
    manifest.add_argument("--workers", type=WORKERS, default=None, help=WORKERS_HELP)
    manifest.add_argument("--detect-every", type=DETECT_EVERY_K, default=DETECT_EVERY, metavar="K",
                          help=DETECT_EVERY_HELP)
    manifest.add_argument("--overwrite", action="store_true", help="recompute features even when they are current")
    _add_roi_style(manifest, prepared=True)
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
        recipe.add_argument("--workers", type=WORKERS, default=None, help=WORKERS_HELP)
        recipe.add_argument("--shard", default=None, metavar="I/N", help="prepare shard I of N (0-based)")
        recipe.add_argument("--detect-every", type=DETECT_EVERY_K, default=DETECT_EVERY, metavar="K",
                            help=DETECT_EVERY_HELP)
        if name in ("lrs2", "lrs3"):
            recipe.add_argument("--max-segment-s", type=Number(float, 1, 300), default=RecipeOptions.max_segment_s,
                                metavar="S",
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
        _add_roi_style(recipe, prepared=True)
        recipe.add_argument("--quiet", action="store_true")
        recipe.set_defaults(handler=_run_prepare_recipe, recipe=name)
    merge = recipes.add_parser("merge", help="join the shards of a sharded `avsr prepare RECIPE` run",
                               description="Join OUT_DIR/shards/I-of-N/ into OUT_DIR/<split>.jsonl, "
                               "prepare_summary.jsonl and stats.json, as an unsharded run writes them.")
    merge.add_argument("output_dir", metavar="OUT_DIR")
    merge.set_defaults(handler=_run_prepare_merge)


def _run_prepare_manifest(args: argparse.Namespace) -> int:
    from avsr.data.prepare import prepare_manifest
    from avsr.io.lip_roi import LipRoiOptions

    from avsr.io.inputs import ensure_output_dir

    ensure_output_dir(args.output_dir, option="OUT_DIR")
    lip_roi = LipRoiOptions(detect_every=args.detect_every, roi_style=args.roi_style)
    target, summary = prepare_manifest(args.manifest, args.output_dir, lip_roi, workers=default_workers(args.workers),
                                       progress=not args.quiet, overwrite=args.overwrite)
    return report(summary, "done", str(target))


def _print_stats(stats: dict) -> None:
    for split, row in stats["splits"].items():
        print(f"{split:>10}: {row['utterances']} utterances, {row['hours']:.3f} h, vocabulary {row['vocabulary']}, "
              f"face found in {100 * row['face_found_rate']:.1f}% of frames")


def _run_prepare_recipe(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from avsr.data.recipes import RECIPES, RecipeOptions, parse_shard, prepare_recipe
    from avsr.io.lip_roi import LipRoiOptions

    discover = RECIPES[args.recipe][0]
    shard = parse_shard(args.shard) if args.shard else None
    # Each recipe's parser has the options that apply to it; the others keep their defaults.
    options = RecipeOptions(**{f.name: getattr(args, f.name) for f in fields(RecipeOptions) if hasattr(args, f.name)})
    discovery = discover(args.root, tuple(args.splits), options)
    lip_roi = LipRoiOptions(detect_every=args.detect_every, roi_style=args.roi_style)
    stats, summary = prepare_recipe(discovery, args.output_dir, lip_roi,
                                    default_workers(args.workers), shard, progress=not args.quiet)
    _print_stats(stats)
    where = args.output_dir if shard is None else f"{args.output_dir}/shards/{shard[0]}-of-{shard[1]}"
    return report(summary, "done", where)


def _run_prepare_merge(args: argparse.Namespace) -> int:
    from avsr.data.recipes import merge_shards

    stats, summary = merge_shards(args.output_dir)
    _print_stats(stats)
    print(f"merged {len(summary)} summary lines ({stats['failed']} failed) -> {args.output_dir}")
    return 0
