"""Where the speech is: voice activity per 25 Hz frame, from the audio and from the lips.

The audio's is Silero VAD (MIT; its ONNX model ships inside the ``silero-vad`` wheel, so it runs
offline), run as one ONNX Runtime call per 16 s block, about 2-3 ms per second of audio. Chosen over
WebRTC's VAD on real recordings: Silero flags 0 % of music and of white noise at -20 dBFS as speech and
83 % of a LibriVox reading; WebRTC's (aggressiveness 3) flags 98 % of the music and 100 % of the noise
(``python -m bench.word_timing --vad-choice``; RESULTS.md, "Speech segmentation"). The lips' is the
motion of the mouth (:func:`avsr.inference.sync.lip_activity`), for files whose audio is missing or drowned.

:func:`speech_regions` turns a ``(T,)`` speech probability into padded ``[start, stop)`` frame ranges.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from avsr.errors import OptionError
from avsr.preprocessing import SAMPLES_PER_FRAME, VAD_THRESHOLD, VIDEO_FPS

SILERO_FRAME = 512  # samples per Silero VAD frame (32 ms at the project's 16 kHz; the sequence model is the 16 kHz one)
SILERO_CONTEXT = 64  # samples of the frame before, prefixed to each frame as the streaming model does
SILERO_BLOCK = 512  # frames per ONNX call (16.4 s)


@dataclass(frozen=True)
class VadOptions:
    """How a speech probability becomes speech regions."""

    threshold: float = VAD_THRESHOLD  # a frame whose speech probability reaches this is speech
    min_speech_s: float = 0.1  # shorter bursts of speech frames are dropped (clicks, a cough's edge)
    min_pause_s: float = 0.3  # shorter pauses stay inside a region (a breath between words)
    pad_s: float = 0.2  # kept on each side of a region: the model reads a word's onset in its context
    # A longer region is cut at its least speech-like frame (a pause between words), again until every piece is
    # at most this long: a model trained on utterances of up to ~20 s reads no longer ones. None: no limit.
    max_region_s: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise OptionError(f"vad threshold={self.threshold}: use a probability between 0 and 1")
        for name in ("min_speech_s", "min_pause_s", "pad_s"):
            value = getattr(self, name)
            if not 0.0 <= value <= 10.0:
                raise OptionError(f"vad {name}={value}: use 0 to 10 seconds")
        if self.max_region_s is not None and not 2.0 <= self.max_region_s <= 3600.0:
            raise OptionError(f"vad max_region_s={self.max_region_s}: use 2 to 3600 seconds, or None")


@functools.cache
def _silero_session():
    """The Silero VAD sequence model in an ONNX Runtime session on one thread (made once per process)."""
    from importlib import resources

    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = options.intra_op_num_threads = 1
    model = resources.files("silero_vad.data").joinpath("silero_vad_16k_sequence.onnx")
    return onnxruntime.InferenceSession(model.read_bytes(), sess_options=options,
                                        providers=["CPUExecutionProvider"])


def silero_probability(audio) -> np.ndarray:
    """Silero's speech probability ``(ceil(N / 512),)`` for each 32 ms frame of ``audio`` ``(N,)`` at 16 kHz:
    an array, or anything sliced by sample (a :class:`~avsr.io.spool.FrameSpool`), read a block at a time."""
    count = -(-len(audio) // SILERO_FRAME)
    session = _silero_session()
    hidden = np.zeros((1, 1, 128), np.float32)
    cell = np.zeros((1, 1, 128), np.float32)
    previous = np.zeros(SILERO_CONTEXT, np.float32)  # the streaming model's context before the first frame
    out = [np.zeros(0, np.float32)]
    for start in range(0, count, SILERO_BLOCK):
        stop = min(count, start + SILERO_BLOCK)
        samples = np.asarray(audio[start * SILERO_FRAME: stop * SILERO_FRAME], np.float32).reshape(-1)
        frames = np.zeros((stop - start, SILERO_FRAME), np.float32)
        frames.reshape(-1)[: len(samples)] = samples
        context = np.concatenate([previous[None], frames[:-1, -SILERO_CONTEXT:]])
        previous = frames[-1, -SILERO_CONTEXT:]
        probability, hidden, cell = session.run(["speech_probs", "hn", "cn"], {
            "input": np.concatenate([context, frames], axis=1), "h": hidden, "c": cell})  # (n, 576) in
        out.append(np.asarray(probability, np.float32).reshape(-1))
    return np.concatenate(out)


def audio_speech_probability(audio, frames: int | None = None) -> np.ndarray:
    """The audio's speech probability per 25 Hz frame ``(T,)``: the most likely Silero frame overlapping it.

    ``audio``: 16 kHz samples ``(640 T,)``, an array or a spool; ``frames``: T (default: all the audio's)."""
    frames = len(audio) // SAMPLES_PER_FRAME if frames is None else frames
    silero = silero_probability(audio)
    out = np.zeros(frames, np.float32)
    if len(silero) == 0:
        return out
    index = np.arange(frames)
    first = index * SAMPLES_PER_FRAME // SILERO_FRAME  # the Silero frames overlapping frame t
    last = np.minimum(((index + 1) * SAMPLES_PER_FRAME - 1) // SILERO_FRAME, len(silero) - 1)
    heard = first < len(silero)
    out[heard] = np.maximum(silero[first[heard]], silero[last[heard]])
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def speech_regions(probability: np.ndarray, options: VadOptions = VadOptions()) -> list[tuple[int, int]]:
    """``[start, stop)`` frame ranges of speech in ``probability`` ``(T,)``, in order and apart: runs of
    frames at or over the threshold, pauses under ``min_pause_s`` closed, bursts under ``min_speech_s``
    dropped, then widened by ``pad_s`` on each side (two regions that would touch are joined)."""
    frames = len(probability)
    speech = np.asarray(probability) >= options.threshold
    for start, stop in _runs(~speech):
        if 0 < start and stop < frames and stop - start < round(options.min_pause_s * VIDEO_FPS):
            speech[start:stop] = True
    pad = round(options.pad_s * VIDEO_FPS)
    regions: list[tuple[int, int]] = []
    for start, stop in _runs(speech):
        if stop - start < max(1, round(options.min_speech_s * VIDEO_FPS)):
            continue
        start, stop = max(0, start - pad), min(frames, stop + pad)
        if regions and start <= regions[-1][1]:
            regions[-1] = (regions[-1][0], stop)
        else:
            regions.append((start, stop))
    if options.max_region_s is None:
        return regions
    longest = round(options.max_region_s * VIDEO_FPS)
    return [piece for region in regions for piece in split_region(np.asarray(probability), *region, longest)]


def split_region(probability: np.ndarray, start: int, stop: int, longest: int) -> list[tuple[int, int]]:
    """``[start, stop)`` cut at its least speech-like frame into pieces of at most ``longest`` frames; the cut
    is sought in the middle of the region (each piece at least a quarter of ``longest``), the lowest
    probability averaged over 5 frames, so that a pause is found rather than one quiet frame inside a word."""
    if stop - start <= longest:
        return [(start, stop)]
    margin = min(longest // 4, (stop - start) // 2 - 1)
    smooth = np.convolve(probability[start:stop], np.ones(5) / 5, "same")
    highest = min(stop - start - margin, longest)  # the first piece at most ``longest``, the rest a quarter of it
    cut = start + margin + int(np.argmin(smooth[margin:highest])) if highest > margin else start + longest
    return split_region(probability, start, cut, longest) + split_region(probability, cut, stop, longest)


def seconds(regions: list[tuple[int, int]]) -> list[tuple[float, float]]:
    """Frame ranges as ``(start_s, end_s)``, to the millisecond."""
    return [(round(a / VIDEO_FPS, 3), round(b / VIDEO_FPS, 3)) for a, b in regions]

