"""Who speaks: per face and 25 Hz frame, how likely that face is the one speaking (issue 35, item 2).

A face speaks where its mouth moves (:func:`~avsr.inference.sync.lip_activity` of its
:func:`~avsr.inference.sync.mouth_signal`) and, where the sound is usable, where that movement goes
with the speech envelope: their correlation over :data:`SYNC_WINDOW_S` around the frame raises a moving
mouth's score by up to half again, so that a mouth chewing or mouthing out of step with the voice
scores below one that speaks it. Without usable audio (none, silent, or one level throughout:
drowned) the score is the mouth's motion alone. The score is averaged over :data:`SMOOTH_S` (about a
word), so that the speaker chosen does not flicker within a word; with usable audio it is then 0 where
the sound is quiet (:func:`voiced_frames`): nobody speaks in a pause, however the lips moved around it.
"""

from __future__ import annotations

import numpy as np

from avsr.inference.chunks import quiet_frames
from avsr.inference.sync import lip_activity, mouth_opening, mouth_signal, speech_envelope
from avsr.io.face_align import true_runs
from avsr.io.face_rois import FaceRois
from avsr.io.lip_roi import LipRoi
from avsr.preprocessing import VIDEO_FPS

SYNC_WINDOW_S = 1.0  # the mouth and the envelope are correlated over this window around each frame
SMOOTH_S = 0.4  # scores are averaged over this window (a word)
USABLE_RANGE_DB = 20.0  # audio whose envelope spans less than this (5th to 95th percentile) is not used
MIN_SPEAKER_SCORE = 0.3  # below this nobody in view is taken for the speaker
VOICE_BRIDGE_S = 0.2  # quiet stretches inside speech shorter than this (stops, breaths) are voiced
HOLD_S = 1.0  # the crops read are held on a speaker's face through a pause this short (and at the ends)
MIN_TURN_S = 0.4  # another face taken for less than this inside a speaker's stretch is that speaker's


def _window_sum(values: np.ndarray, frames: int) -> np.ndarray:
    return np.convolve(values, np.ones(2 * (frames // 2) + 1), "same")


def windowed_correlation(x: np.ndarray, y: np.ndarray, frames: int) -> np.ndarray:
    """Pearson correlation of ``x`` and ``y`` ``(T,)`` over ``frames`` around each frame ``(T,)``; 0 where
    either is flat or NaN."""
    valid = np.isfinite(x) & np.isfinite(y)
    x, y = np.where(valid, x, 0.0), np.where(valid, y, 0.0)
    count = np.maximum(_window_sum(valid.astype(np.float64), frames), 1)
    mx, my = _window_sum(x, frames) / count, _window_sum(y, frames) / count
    cov = _window_sum(x * y, frames) / count - mx * my
    vx = _window_sum(x * x, frames) / count - mx ** 2
    vy = _window_sum(y * y, frames) / count - my ** 2
    scale = np.sqrt(np.maximum(vx, 0) * np.maximum(vy, 0))
    return np.where(scale > 1e-9, cov / np.maximum(scale, 1e-9), 0.0)


def usable_envelope(audio, frames: int) -> np.ndarray | None:
    """The speech envelope ``(T,)`` dB of 16 kHz ``audio``, or None where it cannot tell speech (no
    audio, or a level that hardly varies: silence, or speech drowned by steady noise)."""
    if audio is None or len(audio) == 0:
        return None
    envelope = speech_envelope(audio)[:frames]
    envelope = np.pad(envelope, (0, frames - len(envelope)), constant_values=envelope.min() if len(envelope) else -100)
    low, high = np.percentile(envelope, [5, 95])
    return envelope if high - low >= USABLE_RANGE_DB and high > -60 else None


def voiced_frames(envelope: np.ndarray) -> np.ndarray:
    """Where the sound is speech ``(T,) bool``, from its envelope (dB): the frames not quiet as a pause is judged
    (:func:`~avsr.inference.chunks.quiet_frames`), quiet stretches shorter than :data:`VOICE_BRIDGE_S` bridged,
    and a frame more at either end (an onset or a fading last sound). All voiced without a clear floor."""
    quiet = quiet_frames(envelope)
    if quiet is None:
        return np.ones(len(envelope), bool)
    voiced = ~quiet
    for start, stop in true_runs(quiet):
        if stop - start < round(VOICE_BRIDGE_S * VIDEO_FPS) and start > 0 and stop < len(quiet):
            voiced[start:stop] = True
    return voiced | np.r_[voiced[1:], False] | np.r_[False, voiced[:-1]]


def face_signals(rois: FaceRois) -> np.ndarray:
    """Each face's lips' movement ``(F, T)``: :func:`~avsr.inference.sync.mouth_signal` of its own crops (over
    several faces' crops together the principal component would be their difference)."""
    return np.stack([mouth_signal(rois.roi[face], rois.face_found[face], mouth_opening(rois.mouth_landmarks[face]))
                     for face in range(rois.faces)])


def speaker_scores(rois: FaceRois, audio=None, signals: np.ndarray | None = None) -> np.ndarray:
    """How likely each face is speaking at each frame ``(F, T)`` in [0, 1] (0 where the face is not
    found). ``audio``: 16 kHz samples ``(640 T,)`` on the crops' clock (an array or a FrameSpool), or None;
    ``signals``: :func:`face_signals` of ``rois`` if the caller has them."""
    frames = len(rois)
    envelope = usable_envelope(audio, frames)
    signals = face_signals(rois) if signals is None else signals
    voiced = np.ones(frames, bool) if envelope is None else voiced_frames(envelope)
    scores = np.zeros((rois.faces, frames), np.float32)
    for face in range(rois.faces):
        found, signal = rois.face_found[face], signals[face]
        score = lip_activity(signal, found).astype(np.float64)
        if envelope is not None:
            agreement = windowed_correlation(signal, envelope, round(SYNC_WINDOW_S * VIDEO_FPS))
            score = np.minimum(score * (1.0 + 0.5 * np.clip(agreement, 0.0, 1.0)), 1.0)
        smooth = round(SMOOTH_S * VIDEO_FPS)
        scores[face] = np.where(found & voiced, _window_sum(score, smooth) / np.maximum(
            _window_sum(np.ones(frames), smooth), 1), 0.0)
    return scores


def active_face(scores: np.ndarray, min_score: float = MIN_SPEAKER_SCORE,
                min_frames: int = round(MIN_TURN_S * VIDEO_FPS)) -> np.ndarray:
    """The speaking face's id per frame ``(T,) int`` from :func:`speaker_scores` ``(F, T)``: the best
    scored, -1 where none reaches ``min_score`` (nobody in view speaks). A face taken for fewer than
    ``min_frames`` between two stretches of the same other face is that face's: a turn is longer than that, and
    the flicker cut a speaker's turn in two."""
    if len(scores) == 0:
        return np.full(scores.shape[1], -1)
    best = scores.argmax(axis=0)
    active = np.where(scores.max(axis=0) >= min_score, best, -1)
    changes = np.flatnonzero(np.diff(active)) + 1
    starts, stops = np.r_[0, changes], np.r_[changes, len(active)]
    for i in range(1, len(starts) - 1):
        before, run, after = active[starts[i - 1]], active[starts[i]], active[starts[i + 1]]
        if run >= 0 and before == after >= 0 and before != run and stops[i] - starts[i] < min_frames:
            active[starts[i]: stops[i]] = before
    return active


def held_through_pauses(active: np.ndarray, max_frames: int = round(HOLD_S * VIDEO_FPS)) -> np.ndarray:
    """The face to read in each frame ``(T,)``: ``active`` (:func:`active_face`, -1 nobody) with each stretch of
    nobody up to ``max_frames`` long filled, between two turns the first half with the face before and the
    second with the face after (where :func:`speaker_changes` cuts), before the first and after the last with
    that face. A lip reader reads a speaker's still face through a pause as it does in a clip of one face; a
    longer silence is not read."""
    out = np.asarray(active).copy()
    read = np.flatnonzero(out >= 0)
    if not len(read):
        return out
    if read[0] <= max_frames:
        out[: read[0]] = out[read[0]]
    if len(out) - 1 - read[-1] <= max_frames:
        out[read[-1] + 1:] = out[read[-1]]
    for before, after in zip(read[:-1], read[1:]):
        if 1 < after - before <= max_frames + 1:
            middle = (before + 1 + after) // 2
            out[before + 1: middle], out[middle: after] = out[before], out[after]
    return out


def speaking_track(rois: FaceRois, active: np.ndarray) -> LipRoi:
    """One crop track read from the face speaking in each frame (``active`` from :func:`active_face`),
    switching faces where it changes: crops, landmarks, maps and box of that face; not found (zero
    crops, NaN) where nobody in view speaks (-1) or the speaking face is lost."""
    frames = np.arange(len(rois))
    face = np.maximum(active, 0)
    speaking = (active >= 0) & rois.face_found[face, frames]

    def picked(values: np.ndarray, blank) -> np.ndarray:
        chosen = values[face, frames]
        return np.where(speaking.reshape(-1, *[1] * (chosen.ndim - 1)), chosen, blank).astype(values.dtype)

    return LipRoi(roi=picked(rois.roi, 0), face_found=speaking, mouth_landmarks=picked(rois.mouth_landmarks, np.nan),
                  timestamps_s=rois.timestamps_s, transforms=picked(rois.transforms, np.nan), fps=rois.fps,
                  boxes=picked(rois.boxes, np.nan))


def speaker_changes(ids: np.ndarray | None) -> list[int]:
    """Where the face read (``ids (T,)``, -1 none) becomes another face than the last one read: where the
    recording is cut, so that no chunk mixes two faces (the crops are normalised over a chunk). The cut is in
    the middle of the frames read from neither (a pause between two turns), not at the new face's first frame,
    which is its first sound: a chunk that starts on a word loses it."""
    if ids is None:
        return []
    read = np.flatnonzero(ids >= 0)
    return [int(before + 1 + frame) // 2 for frame, before in zip(read[1:], read[:-1]) if ids[frame] != ids[before]]
