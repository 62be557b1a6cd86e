"""The Conformer encoder of the auto_avsr family (ESPnet's Conformer with relative positions).

Each of N blocks is pre-LayerNorm (eps 1e-12) with four residual branches and a closing norm::

    x = x + 0.5 * FF(norm(x))            # macaron half-step; FF = Linear, ReLU, Linear
    x = x + RelPosSelfAttention(norm(x))
    x = x + Conv(norm(x))                # Linear to 2D, GLU, depthwise conv, BatchNorm, SiLU, Linear
    x = x + 0.5 * FF(norm(x))
    x = norm(x)

The encoder scales its input by sqrt(D), runs the blocks and a final LayerNorm. Time is not
subsampled. Self-attention scores are ``((q + u) k^T + shift((q + v) p^T)) / sqrt(d_head)`` with
``p`` a projection of sinusoidal embeddings of relative positions (Dai et al., 2019), in one of two
variants (:data:`REL_POS_VARIANTS`) with the same parameters:

- ``latest``: embeddings of the 2T - 1 offsets T - 1 .. -(T - 1); query i reads offset i - j for key j.
- ``legacy``: the embeddings of T offsets only, read through the older shift, which gives key j <= i the
  i - j th of them, 0 for j = i + 1 and entries of the next query's row beyond it. The T embedded
  offsets are L - 1 .. L - T with L = max(:data:`LEGACY_TABLE_LENGTH`, T): the reference slices them
  from the top of a table of 5000 positions made in advance, so they are not T - 1 .. 0. Some models of
  the family were run with it; the two variants give different outputs from the same weights.

Padded frames (``lengths``) are left out of attention and zeroed before the depthwise convolution, so a
sequence gives the same output alone and in a padded batch.
"""

from __future__ import annotations

import math

import torch
from torch import nn

REL_POS_VARIANTS = ("latest", "legacy")
LAYER_NORM_EPS = 1e-12
LEGACY_TABLE_LENGTH = 5000  # legacy: the positions the reference tabulates before any input (its max_len)


def relative_position_table(frames: int, dim: int, variant: str, device: torch.device | None = None) -> torch.Tensor:
    """Sinusoidal embeddings ``(1, P, D)`` of decreasing offsets: T - 1 .. -(T - 1) for ``latest``
    (P = 2T - 1), L - 1 .. L - T for ``legacy`` (P = T, see the module's docstring); sin at even channels,
    cos at odd ones, wavelengths 2 pi .. 10000 * 2 pi."""
    first = frames - 1 if variant == "latest" else max(LEGACY_TABLE_LENGTH, frames) - 1
    count = 2 * frames - 1 if variant == "latest" else frames
    offsets = torch.arange(first, first - count, -1, dtype=torch.float32, device=device)[:, None]  # (P, 1)
    inverse_wavelength = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=device)
                                   * -(math.log(10000.0) / dim))
    angles = offsets * inverse_wavelength  # (P, D / 2)
    return torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1).reshape(1, len(offsets), dim)  # (1, P, D)


def _offset_scores(position_scores: torch.Tensor, variant: str) -> torch.Tensor:
    """``(B, H, T, P)`` scores of each query against each embedded offset -> ``(B, H, T, T)`` against each key."""
    frames = position_scores.shape[2]
    query = torch.arange(frames, device=position_scores.device)[:, None]  # (T, 1)
    key = torch.arange(frames, device=position_scores.device)[None, :]  # (1, T)
    if variant == "latest":  # column c holds offset T - 1 - c; query i, key j want offset i - j
        return position_scores[:, :, query, frames - 1 - query + key]
    # legacy: the flat reading of [0 | scores] (T rows of T + 1) from position T on, T entries per query
    padded = nn.functional.pad(position_scores, (1, 0))  # (B, H, T, T + 1)
    flat = frames + query * frames + key  # (T, T)
    return padded[:, :, flat // (frames + 1), flat % (frames + 1)]


class RelPosSelfAttention(nn.Module):
    """Multi-head self-attention over ``(B, T, D)`` with learned content (``pos_bias_u``) and position
    (``pos_bias_v``) biases per head ``(H, D / H)``."""

    def __init__(self, dim: int, heads: int, variant: str = "latest", dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        if variant not in REL_POS_VARIANTS:
            raise ValueError(f"variant={variant!r}; use one of {', '.join(REL_POS_VARIANTS)}")
        self.heads, self.variant = heads, variant
        self.linear_q, self.linear_k, self.linear_v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.linear_out = nn.Linear(dim, dim)
        self.linear_pos = nn.Linear(dim, dim, bias=False)
        self.pos_bias_u = nn.Parameter(torch.zeros(heads, dim // heads))
        self.pos_bias_v = nn.Parameter(torch.zeros(heads, dim // heads))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)
        self.dropout = nn.Dropout(dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], x.shape[1], self.heads, -1)  # (B, T, H, D / H)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
        """x ``(B, T, D)``, positions ``(1, P, D)`` (:func:`relative_position_table`), pad ``(B, T)`` bool
        (True at padded frames) or None -> ``(B, T, D)``."""
        q = self._split(self.linear_q(x))  # (B, T, H, D / H)
        k = self._split(self.linear_k(x)).transpose(1, 2)  # (B, H, T, D / H)
        v = self._split(self.linear_v(x)).transpose(1, 2)
        p = self._split(self.linear_pos(positions)).transpose(1, 2)  # (1, H, P, D / H)
        # The (B, H, T, T) scores are summed and scaled in place (autograd allows it: the product's gradient needs
        # its inputs, not its output), and the (B, H, T, P) position scores go as soon as they are read: of
        # five T x T temporaries two are left (a 16 s window of four, 120 MB less per block).
        scores = torch.matmul((q + self.pos_bias_u).transpose(1, 2), k.transpose(-2, -1))  # (B, H, T, T): content
        scores.add_(_offset_scores(torch.matmul((q + self.pos_bias_v).transpose(1, 2), p.transpose(-2, -1)),
                                   self.variant)).div_(math.sqrt(k.shape[-1]))  # + position (B, H, T, P) read by key
        if pad is None:
            weights = torch.softmax(scores, dim=-1)
        else:
            keys_out = pad[:, None, None, :]  # (B, 1, 1, T)
            weights = torch.softmax(scores.masked_fill_(keys_out, torch.finfo(scores.dtype).min), dim=-1)
            weights = weights.masked_fill(keys_out, 0.0)
        context = torch.matmul(self.dropout(weights), v).transpose(1, 2)  # (B, T, H, D / H)
        return self.linear_out(context.flatten(2))  # (B, T, D)


class FeedForward(nn.Module):
    """Linear (D -> F), ReLU, Linear (F -> D) over ``(B, T, D)``."""

    def __init__(self, dim: int, ffn_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.linear1, self.linear2 = nn.Linear(dim, ffn_dim), nn.Linear(ffn_dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(torch.relu(self.linear1(x))))


class ConvModule(nn.Module):
    """Pointwise conv to 2D channels, GLU, depthwise conv (``kernel_size`` frames), BatchNorm, SiLU,
    pointwise conv, over ``(B, T, D)``."""

    def __init__(self, dim: int, kernel_size: int) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size={kernel_size} must be odd to keep 'same' padding")
        self.pointwise_in = nn.Conv1d(dim, 2 * dim, 1)
        self.depthwise = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.BatchNorm1d(dim)
        self.pointwise_out = nn.Conv1d(dim, dim, 1)

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
        """x ``(B, T, D)``, pad ``(B, T)`` bool or None -> ``(B, T, D)``."""
        y = nn.functional.glu(self.pointwise_in(x.transpose(1, 2)), dim=1)  # (B, D, T)
        if pad is not None:
            y = y.masked_fill(pad[:, None, :], 0.0)
        y = nn.functional.silu(self.norm(self.depthwise(y)))
        return self.pointwise_out(y).transpose(1, 2)  # (B, T, D)


class ConformerBlock(nn.Module):
    """One macaron Conformer block over ``(B, T, D)`` (see the module's docstring)."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, kernel_size: int, rel_pos: str = "latest",
                 dropout: float = 0.1) -> None:
        super().__init__()
        norm = lambda: nn.LayerNorm(dim, eps=LAYER_NORM_EPS)  # noqa: E731
        self.macaron_norm, self.macaron_ff = norm(), FeedForward(dim, ffn_dim, dropout)
        self.attn_norm, self.attn = norm(), RelPosSelfAttention(dim, heads, rel_pos)
        self.conv_norm, self.conv = norm(), ConvModule(dim, kernel_size)
        self.ff_norm, self.ff = norm(), FeedForward(dim, ffn_dim, dropout)
        self.out_norm = norm()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, positions: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
        x = x + 0.5 * self.dropout(self.macaron_ff(self.macaron_norm(x)))
        x = x + self.dropout(self.attn(self.attn_norm(x), positions, pad))
        x = x + self.dropout(self.conv(self.conv_norm(x), pad))
        x = x + 0.5 * self.dropout(self.ff(self.ff_norm(x)))
        return self.out_norm(x)


class ConformerEncoder(nn.Module):
    """``blocks`` Conformer blocks and a final LayerNorm over ``(B, T, D)``; ``rel_pos`` picks the
    relative-position variant (:data:`REL_POS_VARIANTS`)."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, blocks: int, kernel_size: int, rel_pos: str = "latest",
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.dim, self.rel_pos = dim, rel_pos
        self.blocks = nn.ModuleList(ConformerBlock(dim, heads, ffn_dim, kernel_size, rel_pos, dropout)
                                    for _ in range(blocks))
        self.final_norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """x ``(B, T, D)``, lengths ``(B,)`` valid frames (None: all) -> ``(B, T, D)``."""
        frames = x.shape[1]
        pad = None
        if lengths is not None and bool((lengths < frames).any()):
            pad = torch.arange(frames, device=x.device)[None, :] >= lengths[:, None]  # (B, T)
        positions = relative_position_table(frames, self.dim, self.rel_pos, x.device).to(x.dtype)  # (1, P, D)
        x = self.dropout(x * math.sqrt(self.dim))
        for block in self.blocks:
            x = block(x, positions, pad)
        return self.final_norm(x)
