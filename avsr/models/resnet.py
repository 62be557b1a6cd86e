"""The ResNet-18 frontends of the auto_avsr family (Ma et al., 2023): one 512-wide feature per 25 Hz frame.

- :class:`VideoResNet`: a 3-D convolution over (time, height, width) as the stem, then a 2-D
  ResNet-18 trunk applied to each frame and averaged over space. Mouth crops ``(B, T, 88, 88)`` become
  ``(B, T, 512)``; time is never subsampled.
- :class:`AudioResNet`: a 1-D ResNet-18 on the raw waveform. A stride-4 stem, three stride-2 stages
  and a 20-sample average give one frame per :data:`~avsr.preprocessing.SAMPLES_PER_FRAME` = 640 samples (25 frames/s at
  16 kHz), so ``(B, N)`` becomes ``(B, N // 640, 512)``.

Both use SiLU after every BatchNorm except the one closing a residual branch; the activation
follows the residual sum. Widths and strides are fixed: a checkpoint of this family cannot change them.
"""

from __future__ import annotations

import torch
from torch import nn

from avsr.preprocessing import SAMPLES_PER_FRAME

STAGE_CHANNELS = (64, 128, 256, 512)  # ResNet-18: two residual blocks per stage
STAGE_STRIDES = (1, 2, 2, 2)
FEATURE_DIM = STAGE_CHANNELS[-1]  # what each frontend gives per frame
AUDIO_STEM_STRIDE = 4
FRAMES_PER_PASS = 128  # frames (over the batch) through a ResNet at once: 60 MB of video stem output
# Frames read on either side of a piece of waveform: its convolutions reach 252 samples past a frame (the stem
# 80 taps at stride 4, then 3-wide ones at strides 4 to 32), well inside one frame of 640.
AUDIO_CONTEXT_FRAMES = 1
# Positions of the last audio stage averaged into one frame: 20, so that 4 * 2 * 2 * 2 * 20 = 640 samples.
AUDIO_POOL = SAMPLES_PER_FRAME // (AUDIO_STEM_STRIDE * 2 ** STAGE_STRIDES.count(2))

_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}


class ResidualBlock(nn.Module):
    """Two 3-wide convolutions with BatchNorm, SiLU between them and after the residual sum; a strided
    1-wide convolution (``downsample``) carries the input across when its stride or width changes.
    ``dims`` 1 acts on ``(B, C, T)``, ``dims`` 2 on ``(B, C, H, W)``."""

    def __init__(self, dims: int, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        conv, norm = _CONV[dims], _NORM[dims]
        self.conv1 = conv(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm(channels)
        self.conv2 = conv(channels, channels, 3, padding=1, bias=False)
        self.bn2 = norm(channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(conv(in_channels, channels, 1, stride=stride, bias=False), norm(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = nn.functional.silu(self.bn1(self.conv1(x)))
        return nn.functional.silu(self.bn2(self.conv2(y)) + shortcut)


class ResNetTrunk(nn.Module):
    """The four stages of ResNet-18 (``layer1`` .. ``layer4``, 64 -> 512 channels), without stem or pooling."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        in_channels = STAGE_CHANNELS[0]
        for index, (channels, stride) in enumerate(zip(STAGE_CHANNELS, STAGE_STRIDES), start=1):
            blocks = [ResidualBlock(dims, in_channels, channels, stride), ResidualBlock(dims, channels, channels, 1)]
            self.add_module(f"layer{index}", nn.Sequential(*blocks))
            in_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 64, *S)`` -> ``(B, 512, *S / 8)``."""
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class VideoResNet(nn.Module):
    """Grey mouth crops ``(B, T, H, W)`` -> ``(B, T, 512)``: Conv3d stem (5 frames x 7 x 7, spatial stride
    2), BatchNorm, SiLU, 3 x 3 max-pool (stride 2), then each frame through the 2-D trunk and a global
    spatial average. 88 x 88 crops pass through 44, 22, 22, 11, 6 and 3 pixels."""

    def __init__(self) -> None:
        super().__init__()
        width = STAGE_CHANNELS[0]
        self.stem_conv = nn.Conv3d(1, width, (5, 7, 7), stride=(1, 2, 2), padding=(2, 3, 3), bias=False)
        self.stem_norm = nn.BatchNorm3d(width)
        self.trunk = ResNetTrunk(dims=2)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """A few frames at a time (:data:`FRAMES_PER_PASS` over the batch), each piece of the stem given the
        frames its 5-frame kernel reads on either side (zeros beyond the clip, as the stem's own padding):
        the same output as the whole clip at once, without its 64 planes of 44 x 44 per frame held three
        times over (2.7 GB for four 18 s windows, RESULTS.md)."""
        batch, frames = video.shape[:2]
        step = max(1, FRAMES_PER_PASS // max(batch, 1))
        return torch.cat([self._frames(video, start, min(start + step, frames))
                          for start in range(0, frames, step) or [0]], dim=1)  # (B, T, 512)

    def _frames(self, video: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """``(B, stop - start, 512)``: frames ``[start, stop)`` of ``video`` ``(B, T, H, W)``."""
        reach = self.stem_conv.padding[0]  # frames the stem's kernel reads before and after its own
        first, last = max(start - reach, 0), min(stop + reach, video.shape[1])
        x = nn.functional.pad(video[:, None, first:last], (0, 0, 0, 0, reach - (start - first), reach - (last - stop)))
        x = nn.functional.conv3d(x, self.stem_conv.weight, self.stem_conv.bias, self.stem_conv.stride,
                                 (0,) + self.stem_conv.padding[1:])  # (B, 64, t, H/2, W/2)
        x = nn.functional.silu(self.stem_norm(x))
        x = nn.functional.max_pool3d(x, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))  # (B, 64, t, H/4, W/4)
        x = x.transpose(1, 2).flatten(0, 1)  # (B * t, 64, H/4, W/4)
        x = self.trunk(x).mean(dim=(2, 3))  # (B * t, 512)
        return x.reshape(video.shape[0], stop - start, -1)  # (B, t, 512)


class AudioResNet(nn.Module):
    """16 kHz waveform ``(B, N)`` -> ``(B, N // 640, 512)``: the trailing ``N mod 640`` samples are dropped,
    then a Conv1d stem (80 taps, stride 4), BatchNorm, SiLU, the 1-D trunk and a 20-sample average."""

    def __init__(self) -> None:
        super().__init__()
        width = STAGE_CHANNELS[0]
        self.stem_conv = nn.Conv1d(1, width, 80, stride=AUDIO_STEM_STRIDE, padding=38, bias=False)
        self.stem_norm = nn.BatchNorm1d(width)
        self.trunk = ResNetTrunk(dims=1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """A few frames at a time (:data:`FRAMES_PER_PASS` over the batch), each piece read with
        :data:`AUDIO_CONTEXT_FRAMES` on either side, whose outputs are dropped: the same output as the whole
        waveform at once, without its 64-channel planes at 4 kHz held several times over (450 MB for four 16 s
        windows, RESULTS.md)."""
        batch, frames = audio.shape[0], audio.shape[1] // SAMPLES_PER_FRAME
        step = max(1, FRAMES_PER_PASS // max(batch, 1))
        return torch.cat([self._frames(audio, start, min(start + step, frames))
                          for start in range(0, frames, step) or [0]], dim=1)  # (B, T, 512)

    def _frames(self, audio: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """``(B, stop - start, 512)``: frames ``[start, stop)`` of ``audio`` ``(B, N)``."""
        first, last = max(start - AUDIO_CONTEXT_FRAMES, 0), min(stop + AUDIO_CONTEXT_FRAMES,
                                                                 audio.shape[1] // SAMPLES_PER_FRAME)
        x = self.stem_conv(audio[:, None, first * SAMPLES_PER_FRAME: last * SAMPLES_PER_FRAME])  # (B, 64, n / 4)
        x = self.trunk(nn.functional.silu(self.stem_norm(x)))  # (B, 512, n / 32)
        x = nn.functional.avg_pool1d(x, AUDIO_POOL)  # (B, 512, n / 640)
        return x[:, :, start - first: stop - first].transpose(1, 2)  # (B, t, 512)
