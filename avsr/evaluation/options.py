"""What ``avsr evaluate`` runs: options checked when they are made. A light module (no torch), so the
CLI builds its parser with these defaults without loading the evaluation itself."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from avsr.errors import OptionError
from avsr.inference.options import MAX_BEAM
from avsr.preprocessing import DETECT_EVERY, FRAME_S

FACE_GAP_PLACES = ("start", "middle", "end", "every-second")
MAX_FACE_GAP_S = 1.0  # a gap of a second in every second is a clip with no face at all
MAX_PAD_S = 5.0  # the longest lead-in or trail
DECODERS = ("auto", "ctc", "joint")  # as avsr transcribe's (avsr.inference.options)
ROOM_TONE_DBFS = (-100.0, -20.0)  # the levels a room tone may be given at, RMS in dB full scale
SNR_DB_RANGE = (-40.0, 60.0)  # -40: the noise 10,000 times the speech's power; 60: no model tells it from clean
MAX_OFFSET_MS = 2000  # 50 frames: past a short clip's length, the picture holds one frame throughout
MAX_SEED = 2**32 - 1  # numpy's seeds are unsigned 32-bit numbers


def offset_frames(offset_ms: int) -> int:
    """An audio-video offset in ms as whole 25 fps frames; an OptionError for one that is not."""
    frames = offset_ms / 1000 / FRAME_S
    if abs(frames - round(frames)) > 1e-6:
        raise OptionError(f"--av-offset-ms {offset_ms}: not a whole number of 25 fps frames; use multiples of "
                          f"{round(1000 * FRAME_S)} ms")
    return round(frames)


def whole_frames(seconds: float, option: str, high_s: float) -> int:
    """``seconds`` as whole 25 fps frames; an OptionError naming ``option`` for a value that is not a
    finite number of seconds in 0..``high_s``, or not a whole number of frames."""
    if not math.isfinite(seconds) or not 0 <= seconds <= high_s:
        raise OptionError(f"{option} {seconds:g}: use seconds from 0 to {high_s:g}")
    frames = seconds / FRAME_S
    if abs(frames - round(frames)) > 1e-6:
        raise OptionError(f"{option} {seconds:g}: not a whole number of 25 fps frames; use multiples of {FRAME_S:g} s")
    return round(frames)


@dataclass(frozen=True)
class Perturbation:
    """How each test utterance is made harder before it is scored, beside noise and offsets.

    The lead-in and trail lengthen the clip at its start and end: the first (last) crop is held
    over them and the sound is room tone. Noise is mixed over the lengthened clip; the face gaps are
    cut after the video is shifted by an offset."""

    face_gap_s: float = 0.0  # each gap in the face track, seconds (whole 25 fps frames, up to 1 s); 0: none
    face_gap_at: str = "every-second"  # where: start, middle or end of the clip, or at the end of each second
    lead_in_s: float = 0.0  # seconds added before the speech (whole frames, up to 5 s)
    trail_s: float = 0.0  # seconds added after it
    # The lead-in's and trail's sound: None, the clip's own quietest stretch of that length (as an
    # offset copy is padded); -inf, digital silence (as training pads); a level, pink noise at that
    # RMS in dB full scale (-100 to -20), seeded per utterance.
    room_tone_dbfs: float | None = None

    def __post_init__(self) -> None:
        if self.face_gap_at not in FACE_GAP_PLACES:
            raise OptionError(f"--face-gap-at {self.face_gap_at}: use {', '.join(FACE_GAP_PLACES)}")
        whole_frames(self.face_gap_s, "--face-gap-s", MAX_FACE_GAP_S)
        whole_frames(self.lead_in_s, "--lead-in-s", MAX_PAD_S)
        whole_frames(self.trail_s, "--trail-s", MAX_PAD_S)
        level = self.room_tone_dbfs
        if level is not None and level != -math.inf and not ROOM_TONE_DBFS[0] <= level <= ROOM_TONE_DBFS[1]:
            low, high = ROOM_TONE_DBFS
            raise OptionError(f"--room-tone-dbfs {level:g}: use a level from {low:g} to {high:g} dBFS, clip (the "
                              "clip's own quietest sound) or zero (digital silence)")

    @property
    def face_gap_frames(self) -> int:
        return whole_frames(self.face_gap_s, "--face-gap-s", MAX_FACE_GAP_S)

    @property
    def lead_in_frames(self) -> int:
        return whole_frames(self.lead_in_s, "--lead-in-s", MAX_PAD_S)

    @property
    def trail_frames(self) -> int:
        return whole_frames(self.trail_s, "--trail-s", MAX_PAD_S)

    def describe(self) -> str:
        """One line saying what is applied ("" when nothing is), for the top of a printed table."""
        parts = []
        if self.face_gap_frames:
            where = "in every second" if self.face_gap_at == "every-second" else f"at the {self.face_gap_at}"
            parts.append(f"face gaps of {self.face_gap_s:g} s {where}")
        if self.lead_in_frames or self.trail_frames:
            tone = {None: "the clip's quietest sound", -math.inf: "digital silence"}.get(
                self.room_tone_dbfs, f"room tone at {self.room_tone_dbfs:g} dBFS")
            parts.append(f"lead-in {self.lead_in_s:g} s, trail {self.trail_s:g} s of {tone}")
        return "; ".join(parts)


def parse_room_tone(value: str) -> float | None:
    """``--room-tone-dbfs``: ``clip`` -> None, ``zero`` -> -inf, a number -> itself (checked by
    :class:`Perturbation`)."""
    if value in ("clip", "zero"):
        return None if value == "clip" else -math.inf
    try:
        level = float(value)
    except ValueError:
        level = math.nan
    if not math.isfinite(level):
        raise OptionError(f"--room-tone-dbfs {value}: use a level in dBFS, clip or zero")
    return level


@dataclass(frozen=True)
class EvaluateOptions:
    """What ``avsr evaluate`` runs. ``snrs``: dB values, ``None`` for clean. ``noises``: ``white``,
    ``babble`` or ``NAME=DIR``. ``output_dir``: write a sweep (tables, plots) there; without it one
    model's table is printed. ``detect_every``: landmarker stride when a raw manifest is prepared.
    ``av_offsets_ms``: the video shifted against the audio by each (positive: it lags), in whole
    25 fps frames (multiples of 40 ms). ``av_sync``: ``attention`` undoes each utterance's offset as
    an ``xattn`` model's attention reads it, before its ``av`` rows are scored (``off``: as it is).
    ``perturbation``: face gaps, lead-in and trail applied to every utterance. ``decoder``: ``auto`` (the
    model's own: CTC for avsr's models, joint CTC/attention for an imported auto_avsr model), ``ctc`` or
    ``joint``; ``beam_size`` None: the decoder's default (CTC: greedy; joint: the model's beam). ``vad``: a clip
    longer than the model reads (``max_input_s``) or given a lead-in or trail is read through its speech regions
    as ``avsr transcribe`` reads a file (:mod:`avsr.inference.regions`); off, it is read whole (a clip over the
    model's longest input is still cut, at its least speech-like frames)."""

    snrs: tuple[float | None, ...] = (None,)
    noises: tuple[str, ...] = ("white",)
    modes: tuple[str, ...] = ("av", "audio", "video")
    seed: int = 0
    beam_size: int | None = None
    lexicon: str | None = None
    output_dir: str | None = None
    detect_every: int = DETECT_EVERY
    av_offsets_ms: tuple[int, ...] = (0,)
    av_sync: str = "off"
    perturbation: Perturbation = field(default_factory=Perturbation)
    decoder: str = "auto"
    vad: bool = True

    def __post_init__(self) -> None:
        if self.decoder not in DECODERS:
            raise OptionError(f"--decoder {self.decoder}: use {', '.join(DECODERS)}")
        if self.av_sync not in ("off", "attention"):
            raise OptionError(f"--av-sync {self.av_sync}: use off or attention")
        for offset in self.av_offsets_ms:
            if not -MAX_OFFSET_MS <= offset <= MAX_OFFSET_MS:
                raise OptionError(f"--av-offset-ms {offset}: use -{MAX_OFFSET_MS} to {MAX_OFFSET_MS} ms")
            offset_frames(offset)
        low, high = SNR_DB_RANGE
        for snr in self.snrs:
            if snr is not None and not low <= snr <= high:  # also false for NaN
                raise OptionError(f"--snr-db {snr:g}: use a number from {low:g} to {high:g} dB, or clean")
        if not 0 <= self.seed <= MAX_SEED:
            raise OptionError(f"--seed {self.seed}: use a whole number from 0 to {MAX_SEED}")
        for noise in self.noises:
            name, _, folder = noise.partition("=")
            if folder and not Path(folder).is_dir():
                raise OptionError(f"--noise {noise}: {folder} is not a folder; pass NAME=DIR with a folder of noise "
                                  "recordings")
            if not folder and name not in ("white", "babble"):
                raise OptionError(f"--noise {noise}: use white, babble or NAME=DIR")
        if self.beam_size is not None and not 1 <= self.beam_size <= MAX_BEAM:
            raise OptionError(f"--beam-size {self.beam_size}: use 1 (greedy) to {MAX_BEAM}")


def parse_snrs(values: list[str]) -> tuple[float | None, ...]:
    """``["clean", "0", "-5"]`` -> ``(None, 0.0, -5.0)``."""
    try:
        return tuple(None if value == "clean" else float(value) for value in values)
    except ValueError:
        raise OptionError(f"--snr-db takes numbers or 'clean', got {' '.join(values)}") from None
