"""Lip video front end: a 3-D convolution stem, a light 2-D ResNet per frame, then a Conformer."""

from __future__ import annotations

import torch
from torch import nn

from avsr.models.conformer import Conformer, padding_mask


class BasicBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.shortcut = nn.Identity() if stride == 1 and channels_in == channels_out else nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 1, stride, bias=False), nn.BatchNorm2d(channels_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class VideoEncoder(nn.Module):
    """Mouth crops ``(B, T, H, W)`` -> features ``(B, T, D)``.

    Args:
        dim: model width D. channels: widths of the ResNet stages (each halves the resolution).
        num_layers, num_heads, ffn_dim, kernel_size: the Conformer after the trunk.
        pool: the trunk's last feature map is average-pooled to a ``pool x pool`` grid and flattened,
            so the projection sees where in the mouth a feature is (1: global average, as ResNet).
        downsample: the crops are average-pooled by this factor before the stem (2: 88x88 -> 44x44,
            about a quarter of the trunk's cost).
    """

    def __init__(self, dim: int, channels: tuple[int, ...], num_layers: int, num_heads: int, ffn_dim: int,
                 kernel_size: int = 15, dropout: float = 0.1, pool: int = 1, downsample: int = 1) -> None:
        super().__init__()
        self.downsample = downsample
        stem = channels[0]
        self.stem = nn.Sequential(  # (B, 1, T, H, W) -> (B, C, T, H/4, W/4)
            nn.Conv3d(1, stem, (5, 7, 7), (1, 2, 2), (2, 3, 3), bias=False), nn.BatchNorm3d(stem), nn.ReLU(),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
        )
        blocks, width = [], stem
        for out in channels:
            blocks.append(BasicBlock(width, out, stride=1 if out == stem and not blocks else 2))
            width = out
        self.trunk = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(pool)
        self.project = nn.Linear(width * pool * pool, dim)
        self.conformer = Conformer(dim, num_heads, ffn_dim, num_layers, kernel_size, dropout)

    def forward(self, video: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """video: ``(B, T, H, W)`` float, normalised; lengths ``(B,)`` -> ``(B, T, D)``."""
        batch, frames = video.shape[:2]
        video = video.masked_fill(padding_mask(lengths, frames)[..., None, None], 0.0)
        if self.downsample > 1:
            video = nn.functional.avg_pool2d(video, self.downsample)  # (B, T, H/k, W/k): T acts as channels
        x = self.stem(video.unsqueeze(1))  # (B, C, T, H', W')
        x = x.transpose(1, 2).flatten(0, 1)  # (B*T, C, H', W')
        x = self.pool(self.trunk(x)).flatten(1)  # (B*T, C' pool^2)
        x = self.project(x.view(batch, frames, -1))  # (B, T, D)
        return self.conformer(x, lengths)
