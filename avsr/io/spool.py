"""Frames kept on disk instead of in memory: the mouth crops and the audio of a long recording.

An hour of 96x96 crops is 830 MB, and an hour of 16 kHz float32 audio 230 MB. :class:`FrameSpool`
holds either in a temporary file and reads a range of frames (or samples) when asked
(``spool[start:stop]``, or ``spool[start:stop, rows, columns]``), so the memory a transcription
needs does not grow with the file's length. :class:`ShiftedFrames` reads
frames moved in time (a file's audio-video offset undone) without copying them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

SPOOL_PREFIX = "avsr-crops-"


def read_frames(key, length: int, read) -> np.ndarray:
    """``frames[key]`` for a ``key`` of one frame or a step-1 range of frames, optionally followed by
    an index into each frame, with ``read(start, stop)`` giving frames ``start:stop`` as an array."""
    rest = ()
    if isinstance(key, tuple):
        key, rest = key[0], key[1:]
    if isinstance(key, (int, np.integer)):
        index = int(key) + length if key < 0 else int(key)
        if not 0 <= index < length:
            raise IndexError(f"frame {key} of {length}")
        return read(index, index + 1)[0][rest] if rest else read(index, index + 1)[0]
    if not isinstance(key, slice) or key.step not in (None, 1):
        raise TypeError(f"frames are read by single frames or ranges (frames[a:b]), not by {key!r}")
    start, stop, _ = key.indices(length)
    block = read(start, max(start, stop))
    return block[(slice(None),) + rest] if rest else block


class FrameSpool:
    """``(T, H, W)`` uint8 frames in a temporary file (``tempfile.gettempdir()``), written in order
    with :meth:`write` and read by ranges. Other shapes and types too: ``FrameSpool(N, dtype=np.float32)``
    holds N audio samples. ``growable``: the length is not known in advance; it is the frames written
    so far (``FrameSpool(0, 96, 96, growable=True)``).

    The file is removed by :meth:`close` (or when the spool is garbage-collected). A spool sent to
    another process (pickled, as worker processes return their results) hands the file over: the
    receiving copy removes it, the sending one no longer does.
    """

    def __init__(self, frames: int, *frame_shape: int, dtype=np.uint8, growable: bool = False) -> None:
        self.shape = (frames, *frame_shape)
        self.dtype, self.growable = np.dtype(dtype), growable
        handle, self.path = tempfile.mkstemp(prefix=SPOOL_PREFIX, suffix=f".{self.dtype.str[1:]}")
        os.close(handle)
        self._owner, self._written = True, 0
        with open(self.path, "r+b") as file:
            file.truncate(frames * self._frame_bytes)
        self._file = open(self.path, "r+b")

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def _frame_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def write(self, frames: np.ndarray) -> None:
        """Append ``frames`` ``(n, ...)`` after those written so far."""
        frames = np.ascontiguousarray(frames, dtype=self.dtype)
        if self.growable and frames.shape[1:] == self.shape[1:] and self._written + len(frames) > len(self):
            self.shape = (self._written + len(frames), *self.shape[1:])  # the file grows as it is written
        if frames.shape[1:] != self.shape[1:] or self._written + len(frames) > len(self):
            raise ValueError(f"{frames.shape} frames do not fit a spool of {self.shape} holding {self._written}")
        self._file.seek(self._written * self._frame_bytes)
        self._file.write(frames.tobytes())
        self._written += len(frames)

    def __getitem__(self, key) -> np.ndarray:
        return read_frames(key, len(self), self._read)

    def _read(self, start: int, stop: int) -> np.ndarray:
        self._file.seek(start * self._frame_bytes)
        data = bytearray(self._file.read((stop - start) * self._frame_bytes))  # writable, as numpy's slices are
        return np.frombuffer(data, self.dtype).reshape(stop - start, *self.shape[1:])

    def truncate(self, frames: int) -> None:
        """Keep the first ``frames`` frames only."""
        if not 0 <= frames <= len(self):
            raise ValueError(f"cannot keep {frames} frames of a spool of {len(self)}")
        self._file.flush()
        self._file.truncate(frames * self._frame_bytes)
        self.shape, self._written = (frames, *self.shape[1:]), min(self._written, frames)

    def close(self) -> None:
        if getattr(self, "_file", None) is not None:
            self._file.close()
            self._file = None
            if self._owner:
                Path(self.path).unlink(missing_ok=True)

    def __del__(self) -> None:
        self.close()

    def __getstate__(self) -> dict:
        self._file.flush()
        self._owner = False  # the copy being made takes the file over
        return {"shape": self.shape, "dtype": self.dtype.str, "path": self.path, "written": self._written,
                "growable": self.growable}

    def __setstate__(self, state: dict) -> None:
        self.shape, self.path, self._written = state["shape"], state["path"], state["written"]
        self.dtype, self._owner, self.growable = np.dtype(state["dtype"]), True, state.get("growable", False)
        self._file = open(self.path, "r+b")


class ShiftedFrames:
    """``frames`` moved ``by`` frames later in time at the same length (negative: earlier), the clip's
    first or last frame held where the move reaches past its ends (they face the silence before or
    after the speech, as the silence padding of training does): frame ``t`` reads
    ``frames[clip(t - by, 0, T - 1)]``, a range at a time. Undoes a file's own audio-video offset."""

    def __init__(self, frames, by: int) -> None:
        self.frames, self.by = frames, by
        self.shape, self.dtype, self.ndim = frames.shape, frames.dtype, frames.ndim

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, key) -> np.ndarray:
        return read_frames(key, len(self), self._read)

    def _read(self, start: int, stop: int) -> np.ndarray:
        source = np.clip(np.arange(start, stop) - self.by, 0, len(self) - 1)
        if len(source) == 0:
            return self.frames[0:0]
        return self.frames[int(source[0]): int(source[-1]) + 1][source - source[0]]
