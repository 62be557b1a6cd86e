"""One synthetic utterance: speech, visemes, mouth animation, and the mp4 + timing files."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from avsr.files import write_text_atomic
from avsr.data.noise import coloured_noise, mix_at_snr
from avsr.io.writer import write_video
from avsr.preprocessing import SAMPLE_RATE, SAMPLES_PER_FRAME, VIDEO_FPS
from avsr.synth.face_rig import HeadMotion, MouthAnimator, render_clip
from avsr.synth.tts import Synthesizer, Utterance
from avsr.synth.visemes import VISEMES, mouth_track, phones_to_visemes


def to_16k(utterance: Utterance) -> np.ndarray:
    """espeak-ng's audio resampled to 16 kHz (polyphase, exact rational ratio)."""
    ratio = math.gcd(SAMPLE_RATE, utterance.sample_rate)
    return resample_poly(utterance.audio, SAMPLE_RATE // ratio, utterance.sample_rate // ratio).astype(np.float32)


def recording_floor(audio: np.ndarray, floor_db: float | None, exponent: float, seed: int) -> np.ndarray:
    """``audio`` with coloured room tone ``floor_db`` below its active speech (unchanged for None).

    A synthesiser's silence is exact digital zero, which no microphone records: a model could learn
    "zero = no speech", and an energy-above-floor SNR cue has no floor to measure against.
    """
    if floor_db is None:
        return audio
    noise = coloured_noise(len(audio), exponent, np.random.default_rng([seed, 7]))
    return mix_at_snr(audio, noise, floor_db)


def render_utterance(job, animator: MouthAnimator, synthesizer: Synthesizer, out_dir: Path) -> dict:
    """Write ``<id>.mp4`` and ``<id>.json`` for a job (skipped when both exist); return its manifest record."""
    video_path = out_dir / job.video
    side_path = video_path.with_suffix(".json")
    if video_path.exists() and side_path.exists():
        side = json.loads(side_path.read_text())
        return _record(job, side["duration_s"])
    utterance = synthesizer.synthesize(job.text, job.speaker.voice)
    audio = to_16k(utterance)
    frame_count = math.ceil(len(audio) / SAMPLE_RATE * VIDEO_FPS)
    audio = np.pad(audio, (0, frame_count * SAMPLES_PER_FRAME - len(audio)))  # audio and video end together
    audio = recording_floor(audio, job.speaker.floor_db, job.speaker.floor_exponent, job.seed)
    segments = phones_to_visemes(utterance.phones)
    mouth = mouth_track(segments, frame_count, VIDEO_FPS)
    frames = render_clip(animator, mouth, HeadMotion.random(np.random.default_rng(job.seed)))
    video_path.parent.mkdir(parents=True, exist_ok=True)
    write_video(video_path, frames, VIDEO_FPS, audio, SAMPLE_RATE, quality_crf=job.speaker.crf)
    duration_s = frame_count / VIDEO_FPS
    write_text_atomic(side_path, json.dumps({
        "id": job.id, "text": job.text, "speaker": job.speaker.id, "duration_s": duration_s,
        "words": [asdict(w) for w in utterance.words],
        "phones": [asdict(p) for p in utterance.phones],
        "visemes": [{"viseme": VISEMES[s.viseme].name, "start_s": s.start_s, "end_s": s.end_s} for s in segments],
        "mouth_open": np.round(mouth[:, 0], 4).tolist(),
        "mouth_spread": np.round(mouth[:, 1], 4).tolist(),
    }, indent=1))
    return _record(job, duration_s)


def _record(job, duration_s: float) -> dict:
    return {"id": job.id, "video": job.video, "text": job.text, "speaker": job.speaker.id,
            "duration_s": round(duration_s, 3), "split": job.speaker.split}
