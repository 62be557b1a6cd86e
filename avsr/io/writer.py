"""Write video (and audio) files with PyAV: ordinary files any player opens."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from avsr.files import atomic_path

# Container suffix -> (video codec, audio codec, pixel format) that FFmpeg muxes into it.
CODECS = {
    ".mp4": ("libx264", "aac", "yuv420p"),
    ".mov": ("libx264", "aac", "yuv420p"),
    ".mkv": ("libx264", "aac", "yuv420p"),
    ".avi": ("mpeg4", "pcm_s16le", "yuv420p"),  # MP3 in AVI would keep its encoder delay
    ".mpg": ("mpeg2video", "mp2", "yuv420p"),
    ".webm": ("libvpx", "libopus", "yuv420p"),
}


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray | Iterable[np.ndarray] | None,
    fps: float | Fraction = 25,
    audio: np.ndarray | None = None,
    sample_rate: int = 16_000,
    *,
    timestamps_s: np.ndarray | None = None,
    rotation: int = 0,
    video_codec: str | None = None,
    audio_codec: str | None = None,
    quality_crf: int = 18,
) -> Path:
    """Encode RGB frames ``(T, H, W, 3) uint8`` and mono audio ``(N,) float32`` into one file.

    ``frames`` may also be any iterable of ``(H, W, 3)`` frames, encoded as they come (long videos).

    Args:
        fps: nominal frame rate (a ``Fraction`` such as ``Fraction(30000, 1001)`` for NTSC rates).
        timestamps_s: per-frame presentation times ``(T,)`` for variable frame rate output.
        rotation: display rotation (degrees counter-clockwise) stored as metadata.
        video_codec, audio_codec: override the defaults for the file's suffix (see ``CODECS``).
        quality_crf: x264 constant rate factor (lower is better; 18 is visually lossless).

    The file is written to a temporary name and renamed when complete; the same input gives the
    same bytes.
    """
    path = Path(path)
    default_video, default_audio, pixel_format = CODECS.get(path.suffix.lower(), CODECS[".mp4"])
    rate = Fraction(fps).limit_denominator(100_000)
    with atomic_path(path) as tmp:  # an input that fails mid-way leaves no half-written file
        with av.open(str(tmp), "w") as container:
            video_stream = audio_stream = None
            if frames is not None:
                frames = iter(frames)
                first = next(frames)
                frames = itertools.chain([first], frames)
                video_stream = container.add_stream(video_codec or default_video, rate=rate)
                video_stream.height, video_stream.width = first.shape[:2]
                video_stream.pix_fmt = pixel_format
                if (video_codec or default_video) == "libx264":
                    # Reproducible bytes: x264 with threads, and (measured here, ~2% of runs on natural
                    # video) with its macroblock-tree rate control, gave different output per run.
                    video_stream.options = {"crf": str(quality_crf), "preset": "veryfast",
                                            "x264-params": "threads=1:lookahead-threads=1:mbtree=0"}
                    video_stream.codec_context.thread_count = 1
                if timestamps_s is not None:
                    video_stream.codec_context.time_base = Fraction(1, 1000)
                if rotation:
                    video_stream.set_display_rotation(rotation)
            if audio is not None:
                audio_stream = container.add_stream(audio_codec or default_audio, rate=sample_rate)
                audio_stream.layout = "mono"
            if video_stream is not None:
                for index, image in enumerate(frames):
                    frame = _to_video_frame(np.ascontiguousarray(image), pixel_format)
                    if timestamps_s is not None:
                        frame.pts, frame.time_base = round(timestamps_s[index] * 1000), Fraction(1, 1000)
                    else:
                        frame.pts, frame.time_base = index, 1 / rate
                    container.mux(video_stream.encode(frame))
                container.mux(video_stream.encode())
            if audio_stream is not None:
                _encode_audio(container, audio_stream, np.asarray(audio, np.float32), sample_rate)
    return path


def _to_video_frame(image: np.ndarray, pixel_format: str) -> av.VideoFrame:
    """An encoder-ready frame, converted to YUV 4:2:0 by OpenCV (BT.601, limited range, the same
    values as FFmpeg's default conversion)."""
    if pixel_format == "yuv420p" and image.shape[0] % 2 == 0 and image.shape[1] % 2 == 0:
        return av.VideoFrame.from_ndarray(cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
    return av.VideoFrame.from_ndarray(image, format="rgb24")


def _encode_audio(container, stream, audio: np.ndarray, sample_rate: int) -> None:
    frame = av.AudioFrame.from_ndarray(audio.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = sample_rate
    frame.pts = 0
    # The resampler splits the signal into frames of the size and sample format the encoder wants.
    resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono", rate=sample_rate,
                                  frame_size=stream.codec_context.frame_size or None)
    for piece in resampler.resample(frame) + resampler.resample(None):
        container.mux(stream.encode(piece))
    container.mux(stream.encode())


def quietest_stretch(audio: np.ndarray, frames: int) -> np.ndarray:
    """The quietest ``frames`` 25 fps frames of ``audio`` (16 kHz) in a row: the recording's room tone
    or floor, to lengthen a clip with (repeated if the clip is shorter)."""
    from avsr.preprocessing import SAMPLES_PER_FRAME

    whole = len(audio) // SAMPLES_PER_FRAME
    power = (audio[: whole * SAMPLES_PER_FRAME].reshape(whole, -1).astype(np.float64) ** 2).mean(axis=1)
    energy = np.convolve(power, np.ones(frames), mode="valid")  # energy of every run of `frames` frames
    start = int(np.argmin(energy)) * SAMPLES_PER_FRAME if len(energy) else 0
    return np.resize(audio[start: start + frames * SAMPLES_PER_FRAME], frames * SAMPLES_PER_FRAME)


def write_offset_copy(source: str | os.PathLike, target: str | os.PathLike, offset_frames: int) -> Path:
    """A copy of ``source`` (at 25 fps and 16 kHz) whose picture is ``offset_frames`` frames later
    than its sound (earlier when negative), with nothing cut: a late picture holds its first frame
    for the offset and the sound goes on after the speech; an early picture holds its last frame and
    the sound starts before the speech. The added sound is the clip's own quietest stretch of that
    length (its room or recording floor, never digital silence). For testing how a file out of sync
    is recognised."""
    from avsr.io.media import load_media
    from avsr.preprocessing import VIDEO_FPS

    media = load_media(source)
    video, audio = media.video, media.audio
    count = abs(offset_frames)
    if count == 0:
        return write_video(target, video, VIDEO_FPS, audio)
    quiet = quietest_stretch(audio, count)
    if offset_frames > 0:
        video, audio = np.concatenate([np.repeat(video[:1], count, 0), video]), np.concatenate([audio, quiet])
    else:
        video, audio = np.concatenate([video, np.repeat(video[-1:], count, 0)]), np.concatenate([quiet, audio])
    return write_video(target, video, VIDEO_FPS, audio)


def write_padded_copy(source: str | os.PathLike, target: str | os.PathLike, lead_s: float, trail_s: float,
                      tone_dbfs: float = -60.0, seed: int = 0) -> Path:
    """A copy of ``source`` (at 25 fps and 16 kHz) with ``lead_s`` seconds before it and ``trail_s``
    after it in which nobody speaks: the first (last) picture held, over white room tone at ``tone_dbfs``
    (dB of full scale, RMS; seeded). A file without video stays audio only. For testing recognition
    of speech that does not start at the file's start."""
    from avsr.io.media import load_media
    from avsr.preprocessing import SAMPLES_PER_FRAME, VIDEO_FPS

    media = load_media(source)
    lead, trail = round(lead_s * VIDEO_FPS), round(trail_s * VIDEO_FPS)
    rng = np.random.default_rng(seed)
    level = 10.0 ** (tone_dbfs / 20.0)

    def tone(frames: int) -> np.ndarray:
        return (level * rng.standard_normal(frames * SAMPLES_PER_FRAME)).astype(np.float32)

    frames = len(media.video) if media.video is not None else len(media.audio) // SAMPLES_PER_FRAME
    audio = media.audio[: frames * SAMPLES_PER_FRAME] if media.audio is not None else np.zeros(
        frames * SAMPLES_PER_FRAME, np.float32)
    audio = np.concatenate([tone(lead), audio, tone(trail)])
    if media.video is None:
        return write_video(target, None, VIDEO_FPS, audio)
    video = np.concatenate([np.repeat(media.video[:1], lead, 0), media.video, np.repeat(media.video[-1:], trail, 0)])
    return write_video(target, video, VIDEO_FPS, audio)
