"""Greedy CTC decoding: best token per frame, repeats collapsed, blanks dropped."""

from __future__ import annotations

import torch

from avsr.data.tokenizer import CharTokenizer


def greedy_token_ids(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int = 0) -> list[list[int]]:
    """Token ids per utterance from ``log_probs`` ``(B, T, V)`` with ``lengths`` ``(B,)``."""
    best = log_probs.argmax(dim=-1).cpu()  # (B, T)
    out = []
    for row, length in zip(best, lengths.cpu().tolist()):
        row = row[:length]
        keep = torch.ones_like(row, dtype=torch.bool)
        keep[1:] = row[1:] != row[:-1]
        out.append([int(t) for t in row[keep] if t != blank])
    return out


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor,
                  tokenizer: CharTokenizer = CharTokenizer()) -> list[str]:
    """Transcripts, with runs of spaces collapsed and ends stripped."""
    return [" ".join(tokenizer.decode(ids).split()) for ids in greedy_token_ids(log_probs, lengths, tokenizer.blank)]
