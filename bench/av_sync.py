"""Audio-video offset: how well ``avsr transcribe`` estimates it, and what undoing it buys; or, with
``--mouth-signals``, which reading of the mouth gives the best estimate, at which landmark stride; or,
with ``--faces``, how well it reads the face speaking among several and says whose each word is.

    python -m bench.av_sync MANIFEST.jsonl [--clips 40] [--offsets-ms -200 -120 -40 0 40 120 200]
        [--model synth-grid-tiny] [--detect-every K] [--signal pixels|opening] [--work DIR]
    python -m bench.av_sync MANIFEST.jsonl --mouth-signals [--clips 20] [--strides 1 3]
        [--thresholds 0.1 0.15 0.2]
    python -m bench.av_sync MANIFEST.jsonl --faces [--clips 8] [--snr-db clean 0] [--cost REPEATS]
    python -m bench.av_sync CONVERSATIONS.jsonl --conversations [--clips N]

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

``--faces`` (issue 35): clips of two speakers composed side by side: each clip alone (``single``);
each beside the other speaker's first frame held, 1.4x larger (``beside``); and the two taking turns
(``turns``: the first speaks on the left while the other's face holds still, then the other speaks
while the first holds, audio one after the other). At each ``--snr-db`` (white noise; ``clean``:
none), each is recognised in av and video mode, with every face tracked (the default) and with
``--largest-face``. Printed: WER per row, and with every face the share of words whose face (its
box's centre) is the speaker's, and of speech frames (inside the synthesiser's words) read from the
speaker's face.

``--faces --cost REPEATS`` (issue 35, item 6) times the reading instead, end to end in this process
(``prepare_input``: decoding, landmarks on every 6th frame, crops; then ``Transcriber.recognise``, av, clean): every
``single`` clip with ``--largest-face`` (the one-face path as it was before several faces were tracked) and with
every face tracked (the default), the same beside black as wide as the other face's tile (the two-face picture's
size, one face), and every ``beside`` clip (two faces in view) with every face tracked. Each
setting reads all its files once per round (after one untimed read of a file each), the order of the settings
reversed every other round; printed: the
median over rounds of the seconds per clip, and its ratio to the first setting's.

``--conversations`` (issue 35, item 5): the clips of ``avsr synth --faces-per-clip 2`` (all, or the first
``--clips``) read in av, video and audio mode three ways: each turn's utterance alone with its own face (the
corpus's ``<split>_alone.jsonl``); the conversation with every face cut once (``extract_face_rois``, landmarks
on every 6th frame as transcribe) and the speaker decided from the sound (``speaker decided``: what ``avsr
transcribe`` and ``avsr evaluate`` do); and the same crops read from the face the truth says speaks (``true
speaker``), which takes the speaker decision out. Printed per group of clips (with an overlap of turns, without,
all): WER per mode and reading (alone over the same turns), and for the speaker decided the active-speaker
frame accuracy (all frames, speech frames), mAP (:mod:`avsr.evaluation.speakers`) and the share of recognised
words whose face is the speaker of the true word they overlap most; then WER of the first turn of each clip
(after the clip's quiet lead-in) and of the later turns, each recognised word given to the turn it falls in.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from avsr.inference.prepare import prepare_input
from avsr.inference.sync import SYNC_MIN_CONFIDENCE, estimate_offset, mouth_opening, mouth_signal
from avsr.inference.transcribe import TranscribeOptions, Transcriber
from avsr.io.lip_roi import LipRoiOptions, extract_lip_roi
from avsr.io.media import load_media, read_audio_into
from avsr.io.writer import write_offset_copy, write_video
from avsr.models.loader import load_model
from avsr.preprocessing import SAMPLES_PER_FRAME, VIDEO_FPS
from avsr.synth.conversation import held_frames, side_by_side
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
    parser.add_argument("--faces", action="store_true",
                        help="several faces: read the one speaking, and whose each word is (pairs of clips composed)")
    parser.add_argument("--conversations", action="store_true",
                        help="conversation clips (avsr synth --faces-per-clip 2): WER against the turns alone, with the "
                        "speaker decided and the true speaker, and the active-speaker scores")
    parser.add_argument("--cost", type=int, default=0, metavar="REPEATS",
                        help="with --faces: time the reading instead, this many rounds (see the module's docstring)")
    parser.add_argument("--snr-db", nargs="+", default=["clean", "0"],
                        help="with --faces: white noise at these SNRs (dB); clean: none")
    args = parser.parse_args()
    if args.clips is None and not args.conversations:  # conversations: every clip
        args.clips = 20 if args.mouth_signals else 8 if args.faces else 40
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


def composed(args: argparse.Namespace, a: dict, b: dict) -> dict:
    """name -> (frames, audio, text, [(true word, side)]) of clips a and b (see --faces)."""
    path_a, path_b = (args.manifest.parent / clip["video"] for clip in (a, b))
    media = [load_media(path) for path in (path_a, path_b)]
    words = [json.loads(path.with_suffix(".json").read_text())["words"] for path in (path_a, path_b)]
    audio = [m.audio[: len(m.video) * SAMPLES_PER_FRAME] for m in media]
    made = {}
    for x, y in ((0, 1), (1, 0)):
        truth = [(w, "left") for w in words[x]]
        text, frames = (a, b)[x]["text"], media[x].video
        made[f"single {(a, b)[x]['id']}"] = (frames, audio[x], text, truth)
        made[f"beside {(a, b)[x]['id']}"] = (side_by_side([frames, held_frames((path_a, path_b)[y], len(frames), 1.4)]),
                                             audio[x], text, truth)
    ta, tb = len(media[0].video), len(media[1].video)
    left = np.concatenate([media[0].video, np.repeat(media[0].video[-1:], tb, axis=0)])
    later = [{**w, "start_s": w["start_s"] + ta / VIDEO_FPS, "end_s": w["end_s"] + ta / VIDEO_FPS} for w in words[1]]
    made[f"turns {a['id']}"] = (side_by_side([left, np.concatenate([held_frames(path_b, ta), media[1].video])]),
                                np.concatenate(audio), f"{a['text']} {b['text']}",
                                [(w, "left") for w in words[0]] + [(w, "right") for w in later])
    return made


def read_faces(args: argparse.Namespace, clips: list[dict], work: Path) -> None:
    model, rng = load_model(args.model), np.random.default_rng(0)
    pairs = [(a, next(b for b in clips[i + 1:] + clips[:i] if b["speaker"] != a["speaker"]))
             for i, a in enumerate(clips[::2])]
    print(f"{len(pairs)} pairs of {args.manifest}, model {args.model}")
    print(f"{'SNR':>5} {'clips':>7} {'faces':>8} {'WER % av':>9} {'WER % video':>12} {'words on speaker':>17} "
          f"{'speech frames on speaker':>25}")
    for snr in args.snr_db:
        rows = defaultdict(lambda: defaultdict(list))  # (kind, every) -> what -> values
        for a, b in pairs:
            for name, (frames, audio, text, truth) in composed(args, a, b).items():
                if snr != "clean":
                    noise = rng.standard_normal(len(audio)).astype(np.float32)
                    audio = audio + noise * np.sqrt(np.mean(audio ** 2) / np.mean(noise ** 2) / 10 ** (float(snr) / 10))
                path = write_video(work / "faces.mp4", frames, audio=audio)
                split, kind = frames.shape[2] / 2 if not name.startswith("single") else np.inf, name.split()[0]
                for every in (True, False):
                    prepared = prepare_input(path, every_face=every)
                    row = rows[(kind, every)]
                    for mode in ("av", "video"):
                        transcript = Transcriber(model.network, model.tokenizer, model.id, TranscribeOptions(
                            mode=mode, every_face=every)).recognise(prepared)
                        row[mode].append((text, transcript.text))
                        if mode == "av" and every and kind != "single":
                            for word in transcript.words:  # whose is the true word it overlaps most
                                overlap = [min(word.end_s, w["end_s"]) - max(word.start_s, w["start_s"])
                                           for w, _ in truth]
                                side = None if word.face is None else \
                                    "left" if (word.face["box"][0] + word.face["box"][2]) / 2 < split else "right"
                                row["words"].append(side == truth[int(np.argmax(overlap))][1])
                            centres = np.nanmean(prepared.face_boxes[:, :, [0, 2]], axis=(1, 2))
                            for w, side in truth:
                                for frame in range(int(w["start_s"] * VIDEO_FPS), int(w["end_s"] * VIDEO_FPS)):
                                    read = prepared.face_ids[min(frame, prepared.frames - 1)]
                                    row["frames"].append(read >= 0 and (centres[read] < split) == (side == "left"))
                    prepared.close()
        for (kind, every), row in rows.items():
            wer = {mode: 100 * word_error_rate(*zip(*row[mode])) for mode in ("av", "video")}
            share = {what: f"{100 * np.mean(row[what]):.1f} %" if row[what] else "" for what in ("words", "frames")}
            print(f"{snr:>5} {kind:>7} {'every' if every else 'largest':>8} {wer['av']:>9.1f} {wer['video']:>12.1f} "
                  f"{share['words']:>17} {share['frames']:>25}")


def _overlapping(turns: list[dict]) -> bool:
    ordered = sorted(turns, key=lambda t: t["start_s"])
    return any(a["end_s"] > b["start_s"] for a, b in zip(ordered, ordered[1:]))


def _turn_texts(transcript, turns: list[dict]) -> list[str]:
    """The recognised words of each turn (in turn order): each word goes to the turn its middle falls in, the
    turns parted halfway between one's last word and the next one's first."""
    bounds = [(a["end_s"] + b["start_s"]) / 2 for a, b in zip(turns, turns[1:])]
    texts = [[] for _ in turns]
    for segment in transcript.segments:
        for word in segment.words:
            texts[int(np.searchsorted(bounds, (word.start_s + word.end_s) / 2))].append(word.word)
    return [" ".join(words) for words in texts]


def read_conversations(args: argparse.Namespace) -> None:
    from avsr.data.manifest import read_jsonl
    from avsr.evaluation.speakers import (average_precision, face_frame_scores, frames_right, match_faces,
                                          read_speaker_truth)
    from avsr.inference.prepare import prepared_from_faces
    from avsr.inference.speaker import face_signals, speaker_scores
    from avsr.io.face_rois import extract_face_rois
    from avsr.preprocessing import TRANSCRIBE_DETECT_EVERY

    records = read_jsonl(args.manifest)[: args.clips]
    alone = {r["id"]: r for r in read_jsonl(args.manifest.with_name(f"{args.manifest.stem}_alone.jsonl"))}
    model, modes = load_model(args.model), ("av", "video", "audio")
    readers = {mode: Transcriber(model.network, model.tokenizer, model.id, TranscribeOptions(mode=mode))
               for mode in modes}
    rows = defaultdict(lambda: defaultdict(list))  # (group, reading) -> mode or score -> values
    overlapping = 0
    for record in records:
        path = args.manifest.parent / record["video"]
        side = json.loads(path.with_suffix(".json").read_text())
        truth = read_speaker_truth(path.with_suffix(".json"))
        group = "overlap" if _overlapping(side["turns"]) else "no overlap"
        overlapping += group == "overlap"
        rois = extract_face_rois(path, LipRoiOptions(detect_every=TRANSCRIBE_DETECT_EVERY))
        audio, _ = read_audio_into(path, len(rois) * SAMPLES_PER_FRAME)
        signals, matched = face_signals(rois), match_faces(rois.boxes, truth.tiles)
        tracked = {int(target): face for face, target in enumerate(matched) if target >= 0}
        true_ids = np.array([tracked.get(int(a), -1) for a in truth.active[: len(rois)]]
                            + [-1] * max(len(rois) - len(truth.active), 0))
        for reading, active in (("speaker decided", None), ("true speaker", true_ids)):
            prepared = prepared_from_faces(path, rois, audio, signals, active)
            row = rows[group, reading]
            for mode in modes:
                transcript = readers[mode].recognise(prepared)
                row[mode].append((record["text"], transcript.text))
                for index, text in enumerate(_turn_texts(transcript, side["turns"])):
                    row[f"{mode} {'first' if index == 0 else 'later'}"].append((side["turns"][index]["text"], text))
                if mode == "av" and active is None:
                    row["frames"] += frames_right(prepared.face_ids, matched, truth).tolist()
                    row["speech"] += (truth.active[: len(prepared.face_ids)] >= 0).tolist()
                    scores, labels = face_frame_scores(speaker_scores(rois, audio, signals), rois.face_found,
                                                       matched, truth)
                    row["scores"] += scores.tolist()
                    row["labels"] += labels.tolist()
                    for word in transcript.words:  # whose is the true word it overlaps most
                        overlap = [min(word.end_s, w["end_s"]) - max(word.start_s, w["start_s"]) for w in side["words"]]
                        face = -1 if word.face is None else int(matched[word.face["id"]])
                        row["words"].append(face == side["words"][int(np.argmax(overlap))]["face"])
        for index, turn in enumerate(side["turns"]):
            utterance = alone[turn["utterance"]]
            prepared = prepare_input(args.manifest.parent / utterance["video"])
            for mode in modes:
                pair = (utterance["text"], readers[mode].recognise(prepared).text)
                rows[group, "alone"][mode].append(pair)
                rows[group, "alone"][f"{mode} {'first' if index == 0 else 'later'}"].append(pair)
            prepared.close()
    groups, turns = sorted({group for group, _ in rows}) + ["all"], {}
    print(f"{len(records)} conversations of {args.manifest} ({overlapping} with overlapping turns), model {args.model}")
    print(f"{'clips':>11} {'read':>16} {'WER % av':>9} {'video':>7} {'audio':>7} {'speaker frames %':>17} "
          f"{'in speech %':>12} {'mAP %':>7} {'words on speaker %':>19}")
    for group in groups:
        for reading in ("alone", "speaker decided", "true speaker"):
            keys = [(g, reading) for g in groups[:-1]] if group == "all" else [(group, reading)]
            merged = defaultdict(list)
            for key in keys:
                for what, values in rows[key].items():
                    merged[what] += values
            wer = [f"{100 * word_error_rate(*zip(*merged[mode])):.1f}" if merged[mode] else "" for mode in modes]
            right, speech = np.array(merged["frames"], bool), np.array(merged["speech"], bool)
            speaker = ["", "", "", ""]
            if len(right):
                speaker = [f"{100 * right.mean():.1f}", f"{100 * right[speech].mean():.1f}",
                           f"{100 * average_precision(np.array(merged['scores']), np.array(merged['labels'], bool)):.1f}",
                           f"{100 * np.mean(merged['words']):.1f}"]
            print(f"{group:>11} {reading:>16} {wer[0]:>9} {wer[1]:>7} {wer[2]:>7} {speaker[0]:>17} {speaker[1]:>12} "
                  f"{speaker[2]:>7} {speaker[3]:>19}")
            turns[group, reading] = [f"{100 * word_error_rate(*zip(*merged[f'{mode} {which}'])):.1f}"
                                     for which in ("first", "later") for mode in modes]
    print("\nWER % by turn (the first turn follows the clip's quiet lead-in; words go to the turn they fall in):")
    print(f"{'clips':>11} {'read':>16} " + " ".join(f"{which + ' ' + mode:>12}" for which in ("first", "later")
                                                     for mode in modes))
    for (group, reading), cells in turns.items():
        print(f"{group:>11} {reading:>16} " + " ".join(f"{cell:>12}" for cell in cells))


def face_cost(args: argparse.Namespace, clips: list[dict], work: Path) -> None:
    """The seconds per clip of one face read as before, one face read with every face tracked, and two faces
    (see --faces --cost)."""
    import time

    model = load_model(args.model)
    pairs = [(a, next(b for b in clips[i + 1:] + clips[:i] if b["speaker"] != a["speaker"]))
             for i, a in enumerate(clips[::2])]
    files = defaultdict(list)
    for i, (a, b) in enumerate(pairs):
        made = composed(args, a, b)
        for kind, name in (("one face", "single"), ("two faces", "beside")):
            frames, audio, _, _ = made[f"{name} {a['id']}"]
            files[kind].append(write_video(work / f"{name}_{i}.mp4", frames, audio=audio))
        frames, audio, _, _ = made[f"single {a['id']}"]  # the same picture beside a black one of the other's size
        other = np.zeros_like(held_frames(work / f"beside_{i}.mp4", 1))[:, :, frames.shape[2]:]
        files["one face, two-face picture"].append(write_video(
            work / f"wide_{i}.mp4", side_by_side([frames, np.repeat(other, len(frames), axis=0)]), audio=audio))
    settings = [("one face", "--largest-face", False), ("one face", "every face (default)", True),
                ("one face, two-face picture", "every face (default)", True),
                ("two faces", "every face (default)", True)]
    seconds = defaultdict(list)
    for kind, _, every in settings:  # warm-up, not timed: the landmarker and the model's first calls
        prepared = prepare_input(files[kind][0], every_face=every)
        Transcriber(model.network, model.tokenizer, model.id, TranscribeOptions(every_face=every)).recognise(prepared)
        prepared.close()
    for round_ in range(args.cost):
        for kind, label, every in settings if round_ % 2 == 0 else settings[::-1]:
            reader = Transcriber(model.network, model.tokenizer, model.id, TranscribeOptions(every_face=every))
            started = time.perf_counter()
            for path in files[kind]:
                prepared = prepare_input(path, every_face=every)
                reader.recognise(prepared)
                prepared.close()
            seconds[(kind, label)].append((time.perf_counter() - started) / len(files[kind]))
    print(f"{len(pairs)} clips of {args.manifest} each way, model {args.model}, {args.cost} rounds")
    print("| faces in view | reading | s per clip (median of rounds) | against one face, --largest-face |\n"
          "|---|---|---|---|")
    base = statistics.median(seconds[settings[0][:2]])
    for kind, label, _ in settings:
        median = statistics.median(seconds[(kind, label)])
        print(f"| {kind} | {label} | {median:.2f} | {median / base:.2f}x |")


def main() -> None:
    args = arguments()
    if args.conversations:
        read_conversations(args)
        return
    clips = pick_clips(args.manifest, args.clips)
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        if args.faces:
            (face_cost if args.cost else read_faces)(args, clips, work)
            return
        if args.mouth_signals:
            compare_signals(args, clips, work)
            return
        install_controls(args)
        results = recognise_offsets(args, clips, work)
    print_recognition(args, clips, results)


if __name__ == "__main__":
    main()
