"""Audio-video offset: how well ``avsr transcribe`` estimates it, and what undoing it buys; or, with
``--mouth-signals``, which reading of the mouth gives the best estimate, at which landmark stride.

    python -m bench.av_sync MANIFEST.jsonl [--clips 40] [--offsets-ms -200 -120 -40 0 40 120 200]
        [--model synth-grid-tiny] [--detect-every K] [--signal pixels|opening] [--work DIR]
    python -m bench.av_sync MANIFEST.jsonl --mouth-signals [--clips 20] [--strides 1 3]
        [--thresholds 0.1 0.15 0.2]

For every clip of a raw manifest (``avsr synth``'s ``test.jsonl``; the first ``--clips``, taken
evenly over its speakers) and every offset, a copy of the clip is written with the picture moved
against the sound (positive: the video lags) by :func:`avsr.io.writer.write_offset_copy`, padded at
the ends so that no speech or frame is lost.

Recognition (the default): each copy is decoded once and recognised with ``--av-sync off`` and
``auto``. Printed per offset: the estimate's median and median absolute error (ms), its confidence,
the share of estimates read from the model's attention (the rest from the mouth:
:meth:`avsr.inference.transcribe.Transcriber.recognise`), and WER with each setting.

``--mouth-signals`` (no model runs): each copy is decoded once per landmarker stride (``--strides``)
and the offset estimated (:func:`avsr.inference.sync.estimate_offset`) from three mouth signals:

- ``opening``: inner-lip height over mouth width from the landmarks (:func:`mouth_opening`); at
  strides above 1 interpolated between landmark frames;
- ``pixels``: the crops' first principal component over the mouth box (:func:`mouth_signal`), what
  ``avsr transcribe`` reads;
- ``both``: the pixels' estimate, with its confidence set to 0 where the opening's estimate is more
  than a frame away from it.

Printed per signal and stride: the median absolute error, the share within 40 ms and beyond 80 ms,
and for each confidence threshold (``SYNC_MIN_CONFIDENCE`` is the one transcription acts on) the
share of copies with a confident estimate and the share with a confident estimate beyond 80 ms.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from avsr.inference.prepare import prepare_input
from avsr.inference.sync import SYNC_MIN_CONFIDENCE, estimate_offset, mouth_opening, mouth_signal
from avsr.inference.transcribe import TranscribeOptions, Transcriber
from avsr.io.lip_roi import LipRoiOptions, extract_lip_roi
from avsr.io.media import read_audio_into
from avsr.io.writer import write_offset_copy
from avsr.models.loader import load_model
from avsr.preprocessing import SAMPLES_PER_FRAME
from avsr.text import word_error_rate
from bench.common import pick_clips


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--clips", type=int, default=None, help="clips to take (default: 40; 20 with --mouth-signals)")
    parser.add_argument("--offsets-ms", type=int, nargs="+", default=[-200, -120, -40, 0, 40, 120, 200])
    parser.add_argument("--model", default="synth-grid-tiny")
    parser.add_argument("--detect-every", type=int, default=None,
                        help="landmarker stride of the lip-ROI stage (default: the library's default)")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the shifted copies (default: a temporary one)")
    parser.add_argument("--signal", choices=["pixels", "opening"], default="pixels",
                        help="the mouth signal of the estimate: pixels (transcribe's) or, as a control, the landmarks' "
                        "opening (transcribe's before a415050…cda6f16, 2026-12-01)")
    parser.add_argument("--attention-rounding", choices=["floor", "nearest", "zero"], default="floor",
                        help="how an estimate from the attention becomes whole frames to undo: floor (transcribe's: "
                        "never leaves the picture early) or, as controls, to the nearest frame or toward zero")
    parser.add_argument("--mouth-signals", action="store_true",
                        help="compare the mouth signals (opening, pixels, both) at each landmark stride; no model runs")
    parser.add_argument("--strides", type=int, nargs="+", default=[1, 3],
                        help="with --mouth-signals: landmarker strides to decode with")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[SYNC_MIN_CONFIDENCE, 0.15, 0.2],
                        help="with --mouth-signals: confidence thresholds to count estimates acted on")
    args = parser.parse_args()
    if args.clips is None:
        args.clips = 20 if args.mouth_signals else 40
    return args


def install_controls(args: argparse.Namespace) -> None:
    """The controls: another rounding rule for the attention's estimates, or the landmarks' opening
    as the mouth signal."""
    if args.attention_rounding != "floor":
        from avsr.inference.sync import SyncEstimate

        mouth_rule, rule = SyncEstimate.offset_frames.fget, {"nearest": round, "zero": int}[args.attention_rounding]
        SyncEstimate.offset_frames = property(lambda e: rule(e.offset_ms / 40) if e.source == "attention"
                                              else mouth_rule(e))
    if args.signal == "opening":
        import avsr.inference.prepare as prepare_module
        prepare_module.mouth_signal = lambda crops, found, opening: opening


def recognise_offsets(args: argparse.Namespace, clips: list[dict], work: Path) -> dict:
    """offset -> [(estimate ms or None, confidence, {setting: (reference, hypothesis)}, source)]"""
    model = load_model(args.model)
    runs = {setting: Transcriber(model.network, model.tokenizer, model.id, TranscribeOptions(av_sync=setting))
            for setting in ("off", "auto")}
    results = defaultdict(list)
    for clip in clips:
        source = args.manifest.parent / clip["video"]
        for offset in args.offsets_ms:
            path = write_offset_copy(source, work / f"{clip['id']}_{offset:+d}.mp4", offset // 40)
            prepared = prepare_input(path, **({} if args.detect_every is None else {"detect_every": args.detect_every}))
            outputs = {setting: run.recognise(prepared) for setting, run in runs.items()}
            estimate = outputs["auto"].av_offset_ms
            results[offset].append((estimate, outputs["auto"].av_sync_confidence,
                                    {s: (clip["text"], t.text) for s, t in outputs.items()},
                                    outputs["auto"].av_sync_source))
            path.unlink()
    return results


def print_recognition(args: argparse.Namespace, clips: list[dict], results: dict) -> None:
    print(f"{len(clips)} clips of {args.manifest}, model {args.model}, landmarks on every "
          f"{args.detect_every or 'default'} frame(s), mouth signal: {args.signal}, attention's estimate rounded: "
          f"{args.attention_rounding}")
    print(f"{'offset ms':>9} {'estimate median':>16} {'median |error|':>15} {'confidence':>11} {'no estimate':>12} "
          f"{'attention %':>12} {'WER % off':>10} {'WER % auto':>11}")
    errors = []
    for offset in args.offsets_ms:
        rows = results[offset]
        found = [r for r in rows if r[0] is not None]
        error = [abs(r[0] - offset) for r in found]
        errors += error
        wer = {s: 100 * word_error_rate([r[2][s][0] for r in rows], [r[2][s][1] for r in rows])
               for s in ("off", "auto")}
        print(f"{offset:>+9d} {statistics.median(r[0] for r in found):>16.1f} {statistics.median(error):>15.1f} "
              f"{statistics.median(r[1] for r in found):>11.2f} {len(rows) - len(found):>12d} "
              f"{100 * np.mean([r[3] == 'attention' for r in rows]):>12.0f} {wer['off']:>10.1f} "
              f"{wer['auto']:>11.1f}")
    print(f"all offsets: median |error| {statistics.median(errors):.1f} ms, "
          f"{100 * np.mean(np.array(errors) <= 40):.0f} % within 40 ms")


def signal_estimates(path: Path, stride: int) -> dict:
    """signal -> the offset estimate (or None) of one copy decoded with the landmarker every ``stride`` frames."""
    roi = extract_lip_roi(path, LipRoiOptions(detect_every=stride))
    audio, _ = read_audio_into(path, len(roi.face_found) * SAMPLES_PER_FRAME)
    opening = mouth_opening(roi.mouth_landmarks)
    estimates = {signal: estimate_offset(values, audio) for signal, values in (
        ("opening", opening), ("pixels", mouth_signal(roi.roi, roi.face_found, opening)))}
    # both: the pixels' estimate, acted on only where the opening's agrees within a frame
    pixels, other = estimates["pixels"], estimates["opening"]
    agree = pixels is not None and other is not None and abs(pixels.offset_ms - other.offset_ms) <= 40
    estimates["both"] = pixels if pixels is None or agree else dataclasses.replace(pixels, confidence=0.0)
    return estimates


def compare_signals(args: argparse.Namespace, clips: list[dict], work: Path) -> None:
    rows = {}  # (signal, stride) -> [(|error| ms, confidence)]
    for clip in clips:
        for offset in args.offsets_ms:
            path = write_offset_copy(args.manifest.parent / clip["video"], work / "copy.mp4", offset // 40)
            for stride in args.strides:
                for signal, estimate in signal_estimates(path, stride).items():
                    rows.setdefault((signal, stride), []).append(
                        (np.inf, 0.0) if estimate is None else (abs(estimate.offset_ms - offset), estimate.confidence))
    print(f"{args.clips} clips of {args.manifest} x offsets {args.offsets_ms} ms")
    print(f"{'signal':>8} {'stride':>6} {'median |error| ms':>17} {'within 40 ms':>13} {'beyond 80 ms':>13}   "
          + "   ".join(f"confidence >= {t:g}: acted on / wrong" for t in args.thresholds))
    for (signal, stride), values in sorted(rows.items()):
        error, confidence = np.array(values).T
        acted = "   ".join(f"{100 * np.mean(confidence >= t):>17.0f}% / "
                           f"{100 * np.mean((error > 80) & (confidence >= t)):>4.1f}%"
                           for t in args.thresholds)
        print(f"{signal:>8} {stride:>6} {np.median(error):>17.1f} {100 * np.mean(error <= 40):>12.0f}% "
              f"{100 * np.mean(error > 80):>12.0f}%   {acted}")


def main() -> None:
    args = arguments()
    clips = pick_clips(args.manifest, args.clips)
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        if args.mouth_signals:
            compare_signals(args, clips, work)
            return
        install_controls(args)
        results = recognise_offsets(args, clips, work)
    print_recognition(args, clips, results)


if __name__ == "__main__":
    main()
