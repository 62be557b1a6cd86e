"""Joint CTC/attention beam search (Watanabe et al., 2017), as auto_avsr decodes by default.

Two scorers, each a small object over the ``N`` running hypotheses, are combined with weights:

- :class:`DecoderScorer`: the attention decoder's log P(token | prefix, encoder output) for every
  token (one incremental :meth:`~avsr.models.e2e_decoder.TransformerDecoder.step` per search step);
- :class:`CtcPrefixScorer`: the CTC prefix score, log P(prefix + token is a prefix of the CTC output)
  minus log P(prefix ...), for the pre-beam candidates of each hypothesis only (the rest get -1e10);
  for ``<eos>``, log P(CTC output = prefix) minus the same.

:func:`joint_beam_search` runs them, the way the reference's ``BatchBeamSearch`` does (every detail
below is the reference's): each step, every running hypothesis scores every token with
``(1 - ctc_weight) * decoder + length_bonus + ctc_weight * ctc`` added to its running total; CTC
prefix scores are computed only for the ``int(1.5 * beam)`` tokens the decoder likes best per
hypothesis; the ``beam`` best (hypothesis, token) pairs over the whole ``(N, V)`` matrix go on; a
hypothesis whose new token is ``<eos>`` ends. At most as many tokens as encoder frames: at the last
step ``<eos>`` is appended to every running hypothesis. The search stops early when, for each of the
last 3 lengths, the best hypothesis that ended at that length is more than 10 below the best ended
one. The winner is the ended hypothesis with the highest summed score, not normalised by length.
(``JointOptions.max_tokens`` is the reference's other length rule, its ``maxlenratio < 0``: a fixed
maximum and no end detection.)

Everything is batched over the hypotheses: the decoder keeps its keys and values (the encoder
output's projected once), and the CTC prefix scores are one reduction over frames, their forward
variables carried only for the hypotheses kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from avsr.errors import OptionError
from avsr.models.e2e_decoder import TransformerDecoder

LOG_ZERO = -1e10
END_DETECT_LENGTHS = 3
END_DETECT_MARGIN = math.log(math.exp(-10))  # -10: an ended length this far below the best ended one is hopeless


@dataclass(frozen=True)
class JointOptions:
    """Settings of :func:`joint_beam_search`; the defaults are auto_avsr's."""

    beam_size: int = 40
    ctc_weight: float = 0.1  # the decoder's weight is 1 - ctc_weight
    length_bonus: float = 0.0  # added per token (eos included)
    pre_beam_ratio: float = 1.5  # CTC prefix scores for the int(ratio * beam) best decoder tokens
    # None: up to as many tokens as encoder frames, stopping at end detection (the reference's maxlenratio 0);
    # a number: up to that many (at most the frames), no end detection (its maxlenratio -max_tokens)
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise OptionError(f"beam_size={self.beam_size} must be at least 1")
        if not 0.0 <= self.ctc_weight < 1.0:
            raise OptionError(f"ctc_weight={self.ctc_weight} must be in [0, 1); for CTC alone use the CTC decoder")
        if self.pre_beam_ratio < 1.0:
            raise OptionError(f"pre_beam_ratio={self.pre_beam_ratio} must be at least 1")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise OptionError(f"max_tokens={self.max_tokens} must be at least 1 (or None: as many as encoder frames)")

    @property
    def pre_beam_size(self) -> int:
        return int(self.pre_beam_ratio * self.beam_size)


@dataclass(frozen=True)
class JointHypothesis:
    """An ended hypothesis: its tokens (no ``<sos>``, no ``<eos>``), its summed weighted score and each
    scorer's own summed log-probability."""

    token_ids: tuple[int, ...]
    score: float
    decoder_score: float
    ctc_score: float


class DecoderScorer:
    """The attention decoder over one utterance's encoder output ``memory`` ``(T, D)``."""

    def __init__(self, decoder: TransformerDecoder, memory: torch.Tensor) -> None:
        self.decoder = decoder
        self.cache = decoder.start(memory)
        self.pending = self.cache

    def score(self, last_tokens: torch.Tensor) -> torch.Tensor:
        """log P(next token) ``(N, V)`` for hypotheses ending in ``last_tokens`` ``(N,)``."""
        log_probs, self.pending = self.decoder.step(last_tokens, self.cache)
        return log_probs

    def select(self, hypotheses: torch.Tensor, tokens: torch.Tensor) -> None:
        """Keep the last scored hypotheses ``hypotheses`` ``(K,)``, extended by ``tokens`` ``(K,)``."""
        self.cache = self.pending.select(hypotheses)


class CtcPrefixScorer:
    """CTC prefix scores from one utterance's CTC log-probabilities ``(T, V)``.

    Per hypothesis it keeps the forward variables over frames of its prefix ending in a token
    (``ends_token``) and in a blank (``ends_blank``), each ``(N, T)``, and the log-probability of its
    prefix (``prefix``, ``(N,)``), as in Watanabe et al. (2017), Algorithm 2."""

    def __init__(self, log_probs: torch.Tensor, blank: int, eos: int) -> None:
        self.log_probs_by_token = log_probs.t().contiguous()  # (V, T)
        self.blank, self.eos = blank, eos
        self.frames = log_probs.shape[0]
        self.ends_blank = torch.cumsum(self.log_probs_by_token[blank], 0)[None]  # (1, T)
        self.ends_token = torch.full_like(self.ends_blank, LOG_ZERO)
        self.prefix = self.ends_blank.new_zeros(1)
        self.emitted = 0  # tokens in every running prefix (the search extends them in step)
        self.last_tokens = None
        self.psi = None

    def score(self, last_tokens: torch.Tensor, candidates: torch.Tensor | None) -> torch.Tensor:
        """Prefix scores ``(N, V)`` of each hypothesis extended by each token: computed for
        ``candidates`` ``(N, S)`` (None: all tokens) and ``<eos>``, -1e10 elsewhere and for blank;
        minus the hypothesis's own prefix score."""
        n, vocab = len(last_tokens), self.log_probs_by_token.shape[0]
        if candidates is None:
            candidates = torch.arange(vocab, device=last_tokens.device).expand(n, vocab)
        start = max(self.emitted, 1)
        total = torch.logsumexp(torch.stack([self.ends_token, self.ends_blank]), 0)  # (N, T)
        before = total[:, None, :].expand(-1, candidates.shape[1], -1)  # (N, S, T)
        repeat = candidates == last_tokens[:, None]  # a repeat must pass through a blank
        before = torch.where(repeat[..., None], self.ends_blank[:, None, :], before)
        emit = self.log_probs_by_token[candidates]  # (N, S, T)
        terms = before[..., start - 1:-1] + emit[..., start:]  # the token first emitted at frame t >= start
        if self.emitted == 0:
            terms = torch.cat([terms, emit[..., :1]], dim=-1)  # ... or at frame 0
        psi = total.new_full((n, vocab), LOG_ZERO)
        psi.scatter_(1, candidates, torch.logsumexp(terms, -1))
        psi[:, self.eos] = total[:, -1]
        psi[:, self.blank] = LOG_ZERO
        self.last_tokens, self.psi = last_tokens, psi
        return psi - self.prefix[:, None]

    def select(self, hypotheses: torch.Tensor, tokens: torch.Tensor) -> None:
        """Keep the last scored hypotheses ``hypotheses`` ``(K,)`` extended by ``tokens`` ``(K,)``
        (none of them ``<eos>``): their forward variables over the frames."""
        start = max(self.emitted, 1)
        before = torch.logsumexp(torch.stack([self.ends_token, self.ends_blank]), 0)[hypotheses]  # (K, T)
        repeat = tokens == self.last_tokens[hypotheses]
        before = torch.where(repeat[:, None], self.ends_blank[hypotheses], before)
        first = self.log_probs_by_token[tokens, 0] if self.emitted == 0 else torch.full_like(tokens, LOG_ZERO,
                                                                                           dtype=before.dtype)
        ends_token, ends_blank = forward_variables(before, self.log_probs_by_token[tokens],
                                                   self.log_probs_by_token[self.blank], first, start)
        self.ends_token, self.ends_blank = ends_token, ends_blank
        self.prefix = self.psi[hypotheses, tokens]
        self.emitted += 1


def forward_variables(before: torch.Tensor, emit: torch.Tensor, blank: torch.Tensor, first: torch.Tensor,
                      start: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CTC forward variables of prefixes extended by one token, ending in that token and in a blank,
    each ``(K, T)``, for frames ``t >= start`` (``start - 1`` holds ``first`` and -1e10; earlier: -1e10):

        token[t] = logaddexp(token[t-1], before[t-1]) + emit[t]
        blank[t] = logaddexp(token[t-1], blank[t-1]) + blank_emit[t]

    ``before`` ``(K, T)``: the prefix's probability (only its blank-ending part if the token repeats
    its last one); ``emit`` ``(K, T)`` and ``blank`` ``(T,)``: log-probabilities of the token and of
    blank. Both recursions are linear in probability, so each is a cumulative log-sum-exp over frames,
    in float64 for its range."""
    dtype = before.dtype
    before, emit, blank, first = before.double(), emit.double(), blank.double(), first.double()
    frames = before.shape[1]
    ends_token = torch.full_like(before, LOG_ZERO)
    ends_blank = torch.full_like(before, LOG_ZERO)
    ends_token[:, start - 1] = first
    if start < frames:
        gain = torch.cumsum(emit[:, start:], 1)  # (K, T - start): sum of emit over start..t
        carried = torch.cat([torch.logaddexp(first, before[:, start - 1])[:, None],
                             before[:, start:-1] - gain[:, :-1]], dim=1)
        ends_token[:, start:] = gain + torch.logcumsumexp(carried, 1)
        blank_gain = torch.cumsum(blank[start:], 0)[None]  # (1, T - start)
        carried = torch.cat([first[:, None], ends_token[:, start:-1] - blank_gain[:, :-1]], dim=1)
        ends_blank[:, start:] = blank_gain + torch.logcumsumexp(carried, 1)
    return ends_token.to(dtype), ends_blank.to(dtype)


@dataclass
class _Beam:
    """The running hypotheses: tokens ``(N, L)`` (``<sos>`` first) and summed scores ``(N,)`` each."""

    tokens: torch.Tensor
    score: torch.Tensor
    decoder_score: torch.Tensor
    ctc_score: torch.Tensor

    def take(self, index: torch.Tensor) -> _Beam:
        return _Beam(self.tokens[index], self.score[index], self.decoder_score[index], self.ctc_score[index])


def joint_beam_search(decoder: TransformerDecoder, memory: torch.Tensor, ctc_log_probs: torch.Tensor, sos: int,
                      eos: int, blank: int = 0, options: JointOptions = JointOptions()) -> list[JointHypothesis]:
    """The ended hypotheses, best first, for one utterance: encoder output ``memory`` ``(T, D)`` and
    its CTC log-probabilities ``ctc_log_probs`` ``(T, V)``. Empty when ``T`` is 0."""
    frames = ctc_log_probs.shape[0]
    if frames == 0:
        return []
    with torch.inference_mode():
        scorers = _Scorers(decoder, memory, ctc_log_probs, blank, eos, options)
        zero = ctc_log_probs.new_zeros(1)
        beam = _Beam(torch.full((1, 1), sos, dtype=torch.long, device=ctc_log_probs.device), zero, zero, zero)
        ended: list[tuple[JointHypothesis, int]] = []  # with the reference's length: <sos> + tokens + <eos>
        steps = frames if options.max_tokens is None else min(options.max_tokens, frames)
        for step in range(steps):
            beam, previous = scorers.extend(beam, options.beam_size)
            last = step == steps - 1
            ends = torch.ones_like(beam.score, dtype=torch.bool) if last else beam.tokens[:, -1] == eos
            ended += [_ended(beam, i, eos, forced_eos=last) for i in ends.nonzero()[:, 0].tolist()]
            keep = (~ends).nonzero()[:, 0]
            beam = beam.take(keep)
            if len(keep):
                scorers.select(previous[keep], beam.tokens[:, -1])
            if len(keep) == 0 or options.max_tokens is None and _end_detected(ended, step):
                break
    return [hypothesis for hypothesis, _ in sorted(ended, key=lambda pair: pair[0].score, reverse=True)]


class _Scorers:
    """The weighted scorers of one search."""

    def __init__(self, decoder: TransformerDecoder, memory: torch.Tensor, ctc_log_probs: torch.Tensor, blank: int,
                 eos: int, options: JointOptions) -> None:
        self.decoder = DecoderScorer(decoder, memory)
        self.ctc = CtcPrefixScorer(ctc_log_probs, blank, eos) if options.ctc_weight > 0 else None
        self.options = options

    def extend(self, beam: _Beam, beam_size: int) -> tuple[_Beam, torch.Tensor]:
        """The ``beam_size`` best one-token extensions of ``beam`` over the flattened ``(N, V)`` totals,
        best first, and the index in ``beam`` of the hypothesis each extends."""
        last_tokens = beam.tokens[:, -1]
        decoder = self.decoder.score(last_tokens)  # (N, V)
        total = (1.0 - self.options.ctc_weight) * decoder
        if self.options.length_bonus:
            total = total + self.options.length_bonus
        ctc = torch.zeros_like(decoder)
        if self.ctc is not None:
            candidates = None
            if self.options.pre_beam_size < decoder.shape[1]:
                candidates = torch.topk(decoder, self.options.pre_beam_size, dim=-1)[1]  # (N, S)
            ctc = self.ctc.score(last_tokens, candidates)
            total += self.options.ctc_weight * ctc
        total += beam.score[:, None]
        vocab = total.shape[1]
        best = total.view(-1).topk(min(beam_size, total.numel()))[1]
        previous, tokens = torch.div(best, vocab, rounding_mode="trunc"), best % vocab
        extended = _Beam(torch.cat([beam.tokens[previous], tokens[:, None]], dim=1), total.view(-1)[best],
                         beam.decoder_score[previous] + decoder[previous, tokens],
                         beam.ctc_score[previous] + ctc[previous, tokens])
        return extended, previous

    def select(self, previous: torch.Tensor, tokens: torch.Tensor) -> None:
        """Keep the scorers' states of the hypotheses ``previous`` ``(K,)`` (indices of the last scored
        ones) extended by ``tokens`` ``(K,)``."""
        self.decoder.select(previous, tokens)
        if self.ctc is not None:
            self.ctc.select(previous, tokens)


def _ended(beam: _Beam, i: int, eos: int, forced_eos: bool) -> tuple[JointHypothesis, int]:
    tokens = beam.tokens[i, 1:].tolist()
    length = len(tokens) + 1 + (1 if forced_eos else 0)
    while tokens and tokens[-1] == eos:
        tokens.pop()
    return JointHypothesis(tuple(tokens), float(beam.score[i]), float(beam.decoder_score[i]),
                           float(beam.ctc_score[i])), length


def _end_detected(ended: list[tuple[JointHypothesis, int]], step: int) -> bool:
    """The reference's rule (its yseq lengths count ``<sos>`` and ``<eos>``): for each of the lengths
    ``step``, ``step - 1`` and ``step - 2``, some hypothesis of that length ended, the best of them more
    than 10 below the best ended hypothesis."""
    if not ended:
        return False
    best = max(hypothesis.score for hypothesis, _ in ended)
    hopeless = 0
    for length in range(step, step - END_DETECT_LENGTHS, -1):
        same = [hypothesis.score for hypothesis, n in ended if n == length]
        if same and max(same) - best < END_DETECT_MARGIN:
            hopeless += 1
    return hopeless == END_DETECT_LENGTHS
