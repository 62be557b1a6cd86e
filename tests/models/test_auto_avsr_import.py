"""``avsr import auto-avsr`` end to end: a checkpoint in the reference's format (the recipe weights of
tests/fixtures/auto_avsr, saved as the model zoo saves them) becomes a bundle that gives the reference's outputs,
its beam-search tokens, and transcribes real media through the same pipeline as every avsr model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from avsr.data.spm_tokenizer import SentencePieceTokenizer
from avsr.decoding.joint import joint_beam_search
from avsr.inference.transcribe import Transcriber
from avsr.models.loader import load_model
from tests.conftest import CARPHONE, SPEECH, avsr_main, one_line
from tests.models.auto_avsr_fixtures import golden, manifest, reference_state_dict

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict:
    """The vsr and asr recipe checkpoints as .pth files, imported with the command; their bundles by kind."""
    folder = tmp_path_factory.mktemp("imported")
    out = {}
    for kind in ("vsr", "asr"):
        checkpoint = folder / f"{kind}.pth"
        torch.save(reference_state_dict(kind), checkpoint)
        result = avsr_main("import", "auto-avsr", checkpoint, "-o", folder / f"{kind}.pt")
        assert result.returncode == 0, result.stderr
        assert f"-> {folder / f'{kind}.pt'}" in result.stdout
        out[kind] = folder / f"{kind}.pt"
    return out


@pytest.mark.parametrize("kind", ["vsr", "asr"])
def test_the_bundle_gives_the_references_outputs_and_beam_search_tokens(bundles, kind):
    loaded = load_model(bundles[kind])
    network = loaded.network
    assert network.family == "auto-avsr" and isinstance(loaded.tokenizer, SentencePieceTokenizer)
    assert network.preprocessing.roi_style == "auto-avsr" and network.preprocessing.crop_size == 88
    x = torch.from_numpy(golden(kind, "input"))[None, :, 0]  # (1, T, 88, 88) crops or (1, N) samples
    video = x if kind == "vsr" else torch.zeros(1, 1, 88, 88)
    audio = x if kind == "asr" else torch.zeros(1, 640)
    with torch.no_grad():
        out = network(audio, torch.tensor([audio.shape[1]]), video, torch.tensor([video.shape[1]]))
    assert np.abs(out.log_probs[0].numpy() - golden(kind, "ctc_logprobs")).max() < TOLERANCE
    eos = loaded.tokenizer.eos
    best = joint_beam_search(network.decoder, out.encoder_out[0], out.log_probs[0], sos=eos, eos=eos,
                             options=Transcriber(network, loaded.tokenizer).joint)[0]
    expected = manifest()[kind]["beam_default"]["token_ids"]
    assert list(best.token_ids) == [t for t in expected if t != eos]  # the reference's beam 40, CTC weight 0.1


@pytest.mark.parametrize("kind, media, mode", [("vsr", CARPHONE, "video"), ("asr", SPEECH, "audio")])
def test_an_imported_model_transcribes_real_media_with_its_own_crops_and_decoder(bundles, kind, media, mode):
    loaded = load_model(bundles[kind])
    transcriber = Transcriber(loaded.network, loaded.tokenizer, loaded.id)
    assert transcriber.joint is not None and transcriber.joint.beam_size == 40
    transcript = transcriber(media)
    assert transcript.mode == mode and transcript.speech_regions
    assert all(b - a <= 20.0 + 1e-6 for a, b in transcript.speech_regions)
    words = [w.word for w in transcript.words]
    assert " ".join(words) == transcript.text  # words timed from the SentencePiece pieces' alignment
    assert all(0.0 <= w.start_s < w.end_s <= transcript.duration_s + 1e-6 for w in transcript.words)
    as_json = json.loads(json.dumps(transcript.to_dict()))
    assert as_json["model_id"].startswith(f"{kind}@")


def test_the_ctc_decoder_of_an_imported_model_reads_pieces_greedily(bundles):
    from avsr.errors import OptionError
    from avsr.inference.transcribe import TranscribeOptions

    loaded = load_model(bundles["asr"])
    ctc = Transcriber(loaded.network, loaded.tokenizer, loaded.id, TranscribeOptions(decoder="ctc"))
    assert ctc.joint is None and ctc(SPEECH).mode == "audio"
    with pytest.raises(OptionError, match="--beam-size 4 with --decoder ctc"):
        Transcriber(loaded.network, loaded.tokenizer, loaded.id, TranscribeOptions(decoder="ctc", beam_size=4))
    tiny = load_model("synth-grid-tiny")
    with pytest.raises(OptionError, match="no attention decoder"):
        Transcriber(tiny.network, tiny.tokenizer, tiny.id, TranscribeOptions(decoder="joint"))


def test_files_that_are_not_such_checkpoints_get_one_line_and_no_bundle(tmp_path):
    state = reference_state_dict("vsr")
    truncated = tmp_path / "truncated.pth"
    torch.save(state, truncated)
    truncated.write_bytes(truncated.read_bytes()[:100_000])
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint\n")
    other = tmp_path / "other.pth"
    torch.save(load_model("synth-grid-tiny").network.state_dict(), other)
    wider = tmp_path / "vocab.pth"  # a vocabulary the units list does not fit
    torch.save({k: (v[:100] if k.startswith(("ctc.", "decoder.output", "decoder.embed")) else v)
                for k, v in state.items()}, wider)
    for source, names in [(truncated, ["truncated.pth", "download it again"]),
                          (text, ["notes.pth", "not a readable PyTorch checkpoint"]),
                          (other, ["other.pth"]), (wider, ["vocab.pth", "units"])]:
        target = tmp_path / f"{source.stem}.pt"
        result = avsr_main("import", "auto-avsr", source, "-o", target)
        line = one_line(result, 2, *names)
        assert line.startswith("avsr import auto-avsr: error:")
        assert not target.exists()
    existing = tmp_path / "existing.pt"
    existing.write_bytes(b"mine")
    one_line(avsr_main("import", "auto-avsr", truncated, "-o", existing), 2, "existing.pt", "--overwrite")
    assert existing.read_bytes() == b"mine"
