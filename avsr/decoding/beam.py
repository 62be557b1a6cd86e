"""CTC beam search through torchaudio's ``ctc_decoder`` (flashlight-text).

Lexicon-free by default: any character sequence can come out, words are split at the space token.
With a lexicon, only its words can be emitted (spelled in the tokenizer's characters); with a KenLM
language model (ARPA or binary) the search adds ``lm_weight`` times its log-probability — a word LM
with a lexicon, a character LM ("|" separating words) without one.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from avsr.errors import AvsrError
from avsr.data.tokenizer import CharTokenizer

BLANK_TOKEN, SPACE_TOKEN = "-", "|"


class LexiconError(AvsrError, ValueError):
    """A lexicon file that cannot be read; the message names the file and the fix."""


@dataclass(frozen=True)
class BeamOptions:
    """Settings of :class:`BeamDecoder`; ``beam_size`` 1 means greedy decoding (no search)."""

    beam_size: int = 16
    lexicon: str | None = None  # words, one per line (optionally followed by a spelling), or a manifest .jsonl
    lm: str | None = None  # KenLM ARPA or binary file
    lm_weight: float = 2.0
    word_score: float = 0.0  # added per emitted word (a length bonus)
    beam_threshold: float = 25.0  # hypotheses this far below the best are pruned


def read_lexicon(path: str | Path, tokenizer: CharTokenizer = CharTokenizer()) -> list[str]:
    """The words of a lexicon: a word list (first field of each line: flashlight-style lexicons work
    too) or a manifest ``.jsonl`` whose ``text`` fields are split into words. Sorted, unique."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise LexiconError(f"{path}: cannot read the lexicon ({error}); pass a UTF-8 word list, one word per line")
    words: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if path.suffix == ".jsonl":
            try:
                words.update(json.loads(line)["text"].split())
            except (ValueError, KeyError, TypeError):
                raise LexiconError(f"{path}:{number}: not a manifest line with a 'text' field; "
                                   "pass a manifest .jsonl or a word list") from None
        else:
            words.add(line.split()[0].lower())
    allowed = set(tokenizer.characters) - {" "}
    bad = sorted(w for w in words if not set(w) <= allowed)
    if bad:
        raise LexiconError(f"{path}: {len(bad)} words use characters outside {tokenizer.characters.strip()!r} "
                           f"(e.g. {bad[0]!r}); normalise the lexicon to lower case a-z and apostrophes")
    if not words:
        raise LexiconError(f"{path}: the lexicon has no words; pass a word list, one word per line")
    return sorted(words)


class BeamDecoder:
    """Beam search over CTC log-probabilities ``(B, T, V)``; returns transcripts as text."""

    def __init__(self, options: BeamOptions = BeamOptions(), tokenizer: CharTokenizer = CharTokenizer()) -> None:
        from torchaudio.models.decoder import ctc_decoder

        self.options, self.tokenizer = options, tokenizer
        tokens = [BLANK_TOKEN] + [SPACE_TOKEN if c == " " else c for c in tokenizer.characters]
        lexicon_file = None
        if options.lexicon:
            words = read_lexicon(options.lexicon, tokenizer)
            lexicon_file = tempfile.NamedTemporaryFile("w", suffix=".lexicon", encoding="utf-8", delete=False)
            with lexicon_file:
                lexicon_file.writelines(f"{w} {' '.join(w)} {SPACE_TOKEN}\n" for w in words)
        if options.lm and not Path(options.lm).is_file():
            raise LexiconError(f"{options.lm}: language model not found; pass a KenLM .arpa or .bin file")
        try:
            self._decoder = ctc_decoder(
                lexicon=lexicon_file.name if lexicon_file else None, tokens=tokens, lm=options.lm,
                beam_size=options.beam_size, beam_threshold=options.beam_threshold, lm_weight=options.lm_weight,
                word_score=options.word_score, blank_token=BLANK_TOKEN, sil_token=SPACE_TOKEN)
        except RuntimeError as error:  # KenLM's load errors
            reason = str(error).strip().splitlines()[-1]
            raise LexiconError(f"{options.lm}: not a usable KenLM model ({reason}); pass an ARPA or binary "
                               "n-gram model of order 2 or more") from None
        finally:
            if lexicon_file:
                Path(lexicon_file.name).unlink()

    def token_ids(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
        """Best token sequence per utterance (blanks and repeats removed; the space token included)."""
        emissions = log_probs.detach().float().cpu().contiguous()
        hypotheses = self._decoder(emissions, lengths.detach().cpu().to(torch.int32))
        return [[int(t) for t in best[0].tokens] if best else [] for best in hypotheses]

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        return [" ".join(self.tokenizer.decode(ids).split()) for ids in self.token_ids(log_probs, lengths)]


def make_decoder(beam_size: int = 1, lexicon: str | None = None, lm: str | None = None, lm_weight: float = 2.0,
                 word_score: float = 0.0, tokenizer: CharTokenizer = CharTokenizer()):
    """A decoder ``(log_probs (B, T, V), lengths (B,)) -> list[str]``: greedy for ``beam_size`` 1, else a
    :class:`BeamDecoder`.

    Raises:
        LexiconError: a lexicon or language model without beam search (they would be ignored), or an
            unreadable lexicon or LM.
    """
    from functools import partial

    from avsr.decoding.greedy import greedy_decode

    if (lexicon or lm) and beam_size <= 1:
        raise LexiconError("a lexicon or language model needs beam search; add --beam-size 16")
    if beam_size <= 1:
        return partial(greedy_decode, tokenizer=tokenizer)
    return BeamDecoder(BeamOptions(beam_size=beam_size, lexicon=lexicon, lm=lm, lm_weight=lm_weight,
                                   word_score=word_score), tokenizer)
