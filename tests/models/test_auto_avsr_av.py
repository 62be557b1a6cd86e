"""``avsr import auto-avsr --audio ASR.pth --video VSR.pth``: the gated AV model on two imported encoders. Its
streams are the checkpoints' (the reference's encoder outputs and CTC log-probs from the recipe weights of
tests/fixtures/auto_avsr), its bundle carries auto_avsr's tokenizer and crops, and bad pairs get one line and no
bundle. Training it: tests/training/test_import_av.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avsr.data.spm_tokenizer import SentencePieceTokenizer
from avsr.errors import AvsrError
from avsr.models.audio_encoder import MEL_HOP
from avsr.models.av_model import AVSRModel, ModelConfig, ModelConfigError
from avsr.models.e2e import E2EConfig, E2EModel, Layout, _rename
from avsr.models.loader import load_model
from avsr.training.init import InitOptions
from tests.conftest import avsr_main, one_line
from tests.models.auto_avsr_fixtures import golden, reference_state_dict

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict:
    """The recipe checkpoints (vsr, asr: the model zoo's layout; avsr: v1.0.0's audio-visual one) as .pth files."""
    folder = tmp_path_factory.mktemp("checkpoints")
    for kind in ("vsr", "asr", "avsr"):
        torch.save(reference_state_dict(kind), folder / f"{kind}.pth")
    return {kind: folder / f"{kind}.pth" for kind in ("vsr", "asr", "avsr")}


@pytest.fixture(scope="module")
def bundle(checkpoints, tmp_path_factory):
    output = tmp_path_factory.mktemp("av") / "av.pt"
    result = avsr_main("import", "auto-avsr", "--audio", checkpoints["asr"], "--video", checkpoints["vsr"],
                       "-o", output, "--fusion", "xattn")
    assert result.returncode == 0, result.stderr
    assert "av model (xattn fusion) on imported encoders" in result.stdout and f"-> {output}" in result.stdout
    return output


def test_the_streams_are_the_imported_encoders_and_ctc_heads(bundle):
    loaded = load_model(bundle)
    model = loaded.network
    assert isinstance(model, AVSRModel) and model.modes == ("av", "audio", "video")
    assert model.config.encoders == "auto-avsr" and model.config.fusion == "xattn" and model.config.dim == 64
    assert isinstance(loaded.tokenizer, SentencePieceTokenizer) and loaded.tokenizer.vocab_size == 5049
    assert model.preprocessing.roi_style == "auto-avsr" and model.preprocessing.crop_size == 88
    assert loaded.metadata["audio_source"] == "asr.pth" and loaded.metadata["video_source"] == "vsr.pth"
    audio = torch.from_numpy(golden("asr", "input"))[None, :, 0]  # (1, N) samples, normalised inside the model
    video = torch.from_numpy(golden("vsr", "input"))[None, :, 0]  # (1, T, 88, 88) normalised crops
    with torch.no_grad():
        heard, frames, logmel = model.audio_encoder(audio, torch.tensor([audio.shape[1]]))
        seen = model.video_encoder(video, torch.tensor([video.shape[1]]))
        for features, head, kind in ((heard, model.audio_head, "asr"), (seen, model.video_head, "vsr")):
            assert np.abs(features[0].numpy() - golden(kind, "encoder_out")).max() < TOLERANCE
            log_probs = torch.log_softmax(head(features), dim=-1)[0].numpy()
            assert np.abs(log_probs - golden(kind, "ctc_logprobs")).max() < TOLERANCE
    assert int(frames[0]) == heard.shape[1] == audio.shape[1] // 640 and logmel.shape[1] == audio.shape[1] // MEL_HOP


def test_the_fused_model_runs_a_padded_batch_and_its_lips_read_the_same_alone(bundle):
    model = load_model(bundle).network
    generator = torch.Generator().manual_seed(0)
    audio, video = torch.randn(2, 640 * 12, generator=generator), torch.randn(2, 12, 88, 88, generator=generator)
    audio[1, 640 * 9:], video[1, 9:] = 0.0, 5.0  # whatever the padding holds
    lengths = torch.tensor([12, 9])
    with torch.no_grad():
        batch = model(audio, lengths * 640, video, lengths, torch.ones(2, 12, dtype=torch.bool))
        seen = model.video_encoder(video, lengths)
        alone = model.video_encoder(video[1:, :9], torch.tensor([9]))
    assert batch.log_probs.shape == (2, 12, 5049) and torch.equal(batch.lengths, lengths)
    assert batch.audio_weight.shape == (2, 12) and batch.attention.shape == (2, 12, 2 * 8 + 1)
    assert torch.isfinite(batch.log_probs).all()
    # the video encoder zeroes padded frames and masks them (the audio frontend's convolutions see a padded
    # waveform's zeros near its end, as in E2EModel: not compared)
    torch.testing.assert_close(seen[1, :9], alone[0], atol=1e-5, rtol=1e-5)


def _other_width_asr(path):
    """An ASR checkpoint of the family 32 wide (the recipe's is 64), in the model zoo's names."""
    torch.manual_seed(0)
    model = E2EModel(E2EConfig(modality="audio", dim=32, heads=4, ffn_dim=64, blocks=1, decoder_heads=4,
                               decoder_ffn_dim=64, decoder_blocks=1))
    layout = Layout("auto_avsr", "audio", {"audio": ("frontend.", "proj_encoder.", "encoder.")})
    torch.save({_rename(key, layout, to_reference=True): value for key, value in model.state_dict().items()}, path)
    return path


def test_bad_pairs_get_one_line_and_no_bundle(checkpoints, tmp_path):
    narrow = _other_width_asr(tmp_path / "narrow_asr.pth")
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    asr, vsr, avsr = checkpoints["asr"], checkpoints["vsr"], checkpoints["avsr"]
    cases = [
        (["--audio", vsr, "--video", vsr], 2, ["--audio", "vsr.pth", "a VSR model's checkpoint", "asr_*.pth"]),
        (["--audio", asr, "--video", asr], 2, ["--video", "asr.pth", "an ASR model's checkpoint", "vsr_*.pth"]),
        (["--audio", asr, "--video", avsr], 2, ["avsr.pth", "an audio-visual model's checkpoint"]),
        (["--audio", narrow, "--video", vsr], 2, ["narrow_asr.pth", "dim 32", "64", "same size"]),
        (["--audio", text, "--video", vsr], 2, ["notes.pth", "not a readable PyTorch checkpoint"]),
        (["--audio", asr], 2, ["--video is missing"]),
        ([asr, "--audio", asr, "--video", vsr], 2, ["not both"]),
        (["--audio", asr, "--video", vsr, "--decoder-heads", "4"], 2, ["--decoder-heads", "no attention decoder"]),
        ([asr, "--fusion", "gate"], 2, ["--fusion applies to"]),
        ([], 2, ["give CKPT.pth, or --audio"]),
        (["--audio", asr, "--video", vsr, "--fusion", "concat"], 2, ["--fusion", "invalid choice"]),
    ]
    for args, code, names in cases:
        target = tmp_path / "av.pt"
        line = one_line(avsr_main("import", "auto-avsr", *args, "-o", target), code, *names)
        assert line.startswith("avsr import auto-avsr: error:")
        assert not target.exists()


def test_settings_that_do_not_fit_imported_encoders_are_refused_in_one_line():
    from avsr.training.lightning_module import AVSRLightning

    with pytest.raises(ModelConfigError, match="encoders='other'; use one of avsr, auto-avsr"):
        ModelConfig(encoders="other")
    with pytest.raises(ModelConfigError, match="video_pool=3 .* leave both at 1"):
        ModelConfig(preset="auto-avsr", video_pool=3)
    with pytest.raises(ModelConfigError, match="encoder_rel_pos='old'"):
        ModelConfig(encoder_rel_pos="old")
    with pytest.raises(ModelConfigError, match="vocab_size=29 but model.tokenizer='auto-avsr' has 5049 ids"):
        AVSRLightning(ModelConfig(dim=32, num_heads=2, ffn_dim=64), tokenizer="auto-avsr")
    with pytest.raises(AvsrError, match="model.tokenizer='letters'; use one of characters, auto-avsr"):
        AVSRLightning(tokenizer="letters")
    with pytest.raises(AvsrError, match="freeze_encoders holds the encoders that init.model"):
        InitOptions(freeze_encoders=True)
    with pytest.raises(AvsrError, match="set one"):
        InitOptions(model="av.pt", freeze_encoders=True, freeze_streams_steps=10)


def test_the_preset_holds_the_published_sizes():
    config = ModelConfig(preset="auto-avsr", vocab_size=5049)
    assert (config.dim, config.num_heads, config.ffn_dim, config.kernel_size) == (768, 12, 3072, 31)
    assert (config.audio_layers, config.video_layers, config.encoders) == (12, 12, "auto-avsr")
    assert ModelConfig().encoders == "avsr" and ModelConfig(**ModelConfig(preset="base").to_dict()).encoders == "avsr"


def test_its_onnx_export_is_refused_in_one_line(bundle, tmp_path):
    """The ONNX graphs' metadata holds a character tokenizer; a model of SentencePiece units runs from its bundle."""
    target = tmp_path / "av.onnx"
    one_line(avsr_main("export", bundle, target), 2, "character tokenizer", "SentencePieceTokenizer of 5049 ids")
    assert not list(tmp_path.glob("av*.onnx"))
