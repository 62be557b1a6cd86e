"""Joint CTC/attention beam search: the reference's best hypothesis on its own golden encoder outputs
(vsr, asr, avsr; beam 40 and 4), CTC prefix scores equal to brute-force sums over CTC paths, the
decoder's incremental step equal to its whole-sequence forward, and the options' bounds."""

from __future__ import annotations

import functools
import itertools
import math

import pytest
import torch

from avsr.decoding.greedy import greedy_token_ids
from avsr.decoding.joint import CtcPrefixScorer, JointOptions, joint_beam_search
from avsr.errors import OptionError
from avsr.models.e2e_decoder import TransformerDecoder
from tests.models.auto_avsr_fixtures import golden, manifest, reference_state_dict

BEAMS = {40: "beam_default", 4: "beam4"}


@functools.cache
def reference_decoder(kind: str) -> TransformerDecoder:
    """The golden model's decoder, rebuilt from its recipe (dims and head count from the manifest)."""
    dims = manifest()[kind]["dims"]
    decoder = TransformerDecoder(manifest()[kind]["odim"], dims["adim"], dims["decoder_heads"], dims["dunits"],
                                 dims["dlayers"]).eval()
    state = {key.removeprefix("decoder."): value for key, value in reference_state_dict(kind).items()
             if key.startswith("decoder.")}
    state["embed.weight"] = state.pop("embed.0.weight")
    decoder.load_state_dict(state)
    return decoder


def search(kind: str, beam: int) -> list:
    memory = torch.from_numpy(golden(kind, "encoder_out"))
    ctc = torch.from_numpy(golden(kind, "ctc_logprobs"))
    eos = manifest()[kind]["eos"]
    return joint_beam_search(reference_decoder(kind), memory, ctc, sos=eos, eos=eos, blank=0,
                             options=JointOptions(beam_size=beam))


@pytest.mark.parametrize("beam", BEAMS)
@pytest.mark.parametrize("kind", ["vsr", "asr", "avsr"])
def test_the_best_hypothesis_is_the_references(kind, beam):
    expected = manifest()[kind][BEAMS[beam]]
    hypotheses = search(kind, beam)
    best = hypotheses[0]
    assert list(best.token_ids) + [manifest()[kind]["eos"]] == expected["token_ids"]
    reference = expected["nbest"][0]
    assert best.score == pytest.approx(reference["score"], abs=1e-3)
    assert best.decoder_score == pytest.approx(reference["scores"]["decoder"], abs=1e-3)
    assert best.ctc_score == pytest.approx(reference["scores"]["ctc"], abs=1e-3)
    assert [h.score for h in hypotheses] == sorted((h.score for h in hypotheses), reverse=True)
    if expected["min_topk_margin"] > 0:  # no exact tie at the beam's edge: the same hypotheses ended
        assert len(hypotheses) == expected["n_ended"]


# The reference's BatchBeamSearch on the same goldens with maxlenratio = -max_tokens (its fixed length,
# no end detection): best ids (<eos> forced at the end included), score, hypotheses ended.
FIXED_LENGTH = [("vsr", 4, 6, [3739, 2502, 2732, 4409, 2057, 4816, 5048], -20.3724422454834, 4),
                ("asr", 40, 9, [3078, 2606, 4448] + [1837] * 6 + [5048], -25.154224395751953, 40)]


@pytest.mark.parametrize("kind, beam, max_tokens, ids, score, ended", FIXED_LENGTH)
def test_a_fixed_length_is_the_references(kind, beam, max_tokens, ids, score, ended):
    memory, ctc = torch.from_numpy(golden(kind, "encoder_out")), torch.from_numpy(golden(kind, "ctc_logprobs"))
    hypotheses = joint_beam_search(reference_decoder(kind), memory, ctc, sos=5048, eos=5048,
                                   options=JointOptions(beam_size=beam, max_tokens=max_tokens))
    assert list(hypotheses[0].token_ids) + [5048] == ids
    assert hypotheses[0].score == pytest.approx(score, abs=1e-3)
    assert len(hypotheses) == ended


def test_a_confident_ctc_head_leads_the_search_to_its_greedy_transcript():
    """With CTC weighted 0.9 and CTC posteriors peaked on one path, the search returns that path's
    tokens, repeats (through a blank) included; the decoder here is random. (Beam 6: its pre-beam of 9
    covers the 8 tokens; with a smaller one, CTC scores only the tokens the decoder ranks highest.)"""
    torch.manual_seed(0)
    vocab, eos = 8, 7
    path = [0, 3, 3, 0, 5, 0, 0, 2, 2, 0, 2, 6, 0, 0]  # frames' best tokens: 3 5 2 2 6
    log_probs = torch.full((len(path), vocab), math.log(0.02))
    log_probs[torch.arange(len(path)), torch.tensor(path)] = math.log(1 - 0.02 * (vocab - 1))
    decoder = TransformerDecoder(vocab, 16, 2, 32, 2).eval()
    best = joint_beam_search(decoder, torch.randn(len(path), 16), log_probs, sos=eos, eos=eos,
                             options=JointOptions(beam_size=6, ctc_weight=0.9))[0]
    assert list(best.token_ids) == greedy_token_ids(log_probs[None], torch.tensor([len(path)]))[0] == [3, 5, 2, 2, 6]


def collapse(path: tuple[int, ...], blank: int) -> tuple[int, ...]:
    return tuple(t for i, t in enumerate(path) if t != blank and (i == 0 or t != path[i - 1]))


def brute_force(log_probs: torch.Tensor, prefix: tuple[int, ...], blank: int = 0) -> tuple[float, float]:
    """log P(the CTC output starts with ``prefix``), log P(it is ``prefix``): sums over every path."""
    frames, vocab = log_probs.shape
    starts = ends = 0.0
    for path in itertools.product(range(vocab), repeat=frames):
        labels = collapse(path, blank)
        p = math.exp(sum(float(log_probs[t, k]) for t, k in enumerate(path)))
        starts += p if labels[:len(prefix)] == prefix else 0.0
        ends += p if labels == prefix else 0.0
    return math.log(starts), math.log(ends)


def test_ctc_prefix_scores_are_sums_over_ctc_paths():
    """Scores of one-token extensions of '', then of (2,) and (1,), equal brute-force path sums, the
    repeat (2, 2) and <eos> (the whole output) included."""
    torch.manual_seed(3)
    frames, vocab, eos = 6, 4, 3  # tokens 1, 2; eos 3 has no CTC mass of its own
    logits = torch.randn(frames, vocab).double()
    logits[:, eos] = -30.0
    log_probs = torch.log_softmax(logits, -1)
    scorer = CtcPrefixScorer(log_probs, blank=0, eos=eos)
    first = scorer.score(torch.tensor([eos]), None)[0]  # the start token's one hypothesis
    for token in (1, 2):
        assert float(first[token]) == pytest.approx(brute_force(log_probs, (token,))[0], abs=1e-9)
    assert float(first[eos]) == pytest.approx(brute_force(log_probs, ())[1], abs=1e-9)
    scorer.select(torch.tensor([0, 0]), torch.tensor([2, 1]))
    second = scorer.score(torch.tensor([2, 1]), torch.tensor([[2, 1], [1, 2]]))
    for row, prefix in enumerate([(2,), (1,)]):
        own = brute_force(log_probs, prefix)
        for token in (1, 2):
            expected = brute_force(log_probs, prefix + (token,))[0] - own[0]
            assert float(second[row, token]) == pytest.approx(expected, abs=1e-9)
        assert float(second[row, eos]) == pytest.approx(own[1] - own[0], abs=1e-9)
        assert float(second[row, 0]) < -1e9  # blank is never proposed


def test_the_incremental_step_equals_the_whole_sequence_forward():
    torch.manual_seed(1)
    decoder = TransformerDecoder(11, 32, 4, 64, 3).eval()
    memory = torch.randn(9, 32)
    tokens = torch.tensor([[10, 3, 4, 4, 7], [10, 1, 2, 3, 4]])
    with torch.no_grad():
        expected = torch.log_softmax(decoder(tokens, memory.expand(2, -1, -1)), -1)  # (2, 5, 11)
        cache = decoder.start(memory)
        for position in range(tokens.shape[1]):
            log_probs, cache = decoder.step(tokens[:, position], cache)
            torch.testing.assert_close(log_probs, expected[:, position], atol=1e-5, rtol=0)
        swapped, _ = decoder.step(torch.tensor([5, 5]), cache.select(torch.tensor([1, 0])))
        straight, _ = decoder.step(torch.tensor([5, 5]), cache)
    torch.testing.assert_close(swapped, straight.flip(0), atol=1e-6, rtol=0)


def test_padding_the_encoder_output_in_a_batch_changes_nothing():
    torch.manual_seed(2)
    decoder = TransformerDecoder(11, 32, 4, 64, 2).eval()
    memory, tokens = torch.randn(1, 6, 32), torch.tensor([[10, 3, 4]])
    padded = torch.cat([memory, torch.randn(1, 4, 32)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(decoder(tokens, padded, torch.tensor([6])), decoder(tokens, memory),
                                   atol=1e-5, rtol=0)


def test_no_frames_no_hypotheses():
    decoder = TransformerDecoder(5, 8, 2, 16, 1).eval()
    assert joint_beam_search(decoder, torch.zeros(0, 8), torch.zeros(0, 5), sos=4, eos=4) == []


@pytest.mark.parametrize("options", [dict(beam_size=0), dict(ctc_weight=1.0), dict(ctc_weight=-0.1),
                                     dict(pre_beam_ratio=0.5), dict(max_tokens=0)])
def test_options_out_of_range_are_refused_in_one_line(options):
    with pytest.raises(OptionError) as error:
        JointOptions(**options)
    assert "\n" not in str(error.value) and next(iter(options)) in str(error.value)


def test_ctc_weight_zero_is_the_decoder_alone():
    torch.manual_seed(4)
    decoder = TransformerDecoder(6, 16, 2, 32, 1).eval()
    memory = torch.randn(5, 16)
    best = joint_beam_search(decoder, memory, torch.log_softmax(torch.randn(5, 6), -1), sos=5, eos=5,
                             options=JointOptions(beam_size=1, ctc_weight=0.0))[0]
    with torch.no_grad():  # beam 1 on the decoder alone is greedy on it
        cache, token, greedy = decoder.start(memory), 5, []
        for _ in range(5):
            log_probs, cache = decoder.step(torch.tensor([token]), cache)
            token = int(log_probs.argmax())
            if token == 5:
                break
            greedy.append(token)
    assert list(best.token_ids) == greedy
    assert best.ctc_score == 0.0 and best.score == pytest.approx(best.decoder_score, abs=1e-5)
