"""``avsr evaluate`` on clips with several faces and the truth of who speaks (``avsr synth --faces-per-clip``):
each clip is read as ``avsr transcribe`` reads a file (every face tracked, each frame read from the face
speaking), and scored for WER and for the active speaker.

Active speaker, per 25 Hz frame (the truth: :func:`read_speaker_truth`):

- **frame accuracy**: the face read in a frame (:attr:`~avsr.inference.prepare.PreparedInput.face_ids`, -1
  where nobody is taken to speak) is right where it is a face speaking then (in an overlap either face), or
  -1 where nobody speaks; every frame of every clip counts once. Also given over the speech frames alone
  (where someone speaks).
- **mAP**, as AVA-ActiveSpeaker reports it: one average precision of the class "speaking" over every
  (face in view, frame) pair of the test set pooled, ranked by that face's speaker score
  (:func:`~avsr.inference.speaker.speaker_scores`); a face the tracker missed in a frame scores 0 there.
  Average precision as the AVA evaluation script computes it, the VOC devkit's definition: precision made
  non-increasing from the right, summed over the steps in recall (:func:`average_precision`). AVA calls
  this single class's AP "mAP"; so do we.

A tracked face is taken for the truth face whose picture (``tile`` in the side file) holds its box's median
centre; a tracked face in no tile (a false detection) is never a right answer.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avsr.data.manifest import ManifestError, read_jsonl, resolve
from avsr.data.noise import measured_snr_db, mix_at_snr
from avsr.errors import OptionError
from avsr.evaluation.options import EvaluateOptions, Perturbation
from avsr.text import normalise

TRUTH_KEYS = ("active_face", "speaking", "faces")


@dataclass
class SpeakerTruth:
    """Who speaks in a clip: ``active`` ``(T,)`` the face speaking (-1 nobody; in an overlap the one who began
    first), ``speaking`` ``(F, T) bool`` every face that speaks, ``tiles`` ``(F, 4)`` each face's picture's box
    ``[x0, y0, x1, y1]`` in the frame (pixels)."""

    active: np.ndarray
    speaking: np.ndarray
    tiles: np.ndarray


def side_file(manifest: str | Path, record: dict) -> Path:
    return resolve(manifest, record["video"]).with_suffix(".json")


def _truth_of(path: Path) -> dict | None:
    try:
        side = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return side if isinstance(side, dict) and all(key in side for key in TRUTH_KEYS) else None


def has_speaker_truth(manifest: str | Path) -> bool:
    """Whether ``manifest`` is a raw manifest whose clips carry the truth of who speaks (their first clip's side
    file ``<video>.json`` holds ``active_face``, ``speaking`` and ``faces``, as ``avsr synth --faces-per-clip``
    writes)."""
    records = read_jsonl(manifest)
    return bool(records) and "video" in records[0] and _truth_of(side_file(manifest, records[0])) is not None


def read_speaker_truth(path: str | Path) -> SpeakerTruth:
    """The truth in a clip's side file; a ManifestError where it has none."""
    side = _truth_of(Path(path))
    if side is None:
        raise ManifestError(f"{path}: missing, or without {', '.join(TRUTH_KEYS)}; every clip of a manifest with "
                            "speaker truth needs its side file (avsr synth --faces-per-clip writes them)")
    return SpeakerTruth(np.asarray(side["active_face"], int), np.asarray(side["speaking"], bool),
                        np.asarray([face["tile"] for face in side["faces"]], np.float64))


def match_faces(boxes: np.ndarray, tiles: np.ndarray) -> np.ndarray:
    """The truth face of each tracked face ``(F',)``: the one whose tile ``(F, 4)`` holds the median centre of its
    boxes ``(F', T, 4)`` (NaN where not found); -1 for a face in no tile, or never found."""
    matched = np.full(len(boxes), -1)
    for face, track in enumerate(boxes):
        found = np.isfinite(track).all(axis=1)
        if not found.any():
            continue
        x, y = np.median((track[found, :2] + track[found, 2:]) / 2, axis=0)
        inside = np.flatnonzero((tiles[:, 0] <= x) & (x < tiles[:, 2]) & (tiles[:, 1] <= y) & (y < tiles[:, 3]))
        matched[face] = inside[0] if len(inside) else -1
    return matched


def frames_right(read: np.ndarray, matched: np.ndarray, truth: SpeakerTruth) -> np.ndarray:
    """Per frame ``(T,) bool``: whether the face read (``read`` ``(T,)``: tracked face id, -1 none) is a face
    speaking then, or -1 where nobody speaks."""
    frames = min(len(read), len(truth.active))
    read = read[:frames]
    face = np.where(read >= 0, matched[np.maximum(read, 0)], -1)
    speaking = truth.speaking[:, :frames]
    hit = (face >= 0) & speaking[np.maximum(face, 0), np.arange(frames)]
    return np.where(truth.active[:frames] >= 0, hit, read < 0)


def face_frame_scores(scores: np.ndarray, found: np.ndarray, matched: np.ndarray,
                      truth: SpeakerTruth) -> tuple[np.ndarray, np.ndarray]:
    """Each (truth face, frame)'s speaker score and label ``(F * T,)``: the score of the tracked face matched to it
    (the highest, where several are), 0 where none is found there; the label: that face speaks."""
    frames = min(scores.shape[1], truth.speaking.shape[1])
    best = np.zeros((len(truth.tiles), frames))
    for face, target in enumerate(matched):
        if target >= 0:
            best[target] = np.maximum(best[target], np.where(found[face, :frames], scores[face, :frames], 0.0))
    return best.ravel(), truth.speaking[:, :frames].ravel()


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Average precision of ``labels`` ``(N,) bool`` ranked by ``scores`` ``(N,)`` (highest first; ties keep
    their order), as the VOC devkit defines it and AVA-ActiveSpeaker's evaluation computes it: the precision at
    each rank made the highest at that rank or beyond, summed over the steps in recall. NaN without a positive."""
    labels = np.asarray(labels, bool)
    if not labels.any():
        return float("nan")
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    hits = np.cumsum(labels[order])
    precision = hits / np.arange(1, len(order) + 1)
    recall = hits / hits[-1]
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float(np.sum(steps * precision))


@dataclass
class ClipReading:
    """What one clip under one sound gave: whether each frame's face was right, and the (face, frame) scores."""

    right: np.ndarray  # (T,) bool
    speech: np.ndarray  # (T,) bool: someone speaks
    scores: np.ndarray  # (F * T,)
    labels: np.ndarray  # (F * T,) bool


def check_options(options: EvaluateOptions) -> None:
    """Refuse the options a manifest with speaker truth is not read under (its clips are read as files)."""
    if tuple(options.av_offsets_ms) != (0,):
        raise OptionError("--av-offset-ms: not applied to clips with several faces and speaker truth (they are "
                          "read as avsr transcribe reads a file, its own offset estimate on); leave it at 0")
    if options.av_sync != "off":
        raise OptionError("--av-sync attention: not applied to clips with speaker truth (avsr transcribe's own "
                          "estimate is on); leave it off")
    if options.perturbation != Perturbation():
        raise OptionError("--face-gap-s, --lead-in-s and --trail-s: not applied to clips with speaker truth; "
                          "leave them out")


def evaluate_speakers(parts: dict, manifest: str | Path, options: EvaluateOptions,
                      progress: bool = False) -> list:
    """The rows of ``avsr evaluate`` (:class:`~avsr.evaluation.sweep.SweepRow`) on a manifest with speaker
    truth: per model (``parts``: name -> (network, tokenizer or None)) x mode x noise x SNR, WER as
    ``avsr transcribe`` reads the clips, with ``speaker_accuracy``, ``speaker_speech_accuracy`` and
    ``speaker_map`` on the rows that read a face (av, video). Each clip's faces are cut once
    (``options.detect_every``); each sound decides who speaks anew.

    Raises:
        OptionError: options not applied to such clips (offsets, perturbations, attention sync).
        ManifestError: a clip without its truth.
    """
    from tqdm import tqdm

    from avsr.evaluation.sweep import NoiseSource, _scored
    from avsr.inference.options import TranscribeOptions
    from avsr.inference.prepare import prepared_from_faces
    from avsr.inference.speaker import face_signals, speaker_scores
    from avsr.inference.transcribe import Transcriber
    from avsr.io.face_rois import extract_face_rois
    from avsr.io.lip_roi import LipRoiOptions
    from avsr.io.media import load_media
    from avsr.data.tokenizer import CharTokenizer
    from avsr.preprocessing import SAMPLES_PER_FRAME

    check_options(options)
    records = read_jsonl(manifest, ("id", "video", "text"))
    truths = [read_speaker_truth(side_file(manifest, record)) for record in records]
    references = [normalise(record["text"]) for record in records]
    style = next(iter(parts.values()))[0].preprocessing.roi_style
    runs = {name: [mode for mode in options.modes if mode in network.modes] for name, (network, _) in parts.items()}
    readers = {(name, mode): Transcriber(network, tokenizer or CharTokenizer(), name, TranscribeOptions(
        mode=mode, decoder=options.decoder, beam_size=options.beam_size, lexicon=options.lexicon, vad=options.vad))
        for name, (network, tokenizer) in parts.items() for mode in runs[name]}
    clips = []
    for record in tqdm(records, unit="clip", disable=not progress, desc="faces"):
        path = resolve(manifest, record["video"])
        rois = extract_face_rois(path, LipRoiOptions(detect_every=options.detect_every, roi_style=style))
        audio = load_media(path, video=False).audio[: len(rois) * SAMPLES_PER_FRAME]
        audio = np.pad(audio, (0, len(rois) * SAMPLES_PER_FRAME - len(audio)))
        clips.append((path, rois, audio, face_signals(rois)))
    speakers = [record.get("speaker", record["id"]) for record in records]
    sources = {noise: NoiseSource(noise, [clip[2] for clip in clips], speakers) for noise in options.noises}
    conditions = [("clean", None)] if None in options.snrs else []
    conditions += [(noise, snr) for noise in options.noises for snr in options.snrs if snr is not None]
    rows = []
    with tqdm(total=len(conditions) * len(clips), unit="clip", disable=not progress, desc="read") as bar:
        for noise, snr in conditions:
            texts, weights = {job: [] for job in readers}, {job: [] for job in readers}
            readings, achieved = [], []
            for index, ((path, rois, audio, signals), truth) in enumerate(zip(clips, truths)):
                if snr is not None:
                    source = sources[noise]
                    rng = np.random.default_rng([options.seed, zlib.crc32(source.name.encode()), index])
                    noisy = mix_at_snr(audio, source(index, len(audio), rng), snr)
                    achieved.append(measured_snr_db(audio, noisy))
                else:
                    noisy = audio
                prepared = prepared_from_faces(path, rois, noisy, signals)
                matched = match_faces(rois.boxes, truth.tiles)
                scores, labels = face_frame_scores(speaker_scores(rois, noisy, signals), rois.face_found, matched,
                                                   truth)
                right = frames_right(prepared.face_ids, matched, truth)
                readings.append(ClipReading(right, truth.active[: len(right)] >= 0, scores, labels))
                for job, reader in readers.items():
                    transcript = reader.recognise(prepared)
                    texts[job].append(normalise(transcript.text))
                    weights[job].append(np.asarray(transcript.audio_weight, np.float64))
                bar.update()
            right = np.concatenate([r.right for r in readings])
            speech = np.concatenate([r.speech for r in readings])
            speaker = dict(speaker_accuracy=float(right.mean()), speaker_speech_accuracy=float(right[speech].mean()),
                           speaker_map=average_precision(np.concatenate([r.scores for r in readings]),
                                                         np.concatenate([r.labels for r in readings])))
            label = "clean" if snr is None else sources[noise].name
            for (name, mode), hypotheses in texts.items():
                read = np.concatenate(weights[name, mode])
                read = read[np.isfinite(read)]  # the frames the model read (NaN outside the speech regions)
                weight = float(read.mean()) if mode == "av" and len(read) else None
                rows.append(_scored(references, hypotheses, options.seed, model=name, mode=mode, noise=label,
                                    snr_db=snr, achieved_snr_db=float(np.mean(achieved)) if achieved else None,
                                    mean_audio_weight=weight, segmentation="vad" if options.vad else "whole",
                                    segmented=len(references) if options.vad else 0,
                                    **(speaker if mode != "audio" else {})))
    return rows
