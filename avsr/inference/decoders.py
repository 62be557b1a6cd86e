"""The decoders a transcriber may run for a model: CTC (greedy, or torchaudio's beam search with a lexicon and a
language model) or, for a model with an attention decoder, joint CTC/attention beam search."""

from __future__ import annotations

from avsr.data.tokenizer import CharTokenizer
from avsr.decoding.beam import make_decoder
from avsr.decoding.joint import JointOptions
from avsr.errors import OptionError
from avsr.inference.options import TranscribeOptions


def joint_options(model, options: TranscribeOptions) -> JointOptions | None:
    """The joint CTC/attention search settings for ``model`` (its own, the beam as asked), or None for CTC.

    Raises:
        OptionError: ``decoder="joint"`` for a model without an attention decoder.
    """
    decoding = getattr(model, "decoding", None)  # an imported auto_avsr model's (avsr.models.e2e_network)
    kind = options.decoder if options.decoder != "auto" else ("joint" if decoding else "ctc")
    if kind == "ctc":
        return None
    if decoding is None:
        raise OptionError("--decoder joint: this model has no attention decoder (it is a CTC model); use --decoder "
                          "ctc or auto")
    return JointOptions(beam_size=options.beam_size or decoding.beam_size, ctc_weight=decoding.ctc_weight,
                        length_bonus=decoding.length_bonus)


def make_ctc_decoder(options: TranscribeOptions, tokenizer):
    """The CTC decoder of ``options`` (greedy, or beam search with its lexicon and LM) for ``tokenizer``.

    Raises:
        OptionError: a CTC beam search over SentencePiece pieces (it reads characters).
    """
    beam_size = options.beam_size or 1
    if beam_size > 1 and not isinstance(tokenizer, CharTokenizer):
        raise OptionError(f"--beam-size {beam_size} with --decoder ctc: the CTC beam search reads character "
                          "models; this model's pieces decode greedily with --decoder ctc, or use --decoder joint")
    return make_decoder(beam_size, options.lexicon, options.lm, options.lm_weight, options.word_score, tokenizer)
