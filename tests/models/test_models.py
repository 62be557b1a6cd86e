"""Model modules: shapes, exactness under padding, learning, and bundles."""

from __future__ import annotations

import pickle

import pytest
import torch

from avsr.data.tokenizer import CharTokenizer
from avsr.models.audio_encoder import AudioEncoder
from avsr.errors import AvsrError
from avsr.models.av_model import (RETIRED_OPTIONS, AVSRModel, ModelConfig, ModelConfigError, base, drop_retired,
                                  model_config, tiny)
from avsr.models.bundle import BundleError, load_bundle, save_bundle
from avsr.models.conformer import Conformer
from avsr.models.fusion import LocalCrossAttention, attention_summary, reliability_cues
from avsr.models.video_encoder import VideoEncoder

SMALL = ModelConfig(dim=32, num_heads=2, ffn_dim=64, audio_layers=1, video_layers=1, fusion_layers=1,
                    video_channels=(8, 16), dropout=0.0)


def inputs(batch: int, frames: list[int], seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    longest = max(frames)
    audio = torch.zeros(batch, longest * 640)
    video = torch.zeros(batch, longest, 88, 88)
    face = torch.zeros(batch, longest, dtype=torch.bool)
    for i, count in enumerate(frames):
        audio[i, : count * 640] = 0.1 * torch.randn(count * 640, generator=generator)
        video[i, :count] = torch.randn(count, 88, 88, generator=generator)
        face[i, :count] = True
    lengths = torch.tensor(frames)
    return audio, lengths * 640, video, lengths, face


def test_module_shapes():
    audio, audio_lengths, video, video_lengths, face = inputs(3, [20, 17, 9])
    features, frames, logmel = AudioEncoder(32, 1, 2, 64)(audio, audio_lengths)
    assert features.shape == (3, 20, 32) and frames.tolist() == [20, 17, 9] and logmel.shape == (3, 80, 80)
    assert VideoEncoder(32, (8, 16), 1, 2, 64)(video, video_lengths).shape == (3, 20, 32)
    assert Conformer(32, 2, 64, 2)(torch.randn(3, 20, 32), video_lengths).shape == (3, 20, 32)
    cues = reliability_cues(logmel, audio_lengths, face)
    assert cues.shape == (3, 20, 3) and (cues[2, 9:] == 0).all()
    out = AVSRModel(SMALL).eval()(audio, audio_lengths, video, video_lengths, face)
    assert out.log_probs.shape == (3, 20, 29) and out.audio_weight.shape == (3, 20)
    assert torch.allclose(out.log_probs.exp().sum(-1), torch.ones(3, 20), atol=1e-4)
    assert ((out.audio_weight >= 0) & (out.audio_weight <= 1)).all()


@pytest.mark.parametrize("fusion", ["gate", "xattn", "concat", "sum", "gate+mix_concat", "gate+mix_posterior",
                                    "xattn+align"])
def test_a_sample_is_the_same_alone_and_in_a_padded_batch(fusion):
    torch.manual_seed(0)
    fusion, _, option = fusion.partition("+")
    model = AVSRModel(ModelConfig(**{**SMALL.__dict__, "fusion": fusion,
                                     "gate_mix": option[4:] if option.startswith("mix_") else "sum",
                                     "xattn_align": option == "align"})).eval()
    batch = inputs(3, [23, 11, 16], seed=1)
    alone = tuple(x[1:2, : (11 * 640 if i == 0 else 11)] if i in (0, 2, 4) else x[1:2] for i, x in enumerate(batch))
    with torch.no_grad():
        together = model(*batch)
        single = model(*alone)
    torch.testing.assert_close(together.log_probs[1, :11], single.log_probs[0], atol=1e-4, rtol=1e-4)
    if fusion == "xattn":
        torch.testing.assert_close(together.attention[1, :11], single.attention[0], atol=1e-5, rtol=1e-4)


def test_modes_force_the_weights():
    model = AVSRModel(SMALL).eval()
    with torch.no_grad():
        audio_only = model(*inputs(2, [12, 12]), mode="audio")
        video_only = model(*inputs(2, [12, 12]), mode="video")
    assert (audio_only.audio_weight == 1).all() and (video_only.audio_weight == 0).all()
    with pytest.raises(ValueError, match="mode='both'"):
        model(*inputs(1, [5]), mode="both")


def test_an_audio_only_model_has_no_video_path_and_runs_audio_mode_alone():
    model = AVSRModel(ModelConfig(**{**SMALL.__dict__, "modalities": "audio"})).eval()
    assert model.modes == ("audio",)
    assert not any(name.startswith(("video", "fusion", "shared", "head")) for name, _ in model.named_parameters())
    batch = inputs(2, [14, 9])
    with torch.no_grad():
        out = model(*batch, mode="audio")
        same = AVSRModel(ModelConfig(**{**SMALL.__dict__, "modalities": "audio"})).eval()
        same.load_state_dict(model.state_dict())
        other_video = same(*batch[:2], torch.randn_like(batch[2]), *batch[3:], mode="audio")
    assert out.log_probs.shape == (2, 14, 29) and out.video_log_probs is None
    torch.testing.assert_close(out.log_probs, other_video.log_probs)  # the lips play no part
    for mode in ("av", "video"):
        with pytest.raises(ValueError, match="runs audio"):
            model(*batch, mode=mode)
    with pytest.raises(ValueError, match="modalities='both'"):
        ModelConfig(modalities="both")


def test_a_video_only_model_has_no_audio_path_and_runs_video_mode_alone():
    model = AVSRModel(ModelConfig(**{**SMALL.__dict__, "modalities": "video"})).eval()
    assert model.modes == ("video",)
    assert {name.split(".")[0] for name, _ in model.named_parameters()} == {"video_encoder", "video_head"}
    batch = inputs(2, [14, 9])
    with torch.no_grad():
        out = model(*batch, mode="video")
        other_audio = model(torch.randn_like(batch[0]), *batch[1:], mode="video")
    assert out.log_probs.shape == (2, 14, 29) and out.audio_log_probs is None and (out.audio_weight == 0).all()
    torch.testing.assert_close(out.log_probs, other_audio.log_probs)  # the audio plays no part
    for mode in ("av", "audio"):
        with pytest.raises(ValueError, match="runs video"):
            model(*batch, mode=mode)


def test_video_pool_keeps_a_spatial_grid():
    model = AVSRModel(ModelConfig(**{**SMALL.__dict__, "video_pool": 3})).eval()
    assert model.video_encoder.project.in_features == 16 * 3 * 3
    with torch.no_grad():
        assert model(*inputs(1, [6]), mode="video").log_probs.shape == (1, 6, 29)
    with pytest.raises(ValueError, match="video_pool=0 and video_downsample=1 must be"):
        ModelConfig(video_pool=0)


@pytest.mark.slow
@pytest.mark.parametrize("modalities", ["av", "audio", "video"])
def test_one_batch_is_learned_to_zero_ctc_loss(modalities):
    torch.manual_seed(0)
    model = AVSRModel(ModelConfig(**{**SMALL.__dict__, "modalities": modalities}))
    tokenizer = CharTokenizer()
    texts = ["bin blue", "set red"]
    targets = torch.nn.utils.rnn.pad_sequence([torch.tensor(tokenizer.encode(t)) for t in texts], batch_first=True)
    target_lengths = torch.tensor([len(t) for t in texts])
    batch = inputs(2, [25, 22], seed=3)
    ctc = torch.nn.CTCLoss(zero_infinity=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        out = model(*batch, mode=modalities)
        loss = ctc(out.log_probs.transpose(0, 1), targets, out.lengths, target_lengths)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05


def test_presets():
    count = lambda config: sum(p.numel() for p in AVSRModel(config).parameters())
    assert count(tiny()) < 5_000_000
    assert count(base()) > 50_000_000
    with pytest.raises(ValueError, match="fusion='mean'"):
        ModelConfig(fusion="mean")


def test_bundle_round_trip_and_refusal(tmp_path):
    torch.manual_seed(0)
    model = AVSRModel(SMALL).eval()
    path = save_bundle(tmp_path / "m.pt", model, metadata={"trained_on": "nothing"})
    loaded, tokenizer, metadata = load_bundle(path)
    batch = inputs(2, [10, 7])
    with torch.no_grad():
        torch.testing.assert_close(model(*batch).log_probs, loaded(*batch).log_probs)
    assert tokenizer == CharTokenizer() and metadata == {"trained_on": "nothing"}

    class Payload:  # any Python object that would need unpickling code
        def __reduce__(self):
            return (print, ("this must never run",))

    evil = torch.load(path, weights_only=True) | {"metadata": Payload()}
    torch.save(evil, tmp_path / "evil.pt")
    with pytest.raises(BundleError, match="not a safe avsr bundle"):
        load_bundle(tmp_path / "evil.pt")
    (tmp_path / "pickle.pt").write_bytes(pickle.dumps({"format": "avsr-bundle-1"}))
    with pytest.raises(BundleError):
        load_bundle(tmp_path / "pickle.pt")


@pytest.mark.parametrize("mix", ["sum", "concat", "posterior"])
def test_gate_gives_video_no_weight_where_no_face_was_found(mix):
    model = AVSRModel(ModelConfig(**{**SMALL.__dict__, "gate_mix": mix})).eval()
    audio, audio_lengths, video, video_lengths, face = inputs(2, [12, 12])
    face[0, 3:8] = False
    with torch.no_grad():
        weight = model(audio, audio_lengths, video, video_lengths, face).audio_weight
    assert (weight[0, 3:8] == 1).all() and (weight[0, :3] < 1).all() and (weight[1] < 1).all()


@pytest.mark.parametrize("mix", ["sum", "concat"])
def test_a_frame_without_a_face_takes_nothing_from_the_video_stream(mix):
    from avsr.models.fusion import ReliabilityGate

    torch.manual_seed(0)
    gate = ReliabilityGate(16, mix=mix).eval()
    audio, video, cues = torch.randn(1, 9, 16), torch.randn(1, 9, 16), torch.ones(1, 9, 3)
    cues[0, 2:5, 2] = 0.0  # no face on frames 2-4
    other = video.clone()
    other[0, 2:5] = 100 * torch.randn(3, 16)  # whatever the video stream holds there ...
    with torch.no_grad():
        fused, _, _ = gate(audio, video, cues)
        changed, _, _ = gate(audio, other, cues)
    torch.testing.assert_close(fused[0, 2:5], changed[0, 2:5])  # ... does not reach the fused frames
    assert not torch.allclose(gate(audio, torch.randn(1, 9, 16), cues)[0][0, 0], fused[0, 0])  # elsewhere it does


def test_the_posterior_mix_reads_each_head_alone_at_the_weights_ends():
    torch.manual_seed(0)
    model = AVSRModel(ModelConfig(**{**SMALL.__dict__, "gate_mix": "posterior"})).eval()
    assert not hasattr(model, "shared") and not hasattr(model.fusion, "audio_proj")  # nothing follows the gate
    audio, audio_lengths, video, video_lengths, face = inputs(2, [12, 12])
    face[0, 3:8] = False  # no face: weight 1 on audio, so the fused posteriors are the audio head's
    with torch.no_grad():
        out = model(audio, audio_lengths, video, video_lengths, face)
    torch.testing.assert_close(out.log_probs[0, 3:8], out.audio_log_probs[0, 3:8])
    w = out.audio_weight[1][:, None]  # elsewhere the renormalised weighted sum of the two heads' log-posteriors
    expected = torch.log_softmax(w * out.audio_log_probs[1] + (1 - w) * out.video_log_probs[1], dim=-1)
    torch.testing.assert_close(out.log_probs[1], expected)
    assert not torch.allclose(out.log_probs[1], out.audio_log_probs[1], atol=1e-3)
    with pytest.raises(ValueError, match="use fusion gate"):
        ModelConfig(fusion="xattn", gate_mix="posterior")


def test_gate_mix_needs_a_gate():
    with pytest.raises(ValueError, match="gate_mix='product'"):
        ModelConfig(gate_mix="product")
    with pytest.raises(ValueError, match="fusion='concat' has no gate"):
        ModelConfig(fusion="concat", gate_mix="concat")


def test_xattn_returns_each_audio_frames_attention_over_its_window():
    model = AVSRModel(ModelConfig(**{**SMALL.__dict__, "fusion": "xattn", "xattn_window": 3})).eval()
    audio, audio_lengths, video, video_lengths, face = inputs(2, [12, 9])
    face[0, 4:] = False
    with torch.no_grad():
        out = model(audio, audio_lengths, video, video_lengths, face)
    assert out.attention.shape == (2, 12, 7)
    sums = out.attention.sum(dim=2)
    # Audio frame t sees video frames t-3 .. t+3 of the sample that have a face: frames 0-3 of the first
    # sample, so from audio frame 7 on it sees none and attends to nothing.
    torch.testing.assert_close(sums[0, :7], torch.ones(7))
    assert (sums[0, 7:] == 0).all()
    assert (out.attention[0, 2, 3 + 2:] == 0).all()  # frame 2 to frames 4, 5: no face there
    assert (out.attention[1, 8, 3 + 1:] == 0).all()  # the second sample ends at frame 8
    assert (out.attention[0, 0, :3] == 0).all()  # before the clip's start
    offset, peak = attention_summary(out.attention)
    assert offset.shape == peak.shape == (2, 12) and (offset.abs() <= 3).all()
    assert ((peak[0, :7] >= 1 / 7) & (peak[0, :7] <= 1)).all()
    assert AVSRModel(SMALL).eval()(audio, audio_lengths, video, video_lengths, face).attention is None


def test_a_frame_outside_the_window_has_no_influence():
    torch.manual_seed(0)
    attention = LocalCrossAttention(16, 2, window=2)
    query = torch.randn(1, 10, 16, requires_grad=True)
    memory = torch.randn(1, 10, 16, requires_grad=True)
    out, _ = attention(query, memory, torch.ones(1, 10, dtype=torch.bool))
    out[0, 5].sum().backward()
    touched = memory.grad[0].abs().sum(dim=1) > 0
    assert touched.tolist() == [False] * 3 + [True] * 5 + [False] * 2  # frames 3..7 = 5 ± 2
    assert (query.grad[0, :5].abs().sum() == 0) and (query.grad[0, 6:].abs().sum() == 0)


def test_aligned_xattn_gives_the_gate_the_video_frame_the_audio_attended_to():
    """``xattn_align``: the gate reads, at audio frame t, the video stream averaged by t's attention
    (here all on 3 frames later), and nothing from outside t's window."""
    from avsr.models.fusion import CrossAttentionGate

    torch.manual_seed(0)
    fusion = CrossAttentionGate(16, 2, window=4, align=True).eval()
    assert fusion.video_to_audio is None
    with torch.no_grad():  # scores from the position bias alone: every frame looks 3 frames later
        fusion.audio_to_video.query.weight.zero_()
        fusion.audio_to_video.position_bias.zero_()
        fusion.audio_to_video.position_bias[:, 4 + 3] = 50.0
    audio, video = torch.randn(1, 20, 16), torch.randn(1, 20, 16, requires_grad=True)
    cues, valid = torch.ones(1, 20, 3), torch.ones(1, 20, dtype=torch.bool)
    fused, weight, attention = fusion(audio, video, cues, valid)
    assert (attention[0, :17, 4 + 3] > 0.99).all()
    with torch.no_grad():
        from_video, _ = fusion.audio_to_video(audio, video, valid)
        expected, expected_weight, _ = fusion.gate(audio + from_video, video.roll(-3, dims=1), cues)
    torch.testing.assert_close(fused[0, :17], expected[0, :17], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(weight[0, :17], expected_weight[0, :17], atol=1e-4, rtol=1e-4)
    fused[0, 10].sum().backward()
    touched = video.grad[0].abs().sum(dim=1) > 0
    assert touched[6:15].any() and not touched[:6].any() and not touched[15:].any()  # 10 ± 4
    with pytest.raises(ValueError, match="xattn_align"):
        ModelConfig(fusion="gate", xattn_align=True)


def test_xattn_finds_the_video_frame_that_belongs_to_the_audio():
    # The memory holds one distinctive frame; queries that match it attend to it wherever it is in their window.
    attention = LocalCrossAttention(8, 1, window=4)
    with torch.no_grad():
        for layer in (attention.query, attention.key_value):
            layer.weight.zero_()
            layer.bias.zero_()
        attention.query.weight[:8].copy_(torch.eye(8))
        attention.key_value.weight[:8].copy_(10 * torch.eye(8))
    memory = torch.zeros(1, 20, 8)
    memory[0, 12, 0] = 1.0  # the lip frame
    query = torch.zeros(1, 20, 8)
    query[0, 9, 0] = 1.0  # the audio frame it belongs to: video 3 frames late
    with torch.no_grad():
        _, weights = attention(query, memory, torch.ones(1, 20, dtype=torch.bool))
    offset, peak = attention_summary(weights.mean(dim=2))
    assert offset[0, 9] == 3 and peak[0, 9] > 0.9


def test_a_retired_option_loads_when_off_and_is_refused_when_on():
    saved = SMALL.to_dict() | dict.fromkeys(RETIRED_OPTIONS, False)  # as bundles saved before 2026-12-07
    assert model_config(saved, "old.pt") == SMALL
    for option in RETIRED_OPTIONS:
        with pytest.raises(ModelConfigError) as refused:
            model_config(saved | {option: True}, "old.pt")
        message = str(refused.value)
        assert message.startswith(f"old.pt: {option}=True, an option retired") and "\n" not in message
        assert isinstance(refused.value, AvsrError) and refused.value.exit_code == 2
    with pytest.raises(TypeError, match="gate_unit_streams"):  # no longer an option of a new model
        ModelConfig(gate_unit_streams=False)
    assert drop_retired({"align_teacher": None, "lr": 1}, "x.ckpt", {"align_teacher": None}) == {"lr": 1}
    with pytest.raises(ModelConfigError, match="x.ckpt: align_teacher='a.pt'"):
        drop_retired({"align_teacher": "a.pt"}, "x.ckpt", {"align_teacher": None})


def test_an_old_bundle_with_a_retired_option_off_loads_and_one_with_it_on_is_refused(tmp_path):
    torch.manual_seed(0)
    model = AVSRModel(SMALL).eval()
    payload = torch.load(save_bundle(tmp_path / "new.pt", model), weights_only=True)
    old = payload | {"config": payload["config"] | dict.fromkeys(RETIRED_OPTIONS, False)}
    torch.save(old, tmp_path / "old.pt")
    loaded, _, _ = load_bundle(tmp_path / "old.pt")
    batch = inputs(2, [10, 7])
    with torch.no_grad():
        torch.testing.assert_close(loaded(*batch).log_probs, model(*batch).log_probs)
    torch.save(old | {"config": old["config"] | {"gate_posterior_cues": True}}, tmp_path / "on.pt")
    with pytest.raises(AvsrError) as refused:
        load_bundle(tmp_path / "on.pt")
    assert "on.pt: gate_posterior_cues=True, an option retired on 2026-12-07" in str(refused.value)
    assert "\n" not in str(refused.value)
