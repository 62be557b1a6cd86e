"""From espeak-ng phonemes to visemes, and from timed visemes to mouth parameters at 25 fps.

The viseme set (14 classes) follows the usual lip-reading groupings: phonemes that look alike on
the lips share a class (p/b/m; f/v; t/d/n/l; k/g/ng; ...), so the rendered video carries only
what a lip reader could see. Mouth movement is driven by the timings alone, with coarticulation
after Cohen & Massaro (1993): each segment has a target and a dominance function decaying
exponentially from its centre, and the mouth at any instant is the dominance-weighted mean of
the targets, so neighbouring segments blend and upcoming ones are anticipated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avsr.synth.tts import Phone


@dataclass(frozen=True)
class Viseme:
    """A mouth shape: ``open`` 0 (closed) to 1 (jaw wide), ``spread`` -1 (rounded) to 1 (wide),
    and ``dominance`` (how strongly the shape resists its neighbours)."""

    name: str
    open: float
    spread: float
    dominance: float


VISEMES = (
    Viseme("sil", 0.05, 0.0, 0.6),
    Viseme("p_b_m", 0.0, 0.0, 3.0),  # lips pressed: must be reached
    Viseme("f_v", 0.12, 0.1, 2.0),  # lower lip to upper teeth
    Viseme("th", 0.22, 0.1, 1.0),
    Viseme("t_d_n_l", 0.25, 0.1, 0.6),
    Viseme("k_g_ng", 0.3, 0.0, 0.5),
    Viseme("ch_j_sh", 0.2, -0.5, 1.5),  # protruded
    Viseme("s_z", 0.12, 0.4, 1.2),
    Viseme("r", 0.2, -0.35, 1.0),
    Viseme("w_uw", 0.15, -0.9, 1.6),  # rounded, close
    Viseme("vowel_open", 0.85, 0.15, 1.0),
    Viseme("vowel_mid", 0.5, 0.1, 0.8),
    Viseme("vowel_spread", 0.3, 0.8, 1.0),
    Viseme("vowel_rounded", 0.5, -0.7, 1.0),
)
VISEME_INDEX = {v.name: i for i, v in enumerate(VISEMES)}

# espeak-ng's English phoneme names (stress marks removed) -> viseme; diphthongs have two.
_GROUPS = {
    "sil": "_ _: _! _^ ||",
    "p_b_m": "p b m",
    "f_v": "f v",
    "th": "T D",
    "t_d_n_l": "t d n l t# t2 t[ d# n- l/ L",
    "k_g_ng": "k g N x h ? k# g#",
    "ch_j_sh": "S Z tS dZ",
    "s_z": "s z",
    "r": "r r- R",
    "w_uw": "w W w#",
    "vowel_open": "a aa A: A@ A a2 aI@",
    "vowel_mid": "E E2 E3 e@ @ @2 @5 @L 3 3: V a# I@ e",
    "vowel_spread": "i i: I I# I2 i@ i@3 j y",
    "vowel_rounded": "0 O O: O@ o@ O2 u: U U@ u oU@ 02",
}
PHONEME_TO_VISEME = {p: name for name, phonemes in _GROUPS.items() for p in phonemes.split()}
DIPHTHONGS = {
    "aI": ("vowel_open", "vowel_spread"), "aU": ("vowel_open", "vowel_rounded"),
    "eI": ("vowel_mid", "vowel_spread"), "oU": ("vowel_rounded", "w_uw"),
    "OI": ("vowel_rounded", "vowel_spread"), "aI3": ("vowel_open", "vowel_spread"),
    "aI2": ("vowel_open", "vowel_spread"),
    "aU@": ("vowel_open", "vowel_rounded"), "eI@": ("vowel_mid", "vowel_spread"),
}


@dataclass
class VisemeSegment:
    viseme: int  # index into VISEMES
    start_s: float
    end_s: float


def _strip(symbol: str) -> str:
    return symbol.replace("'", "").replace(",", "").replace("%", "").replace("=", "")


def viseme_of(symbol: str) -> tuple[str, ...]:
    """Viseme name(s) of an espeak-ng phoneme; unknown symbols fall back by their first letter."""
    symbol = _strip(symbol)
    if symbol in DIPHTHONGS:
        return DIPHTHONGS[symbol]
    if symbol in PHONEME_TO_VISEME:
        return (PHONEME_TO_VISEME[symbol],)
    for length in range(len(symbol) - 1, 0, -1):  # e.g. "t2#" -> "t2" -> "t"
        if symbol[:length] in PHONEME_TO_VISEME:
            return (PHONEME_TO_VISEME[symbol[:length]],)
    return ("vowel_mid",) if symbol[:1].lower() in "aeiou@3" else ("t_d_n_l",)


def phones_to_visemes(phones: list[Phone]) -> list[VisemeSegment]:
    """Timed visemes; a diphthong's span is split into its two shapes."""
    segments = []
    for phone in phones:
        names = viseme_of(phone.symbol)
        step = (phone.end_s - phone.start_s) / len(names)
        for k, name in enumerate(names):
            segments.append(VisemeSegment(VISEME_INDEX[name], phone.start_s + k * step, phone.start_s + (k + 1) * step))
    return segments


def mouth_track(segments: list[VisemeSegment], frame_count: int, fps: float = 25.0,
                rate_per_s: float = 28.0) -> np.ndarray:
    """Mouth parameters per video frame ``(T, 2)``: ``open`` and ``spread`` at each frame centre.

    ``rate_per_s`` sets how fast a segment's dominance decays away from its centre (per second).
    """
    if not segments:
        return np.tile([VISEMES[0].open, VISEMES[0].spread], (frame_count, 1))
    times = (np.arange(frame_count) + 0.5) / fps  # (T,)
    centres = np.array([(s.start_s + s.end_s) / 2 for s in segments])  # (S,)
    half = np.array([(s.end_s - s.start_s) / 2 for s in segments])
    visemes = [VISEMES[s.viseme] for s in segments]
    targets = np.array([[v.open, v.spread] for v in visemes])  # (S, 2)
    strength = np.array([v.dominance for v in visemes])  # (S,)
    # Full dominance inside the segment, exponential decay outside it.
    outside = np.maximum(np.abs(times[:, None] - centres[None]) - half[None], 0.0)  # (T, S)
    dominance = strength[None] * np.exp(-rate_per_s * outside)
    return dominance @ targets / np.maximum(dominance.sum(axis=1, keepdims=True), 1e-12)  # (T, 2)
