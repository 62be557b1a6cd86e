"""``avsr synth``: a synthetic audio-visual speech corpus from real face photos and espeak-ng.

Layout of ``OUT_DIR`` (paths in the manifests are relative to it)::

    speakers.json                      every speaker: face, voice, split
    train.jsonl, val.jsonl, test.jsonl one record per utterance: id, video, text, speaker, duration_s, split
    <split>/<speaker>/<id>.mp4         25 fps video (H.264) + 16 kHz AAC audio
    <split>/<speaker>/<id>.json        word, phone and viseme timings and the per-frame mouth parameters

Everything is drawn from ``seed``: the same options give the same files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
import multiprocessing
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from avsr.data.manifest import write_jsonl
from avsr.files import write_text_atomic
from avsr.io.inputs import ensure_output_dir
from avsr.synth.options import SPLITS, SynthOptions  # noqa: F401 (also imported from here)
from avsr.synth.face_look import FaceLook
from avsr.synth.face_rig import FaceImageError, FaceRig, build_rig, find_faces, read_photo
from avsr.synth.text import grid_sentence, read_sentences
from avsr.synth.tts import VARIANTS, Voice

DEFAULT_FACES_DIR = Path(__file__).resolve().parent.parent / "assets" / "faces"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass(frozen=True)
class Speaker:
    id: str
    face: str  # "<photo file>#<face index>"
    voice: Voice
    split: str
    crf: int  # H.264 quality of this speaker's videos (higher: more compression)
    seed: int
    look: FaceLook = FaceLook()
    floor_db: float | None = 50.0  # recording floor (room tone): this many dB below the active speech; None: none
    floor_exponent: float = 1.0  # its colour: power ~ 1 / f**exponent (0 white, 1 pink, 2 brown)


@dataclass(frozen=True)
class UtteranceJob:
    id: str
    text: str
    speaker: Speaker
    video: str  # relative to the corpus folder
    seed: int


@dataclass(frozen=True)
class FaceSource:
    """One face found in a photo: ``source`` is ``"<file>#<index>"``; points as :func:`find_faces`."""

    source: str
    photo: np.ndarray
    points: np.ndarray


def load_faces(faces_dir: str | Path | None) -> list[FaceSource]:
    """Every face in the photos of ``faces_dir`` (sorted by file name, faces left to right)."""
    folder = Path(faces_dir) if faces_dir else DEFAULT_FACES_DIR
    if not folder.is_dir():
        raise FaceImageError(f"{folder}: no such folder of face photos; pass --faces DIR")
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not photos:
        raise FaceImageError(f"{folder}: holds no .jpg/.png photo; add frontal face photos")
    faces = []
    for path in photos:
        photo = read_photo(path)
        found = find_faces(photo)
        if not found:
            raise FaceImageError(f"{path}: no face found; use a frontal photo where a face is at least 60 pixels wide")
        faces += [FaceSource(f"{path.name}#{i}", photo, points) for i, points in enumerate(found)]
    return faces


def _assign_faces(count: int, splits: list[str], faces: int, rng: np.random.Generator) -> list[int]:
    """A face index per speaker such that test and val speakers' faces never appear in train."""
    order = [int(i) for i in rng.permutation(faces)]
    held = {split: splits.count(split) for split in ("test", "val")}
    if faces < held["test"] + held["val"] + 1:
        warnings.warn(f"{faces} faces cannot keep {held['test']} test and {held['val']} val speakers' faces out of "
                      "training: faces are shared across splits (voices differ); add photos with --faces",
                      stacklevel=3)
        return [order[i % faces] for i in range(count)]
    pools = {"test": order[: held["test"]], "val": order[held["test"]: held["test"] + held["val"]],
             "train": order[held["test"] + held["val"]:]}
    seen = {split: 0 for split in pools}
    assigned = []
    for split in splits:
        assigned.append(pools[split][seen[split] % len(pools[split])])
        seen[split] += 1
    return assigned


def make_speakers(options: SynthOptions, faces: list[FaceSource]) -> list[Speaker]:
    """Draw each speaker's face, look, voice, rate, pitch and compression; split them disjointly.

    Test and val speakers get faces no training speaker has. When speakers outnumber faces, a face
    is reused with another look (mirrored, zoomed, tinted) and another voice. Every training speaker
    also gets the identity variety of ``options.face_variety`` (skin tone and lighting, lips, facial
    hair, mouth width, aspect, teeth), so that a lip reader trained on a handful of photos meets
    more than a handful of mouths. Validation and test speakers show their photos as they are: they
    measure real faces, not the renderer's variations.
    """
    rng = np.random.default_rng([options.seed, 1])
    counts = {"test": options.test_speakers, "val": options.val_speakers}
    splits = ["train"] * (options.speakers - sum(counts.values())) + ["val"] * counts["val"] + ["test"] * counts["test"]
    face_of = _assign_faces(options.speakers, splits, len(faces), rng)
    uses: dict[int, int] = {}
    speakers = []
    for index in range(options.speakers):
        face = face_of[index]
        uses[face] = uses.get(face, 0) + 1
        look = FaceLook() if uses[face] == 1 else FaceLook(
            mirror=uses[face] % 2 == 0, zoom=float(rng.uniform(0.88, 1.12)),
            tint=tuple(float(g) for g in rng.uniform(0.85, 1.15, 3)))
        if splits[index] == "train" and options.face_variety:
            # Its own generator, like the floor's: the variety leaves every other draw unchanged.
            look = look.vary(np.random.default_rng([options.seed, 4, index]), options.face_variety)
        voice = Voice(name=options.voices[rng.integers(len(options.voices))],
                      variant=VARIANTS[rng.integers(len(VARIANTS))], rate_wpm=int(rng.integers(140, 201)),
                      pitch=int(rng.integers(30, 71)))
        # The recording floor has its own generator, so adding it left every other draw unchanged.
        floor = np.random.default_rng([options.seed, 3, index])
        speakers.append(Speaker(f"s{index + 1:02d}", faces[face].source, voice, splits[index],
                                int(rng.integers(20, 29)), int(rng.integers(2**31)), look,
                                floor_db=round(float(floor.uniform(35, 60)), 1) if options.recording_floor else None,
                                floor_exponent=round(float(floor.uniform(0.5, 2.0)), 2)))
    return speakers


def speaker_rig(faces: list[FaceSource], speaker: Speaker, frame_size: int) -> FaceRig:
    face = next(f for f in faces if f.source == speaker.face)
    return build_rig(face.photo, face.points, frame_size, face.source, speaker.look)


def make_jobs(options: SynthOptions, speakers: list[Speaker]) -> list[UtteranceJob]:
    rng = np.random.default_rng([options.seed, 2])
    sentences = read_sentences(options.text_file) if options.text_file else None
    jobs = []
    for index in range(options.num_utterances):
        speaker = speakers[index % len(speakers)]
        text = sentences[index % len(sentences)] if sentences else grid_sentence(rng)
        utterance_id = f"{speaker.id}_{index:05d}"
        jobs.append(UtteranceJob(utterance_id, text, speaker, f"{speaker.split}/{speaker.id}/{utterance_id}.mp4",
                                 int(rng.integers(2**31))))
    return jobs


# Per worker process: one espeak-ng engine and one animator per face.
_WORKER: dict = {}


def run_jobs(jobs: list, run: Callable, init: Callable, init_args: tuple, workers: int, bar, chunksize: int = 1,
             ) -> list:
    """``run(job)`` for every job, in order, after ``init(*init_args)``: here with one worker, else in ``workers``
    spawned processes (each initialised once); ``bar`` (tqdm) moves on as each finishes."""
    if workers <= 1:
        init(*init_args)
        return [(run(job), bar.update())[0] for job in jobs]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=init,
                             initargs=init_args) as pool:
        return [(record, bar.update())[0] for record in pool.map(run, jobs, chunksize=chunksize)]


def _init_worker(rigs: dict[str, FaceRig], out_dir: str) -> None:
    import warnings as _warnings

    from avsr.synth.tts import Synthesizer

    _warnings.simplefilter("ignore")
    _WORKER.update(synthesizer=Synthesizer(), rigs=rigs, animators={}, out_dir=Path(out_dir))


def _run_job(job: UtteranceJob) -> dict:
    from avsr.synth.face_rig import MouthAnimator
    from avsr.synth.utterance import render_utterance

    animators = _WORKER["animators"]
    if job.speaker.id not in animators:
        animators[job.speaker.id] = MouthAnimator(_WORKER["rigs"][job.speaker.id])
    return render_utterance(job, animators[job.speaker.id], _WORKER["synthesizer"], _WORKER["out_dir"])


def foreign_corpus_file(out_dir: Path) -> Path | None:
    """The first of the corpus's own files (``<split>.jsonl``, ``speakers.json``) in ``out_dir`` that avsr synth
    did not write (a manifest whose lines lack a split, speaker or video; a list of speakers without their
    voices), or None."""
    for path in [out_dir / f"{split}.jsonl" for split in SPLITS] + [out_dir / "speakers.json"]:
        if not (path.exists() or path.is_symlink()):
            continue
        try:
            text = path.read_text(encoding="utf-8")
            rows = json.loads(text) if path.suffix == ".json" else [json.loads(x) for x in text.splitlines() if x]
        except (OSError, ValueError):
            return path
        keys = ("id", "voice") if path.suffix == ".json" else ("id", "video", "text", "speaker", "split")
        if not isinstance(rows, list) or not all(isinstance(r, dict) and all(k in r for k in keys) for r in rows):
            return path
    return None


def synthesize_corpus(out_dir: str | Path, options: SynthOptions = SynthOptions(),
                      progress: bool = True, overwrite: bool = False) -> dict[str, list[dict]]:
    """Make the corpus in ``out_dir``; returns the manifest records per split.

    Utterances already on disk (mp4 + json) are kept, so an interrupted run resumes. A manifest or
    speakers.json there that avsr synth did not write is refused (before any work) unless ``overwrite``.

    Raises:
        FaceImageError, VoiceError, TextError, ValueError: unusable faces, voices, text or options.
        OutputError: a file of the corpus's names that avsr synth did not write.
    """
    from tqdm import tqdm

    from avsr.io.inputs import OutputError
    from avsr.synth.tts import Synthesizer

    out_dir = Path(out_dir)
    if not overwrite and (foreign := foreign_corpus_file(out_dir)):
        raise OutputError(f"{foreign}: exists and was not written by avsr synth; pass --overwrite to replace it, or "
                          "choose another OUT_DIR")
    synthesizer = Synthesizer()  # also checks every voice before any work starts
    for name in options.voices:
        synthesizer.check_voice(Voice(name))
    faces = load_faces(options.faces_dir)
    speakers = make_speakers(options, faces)
    jobs = make_jobs(options, speakers)
    ensure_output_dir(out_dir, "OUT_DIR")  # a file, or under one: one line naming it
    face_rigs = {s.id: speaker_rig(faces, s, options.frame_size) for s in speakers}
    with tqdm(total=len(jobs), unit="utt", disable=not progress, dynamic_ncols=True) as bar:
        records = run_jobs(jobs, _run_job, _init_worker, (face_rigs, str(out_dir)), options.workers, bar, chunksize=4)
    by_split = {split: [r for r in records if r["split"] == split] for split in SPLITS}
    for split, rows in by_split.items():
        write_jsonl(out_dir / f"{split}.jsonl", rows)
    speakers_json = [asdict(s) | {"voice": s.voice.espeak_name, "rate_wpm": s.voice.rate_wpm, "pitch": s.voice.pitch}
                     for s in speakers]
    write_text_atomic(out_dir / "speakers.json", json.dumps(speakers_json, indent=1))
    return by_split
