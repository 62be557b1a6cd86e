"""Where a recording is cut for the model: at pauses in its audio (or at a picture cut inside a
pause), and a chunk longer than the model's window into overlapping windows.

A chunk is read by the model on its own (its crops normalised together), so a cut never falls
inside a word. The plan is a list of ``(start, stop, keep_from, keep_to)`` frame ranges: each
model input, and the frames of it that are kept; the kept ranges tile the recording.
"""

from __future__ import annotations

import numpy as np

from avsr.inference.sync import speech_envelope
from avsr.io.face_align import true_runs

Window = tuple[int, int, int, int]  # (start, stop, keep_from, keep_to) in frames

PICTURE_CUT_FACTOR = 4.0  # a crop this many times further from the previous one than the file's median ...
PICTURE_CUT_MIN = 15.0  # ... and at least this far (mean grey levels) is a picture cut: another face or shot


def windows(frames: int, window: int, overlap: int) -> list[Window]:
    """Ranges covering ``frames``: each window keeps the frames at least ``overlap // 2`` from its
    inner edges, so the kept ranges tile the recording. The windows start at multiples of
    ``window - overlap``, and the last one ends with the recording."""
    if frames <= window:
        return [(0, frames, 0, frames)]
    hop = window - overlap
    starts = list(range(0, frames - window, hop)) + [frames - window]
    out = []
    for i, start in enumerate(starts):
        keep_from = 0 if i == 0 else out[-1][3]
        keep_to = frames if i == len(starts) - 1 else start + window - overlap // 2
        out.append((start, start + window, keep_from, keep_to))
    return out


def first_windows(at_least: int, window: int, overlap: int) -> list[Window]:
    """The windows :func:`windows` gives alike to every recording of at least ``at_least`` frames (a
    chunk whose end is not known yet): those that start before the last window can."""
    hop = window - overlap
    out = []
    for start in range(0, max(0, at_least - window), hop):
        out.append((start, start + window, out[-1][3] if out else 0, start + window - overlap // 2))
    return out


def moved(plan: list[Window], by: int) -> list[Window]:
    """``plan``'s windows ``by`` frames later (a chunk's windows placed where the chunk starts)."""
    return [(start + by, stop + by, keep_from + by, keep_to + by) for start, stop, keep_from, keep_to in plan]


def chunk_plan(frames: int, cuts: list[int], window: int, overlap: int) -> list[Window]:
    """The model inputs: the recording cut at ``cuts``, and any piece longer than ``window`` split into
    overlapping windows (see :func:`windows`)."""
    bounds = [0] + sorted(c for c in set(cuts) if 0 < c < frames) + [frames]
    return [w for a, b in zip(bounds, bounds[1:]) for w in moved(windows(b - a, window, overlap), a)]


def pause_runs(level: np.ndarray, min_pause_frames: int) -> list[tuple[int, int]]:
    """``[a, b)`` runs of at least ``min_pause_frames`` quiet frames inside the recording, from its
    frame levels ``level`` (dB, :func:`~avsr.inference.sync.speech_envelope`). Quiet is judged against
    the recording's own levels (5th and 95th percentile, "peak"): 25 dB under the peak, or within
    6 dB of the floor. A recording without a clear floor (loud noise or music throughout, silence)
    has none."""
    frames = len(level)
    if frames < 2 * min_pause_frames:
        return []
    quiet = quiet_frames(level)
    if quiet is None:
        return []
    return [(int(a), int(b)) for a, b in true_runs(quiet) if b - a >= min_pause_frames and 0 < a and b < frames]


def quiet_frames(level: np.ndarray) -> np.ndarray | None:
    """Which frames ``(T,) bool`` of a recording's levels ``level`` (dB) are quiet, as :func:`pause_runs` judges
    them; None for a recording without a clear floor."""
    floor, peak = np.percentile(level, [5, 95])
    if peak - floor < 15:
        return None
    return level < max(floor + 6.0, peak - 25.0)


def cut_threshold(change: np.ndarray) -> float:
    """The frame-to-frame change (:func:`picture_changes`) beyond which a step is a picture cut."""
    return max(PICTURE_CUT_MIN, PICTURE_CUT_FACTOR * float(np.median(change)))


def place_cut(a: int, b: int, change: np.ndarray | None, threshold: float = np.inf) -> int:
    """Where to cut the pause ``[a, b)``: its middle, or the frame of a picture cut inside it (a step
    of ``change`` beyond ``threshold``), so that no chunk holds two faces."""
    if change is not None:
        inside = change[a - 1: min(b, len(change))]  # the steps into frames a .. b
        if len(inside) and inside.max() > threshold:
            return a + int(np.argmax(inside))
    return (a + b) // 2


def pause_cuts(audio: np.ndarray, min_pause_frames: int, roi: np.ndarray | None = None) -> list[int]:
    """Frames at which to cut ``audio`` (16 kHz, 640 samples per frame): one in every run of at least
    ``min_pause_frames`` quiet frames (:func:`pause_runs`).

    The cut is the middle of the pause, unless the mouth crops ``roi`` ``(T, S, S)`` change there at
    once (a picture cut: another face or another shot, far beyond the frame-to-frame change the file
    usually has, :func:`cut_threshold`): then it is that frame. A chunk's crops are normalised
    together (``video_norm: utterance`` or ``utterance_rms``), and a few frames of another face in it
    (a pause cut in its middle where speech starts right after the picture cut) cost words.
    """
    runs = pause_runs(speech_envelope(audio), min_pause_frames)
    change = picture_changes(roi) if roi is not None and len(roi) > 2 and runs else None
    threshold = cut_threshold(change) if change is not None else np.inf
    return [place_cut(a, b, change, threshold) for a, b in runs]


def picture_changes(roi: np.ndarray, block: int = 256) -> np.ndarray:
    """Mean absolute grey-level change from each crop to the next ``(T - 1,)``, computed a block of
    frames at a time (an hour of crops as float32 at once would be 3.3 GB); 0 for a step into or out of a
    blank crop (no face read there: the face lost, or with several faces nobody speaking)."""
    out = np.empty(len(roi) - 1, np.float32)
    for start in range(0, len(roi) - 1, block):
        piece = roi[start: start + block + 1].astype(np.int16)
        blank = piece.max(axis=(1, 2)) == 0  # no face read: its loss or return is not another picture
        out[start: start + len(piece) - 1] = np.where(blank[1:] | blank[:-1], 0.0,
                                                      np.abs(np.diff(piece, axis=0)).mean(axis=(1, 2)))
    return out


def apart(cuts: list[int], edges: list[int], frames: int, shortest: int) -> list[int]:
    """The ``cuts`` (sorted) that leave no chunk shorter than ``shortest`` frames between them and the regions'
    ``edges`` (kept all): a pause in a region's padding, or a speaker decision that flickers for a few frames, would
    cut off a sliver, read as words once quiet is read after each chunk. Earlier cuts are kept first."""
    kept: list[int] = []
    for cut in cuts:
        before = max([0] + [e for e in edges if e <= cut] + kept[-1:])
        after = min([frames] + [e for e in edges if e >= cut])
        if cut - before >= shortest and after - cut >= shortest:
            kept.append(cut)
    return kept


def tail_frames(model, tail_s: float) -> int:
    """Frames of quiet each chunk ``model`` reads ends with (``TranscribeOptions.tail_s``); none for a model that
    reads whole utterances (an imported one)."""
    return 0 if getattr(model, "reads_utterances", False) else round(tail_s * model.preprocessing.fps)


def quiet_lacking(audio, frames: int) -> int:
    """Frames of quiet to add after ``audio`` (16 kHz samples, the end of a chunk) so that it ends with ``frames``
    of quiet: what its own quiet end (:func:`quiet_frames`) lacks; all of them where speech and floor cannot be
    told apart. A chunk that ends long after its speech gets none: 0.4 s added to every chunk cost single-face clips
    words in av mode (5.6 -> 7.2 % WER, docs/history/2026-12-07.md)."""
    quiet = quiet_frames(speech_envelope(audio))
    if quiet is None:
        return frames
    loud = np.flatnonzero(~quiet)
    return max(frames - (len(quiet) - (loud[-1] + 1 if len(loud) else 0)), 0)
