"""Words where the speech is (avsr/inference/regions.py through the Transcriber): real synthetic clips with
lead-ins and trails of quiet, with music between two utterances, and a silent face; the refused modes; the
printed transcript."""

from __future__ import annotations

import numpy as np
import pytest

from avsr.inference.sync import lip_activity
from avsr.inference.transcribe import TranscribeOptions, Transcriber
from avsr.io.media import load_media
from avsr.io.results import FileError, Reason
from avsr.io.writer import write_padded_copy, write_video
from avsr.models.loader import load_model
from avsr.preprocessing import SAMPLE_RATE, VIDEO_FPS
from avsr.text import word_error_rate
from tests.conftest import CARPHONE, MUSIC, SPEECH, avsr_main, read_wav


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    model = load_model("synth-grid-tiny")
    return Transcriber(model.network, model.tokenizer, model.id)


@pytest.fixture(scope="module")
def clips(synth_corpus) -> list[dict]:
    """Three held-out clips (test speakers: faces and voices the embedded model never saw)."""
    return synth_corpus.split("test")[:3]


@pytest.fixture(scope="module")
def plain(clips, transcriber) -> list:
    """The clips' transcripts as they are (no lead-in: speech within 55 ms of the start)."""
    return [transcriber(clip["video"]) for clip in clips]


def music_16k(seconds: float) -> np.ndarray:
    import librosa

    audio, rate = read_wav(MUSIC)
    audio = librosa.resample(audio, orig_sr=rate, target_sr=SAMPLE_RATE)
    return np.resize(audio, round(seconds * SAMPLE_RATE)).astype(np.float32)


@pytest.mark.parametrize("lead_s, trail_s", [(1.0, 1.0), (3.0, 2.0),
                                             pytest.param(10.0, 10.0, marks=pytest.mark.slow)])
def test_quiet_before_and_after_the_speech_changes_neither_words_nor_their_place(clips, plain, transcriber, tmp_path,
                                                                                 lead_s, trail_s):
    references, padded = [], []
    for clip, before in zip(clips, plain):
        target = write_padded_copy(clip["video"], tmp_path / f"{clip['id']}.mp4", lead_s, trail_s)
        after = transcriber(target)
        references.append(clip["text"])
        padded.append(after.text)
        assert after.speech_regions and after.speech_regions[0][0] >= lead_s - 0.3  # nothing read in the lead-in
        assert after.speech_regions[-1][1] <= lead_s + before.duration_s + 0.3
        if after.text == before.text and after.words:
            shifts = [a.start_s - b.start_s for a, b in zip(after.words, before.words)]
            assert all(abs(shift - lead_s) <= 0.2 for shift in shifts), shifts
    uncut = word_error_rate(references, [t.text for t in plain])
    assert word_error_rate(references, padded) <= max(1.1 * uncut, uncut + 0.02) + 1e-9, (plain, padded)


def test_music_between_two_utterances_gives_words_only_in_the_speech(clips, transcriber, tmp_path):
    first, second = (load_media(clip["video"]) for clip in clips[:2])
    gap = 20 * VIDEO_FPS
    video = np.concatenate([first.video, np.repeat(first.video[-1:], gap, 0), second.video])
    audio = np.concatenate([first.audio[: len(first.video) * 640], 0.1 * music_16k(20.0), second.audio])
    joined = write_video(tmp_path / "speech_music_speech.mp4", video, VIDEO_FPS, audio)
    transcript = transcriber(joined)
    music_from, music_to = len(first.video) / VIDEO_FPS, len(first.video) / VIDEO_FPS + 20.0
    assert transcript.words
    inside_music = [w for w in transcript.words if w.end_s > music_from + 0.3 and w.start_s < music_to - 0.3]
    assert not inside_music, inside_music
    assert all(a >= music_to - 0.3 or b <= music_from + 0.3 for a, b in transcript.speech_regions)
    second_words = [w for w in transcript.words if w.start_s >= music_to - 0.3]
    assert second_words and second_words[0].start_s <= music_to + 0.5
    text = transcript.text.split()
    assert word_error_rate([clips[0]["text"] + " " + clips[1]["text"]], [" ".join(text)]) < 0.35


def test_a_silent_face_and_music_give_no_words(clips, transcriber, tmp_path):
    still = load_media(clips[0]["video"]).video[:1]
    quiet = (1e-3 * np.random.default_rng(0).standard_normal(5 * SAMPLE_RATE)).astype(np.float32)
    for name, audio in [("room_tone", quiet), ("music", 0.1 * music_16k(5.0))]:
        path = write_video(tmp_path / f"silent_face_{name}.mp4", np.repeat(still, 5 * VIDEO_FPS, 0), VIDEO_FPS, audio)
        transcript = transcriber(path)
        assert transcript.face_found_rate > 0.9
        assert transcript.text == "" and transcript.speech_regions == [], (name, transcript.text)


def test_no_region_edge_falls_inside_a_word(clips, plain):
    for clip, transcript in zip(clips, plain):
        regions = transcript.speech_regions
        for word in clip["words"]:
            assert any(a <= word["start_s"] + 0.02 and word["end_s"] - 0.02 <= b for a, b in regions), (word, regions)


def test_each_segment_says_how_likely_it_holds_no_speech(plain):
    transcript = plain[0]
    assert transcript.segments
    assert all(0.0 <= s.no_speech_prob < 0.5 for s in transcript.segments)
    as_json = transcript.to_dict()
    assert all("no_speech_prob" in s for s in as_json["segments"])
    times = [w["start_s"] for w in as_json["words"]] + [b for _, b in as_json["speech_regions"]]
    assert all(round(t, 3) == t for t in times)  # to the millisecond


def test_segmentation_off_reads_the_whole_file(clips, transcriber, tmp_path):
    model = transcriber.model
    whole = Transcriber(model, transcriber.tokenizer, "", TranscribeOptions(vad=False))
    target = write_padded_copy(clips[0]["video"], tmp_path / "lead.mp4", 1.0, 1.0)
    transcript = whole(target)
    assert transcript.speech_regions == [(0.0, round(transcript.duration_s, 3))]


def test_a_speaking_mouth_is_active_and_a_held_face_is_not(clips):
    from avsr.inference.prepare import prepare_input

    prepared = prepare_input(clips[0]["video"])
    speaking = lip_activity(prepared.mouth_signal, prepared.face_found)
    words = clips[0]["words"]
    during = speaking[round(words[0]["start_s"] * VIDEO_FPS): round(words[-1]["end_s"] * VIDEO_FPS)]
    assert (during > 0.5).mean() > 0.7
    still = np.full(50, prepared.mouth_signal[10])
    assert lip_activity(still, np.ones(50, bool)).max() < 0.05
    assert lip_activity(prepared.mouth_signal, np.zeros(prepared.frames, bool)).max() == 0.0


@pytest.mark.parametrize("mode, media, reason", [("video", SPEECH, Reason.NO_FACE), ("audio", CARPHONE, Reason.NO_AUDIO)])
def test_a_mode_that_cannot_apply_fails_the_file_with_its_reason(mode, media, reason):
    model = load_model("synth-grid-tiny")
    transcriber = Transcriber(model.network, model.tokenizer, model.id, TranscribeOptions(mode=mode))
    with pytest.raises(FileError, match=f"--mode {mode}") as caught:
        transcriber(media)
    assert caught.value.reason is reason


def test_the_terminal_shows_each_segment_and_the_refused_file(clips, tmp_path):
    result = avsr_main("transcribe", clips[0]["video"], SPEECH, "--mode", "video", "-o", tmp_path, "--prefetch", "0")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert str(clips[0]["video"]) in lines
    segment = lines[lines.index(str(clips[0]["video"])) + 1]
    assert segment.startswith("[00:00.") and " --> 00:0" in segment and "] " in segment, segment
    assert "--mode video: no face was found" in result.stderr and "no_face" not in result.stdout
    assert not (tmp_path / f"{SPEECH.stem}.json").exists()


def test_words_spilling_out_of_the_speech_are_mapped_onto_it():
    from avsr.decoding.align import WordTiming
    from avsr.inference.regions import fit_to_speech, speech_extent

    probability = np.array([0.1] * 5 + [0.9] * 20 + [0.1] * 10, np.float32)
    assert speech_extent(probability, 0, 35, 0.5) == (5, 25)
    assert speech_extent(probability, 25, 35, 0.5) == (25, 35)  # no speech: the whole range
    words = [WordTiming("a", 0.10, 0.40, 1.0), WordTiming("b", 0.40, 0.80, 1.0), WordTiming("c", 0.80, 1.20, 1.0)]
    fitted = fit_to_speech(words, 0.2, 1.0)  # onset 5 frames, offset 25 frames at 25 Hz
    assert [round(w.start_s, 3) for w in fitted] == [0.2, 0.418, 0.709] and round(fitted[-1].end_s, 3) == 1.0
    assert fit_to_speech(words, 0.0, 2.0) == words  # inside the speech already: unchanged
