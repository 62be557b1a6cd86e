"""Additive noise at a target SNR measured on the speech, and the noise sources used for it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avsr.errors import OptionError

FRAME = 400  # 25 ms at 16 kHz, for measuring active speech


def active_power(speech: np.ndarray, threshold_db: float = -30.0) -> float:
    """Mean power of the frames of ``speech`` within ``threshold_db`` of its loudest frame.

    The SNR of noisy speech is defined on the speech while it is active, so leading and trailing
    silence does not inflate it.
    """
    frames = speech[: len(speech) // FRAME * FRAME].reshape(-1, FRAME)
    if len(frames) == 0:
        return float(np.mean(speech**2)) if len(speech) else 0.0
    power = (frames.astype(np.float64) ** 2).mean(axis=1)
    loudest = power.max()
    if loudest <= 0:
        return 0.0
    return float(power[power >= loudest * 10 ** (threshold_db / 10)].mean())


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech + g * noise`` with ``g`` set so that active-speech power / noise power = ``snr_db``.

    ``noise`` is tiled or cut to the speech's length. Returns float32 ``(N,)``.
    """
    if len(noise) == 0:
        raise OptionError("noise is empty; pass at least one sample of noise")
    noise = np.resize(noise.astype(np.float64), len(speech))
    noise_power = float((noise**2).mean())
    speech_power = active_power(speech)
    if noise_power <= 0 or speech_power <= 0:
        return speech.astype(np.float32)
    gain = np.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10)))
    return (speech + gain * noise).astype(np.float32)


def measured_snr_db(speech: np.ndarray, noisy: np.ndarray) -> float:
    """The SNR that :func:`mix_at_snr` achieved, from the clean and the noisy signal."""
    noise = noisy.astype(np.float64) - speech
    return float(10 * np.log10(active_power(speech) / (noise**2).mean()))


def white_noise(length: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(length).astype(np.float32)


def coloured_noise(length: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose power falls as ``1 / f**exponent`` (0 white, 1 pink, 2 brown), unit RMS.

    Shaped in the frequency domain; the DC bin is zeroed so the noise has no offset.
    """
    if length <= 0:
        return np.zeros(0, np.float32)
    spectrum = np.fft.rfft(rng.standard_normal(length))
    freqs = np.fft.rfftfreq(length)
    freqs[0] = np.inf
    noise = np.fft.irfft(spectrum / freqs ** (exponent / 2), n=length)
    return (noise / max(float(np.sqrt(np.mean(noise**2))), 1e-12)).astype(np.float32)


def room_tone(length: int, dbfs: float, rng: np.random.Generator) -> np.ndarray:
    """``(length,)`` float32 pink noise at ``dbfs`` RMS (dB full scale): the quiet of a room with
    no one speaking (``-inf``: digital silence)."""
    if dbfs == -np.inf:
        return np.zeros(length, np.float32)
    return (coloured_noise(length, 1.0, rng) * 10 ** (dbfs / 20)).astype(np.float32)


def babble_talkers(index: int, speakers: list[str], count: int, rng: np.random.Generator) -> list[int]:
    """Up to ``count`` utterances (indices) to sum into babble behind utterance ``index``, all by
    speakers other than its own: background talkers are other people. Training and evaluation draw
    them the same way (a same-speaker babble would be a harder, unrealistic condition, and one the
    model would never meet in evaluation)."""
    others = [i for i, speaker in enumerate(speakers) if speaker != speakers[index]]
    if not others:
        return []
    return [int(i) for i in rng.choice(others, size=min(count, len(others)), replace=False)]


def babble(others: list[np.ndarray], length: int, rng: np.random.Generator) -> np.ndarray:
    """Sum of other utterances, each at a random offset and at equal active power."""
    total = np.zeros(length, np.float64)
    for other in others:
        if len(other) == 0:
            continue
        power = active_power(other)
        if power <= 0:
            continue
        shifted = np.roll(np.resize(other, length), int(rng.integers(length)))
        total += shifted / np.sqrt(power)
    return total.astype(np.float32)


class NoiseFolder:
    """Noise recordings from a folder (e.g. MUSAN's noise or music part), read at 16 kHz mono."""

    def __init__(self, folder: str | Path) -> None:
        from avsr.io.inputs import expand_inputs

        self.paths = expand_inputs([str(folder)])
        if not self.paths:
            raise OptionError(f"{folder}: no audio files found; pass a folder of .wav/.flac/.mp3 noise recordings")
        self._cache: dict[Path, np.ndarray] = {}

    def sample(self, length: int, rng: np.random.Generator) -> np.ndarray:
        from avsr.io.media import load_media

        path = self.paths[int(rng.integers(len(self.paths)))]
        if path not in self._cache:
            self._cache[path] = load_media(path, video=False).audio
        audio = self._cache[path]
        start = int(rng.integers(max(len(audio) - length, 0) + 1))
        return np.resize(audio[start:start + length], length)
