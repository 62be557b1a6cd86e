"""Decode any media file PyAV opens into 25 fps RGB video and 16 kHz mono float32 audio.

One streaming reader (:func:`iter_media_chunks`) does the work; :func:`load_media` collects its
chunks for short files. Video frames are resampled to a constant rate by presentation timestamp (each
output frame takes the source frame nearest in time; :mod:`avsr.io.frames`), so 29.97, 30, 23.976,
50 fps and variable frame rate inputs all come out at exactly ``fps`` frames per second and stay in
sync with the audio.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from avsr.io.audio_frames import AudioCollector
from avsr.io.frames import FrameResampler, frame_to_rgb
from avsr.io.results import MEDIA_REASONS, FileError, Reason
from avsr.io.spool import FrameSpool
from avsr.preprocessing import SAMPLE_RATE, VIDEO_FPS

# A file whose streams end this much (and this share) before the duration its header states is
# truncated: an error. A smaller gap beyond SHORT_S and SHORT_SHARE is a MediaWarning. Measured:
# intact files end within 0.004 s of their header (carphone, LibriVox wav, synthetic mp4); a 3.64 s
# mp4 with its index in front, cut to 30 % / 90 % of its bytes, decodes 0.90 s / 3.12 s. Headers
# estimated from the bit rate (mp3 without an index) can be off by a few percent.
TRUNCATED_S, TRUNCATED_SHARE = 1.0, 0.1
SHORT_S, SHORT_SHARE = 0.2, 0.02


class MediaWarning(UserWarning):
    """A file that decodes, but not as its header says (e.g. its streams end early)."""


class MissingStreamWarning(UserWarning):
    """A file without the audio or video track asked for (the stream comes back as None)."""


class MediaError(FileError):
    """A file could not be read as media. ``reason`` is one of :attr:`REASONS` (a :class:`Reason`)."""

    REASONS = MEDIA_REASONS

    def __init__(self, path: str | os.PathLike, reason: Reason | str, message: str) -> None:
        super().__init__(path, reason, message)
        assert self.reason in self.REASONS, reason


@dataclass
class MediaChunk:
    """A stretch of a file, ``start_s`` seconds from its start.

    Attributes:
        start_s: time of the first video frame / audio sample of the chunk.
        video: RGB frames ``(T, H, W, 3) uint8`` at the reader's fps, or ``None`` without video.
        audio: mono samples ``(N,) float32`` at the reader's sample rate, or ``None`` without audio.
    """

    start_s: float
    video: np.ndarray | None
    audio: np.ndarray | None


@dataclass
class Media:
    """A whole decoded file. ``video`` is ``(T, H, W, 3) uint8``; ``audio`` is ``(N,) float32``."""

    path: str
    video: np.ndarray | None
    audio: np.ndarray | None
    fps: float
    sample_rate: int

    @property
    def duration_s(self) -> float:
        if self.video is not None:
            return len(self.video) / self.fps
        return 0.0 if self.audio is None else len(self.audio) / self.sample_rate


def _looks_like_text(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(4096)
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def check_file(path: str | os.PathLike) -> Path:
    """``path`` if it is a file with content (checked before it is hashed or opened); else
    :class:`MediaError` (``missing`` or ``empty``)."""
    path = Path(path)
    if not path.exists():
        raise MediaError(path, Reason.MISSING, "file not found; check the path")
    if not path.is_file():
        raise MediaError(path, Reason.MISSING, "is not a file; pass a media file (folders are expanded by the CLI)")
    if path.stat().st_size == 0:
        raise MediaError(path, Reason.EMPTY, "file is empty (0 bytes); re-export or re-download it")
    return path


def open_media(path: str | os.PathLike) -> av.container.InputContainer:
    """Open ``path`` with PyAV, raising :class:`MediaError` with the cause and the fix."""
    path = check_file(path)
    try:
        container = av.open(str(path))
    except (av.FFmpegError, UnicodeDecodeError) as error:
        if _looks_like_text(path):
            raise MediaError(path, Reason.NOT_MEDIA, "is a text file, not audio or video; pass a media file") from None
        raise MediaError(
            path, Reason.CORRUPT, f"FFmpeg cannot open it ({error.__class__.__name__}: corrupt or truncated); "
            "re-encode or re-download it"
        ) from None
    if not container.streams.video and not container.streams.audio:
        container.close()
        raise MediaError(path, Reason.NO_STREAMS, "holds no audio or video stream; pass a media file")
    return container


def probe_video(path: str | os.PathLike) -> tuple[float, int, int] | None:
    """``(duration_s, width, height)`` of a file's first video stream from its header, or ``None``
    without video. The duration is the container's estimate (0.0 when it states none)."""
    with open_media(path) as container:
        if not container.streams.video:
            return None
        stream = container.streams.video[0]
        return (container.duration or 0) / av.time_base, stream.width, stream.height


def _stream_end_s(stream: av.stream.Stream | None, origin_s: float) -> float | None:
    """Where a stream says it ends, relative to ``origin_s``; ``None`` if it does not say."""
    if stream is None or not stream.duration or stream.time_base is None:
        return None
    return float((stream.start_time or 0) * stream.time_base + stream.duration * stream.time_base) - origin_s


def _select_stream(container, kind: str, wanted: bool, path) -> av.stream.Stream | None:
    streams = getattr(container.streams, kind)
    if not wanted:
        return None
    if not streams:
        warnings.warn(MissingStreamWarning(f"{path}: no {kind} track; {kind} is None"), stacklevel=3)
        return None
    if len(streams) > 1:
        labels = [s.metadata.get("language", "") or s.metadata.get("title", "") or s.codec_context.name
                  for s in streams]
        names = ", ".join(f"#{i} {label}" for i, label in enumerate(labels))
        warnings.warn(MediaWarning(f"{path}: has {len(streams)} {kind} tracks ({names}); using the first. If it is "
                                   f"the wrong one, extract the right one first (ffmpeg -map 0:a:N)"), stacklevel=3)
    return streams[0]


def _decode(path, video: bool, audio: bool, fps: float, sample_rate: int) -> Iterator[tuple[str, object]]:
    """Yield ``("streams", (has_video, has_audio))`` first, then ``("video", av.VideoFrame)`` at
    ``fps`` and ``("audio", samples)`` in decode order."""
    container = open_media(path)
    with container:
        video_stream = _select_stream(container, "video", video, path)
        audio_stream = _select_stream(container, "audio", audio, path)
        if video_stream is None and audio_stream is None:
            missing = "video" if video else "audio"
            raise MediaError(path, Reason.NO_VIDEO if video else Reason.NO_AUDIO,
                             f"has no {missing} stream; pass a file with {missing}")
        if video_stream is not None:
            video_stream.thread_type = "AUTO"
        yield "streams", (video_stream is not None, audio_stream is not None)
        origin_s = (container.start_time or 0) / av.time_base
        resampler = FrameResampler(fps)
        collector = AudioCollector(sample_rate, _stream_end_s(audio_stream, origin_s))
        decoded = {"video": 0, "audio": 0}
        produced = {"video": 0, "audio": 0}  # frames at fps, samples at sample_rate
        streams = [s for s in (video_stream, audio_stream) if s is not None]
        try:
            for frame in container.decode(*streams):
                time_s = None if frame.time is None else frame.time - origin_s
                if isinstance(frame, av.VideoFrame):
                    decoded["video"] += 1
                    if time_s is None:
                        time_s = decoded["video"] / float(video_stream.average_rate or fps)
                    for out in resampler.push(frame, time_s):
                        produced["video"] += 1
                        yield "video", out
                else:
                    decoded["audio"] += 1
                    for samples in collector.push(frame, time_s):
                        produced["audio"] += len(samples)
                        yield "audio", samples
            rate = video_stream.average_rate if video_stream is not None else None
            for out in resampler.finish(1.0 / float(rate) if rate else 1.0 / fps):
                produced["video"] += 1
                yield "video", out
            for samples in collector.finish():
                produced["audio"] += len(samples)
                yield "audio", samples
        except av.FFmpegError as error:
            raise MediaError(
                path, Reason.CORRUPT, f"decoding failed ({error.__class__.__name__}: {error.strerror or error}); "
                "the file is corrupt or truncated: re-encode or re-download it"
            ) from None
        if audio_stream is not None and decoded["audio"] == 0 and not _has_packets(path, audio_stream.index):
            if video_stream is None:  # an audio track that holds nothing is no audio track, not a corrupt one
                raise MediaError(path, Reason.NO_AUDIO, "its audio track holds no sound (no packets); pass a file with "
                                 "audio")
            warnings.warn(MissingStreamWarning(f"{path}: its audio track holds no sound; audio is None"), stacklevel=3)
            audio_stream = None
        for kind, stream in (("video", video_stream), ("audio", audio_stream)):
            if stream is not None and decoded[kind] == 0:
                raise MediaError(path, Reason.CORRUPT, f"no {kind} frame could be decoded (corrupt or truncated); "
                                 "re-encode it")
        read = [s for s in (video_stream, audio_stream) if s is not None]
        _check_length(path, max(produced["video"] / fps, produced["audio"] / sample_rate),
                      _stated_end(container, read, origin_s))


def _has_packets(path, index: int) -> bool:
    """Whether stream ``index`` of ``path`` holds a packet with data (demuxed only, not decoded)."""
    with av.open(str(path)) as container:
        return any(packet.size for packet in container.demux(container.streams[index]))


def _stated_end(container, read: list, origin_s: float) -> float | None:
    """Where the header says the streams ``read`` end: the latest of their own stated ends. Without one,
    the container's duration, if no other audio or video stream could make it longer (an audio track
    longer than the video is common, and no sign that the video is truncated); else None."""
    ends = [_stream_end_s(stream, origin_s) for stream in read]
    if ends and all(end is not None for end in ends):
        return max(ends)
    others = [s for s in (*container.streams.video, *container.streams.audio) if s not in read]
    if container.duration and not others:
        return container.duration / av.time_base
    return None


def stream_ends(path: str | os.PathLike) -> tuple[float | None, float | None]:
    """``(video_end_s, audio_end_s)``: where the header says a file's first video and first audio stream
    end (None: no such stream, or the header does not say)."""
    with open_media(path) as container:
        origin_s = (container.start_time or 0) / av.time_base
        return tuple(_stream_end_s(streams[0], origin_s) if streams else None
                     for streams in (container.streams.video, container.streams.audio))


def _check_length(path, ended: float, stated: float | None) -> None:
    """A file whose streams ended (``ended`` s) well before the duration its header states: an error
    when it is truncated (TRUNCATED_S, TRUNCATED_SHARE), a MediaWarning when its end may be missing."""
    if stated and stated - ended > TRUNCATED_S and ended < (1 - TRUNCATED_SHARE) * stated:
        raise MediaError(path, Reason.TRUNCATED, f"its streams end at {ended:.2f} s of the {stated:.2f} s its "
                         "header states: the file is truncated; re-download or re-encode it")
    if stated and stated - ended > SHORT_S and ended < (1 - SHORT_SHARE) * stated:
        warnings.warn(MediaWarning(f"{path}: its streams end at {ended:.2f} s of the {stated:.2f} s its header "
                                   "states; the end may be missing (truncated file?)"), stacklevel=3)


def iter_video_frames(path: str | os.PathLike, fps: float = VIDEO_FPS) -> Iterator[av.VideoFrame]:
    """Yield the decoded frames of a file's video at exactly ``fps`` (nearest in time), unconverted.

    For callers that pick their own conversion (:func:`frame_to_rgb`, :func:`frame_to_gray`, a
    smaller size). A source frame that fills several slots is yielded several times.

    Raises:
        MediaError: as :func:`iter_media_chunks`, or ``reason="no_video"`` without a video stream.
    """
    for kind, frame in _decode(path, video=True, audio=False, fps=fps, sample_rate=SAMPLE_RATE):
        if kind == "video":
            yield frame


def iter_media_chunks(
    path: str | os.PathLike,
    chunk_s: float = 10.0,
    *,
    video: bool = True,
    audio: bool = True,
    fps: float = VIDEO_FPS,
    sample_rate: int = SAMPLE_RATE,
) -> Iterator[MediaChunk]:
    """Yield a file as consecutive chunks of ``chunk_s`` seconds; the last one may be shorter.

    Only one chunk (plus a few decoded frames) is in memory at a time, so hour-long files stream
    in bounded memory. Each video chunk holds ``round(chunk_s * fps)`` frames and each audio chunk
    the same duration of samples. ``video=False`` / ``audio=False`` skip decoding that stream.

    Raises:
        MediaError: the file is missing, empty, not media, corrupt, or lacks every requested stream.
    """
    chunk_frames = round(chunk_s * fps)
    chunk_samples = round(chunk_frames * sample_rate / fps)
    if chunk_frames < 1:
        raise ValueError(f"chunk_s={chunk_s} holds no frame at {fps} fps; use chunk_s >= {1 / fps}")
    frames: list[np.ndarray] = []
    samples: list[np.ndarray] = []
    has = {"video": False, "audio": False}
    start_index = 0
    last: tuple[av.VideoFrame | None, np.ndarray | None] = (None, None)
    reformatter = VideoReformatter()

    def take() -> MediaChunk:
        nonlocal frames, samples, start_index
        chunk_video = chunk_audio = None
        if has["video"]:
            head, frames = frames[:chunk_frames], frames[chunk_frames:]
            chunk_video = np.stack(head) if head else np.zeros((0, *last[1].shape), np.uint8)
        if has["audio"]:
            joined = np.concatenate(samples) if samples else np.zeros(0, np.float32)
            chunk_audio, rest = joined[:chunk_samples], joined[chunk_samples:]
            samples = [rest] if len(rest) else []
        chunk = MediaChunk(start_s=start_index / fps, video=chunk_video, audio=chunk_audio)
        start_index += chunk_frames
        return chunk

    def full() -> bool:
        return (not has["video"] or len(frames) >= chunk_frames) and (
            not has["audio"] or sum(map(len, samples)) >= chunk_samples)

    for kind, item in _decode(path, video, audio, fps, sample_rate):
        if kind == "streams":
            has["video"], has["audio"] = item
        elif kind == "video":
            if item is not last[0]:  # convert each source frame once, even when repeated
                last = (item, frame_to_rgb(item, reformatter=reformatter))
            frames.append(last[1])
        else:
            samples.append(item)
        while full():
            yield take()
    while frames or samples:
        yield take()


def read_audio_into(path: str | os.PathLike, samples: int, sample_rate: int = SAMPLE_RATE,
                    spool_above_mb: float | None = None) -> tuple[np.ndarray | FrameSpool, bool]:
    """The audio of ``path`` as exactly ``samples`` float32 mono samples (zeros after its end, cut
    beyond it), decoded a minute at a time into one preallocated array: an hour never sits in
    memory twice, as joining decoded pieces would need. Audio that would take more than
    ``spool_above_mb`` goes to a temporary file instead (a :class:`~avsr.io.spool.FrameSpool` of
    samples, read by ranges; None: always in memory). Returns ``(audio, has_audio)``: ``False`` for
    an audio track that decodes to nothing.

    Raises:
        MediaError: as :func:`iter_media_chunks`; ``reason="no_audio"`` without an audio track."""
    spool = spool_above_mb is not None and 4 * samples > spool_above_mb * 2**20
    out, filled, found = FrameSpool(samples, dtype=np.float32) if spool else np.zeros(samples, np.float32), 0, False
    try:
        for chunk in iter_media_chunks(path, 60.0, video=False, audio=True, sample_rate=sample_rate):
            found = True
            take = min(len(chunk.audio), samples - filled)
            if spool:
                out.write(chunk.audio[:take])
            else:
                out[filled: filled + take] = chunk.audio[:take]
            filled += take
        if spool:  # silence after the track's end, a minute at a time
            for start in range(filled, samples, 60 * sample_rate):
                out.write(np.zeros(min(60 * sample_rate, samples - start), np.float32))
    except BaseException:
        if spool:
            out.close()
        raise
    return out, found


def load_media(
    path: str | os.PathLike,
    *,
    video: bool = True,
    audio: bool = True,
    fps: float = VIDEO_FPS,
    sample_rate: int = SAMPLE_RATE,
) -> Media:
    """Decode a whole file: video ``(T, H, W, 3) uint8`` at ``fps``, audio ``(N,) float32`` mono.

    A missing stream comes back as ``None`` with a warning. For long files use
    :func:`iter_media_chunks`, which never holds the whole file.
    """
    videos, audios = [], []
    for chunk in iter_media_chunks(path, 60.0, video=video, audio=audio, fps=fps, sample_rate=sample_rate):
        if chunk.video is not None and len(chunk.video):
            videos.append(chunk.video)
        if chunk.audio is not None:
            audios.append(chunk.audio)
    has_video = video and bool(videos)
    has_audio = audio and sum(map(len, audios)) > 0
    return Media(
        path=str(path),
        video=np.concatenate(videos) if has_video else None,
        audio=np.concatenate(audios) if has_audio else None,
        fps=fps,
        sample_rate=sample_rate,
    )
