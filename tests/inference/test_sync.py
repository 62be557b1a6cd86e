"""Audio-video offsets of real files: the estimate from mouth and speech, the warning, the correction
before recognition, and the attention fields of ``avsr transcribe``'s ``.json``."""

from __future__ import annotations

import copy
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import avsr
from avsr.inference.sync import SYNC_MIN_CONFIDENCE, attention_offset, estimate_offset, mouth_opening, speech_envelope
from avsr.inference.prepare import prepare_input
from avsr.inference.transcribe import TranscribeOptions, Transcriber
from avsr.io.media import load_media
from avsr.io.writer import write_offset_copy
from avsr.models.av_model import AVSRModel, ModelConfig
from avsr.models.bundle import save_bundle
from tests.conftest import CARPHONE

AVSR = str(Path(sys.executable).with_name("avsr"))


@pytest.fixture(scope="module")
def clips(synth_corpus) -> list[dict]:
    """One test clip of each test speaker of the shared test corpus."""
    by_speaker = {}
    for clip in synth_corpus.split("test"):
        by_speaker.setdefault(clip["speaker"], clip)
    return list(by_speaker.values())


def test_an_offset_copy_moves_the_picture_and_keeps_everything(clips, tmp_path):
    source = load_media(clips[0]["video"])
    for frames in (3, -2):
        copy = load_media(write_offset_copy(clips[0]["video"], tmp_path / f"{frames}.mp4", frames))
        assert len(copy.video) == len(source.video) + 3 * (frames == 3) + 2 * (frames == -2)
        late = copy.video[frames:] if frames > 0 else copy.video[: frames]
        assert np.abs(late.astype(int) - source.video.astype(int)).mean() < 4  # the same frames, re-encoded
        sound = copy.audio[: len(source.audio)] if frames > 0 else copy.audio[-frames * 640:][: len(source.audio)]
        assert np.corrcoef(sound, source.audio[: len(sound)])[0, 1] > 0.95


def test_the_sync_estimate_recovers_a_known_shift_of_a_synthetic_clip(synth_corpus, tmp_path):
    """Six test clips (1.7-2 s each) shifted by -200 ... +200 ms. Speech is rhythmic, so a short clip
    can correlate as well a syllable away: those estimates must say so (a low confidence), and the
    confident ones, which transcription acts on, must be right."""
    errors, confident = [], []
    for clip in synth_corpus.split("test")[:6]:
        for frames in (-5, -3, 0, 3, 5):
            prepared = prepare_input(write_offset_copy(clip["video"], tmp_path / f"{clip['id']}_{frames}.mp4", frames))
            estimate = estimate_offset(prepared.mouth_signal, prepared.audio)
            assert estimate is not None and 0 <= estimate.confidence <= 1 and estimate.correlation > 0.2
            errors.append(abs(estimate.offset_ms - 40 * frames))
            if estimate.confidence >= SYNC_MIN_CONFIDENCE:
                confident.append(errors[-1])
                assert errors[-1] < 60, (clip["id"], frames, estimate)  # measured: at most 36 ms
    assert len(confident) >= len(errors) / 2, errors
    assert statistics.median(confident) <= 40, confident  # the target for the median


def test_no_estimate_without_a_moving_mouth_or_without_sound(clips):
    prepared = prepare_input(clips[0]["video"])
    assert estimate_offset(np.full(prepared.frames, 0.2), prepared.audio) is None  # a still mouth
    assert estimate_offset(prepared.mouth_signal, np.zeros_like(prepared.audio)) is None  # silence
    assert estimate_offset(np.full(prepared.frames, np.nan), prepared.audio) is None  # no face anywhere
    assert mouth_opening(np.full((4, 40, 2), np.nan)).tolist() == [pytest.approx(np.nan, nan_ok=True)] * 4
    assert speech_envelope(np.zeros(640 * 3, np.float32)).shape == (3,)


def test_the_pixel_signal_follows_a_real_mouth_between_landmark_frames(monkeypatch):
    """A real face (the carphone sequence): the crops' mouth component, with landmarks on every 3rd
    frame, follows the opening that landmarks on every frame read (measured 0.93), frame-to-frame
    changes included (0.89; the opening interpolated between every 3rd frame: 0.75). No face, no value.
    The component of a short file (from the centred pixels) is the one of a long file (from their
    covariance, read in blocks)."""
    from avsr.inference import sync
    from avsr.inference.sync import mouth_signal
    from avsr.io.lip_roi import LipRoiOptions, extract_lip_roi

    every = mouth_opening(extract_lip_roi(CARPHONE, LipRoiOptions(detect_every=1)).mouth_landmarks)
    third = extract_lip_roi(CARPHONE, LipRoiOptions(detect_every=3))
    signal = mouth_signal(third.roi, third.face_found, mouth_opening(third.mouth_landmarks))
    assert third.face_found.all() and np.isfinite(signal).all()
    assert np.corrcoef(signal, every)[0, 1] > 0.85  # signed by the opening: it rises as the mouth opens
    assert np.corrcoef(np.diff(signal), np.diff(every))[0, 1] > 0.8
    found = third.face_found.copy()
    found[10:20] = False  # the face lost for 10 frames
    partial = mouth_signal(third.roi, found, mouth_opening(third.mouth_landmarks))
    assert np.isnan(partial[10:20]).all() and np.isfinite(partial[found]).all()
    assert np.isnan(mouth_signal(third.roi, np.zeros_like(found), np.full(len(found), np.nan))).all()
    monkeypatch.setattr(sync, "MOUTH_PIXELS", 0)  # the long-file route
    monkeypatch.setattr(sync, "PCA_BLOCK", 7)
    np.testing.assert_allclose(mouth_signal(third.roi, found, mouth_opening(third.mouth_landmarks)), partial,
                               rtol=1e-6, atol=1e-6 * np.abs(partial[found]).max())


def test_the_envelope_of_a_long_recording_is_computed_a_block_at_a_time_and_exactly(clips):
    clip = prepare_input(clips[0]["video"]).audio
    audio = np.tile(clip, 640 * 3100 // len(clip) + 1)[: 640 * 3100 + 17]  # over two blocks, a ragged end
    frames = audio[: 640 * 3100].reshape(3100, 640).astype(np.float64)
    expected = 10 * np.log10((frames ** 2).mean(axis=1) + 1e-10)
    np.testing.assert_allclose(speech_envelope(audio), expected, rtol=0, atol=1e-9)


def untaught(network: AVSRModel) -> AVSRModel:
    """A copy of an xattn model whose audio-to-video attention is set back to a fresh start (seeded):
    a model that was never taught where the lips are."""
    network = copy.deepcopy(network)
    attention = network.fusion.audio_to_video
    torch.manual_seed(0)
    for layer in (attention.query, attention.key_value, attention.norm_query, attention.norm_memory):
        layer.reset_parameters()
    torch.nn.init.zeros_(attention.position_bias)
    return network


@pytest.mark.parametrize("taught", [True, False], ids=["attention", "mouth"])
def test_transcription_reports_and_undoes_an_offset(clips, tmp_path, taught):
    """The embedded model's attention was taught where the lips are: the offset is read from it. A
    copy whose attention was not falls back to the mouth's estimate."""
    model = avsr.load_model("synth-grid-tiny")
    network = model.network if taught else untaught(model.network)
    runs = {s: Transcriber(network, model.tokenizer, model.id, TranscribeOptions(av_sync=s)) for s in ("auto", "off")}
    corrected = 0
    for clip in clips:
        late = prepare_input(write_offset_copy(clip["video"], tmp_path / f"{clip['id']}.mp4", 5))
        fixed, kept = runs["auto"].recognise(late), runs["off"].recognise(late)
        assert fixed.av_sync_source == kept.av_sync_source == ("attention" if taught else "mouth")
        if taught:  # the attention's estimate is within 20 ms and always acted on
            assert abs(fixed.av_offset_ms - 200) <= 20 and fixed.av_sync_confidence >= 0.5
        assert 120 < fixed.av_offset_ms < 280 and fixed.av_offset_ms == kept.av_offset_ms
        assert kept.av_sync_shift_ms == 0 and any("the video lags by about" in w for w in kept.warnings)
        if fixed.av_sync_confidence < SYNC_MIN_CONFIDENCE:  # reported, not acted on
            assert fixed.av_sync_shift_ms == 0 and any("left as it is: the estimate is unsure" in w for w in fixed.warnings)
            continue
        corrected += 1
        rounded = math.floor if taught else int  # the attention's estimate rounded down, the mouth's toward zero
        assert fixed.av_sync_shift_ms == 40 * rounded(fixed.av_offset_ms / 40)
        assert any("the video lags by about" in w and "moved back" in w for w in fixed.warnings)
        clean = runs["auto"].recognise(prepare_input(clip["video"]))
        assert abs(clean.av_offset_ms) <= 80 and clean.av_sync_shift_ms == 0
        assert not any("step" in w for w in clean.warnings)
        if fixed.av_sync_shift_ms == 200:  # undone exactly: the gate sees the same lips at each moment
            # (the copy's sound starts with the clip's, its picture 5 held frames later: frame t is the clip's t)
            weights = np.array(fixed.audio_weight[: len(clean.audio_weight)])
            assert np.nanmean(np.abs(weights - np.array(clean.audio_weight))) < 0.05  # NaN: outside the speech
    assert corrected >= (len(clips) if taught else 1)


@pytest.mark.slow
def test_the_json_has_the_offset_always_and_the_attention_only_when_asked(clips, tmp_path):
    torch.manual_seed(0)
    xattn = save_bundle(tmp_path / "xattn.pt", AVSRModel(ModelConfig(dim=32, num_heads=2, ffn_dim=64, audio_layers=1,
                                                                     video_layers=1, video_channels=(8, 16),
                                                                     fusion="xattn", xattn_window=4)))
    video = clips[0]["video"]
    for flags, name in (([], "plain"), (["--attention"], "attention")):
        result = subprocess.run([AVSR, "transcribe", str(video), "--model", str(xattn), "-o", str(tmp_path / name),
                                 "--mode", "av", "--quiet", *flags], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
    plain = json.loads((tmp_path / "plain" / f"{Path(video).stem}.json").read_text())
    asked = json.loads((tmp_path / "attention" / f"{Path(video).stem}.json").read_text())
    for out in (plain, asked):
        assert isinstance(out["av_offset_ms"], float) and 0 <= out["av_sync_confidence"] <= 1
    assert "attention_offset_frames" not in plain and "attention_peak" not in plain
    frames = len(asked["audio_weight"])
    assert len(asked["attention_offset_frames"]) == len(asked["attention_peak"]) == frames
    assert all(-4 <= o <= 4 for o in asked["attention_offset_frames"])
    assert all(1 / 9 - 1e-3 <= p <= 1 for p in asked["attention_peak"])


def test_the_attention_estimate_is_the_offset_most_frames_looked_at():
    """``attention_offset``: the median vote, refined within a frame; agreement as confidence; frames
    without a face do not vote; too few votes give no estimate."""
    rng = np.random.default_rng(0)
    window, frames = 8, 60
    attention = rng.random((frames, 2 * window + 1)) * 0.1
    looked = np.where(np.arange(frames) % 4 == 0, 4, 3)  # three quarters at +3 frames, a quarter at +4
    attention[np.arange(frames), window + looked] = 1.0
    attention /= attention.sum(axis=1, keepdims=True)
    face = np.ones(frames, bool)
    estimate = attention_offset(attention, face)
    assert estimate.source == "attention" and estimate.confidence == 1.0
    assert estimate.offset_ms == pytest.approx(40 * 3.25)

    scattered = attention.copy()
    scattered[:20] = np.roll(scattered[:20], -7, axis=1)  # a third look 7 frames earlier
    assert attention_offset(scattered, face).confidence == pytest.approx(40 / 60)
    no_face = face.copy()
    no_face[:20] = False  # ... but those frames had no face: they do not vote
    assert attention_offset(scattered, no_face).confidence == 1.0
    assert attention_offset(attention, np.arange(frames) < 24) is None
    split = attention.copy()
    split[:30] = np.roll(split[:30], -6, axis=1)  # two far-apart halves: the median lies between them
    halves = [40 * np.mean(np.where(np.arange(first, first + 30) % 4 == 0, 4, 3) - shift)
              for first, shift in ((0, 6), (30, 0))]  # -2.73 and +3.23 frames
    estimate = attention_offset(split, face)
    assert estimate.confidence == 0.5 and estimate.offset_ms in [pytest.approx(h) for h in halves]
    assert attention_offset(np.zeros_like(attention), face) is None  # a model that attended to nothing
