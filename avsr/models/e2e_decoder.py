"""The Transformer decoder of the auto_avsr family (ESPnet's attention decoder, pre-LN).

Tokens are embedded, scaled by ``sqrt(d_model)`` and given absolute sinusoidal positions; each of
``num_blocks`` blocks adds, to its input, causal self-attention over the tokens so far, attention over
the encoder output ("source attention") and a ReLU feed-forward, each on a LayerNorm of the running
sum (eps 1e-12, as the reference); a final LayerNorm and a linear layer give token logits.

Two ways to run it: :meth:`TransformerDecoder.forward` over whole token sequences (teacher forcing),
and :meth:`TransformerDecoder.step` for beam search, one new token per hypothesis on a
:class:`DecoderCache` that holds every block's self-attention keys and values so far and the source
attention's keys and values of the encoder output, computed once per utterance.

Parameter names follow the reference's ``decoder.*`` keys, except the token embedding:
``embed.weight`` here is ``embed.0.weight`` there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

LAYER_NORM_EPS = 1e-12


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """``(length, dim)`` float32: sin on even channels, cos on odd ones, wavelengths up to 10000 * 2 pi."""
    position = torch.arange(0, length, dtype=torch.float32).unsqueeze(1)
    inverse = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * -(math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * inverse)
    table[:, 1::2] = torch.cos(position * inverse)
    return table


class Attention(nn.Module):
    """Multi-head scaled dot-product attention with biased q/k/v/out projections."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"d_model={dim} must be divisible by heads={heads}")
        self.heads, self.head_dim = heads, dim // heads
        self.linear_q = nn.Linear(dim, dim)
        self.linear_k = nn.Linear(dim, dim)
        self.linear_v = nn.Linear(dim, dim)
        self.linear_out = nn.Linear(dim, dim)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, L, D)`` -> ``(B, H, L, D/H)``."""
        return x.view(x.shape[0], -1, self.heads, self.head_dim).transpose(1, 2)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values ``(B, H, L, D/H)`` of ``x`` ``(B, L, D)``."""
        return self.split(self.linear_k(x)), self.split(self.linear_v(x))

    def attend(self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
               mask: torch.Tensor | None = None) -> torch.Tensor:
        """``query`` ``(B, Lq, D)`` over ``keys``/``values`` ``(B or 1, H, Lk, D/H)``; ``mask``
        ``(Lq, Lk)`` True where allowed. Returns ``(B, Lq, D)``."""
        batch = query.shape[0]
        if keys.shape[0] == 1 < batch and mask is None:  # keys shared by the batch: its queries as one sequence
            return self.attend(query.reshape(1, -1, query.shape[-1]), keys, values).view(batch, -1, query.shape[-1])
        q = self.split(self.linear_q(query))  # (B, H, Lq, D/H)
        scores = torch.matmul(q, keys.transpose(-2, -1)) / math.sqrt(self.head_dim)  # (B, H, Lq, Lk)
        if mask is not None:
            blocked = ~mask
            weights = torch.softmax(scores.masked_fill(blocked, torch.finfo(scores.dtype).min), dim=-1)
            weights = weights.masked_fill(blocked, 0.0)
        else:
            weights = torch.softmax(scores, dim=-1)
        context = torch.matmul(weights, values)  # (B, H, Lq, D/H)
        return self.linear_out(context.transpose(1, 2).reshape(batch, -1, self.heads * self.head_dim))


class FeedForward(nn.Module):
    def __init__(self, dim: int, units: int) -> None:
        super().__init__()
        self.w_1 = nn.Linear(dim, units)
        self.w_2 = nn.Linear(units, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(torch.relu(self.w_1(x)))


class DecoderBlock(nn.Module):
    """Pre-LN: ``x += self_attn(norm1 x)``; ``x += src_attn(norm2 x, memory)``; ``x += ff(norm3 x)``."""

    def __init__(self, dim: int, heads: int, ff_units: int) -> None:
        super().__init__()
        self.self_attn = Attention(dim, heads)
        self.src_attn = Attention(dim, heads)
        self.feed_forward = FeedForward(dim, ff_units)
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.norm3 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)

    def after_self_attention(self, x: torch.Tensor, memory_keys: torch.Tensor, memory_values: torch.Tensor,
                             memory_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Source attention and feed-forward on ``x`` ``(B, L, D)``, the self-attention already added."""
        x = x + self.src_attn.attend(self.norm2(x), memory_keys, memory_values, memory_mask)
        return x + self.feed_forward(self.norm3(x))


@dataclass
class DecoderCache:
    """What :meth:`TransformerDecoder.step` keeps between tokens, for ``N`` hypotheses of ``L`` tokens.

    ``keys``/``values``: per block, the self-attention's ``(N, H, L, D/H)``; ``memory_keys``/
    ``memory_values``: per block, the source attention's ``(1, H, T, D/H)`` (shared by all hypotheses)."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    memory_keys: list[torch.Tensor]
    memory_values: list[torch.Tensor]

    @property
    def length(self) -> int:
        return self.keys[0].shape[2]

    def select(self, index: torch.Tensor) -> DecoderCache:
        """The cache of the hypotheses ``index`` ``(N',)`` (in that order)."""
        return DecoderCache([k.index_select(0, index) for k in self.keys],
                            [v.index_select(0, index) for v in self.values], self.memory_keys, self.memory_values)


class TransformerDecoder(nn.Module):
    """Token ids and an encoder output to next-token logits over ``vocab_size`` tokens."""

    def __init__(self, vocab_size: int, d_model: int = 768, heads: int = 12, ff_units: int = 3072,
                 num_blocks: int = 6) -> None:
        super().__init__()
        self.d_model = d_model
        self.embed = nn.Embedding(vocab_size, d_model)
        self.decoders = nn.ModuleList(DecoderBlock(d_model, heads, ff_units) for _ in range(num_blocks))
        self.after_norm = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.output_layer = nn.Linear(d_model, vocab_size)
        self._positions = torch.zeros(0, d_model)

    def positions(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` of the sinusoidal table ``(stop - start, D)``, grown on demand."""
        if self._positions.shape[0] < stop:
            self._positions = sinusoidal_positions(max(stop, 2 * self._positions.shape[0], 64), self.d_model)
        return self._positions[start:stop]

    def embed_tokens(self, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        """``tokens`` ``(B, L)`` at positions ``start...`` -> ``(B, L, D)``."""
        x = self.embed(tokens)
        positions = self.positions(start, start + tokens.shape[1]).to(device=x.device, dtype=x.dtype)
        return x * math.sqrt(self.d_model) + positions

    def forward(self, tokens: torch.Tensor, memory: torch.Tensor,
                memory_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, L, V)`` for ``tokens`` ``(B, L)`` (each position sees itself and earlier ones)
        over ``memory`` ``(B, T, D)`` with optional ``memory_lengths`` ``(B,)``."""
        length = tokens.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=tokens.device).tril()
        memory_mask = None
        if memory_lengths is not None:
            frames = torch.arange(memory.shape[1], device=memory.device)
            memory_mask = (frames[None, :] < memory_lengths[:, None])[:, None, None, :]  # (B, 1, 1, T)
        x = self.embed_tokens(tokens)
        for block in self.decoders:
            normed = block.norm1(x)
            keys, values = block.self_attn.keys_values(normed)
            x = x + block.self_attn.attend(normed, keys, values, causal)
            x = block.after_self_attention(x, *block.src_attn.keys_values(memory), memory_mask)
        return self.output_layer(self.after_norm(x))

    def start(self, memory: torch.Tensor) -> DecoderCache:
        """An empty cache for decoding over one utterance's encoder output ``memory`` ``(T, D)``."""
        empty = memory.new_zeros(1, self.decoders[0].self_attn.heads, 0, self.decoders[0].self_attn.head_dim)
        pairs = [block.src_attn.keys_values(memory[None]) for block in self.decoders]
        return DecoderCache([empty] * len(self.decoders), [empty] * len(self.decoders),
                            [k for k, _ in pairs], [v for _, v in pairs])

    def step(self, tokens: torch.Tensor, cache: DecoderCache) -> tuple[torch.Tensor, DecoderCache]:
        """Log-probabilities ``(N, V)`` of the token after each hypothesis's last token ``tokens`` ``(N,)``,
        and the cache with that token added. ``cache`` holds the ``N`` hypotheses' earlier tokens (for
        the first step: :meth:`start`'s, which any ``N`` may extend)."""
        x = self.embed_tokens(tokens[:, None], cache.length)  # (N, 1, D)
        keys, values = [], []
        for block, past_keys, past_values, memory_keys, memory_values in zip(
                self.decoders, cache.keys, cache.values, cache.memory_keys, cache.memory_values):
            normed = block.norm1(x)
            new_keys, new_values = block.self_attn.keys_values(normed)
            keys.append(torch.cat([past_keys.expand(len(x), -1, -1, -1), new_keys], dim=2))
            values.append(torch.cat([past_values.expand(len(x), -1, -1, -1), new_values], dim=2))
            x = x + block.self_attn.attend(normed, keys[-1], values[-1])
            x = block.after_self_attention(x, memory_keys, memory_values)
        log_probs = torch.log_softmax(self.output_layer(self.after_norm(x[:, 0])), dim=-1)
        return log_probs, DecoderCache(keys, values, cache.memory_keys, cache.memory_values)
