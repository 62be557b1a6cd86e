"""Noise mixing on real speech, augmentation, bucketing and collation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avsr.data.augment import Augmenter, AugmentOptions, shift_video
from avsr.data.dataset import BucketBatchSampler, collate
from avsr.data.noise import NoiseFolder, babble, measured_snr_db, mix_at_snr, white_noise
from avsr.data.tokenizer import CharTokenizer
from avsr.io.spool import ShiftedFrames
from tests.conftest import MUSIC, SPEECH, read_wav


@pytest.mark.parametrize("snr_db", [-10, -5, 0, 5, 10, 20])
def test_noise_hits_the_requested_snr_on_real_speech(snr_db):
    speech, _ = read_wav(SPEECH)
    rng = np.random.default_rng(1)
    for noise in (white_noise(len(speech), rng), babble([speech[::-1], np.roll(speech, 9000)], len(speech), rng)):
        assert abs(measured_snr_db(speech, mix_at_snr(speech, noise, snr_db)) - snr_db) < 0.1


def test_music_folder_noise(tmp_path):
    """A folder of real recordings (8 kHz music): read at 16 kHz, a window of it per draw, repeated when
    the request is longer than the recording."""
    import shutil

    from avsr.io.media import load_media

    shutil.copy(MUSIC, tmp_path / "music.wav")
    folder = NoiseFolder(tmp_path)
    whole = load_media(MUSIC, video=False).audio
    assert len(whole) == 8 * 16_000  # 8 s at 8 kHz, resampled
    sample = folder.sample(16_000, np.random.default_rng(0))
    assert sample.shape == (16_000,) and sample.std() > 0.01
    starts = [s for s in np.flatnonzero(whole == sample[0]) if np.array_equal(whole[s:s + 16_000], sample)]
    assert starts, "the sample is not a piece of the recording"
    assert not np.array_equal(folder.sample(16_000, np.random.default_rng(1)), sample)
    longer = folder.sample(len(whole) + 16_000, np.random.default_rng(0))
    np.testing.assert_array_equal(longer[:len(whole)], whole)
    np.testing.assert_array_equal(longer[len(whole):], whole[:16_000])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no audio files"):
        NoiseFolder(tmp_path / "empty")


def test_augmentation_is_seeded_and_shapes_are_right():
    speech, _ = read_wav(SPEECH)
    frames = len(speech) // 640
    video = np.random.default_rng(0).integers(0, 255, (frames, 96, 96), dtype=np.uint8)
    face = np.ones(frames, bool)
    audio = speech[: frames * 640]
    augment = Augmenter(AugmentOptions(noise_prob=1.0, drop_audio_prob=0.0, drop_video_prob=0.0))
    first = augment(video, face, audio, np.random.default_rng([0, 0, 5]))
    again = augment(video, face, audio, np.random.default_rng([0, 0, 5]))
    other = augment(video, face, audio, np.random.default_rng([0, 1, 5]))
    assert first[0].shape == (frames, 88, 88)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[2], other[2])
    centre = Augmenter(AugmentOptions.evaluation())(video, face, audio, np.random.default_rng(0))
    np.testing.assert_array_equal(centre[0], video[:, 4:92, 4:92])
    np.testing.assert_array_equal(centre[2], audio)


def test_each_frames_snr_is_that_of_the_noise_mixed_into_it():
    """The augmentation reports each frame's SNR under the noise it mixed in: 20 dB more noise lowers
    every frame's SNR by exactly 20 dB, a speaker's pauses sit far below the speech, frames without
    noise sit at the cap, and frames with no audio at all (dropped, masked) have none."""
    from avsr.data.augment import SNR_CAP_DB

    speech, _ = read_wav(SPEECH)
    frames = len(speech) // 640
    video, face, audio = np.full((frames, 96, 96), 128, np.uint8), np.ones(frames, bool), speech[: frames * 640]
    plain = dict(drop_audio_prob=0.0, drop_video_prob=0.0, blank_span_prob=0.0, time_mask_prob=0.0,
                 noise_types=("white",))
    snrs = {}
    for level in (10.0, -10.0):
        out = Augmenter(AugmentOptions(noise_prob=1.0, snr_db_range=(level, level), **plain))(
            video, face, audio, np.random.default_rng(3))
        assert out[3].shape == (frames,) and out[3].dtype == np.float32
        snrs[level] = out[3]
    np.testing.assert_allclose(snrs[10.0] - snrs[-10.0], 20.0, atol=1e-3)
    energy = (audio.astype(np.float64).reshape(frames, 640) ** 2).sum(axis=1)
    loud, quiet = energy > np.quantile(energy, 0.8), energy < np.quantile(energy, 0.2)
    assert snrs[10.0][loud].min() > snrs[10.0][quiet].max() + 10
    clean = Augmenter(AugmentOptions(noise_prob=0.0, **plain))(video, face, audio, np.random.default_rng(3))[3]
    assert (clean == SNR_CAP_DB).all()
    dropped = Augmenter(AugmentOptions(noise_prob=1.0, **(plain | dict(drop_audio_prob=1.0))))(
        video, face, audio, np.random.default_rng(3))[3]
    assert np.isnan(dropped).all()
    masked = Augmenter(AugmentOptions(noise_prob=0.0, **(plain | dict(time_mask_prob=1.0))))(
        video, face, audio, np.random.default_rng(3))
    silent = ~masked[2].reshape(frames, 640).any(axis=1)
    assert silent.any() and np.isnan(masked[3][silent]).all() and (masked[3][~silent] == SNR_CAP_DB).all()
    batch = collate([{"id": "a", "text": "a", "video": out[0], "face_found": out[1], "audio": out[2],
                      "frame_snr": out[3], "tokens": torch.tensor([1])},
                     {"id": "b", "text": "b", "video": out[0][:10], "face_found": out[1][:10], "audio": out[2][:6400],
                      "frame_snr": out[3][:10], "tokens": torch.tensor([1])}])
    np.testing.assert_array_equal(batch.frame_snr[0].numpy(), out[3])
    assert torch.isnan(batch.frame_snr[1, 10:]).all()  # the padding has no condition


def test_dropping_video_clears_face_found():
    video = np.full((30, 96, 96), 128, np.uint8)
    out = Augmenter(AugmentOptions(noise_prob=0, drop_audio_prob=0, drop_video_prob=1.0, time_mask_prob=0))(
        video, np.ones(30, bool), np.zeros(30 * 640, np.float32), np.random.default_rng(0))
    assert (out[0] == 0).all() and not out[1].any()


@pytest.mark.parametrize("frames", [3, -2, 0, 30, -31])
def test_shifting_the_video_moves_it_exactly_and_what_comes_in_from_outside_has_no_face(frames):
    video = np.arange(20, dtype=np.uint8)[:, None, None] + np.zeros((20, 4, 4), np.uint8)  # frame i is all i
    face = np.arange(20) % 7 != 6  # a few frames without a face of their own
    shifted, found = shift_video(video, face, frames)
    assert shifted.shape == video.shape and found.shape == face.shape
    for t in range(20):
        source = t - frames  # positive: the video lags, so frame t shows what was at t - frames
        if 0 <= source < 20:
            assert (shifted[t] == source).all() and found[t] == face[source]
        else:
            assert (shifted[t] == 0).all() and not found[t]


def test_undoing_an_offset_can_hold_the_clips_edge_frames():
    video = np.arange(1, 11, dtype=np.uint8)[:, None, None] + np.zeros((10, 2, 2), np.uint8)
    face = np.ones(10, bool)
    early, found = ShiftedFrames(video, -3)[:], ShiftedFrames(face, -3)[:]  # a file whose video lags 3 frames
    assert early[:, 0, 0].tolist() == [4, 5, 6, 7, 8, 9, 10, 10, 10, 10] and found.all()
    late, found = ShiftedFrames(video, 2)[:], ShiftedFrames(face, 2)[:]
    assert late[:, 0, 0].tolist() == [1, 1, 1, 2, 3, 4, 5, 6, 7, 8] and found.all()


def test_offset_augmentation_draws_a_seeded_shift_within_its_range():
    video = np.repeat(np.arange(1, 41, dtype=np.uint8)[:, None, None], 96, 1).repeat(96, 2)
    options = AugmentOptions(noise_prob=0, drop_audio_prob=0, drop_video_prob=0, blank_span_prob=0,
                             time_mask_prob=0, flip_prob=0, offset_prob=1.0, max_offset_frames=3)
    shifts = set()
    for seed in range(40):
        out, found, _, _, reported = Augmenter(options)(video, np.ones(40, bool), np.zeros(40 * 640, np.float32),
                                                        np.random.default_rng(seed))
        first = int(np.flatnonzero(found)[0])
        shift = first if first else -(int(out[0, 0, 0]) - 1)  # late video starts black; early video starts later
        np.testing.assert_array_equal(out, shift_video(video[:, 4:92, 4:92], np.ones(40, bool), shift)[0])
        assert reported == shift  # the shift it reports (Batch.av_offset) is the one it made
        shifts.add(shift)
    assert shifts == set(range(-3, 4))  # every shift in ±3 frames is drawn, none beyond
    again = Augmenter(options)(video, np.ones(40, bool), np.zeros(40 * 640, np.float32), np.random.default_rng(7))
    np.testing.assert_array_equal(again[0], Augmenter(options)(video, np.ones(40, bool), np.zeros(40 * 640, np.float32),
                                                               np.random.default_rng(7))[0])


def test_face_gaps_blank_a_few_short_spans_and_clear_their_face():
    video = np.full((60, 96, 96), 128, np.uint8)
    options = AugmentOptions(noise_prob=0, drop_audio_prob=0, drop_video_prob=0, blank_span_prob=0, time_mask_prob=0,
                             flip_prob=0, face_gap_prob=1.0, max_face_gaps=3, max_face_gap_frames=4)
    widths, counts = set(), set()
    for seed in range(40):
        out, found, _, _, _ = Augmenter(options)(video, np.ones(60, bool), np.zeros(60 * 640, np.float32),
                                                 np.random.default_rng(seed))
        blank = (out == 0).all(axis=(1, 2))
        np.testing.assert_array_equal(blank, ~found)  # a frame is blank exactly where it has no face
        assert (out[found] == 128).all()
        edges = np.flatnonzero(np.diff(np.r_[0, (~found).astype(int), 0]))
        spans = edges[1::2] - edges[::2]  # gaps may touch and merge: at most 3 of at most 4 frames each
        assert 1 <= len(spans) <= 3 and spans.max() <= 3 * 4 and (~found).sum() <= 3 * 4
        widths.add(int(spans.min()))
        counts.add(len(spans))
    assert 1 in widths and counts == {1, 2, 3}
    off = AugmentOptions(noise_prob=0, drop_audio_prob=0, drop_video_prob=0, blank_span_prob=0, time_mask_prob=0,
                         flip_prob=0)
    assert Augmenter(off)(video, np.ones(60, bool), np.zeros(60 * 640, np.float32), np.random.default_rng(0))[1].all()
    with pytest.raises(ValueError, match="max_face_gap_frames=0 must be 1 or more"):
        AugmentOptions(max_face_gap_frames=0)


def test_bucketing_respects_the_frame_budget_and_covers_everything():
    lengths = list(np.random.default_rng(0).integers(20, 120, 200))
    sampler = BucketBatchSampler(lengths, max_frames=600, seed=0)
    batches = list(sampler)
    seen = sorted(index for batch in batches for index, _ in batch)
    assert seen == list(range(200))
    assert all(max(lengths[i] for i, _ in batch) * len(batch) <= 600 for batch in batches)
    sampler.set_epoch(1)
    assert [b for b in sampler] != batches
    with pytest.raises(ValueError, match="raise max_frames"):
        BucketBatchSampler([700], max_frames=600)


def test_collate_pads_with_lengths():
    tokenizer = CharTokenizer()
    items = [{"id": str(n), "text": "bin blue", "video": np.zeros((n, 88, 88), np.uint8), "face_found": np.ones(n, bool),
              "audio": np.ones(n * 640, np.float32), "tokens": torch.tensor(tokenizer.encode("bin blue"[:n]))}
             for n in (5, 8)]
    batch = collate(items)
    assert batch.video.shape == (2, 8, 88, 88) and batch.audio.shape == (2, 8 * 640)
    assert batch.video_lengths.tolist() == [5, 8] and batch.audio_lengths.tolist() == [3200, 5120]
    assert (batch.audio[0, 3200:] == 0).all() and not batch.face_found[0, 5:].any()
    assert tokenizer.decode(tokenizer.encode("it's a test")) == "it's a test"
    with pytest.raises(ValueError, match="outside the tokenizer"):
        tokenizer.encode("Hello!")


def test_padding_adds_silence_and_repeats_the_edge_frames():
    speech, _ = read_wav(SPEECH)
    frames = len(speech) // 640
    video = np.random.default_rng(0).integers(0, 255, (frames, 96, 96), dtype=np.uint8)
    crops, audio = video[:, 4:92, 4:92], speech[: frames * 640]
    options = AugmentOptions(noise_prob=0.0, drop_audio_prob=0.0, drop_video_prob=0.0, blank_span_prob=0.0,
                             flip_prob=0.0, time_mask_prob=0.0, random_crop=False, pad_prob=1.0, max_pad_frames=10)
    lengths = set()
    for seed in range(8):
        out_video, out_face, out_audio, _, _ = Augmenter(options)(video, np.ones(frames, bool), audio,
                                                                np.random.default_rng(seed))
        before = int(np.argmin(np.all(out_video == crops[0], axis=(1, 2)))) - 1  # repeats of the first frame
        after = len(out_video) - frames - before
        assert 0 <= before <= 10 and 0 <= after <= 10 and out_face.all() and len(out_audio) == 640 * len(out_video)
        np.testing.assert_array_equal(out_video[before:before + frames], crops)
        assert (out_video[before + frames:] == crops[-1]).all()
        np.testing.assert_array_equal(out_audio[before * 640:(before + frames) * 640], audio)
        assert not out_audio[:before * 640].any() and not out_audio[(before + frames) * 640:].any()
        lengths.add(len(out_video))
    assert len(lengths) > 1  # the amount varies with the seed


def test_babble_talkers_are_other_speakers_in_training_and_evaluation_alike():
    """One rule for both: the utterances summed into babble are never by the target's speaker."""
    from avsr.data.noise import babble_talkers

    speakers = ["s1", "s1", "s2", "s3", "s2", "s1"]
    rng = np.random.default_rng(0)
    for index in range(len(speakers)):
        for _ in range(20):
            picks = babble_talkers(index, speakers, 4, rng)
            assert picks and all(speakers[i] != speakers[index] for i in picks) and len(set(picks)) == len(picks)
    assert babble_talkers(0, ["s1", "s1"], 4, rng) == []  # nobody else to talk
