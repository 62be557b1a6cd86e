"""Where a file is read: its speech regions (:mod:`avsr.io.vad`) for the mode it is recognised in.

The model reads each region on its own, from just before its speech to just after (``pad_s``), and
nothing outside: a lead-in of quiet or a stretch of music is never put before it, and yields no words.
The speech probability is the audio's (Silero VAD) in audio mode, the lips' in video mode, and in av
mode the audio's, or the larger of the two where the audio is loud but not speech (drowned by music or
noise: the lips may still show who speaks).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from avsr.inference.chunks import Window
from avsr.inference.sync import lip_activity, speech_envelope
from avsr.io.vad import VadOptions, audio_speech_probability, speech_regions, split_region
from avsr.preprocessing import VIDEO_FPS

DROWNED_DB = -40.0  # frames louder than this (dB of full scale) whose audio is not speech are judged by the lips


def speech_probability(mode: str, audio, has_audio: bool, mouth_signal: np.ndarray | None,
                       face_found: np.ndarray) -> np.ndarray:
    """``(T,)`` how likely each 25 Hz frame holds speech, for recognition in ``mode`` (av, audio, video).
    ``audio``: 16 kHz samples ``(640 T,)`` (an array or a spool); ``mouth_signal`` ``(T,)`` (None without
    a face track)."""
    frames = len(face_found)
    lips = lip_activity(mouth_signal, face_found) if mouth_signal is not None else np.zeros(frames, np.float32)
    if mode == "video" or not has_audio:
        return lips
    heard = audio_speech_probability(audio, frames)
    if mode == "audio" or mouth_signal is None:
        return heard
    drowned = speech_envelope(audio)[:frames] > DROWNED_DB
    return np.where(drowned, np.maximum(heard, lips), heard).astype(np.float32)


def find_regions(probability: np.ndarray, options: VadOptions | None,
                 max_region_s: float | None = None) -> list[tuple[int, int]]:
    """The speech regions of ``probability`` ``(T,)``; with ``options`` None (segmentation off) the
    whole file is one region. ``max_region_s``: the longest the model reads (longer regions are cut at
    their least speech-like frames, :class:`~avsr.io.vad.VadOptions`)."""
    if options is None:
        if not len(probability):
            return []
        if max_region_s is None:
            return [(0, len(probability))]
        return split_region(np.asarray(probability), 0, len(probability), round(max_region_s * VIDEO_FPS))
    return speech_regions(probability, replace(options, max_region_s=max_region_s) if max_region_s else options)


def region_cuts(regions: list[tuple[int, int]], frames: int) -> list[int]:
    """The frames where regions start and stop, inside the file: chunks never cross them."""
    return sorted({edge for region in regions for edge in region if 0 < edge < frames})


def inside(window: Window, regions: list[tuple[int, int]]) -> bool:
    """Whether ``window`` (which never crosses a region's edge) lies in a region."""
    start, stop = window[0], window[1]
    return any(a <= start and stop <= b for a, b in regions)


def no_speech_prob(probability: np.ndarray, start: int, stop: int) -> float:
    """How likely frames ``[start, stop)`` hold no speech: one minus their mean speech probability."""
    return round(1.0 - float(np.mean(probability[start:stop])) if stop > start else 1.0, 3)


def heard_or_loud(audio, probability: np.ndarray) -> np.ndarray:
    """``(T,)`` 1 where a frame of ``audio`` is loud (over :data:`DROWNED_DB`), else ``probability``: where
    :func:`read_spans` may start a chunk late. ``probability``: the audio's speech probability, or
    :func:`speech_probability` in audio or av mode, which differs from it only in loud frames; so the result needs
    the audio alone, and windows read while the file is still being cut (:mod:`avsr.inference.stream`) are those
    recognition reads. A frame that is loud or heard as speech is never left unread."""
    loud = speech_envelope(audio)[: len(probability)] > DROWNED_DB
    return np.where(loud, 1.0, probability).astype(np.float32)


def read_spans(regions: list[tuple[int, int]], cuts: list[int], probability: np.ndarray, threshold: float,
               lead: int) -> list[tuple[int, int]]:
    """The stretches of ``regions`` read: each chunk (a region's piece between two of ``cuts``) from ``lead``
    frames before its first frame whose ``probability`` (:func:`heard_or_loud`) reaches ``threshold`` (the whole
    chunk without one)."""
    bounds, spans = sorted(set(cuts)), []
    for start, stop in regions:
        inner = [cut for cut in bounds if start < cut < stop]
        for a, b in zip([start] + inner, inner + [stop]):
            onset, _ = speech_extent(probability, a, b, threshold)
            spans.append((max(a, onset - lead), b))
    return spans


def speech_extent(probability: np.ndarray, start: int, stop: int, threshold: float) -> tuple[int, int]:
    """``[first, last + 1)``: the frames of ``[start, stop)`` from the first to the last whose speech probability
    reaches ``threshold`` (the region without its padding); the whole range if none does."""
    speech = np.flatnonzero(np.asarray(probability[start:stop]) >= threshold)
    return (start + int(speech[0]), start + int(speech[-1]) + 1) if len(speech) else (start, stop)


def fit_to_speech(words: list, onset_s: float, offset_s: float) -> list:
    """Words (with ``start_s``, ``end_s``; :class:`~avsr.decoding.align.WordTiming`) moved inside the speech:
    where the CTC alignment places the first word's start before ``onset_s`` or the last word's end after
    ``offset_s`` (in the padding, or the quiet after the speech), the words' times are mapped linearly from
    their own span onto the span clipped to the speech. Words inside it are left as they are."""
    if not words:
        return words
    first, last = words[0].start_s, words[-1].end_s
    begin, end = max(first, onset_s), min(last, offset_s)
    if (begin, end) == (first, last) or end <= begin or last <= first:
        return words
    scale = (end - begin) / (last - first)
    return [replace(w, start_s=begin + (w.start_s - first) * scale, end_s=begin + (w.end_s - first) * scale)
            for w in words]
