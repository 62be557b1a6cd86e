"""Test utterances made harder before they are scored: a face lost for a moment, and speech that
starts later and ends earlier in its clip (:class:`~avsr.evaluation.options.Perturbation`).

Items are the evaluation's utterance dicts (:func:`~avsr.evaluation.sweep.load_items`): ``audio``
``(N,)`` at 16 kHz, ``video`` ``(T, H, W)``, ``face_found`` ``(T,)`` and ``frame_snr`` ``(T,)``.
"""

from __future__ import annotations

import numpy as np

from avsr.data.noise import room_tone as pink_room_tone
from avsr.evaluation.options import Perturbation
from avsr.io.writer import quietest_stretch
from avsr.preprocessing import SAMPLES_PER_FRAME

ROOM_TONE_STREAM = 0x700E  # seeds the room tone apart from the noise drawn with the same seed


def face_gap_mask(frames: int, gap: int, at: str) -> np.ndarray:
    """``(frames,)`` True on the frames without a face: one gap of ``gap`` frames at the clip's
    ``start``, ``middle`` or ``end``, or one at the end of each second (25 frames) for
    ``every-second``."""
    index = np.arange(frames)
    if at == "start":
        return index < gap
    if at == "middle":
        middle = (frames - gap) // 2
        return (index >= middle) & (index < middle + gap)
    if at == "end":
        return index >= frames - gap
    if at == "every-second":
        return index % 25 >= 25 - gap
    raise ValueError(f"face gap at {at!r}: use start, middle, end or every-second")


def without_face(item: dict, mask: np.ndarray) -> dict:
    """``item`` with the face removed on the frames of ``mask``: black crops, ``face_found`` false,
    as when the landmarker loses it."""
    video, found = item["video"].copy(), item["face_found"].copy()
    video[mask], found[mask] = 0, False
    return item | {"video": video, "face_found": found}


def with_face_gaps(items: list[dict], perturbation: Perturbation) -> list[dict]:
    """``items`` with the perturbation's face gaps cut (unchanged without any)."""
    gap = perturbation.face_gap_frames
    if gap == 0:
        return items
    return [without_face(item, face_gap_mask(len(item["video"]), gap, perturbation.face_gap_at)) for item in items]


def room_tone(audio: np.ndarray, frames: int, dbfs: float | None, rng: np.random.Generator) -> np.ndarray:
    """``frames`` 25 fps frames of quiet sound to lengthen ``audio`` with: its own quietest stretch
    (``dbfs`` None), digital silence (-inf), or pink noise at ``dbfs`` RMS (dB full scale)."""
    samples = frames * SAMPLES_PER_FRAME
    if dbfs is None:
        return quietest_stretch(audio, frames).astype(audio.dtype)
    return pink_room_tone(samples, dbfs, rng).astype(audio.dtype)  # -inf: zeros


def lengthened(item: dict, lead_in: int, trail: int, dbfs: float | None, rng: np.random.Generator) -> dict:
    """``item`` with ``lead_in`` frames before it and ``trail`` after: the first (last) crop held,
    the sound :func:`room_tone`, each frame's SNR unknown (NaN)."""
    parts = {key: [item[key]] for key in ("audio", "video", "face_found", "frame_snr")}
    for frames, edge, side in ((lead_in, 0, 0), (trail, -1, 1)):
        if frames == 0:
            continue
        added = {"audio": room_tone(item["audio"], frames, dbfs, rng),
                 "video": np.repeat(item["video"][edge][None], frames, 0),
                 "face_found": np.repeat(item["face_found"][edge], frames),
                 "frame_snr": np.full(frames, np.nan, item["frame_snr"].dtype)}
        for key, value in added.items():
            parts[key].insert(len(parts[key]) * side, value)
    return item | {key: np.concatenate(values) for key, values in parts.items()}


def with_lead_in(items: list[dict], perturbation: Perturbation, seed: int) -> list[dict]:
    """``items`` lengthened by the perturbation's lead-in and trail (unchanged without either); the
    room tone of utterance ``i`` is drawn from ``(seed, i)``."""
    lead_in, trail = perturbation.lead_in_frames, perturbation.trail_frames
    if lead_in == 0 and trail == 0:
        return items
    return [lengthened(item, lead_in, trail, perturbation.room_tone_dbfs,
                       np.random.default_rng([seed, ROOM_TONE_STREAM, index]))
            for index, item in enumerate(items)]
