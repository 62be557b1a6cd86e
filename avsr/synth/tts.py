"""Speech synthesis with espeak-ng (through the ``espeakng-loader`` wheel), with exact timings.

The C API is driven through ctypes in synchronous mode: the callback receives the PCM samples
together with WORD and PHONEME events that carry their sample index, so every phoneme's start is
known to the sample. espeak-ng keeps global state: use one :class:`Synthesizer` per process.
"""

from __future__ import annotations

import ctypes
import os
import zlib
from dataclasses import dataclass, field

import numpy as np

from avsr.errors import AvsrError
from avsr.synth import ENGLISH_VOICES, VARIANTS  # noqa: F401 (VARIANTS is part of this module's API)
from avsr.text import Word

# espeak_EVENT_TYPE values (speak_lib.h).
_EVENT_END_OF_LIST, _EVENT_WORD, _EVENT_END, _EVENT_PHONEME = 0, 1, 5, 7
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS, _INITIALIZE_DONT_EXIT = 0x0001, 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8, _ENDPAUSE = 1, 0x1000
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4



class VoiceError(AvsrError, ValueError):
    """An unknown espeak-ng voice or variant."""


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
        ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p), ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Voice:
    """An espeak-ng speaker: base voice, variant, speaking rate (words/min) and pitch (0-100)."""

    name: str = "en-us"
    variant: str | None = None
    rate_wpm: int = 160
    pitch: int = 50
    pitch_range: int = 50

    def __post_init__(self) -> None:
        if not 80 <= self.rate_wpm <= 450:
            raise VoiceError(f"rate_wpm={self.rate_wpm} is outside espeak-ng's 80-450 words/min")
        if not 0 <= self.pitch <= 100 or not 0 <= self.pitch_range <= 100:
            raise VoiceError(f"pitch={self.pitch} and pitch_range={self.pitch_range} must be in 0-100")

    @property
    def espeak_name(self) -> str:
        return self.name if self.variant is None else f"{self.name}+{self.variant}"


@dataclass
class Phone:
    """A phoneme as espeak-ng names it, with its start and end in seconds."""

    symbol: str
    start_s: float
    end_s: float


@dataclass
class Utterance:
    """Synthesised speech: mono float32 ``(N,)`` at ``sample_rate``, with word and phone timings."""

    audio: np.ndarray
    sample_rate: int
    words: list[Word] = field(default_factory=list)
    phones: list[Phone] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate


class Synthesizer:
    """espeak-ng in synchronous mode; deterministic: the same text and voice give the same samples.

    espeak-ng keeps state between utterances in static variables (e.g. the phase of the glottal
    pulse), which shifts samples and phone times from call to call. So each process loads its own
    copy of the library and reloads it (about 3 ms) before every utterance. Every
    ``Synthesizer()`` in a process is the same object; it is not thread-safe.
    """

    _instance: "Synthesizer | None" = None

    def __new__(cls) -> "Synthesizer":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
            cls._instance._setup()
        return cls._instance

    def _setup(self) -> None:
        import espeakng_loader

        self._library_path = ""
        self._data_path = espeakng_loader.get_data_path().encode()
        self._callback = _CALLBACK(self._collect)  # kept alive: the library holds the pointer
        self._lib = None
        self._samples: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int, bytes]] = []
        self._load()

    def _load(self) -> None:
        """(Re)load the private library copy, so that every static variable starts afresh."""
        import _ctypes

        if self._lib is not None:
            self._lib.espeak_Terminate()
            _ctypes.dlclose(self._lib._handle)
        if not os.path.exists(self._library_path):  # the first time, or its folder went with a run's (avsr.tmp)
            self._library_path = self._copy_library()
        lib = ctypes.CDLL(self._library_path)
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, self._data_path,
                                                 _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT)
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak-ng failed to initialise with data at {self._data_path.decode()}")
        lib.espeak_SetSynthCallback(self._callback)
        self._lib = lib

    @staticmethod
    def _copy_library() -> str:
        """A private copy of the library, in a temporary folder removed at exit."""
        import atexit
        import shutil
        import tempfile

        import espeakng_loader

        folder = tempfile.mkdtemp(prefix="avsr-espeak-")
        atexit.register(shutil.rmtree, folder, True)
        return shutil.copy(espeakng_loader.get_library_path(), folder)

    def _collect(self, wav, count: int, events) -> int:
        if count > 0:
            self._samples.append(np.ctypeslib.as_array(wav, (count,)).copy())
        i = 0
        while events[i].type != _EVENT_END_OF_LIST:
            e = events[i]
            symbol = e.id.string if e.type == _EVENT_PHONEME else b""
            self._events.append((e.type, e.text_position, e.length, e.sample, symbol))
            i += 1
        return 0

    def check_voice(self, voice: Voice) -> None:
        """Raise :class:`VoiceError` if espeak-ng does not know the voice."""
        self._set_voice(voice)

    def _set_voice(self, voice: Voice) -> None:
        if self._lib.espeak_SetVoiceByName(voice.espeak_name.encode()) != 0:
            raise VoiceError(f"unknown espeak-ng voice {voice.espeak_name!r}; use one of "
                             f"{', '.join(ENGLISH_VOICES)} with an optional +variant ({', '.join(VARIANTS)})")
        self._lib.espeak_SetParameter(_PARAM_RATE, voice.rate_wpm, 0)
        self._lib.espeak_SetParameter(_PARAM_PITCH, voice.pitch, 0)
        self._lib.espeak_SetParameter(_PARAM_RANGE, voice.pitch_range, 0)

    def synthesize(self, text: str, voice: Voice = Voice()) -> Utterance:
        """Speak ``text``; words and phones are timed from the engine's own events."""
        self._load()
        self._set_voice(voice)
        self._samples, self._events = [], []
        # Voices with breath or roughness draw noise from espeak-ng's generator; unseeded it falls back
        # to the C library's rand(), whose state depends on whatever else ran in the process, so the
        # same text could come out different from one process to the next.
        self._lib.espeak_ng_SetRandSeed(zlib.crc32(f"{voice.espeak_name}|{text}".encode()))
        encoded = text.encode("utf-8")
        buffer = ctypes.create_string_buffer(encoded)
        status = self._lib.espeak_Synth(buffer, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE,
                                        None, None)
        self._lib.espeak_Synchronize()
        if status != 0 or not self._samples:
            raise RuntimeError(f"espeak-ng could not speak {text!r} (status {status})")
        audio = np.concatenate(self._samples).astype(np.float32) / 32768.0
        return Utterance(audio, self.sample_rate, *_timings(self._events, text, len(audio), self.sample_rate))


def _timings(events, text: str, total: int, sample_rate: int) -> tuple[list[Word], list[Phone]]:
    """Words and phones from the event list.

    A phone ends where the next one starts. Words are the space-separated words of ``text``; each
    WORD event is placed in the word holding its character position (espeak-ng may split a word,
    e.g. at an apostrophe), and a word spans the phones from its first event up to the next word's
    (WORD events run slightly ahead of the sound, so a word starts at its first phone). Pauses
    (``_`` phones) belong to no word.
    """
    # Byte offset of each word of the text -> its index.
    starts, offset = [], 0
    for token in text.split(" "):
        if token:
            starts.append((len(text[:offset].encode("utf-8")), token))
        offset += len(token) + 1
    phones: list[Phone] = []
    owners: list[int] = []  # word index per phone, -1 before the first word
    current = -1
    for kind, position, _, sample, symbol in events:
        if kind == _EVENT_WORD:
            byte = position - 1  # espeak counts from 1
            current = max(i for i, (start, _) in enumerate(starts) if start <= byte) if starts else -1
        elif kind == _EVENT_PHONEME:
            phones.append(Phone(symbol.decode("utf-8", "replace"), sample / sample_rate, 0.0))
            owners.append(current)
    for phone, following in zip(phones, phones[1:] + [None]):
        phone.end_s = following.start_s if following else total / sample_rate
    words = []
    for index, (_, token) in enumerate(starts):
        inside = [p for p, owner in zip(phones, owners) if owner == index and not p.symbol.startswith("_")]
        if inside:
            words.append(Word(token, inside[0].start_s, inside[-1].end_s))
    return words, phones
