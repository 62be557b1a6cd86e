"""CTC beam search (avsr.decoding.beam) on hand-made log-probabilities whose best paths are known."""

from __future__ import annotations

import json

import pytest
import torch

from avsr.data.tokenizer import CharTokenizer
from avsr.decoding.beam import BeamDecoder, BeamOptions, LexiconError, make_decoder, read_lexicon
from avsr.decoding.greedy import greedy_decode

TOKENIZER = CharTokenizer()


def spelled(frames: list[str], sure: float = 0.9) -> torch.Tensor:
    """Log-probabilities ``(T, V)``: each frame's character (``"-"``: blank) at ``sure``, the rest spread evenly."""
    probs = torch.full((len(frames), TOKENIZER.vocab_size), (1 - sure) / (TOKENIZER.vocab_size - 1))
    for t, char in enumerate(frames):
        probs[t, TOKENIZER.blank if char == "-" else TOKENIZER.encode(char)[0]] = sure
    return probs.log()


def test_beam_search_spells_the_best_path_with_repeats_and_blanks():
    # "see": the two e's are separated by a blank; "ss" without one is a single s; spaces split words.
    log_probs = spelled(list("--ss-ee-e-- -rr-e-d--"))
    decoder = BeamDecoder(BeamOptions(beam_size=8))
    assert decoder(log_probs[None], torch.tensor([len(log_probs)])) == ["see red"]
    [ids] = decoder.token_ids(log_probs[None], torch.tensor([len(log_probs)]))
    space = TOKENIZER.encode(" ")
    assert ids == space + TOKENIZER.encode("see red") + space  # flashlight's hypotheses begin and end at a word break


def test_beam_search_equals_greedy_without_a_lexicon_or_lm():
    """Frames are independent, so the single best path is the greedy one; the beam must keep it."""
    generator = torch.Generator().manual_seed(0)
    logits = 4 * torch.randn(6, 40, TOKENIZER.vocab_size, generator=generator)
    logits[..., TOKENIZER.blank] += 3  # blanks most of the time, as CTC models emit
    log_probs, lengths = logits.log_softmax(-1), torch.tensor([40, 40, 33, 25, 12, 1])
    greedy = make_decoder(beam_size=1)(log_probs, lengths)
    assert greedy == greedy_decode(log_probs, lengths) and any(len(text) > 3 for text in greedy)
    assert make_decoder(beam_size=16)(log_probs, lengths) == greedy


def test_frames_past_an_utterance_length_are_not_read():
    short, padded = spelled(list("-b-i-n-")), spelled(list("-b-i-n-") + list("xxyyzz"))
    decoder = BeamDecoder(BeamOptions(beam_size=4))
    batch = torch.stack([padded, padded])
    assert decoder(batch, torch.tensor([len(short), len(padded)])) == ["bin", "binxyz"]


def test_a_lexicon_restricts_the_output_to_its_words(tmp_path):
    # Greedily "bim red": the last letter of the first word is m (0.6) over n (0.3).
    log_probs = spelled(list("-b-i-m- -r-e-d-"))
    probs = log_probs.exp()
    probs[5], probs[5, TOKENIZER.encode("m")[0]], probs[5, TOKENIZER.encode("n")[0]] = 0.1 / 27, 0.6, 0.3
    log_probs = probs.log()[None]
    lengths = torch.tensor([log_probs.shape[1]])
    assert make_decoder(beam_size=8)(log_probs, lengths) == ["bim red"]
    words = tmp_path / "words.txt"
    words.write_text("bin\nred\nblue\n")
    assert make_decoder(beam_size=8, lexicon=str(words))(log_probs, lengths) == ["bin red"]
    manifest = tmp_path / "train.jsonl"  # the same words from a manifest's transcripts
    manifest.write_text("\n".join(json.dumps({"id": str(i), "text": t}) for i, t in enumerate(["bin red", "blue"])))
    assert read_lexicon(manifest) == ["bin", "blue", "red"]
    assert make_decoder(beam_size=8, lexicon=str(manifest))(log_probs, lengths) == ["bin red"]


def test_bad_lexicons_and_options_name_the_file_and_the_fix(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("bin\nCafé\n")
    with pytest.raises(LexiconError, match=r"words.txt: 1 words use characters outside .*'café'"):
        read_lexicon(words)
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(LexiconError, match="empty.txt: the lexicon has no words"):
        read_lexicon(tmp_path / "empty.txt")
    (tmp_path / "m.jsonl").write_text('{"text": "bin"}\n{"id": "2"}\n')
    with pytest.raises(LexiconError, match=r"m.jsonl:2: not a manifest line with a 'text' field"):
        read_lexicon(tmp_path / "m.jsonl")
    words.write_text("bin\n")
    with pytest.raises(LexiconError, match="needs beam search"):
        make_decoder(beam_size=1, lexicon=str(words))
    with pytest.raises(LexiconError, match="missing.arpa: language model not found"):
        make_decoder(beam_size=4, lm=str(tmp_path / "missing.arpa"))
