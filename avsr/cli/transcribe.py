"""``avsr transcribe``, ``avsr render`` and ``avsr demo``: media files into transcripts."""

from __future__ import annotations

import argparse

from avsr.errors import OptionError
from avsr.cli.common import (DETECT_EVERY_K, PROBABILITY, SEED, WORKERS, Number, check_device, report,
                              usage_error)
from avsr.inference.options import DECODERS, LM_WEIGHT_RANGE, MAX_BATCH, MAX_BEAM, MODES, TranscribeOptions
from avsr.parallel import MAX_PREFETCH

BEAM_HELP = ("hypotheses kept; default: the decoder's own (CTC: 1, greedy; joint: the model's, 40); a CTC beam "
             "over 1 runs torchaudio's beam search, e.g. 16")
TRANSCRIBE_DETECT_EVERY_HELP = (f"run the face landmarker on every K-th frame and interpolate between (default "
                                f"{TranscribeOptions.detect_every}; 3: the crops follow a moving head more closely, "
                                "about 1.4x the CPU time)")
LARGEST_FACE_HELP = ("read the largest face throughout; by default every face is tracked and, where there are "
                     "several, each frame is read from the one speaking, and each word in the .json names its face")


# Measured on 2 cores (docs/history/2026-12-01.md, 3cb86a0…622ea5f): on 20 short clips 2 workers took 10.7 s, one
# worker with the next file prepared in a thread (the default) 8.2 s; the workers' first file came after 4.7 s.
TRANSCRIBE_WORKERS = 1
BEAM = Number(int, 1, MAX_BEAM)
MAX_DEMO_CLIPS = 100  # each clip is synthesised and transcribed: about 2 s of CPU time


TRANSCRIBE_EXAMPLES = """examples:
  avsr transcribe talk.mp4                                  # talk.txt/.json/.srt/.vtt here
  avsr transcribe videos/ '*.mov' @list.txt -o out/ -f srt,json --workers 2
  avsr transcribe clips/ --beam-size 16 --lexicon words.txt --lm words.arpa -o out/
Re-running the same command skips inputs already transcribed with the same model.
"""


def add_transcribe(subparsers) -> None:
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
                        help="a bundle file from `avsr export`, its .onnx export, or the embedded 'synth-grid-tiny' "
                        "(default)")
    parser.add_argument("-o", "--output-dir", default=".", help="folder for the outputs (default: here)")
    parser.add_argument("-f", "--formats", default="all", metavar="LIST",
                        help=f"comma-separated {','.join(FORMATS)}, or all (default); the .json is always written")
    parser.add_argument("--mode", default=TranscribeOptions.mode, choices=MODES,
                        help="auto (default): lips and audio, or the one a file has; a file the mode cannot apply "
                        "to (video without a face, audio without an audio track) fails with its reason")
    parser.add_argument("--decoder", default=TranscribeOptions.decoder, choices=DECODERS,
                        help="auto (default): the model's own (CTC for avsr's models; joint CTC/attention beam search "
                        "for an imported auto_avsr model, as its authors decode); ctc: the CTC head alone (faster)")
    parser.add_argument("--beam-size", type=BEAM, default=TranscribeOptions.beam_size, metavar="N",
                        help=BEAM_HELP)
    parser.add_argument("--lexicon", default=None, metavar="FILE",
                        help="words allowed in the output: a word list, one per line, or a manifest .jsonl")
    parser.add_argument("--lm", default=None, metavar="ARPA", help="KenLM language model (.arpa or binary)")
    parser.add_argument("--lm-weight", type=Number(float, *LM_WEIGHT_RANGE), default=TranscribeOptions.lm_weight,
                        metavar="W", help="the language model's weight (default %(default)s)")
    parser.add_argument("--workers", type=WORKERS, default=TRANSCRIBE_WORKERS,
                        help=f"worker processes preparing inputs (default {TRANSCRIBE_WORKERS}, which prepares the "
                        "next file in a thread meanwhile; on 2 cores 2 workers were slower: "
                        "python -m bench.transcribe_speed)")
    parser.add_argument("--prefetch", type=Number(int, 0, 16), default=None, metavar="N",
                        help="with one worker, files prepared ahead in threads while the model reads the current one "
                        f"(default: one per CPU core, at most {MAX_PREFETCH}; 0: one file at a time, which holds "
                        "one file's inputs in memory instead of N + 1)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--backend", default=None, choices=["torch", "onnx"],
                        help="torch (bundles), or onnx: ONNX Runtime on graphs from `avsr export MODEL model.onnx` "
                        "(pip install 'avsr[onnx]'); default: onnx for a .onnx --model, else torch")
    parser.add_argument("--batch-size", type=Number(int, 1, MAX_BATCH), default=TranscribeOptions.batch_size,
                        metavar="N",
                        help="30 s windows per forward pass")
    parser.add_argument("--detect-every", type=DETECT_EVERY_K, default=TranscribeOptions.detect_every, metavar="K",
                        help=TRANSCRIBE_DETECT_EVERY_HELP)
    parser.add_argument("--av-sync", default=TranscribeOptions.av_sync, choices=["auto", "off"],
                        help="each file's audio-video offset is estimated (mouth opening against the speech "
                        "envelope) and written to its .json as av_offset_ms; beyond 80 ms it is a warning, and auto "
                        "(default) moves the video back by it before recognition")
    parser.add_argument("--no-vad", dest="vad", action="store_false",
                        help="read the whole file; by default the model reads only its speech regions (voice "
                        "activity from the audio, and from the lips where the audio is missing or drowned), so "
                        "quiet, music and noise give no words")
    parser.add_argument("--vad-threshold", type=PROBABILITY, default=TranscribeOptions.vad_threshold, metavar="P",
                        help="speech probability from which a frame is speech (default %(default)s; lower finds "
                        "more, quieter speech)")
    parser.add_argument("--ctc-word-times", dest="refine_words", action="store_false",
                        help="word times as the CTC alignment gives them; by default each word's start and end are "
                        "moved onto the audio's energy envelope (avsr.decoding.boundaries; not in video mode)")
    parser.add_argument("--attention", action="store_true",
                        help="write an xattn model's attention per frame to the .json (attended offset, peak)")
    parser.add_argument("--largest-face", dest="every_face", action="store_false", help=LARGEST_FACE_HELP)
    parser.add_argument("--overwrite", action="store_true",
                        help="redo inputs whose outputs are current, and replace files of the same name that avsr "
                        "did not write for them")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no transcripts printed")
    parser.set_defaults(handler=_run_transcribe)


def _run_transcribe(args: argparse.Namespace) -> int:
    from avsr.inference.batch import SUMMARY_NAME, transcribe_batch
    from avsr.inference.outputs import FORMATS
    from avsr.io.inputs import expand_inputs
    from avsr.models.loader import load_model

    formats = FORMATS if args.formats == "all" else tuple(f.strip() for f in args.formats.split(",") if f.strip())
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        return usage_error("avsr transcribe", f"unknown format {', '.join(unknown)}; use {','.join(FORMATS)} or all")
    options = TranscribeOptions(mode=args.mode, decoder=args.decoder, beam_size=args.beam_size,
                                lexicon=args.lexicon, lm=args.lm,
                                lm_weight=args.lm_weight, batch_size=args.batch_size, detect_every=args.detect_every,
                                av_sync=args.av_sync, attention=args.attention, vad=args.vad,
                                vad_threshold=args.vad_threshold, every_face=args.every_face,
                                refine_words=args.refine_words)
    check_device(args.device)
    model = load_model(args.model, args.device, args.backend)
    if options.mode not in ("auto",) + model.network.modes:
        raise OptionError(f"--mode {options.mode}: {args.model} runs {', '.join(model.network.modes)} (or auto)")
    if args.attention and getattr(getattr(model.network, "config", None), "fusion", None) != "xattn":
        raise OptionError(f"--attention: {args.model} has no cross-attention between audio and lips (only an xattn "
                          "model has); leave --attention out")
    if args.attention and options.mode in ("audio", "video"):
        raise OptionError(f"--attention with --mode {options.mode}: the attention is between audio and lips; use "
                          "--mode av or auto")
    paths = expand_inputs(args.inputs)
    if not paths:
        return usage_error("avsr transcribe", "no media files found in the inputs given")
    summary = transcribe_batch(paths, model, args.output_dir, formats, options, args.workers, args.device,
                               args.overwrite, progress=not args.quiet, prefetch=args.prefetch, echo=not args.quiet)
    return report(summary, "transcribed", f"{args.output_dir} (summary: {SUMMARY_NAME})")


def add_render(subparsers) -> None:
    parser = subparsers.add_parser(
        "render", help="draw the mouth box, the gate's audio/lip weights (and an xattn model's attended offset) and "
        "the transcript onto a video",
        description="Transcribe VIDEO and write OUT (mp4, 25 fps, the input's audio): every frame with the mouth "
        "crop the model read, a bar of the gate's weight on audio (orange) and on the lips (blue), and the words "
        "spoken so far.")
    parser.add_argument("video", metavar="VIDEO")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.mp4")
    parser.add_argument("--model", default="synth-grid-tiny", metavar="BUNDLE",
                        help="a bundle file from `avsr export`, its .onnx export, or the embedded 'synth-grid-tiny' "
                        "(default)")
    parser.add_argument("--mode", default=TranscribeOptions.mode, choices=MODES)
    parser.add_argument("--beam-size", type=BEAM, default=TranscribeOptions.beam_size, metavar="N",
                        help=BEAM_HELP)
    parser.add_argument("--detect-every", type=DETECT_EVERY_K, default=TranscribeOptions.detect_every, metavar="K",
                        help=TRANSCRIBE_DETECT_EVERY_HELP)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--largest-face", dest="every_face", action="store_false", help=LARGEST_FACE_HELP)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT.mp4")
    parser.set_defaults(handler=_run_render)


def _run_render(args: argparse.Namespace) -> int:
    from avsr.inference.render import render
    from avsr.inference.transcribe import Transcriber
    from avsr.models.loader import load_model

    check_device(args.device)
    model = load_model(args.model, args.device)
    transcriber = Transcriber(model.network, model.tokenizer, model.id,
                              TranscribeOptions(mode=args.mode, beam_size=args.beam_size,
                                                detect_every=args.detect_every, attention=True,
                                                every_face=args.every_face), args.device)
    transcript = render(args.video, args.output, transcriber, overwrite=args.overwrite)
    print(f"{args.output}: {transcript.text}")
    return 0


def add_demo(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="make a few synthetic clips and transcribe them with the embedded model",
        description="Synthesize a few GRID sentences spoken by animated real faces (espeak-ng speech), transcribe "
        "them with the embedded synth-grid-tiny model and print each transcript beside the truth. The model was "
        "trained on synthetic data only; `avsr transcribe --model` takes a real one.")
    parser.add_argument("-o", "--output-dir", default="avsr-demo", help="folder for the clips and transcripts")
    parser.add_argument("--clips", type=Number(int, 1, MAX_DEMO_CLIPS), default=4,
                        help=f"how many clips (default 4, at most {MAX_DEMO_CLIPS})")
    parser.add_argument("--seed", type=SEED, default=2026)
    parser.add_argument("--beam-size", type=BEAM, default=TranscribeOptions.beam_size, metavar="N",
                        help=BEAM_HELP)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from avsr.inference.demo import run_demo, word_error_rate

    rows = run_demo(args.output_dir, args.clips, args.seed, options=TranscribeOptions(beam_size=args.beam_size),
                    progress=not args.quiet)
    for row in rows:
        print(f"{row['video']}\n  truth:      {row['truth']}\n  transcript: {row['hypothesis'] or row['error']}")
    print(f"WER {100 * word_error_rate(rows):.1f} % over {len(rows)} clips; outputs in {args.output_dir}/transcripts "
          "(.txt .json .srt .vtt)")
    return 0 if all(r["status"] != "failed" for r in rows) else 1
