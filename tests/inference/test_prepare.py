"""A file decoded for transcription (avsr.inference.prepare): crops and audio spooled to disk with the
same result, decoder warnings kept, no temporary file left by a refused file, and a video whose header
gives no duration read once."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import avsr
from avsr.inference.prepare import prepare_input
from avsr.inference.transcribe import TranscribeOptions
from avsr.io.media import load_media
from avsr.io.writer import write_video
from tests.conftest import CARPHONE, SPEECH, read_wav


@pytest.mark.slow
def ours(folder) -> list:
    """The files in a temporary folder but ONNX Runtime's ``.ses`` (it writes one on import, for the voice activity)."""
    return [path for path in folder.iterdir() if path.name != ".ses"]


def test_a_long_input_reads_its_crops_from_disk_with_the_same_result(corpus, model, tmp_path, monkeypatch):
    """Crops beyond ``crop_memory_mb`` and audio beyond ``audio_memory_mb`` wait in temporary files
    and are read a window at a time: the transcript is the same as with everything in memory (and
    the model reading windows while the file is cut, from the audio's temporary file), also when the
    video is moved back by its offset, and also when a worker process prepared the file; no temporary
    file is left behind."""
    import tempfile

    from avsr.inference.batch import transcribe_batch
    from avsr.io.spool import FrameSpool
    from avsr.io.writer import write_offset_copy

    spool_dir = tmp_path / "tmp"
    spool_dir.mkdir()
    monkeypatch.setenv("TMPDIR", str(spool_dir))  # here and in spawned workers
    monkeypatch.setattr(tempfile, "tempdir", None)
    media = [load_media(c["video"]) for c in corpus[:4]]
    frames = np.concatenate([m.video for m in media])
    audio = np.concatenate([np.pad(m.audio, (0, len(m.video) * 640 - len(m.audio)))[: len(m.video) * 640] for m in media])
    joined = write_video(tmp_path / "joined.mp4", frames, audio=audio)
    # 200 ms late: av-sync auto moves such a clip back when its estimate is sure
    late = [write_offset_copy(c["video"], tmp_path / f"late{i}.mp4", 5) for i, c in enumerate(corpus[4:8])]
    spooled, in_memory = prepare_input(joined, crop_memory_mb=0, audio_memory_mb=0), prepare_input(joined)
    assert isinstance(spooled.roi, FrameSpool) and isinstance(spooled.audio, FrameSpool)
    assert len(ours(spool_dir)) == 2
    assert np.array_equal(spooled.roi[:], in_memory.roi) and np.array_equal(spooled.audio[:], in_memory.audio)
    np.testing.assert_array_equal(spooled.mouth_signal, in_memory.mouth_signal)
    spooled.close()
    shifts = []
    for clip in [joined] + late:
        windows = TranscribeOptions(window_s=6.0, overlap_s=1.0, batch_size=1)  # a group settled before the end
        memory = avsr.transcribe(model, clip, replace(windows, crop_memory_mb=None))
        disk = avsr.transcribe(model, clip, replace(windows, crop_memory_mb=0, audio_memory_mb=0,
                                                    read_while_cutting=True))
        assert disk.text == memory.text
        np.testing.assert_array_equal(disk.audio_weight, memory.audio_weight)  # NaN (not read) in both alike
        assert disk.av_sync_shift_ms == memory.av_sync_shift_ms
        shifts.append(memory.av_sync_shift_ms)
    assert any(shifts[1:]), "an offset copy must exercise the shifted read"
    summary = transcribe_batch([joined] + late[:1], model, tmp_path / "out",
                               options=TranscribeOptions(crop_memory_mb=0, audio_memory_mb=0), workers=2,
                               progress=False)
    assert [r.status for r in summary] == ["done", "done"]
    assert ours(spool_dir) == [], "a temporary crop file was left behind"


def test_prepare_keeps_its_media_warnings_and_passes_other_warnings_on(monkeypatch):
    """``prepare_input`` records the decoder's warnings as the file's notes. Recording catches every
    warning of the process (a batch prepares the next file in a thread while the model runs), so the
    others are raised again, not swallowed."""
    import warnings

    import avsr.inference.prepare as prepare_module
    from avsr.io.media import MediaWarning

    probe = prepare_module.probe_video

    def noisy_probe(path):
        warnings.warn("from elsewhere", RuntimeWarning)
        warnings.warn(f"{path}: a note on this file", MediaWarning)
        return probe(path)

    monkeypatch.setattr(prepare_module, "probe_video", noisy_probe)
    with pytest.warns(RuntimeWarning, match="from elsewhere"):
        prepared = prepare_module.prepare_input(CARPHONE)
    assert any("a note on this file" in note for note in prepared.warnings)
    assert not any("from elsewhere" in note for note in prepared.warnings)


def test_a_refused_file_leaves_no_temporary_file(tmp_path, monkeypatch):
    """A file that ``prepare_input`` refuses after cutting it (no face and no audio track; too short to
    hold a word) has its spooled crops and audio removed."""
    import tempfile

    from avsr.io.media import MediaError

    spool_dir = tmp_path / "tmp"
    spool_dir.mkdir()
    monkeypatch.setenv("TMPDIR", str(spool_dir))
    monkeypatch.setattr(tempfile, "tempdir", None)
    blank = write_video(tmp_path / "blank.mp4", np.full((30, 64, 64, 3), 128, np.uint8))  # no face, no audio
    short = write_video(tmp_path / "short.mp4", load_media(CARPHONE).video[:3], audio=read_wav(SPEECH)[0][:3 * 640])
    for path, reason in ((blank, "no_audio"), (short, "too_short")):
        with pytest.raises(MediaError, match=path.name) as caught:
            prepare_input(path, crop_memory_mb=0, audio_memory_mb=0)
        assert caught.value.reason == reason
        assert list(spool_dir.iterdir()) == [], f"{path.name}: a temporary file was left behind"


def remux_without_duration(source: Path, target: Path) -> Path:
    """``source``'s packets in Matroska written without seeking back (as to a pipe): no duration in the
    header."""
    import io

    import av

    class Unseekable(io.RawIOBase):
        def __init__(self, file) -> None:
            self.file = file

        def writable(self) -> bool:
            return True

        def write(self, data) -> int:
            return self.file.write(data)

    with open(target, "wb") as raw, av.open(str(source)) as inp:
        out = av.open(Unseekable(raw), "w", format="matroska")
        streams = {s.index: out.add_stream_from_template(s) for s in (inp.streams.video[0], inp.streams.audio[0])}
        for packet in inp.demux(inp.streams.video[0], inp.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
        out.close()
    return target


def test_a_video_whose_header_gives_no_duration_has_its_audio_read_once(tmp_path, monkeypatch):
    """Without a duration in the header, the audio cannot be read ahead at the video's length: it is
    read once, after the video, at the length the video turned out to have (the whole track)."""
    import avsr.inference.prepare as prepare_module
    from avsr.io.media import probe_video

    speech = read_wav(SPEECH)[0][: 60 * 640]
    clip = write_video(tmp_path / "clip.mp4", load_media(CARPHONE).video[:60], audio=speech)
    headerless = remux_without_duration(clip, tmp_path / "clip.mkv")
    assert probe_video(headerless)[0] == 0  # the case at hand
    reads = []
    read = prepare_module.read_audio_into
    monkeypatch.setattr(prepare_module, "read_audio_into", lambda path, samples, **kw: reads.append(samples) or
                        read(path, samples, **kw))
    prepared = prepare_input(headerless)
    assert reads == [prepared.frames * 640] and prepared.frames >= 60
    whole = load_media(headerless, video=False).audio
    np.testing.assert_array_equal(prepared.audio[: len(whole)], whole[: prepared.frames * 640])
    assert prepared.has_audio and prepared.face_found.mean() > 0.9
