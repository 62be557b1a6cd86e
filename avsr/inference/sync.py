"""How far a file's picture is out of step with its sound, from the mouth and the speech alone.

The mouth opens as the voice gets loud: the inner-lip opening (from the lip landmarks that the
lip-ROI stage tracks anyway) and the speech envelope (log energy per 25 Hz frame) rise and fall
together. Their correlation, taken at every lag within ``±max_lag`` frames, peaks where the
streams line up; a peak at lag ``k`` means the video shows a sound's mouth ``k`` frames after the
sound (the video lags, a positive offset). The peak is refined between frames with a parabola.

The mouth's side of it is :func:`mouth_signal`: the first principal component of the file's mouth
pixels over time, its sign set by the landmarks' opening. It moves with the lips on every frame
even when the landmarker ran on every 3rd frame only (the crops are cut from every frame; the
landmarks between are interpolated, and an opening read from them is smoothed over the gaps).
It is off by > 80 ms half as often as that opening (RESULTS.md#audio-video-sync; a415050…cda6f16 in
docs/history/2026-12-01.md).

This needs no model: it works the same whatever fusion the model has, and it is cheap (a few
correlations of two numbers per frame, and one pass over the crops).

Speech is rhythmic (a syllable every 5-6 frames), so in a short clip the correlation can peak a
syllable away from the truth. ``confidence`` is therefore how far the peak stands above the best
rival lag at least :data:`RIVAL_FRAMES` away (0: another offset explains the mouth as well);
``correlation`` is the peak itself. Measured (docs/history/2026-11-30.md, dd1a097…5d90811): on 51
synthetic test clips shifted in memory by up to ±200 ms, every estimate off by more than 80 ms had a
margin under 0.13 and nine in ten of the right ones one over 0.1; on offset copies of 30 clips
(``python -m bench.av_sync``) the median error is 31 ms. On aligned synthetic clips the estimate reads
about +24 ms (the rendered mouth's lag or this estimator's, not separated); real mouths tend to lead,
so no correction for it is built in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from avsr.models.fusion import attention_summary
from avsr.preprocessing import FRAME_S, SAMPLES_PER_FRAME, VIDEO_FPS

RIVAL_FRAMES = 3  # a rival lag is at least this far from the peak
SYNC_MS = 80  # an estimated audio-video offset beyond this is a warning and, with av_sync="auto", undone
SYNC_MIN_CONFIDENCE = 0.1  # a mouth estimate with a smaller margin over its rivals is reported, not acted on
# An attention estimate with fewer agreeing frames is not used (avsr transcribe reads the mouth instead).
# Taught models agree on 0.82-1.00, untaught ones on 0.16-0.26 (docs/history/2026-12-01.md, 6a9af6c…b15d4c6).
ATTENTION_MIN_AGREEMENT = 0.5
INNER_LIPS = slice(20, 40)  # the inner contour of LipRoi.mouth_landmarks (outer contour first)
OUTER_LIPS = slice(0, 20)


@dataclass(frozen=True)
class SyncEstimate:
    offset_ms: float  # positive: the video lags the audio
    confidence: float  # mouth: the peak's margin over the best rival lag (see the module's notes); attention: agreement
    correlation: float  # mouth: the correlation at the peak; attention: the attention's mean peak weight
    source: str = "mouth"  # mouth (estimate_offset) or attention (attention_offset)

    @property
    def sure(self) -> bool:
        """Confident enough to act on (:data:`SYNC_MIN_CONFIDENCE`, :data:`ATTENTION_MIN_AGREEMENT`)."""
        return self.confidence >= (ATTENTION_MIN_AGREEMENT if self.source == "attention" else SYNC_MIN_CONFIDENCE)

    @property
    def offset_frames(self) -> int:
        """Whole frames to undo. The mouth's estimate is rounded toward zero: it is off by about 30 ms,
        a correction that falls short leaves a lag the model reads through, and one a frame too far
        costs letters (docs/history/2026-12-01.md, a415050…cda6f16). The attention's, off by a few ms, is
        rounded down, so that what is left is a lag of under a frame, never a lead: the models read a
        picture one frame late as well as an aligned one, and one frame early worse (6a9af6c…b15d4c6)."""
        frames = self.offset_ms / 1000 / FRAME_S
        return math.floor(frames) if self.source == "attention" else int(frames)


def frames_to_undo(estimate: SyncEstimate | None) -> int:
    """The frames to move the video back by before recognition: the estimate's whole frames where it
    is sure and beyond :data:`SYNC_MS`, else 0."""
    if estimate is None or abs(estimate.offset_ms) <= SYNC_MS or not estimate.sure:
        return 0
    return estimate.offset_frames


def mouth_opening(mouth_landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip height over outer-lip width per frame ``(T,)`` from ``(T, 40, 2)`` lip points; NaN
    where the landmarks are (no face)."""
    inner, outer = mouth_landmarks[:, INNER_LIPS], mouth_landmarks[:, OUTER_LIPS]
    with np.errstate(invalid="ignore"):
        height = inner[..., 1].max(axis=1) - inner[..., 1].min(axis=1)
        width = outer[..., 0].max(axis=1) - outer[..., 0].min(axis=1)
        return height / np.maximum(width, 1e-6)


MOUTH_BOX = (slice(24, 72, 2), slice(16, 80, 2))  # rows, columns of a 96x96 crop around the mouth, every 2nd pixel
PCA_BLOCK = 1500  # crops read at a time (a minute): an hour's crops may be on disk (FrameSpool)
MOUTH_PIXELS = len(range(96)[MOUTH_BOX[0]]) * len(range(96)[MOUTH_BOX[1]])  # 24 x 32


def mouth_signal(roi, face_found: np.ndarray, opening: np.ndarray) -> np.ndarray:
    """The lips' movement per frame ``(T,)``, NaN without a face: the projection of each frame's
    mouth pixels (:data:`MOUTH_BOX` of the ``(T, 96, 96)`` crops ``roi``, an array or a
    :class:`~avsr.io.spool.FrameSpool`) on their first principal component over the file's frames
    with a face, signed so that it rises with ``opening`` (:func:`mouth_opening`, which may be
    interpolated between landmark frames). The crops are aligned on the face, so what varies most
    in the mouth box is the mouth. A file of more than :data:`MOUTH_PIXELS` face frames is read a block
    of frames at a time, twice, and its component found from the pixels' covariance."""
    frames = len(face_found)
    signal, opening = np.full(frames, np.nan), opening[:frames]
    count = int(face_found.sum())
    if count < 2:
        return signal

    def pixels(start: int) -> tuple[np.ndarray, np.ndarray]:
        found = face_found[start: start + PCA_BLOCK]
        block = np.asarray(roi[start: start + len(found)])[(slice(None),) + MOUTH_BOX]
        return block[found].reshape(int(found.sum()), -1).astype(np.float64), found
    if count <= MOUTH_PIXELS:  # at most 30 s: the same component, from the SVD of the centred pixels (faster)
        x = np.concatenate([pixels(start)[0] for start in range(0, frames, PCA_BLOCK)])
        centred = x - x.mean(axis=0)
        signal[face_found] = centred @ np.linalg.svd(centred, full_matrices=False)[2][0]
    else:
        total, products = 0.0, 0.0
        for start in range(0, frames, PCA_BLOCK):
            x, _ = pixels(start)
            total, products = total + x.sum(axis=0), products + x.T @ x
        mean = total / count
        covariance = products / count - np.outer(mean, mean)
        component = np.linalg.eigh(covariance)[1][:, -1]
        for start in range(0, frames, PCA_BLOCK):
            x, found = pixels(start)
            signal[start: start + len(found)][found] = (x - mean) @ component
    both = np.isfinite(signal) & np.isfinite(opening)
    if both.sum() > 2 and signal[both].std() > 0 and opening[both].std() > 0 \
            and np.corrcoef(signal[both], opening[both])[0, 1] < 0:
        signal = -signal
    return signal


ENVELOPE_BLOCK = 1500  # frames (a minute) squared in float64 at a time: an hour at once would take 460 MB


def speech_envelope(audio) -> np.ndarray:
    """Log energy (dB) of each 25 Hz frame of 16 kHz ``audio`` (an array, or a
    :class:`~avsr.io.spool.FrameSpool` of samples: it is read a block at a time)."""
    frames = len(audio) // SAMPLES_PER_FRAME
    energy = np.empty(frames)
    for start in range(0, frames, ENVELOPE_BLOCK):
        stop = min(start + ENVELOPE_BLOCK, frames)
        samples = np.asarray(audio[start * SAMPLES_PER_FRAME: stop * SAMPLES_PER_FRAME]).reshape(stop - start, -1)
        energy[start: stop] = np.square(samples, dtype=np.float64).mean(axis=1)
    return 10 * np.log10(energy + 1e-10)


def estimate_offset(opening: np.ndarray, audio, max_lag: int = 10,
                    min_frames: int = 25) -> SyncEstimate | None:
    """The audio-video offset of one recording, or None when there is too little to go on (fewer
    than ``min_frames`` frames with a face at any lag, or a flat mouth or a silent track).

    Args:
        opening: the mouth per 25 Hz frame, :func:`mouth_signal` or :func:`mouth_opening` (NaN without a face).
        audio: 16 kHz samples on the same clock (frame t = samples 640 t .. 640 (t + 1)); an array or a
            :class:`~avsr.io.spool.FrameSpool` of samples.
        max_lag: the largest offset looked for, in frames each way (10 = 400 ms).
    """
    envelope = speech_envelope(audio)
    frames = min(len(opening), len(envelope))
    opening, envelope = opening[:frames].astype(np.float64), envelope[:frames]
    scores = np.full(2 * max_lag + 1, np.nan)
    for index, lag in enumerate(range(-max_lag, max_lag + 1)):
        # audio frame t against video frame t + lag
        mouth = opening[max(lag, 0): frames + min(lag, 0)]
        sound = envelope[max(-lag, 0): frames - max(lag, 0)]
        keep = np.isfinite(mouth)
        if keep.sum() < min_frames:
            continue
        mouth, sound = mouth[keep], sound[keep]
        if mouth.std() < 1e-6 or sound.std() < 1e-6:
            continue
        scores[index] = np.corrcoef(mouth, sound)[0, 1]
    if not np.isfinite(scores).any():
        return None
    best = int(np.nanargmax(scores))
    shift = 0.0
    if 0 < best < len(scores) - 1 and np.isfinite(scores[best - 1]) and np.isfinite(scores[best + 1]):
        left, centre, right = scores[best - 1], scores[best], scores[best + 1]
        curvature = left - 2 * centre + right
        if curvature < 0:
            shift = float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))
    lag = best - max_lag + shift
    rivals = scores[np.abs(np.arange(len(scores)) - best) >= RIVAL_FRAMES]
    rival = np.nanmax(rivals) if np.isfinite(rivals).any() else -1.0
    margin = float(np.clip(scores[best] - rival, 0.0, 1.0))
    return SyncEstimate(1000 * FRAME_S * lag, margin, float(scores[best]))


def attention_offset(attention: np.ndarray, face_found: np.ndarray, min_frames: int = 25) -> SyncEstimate | None:
    """The audio-video offset read from where an ``xattn`` model's audio frames looked, or None with
    fewer than ``min_frames`` frames that attended to a face.

    Each audio frame's most attended video frame (:func:`~avsr.models.fusion.attention_summary`) is a
    vote for an offset. The estimate is the median vote (the vote nearest it), refined by the mean of
    the votes within a frame of it; ``confidence`` is the share of votes within that frame (1: every frame agrees).
    Only a model taught where the lips are (``xattn_sync_supervision``) votes consistently: the
    votes of one trained without it are spread over the window (docs/history/2026-12-01.md,
    beb0de2…4134df0).

    Args:
        attention: ``(T, 2W + 1)`` each audio frame's attention over video frames ``t - W .. t + W``
            (rows of zeros where it had no face to attend to).
        face_found: ``(T,)``; frames without a face do not vote.
    """
    attention = torch.as_tensor(np.asarray(attention, dtype=np.float64))
    voting = torch.as_tensor(np.asarray(face_found[: len(attention)], bool)) & (attention.sum(dim=1) > 0)
    if int(voting.sum()) < min_frames:
        return None
    votes, peaks = (x.numpy() for x in attention_summary(attention[voting]))
    median = float(np.median(votes))
    centre = votes[np.argmin(np.abs(votes - median))]  # a vote: the median of two far-apart halves may be none
    near = np.abs(votes - centre) <= 1
    return SyncEstimate(1000 * FRAME_S * float(votes[near].mean()), float(near.mean()), float(peaks.mean()),
                        source="attention")


LIP_WINDOW_S = 0.4  # the mouth's motion is judged over this span around each frame
LIP_MOVING = 1.0  # grey levels (RMS per mouth pixel along the component) at which a mouth is as likely speaking as not


def lip_activity(signal: np.ndarray, face_found: np.ndarray) -> np.ndarray:
    """How likely the mouth is speaking at each frame ``(T,)``, 0 without a face: a logistic of the
    standard deviation of :func:`mouth_signal` ``(T,)`` over :data:`LIP_WINDOW_S` around the frame, in
    grey levels per mouth pixel. A still mouth scores near 0, a speaking one near 1."""
    signal = np.asarray(signal, np.float64) / np.sqrt(MOUTH_PIXELS)
    found = np.asarray(face_found, bool) & np.isfinite(signal)
    signal = np.where(found, signal, 0.0)
    kernel = np.ones(2 * max(1, round(LIP_WINDOW_S * VIDEO_FPS / 2)) + 1)
    count = np.convolve(found.astype(np.float64), kernel, "same")
    mean = np.convolve(signal, kernel, "same") / np.maximum(count, 1)
    spread = np.sqrt(np.maximum(np.convolve(signal ** 2, kernel, "same") / np.maximum(count, 1) - mean ** 2, 0.0))
    probability = 1.0 / (1.0 + np.exp(-(spread - LIP_MOVING) / (0.2 * LIP_MOVING)))
    return np.where(found & (count > len(kernel) // 2), probability, 0.0).astype(np.float32)
