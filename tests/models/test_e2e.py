"""The auto_avsr family (avsr.models.e2e) against the reference's own outputs on the same weights and
inputs (tests/fixtures/auto_avsr/), its three checkpoint layouts, the published size, and bad checkpoints."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest
import torch

from avsr.errors import AvsrError, OptionError
from avsr.models.av_model import AVSRModel, tiny
from avsr.models.e2e import (CheckpointLayoutError, E2EConfig, E2EModel, E2EOutput, checkpoint_layout,
                             convert_auto_avsr, e2e_base)
from tests.models.auto_avsr_fixtures import (FIXTURES, full_size_keys, golden, manifest,
                                             random_full_size_state_dict, reference_state_dict)

TOLERANCE = 1e-4  # what the import promises against the reference (measured: <= 1e-5)


@pytest.fixture(scope="module")
def references() -> dict[str, dict[str, torch.Tensor]]:
    return {kind: reference_state_dict(kind) for kind in ("vsr", "asr", "avsr")}


@pytest.fixture(scope="module")
def models(references) -> dict[str, E2EModel]:
    return {kind: model_of(state_dict) for kind, state_dict in references.items()}


def model_of(state_dict: dict, **options) -> E2EModel:
    config, converted = convert_auto_avsr(state_dict, **options)
    model = E2EModel(config).eval()
    model.load_state_dict(converted, strict=True)
    return model


def single(kind: str, name: str) -> torch.Tensor:
    """A golden input as one clip: video ``(1, T, 88, 88)`` or audio ``(1, N)`` (stored as T x 1 x H x W, N x 1)."""
    x = torch.from_numpy(golden(kind, name))
    return x[None, :, 0]


def run(model: E2EModel, kind: str) -> tuple[E2EOutput, dict[str, torch.Tensor]]:
    """The model's output on ``kind``'s golden input, and what each of its modules listed below gave."""
    seen = {}
    watched = {"frontend_out": (model.video_stream or model.audio_stream).frontend}
    if kind == "avsr":
        watched = {"video_encoder_out": model.video_stream, "audio_encoder_out": model.audio_stream}
    hooks = [module.register_forward_hook(lambda _, __, out, name=name: seen.setdefault(name, out))
             for name, module in watched.items()]
    video = single(kind, "input_video" if kind == "avsr" else "input") if kind != "asr" else None
    audio = single(kind, "input_audio" if kind == "avsr" else "input") if kind != "vsr" else None
    with torch.no_grad():
        out = model(audio, None, video, None)
    for hook in hooks:
        hook.remove()
    return out, seen


def max_difference(ours: torch.Tensor, kind: str, name: str) -> float:
    return float(np.abs(ours.detach().numpy() - golden(kind, name)).max())


def test_the_fixtures_are_the_files_the_reference_made():
    made = manifest()["files"]
    checked = 0
    for path in sorted(FIXTURES.iterdir()):
        name = path.name.removesuffix(".gz")
        if name in made and name != "manifest.json":
            data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            assert hashlib.sha256(data).hexdigest() == made[name]["sha256"], path.name
            checked += 1
    assert checked >= 20


@pytest.mark.parametrize("kind", ["vsr", "asr", "avsr"])
def test_each_stream_and_the_fused_model_match_the_reference(models, kind):
    out, seen = run(models[kind], kind)
    frames = manifest()[kind]["encoder_frames"]
    assert out.encoder_out.shape == (1, frames, 64) and out.log_probs.shape == (1, frames, 5049)
    assert out.lengths.tolist() == [frames]
    for name, tensor in seen.items():  # the frontend's output, or each encoder's before the fusion
        assert max_difference(tensor[0], kind, name) < TOLERANCE, name
    assert max_difference(out.encoder_out[0], kind, "encoder_out") < TOLERANCE
    assert max_difference(out.log_probs[0], kind, "ctc_logprobs") < TOLERANCE


def test_audio_visual_reads_the_frames_both_streams_have(models):
    model = models["avsr"]
    video, audio = single("avsr", "input_video")[:, :8], single("avsr", "input_audio")[:, :8 * 640]
    longer_audio = torch.cat([audio, torch.randn(1, 5 * 640 + 17)], dim=1)
    with torch.no_grad():
        exact, padded = model(audio, None, video, None), model(longer_audio, None, video, None)
        shorter = model(audio, None, video[:, :5], None)
    assert torch.equal(padded.encoder_out, exact.encoder_out) and exact.lengths.tolist() == [8]
    assert shorter.encoder_out.shape[1] == 5 and shorter.lengths.tolist() == [5]


@pytest.mark.parametrize("kind", ["vsr", "asr"])
def test_the_legacy_relative_positions_match_that_variant_of_the_reference(references, kind):
    """VSR-ML runs a model.json without rel_pos_type with the older relative positions (see the fixtures'
    README); the same weights then give another output, which only ``rel_pos="legacy"`` reproduces."""
    model = model_of(references[kind], rel_pos="legacy")
    x = single(kind, "input")
    with torch.no_grad():
        out = model(None, None, x, None) if kind == "vsr" else model(x, None, None, None)
    assert max_difference(out.encoder_out[0], kind, "legacy_encoder_out") < TOLERANCE
    assert max_difference(out.encoder_out[0], kind, "encoder_out") > 0.05  # the variant matters


def v1_layout(state_dict: dict) -> dict:
    """A zoo-layout state dict as auto_avsr v1.0.0 names it (frontend and projection inside the encoder)."""
    renamed = {}
    for key, value in state_dict.items():
        for new, old in (("encoder.frontend.", "frontend."), ("encoder.embed.0.", "proj_encoder.")):
            if key.startswith(old):
                key = new + key[len(old):]
                break
        renamed[key] = value
    return renamed


@pytest.mark.parametrize("kind", ["vsr", "asr"])
def test_the_v1_layout_and_a_training_checkpoint_convert_to_the_same_model(references, kind):
    config, converted = convert_auto_avsr(references[kind])
    assert checkpoint_layout(v1_layout(references[kind])).name == "auto_avsr v1.0.0"
    lightning = {"state_dict": {"model." + key: value for key, value in references[kind].items()}, "epoch": 3}
    for other in (v1_layout(references[kind]), lightning):
        config_again, converted_again = convert_auto_avsr(other)
        assert config_again == config
        assert list(converted_again) == list(converted)
        assert all(torch.equal(converted_again[key], converted[key]) for key in converted)


def test_sizes_are_read_from_the_state_dict_and_the_decoder_heads_are_stated(references):
    config, _ = convert_auto_avsr(references["vsr"])
    dims = manifest()["vsr"]["dims"]
    assert (config.modality, config.dim, config.heads, config.ffn_dim, config.blocks, config.kernel_size) == (
        "video", dims["adim"], dims["heads"], dims["eunits"], dims["elayers"], dims["cnn_kernel"])
    assert (config.decoder_heads, config.decoder_ffn_dim, config.decoder_blocks) == (
        dims["decoder_heads"], dims["dunits"], dims["dlayers"])  # heads: the encoder's, as the reference
    assert convert_auto_avsr(references["vsr"], decoder_heads=2)[0].decoder_heads == 2
    with pytest.raises(OptionError, match="decoder_heads=5"):
        convert_auto_avsr(references["vsr"], decoder_heads=5)


def test_a_padded_batch_gives_each_clip_its_own_output(models):
    model, video = models["vsr"], single("vsr", "input")[:, :12]
    batch = torch.zeros(2, 12, 88, 88)
    batch[0], batch[1, :7] = video[0], video[0, 5:]
    with torch.no_grad():
        together = model(None, None, batch, torch.tensor([12, 7]))
        alone = [model(None, None, video, None), model(None, None, video[:, 5:], None)]
    assert together.lengths.tolist() == [12, 7]
    assert torch.allclose(together.log_probs[0], alone[0].log_probs[0], atol=1e-5)
    assert torch.allclose(together.log_probs[1, :7], alone[1].log_probs[0], atol=1e-5)


@pytest.mark.parametrize("name", ["vsr", "asr", "v1_vsr", "v1_asr", "v1_avsr"])
def test_the_published_key_lists_convert_to_the_published_size(name):
    """The zoo's full-size names and shapes (without their 1 GB of values: meta tensors)."""
    keys = full_size_keys(name)
    state_dict = {key: torch.empty(shape, dtype=getattr(torch, dtype), device="meta") for key, shape, dtype in keys}
    config, converted = convert_auto_avsr(state_dict)
    modality = {"vsr": "video", "asr": "audio", "avsr": "av"}[name.removeprefix("v1_")]
    assert config == E2EConfig(modality=modality)
    with torch.device("meta"):
        model = e2e_base(modality)
    assert converted.keys() == model.state_dict().keys()
    values = sum(tensor.numel() for key, tensor in converted.items() if not key.endswith("num_batches_tracked"))
    assert values == {"video": 250_411_442, "audio": 243_077_234, "av": 444_049_586}[modality]  # the reference's count


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vsr", "asr", "v1_avsr"])
def test_a_full_size_random_checkpoint_imports_and_runs(name):
    model = model_of(random_full_size_state_dict(name))
    video, audio = torch.randn(1, 6, 88, 88), torch.randn(1, 6 * 640)
    with torch.no_grad():
        out = model(None if name == "vsr" else audio, None, None if name == "asr" else video, None)
        log_probs, _ = model.decoder.step(torch.tensor([model.config.eos]), model.decoder.start(out.encoder_out[0]))
    assert out.encoder_out.shape == (1, 6, 768) and out.log_probs.shape == (1, 6, 5049)
    assert torch.isfinite(out.log_probs).all() and log_probs.shape == (1, 5049)


def one_line_error(state_dict: object) -> str:
    with pytest.raises(CheckpointLayoutError) as caught:
        convert_auto_avsr(state_dict)
    assert isinstance(caught.value, AvsrError) and "\n" not in str(caught.value)
    return str(caught.value)


def test_what_is_not_a_state_dict_is_refused_in_one_line():
    assert "not a state dict (a list" in one_line_error([torch.zeros(1)])
    assert "'format' holds a str" in one_line_error({"format": "avsr-bundle-1", "weights": torch.zeros(1)})
    assert "an empty dict" in one_line_error({})


def test_another_architecture_is_refused_naming_its_keys():
    message = one_line_error(AVSRModel(tiny()).state_dict())
    assert "not an auto_avsr E2E state dict" in message and "audio_encoder." in message


def test_a_missing_key_a_wrong_shape_or_an_extra_key_is_named(references):
    reference = references["asr"]
    damaged = {key: value for key, value in reference.items() if key != "encoder.encoders.1.norm_conv.bias"}
    assert one_line_error(damaged).endswith("without encoder.encoders.1.norm_conv.bias")
    damaged = dict(reference, **{"encoder.encoders.0.self_attn.linear_v.weight": torch.zeros(64, 63)})
    message = one_line_error(damaged)
    assert "encoder.encoders.0.self_attn.linear_v.weight has shape 64x63" in message and "has 64x64" in message
    assert "unexpected key decoder.extra.weight" in one_line_error(dict(reference, **{"decoder.extra.weight":
                                                                                       torch.zeros(1)}))
    assert "proj_decoder" in one_line_error(dict(reference, **{"proj_decoder.weight": torch.zeros(64, 64)}))
    no_frontend = {key: value for key, value in reference.items() if not key.startswith("frontend.trunk.conv1")}
    assert "without a frontend" in one_line_error(no_frontend)
