"""Decoded audio frames: resampled to mono float32 at one rate and aligned to the file's time zero.

:func:`~avsr.io.media.iter_media_chunks` decodes; :class:`AudioCollector` turns each PyAV audio
frame into samples as they come, the audio counterpart of :class:`~avsr.io.frames.FrameResampler`.
"""

from __future__ import annotations

import av
import numpy as np


class AudioCollector:
    """Resamples audio to mono float32 (the mean of the channels) and aligns it to time zero.

    The last ``HOLDBACK`` samples are held until the end, where samples past the stream's stated
    end (``end_s``, e.g. from an mp4 edit list) are dropped: that is the encoder's padding of the
    last frame (AAC pads to 1024 samples), not signal.
    """

    HOLDBACK = 4096

    def __init__(self, sample_rate: int, end_s: float | None = None) -> None:
        self.sample_rate = sample_rate
        self._resampler: av.AudioResampler | None = None
        self._skip = 0
        self._end = None if end_s is None else round(end_s * sample_rate)
        self._released = 0
        self._tail = np.zeros(0, np.float32)

    def _samples(self, frames: list[av.AudioFrame]) -> list[np.ndarray]:
        # Planar float frames are (channels, samples); average the channels rather than letting
        # FFmpeg's downmix scale stereo by sqrt(2).
        return [f.to_ndarray().mean(axis=0, dtype=np.float32) for f in frames]

    def push(self, frame: av.AudioFrame, time_s: float | None) -> list[np.ndarray]:
        out = []
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="fltp", layout=frame.layout.name, rate=self.sample_rate)
            offset = round((time_s or 0.0) * self.sample_rate)
            if offset > 0:
                out.append(np.zeros(offset, np.float32))  # audio starts after the video
            else:
                self._skip = -offset  # audio starts before time zero
        out += self._samples(self._resampler.resample(frame))
        return self._hold(self._trim(out))

    def finish(self) -> list[np.ndarray]:
        if self._resampler is None:
            return []
        tail = np.concatenate([self._tail] + self._trim(self._samples(self._resampler.resample(None))))
        if self._end is not None:
            excess = self._released + len(tail) - self._end
            if 0 < excess <= self.HOLDBACK:
                tail = tail[: len(tail) - excess]
        self._tail = np.zeros(0, np.float32)
        return [tail] if len(tail) else []

    def _hold(self, pieces: list[np.ndarray]) -> list[np.ndarray]:
        if not pieces:
            return []
        joined = np.concatenate([self._tail] + pieces)
        cut = max(len(joined) - self.HOLDBACK, 0)
        self._tail = joined[cut:]
        self._released += cut
        return [joined[:cut]] if cut else []

    def _trim(self, pieces: list[np.ndarray]) -> list[np.ndarray]:
        kept = []
        for piece in pieces:
            if self._skip:
                cut = min(self._skip, len(piece))
                piece, self._skip = piece[cut:], self._skip - cut
            if len(piece):
                kept.append(piece)
        return kept
