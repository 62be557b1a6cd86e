"""The model read a file's windows while the rest of the file is still being cut.

Cutting the lip ROIs of a long file keeps the cores busy for most of its transcription, and the
model would otherwise start only when the last crop is cut. :class:`EarlyForward` takes the crops
piece by piece as :func:`~avsr.inference.prepare.prepare_input` cuts them, and runs the model, in
a thread of its own, over every group of windows whose place in the plan is settled: the groups
that :meth:`~avsr.inference.transcribe.Transcriber.recognise` would run, with the same inputs.

Recognition decides four things over the whole file before it reads it: where the speech regions
are (:mod:`avsr.inference.regions`), where the pauses are (the audio's own levels), whether a face
was found anywhere (the mode), and the audio-video offset. The early reading assumes what a file
usually turns out to be: the audio (read before the video) gives the regions and the pauses, the
model's mode is the one a file with a face gets, and no offset is undone. A
pause's cut is placed at a picture cut inside it against the frame-to-frame change seen so far.
Recognition then plans the file as before and takes a group's outputs from here only where the
group is exactly the same (the same windows, the same mode, no offset undone); the rest it runs
itself. So the transcript is the one the file gets without this, whatever the assumptions were.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Protocol

import numpy as np
import torch

from avsr.inference.chunks import (Window, apart, chunk_plan, cut_threshold, first_windows, moved, pause_runs,
                                   place_cut)
from avsr.inference.regions import find_regions, heard_or_loud, inside, read_spans, region_cuts
from avsr.inference.sync import speech_envelope
from avsr.io.vad import audio_speech_probability
from avsr.io.spool import read_frames
from avsr.preprocessing import VIDEO_FPS

HELD_GROUPS = 2  # crops waiting for the model beyond this many groups' worth: the early reading stops


def expected_mode(requested: str, modes: tuple[str, ...], has_audio: bool) -> str:
    """The mode :func:`~avsr.inference.transcribe.choose_mode` gives a file with a face in it."""
    if requested != "auto":
        return requested
    if modes == ("audio",):
        return "audio"
    return "av" if has_audio else "video"


class _Recent:
    """The frames of a stream from ``first`` on, held as the pieces they came in; read by ranges of
    absolute frame numbers (``recent[a:b]``, ``recent[a:b, rows, columns]``)."""

    def __init__(self) -> None:
        self.pieces: list[np.ndarray] = []
        self.first = self.count = 0  # the first frame held; the frames seen

    def append(self, frames: np.ndarray) -> None:
        self.pieces.append(frames)
        self.count += len(frames)

    def forget_before(self, frame: int) -> None:
        while self.pieces and self.first + len(self.pieces[0]) <= frame:
            self.first += len(self.pieces.pop(0))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, key) -> np.ndarray:
        return read_frames(key, self.count, self._read)

    def _read(self, start: int, stop: int) -> np.ndarray:
        if start < self.first:
            raise IndexError(f"frames from {start} were let go (held from {self.first})")
        parts, at = [], self.first
        for piece in self.pieces:
            lo, hi = max(start, at), min(stop, at + len(piece))
            if lo < hi:
                parts.append(piece[lo - at: hi - at])
            at += len(piece)
        return np.concatenate(parts) if len(parts) != 1 else parts[0]


class WindowReader(Protocol):
    """What :class:`EarlyForward` runs the model with: a :class:`~avsr.inference.transcribe.Transcriber`
    (its ``options``, its ``model``'s ``modes`` and ``preprocessing``, and :meth:`forward_group`)."""

    options: Any
    model: Any

    def forward_group(self, group: tuple[Window, ...], roi, face_found, audio, mode: str) -> list: ...


class EarlyForward:
    """Runs ``transcriber``'s model over a file's groups of windows as their crops arrive (see the
    module's text). ``audio``: the file's 16 kHz samples (an array or a spool), from its start and at
    least as long as the frames :meth:`feed` will bring, or the early reading stops where it ends;
    ``frames_hint``: the file's length in 25 Hz frames as its header tells it.

    :meth:`feed` (the preparing thread) hands over each piece of crops; :meth:`finish` stops the
    reading and waits for the group in hand; ``outputs`` then maps each group run, a tuple of
    windows, to the kept outputs :meth:`~avsr.inference.transcribe.Transcriber.forward_group` gave.
    A failure here only ends the early reading: recognition meets it again and reports it."""

    def __init__(self, transcriber: WindowReader, audio, frames_hint: int, has_audio: bool) -> None:
        o, spec = transcriber.options, transcriber.model.preprocessing
        self.transcriber, self.audio = transcriber, audio
        self.mode = expected_mode(o.mode, transcriber.model.modes, has_audio)
        self.window, self.overlap = round(o.window_s * spec.fps), round(o.overlap_s * spec.fps)
        self.batch_size = o.batch_size
        self.audio_frames = len(audio) // spec.samples_per_frame
        cut = has_audio and self.mode != "video"
        whole = getattr(transcriber.model, "reads_utterances", False)  # cut at the regions' edges only
        level = speech_envelope(audio)[:frames_hint] if cut else np.zeros(0)
        self.runs = pause_runs(level, round(o.cut_pause_s * VIDEO_FPS)) if cut and not whole else []
        # The speech regions the audio gives (in video mode, the lips' are not known yet: the whole file).
        heard = audio_speech_probability(audio, frames_hint) if cut else np.ones(frames_hint, np.float32)
        self.regions = find_regions(heard, o.vad_options if cut else None,
                                    getattr(transcriber.model, "max_input_s", None))
        self.edges = region_cuts(self.regions, frames_hint)
        self.frames_hint, self.pause = frames_hint, round(o.cut_pause_s * VIDEO_FPS)
        # Each chunk is read from lead_s before its speech, as recognition reads it (Transcriber._plan).
        self.heard = heard_or_loud(audio, heard) if cut and o.vad and not whole else None
        self.lead, self.threshold = round(o.lead_s * VIDEO_FPS), o.vad_threshold
        self.cuts: list[int] = []  # one per run of self.runs[: len(self.cuts)]
        self.roi, self.found = _Recent(), _Recent()
        self.change: list[np.ndarray] = []  # crop-to-crop changes (frame t -> t + 1) of the frames seen
        self._last: np.ndarray | None = None  # the last crop seen (1, S, S)
        self.groups_run = 0
        self.outputs: dict[tuple[Window, ...], list] = {}
        self.held_limit = HELD_GROUPS * self.batch_size * self.window
        self._pieces: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="avsr-early-forward", daemon=True)
        self._thread.start()

    def feed(self, piece) -> None:
        """Hand over the next piece of crops (a :class:`~avsr.io.lip_roi.LipRoi`)."""
        if self._stop.is_set():
            return
        if self._pieces.qsize() * max(len(piece), 1) > self.held_limit:  # the model has fallen behind
            self._stop.set()
            return
        self._pieces.put((piece.roi, piece.face_found))

    def finish(self) -> dict[tuple[Window, ...], list]:
        """Stop (the crops not read yet are left to recognition) and return ``outputs``."""
        self._stop.set()
        self._pieces.put(None)
        self._thread.join()
        self.roi = self.found = None
        return self.outputs

    def _work(self) -> None:
        try:
            with torch.no_grad():
                while not self._stop.is_set():
                    piece = self._pieces.get()
                    if piece is None:
                        return
                    self._take(*piece)
                    self._run_ready()
        except Exception:  # met again, and reported with the file's name, when the file is recognised
            self._stop.set()

    def _take(self, crops: np.ndarray, found: np.ndarray) -> None:
        steps = (crops if self._last is None else np.concatenate([self._last, crops])).astype(np.int16)
        self.change.append(np.abs(np.diff(steps, axis=0)).mean(axis=(1, 2)).astype(np.float32))
        self._last = crops[-1:] if len(crops) else self._last
        self.roi.append(crops)
        self.found.append(found)

    def _settled(self) -> tuple[list[Window], int]:
        """The windows whose bounds no cut still to come can change, in plan order, and the first
        frame a window not among them can start at."""
        seen = self.roi.count
        if len(self.cuts) < len(self.runs) and self.runs[len(self.cuts)][1] < seen:
            change = np.concatenate(self.change)
            threshold = cut_threshold(change)
            while len(self.cuts) < len(self.runs) and self.runs[len(self.cuts)][1] < seen:
                self.cuts.append(place_cut(*self.runs[len(self.cuts)], change, threshold))
        # The chunks up to the last cut known (a pause's, or a region's edge before the next pause) are
        # settled; the one after it ends at the next pause (or the file's end) at the earliest.
        upcoming = self.runs[len(self.cuts)][0] if len(self.cuts) < len(self.runs) else None
        cuts = sorted(set(apart(self.cuts, self.edges, self.frames_hint, self.pause))
                      | {e for e in self.edges if upcoming is None or e < upcoming})
        spans = self.regions
        if self.heard is not None:  # the chunk still open is read from its first speech on, as it will be
            spans = read_spans(self.regions, cuts, self.heard, self.threshold, self.lead)
            cuts = sorted(set(cuts) | {a for a, _ in spans if upcoming is None or a < upcoming})
        open_from = cuts[-1] if cuts else 0
        plan = chunk_plan(open_from, cuts, self.window, self.overlap) if cuts else []
        at_least = (upcoming if upcoming is not None else seen) - open_from
        opened = moved(first_windows(at_least, self.window, self.overlap), open_from)
        plan = [window for window in plan + opened if inside(window, spans)]
        return plan, opened[-1][0] if opened else open_from

    def _run_ready(self) -> None:
        plan, later = self._settled()
        limit = min(self.roi.count, self.audio_frames)
        size = self.batch_size
        while len(plan) >= (self.groups_run + 1) * size and not self._stop.is_set():
            group = tuple(plan[self.groups_run * size: (self.groups_run + 1) * size])
            if max(stop for _, stop, _, _ in group) > limit:
                break
            self.outputs[group] = self.transcriber.forward_group(group, self.roi, self.found, self.audio, self.mode)
            self.groups_run += 1
        pending = plan[self.groups_run * size:]
        keep_from = min([later] + [start for start, _, _, _ in pending])
        self.roi.forget_before(keep_from)
        self.found.forget_before(keep_from)
        if self.roi.count - self.roi.first > self.held_limit:  # a long stretch with no settled window
            self._stop.set()
