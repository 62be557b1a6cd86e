"""Audio-video offset: how well ``avsr transcribe`` estimates it, and what undoing it buys.

    python -m bench.av_sync MANIFEST.jsonl [--clips 40] [--offsets-ms -200 -120 -40 0 40 120 200]
        [--model synth-grid-tiny] [--detect-every K] [--signal pixels|opening] [--work DIR]

For every clip of a raw manifest (``avsr synth``'s ``test.jsonl``; the first ``--clips``, taken
evenly over its speakers) and every offset, a copy of the clip is written with the picture moved
against the sound (positive: the video lags) by :func:`avsr.io.writer.write_offset_copy`, padded at
the ends so that no speech or frame is lost. Each copy is decoded once and recognised with
``--av-sync off`` and ``auto``. Printed per offset: the estimate's median and median absolute error
(ms), its confidence, the share of estimates read from the model's attention (the rest from the
mouth: :meth:`avsr.inference.transcribe.Transcriber.recognise`), and WER with each setting.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from avsr.inference.prepare import prepare_input
from avsr.inference.transcribe import TranscribeOptions, Transcriber
from avsr.io.writer import write_offset_copy
from avsr.models.loader import load_model
from avsr.text import word_error_rate
from bench.common import pick_clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--clips", type=int, default=40)
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
    args = parser.parse_args()
    if args.attention_rounding != "floor":  # the control: another rule for the attention's estimates
        from avsr.inference.sync import SyncEstimate

        mouth_rule, rule = SyncEstimate.offset_frames.fget, {"nearest": round, "zero": int}[args.attention_rounding]
        SyncEstimate.offset_frames = property(lambda e: rule(e.offset_ms / 40) if e.source == "attention"
                                              else mouth_rule(e))
    if args.signal == "opening":  # the control: the estimate from the landmarks' opening alone
        import avsr.inference.prepare as prepare_module
        prepare_module.mouth_signal = lambda crops, found, opening: opening
    model = load_model(args.model)
    runs = {setting: Transcriber(model.network, model.tokenizer, model.id, TranscribeOptions(av_sync=setting))
            for setting in ("off", "auto")}
    clips = pick_clips(args.manifest, args.clips)
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        results = defaultdict(list)  # offset -> (estimate ms or None, confidence, {setting: (reference, hypothesis)})
        for clip in clips:
            source = args.manifest.parent / clip["video"]
            for offset in args.offsets_ms:
                path = write_offset_copy(source, work / f"{clip['id']}_{offset:+d}.mp4", offset // 40)
                prepared = prepare_input(path, **({} if args.detect_every is None else
                                                  {"detect_every": args.detect_every}))
                outputs = {setting: run.recognise(prepared) for setting, run in runs.items()}
                estimate = outputs["auto"].av_offset_ms
                results[offset].append((estimate, outputs["auto"].av_sync_confidence,
                                        {s: (clip["text"], t.text) for s, t in outputs.items()},
                                        outputs["auto"].av_sync_source))
                path.unlink()
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


if __name__ == "__main__":
    main()
