"""The preprocessing spec: derived values, normalisation, and the spec travelling in bundles."""

from __future__ import annotations

import pytest
import torch

from avsr.models.av_model import AVSRModel, ModelConfig
from avsr.models.bundle import BundleError, load_bundle, save_bundle
from avsr.preprocessing import Preprocessing, PreprocessingError

SMALL = ModelConfig(dim=32, num_heads=2, ffn_dim=64, audio_layers=1, video_layers=1, fusion_layers=1,
                    video_channels=(8, 16), dropout=0.0)


def test_values_are_derived_from_each_other():
    spec = Preprocessing()
    assert (spec.samples_per_frame, spec.frame_s) == (640, 0.04)
    assert spec.crop_box() == (slice(4, 92), slice(4, 92))
    assert spec.crop_box((0, 8)) == (slice(0, 88), slice(8, 96))
    with pytest.raises(PreprocessingError, match="crop_size=100"):
        Preprocessing(crop_size=100)
    with pytest.raises(PreprocessingError, match="whole number"):
        Preprocessing(sample_rate=16_000, fps=30)
    with pytest.raises(PreprocessingError, match="video_norm='cmvn'"):
        Preprocessing(video_norm="cmvn")


def test_global_normalisation_standardises_and_zeroes_padding():
    video = torch.full((2, 5, 4, 4), 100, dtype=torch.uint8)
    face = torch.ones(2, 5, dtype=torch.bool)
    face[0, 1] = False  # a blanked frame inside the clip keeps its standardised value under global
    x = Preprocessing().normalise_video(video, face, torch.tensor([5, 3]))
    expected = (100 / 255 - 0.421) / 0.165
    torch.testing.assert_close(x[0], torch.full((5, 4, 4), expected))
    torch.testing.assert_close(x[1, :3], torch.full((3, 4, 4), expected))
    assert (x[1, 3:] == 0).all()


def test_utterance_normalisation_removes_the_mean_image_of_the_frames_with_a_face():
    generator = torch.Generator().manual_seed(0)
    video = torch.randint(0, 256, (2, 6, 8, 8), generator=generator, dtype=torch.uint8)
    face = torch.ones(2, 6, dtype=torch.bool)
    face[0, 2] = False
    lengths = torch.tensor([6, 4])
    x = Preprocessing(video_norm="utterance").normalise_video(video, face, lengths)
    torch.testing.assert_close(x[0, [0, 1, 3, 4, 5]].mean(dim=0), torch.zeros(8, 8), atol=1e-5, rtol=0)
    torch.testing.assert_close(x[1, :4].mean(dim=0), torch.zeros(8, 8), atol=1e-5, rtol=0)
    assert (x[0, 2] == 0).all() and (x[1, 4:] == 0).all()
    # Identity and lighting go: a brighter copy of the same clip gives the same input.
    brighter_video = video.float() + 20
    kept = brighter_video.clone()
    brighter = Preprocessing(video_norm="utterance").normalise_video(brighter_video, face, lengths)
    torch.testing.assert_close(brighter, x, atol=1e-5, rtol=0)
    assert torch.equal(brighter_video, kept), "normalisation wrote into its input"


def test_normalisation_gives_the_values_of_its_formula_bit_for_bit():
    """Computed in place on one copy (a batch-sized temporary costs its page faults), the input is
    exactly the formula's: standardised grey levels, less the mean over the frames with a face, those
    without zero (+0.0), scaled to ``motion_rms`` (utterance_rms); padding zero under global."""
    from avsr.preprocessing import MIN_MOTION_RMS

    generator = torch.Generator().manual_seed(1)
    video = torch.randint(0, 256, (3, 40, 88, 88), generator=generator, dtype=torch.uint8)
    face = torch.rand(3, 40, generator=generator) > 0.2
    lengths = torch.tensor([40, 31, 12])
    valid = torch.arange(40)[None] < lengths[:, None]
    for norm in ("global", "utterance", "utterance_rms"):
        spec = Preprocessing(video_norm=norm)
        x = (video.float() / 255 - spec.pixel_mean) / spec.pixel_std
        if norm == "global":
            expected = torch.where(valid[..., None, None], x, torch.zeros_like(x))
        else:
            mask = (face & valid)[..., None, None]
            frames = mask.sum(dim=1, keepdim=True).clamp(min=1)
            expected = torch.where(mask, x - (x * mask).sum(dim=1, keepdim=True) / frames, torch.zeros_like(x))
            if norm == "utterance_rms":
                rms = (expected.square().sum(dim=(1, 2, 3), keepdim=True) / (frames * 88 * 88)).sqrt()
                expected = expected * (spec.motion_rms / rms.clamp(min=MIN_MOTION_RMS))
        got = spec.normalise_video(video, face, lengths)
        assert torch.equal(got, expected) and torch.equal(got.signbit(), expected.signbit()), norm


def test_the_spec_travels_in_the_bundle_and_is_checked_at_load(tmp_path):
    spec = Preprocessing(crop_size=80, video_norm="utterance")
    model = AVSRModel(SMALL, spec)
    path = save_bundle(tmp_path / "m.pt", model)
    assert load_bundle(path)[0].preprocessing == spec

    payload = torch.load(path, weights_only=True)
    old = {k: v for k, v in payload.items() if k != "preprocessing"}  # made before the spec existed
    torch.save(old, tmp_path / "old.pt")
    assert load_bundle(tmp_path / "old.pt")[0].preprocessing == Preprocessing()

    torch.save(payload | {"preprocessing": spec.to_dict() | {"sample_rate": 8000}}, tmp_path / "8k.pt")
    with pytest.raises(BundleError, match="8k.pt: the model expects 8000 Hz audio"):
        load_bundle(tmp_path / "8k.pt")
    torch.save(payload | {"preprocessing": spec.to_dict() | {"gamma": 2.2}}, tmp_path / "new.pt")
    with pytest.raises(BundleError, match="unknown preprocessing field.*gamma.*upgrade avsr"):
        load_bundle(tmp_path / "new.pt")


def test_utterance_rms_gives_a_small_and_a_large_movement_the_same_amplitude():
    generator = torch.Generator().manual_seed(0)
    motion = torch.randn(1, 8, 6, 6, generator=generator) * 10
    face = torch.ones(2, 8, dtype=torch.bool)
    face[1, 3] = False  # a frame without a face stays 0 and does not count
    lengths = torch.tensor([8, 6])
    video = torch.cat([120 + motion, 120 + 3 * motion])  # the second face moves three times as much
    spec = Preprocessing(video_norm="utterance_rms", motion_rms=0.3)
    x = spec.normalise_video(video, face, lengths)
    for b, frames in ((0, [0, 1, 2, 3, 4, 5, 6, 7]), (1, [0, 1, 2, 4, 5])):
        torch.testing.assert_close(x[b, frames].square().mean().sqrt(), torch.tensor(0.3), atol=1e-5, rtol=0)
        torch.testing.assert_close(x[b, frames].mean(dim=0), torch.zeros(6, 6), atol=1e-5, rtol=0)
    assert (x[1, 3] == 0).all() and (x[1, 6:] == 0).all()
    # Under plain ``utterance`` the two amplitudes stay three times apart.
    plain = Preprocessing(video_norm="utterance").normalise_video(video, face, lengths)
    assert plain[1, :3].square().mean() > 8 * plain[0, :3].square().mean()
    # A still mouth (tracker noise only) is not blown up to the amplitude of speech.
    still = spec.normalise_video(torch.full((1, 8, 6, 6), 120.0) + motion * 0.01,
                                 face[:1], lengths[:1])
    assert still.square().mean().sqrt() < 0.05


def test_a_face_held_still_around_the_speech_leaves_the_speaking_frames_as_they_were(prepared_corpus):
    """utterance_moving: 3 s of the first crop held before a real clip's speech and 2 s of its last after
    (``avsr evaluate --lead-in-s 3 --trail-s 2``) leave the speaking frames' input as it was; under
    utterance_rms the still frames pull the mean image towards them and shrink the motion's scale."""
    import numpy as np

    from avsr.evaluation.perturb import lengthened
    from avsr.evaluation.sweep import load_items

    (item, *_), _ = load_items(str(prepared_corpus / "test.jsonl"))
    long = lengthened(item, 75, 50, -60.0, np.random.default_rng(0))
    frames = len(item["video"])

    def normalised(norm, clip):
        video, face = torch.from_numpy(clip["video"])[None], torch.from_numpy(clip["face_found"])[None]
        return Preprocessing(video_norm=norm).normalise_video(video, face, torch.tensor([len(clip["video"])]))[0]

    for norm, close in (("utterance_rms", False), ("utterance_moving", True)):
        tight, held = normalised(norm, item), normalised(norm, long)
        assert torch.allclose(held[75:75 + frames], tight, atol=1e-3) is close, norm
    assert torch.equal(held[:75], held[75].expand(75, -1, -1))  # the held face: its first frame, still
    assert (held[:75] - tight[0]).abs().max() < 1e-3
