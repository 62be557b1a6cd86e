"""Conversations: several synthetic speakers in one frame, taking turns (``avsr synth --faces-per-clip N``).

The utterances of a corpus that ``avsr synth`` made (each clip's sound, and its side file's words and
per-frame mouth parameters) are laid on one timeline, a speaker per turn, with pauses between the turns
and now and then an overlap (:class:`~avsr.synth.options.ConversationOptions`). Every face is rendered
over the whole clip from its photo (:mod:`avsr.synth.face_rig`): its mouth as the side file says while it
speaks, closed and drifting a little while it listens (:func:`idle_mouth`), blinking, its head moving. The
faces are set side by side (:func:`side_by_side`), each at its own size. Who speaks in each frame and whose
each word is go in the clip's side file.

Layout of ``OUT_DIR`` (paths in the manifests are relative to it)::

    speakers.json                  the source corpus's speakers
    <split>.jsonl                  one record per clip: id, video, text (the turns' texts in turn order),
                                   speaker ("s25+s26"), faces (their speakers, left to right), duration_s, split
    <split>_alone.jsonl            the utterances spoken in those clips, each alone with its own face (the
                                   source's records, ``conversation`` added): the same speech with one face
    <split>/<id>.mp4               25 fps H.264 video + 16 kHz AAC audio
    <split>/<id>.json              the truth (see :func:`render_conversation`)

The same source, options and seed give the same files; clips already written (mp4 + json) are kept, so an
interrupted run resumes.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

from avsr.data.manifest import ManifestError, read_jsonl, write_jsonl
from avsr.errors import OptionError
from avsr.files import write_text_atomic
from avsr.io.media import load_media, probe_video
from avsr.io.writer import write_video
from avsr.preprocessing import SAMPLE_RATE, SAMPLES_PER_FRAME, VIDEO_FPS
from avsr.synth.face_look import FaceLook
from avsr.synth.face_rig import FaceRig, HeadMotion, MouthAnimator, blink_track, render_clip
from avsr.synth.options import SPLITS, ConversationOptions

IDLE_SPREAD = 0.12  # a listener's lip corners drift by about this much spread (std), the mouth closed
IDLE_SMOOTH_S = 0.35  # ... slowly: noise smoothed over this long (Gaussian sigma)
SPEECH_MARGIN_FRAMES = 2  # a turn's mouth track is kept this far around its speech ...
CROSSFADE_FRAMES = 3  # ... and fades into the idle mouth over this many frames beyond
CLIP_CRF = 23  # H.264 quality of the composed clips


def _layout(shapes: list[tuple[int, int]]) -> tuple[int, int, list[list[int]]]:
    """Height and width of :func:`side_by_side`'s frame for clips of ``(height, width)`` and each clip's box in it."""
    height = max(h for h, _ in shapes)
    boxes, x = [], 0
    for h, w in shapes:
        top = (height - h) // 2
        boxes.append([x, top, x + w, top + h])
        x += w
    even_h, even_w = height // 2 * 2, x // 2 * 2  # 4:2:0 video needs even sides
    return even_h, even_w, [[x0, y0, min(x1, even_w), min(y1, even_h)] for x0, y0, x1, y1 in boxes]


def side_by_side(clips: list[np.ndarray]) -> np.ndarray:
    """Clips of the same length ``(T, H_i, W_i, 3)`` beside each other, left to right, each centred on black in
    the tallest one's height; both sides cut to even lengths (4:2:0 video): ``(T, H, W, 3)``."""
    height, width, _ = _layout([clip.shape[1:3] for clip in clips])
    tall = max(clip.shape[1] for clip in clips)
    joined = np.concatenate([np.pad(clip, ((0, 0), ((tall - clip.shape[1]) // 2,
                                                    tall - clip.shape[1] - (tall - clip.shape[1]) // 2), (0, 0), (0, 0)))
                             for clip in clips], axis=2)
    return joined[:, :height, :width]


def tile_boxes(clips: list[np.ndarray]) -> list[list[int]]:
    """Each clip's box ``[x0, y0, x1, y1]`` in :func:`side_by_side`'s frame of them, in pixels."""
    return _layout([clip.shape[1:3] for clip in clips])[2]


def held_frames(path: str | os.PathLike, frames: int, scale: float = 1.0) -> np.ndarray:
    """The first frame of the video ``path`` held ``frames`` frames, ``scale`` times its size: ``(T, H, W, 3)``
    (a still face, as a photo or a frozen picture shows it)."""
    first = load_media(path, audio=False).video[0]
    if scale != 1.0:
        first = cv2.resize(first, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    return np.repeat(first[None], frames, axis=0)


def idle_mouth(frame_count: int, rng: np.random.Generator, fps: float = VIDEO_FPS) -> np.ndarray:
    """A listener's mouth parameters ``(T, 2)`` (open, spread): closed (open 0), the lip corners drifting
    slowly by about :data:`IDLE_SPREAD`, so that its mouth and landmarks move a little without speaking."""
    sigma = IDLE_SMOOTH_S * fps
    pad = int(4 * sigma)
    drift = gaussian_filter1d(rng.standard_normal(frame_count + 2 * pad), sigma)[pad: pad + frame_count]
    drift = drift / max(float(drift.std()), 1e-6) * IDLE_SPREAD if frame_count > 1 else drift * 0
    return np.stack([np.zeros(frame_count), np.clip(drift, -3 * IDLE_SPREAD, 3 * IDLE_SPREAD)], axis=1)


@dataclass(frozen=True)
class Turn:
    """One utterance of a conversation: said by face ``face`` (left to right), its clip starting at frame ``start``."""

    face: int
    utterance: dict  # the source manifest's record
    start: int
    frames: int  # the utterance clip's length
    speech_s: tuple[float, float]  # its first word's start and last word's end, in the utterance's own time
    words: tuple[dict, ...]  # the synthesiser's words (text, start_s, end_s), in the utterance's own time


@dataclass(frozen=True)
class ConversationJob:
    id: str
    split: str
    video: str  # relative to OUT_DIR
    speakers: tuple[str, ...]  # the faces' speakers, left to right
    turns: tuple[Turn, ...]
    frames: int
    scales: tuple[float, ...]  # each face's size against the utterances' frames
    seed: int


def _speech_span(side: dict) -> tuple[float, float]:
    words = side["words"]
    return (words[0]["start_s"], words[-1]["end_s"]) if words else (0.0, 0.0)


def plan_conversations(records: list[dict], sides: dict[str, dict], split: str, options: ConversationOptions,
                       first_index: int = 0) -> list[ConversationJob]:
    """The conversations of one split's utterances (``records``, each used once; ``sides``: their side files by
    id): each draws ``faces_per_clip`` speakers that still have utterances, and its turns alternate between
    them (the next speaker another than the last), until fewer speakers than that have utterances left."""
    rng = np.random.default_rng([options.seed, 5, SPLITS.index(split)])
    pools: dict[str, list[dict]] = {}
    for record in records:
        pools.setdefault(record["speaker"], []).append(record)
    for speaker in sorted(pools):
        pools[speaker] = [pools[speaker][i] for i in rng.permutation(len(pools[speaker]))]
    count, jobs = options.faces_per_clip, []
    while len(ready := [s for s in sorted(pools) if pools[s]]) >= count:
        speakers = tuple(ready[i] for i in rng.choice(len(ready), count, replace=False))
        turn_count = int(rng.integers(options.turns[0], options.turns[1] + 1))
        face = int(rng.integers(count))
        turns: list[Turn] = []
        speech_end = 0.0
        for index in range(turn_count):
            if index:
                face = (face + 1 + int(rng.integers(count - 1))) % count
            gap = (-float(rng.uniform(*options.overlap_s)) if rng.random() < options.overlap_share
                   else float(rng.uniform(*options.pause_s)))
            if not pools[speakers[face]]:
                break
            record = pools[speakers[face]].pop()
            side = sides[record["id"]]
            span = _speech_span(side)
            if not turns:
                speech_start = options.edge_s
            else:
                before = turns[-1].speech_s
                speech_start = speech_end + max(gap, -0.5 * (before[1] - before[0]))
            start = max(round((speech_start - span[0]) * VIDEO_FPS), 0)
            frames = len(side["mouth_open"])
            turns.append(Turn(face, record, start, frames, span, tuple(side["words"])))
            speech_end = start / VIDEO_FPS + span[1]
        total = max(max(t.start + t.frames for t in turns), math.ceil((speech_end + options.edge_s) * VIDEO_FPS))
        conversation_id = f"conv{first_index + len(jobs):05d}"
        scales = tuple(round(float(rng.uniform(*options.scale)), 3) for _ in speakers)
        jobs.append(ConversationJob(conversation_id, split, f"{split}/{conversation_id}.mp4", speakers, tuple(turns),
                                    total, scales, int(rng.integers(2**31))))
    return jobs


def conversation_truth(job: ConversationJob) -> dict:
    """Who speaks when: ``speaking`` ``(F, T)`` (a frame whose centre lies between a turn's first word's start and
    its last word's end), ``active_face`` ``(T,)`` (the face speaking; where two overlap, the one whose turn began
    first, holding the floor; -1 where nobody speaks), each word with its face, in conversation time."""
    times = (np.arange(job.frames) + 0.5) / VIDEO_FPS
    speaking = np.zeros((len(job.speakers), job.frames), bool)
    active = np.full(job.frames, -1)
    began = np.full(job.frames, np.inf)
    words = []
    for turn in job.turns:
        offset = turn.start / VIDEO_FPS
        inside = (times >= offset + turn.speech_s[0]) & (times <= offset + turn.speech_s[1])
        speaking[turn.face] |= inside
        first = inside & (offset < began)
        active[first], began[first] = turn.face, offset
        words += [{"text": w["text"], "start_s": round(w["start_s"] + offset, 4), "end_s": round(w["end_s"] + offset, 4),
                   "face": turn.face} for w in turn.words]
    return {"speaking": speaking, "active_face": active, "words": sorted(words, key=lambda w: w["start_s"])}


def _render_faces(job: ConversationJob, rigs: dict[str, FaceRig], animators: dict[str, MouthAnimator],
                  mouths: np.ndarray, rng: np.random.Generator) -> tuple[list[np.ndarray], np.ndarray]:
    """Each face's frames over the clip (at its drawn size) and the blinks ``(F, T)``."""
    faces, blinks = [], []
    for face, speaker in enumerate(job.speakers):
        if speaker not in animators:
            animators[speaker] = MouthAnimator(rigs[speaker])
        motion, blink, scale = HeadMotion.random(rng), blink_track(job.frames, rng), job.scales[face]
        frames = render_clip(animators[speaker], mouths[face], motion, blink)
        if abs(scale - 1.0) > 1e-3:
            size = max(round(frames.shape[1] * scale), 32)
            frames = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA if scale < 1
                                          else cv2.INTER_LINEAR) for f in frames])
        faces.append(frames)
        blinks.append(blink)
    return faces, np.stack(blinks)


def render_conversation(job: ConversationJob, rigs: dict[str, FaceRig], animators: dict[str, MouthAnimator],
                        source_dir: Path, out_dir: Path, floors: dict[str, tuple[float, float]]) -> dict:
    """Write ``<id>.mp4`` and its truth ``<id>.json`` (skipped when both exist); return its manifest record.

    The side file holds ``faces`` ([{id, speaker, tile: [x0, y0, x1, y1] its picture's box in the frame}]),
    ``turns`` ([{face, speaker, utterance, text, start_s, end_s}]: each turn's speech), ``words`` ([{text,
    start_s, end_s, face}]), ``active_face`` (per frame: the id of the face speaking, -1 where nobody does;
    in an overlap the one who began first), ``speaking`` (per face, per frame: 1 where it speaks),
    ``mouth_open`` / ``mouth_spread`` (per face, per frame: what was rendered) and ``blinks`` (per face, per
    frame: the eyelids' closure)."""
    from avsr.synth.utterance import recording_floor

    video_path = out_dir / job.video
    side_path = video_path.with_suffix(".json")
    if video_path.exists() and side_path.exists():
        return _record(job, json.loads(side_path.read_text())["duration_s"])
    rng = np.random.default_rng(job.seed)
    count = len(job.speakers)
    mouths = np.stack([idle_mouth(job.frames, rng) for _ in range(count)])  # (F, T, 2)
    audio = np.zeros(job.frames * SAMPLES_PER_FRAME, np.float32)
    for turn in job.turns:
        source = source_dir / turn.utterance["video"]
        side = json.loads(source.with_suffix(".json").read_text())
        sound = load_media(source, video=False).audio[: turn.frames * SAMPLES_PER_FRAME]
        at = turn.start * SAMPLES_PER_FRAME
        audio[at: at + len(sound)] += sound[: len(audio) - at]
        track = np.stack([side["mouth_open"], side["mouth_spread"]], axis=1)[: job.frames - turn.start]
        # The utterance's mouth from a little before its first word to a little after its last, faded into the
        # idle mouth over CROSSFADE_FRAMES on either side (the utterance's own silence holds the mouth ajar).
        times = (np.arange(len(track)) + 0.5) / VIDEO_FPS
        lead = (turn.speech_s[0] - times) * VIDEO_FPS - SPEECH_MARGIN_FRAMES  # frames before the margin
        trail = (times - turn.speech_s[1]) * VIDEO_FPS - SPEECH_MARGIN_FRAMES
        weight = np.clip(1 - np.maximum(lead, trail) / (CROSSFADE_FRAMES + 1), 0.0, 1.0)
        span = mouths[turn.face, turn.start: turn.start + len(track)]
        span[:] = weight[:, None] * track + (1 - weight[:, None]) * span
    truth = conversation_truth(job)
    faces, blinks = _render_faces(job, rigs, animators, mouths, rng)
    frames = side_by_side(faces)
    floor_db, exponent = max((floors[s] for s in job.speakers), key=lambda f: f[0])
    audio = recording_floor(audio, floor_db, exponent, job.seed)
    peak = float(np.abs(audio).max()) if len(audio) else 0.0
    if peak > 0.98:  # two voices at once may add up past full scale
        audio = audio * (0.98 / peak)
    video_path.parent.mkdir(parents=True, exist_ok=True)
    write_video(video_path, frames, VIDEO_FPS, audio, SAMPLE_RATE, quality_crf=CLIP_CRF)
    duration_s = job.frames / VIDEO_FPS
    write_text_atomic(side_path, json.dumps({
        "id": job.id, "text": _text(job), "duration_s": duration_s, "fps": VIDEO_FPS,
        "faces": [{"id": face, "speaker": speaker, "tile": box}
                  for face, (speaker, box) in enumerate(zip(job.speakers, tile_boxes(faces)))],
        "turns": [{"face": t.face, "speaker": job.speakers[t.face], "utterance": t.utterance["id"],
                   "text": t.utterance["text"], "start_s": round(t.start / VIDEO_FPS + t.speech_s[0], 4),
                   "end_s": round(t.start / VIDEO_FPS + t.speech_s[1], 4)} for t in job.turns],
        "words": truth["words"],
        "active_face": truth["active_face"].tolist(),
        "speaking": truth["speaking"].astype(int).tolist(),
        "mouth_open": np.round(mouths[..., 0], 4).tolist(),
        "mouth_spread": np.round(mouths[..., 1], 4).tolist(),
        "blinks": np.round(blinks, 3).tolist(),
    }))
    return _record(job, duration_s)


def _text(job: ConversationJob) -> str:
    return " ".join(turn.utterance["text"] for turn in job.turns)


def _record(job: ConversationJob, duration_s: float) -> dict:
    return {"id": job.id, "video": job.video, "text": _text(job), "speaker": "+".join(sorted(set(job.speakers))),
            "faces": list(job.speakers), "duration_s": round(duration_s, 3), "split": job.split}


def read_speakers(source_dir: Path) -> list[dict]:
    """The source corpus's speakers.json, or an OptionError naming the folder."""
    path = source_dir / "speakers.json"
    try:
        speakers = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(speakers, list) or not all({"id", "face"} <= set(s) for s in speakers):
            raise ValueError
    except (OSError, ValueError):
        raise OptionError(f"--from {source_dir}: holds no speakers.json that avsr synth wrote; give the folder of a "
                          "corpus avsr synth made") from None
    return speakers


def speaker_rigs(speakers: list[dict], ids: set[str], faces_dir: str | None, frame_size: int) -> dict[str, FaceRig]:
    """The rig of each speaker of ``ids``, rebuilt from its photo and look as ``avsr synth`` built it."""
    from avsr.synth.corpus import load_faces
    from avsr.synth.face_rig import build_rig

    faces = {face.source: face for face in load_faces(faces_dir)}
    rigs = {}
    for speaker in speakers:
        if speaker["id"] not in ids:
            continue
        if speaker["face"] not in faces:
            raise OptionError(f"speaker {speaker['id']}'s face {speaker['face']} is not among the photos; pass the "
                              "--faces DIR the corpus was made with")
        look = FaceLook(**{k: tuple(v) if isinstance(v, list) else v for k, v in (speaker.get("look") or {}).items()})
        face = faces[speaker["face"]]
        rigs[speaker["id"]] = build_rig(face.photo, face.points, frame_size, face.source, look)
    return rigs


_WORKER: dict = {}


def _init_worker(rigs: dict, source_dir: str, out_dir: str, floors: dict) -> None:
    warnings.simplefilter("ignore")
    _WORKER.update(rigs=rigs, animators={}, source_dir=Path(source_dir), out_dir=Path(out_dir), floors=floors)


def _run_job(job: ConversationJob) -> dict:
    w = _WORKER
    return render_conversation(job, w["rigs"], w["animators"], w["source_dir"], w["out_dir"], w["floors"])


def foreign_conversation_file(out_dir: Path) -> Path | None:
    """The first of the conversation corpus's own manifests and speakers.json in ``out_dir`` that avsr synth did
    not write, or None (as :func:`~avsr.synth.corpus.foreign_corpus_file`)."""
    from avsr.synth.corpus import foreign_corpus_file

    for split in SPLITS:
        path = out_dir / f"{split}_alone.jsonl"
        if path.exists() or path.is_symlink():
            try:
                rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x]
            except (OSError, ValueError):
                return path
            if not all(isinstance(r, dict) and {"id", "video", "text", "conversation"} <= set(r) for r in rows):
                return path
    return foreign_corpus_file(out_dir)


def compose_conversations(source_dir: str | Path, out_dir: str | Path, options: ConversationOptions,
                          faces_dir: str | None = None, progress: bool = True,
                          overwrite: bool = False) -> dict[str, list[dict]]:
    """Compose the utterances of the corpus in ``source_dir`` (``avsr synth``'s) into conversations in
    ``out_dir``; returns the manifest records per split (of ``options.splits``).

    Raises:
        OptionError: a source that is not avsr synth's, or no split with ``faces_per_clip`` speakers.
        OutputError: a manifest or speakers.json in ``out_dir`` that avsr synth did not write (unless ``overwrite``).
    """
    from tqdm import tqdm

    from avsr.io.inputs import OutputError, ensure_output_dir
    from avsr.synth.corpus import run_jobs

    source_dir, out_dir = Path(source_dir), Path(out_dir)
    if source_dir.resolve() == out_dir.resolve():
        raise OptionError(f"--from {source_dir}: is OUT_DIR itself; compose into another folder")
    if not overwrite and (foreign := foreign_conversation_file(out_dir)):
        raise OutputError(f"{foreign}: exists and was not written by avsr synth; pass --overwrite to replace it, or "
                          "choose another OUT_DIR")
    speakers = read_speakers(source_dir)
    jobs, sizes = [], set()
    for split in options.splits:
        manifest = source_dir / f"{split}.jsonl"
        records = read_jsonl(manifest, ("id", "video", "text", "speaker")) if manifest.is_file() else []
        speakers_here = {r["speaker"] for r in records}
        if len(speakers_here) < options.faces_per_clip:
            if records:
                warnings.warn(f"{manifest}: {len(speakers_here)} speaker(s), fewer than --faces-per-clip "
                              f"{options.faces_per_clip}; no conversation made of the {split} split", stacklevel=2)
            continue
        sides = {}
        for record in records:
            side_path = (source_dir / record["video"]).with_suffix(".json")
            try:
                sides[record["id"]] = json.loads(side_path.read_text())
                sides[record["id"]]["mouth_open"]
            except (OSError, ValueError, KeyError):
                raise ManifestError(f"{side_path}: missing or without mouth parameters; --from takes a corpus avsr "
                                    "synth made, with its side files") from None
        if records:
            sizes.add(probe_video(source_dir / records[0]["video"])[1])
        jobs += plan_conversations(records, sides, split, options, first_index=len(jobs))
    if not jobs:
        raise OptionError(f"--from {source_dir}: no split of {', '.join(options.splits)} has {options.faces_per_clip} "
                          "speakers with utterances; lower --faces-per-clip or make a corpus with more speakers")
    ensure_output_dir(out_dir, "OUT_DIR")
    frame_size = sizes.pop()
    used = {s for job in jobs for s in job.speakers}
    rigs = speaker_rigs(speakers, used, faces_dir, frame_size)
    floors = {s["id"]: (s.get("floor_db") or 200.0, s.get("floor_exponent", 1.0)) for s in speakers if s["id"] in used}
    with tqdm(total=len(jobs), unit="clip", disable=not progress, dynamic_ncols=True) as bar:
        records = run_jobs(jobs, _run_job, _init_worker, (rigs, str(source_dir), str(out_dir), floors),
                           options.workers, bar, chunksize=2)
    by_split = {split: [r for r in records if r["split"] == split] for split in options.splits}
    for split, rows in by_split.items():
        write_jsonl(out_dir / f"{split}.jsonl", rows)
        alone = [turn.utterance | {"video": os.path.relpath(source_dir / turn.utterance["video"], out_dir),
                                   "conversation": job.id}
                 for job in jobs if job.split == split for turn in job.turns]
        write_jsonl(out_dir / f"{split}_alone.jsonl", alone)
    write_text_atomic(out_dir / "speakers.json", json.dumps(speakers, indent=1))
    return by_split
