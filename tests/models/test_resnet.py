"""The auto_avsr family's ResNet frontends (avsr.models.resnet) read a clip a few frames at a time: the output is
the whole clip's at once, to the bit, whatever the piece size, with padded rows and a waveform that does not end on
a frame."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from avsr.models import resnet
from avsr.models.resnet import AudioResNet, VideoResNet


def with_statistics(frontend: nn.Module) -> nn.Module:
    """``frontend`` in eval mode with BatchNorm statistics away from the identity (as a trained one has)."""
    generator = torch.Generator().manual_seed(1)
    for module in frontend.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            size = module.num_features
            module.running_mean.copy_(0.1 * torch.randn(size, generator=generator))
            module.running_var.copy_(0.5 + torch.rand(size, generator=generator))
            module.bias.data.copy_(0.1 * torch.randn(size, generator=generator))
    return frontend.eval()


def _in_pieces_as_whole(monkeypatch, frontend, inputs: torch.Tensor, frames_per_pass: int) -> torch.Tensor:
    """``frontend``'s output on ``inputs`` read ``frames_per_pass`` frames at a time, checked equal to its output
    on the whole."""
    with torch.no_grad():
        whole = frontend(inputs)
        monkeypatch.setattr(resnet, "FRAMES_PER_PASS", frames_per_pass)
        pieces = frontend(inputs)
    assert torch.equal(pieces, whole)
    return pieces


@pytest.mark.parametrize("frames_per_pass", [1, 3, 8, 40])
def test_the_video_frontend_in_pieces_gives_the_whole_clips_output(monkeypatch, frames_per_pass: int) -> None:
    torch.manual_seed(0)
    video = torch.randn(2, 13, 88, 88)  # (B, T, H, W)
    video[1, 9:] = 0  # a padded row
    pieces = _in_pieces_as_whole(monkeypatch, with_statistics(VideoResNet()), video, frames_per_pass)
    assert pieces.shape == (2, 13, 512)


@pytest.mark.parametrize("frames_per_pass", [1, 3, 8, 40])
def test_the_audio_frontend_in_pieces_gives_the_whole_waveforms_output(monkeypatch, frames_per_pass: int) -> None:
    torch.manual_seed(0)
    audio = torch.randn(2, 11 * 640 + 300)  # (B, N): the last 300 samples make no frame
    audio[1, 7 * 640 + 17:] = 0  # a padded row
    pieces = _in_pieces_as_whole(monkeypatch, with_statistics(AudioResNet()), audio, frames_per_pass)
    assert pieces.shape == (2, 11, 512)


def test_a_sample_moves_no_audio_frame_beyond_the_context() -> None:
    """What AUDIO_CONTEXT_FRAMES rests on: a sample of frame f changes frames f - C .. f + C only."""
    torch.manual_seed(0)
    frontend = with_statistics(AudioResNet())
    audio = torch.randn(1, 9 * 640)
    context = resnet.AUDIO_CONTEXT_FRAMES
    with torch.no_grad():
        before = frontend(audio)
        for sample in (4 * 640, 5 * 640 - 1):  # the first and the last sample of frame 4
            moved = audio.clone()
            moved[0, sample] += 1.0
            changed = torch.nonzero((frontend(moved) - before)[0].abs().amax(-1)).flatten().tolist()
            assert 4 in changed and set(changed) <= set(range(4 - context, 4 + context + 1))
