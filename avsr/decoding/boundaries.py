"""Word boundaries moved onto the audio: the recognised words laid over one stretch of speech by its
energy envelope and spectral change.

The CTC alignment (:mod:`avsr.decoding.align`) gives the words and their order, but its spikes lag the
speech, more along an utterance (up to 0.4 s on a GRID sentence), so its times are a poor guide. Here the
stretch is cut into the words again from the audio alone, at 10 ms:

- its speech is the frames loud enough (``loud_fraction`` of the way from the stretch's floor to its
  peak, and no more than ``range_db`` below the peak); the first word starts at the first, the last ends
  at the last;
- a boundary is likely where the energy dips between two louder sides and where the spectrum changes
  (log-mel distance of the 30 ms before and after);
- the syllable nuclei are the peaks of the voiced band's energy (at least ``nucleus_prominence_db`` above
  the dips beside them, ``nucleus_gap_s`` apart);
- a dynamic programme over the words in order picks the boundaries: each word's share of the speech
  should be close to its share of the spoken length (its sounds, guessed from the spelling; a
  one-letter word is its name, "w" long, "e" short; the stretch's last word ``final_lengthening``
  longer), at a squared log-ratio cost, and hold as many nuclei as it has syllables (guessed from the
  spelling too), at ``syllable_weight`` per nucleus too many or too few, against the boundary scores;
  words keep their order and ``min_word_s``, and each boundary stays within ``window_s`` of the
  alignment's;
- a quiet run of at least ``pause_s`` at a word's edge is a pause: the word is trimmed off it.

Only the audio, the recognised words and (as that loose window) the alignment's times are used. Measured in
docs/history/2026-12-07.md ("Word timing from the energy envelope" and "Syllable nuclei";
``python -m bench.word_timing --refine off on``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from avsr.preprocessing import SAMPLE_RATE

HOP_S = 0.01  # the envelope's frame step
WINDOW_S = 0.025  # ... and its frame length
# Pairs of letters said as one sound (vowels, then consonants), and how long a one-letter word is said, in
# sounds (its name: "e" is one, "w" six).
DIGRAPHS = frozenset(("ee", "ea", "ai", "ay", "oo", "ou", "ow", "oa", "ei", "ey", "ie", "ue", "oi", "oy", "au", "aw",
                      "th", "sh", "ch", "ph", "ck", "ng", "wh", "gh", "qu"))
LETTER_LENGTH = {**dict.fromkeys("abcdgijklmnoprtvy", 2), "e": 1, "f": 3, "h": 3, "q": 3, "s": 3, "u": 3,
                 "w": 6, "x": 3, "z": 3}


@dataclass(frozen=True)
class BoundaryOptions:
    loud_fraction: float = 0.3  # a frame is speech this far from the stretch's floor (5th percentile) to its peak
    range_db: float = 25.0  # ... and at most this far below the peak
    final_lengthening: float = 1.5  # the last word of a stretch is said this much longer (phrase-final lengthening)
    duration_weight: float = 4.0  # cost per squared log-ratio of a word's frames to its expected share
    min_word_s: float = 0.05  # no word shorter
    window_s: float = 0.5  # a boundary stays this close to the alignment's (end of one word, start of the next)
    pause_s: float = 0.12  # a quiet run this long at a word's edge is a pause, not the word
    change_s: float = 0.03  # the spectral change compares this much audio either side of a frame
    dip_s: float = 0.06  # the energy dip compares a frame with the loudest this far either side
    syllable_weight: float = 1.0  # cost per syllable nucleus more or fewer in a word than its syllables
    nucleus_prominence_db: float = 6.0  # a syllable nucleus stands this far above the dips either side of it
    nucleus_gap_s: float = 0.08  # ... and this far from the next


def spoken_length(word: str) -> float:
    """How long ``word`` is said, in sounds, guessed from its English spelling: a lone letter is said as its
    name; otherwise a silent final e is dropped, a vowel or consonant digraph ("ee", "ou", "th", "ck") is one
    sound, "gh" none, "x" two, any other letter one."""
    letters = "".join(c for c in word.lower() if c.isalpha()) or "a"
    if len(letters) == 1:
        return float(LETTER_LENGTH.get(letters, 2))
    if len(letters) > 3 and letters.endswith("e") and letters[-2] not in "aeiou":
        letters = letters[:-1]
    sounds, i = 0, 0
    while i < len(letters):
        if letters[i:i + 2] in DIGRAPHS:
            sounds, i = sounds + (letters[i:i + 2] != "gh"), i + 2
        else:
            sounds, i = sounds + (2 if letters[i] == "x" else 1), i + 1
    return float(max(sounds, 1))


def syllables(word: str) -> int:
    """How many syllables ``word`` has, guessed from its English spelling: a lone letter is said as its name
    (one syllable, "w" three); otherwise the runs of vowel letters ("y" one of them), a silent final e
    aside ("one", "place"; but "table" keeps its "-le")."""
    letters = "".join(c for c in word.lower() if c.isalpha()) or "a"
    if len(letters) == 1:
        return 3 if letters == "w" else 1
    syllabic_le = len(letters) > 3 and letters.endswith("le") and letters[-3] not in "aeiouy"
    if len(letters) > 2 and letters.endswith("e") and letters[-2] not in "aeiouy":
        letters = letters[:-1]
    vowel = np.array([c in "aeiouy" for c in letters])
    return max(1, int(vowel[0]) + int((vowel[1:] & ~vowel[:-1]).sum()) + syllabic_le)


def nucleus_counts(log_mel: np.ndarray, options: BoundaryOptions, first: int = 0, last: int | None = None,
                   ) -> np.ndarray:
    """``(last - first + 1,)`` how many syllable nuclei lie before each frame of ``[first, last]``: the peaks of
    the energy of the voiced band (mel bands 2-19, about 100-1,300 Hz), smoothed over 70 ms."""
    from scipy.signal import find_peaks

    voiced = np.log(np.exp(log_mel[2:20]).sum(0) + 1e-8)
    kernel = np.hanning(7)
    smooth = np.convolve(voiced, kernel / kernel.sum(), mode="same")[first:last]
    peaks, _ = find_peaks(smooth, prominence=options.nucleus_prominence_db / (10 / np.log(10)),
                          distance=max(1, round(options.nucleus_gap_s / HOP_S)))
    counts = np.zeros(len(smooth) + 1)
    counts[peaks + 1] = 1
    return np.cumsum(counts)


def envelope(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, np.ndarray]:
    """``(F,)`` energy in dB and ``(40, F)`` log-mel spectra of ``audio`` ``(N,)``, a frame every ``HOP_S``
    (frame ``f`` is centred at ``f * HOP_S + WINDOW_S / 2``)."""
    import librosa

    hop, length = round(HOP_S * sample_rate), round(WINDOW_S * sample_rate)
    audio = np.asarray(audio, np.float32)
    if len(audio) < length:
        audio = np.pad(audio, (0, length - len(audio)))
    frames = np.lib.stride_tricks.sliding_window_view(audio, length)[::hop].astype(np.float64)  # (F, length)
    energy_db = 10 * np.log10((frames ** 2).mean(1) + 1e-10)
    n_fft = 1 << (length - 1).bit_length()
    power = np.abs(np.fft.rfft(frames * np.hanning(length), n_fft)) ** 2  # (F, n_fft / 2 + 1)
    mel = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=40) @ power.T  # (40, F)
    return energy_db, np.log(mel + 1e-8)


def boundary_score(energy_db: np.ndarray, log_mel: np.ndarray, options: BoundaryOptions, first: int = 0,
                   last: int | None = None) -> np.ndarray:
    """``(last - first,)`` how likely a word boundary is at each frame of ``[first, last)`` (the speech): the
    energy dip below both sides plus the spectral change, each scaled by its 99th percentile there (so that
    the quiet around the speech, and its onset, do not change the scale)."""
    frames, side = len(energy_db), max(1, round(options.dip_s / HOP_S))
    padded = np.pad(energy_db, side, mode="edge")
    left = np.lib.stride_tricks.sliding_window_view(padded[:frames + side], side + 1).max(1)
    right = np.lib.stride_tricks.sliding_window_view(padded[side:], side + 1).max(1)
    dip = np.minimum(left, right) - energy_db
    k = max(1, round(options.change_s / HOP_S))
    cumulative = np.concatenate([np.zeros((log_mel.shape[0], 1)), np.cumsum(log_mel, 1)], 1)
    change = np.zeros(frames)
    if frames > 2 * k:
        t = np.arange(k, frames - k + 1)
        before = (cumulative[:, t] - cumulative[:, t - k]) / k
        after = (cumulative[:, t + k] - cumulative[:, t]) / k
        change[t[t < frames]] = np.linalg.norm(before - after, axis=0)[t < frames]
    span = slice(first, frames if last is None else last)
    return sum(x[span] / (np.percentile(x[span], 99) + 1e-9) for x in (dip, change))


def _cut(expected: np.ndarray, score: np.ndarray, windows: list[tuple[int, int]], options: BoundaryOptions,
         said_syllables: np.ndarray | None = None, nuclei: np.ndarray | None = None) -> list[int] | None:
    """The boundaries ``[0, b_1, ..., F]`` of the words over frames ``[0, F)``: the dynamic programme of the
    module docstring (None where the words cannot fit). ``said_syllables`` are the words' syllables and
    ``nuclei`` ``(F + 1,)`` the nuclei before each frame (:func:`nucleus_counts`); without them, no syllable
    cost."""
    frames, words = len(score), len(expected)
    shortest = max(1, round(options.min_word_s / HOP_S))
    share = expected / expected.sum() * frames  # each word's expected frames
    cost = np.full((words + 1, frames + 1), np.inf)
    back = np.zeros((words + 1, frames + 1), int)
    cost[0, 0] = 0.0
    reached = (0, 0)  # the frames of the row before that were computed (elsewhere its cost is infinite)
    for i in range(1, words + 1):
        lo, hi = (windows[i - 1] if i < words else (frames, frames))
        first, last = max(lo, i * shortest), min(hi, frames - (words - i) * shortest)
        for t in range(first, last + 1):
            s = np.arange(reached[0], min(reached[1], t - shortest) + 1)
            s = s[np.isfinite(cost[i - 1, s])]
            if not len(s):
                continue
            said = t - s
            total = cost[i - 1, s] + options.duration_weight * np.log(said / share[i - 1]) ** 2
            if nuclei is not None:
                total = total + options.syllable_weight * np.abs(nuclei[t] - nuclei[s] - said_syllables[i - 1])
            best = int(np.argmin(total))
            cost[i, t] = total[best] - (score[t] if i < words else 0.0)
            back[i, t] = s[best]
        reached = (first, last)
    if not np.isfinite(cost[words, frames]):
        return None
    cuts = [frames]
    for i in range(words, 0, -1):
        cuts.append(int(back[i, cuts[-1]]))
    return cuts[::-1]


def refine_boundaries(words: list, audio: np.ndarray, offset_s: float = 0.0, sample_rate: int = SAMPLE_RATE,
                      options: BoundaryOptions = BoundaryOptions(), lengths: np.ndarray | None = None) -> list:
    """``words`` (:class:`~avsr.decoding.align.WordTiming`, in order, times in the recording) with their
    start and end moved onto ``audio`` ``(N,)``, the samples of their stretch, which starts at ``offset_s``.
    ``lengths`` (one per word, any unit) are how long each word is said where that is known (a synthesiser's
    own timing); by default they are guessed from the spelling (:func:`spoken_length`, the last word
    ``final_lengthening`` longer). Words are left as they are where the stretch has no speech or is too short
    for them."""
    if lengths is not None and len(lengths) != len(words):
        raise ValueError(f"{len(lengths)} lengths for {len(words)} words")
    if not words:
        return words
    energy_db, log_mel = envelope(audio, sample_rate)
    floor, peak = np.percentile(energy_db, 5), energy_db.max()
    loud = energy_db >= max(floor + options.loud_fraction * (peak - floor), peak - options.range_db)
    if peak - floor < 6.0 or not loud.any():  # no speech to go by
        return words
    first, last = int(np.flatnonzero(loud)[0]), int(np.flatnonzero(loud)[-1]) + 1
    shortest = max(1, round(options.min_word_s / HOP_S))
    if last - first < len(words) * shortest:
        return words
    begin_s = offset_s + WINDOW_S / 2 + first * HOP_S  # a boundary at frame f of the speech: its window's centre
    reach = round(options.window_s / HOP_S)
    windows = [(round((a.end_s - begin_s) / HOP_S) - reach, round((b.start_s - begin_s) / HOP_S) + reach)
               for a, b in zip(words, words[1:])]
    score = boundary_score(energy_db, log_mel, options, first, last)
    if lengths is None:
        expected = np.array([spoken_length(w.word) for w in words])
        expected[-1] *= options.final_lengthening
    else:
        expected = np.asarray(lengths, float)
    cuts = _cut(expected, score, windows, options, np.array([syllables(w.word) for w in words]),
                nucleus_counts(log_mel, options, first, last) if options.syllable_weight else None)
    if cuts is None:
        return words
    quiet, pause = ~loud[first:last], round(options.pause_s / HOP_S)
    out = []
    for word, a, b in zip(words, cuts, cuts[1:]):
        lead = int(np.argmin(quiet[a:b])) if not quiet[a:b].all() else 0  # quiet frames at the word's start
        tail = int(np.argmin(quiet[a:b][::-1])) if not quiet[a:b].all() else 0  # ... and at its end
        start = a + lead if lead >= pause else a
        end = b - tail if tail >= pause else b
        if end - start < shortest:
            start, end = a, b
        out.append(replace(word, start_s=begin_s + start * HOP_S, end_s=begin_s + end * HOP_S))
    return out
