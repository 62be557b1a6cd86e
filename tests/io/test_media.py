"""Media loading on real files: 25 fps resampling, 16 kHz audio, streaming, and bad inputs."""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path

import librosa
import numpy as np
import pytest

from avsr.io.media import MediaError, iter_media_chunks, load_media, read_audio_into
from avsr.io.spool import FrameSpool
from avsr.io.writer import write_video
from tests.conftest import CARPHONE, SPEECH, read_rgb_frames, read_wav


def index_frames(count: int, size: int = 64) -> np.ndarray:
    """Frames that show their index as 8 black/white vertical stripes (bits), robust to codecs."""
    bits = (np.arange(count)[:, None] >> np.arange(8)) & 1  # (T, 8)
    stripes = np.repeat(bits * 255, size // 8, axis=1).astype(np.uint8)  # (T, W)
    return np.broadcast_to(stripes[:, None, :, None], (count, size, size, 3)).copy()


def decoded_indices(video: np.ndarray) -> np.ndarray:
    stripes = video.mean(axis=(1, 3)).reshape(len(video), 8, -1).mean(axis=2)  # (T, 8)
    return ((stripes > 128) * (1 << np.arange(8))).sum(axis=1)


def test_carphone_is_resampled_to_25_fps():
    with pytest.warns(UserWarning, match="no audio track"):
        media = load_media(CARPHONE)
    assert media.video.shape == (100, 144, 176, 3)
    assert media.video.dtype == np.uint8
    assert media.audio is None
    assert media.fps == 25


@pytest.mark.parametrize("fps", [Fraction(30000, 1001), 30, Fraction(24000, 1001), 50, 25])
def test_constant_rates_pick_the_frame_nearest_in_time(tmp_path, fps):
    count = 100
    path = write_video(tmp_path / "clip.mkv", index_frames(count), fps, video_codec="ffv1")
    video = load_media(path, audio=False).video
    duration_s = count / float(fps)
    assert len(video) == round(duration_s * 25)
    expected = np.clip(np.round(np.arange(len(video)) / 25 * float(fps) - 1e-9), 0, count - 1)
    np.testing.assert_array_equal(decoded_indices(video), expected)


def test_variable_frame_rate_follows_timestamps(tmp_path):
    rng = np.random.default_rng(3)
    gaps_ms = rng.choice([20, 33, 40, 67], size=80)
    times_s = np.concatenate([[0], np.cumsum(gaps_ms[:-1])]) / 1000
    path = write_video(tmp_path / "vfr.mkv", index_frames(80), 30, timestamps_s=times_s, video_codec="ffv1")
    video = load_media(path, audio=False).video
    got = decoded_indices(video)
    for j, source in enumerate(got):
        # The chosen source frame is the one whose timestamp is nearest to j / 25 s.
        distance = np.abs(times_s - j / 25)
        assert distance[source] <= distance.min() + 1e-6, (j, source)
    assert len(video) == round((times_s[-1] + gaps_ms[-2] / 1000) * 25)


def test_rotation_metadata_is_applied(tmp_path):
    frames = np.zeros((10, 32, 64, 3), np.uint8)
    frames[:, :, :32] = 255  # left half white
    path = write_video(tmp_path / "rotated.mp4", frames, 25, rotation=90)
    video = load_media(path, audio=False).video
    assert video.shape == (10, 64, 32, 3)  # portrait after a quarter turn
    # 90 degrees counter-clockwise puts the left half at the bottom.
    assert video[:, 40:, :].mean() > 200 and video[:, :24, :].mean() < 50


def test_audio_track_is_16k_mono_and_matches_source(tmp_path):
    speech, sample_rate = read_wav(SPEECH)
    frame_count = int(len(speech) / sample_rate * 30000 / 1001)
    frames = np.random.default_rng(0).integers(0, 255, (frame_count, 64, 64, 3), dtype=np.uint8)
    source_44k = librosa.resample(speech, orig_sr=sample_rate, target_sr=44_100)
    path = write_video(tmp_path / "talk.mp4", frames, Fraction(30000, 1001), source_44k, 44_100)
    media = load_media(path)
    assert media.sample_rate == 16_000 and media.audio.dtype == np.float32 and media.audio.ndim == 1
    reference = librosa.resample(source_44k, orig_sr=44_100, target_sr=16_000)
    n = min(len(reference), len(media.audio))
    assert np.corrcoef(reference[:n], media.audio[:n])[0, 1] > 0.99
    assert abs(len(media.audio) / 16_000 - len(media.video) / 25) < 0.040


@pytest.mark.parametrize("suffix", [".mp4", ".mov", ".mkv", ".avi", ".mpg", ".webm"])
def test_containers_decode_video_and_audio(tmp_path, suffix):
    speech, sample_rate = read_wav(SPEECH)
    frames = index_frames(50, size=48)
    path = write_video(tmp_path / f"clip{suffix}", frames, 25, speech[: 2 * sample_rate], sample_rate)
    media = load_media(path)
    assert abs(len(media.video) - 50) <= 1
    assert abs(len(media.audio) / 16_000 - 2.0) < 0.1
    assert media.audio.std() > 0.01


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_audio_only_files(tmp_path, suffix):
    import soundfile

    speech, sample_rate = read_wav(SPEECH)
    path = tmp_path / f"speech{suffix}"
    soundfile.write(path, np.stack([speech, speech], axis=1), sample_rate)  # stereo in, mono out
    with pytest.warns(UserWarning, match="no video track"):
        media = load_media(path)
    assert media.video is None
    np.testing.assert_allclose(media.audio, speech, atol=2e-4)


def test_streaming_chunks_concatenate_to_the_whole_file(tmp_path):
    speech, sample_rate = read_wav(SPEECH)
    frames = index_frames(74, size=32)
    path = write_video(tmp_path / "talk.mkv", frames, 25, speech, sample_rate, video_codec="ffv1")
    whole = load_media(path)
    chunks = list(iter_media_chunks(path, chunk_s=0.8))
    assert [c.start_s for c in chunks] == pytest.approx([0.0, 0.8, 1.6, 2.4])
    assert all(len(c.video) == 20 and len(c.audio) == 12_800 for c in chunks[:-1])
    np.testing.assert_array_equal(np.concatenate([c.video for c in chunks]), whole.video)
    np.testing.assert_array_equal(np.concatenate([c.audio for c in chunks]), whole.audio)


def test_audio_read_into_a_fixed_length_is_the_decoded_audio_padded_or_cut(tmp_path):
    speech, sample_rate = read_wav(SPEECH)
    path = write_video(tmp_path / "talk.mp4", index_frames(50), 25, speech, sample_rate)
    whole = load_media(path, video=False).audio
    for samples in (len(whole) - 1000, len(whole), len(whole) + 5000):
        audio, decoded = read_audio_into(path, samples)
        assert decoded and audio.dtype == np.float32 and len(audio) == samples
        np.testing.assert_array_equal(audio[: len(whole)], whole[:samples])
        assert not audio[len(whole):].any()
        spooled, decoded = read_audio_into(path, samples, spool_above_mb=0)  # the same, from a temporary file
        assert decoded and isinstance(spooled, FrameSpool) and spooled.shape == (samples,)
        np.testing.assert_array_equal(spooled[:], audio)
        np.testing.assert_array_equal(spooled[1000:2000], audio[1000:2000])
        file = Path(spooled.path)
        spooled.close()
        assert not file.exists()
    assert isinstance(read_audio_into(path, 640, spool_above_mb=1.0)[0], np.ndarray)  # under the limit: memory
    silent = write_video(tmp_path / "silent.mp4", index_frames(10), 25)
    with pytest.raises(MediaError, match="silent.mp4: has no audio stream"):
        read_audio_into(silent, 640)
    with pytest.raises(MediaError, match="silent.mp4: has no audio stream"):
        read_audio_into(silent, 640, spool_above_mb=0)


def test_streaming_can_skip_a_stream(tmp_path):
    speech, sample_rate = read_wav(SPEECH)
    path = write_video(tmp_path / "talk.mp4", index_frames(50), 25, speech, sample_rate)
    chunks = list(iter_media_chunks(path, chunk_s=1.0, audio=False))
    assert all(c.audio is None for c in chunks) and sum(len(c.video) for c in chunks) == 50


def test_missing_stream_request_is_an_error():
    with pytest.raises(MediaError, match="has no video stream") as caught, pytest.warns(UserWarning):
        list(iter_media_chunks(SPEECH, audio=False))
    assert caught.value.reason == "no_video"


def _bad_files(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("this is a shopping list, not a video\n")
    (tmp_path / "random.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (tmp_path / "truncated.mp4").write_bytes(CARPHONE.read_bytes()[:200_000])
    (tmp_path / "subtitles.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    return {
        "missing.mp4": "missing", "empty.mp4": "empty", "notes.mp4": "not_media",
        "random.mp4": "corrupt", "truncated.mp4": "corrupt", "subtitles.srt": "no_streams",
    }


def test_bad_inputs_raise_one_specific_error_naming_the_file(tmp_path):
    for name, reason in _bad_files(tmp_path).items():
        with pytest.raises(MediaError) as caught:
            load_media(tmp_path / name)
        assert caught.value.reason == reason, name
        assert str(tmp_path / name) in str(caught.value)
        assert "\n" not in str(caught.value)


def test_carphone_frames_match_the_source_frames():
    source = read_rgb_frames(CARPHONE)  # 120 frames at 29.97 fps
    video = load_media(CARPHONE, audio=False).video
    for j in (0, 1, 37, 99):
        nearest = min(round(j / 25 * 30000 / 1001), 119)
        np.testing.assert_array_equal(video[j], source[nearest])


def test_writer_takes_a_generator_of_frames(tmp_path):
    frames = index_frames(30)
    path = write_video(tmp_path / "gen.mkv", (f for f in frames), 25, video_codec="ffv1")
    np.testing.assert_array_equal(decoded_indices(load_media(path, audio=False).video), np.arange(30))
    assert not list(tmp_path.glob(".*")), "no temporary file left"


def faststart_copy(source, target) -> None:
    """``source`` remuxed with its index in front (``movflags=faststart``), as web video often is."""
    import av

    with av.open(str(source)) as inp, av.open(str(target), "w", options={"movflags": "faststart"}) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams if s.type in ("video", "audio")}
        for packet in inp.demux():
            if packet.dts is not None and packet.stream.index in streams:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)


def test_a_file_that_ends_before_its_header_says_is_truncated_or_warned(tmp_path):
    """With the index in front, a cut mp4 still opens and decodes its first part: a 3.64 s clip cut
    to 30 % of its bytes decoded 0.9 s "successfully". That is an error naming both durations; a
    smaller gap (90 % of the bytes) is a warning; an intact file neither."""
    from avsr.io.media import MediaWarning

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (91, 64, 64, 3), dtype=np.uint8)
    audio = (0.1 * rng.standard_normal(91 * 640)).astype(np.float32)
    write_video(tmp_path / "plain.mp4", frames, 25, audio, 16_000)
    faststart_copy(tmp_path / "plain.mp4", tmp_path / "whole.mp4")
    data = (tmp_path / "whole.mp4").read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error", MediaWarning)
        assert len(load_media(tmp_path / "whole.mp4").video) == 91
    (tmp_path / "cut30.mp4").write_bytes(data[: int(len(data) * 0.3)])
    with pytest.raises(MediaError, match=r"cut30\.mp4: its streams end at [0-9.]+ s of the 3\.64 s") as error:
        load_media(tmp_path / "cut30.mp4")
    assert error.value.reason == "truncated"
    (tmp_path / "cut90.mp4").write_bytes(data[: int(len(data) * 0.9)])
    with pytest.warns(MediaWarning, match=r"cut90\.mp4: its streams end at [0-9.]+ s of the 3\.64 s"):
        load_media(tmp_path / "cut90.mp4")


@pytest.mark.parametrize("codec, pixel_format, suffix", [("libx264", "yuv420p", ".mp4"), ("libx264", "yuv444p", ".mp4"),
                                                          ("mjpeg", "yuvj420p", ".avi"), ("ffv1", "bgr0", ".mkv")])
def test_gray_and_rgb_frames_are_ffmpegs_conversions(tmp_path, codec, pixel_format, suffix):
    """frame_to_gray reads the luma plane itself (stretched when limited range) for YUV formats, and
    asks FFmpeg for others (bgr0): the same values as FFmpeg's conversion to gray, on real frames,
    padded rows and odd sizes included."""
    import av

    from avsr.io.frames import frame_to_gray

    frames = read_rgb_frames(CARPHONE)[:8, :, :175]  # odd width: rows padded in the decoder's buffer
    path = tmp_path / f"clip{suffix}"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        width = 174 if pixel_format == "yuv420p" else 175  # x264 takes 4:2:0 at even sizes only
        stream.pix_fmt, stream.width, stream.height = pixel_format, width, 144
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:, : stream.width]), "rgb24")))
        container.mux(stream.encode())
    with av.open(str(path)) as container:
        decoded = list(container.decode(video=0))
    assert len(decoded) == 8 and decoded[0].format.name == pixel_format
    for frame in decoded:
        np.testing.assert_array_equal(frame_to_gray(frame), frame.to_ndarray(format="gray"))
    # RGB through one reformatter kept for the stream: FFmpeg's per-frame conversion, pixel for pixel.
    from av.video.reformatter import VideoReformatter

    from avsr.io.frames import frame_to_rgb

    reformatter = VideoReformatter()
    for frame in decoded:
        for width, height in ((None, None), (88, 72)):
            np.testing.assert_array_equal(frame_to_rgb(frame, width, height, reformatter),
                                          frame.to_ndarray(format="rgb24", width=width, height=height))
