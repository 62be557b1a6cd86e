"""A transcript as files: ``.txt``, ``.json``, ``.srt`` and ``.vtt``, each written atomically.

Subtitle cues follow the words: a cue ends at a pause, or before it would run past ``max_cue_s``
seconds or ``max_cue_chars`` characters (two lines of about 42, the usual broadcast limit), and where
the face speaking changes. With several faces speaking, a cue whose face is not the previous cue's
starts with ``[face N]``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from avsr.errors import OptionError
from avsr.files import write_text_atomic

if TYPE_CHECKING:
    from avsr.inference.transcribe import Transcript, Word

FORMATS = ("txt", "json", "srt", "vtt")


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str
    face: int | None = None  # the id of the face speaking it (None: no face read)


def _face(word: Word) -> int | None:
    face = getattr(word, "face", None)
    return None if face is None else face["id"]


def subtitle_cues(transcript: Transcript, max_cue_s: float = 5.0, max_cue_chars: int = 84,
                  pause_s: float = 0.5) -> list[Cue]:
    """Group the words of ``transcript`` into subtitle cues (never across segments)."""
    cues = []
    for segment in transcript.segments:
        current: list[Word] = []
        for word in segment.words:
            if current:
                text = " ".join(w.word for w in current + [word])
                faces = _face(word), _face(current[-1])
                if (word.start_s - current[-1].end_s >= pause_s or word.end_s - current[0].start_s > max_cue_s
                        or len(text) > max_cue_chars or None not in faces and faces[0] != faces[1]):
                    cues.append(_cue(current))
                    current = []
            current.append(word)
        if current:
            cues.append(_cue(current))
    if len({cue.face for cue in cues} - {None}) > 1:  # several faces speak: say who at each change
        speaker = None
        for index, cue in enumerate(cues):
            if cue.face is not None and cue.face != speaker:
                cues[index] = replace(cue, text=f"[face {cue.face}] {cue.text}")
                speaker = cue.face
    return cues


def _cue(words: list[Word]) -> Cue:
    faces = [face for face in map(_face, words) if face is not None]
    return Cue(words[0].start_s, words[-1].end_s, " ".join(w.word for w in words),
               max(set(faces), key=faces.count) if faces else None)


def _clock(seconds: float, separator: str) -> str:
    millis = max(round(round(seconds, 3) * 1000), 0)  # the millisecond the .json states (round(x, 3))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def to_srt(cues: list[Cue]) -> str:
    blocks = [f"{i}\n{_clock(c.start_s, ',')} --> {_clock(c.end_s, ',')}\n{c.text}\n" for i, c in enumerate(cues, 1)]
    return "\n".join(blocks)


def to_vtt(cues: list[Cue]) -> str:
    blocks = [f"{_clock(c.start_s, '.')} --> {_clock(c.end_s, '.')}\n{c.text}\n" for c in cues]
    return "\n".join(["WEBVTT\n"] + blocks)


def _short_clock(seconds: float) -> str:
    """``MM:SS.mmm``, or ``H:MM:SS.mmm`` from an hour on (as whisper prints segments)."""
    clock = _clock(seconds, ".")
    return clock[3:] if clock.startswith("00:") else clock.lstrip("0")


def segment_lines(transcript: Transcript) -> list[str]:
    """``[start --> end] text``, one line per segment, for the terminal."""
    return [f"[{_short_clock(s.start_s)} --> {_short_clock(s.end_s)}] {s.text}" for s in transcript.segments]


def render(transcript: Transcript, fmt: str) -> str:
    if fmt == "txt":
        return transcript.text + "\n"
    if fmt == "json":
        return json.dumps(transcript.to_dict(), indent=1, allow_nan=False) + "\n"  # never bare NaN
    if fmt == "srt":
        return to_srt(subtitle_cues(transcript))
    if fmt == "vtt":
        return to_vtt(subtitle_cues(transcript))
    raise OptionError(f"format {fmt!r}; use one of {', '.join(FORMATS)}")


def write_outputs(transcript: Transcript, stem: Path, formats: tuple[str, ...]) -> list[Path]:
    """Write ``<stem>.<fmt>`` for each format, each atomically; the ``.json`` goes last, as it marks the
    set complete for a resumed batch. If one cannot be written (a full disk), those written before it go too."""
    paths = []
    try:
        for fmt in sorted(formats, key=lambda f: f == "json"):
            path = stem.with_name(f"{stem.name}.{fmt}")
            write_text_atomic(path, render(transcript, fmt))
            paths.append(path)
    except BaseException:
        for path in paths:
            path.unlink(missing_ok=True)
        raise
    return paths
